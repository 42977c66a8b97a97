#include "server/persistence.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <unordered_map>
#include <utility>

#include "server/store_module.h"

namespace midge::server {

namespace {

std::string location_of(const config::Config& cfg) {
  std::string dir = cfg.persistence_location.empty() ? std::string(".") : cfg.persistence_location;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return dir;
}

// Inside the store: says that the store has a key, so that a missing key
// means it was removed (a store of an older Midge has neither).
constexpr const char* kKeyedMark = "MIDGE_KEYED";

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

bool sync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

// Writes `bytes` to `path` durably and whole or not at all (a temporary
// file, fsync, rename, fsync of its directory).
bool write_durably(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".new";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  bool ok = ::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()) && ::fsync(fd) == 0;
  ok = ::close(fd) == 0 && ok;
  if (ok) ok = ::rename(tmp.c_str(), path.c_str()) == 0;
  if (!ok) {
    const int saved = errno;
    ::unlink(tmp.c_str());
    errno = saved;
    return false;
  }
  return sync_dir(std::filesystem::path(path).parent_path().string());
}

// An empty database in Mosquitto 2.0's format (persist.h: magic, CRC 0,
// version 6, one configuration chunk: last id 0, clean shutdown, 8-byte
// ids), so that Mosquitto started later on the same configuration finds a
// database it reads, and starts empty.
std::string empty_mosquitto_db() {
  static const unsigned char bytes[] = {
      0x00, 0xB5, 0x00, 'm', 'o', 's', 'q', 'u', 'i', 't', 't', 'o', ' ', 'd', 'b',  // magic
      0, 0, 0, 0,                                                                      // CRC (unused)
      0, 0, 0, 6,                                                                      // version
      0, 0, 0, 1, 0, 0, 0, 16,                                                         // chunk: config, 16 bytes
      0, 0, 0, 0, 0, 0, 0, 0,                                                          // last id
      1, 8, 0, 0, 0, 0, 0, 0,                                                          // shutdown, id size, padding
  };
  return std::string(reinterpret_cast<const char*>(bytes), sizeof bytes);
}

// The key of the store is Mosquitto's database file (persistence_file):
// removing it resets the store, as it resets Mosquitto's, which is how
// Mosquitto's users clear retained messages and sessions. Midge never
// reads it and never changes one that exists (Mosquitto's own, kept for a
// return to Mosquitto); where there is none it writes an empty one.
// False (said) when the key or the store's directory cannot be made.
bool keep_key(const config::Config& cfg, const std::string& dir, const Say& say) {
  const std::string location = location_of(cfg);
  const std::string key = location + "/" + cfg.persistence_file;
  const std::string mark = dir + "/" + kKeyedMark;
  const bool has_key = exists(key);
  if (!has_key && exists(mark)) {
    // Kept one reset long: a key removed by mistake loses nothing at once.
    const std::string aside = dir + ".discarded";
    std::error_code ec;
    std::filesystem::remove_all(aside, ec);
    if (ec || ::rename(dir.c_str(), aside.c_str()) != 0) {
      say("Error: " + key + " was removed, which resets the store, but " + dir + " cannot be moved to " + aside +
          ": " + (ec ? ec.message() : std::string(std::strerror(errno))) + ".");
      return false;
    }
    say("Warning: " + key + " was removed since the last run: the store is reset and starts empty (the old one is " +
        aside + " until the next reset).");
  }
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    say("Error: cannot create the store " + dir + ": " + std::strerror(errno) + ".");
    return false;
  }
  // The key before the mark: a crash in between leaves a store that counts
  // as an older Midge's, never one whose key seems removed.
  if (!has_key && !write_durably(key, empty_mosquitto_db())) {
    say("Error: cannot write " + key + " (the store's key): " + std::strerror(errno) + ".");
    return false;
  }
  if (!exists(mark) && !write_durably(mark, "This store's key is " + key + ": removing it resets the store.\n")) {
    say("Error: cannot write " + mark + ": " + std::strerror(errno) + ".");
    return false;
  }
  return true;
}

}  // namespace

std::string store_path(const config::Config& cfg) { return location_of(cfg) + "/" + cfg.persistence_file + ".midge"; }

