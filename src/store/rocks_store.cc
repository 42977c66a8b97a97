#include "store/rocks_store.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/memtablerep.h>
#include <rocksdb/metadata.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/table_properties_collectors.h>
#include <rocksdb/write_batch.h>
#include <pthread.h>
#include <sys/stat.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <utility>

#include "broker/retained_store.h"
#include "broker/session.h"
#include "store/loader.h"
#include "store/records.h"

namespace midge::store {
namespace {

// Repairs per store lifetime: damage that one repair does not cure is
// reported and left, never repaired in a loop.
constexpr int kMaxRepairs = 2;

// Options for a broker's load: many small writes from a few threads, each
// batch fsynced or not; reads only at start-up (a full scan). Chosen so
// that an idle store costs little memory:
// - 16 MiB memtables, at most 3 (48 MiB worst case under a write burst);
//   most queued messages are put and deleted within one memtable, so
//   neither reaches an SST file;
// - vector memtables: nothing reads the memtable while the broker runs,
//   so inserts are appends, sorted once when the memtable is flushed (in
//   the background). The default skiplist spent half of a QoS 1 fan-in's
//   store time comparing keys (measured: ~2x the CPU per message). The
//   price: inserts are not concurrent (the batches of concurrent commits
//   are still written as one group), and replaying the WAL at start-up
//   sorts what it replays;
// - an 8 MiB block cache holding index blocks too (no unbounded table
//   readers): nothing reads at run time, the start-up scan bypasses it;
// - the WAL is bounded (64 MiB) so that start-up replays little;
// - files with many deletes (acknowledged deliveries) are marked for
//   compaction, which drops the tombstones instead of scanning them;
// - kPointInTimeRecovery: a torn or corrupt WAL record ends the replay
//   there. kill -9 tears nothing (each batch's write() reached the page
//   cache before commit() returned); a power cut can, and with
//   persistence_sync every acknowledged batch was fsynced before its
//   acknowledgement left, so a torn record is one nobody was told about.
//   Stopping there keeps later batches from applying over a lost one.
//   (kTolerateCorruptedTailRecords refuses to open on damage before the
//   tail; kSkipAnyCorruptedRecords would apply batches out of order.)
// - paranoid checks: damage found at open is reported (then repaired),
//   not served.
std::unique_ptr<rocksdb::Options> make_options(std::shared_ptr<rocksdb::Logger> log) {
  auto o = std::make_unique<rocksdb::Options>();
  o->create_if_missing = true;
  o->paranoid_checks = true;
  o->wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  o->write_buffer_size = 16 << 20;
  o->max_write_buffer_number = 3;
  o->max_total_wal_size = 64 << 20;
  o->max_background_jobs = 2;
  o->info_log = std::move(log);
  o->memtable_factory.reset(new rocksdb::VectorRepFactory);
  o->allow_concurrent_memtable_write = false;
  o->stats_dump_period_sec = 0;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(8 << 20);
  table.cache_index_and_filter_blocks = true;
  o->table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  o->table_properties_collector_factories.push_back(
      rocksdb::NewCompactOnDeletionCollectorFactory(1000, 500, 0.5));
  return o;
}

// The clocks are read only for a record that holds a deadline: most
// messages have none, and this is the publish path.
Clocks clocks(bool needed) { return needed ? Clocks::now() : Clocks{}; }

bool file_exists(const std::string& path) {
  struct stat st;
  return !path.empty() && ::stat(path.c_str(), &st) == 0;
}

// The fault hook: the file exists, and is empty or names this thread
// ("midge-w1": only that worker's commits fail).
bool fault_injected(const std::string& path) {
  if (!file_exists(path)) return false;
  std::ifstream in(path);
  std::string who;
  in >> who;
  if (who.empty()) return true;
  char name[16] = {};
  ::pthread_getname_np(::pthread_self(), name, sizeof name);
  return who == name;
}

// One worker's batch. Only its worker's thread uses it.
class RocksJournal final : public broker::Journal {
 public:
  RocksJournal(rocksdb::DB* db, bool sync, const std::string& fault_file) : db_(db), fault_file_(fault_file) {
    write_options_.sync = sync;
  }