std::unique_ptr<broker::Store> open_store(const config::Config& cfg, const Say& say) {
  const std::string location = location_of(cfg);
  struct stat st {};
  if (::stat(location.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    say("Error: persistence_location " + location + " is not an existing directory; create it (writable by the broker).");
    return nullptr;
  }
  const std::string path = store_path(cfg);
  if (::stat(path.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) {
    say("Error: " + path + " is a file: Midge keeps its store in a directory of that name.");
    return nullptr;
  }
  std::string error;
  const store::OpenFunction open = load_store_module(error);
  if (!open) {
    say("Error: " + error);
    return nullptr;
  }
  if (!keep_key(cfg, path, say)) return nullptr;  // after the module: a broker that cannot start resets nothing
  store::RocksStore::Options options;
  options.sync = cfg.persistence_sync;
  std::unique_ptr<broker::Store> store(open(path.c_str(), &options, &error));
  if (!store) say("Error: cannot open the store " + path + ": " + error);
  return store;
}

namespace {

// What the previous run left between workers (Journal::put_transit).
struct Transits {
  std::vector<broker::StoredTransit> list;
  std::map<std::pair<unsigned, unsigned>, uint64_t> markers;  // (receiver, origin) -> seq
  uint64_t highest = 0;  // above every id and sequence number seen
};

// Routes again, on every worker, each message some receiver of the
// previous run had not written: only to the sessions that lived on that
// receiver (`lived_on`), which had not got it.
size_t replay_transits(Transits& t, const std::unordered_map<std::string, unsigned>& lived_on,
                       std::vector<std::unique_ptr<net::Worker>>& workers, broker::Journal& journal, TimePoint now) {
  size_t replayed = 0;
  std::map<unsigned, uint64_t> erase_up_to;
  for (const broker::StoredTransit& transit : t.list) {
    erase_up_to[transit.origin] = std::max(erase_up_to[transit.origin], transit.id);
    for (const broker::Journal::Receiver& r : transit.receivers) {
      auto m = t.markers.find({r.worker, transit.origin});
      if (m != t.markers.end() && m->second >= r.seq) continue;  // written by its receiver
      const std::function<bool(const broker::Session&)> only = [&](const broker::Session& s) {
        auto it = lived_on.find(s.client_id);
        return it != lived_on.end() && it->second == r.worker;
      };
      for (auto& w : workers) {
        if (transit.member) {
          w->broker().replay_shared(transit.member->client_id, transit.member->qos, transit.member->subscription_id,
                                    transit.message, only, now);
        } else {
          w->broker().replay(transit.message, only, now);
        }
      }
      ++replayed;
    }
  }
  for (const auto& [origin, id] : erase_up_to) journal.erase_transits(origin, id);
  return replayed;
}

}  // namespace

bool recover(broker::Store& store, broker::SharedState& shared, std::vector<std::unique_ptr<net::Worker>>& workers,
             const Say& say, const ListenerRules& listener_rules) {
  const TimePoint started = Clock::now();
  const TimePoint now = started;
  // Every write recovery makes (sessions re-homed, expired retained
  // messages dropped, transits replayed and erased) goes in one batch.
  std::unique_ptr<broker::Journal> journal = store.journal();
  for (auto& w : workers) w->broker().set_journal(journal.get());

  size_t retained = 0, sessions = 0, queued = 0, problems = 0;
  std::unordered_map<std::string, unsigned> lived_on;
  Transits transits;
  broker::RecoveryVisitor v;
  v.retained = [&](broker::StoredRetained&& r) {
    if (r.message->expired(now)) {
      journal->erase_retained(r.message->topic);
      return;
    }
    // Checked again at each delivery against its source's rules as they are
    // now: the broker's, or (per_listener_settings) its listener's.
    std::shared_ptr<broker::Authorizer> rules = shared.authorizer;
    if (r.listener_port != 0) rules = listener_rules ? listener_rules(r.listener_port) : nullptr;
    std::shared_ptr<broker::RetainSource> source;
    if (r.has_source && rules) {
      source = std::make_shared<broker::RetainSource>();
      if (r.username) source->username = std::make_unique<const std::string>(*r.username);
      source->authorizer = rules.get();
      source->listener_port = r.listener_port;
    }
    shared.retained.put(r.message, std::move(source));
    ++retained;
  };
  v.session = [&](broker::StoredSession&& s) {
    lived_on[s.client_id] = s.worker;
    queued += s.deliveries.size();
    const unsigned w = broker::Broker::worker_for(s.client_id, static_cast<unsigned>(workers.size()));
    workers[w]->broker().restore(std::move(s), now);
    ++sessions;
  };
  v.transit = [&](broker::StoredTransit&& t) {
    transits.highest = std::max(transits.highest, t.id);
    for (const auto& r : t.receivers) transits.highest = std::max(transits.highest, r.seq);
    transits.list.push_back(std::move(t));
  };
  v.marker = [&](unsigned receiver, unsigned origin, uint64_t seq) {
    transits.markers[{receiver, origin}] = seq;
    transits.highest = std::max(transits.highest, seq);
  };
  v.problem = [&](const std::string& line) {
    ++problems;
    say("Warning: " + line);  // the store's lines start with "store: "
  };
  std::string error;
  if (!store.load(v, error)) {
    say("Error: cannot read the store: " + error);
    return false;
  }
  const size_t replayed = replay_transits(transits, lived_on, workers, *journal, now);
  store.set_workers(static_cast<unsigned>(workers.size()));
  if (!journal->commit()) {
    say("Error: cannot write the store: " + journal->error());
    return false;
  }
  for (auto& w : workers) {
    w->set_store(&store);
    w->set_transit_base(transits.highest + 1);
  }
  const auto ms = std::chrono::duration_cast<milliseconds>(Clock::now() - started).count();
  say("Restored " + std::to_string(retained) + " retained messages and " + std::to_string(sessions) +
      " sessions (" + std::to_string(queued) + " queued or in-flight messages" +
      (replayed ? ", " + std::to_string(replayed) + " routed again" : std::string()) + ") in " + std::to_string(ms) +
      " ms" + (problems ? ", skipping " + std::to_string(problems) + " damaged records" : std::string()) + ".");
  return true;
}

bool hand_over_store(const std::string& dir, uid_t uid, gid_t gid) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return false;
  DIR* d = ::fdopendir(fd);
  if (!d) {
    ::close(fd);
    return false;
  }
  // What is the user's already is left alone (no CAP_CHOWN needed on a later start).
  auto give = [&](const char* name) {
    struct stat st {};
    if (::fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return false;
    return (st.st_uid == uid && st.st_gid == gid) || ::fchownat(fd, name, uid, gid, AT_SYMLINK_NOFOLLOW) == 0;
  };
  bool ok = give(".");
  while (const dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    ok = ok && give(e->d_name);
  }
  const int error = errno;
  ::closedir(d);
  errno = error;
  return ok;
}

}  // namespace midge::server