  void put_retained(const broker::Message& message, const broker::RetainSource* source) override {
    put(retained_key(message.topic), encode_retained(message, source, clocks(message.expires_at.has_value())));
  }
  void erase_retained(std::string_view topic) override { erase(retained_key(topic)); }

  void put_session(const broker::Session& session, unsigned worker) override {
    const bool deadline = session.expires_at || session.will_at;
    put(session_key(session.client_id, kSessionFields), encode_session(session, worker, clocks(deadline)));
  }
  void erase_session(std::string_view client_id) override {
    const std::string prefix = session_prefix(client_id);
    batch_.DeleteRange(prefix, prefix_end(prefix));
  }

  void put_subscription(std::string_view client_id, std::string_view filter,
                        const broker::SessionSubscription& subscription) override {
    put(subscription_key(client_id, filter), encode_subscription(subscription));
  }
  void erase_subscription(std::string_view client_id, std::string_view filter) override {
    erase(subscription_key(client_id, filter));
  }

  void put_delivery(std::string_view client_id, uint64_t seq, const broker::Delivery& delivery,
                    uint16_t packet_id) override {
    const bool deadline = delivery.message->expires_at.has_value();
    put(delivery_key(client_id, kDeliveryMessage, seq), encode_delivery(delivery, packet_id, clocks(deadline)));
  }
  void put_inflight(std::string_view client_id, uint64_t seq, uint16_t packet_id, bool released) override {
    put(delivery_key(client_id, kDeliveryState, seq), encode_inflight(packet_id, released));
  }
  void erase_delivery_message(std::string_view client_id, uint64_t seq) override {
    erase(delivery_key(client_id, kDeliveryMessage, seq));
  }
  void erase_delivery(std::string_view client_id, uint64_t seq, bool with_state) override {
    erase(delivery_key(client_id, kDeliveryMessage, seq));
    if (with_state) erase(delivery_key(client_id, kDeliveryState, seq));
  }

  void put_incoming(std::string_view client_id, uint16_t packet_id) override {
    put(incoming_key(client_id, packet_id), encode_incoming());
  }
  void erase_incoming(std::string_view client_id, uint16_t packet_id) override {
    erase(incoming_key(client_id, packet_id));
  }

  void put_transit(unsigned origin, uint64_t id, const broker::Message& message,
                   const std::vector<Receiver>& receivers) override {
    put(transit_key(origin, id), encode_transit(message, receivers, clocks(message.expires_at.has_value())));
  }
  void put_shared_transit(unsigned origin, uint64_t id, const broker::Message& message, Receiver receiver,
                          const SharedTarget& target) override {
    put(transit_key(origin, id),
        encode_shared_transit(message, receiver, target, clocks(message.expires_at.has_value())));
  }
  void erase_transits(unsigned origin, uint64_t up_to_id) override {
    batch_.DeleteRange(transit_key(origin, 0), transit_end(origin, up_to_id));
  }
  void put_marker(unsigned receiver, unsigned origin, uint64_t seq) override {
    put(marker_key(receiver, origin), encode_marker(seq));
  }

  size_t size() const override { return batch_.Count(); }
  bool commit() override;
  bool healthy() const override { return healthy_; }
  std::string error() const override { return error_; }

 private:
  void put(const std::string& key, const std::string& value) { batch_.Put(key, value); }
  void erase(const std::string& key) { batch_.Delete(key); }
  bool fail(std::string why) {
    batch_.Clear();
    healthy_ = false;
    error_ = std::move(why);
    return false;
  }

  rocksdb::DB* db_;
  rocksdb::WriteOptions write_options_;
  const std::string& fault_file_;
  rocksdb::WriteBatch batch_;
  bool healthy_ = true;
  std::string error_;
};

bool RocksJournal::commit() {
  if (batch_.Count() == 0) {
    if (healthy_) return true;
    // After a failure (the worker calls this once Store::resume() says
    // yes): a real write, of a deletion nothing will ever read, tells
    // whether the disk takes writes again.
    batch_.Delete("~probe");
  }
  if (fault_injected(fault_file_)) return fail("injected fault");
  const rocksdb::Status s = db_->Write(write_options_, &batch_);
  if (!s.ok()) return fail(s.ToString());
  batch_.Clear();
  healthy_ = true;
  error_.clear();
  return true;
}

}  // namespace

// RocksDB's own log. No LOG file is written: on a full disk, RocksDB 7.8
// aborts on the log line that follows a failed one (its assertions are on
// in Debian's build). Instead its warnings are kept while the store is
// opened and loaded, and load() reports them (a WAL cut short at a torn
// record, a table dropped by a repair); later ones are dropped, the
// journals report write errors themselves. Called from RocksDB's threads.
class RocksWarnings final : public rocksdb::Logger {
 public:
  using rocksdb::Logger::Logv;
  void Logv(const char* /*format*/, va_list /*ap*/) override {}
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    if (level < rocksdb::InfoLogLevel::WARN_LEVEL) return;
    char buf[512];
    std::vsnprintf(buf, sizeof buf, format, ap);
    std::string_view line(buf);
    const size_t source_end = line.find("] ");  // "[db/file.cc:123] " first
    if (line.starts_with('[') && source_end != std::string_view::npos) line.remove_prefix(source_end + 2);
    if (line.find("without unique ID") != std::string_view::npos) return;  // old tables, harmless
    std::lock_guard lock(mutex_);
    if (collecting_ && lines_.size() < kMaxLines) lines_.emplace_back(line);
  }
  // What was logged so far; nothing is kept after the first call.
  std::vector<std::string> take() {
    std::lock_guard lock(mutex_);
    collecting_ = false;
    return std::move(lines_);
  }

 private:
  static constexpr size_t kMaxLines = 32;
  std::mutex mutex_;
  std::vector<std::string> lines_;  // guarded by mutex_
  bool collecting_ = true;          // guarded by mutex_
};

RocksStore::RocksStore(std::string dir, const Options& options)
    : dir_(std::move(dir)),
      options_(options),
      warnings_(std::make_shared<RocksWarnings>()),
      db_options_(make_options(warnings_)) {
  if (const char* f = std::getenv("MIDGE_STORE_FAULT_FILE")) fault_file_ = f;
}

RocksStore::~RocksStore() = default;

std::unique_ptr<RocksStore> RocksStore::open(const std::string& dir, const Options& options, std::string& error) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) {
    error = "persistence directory " + dir + " does not exist";
    return nullptr;
  }
  if (!S_ISDIR(st.st_mode)) {
    error = dir + " is not a directory (Midge keeps its store in a directory; "
                  "it cannot read a Mosquitto database file)";
    return nullptr;
  }
  std::unique_ptr<RocksStore> store(new RocksStore(dir, options));
  if (!store->open_db(error)) return nullptr;
  store->read_workers();
  return store;
}

bool RocksStore::open_db(std::string& error) {
  rocksdb::DB* db = nullptr;
  const rocksdb::Status s = rocksdb::DB::Open(*db_options_, dir_, &db);
  if (s.ok()) {
    db_.reset(db);
    return true;
  }
  if (s.IsCorruption() && repairs_ < kMaxRepairs) return repair("opening it: " + s.ToString(), error);
  error = "cannot open the store in " + dir_ + ": " + s.ToString();
  return false;
}

// Closes the database, lets RocksDB rebuild it from what is readable (the
// damaged files go to DIR/lost) and opens it again.
bool RocksStore::repair(const std::string& why, std::string& error) {
  ++repairs_;
  problems_.push_back("store: damage in " + dir_ + " found " + why + "; repaired, the damaged part is lost");
  db_.reset();
  const rocksdb::Status s = rocksdb::RepairDB(dir_, *db_options_);
  if (!s.ok()) {
    error = "cannot repair the store in " + dir_ + ": " + s.ToString();
    return false;
  }
  return open_db(error);
}

void RocksStore::read_workers() {
  std::string value;
  const char* why = "";
  if (!db_->Get(rocksdb::ReadOptions(), workers_key(), &value).ok()) return;
  if (!decode_workers(value, previous_workers_, why)) {
    previous_workers_ = 0;
    problems_.push_back("store: skipped " + describe_key(workers_key()) + ": " + why);
  }
}

namespace {
rocksdb::Status scan(rocksdb::DB& db, Loader& loader) {
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;  // read once: keep the cache for later
  ro.readahead_size = 2 << 20;
  std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(ro));
  if (loader.resume_key().empty()) {
    it->SeekToFirst();
  } else {
    it->Seek(loader.resume_key());
  }
  for (; it->Valid(); it->Next()) loader.record(it->key().ToStringView(), it->value().ToStringView());
  return it->status();
}
}  // namespace

bool RocksStore::load(const broker::RecoveryVisitor& visitor, std::string& error) {
  Loader loader(visitor, Clocks::now());
  for (const auto& p : problems_) loader.problem(p);
  problems_.clear();
  for (;;) {
    const rocksdb::Status s = scan(*db_, loader);
    if (s.ok()) break;
    if (!s.IsCorruption()) {
      error = "cannot read the store in " + dir_ + ": " + s.ToString();
      return false;
    }
    loader.restart();  // the half-read session is read again after the repair
    if (repairs_ >= kMaxRepairs) {
      report_warnings(loader);
      loader.problem("store: " + dir_ + " is still damaged after repair (" + s.ToString() +
                     "); records from " + describe_key(loader.resume_key()) + " on are not served");
      return true;
    }
    const std::string& served_end = loader.resume_key();
    const Served served = served_at_risk(served_end);
    if (!repair("while reading " + describe_key(served_end) + ": " + s.ToString(), error) ||
        !restore(served, served_end, error)) {
      return false;
    }
    for (const auto& p : problems_) loader.problem(p);
    problems_.clear();
  }
  loader.finish();
  report_warnings(loader);
  return true;
}

void RocksStore::report_warnings(Loader& loader) {
  for (const auto& line : warnings_->take()) loader.problem("store: RocksDB: " + line);
}

// RepairDB drops a damaged table file whole, including records the broker
// was already given: those below `end` in any table that reaches `end`.
// Read them while the database is still open, to write them back after.
RocksStore::Served RocksStore::served_at_risk(const std::string& end) {
  Served out;
  std::vector<rocksdb::LiveFileMetaData> files;
  db_->GetLiveFilesMetaData(&files);
  for (const auto& f : files) {
    if (f.smallestkey < end && f.largestkey >= end && (out.from.empty() || f.smallestkey < out.from)) {
      out.from = f.smallestkey;
    }
  }
  if (out.from.empty()) return out;
  rocksdb::ReadOptions ro;
  const rocksdb::Slice upper(end);
  ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
  for (it->Seek(out.from); it->Valid(); it->Next()) {
    out.records.emplace_back(it->key().ToString(), it->value().ToString());
  }
  return out;
}

// Makes [served.from, end) hold exactly what the broker was given: what
// the repair dropped comes back, and nothing it revived (an old value whose
// delete was in the dropped table) stays.
bool RocksStore::restore(const Served& served, const std::string& end, std::string& error) {
  if (served.from.empty()) return true;
  rocksdb::WriteBatch batch;
  batch.DeleteRange(served.from, end);
  for (const auto& [key, value] : served.records) batch.Put(key, value);
  rocksdb::WriteOptions wo;
  wo.sync = true;
  const rocksdb::Status s = db_->Write(wo, &batch);
  if (!s.ok()) error = "cannot write the repaired store in " + dir_ + ": " + s.ToString();
  return s.ok();
}

void RocksStore::set_workers(unsigned workers) {
  if (!db_) return;
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync;
  // A failure only costs the next run this hint; the journals report the disk.
  (void)db_->Put(wo, workers_key(), encode_workers(workers));
}

std::unique_ptr<broker::Journal> RocksStore::journal() {
  return std::make_unique<RocksJournal>(db_.get(), options_.sync, fault_file_);
}

bool RocksStore::resume() {
  if (!db_ || fault_injected(fault_file_)) return false;
  // Busy while RocksDB recovers by itself (after ENOSPC it waits for free
  // space, checking every few seconds): not writable yet.
  return db_->Resume().ok();
}

}  // namespace midge::store
