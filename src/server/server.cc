#include "server/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <functional>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "broker/shared_state.h"
#include "config/config.h"
#include "net/listener.h"
#include "net/tls.h"
#include "net/worker.h"
#include "server/heap.h"
#include "server/acl_files.h"
#include "server/password_files.h"
#include "server/persistence.h"
#include "server/reload.h"
#include "server/logger.h"
#include "server/startup_checks.h"
#include "server/systemd.h"

namespace midge::server {
namespace {

constexpr const char* kVersion = "0.1.0";

struct Options {
  std::string config_file;
  int port = -1;
  bool verbose = false;
  bool daemon = false;
  bool help_config = false;  // print the option table and exit
  bool test_config = false;  // check the configuration and the files it names, and exit
};

void usage(FILE* out) {
  std::fprintf(out,
               "midge version %s\n\n"
               "midge is an MQTT 5.0/3.1.1/3.1 broker.\n\n"
               "Usage: midge [-c config_file] [-d] [-h] [-p port] [-v]\n"
               "       midge --help-config [markdown | man]\n"
               "       midge --test-config -c config_file\n\n"
               " -c : specify the broker config file.\n"
               " -d : put the broker into the background after starting.\n"
               " -h : display this help.\n"
               " --help-config : list every configuration option, its default and whether\n"
               "      Midge applies it, warns that it does not, or refuses to start with it.\n"
               " --test-config : check the config file and every file it names (password,\n"
               "      ACL, TLS files) as start-up would, without opening any listener;\n"
               "      print each problem as FILE:LINE: and exit 1, or exit 0 if it is OK.\n"
               " -p : start the broker listening on the specified port.\n"
               "      Not recommended in conjunction with the -c option.\n"
               " -v : verbose mode - enable all logging types. This overrides\n"
               "      any logging options given in the config file.\n",
               kVersion);
}

// Returns -1 to continue, or an exit code.
int parse_args(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* what) -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "Error: %s argument given, but no %s specified.\n\n", a.c_str(), what);
        return nullptr;
      }
      return argv[++i];
    };
    if (a == "-c" || a == "--config-file") {
      const char* v = value("config file");
      if (!v) return 1;
      o.config_file = v;
    } else if (a == "-p" || a == "--port") {
      const char* v = value("port");
      if (!v) return 1;
      char* end = nullptr;
      const long port = std::strtol(v, &end, 10);
      if (*v == '\0' || *end != '\0' || port < 1 || port > 65535) {
        std::fprintf(stderr, "Error: Invalid port specified (%s).\n", v);
        return 1;
      }
      o.port = static_cast<int>(port);
    } else if (a == "-v" || a == "--verbose") {
      o.verbose = true;
    } else if (a == "-d" || a == "--daemon") {
      o.daemon = true;
    } else if (a == "-h" || a == "--help") {
      usage(stdout);
      return 0;
    } else if (a == "--test-config") {
      o.test_config = true;
    } else if (a == "--help-config") {
      const std::string format = i + 1 < argc ? argv[i + 1] : "";
      std::fputs((format == "markdown" ? config::describe_applied_markdown()
                  : format == "man"    ? config::describe_options_man()
                                       : config::describe_options()).c_str(), stdout);
      return 0;
    } else {
      std::fprintf(stderr, "Error: Unknown option '%s'.\n", a.c_str());
      usage(stderr);
      return 1;
    }
  }
  return -1;
}

void raise_file_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
}

broker::Settings make_settings(const config::Config& c) {
  broker::Settings s;
  // Mosquitto 2.0: anonymous clients are allowed in local-only mode, refused
  // as soon as a listener is configured unless allow_anonymous is true.
  s.allow_anonymous = c.allow_anonymous.value_or(c.local_only);
  s.max_queued_messages = c.max_queued_messages;
  s.max_queued_bytes = c.max_queued_bytes;
  s.queue_qos0_messages = c.queue_qos0_messages;
  s.upgrade_outgoing_qos = c.upgrade_outgoing_qos;
  s.check_retain_source = c.check_retain_source;
  s.max_inflight_messages = c.max_inflight_messages;
  s.max_inflight_bytes = c.max_inflight_bytes;
  s.message_size_limit = c.message_size_limit;
  s.max_packet_size = c.max_packet_size;
  s.max_pending_output = c.max_pending_output;
  s.max_subscriptions_per_client = c.max_subscriptions_per_client;
  s.max_shared_groups = c.max_shared_groups;
  s.max_keepalive = c.max_keepalive;
  s.persistent_client_expiration = c.persistent_client_expiration;
  s.sys_interval = c.sys_interval;
  s.connection_messages = c.connection_messages;
  s.retain_available = c.retain_available;
  // Each listener has its own (net::ListenerOptions::max_qos); in local-only
  // mode the value given before any listener applies.
  s.max_qos = c.local_only ? c.max_qos : 2;
  s.max_topic_alias = c.max_topic_alias;
  s.allow_zero_length_clientid = c.allow_zero_length_clientid;
  s.auto_id_prefix = c.auto_id_prefix;
  s.refuse_cross_user_takeover = c.refuse_cross_user_takeover;
  s.version = std::string("midge version ") + kVersion;
  return s;
}

// The listeners Midge opens: the configured ones, or localhost 1883 in
// local-only mode.
std::vector<config::Listener> listeners_to_open(const config::Config& cfg) {
  if (!cfg.local_only) return cfg.listeners;
  config::Listener l;
  l.port = cfg.listeners.empty() ? 1883 : cfg.listeners.front().port;
  l.address = "127.0.0.1";
  config::Listener l6 = l;
  l6.address = "::1";
  return {l, l6};
}

// realpath of a listener's http_dir, which must be a directory.
bool resolve_http_dir(const std::string& dir, std::string& out) {
  char* real = ::realpath(dir.c_str(), nullptr);
  if (!real) return false;
  out = real;
  std::free(real);
  struct stat st {};
  return ::stat(out.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// The password and ACL files of the broker, or of each listener with
// per_listener_settings.
struct AccessFiles {
  PasswordFiles passwords;
  AclFiles acls;
};

// per_listener_settings: the listener's own password file, acl_file and
// allow_anonymous (unset: false, as Mosquitto 2.0 with a listener
// configured). Null without per_listener_settings, or when a file cannot be
// read (`unreadable` is then set to the exit code).
std::shared_ptr<const broker::AccessPolicy> listener_access(const config::Config& cfg, const config::Listener& l,
                                                            AccessFiles& files, int& unreadable) {
  if (!cfg.per_listener_settings || cfg.local_only) return nullptr;
  auto policy = std::make_shared<broker::AccessPolicy>();
  policy->allow_anonymous = l.allow_anonymous.value_or(false);
  if (!l.password_file.empty()) {
    policy->authenticator = files.passwords.get(l.password_file);
    if (!policy->authenticator) unreadable = 13;
  }
  if (!l.acl_file.empty()) {
    policy->authorizer = files.acls.get(l.acl_file);
    if (!policy->authorizer) unreadable = 3;
  }
  return policy;
}

// Opens every listener. Returns 0, or the exit code after logging why one
// cannot open (13: a password file that cannot be read, as Mosquitto; 3: a
// bad acl_file, like any configuration error).
int open_listeners(const config::Config& cfg, std::vector<std::unique_ptr<net::Worker>>& workers,
                   AccessFiles& files, std::vector<std::unique_ptr<net::Listener>>& out,
                   const net::Listener::Say& say) {
  for (const config::Listener& l : listeners_to_open(cfg)) {
    const std::string where = l.file + ":" + std::to_string(l.line);
    const bool websocket = l.protocol == "websockets";
    if (l.protocol != "mqtt" && !websocket && l.protocol != "http") {
      say("Warning: " + where + ": protocol " + l.protocol + " is not supported by this build yet; listener on port " +
          std::to_string(l.port) + " skipped.");
      continue;
    }
    net::ListenerOptions o;
    o.port = l.port;
    o.address = l.address;
    o.socket_domain = l.socket_domain;
    o.websocket = websocket;
    o.http = l.protocol == "http";
    o.max_connections = l.max_connections;
    o.where = where;
    o.mount_point = l.mount_point;
    // As Mosquitto: a missing directory stops the broker.
    if (websocket && !l.http_dir.empty() && !resolve_http_dir(l.http_dir, o.http_dir)) {
      say("Error: Unable to open http dir \"" + l.http_dir + "\".");
      say("Error: Unable to create websockets listener on port " + std::to_string(l.port) + ".");
      return 1;
    }
    std::string error;
    o.tls = listener_tls(cfg, l, error);
    if (!error.empty()) {
      say("Error: " + where + ": listener on port " + std::to_string(l.port) + ": " + error + ".");
      return 1;
    }
    int unreadable = 0;
    o.access = listener_access(cfg, l, files, unreadable);
    if (unreadable != 0) return unreadable;
    if (l.use_identity_as_username) o.identity_as_username = net::PeerIdentity::kIdentity;
    if (l.use_subject_as_username) o.identity_as_username = net::PeerIdentity::kSubject;
    o.username_as_client_id = l.use_username_as_clientid;
    o.max_qos = l.max_qos;
    auto listener = std::make_unique<net::Listener>(std::move(o), workers);
    if (std::string e = listener->open(cfg.local_only, say); !e.empty()) {
      say("Error: " + e);
      return 1;
    }
    out.push_back(std::move(listener));
  }
  if (std::none_of(out.begin(), out.end(), [](const auto& l) { return l->listening(); })) {
    say("Error: Unable to open any listening socket.");
    return 1;
  }
  return 0;
}

// SIGHUP: every TLS listener re-reads its certificates, key, CA, CRL and PSK
// keys; connected clients keep their sessions. A file that cannot be read
// keeps the listener's previous context.
void reload_tls(const std::vector<std::unique_ptr<net::Listener>>& listeners, const net::Listener::Say& say) {
  for (const auto& l : listeners) {
    if (!l->tls()) continue;
    std::string error;
    if (l->options().tls->reload(error)) continue;
    say("Error: " + l->options().where + ": TLS files of the listener on port " + std::to_string(l->options().port) +
        " not reloaded, keeping the previous ones: " + error + ".");
  }
}

// O_NOFOLLOW: started as root, Midge must not write through a symbolic link that the owner of the
// pid file's directory planted there (security review M7). False (logged) when it cannot be
// written: like Mosquitto, the broker then does not start.
bool write_pid_file(const std::string& path, Logger& log) {
  if (path.empty()) return true;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
  const std::string text = std::to_string(getpid()) + "\n";
  const bool ok = fd >= 0 && ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  const int error = errno;
  if (fd >= 0) ::close(fd);
  if (!ok) log.log("Error: Unable to write pid file " + path + ": " + std::strerror(error) + ".");
  return ok;
}

// The user Midge runs as once started as root: `user` ("midge" by default). Null when it stays
// as it is (not started as root, or `user root`) or cannot switch (`error` then says why).
struct Identity {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
};
std::optional<Identity> target_identity(const std::string& user, Logger& log, std::string& error) {
  if (geteuid() != 0) return std::nullopt;
  if (user == "root") {
    log.log("Warning: running as root, as option 'user root' asks.");
    return std::nullopt;
  }
  // As Mosquitto 2.0: the default user, if missing, falls back to nobody; another is an error.
  std::string name = user;
  const passwd* pw = ::getpwnam(name.c_str());
  if (!pw && name != "midge") {
    error = "Error: Unable to drop privileges to '" + name + "' because this user does not exist.";
    return std::nullopt;
  }
  if (!pw) {
    log.log("Warning: Unable to drop privileges to '" + name +
            "' because this user does not exist. Trying 'nobody' instead.");
    name = "nobody";
    pw = ::getpwnam(name.c_str());
  }
  if (!pw) {
    error = "Error: Unable to drop privileges to 'nobody'.";
    return std::nullopt;
  }
  return Identity{name, pw->pw_uid, pw->pw_gid};
}

// Started as root: switch to `who` once the listeners, the log, the pid file and the store are
// open. What is written later (the store's new files, a log file reopened on SIGHUP) must be
// theirs: the store directory and the log files Midge created are handed over first.
bool drop_privileges(const Identity& who, Logger& log, const std::string& store_dir) {
  log.hand_over(who.uid, who.gid);
  if (!store_dir.empty() && !hand_over_store(store_dir, who.uid, who.gid)) {
    log.log("Error: cannot give the store " + store_dir + " to user '" + who.name + "': " + std::strerror(errno) + ".");
    return false;
  }
  if (::initgroups(who.name.c_str(), who.gid) != 0 || ::setgid(who.gid) != 0 || ::setuid(who.uid) != 0) {
    log.log("Error: cannot switch to user '" + who.name + "': " + std::strerror(errno) + ".");
    return false;
  }
  // The store's files stay open, but RocksDB creates new ones (the next log, tables) later: a
  // directory the user cannot reach (a parent it may not enter) would fail at the first of them.
  if (!store_dir.empty() && ::faccessat(AT_FDCWD, store_dir.c_str(), W_OK | X_OK, AT_EACCESS) != 0) {
    log.log("Error: user '" + who.name + "' cannot write the store " + store_dir + ": " + std::strerror(errno) +
            " (check the permissions of every directory above it).");
    return false;
  }
  log.log("Running as user '" + who.name + "'.");
  return true;
}

}  // namespace

// The configuration file (-c), or the defaults; -p overrides the port.
// False after printing the error (file, line, what is wrong).
bool load_config(const Options& opt, config::Config& cfg) {
  if (!opt.config_file.empty()) {
    auto loaded = config::load_file(opt.config_file);
    if (auto* err = std::get_if<config::Error>(&loaded)) {
      std::fprintf(stderr, "Error: %s\n", err->to_string().c_str());
      return false;
    }
    cfg = std::get<config::Config>(std::move(loaded));
  } else {
    cfg = std::get<config::Config>(config::parse_string("", "<default>"));
  }
  if (opt.port > 0) config::apply_port_override(cfg, static_cast<uint16_t>(opt.port));
  return true;
}

// SIGHUP: the configuration file again. Null (logged) when it cannot be
// read or has an error: then nothing changes.
std::optional<config::Config> reread_config(const Options& opt, const net::Listener::Say& say) {
  if (opt.config_file.empty()) return std::nullopt;
  auto loaded = config::load_file(opt.config_file);
  if (auto* err = std::get_if<config::Error>(&loaded)) {
    say("Error: " + err->to_string());
    say("Error: configuration not reloaded; everything stays as it was.");
    return std::nullopt;
  }
  config::Config cfg = std::get<config::Config>(std::move(loaded));
  if (opt.port > 0) config::apply_port_override(cfg, static_cast<uint16_t>(opt.port));
  return cfg;
}

// Applies what can change while running (see reload.h) and says what
// changed and what needs a restart.
void apply_config(const config::Config& before, const config::Config& after, AccessFiles& files,
                  std::vector<std::unique_ptr<net::Worker>>& workers, const net::Listener::Say& say) {
  const ConfigChanges changes = compare_configs(before, after);
  for (const std::string& w : after.warnings) {
    if (std::find(before.warnings.begin(), before.warnings.end(), w) == before.warnings.end()) say("Warning: " + w);
  }
  for (const std::string& line : changes.restart) say("Warning: configuration change not applied until a restart: " + line + ".");
  if (!changes.applied.empty()) {
    std::string list;
    for (const std::string& line : changes.applied) list += (list.empty() ? "" : "; ") + line;
    say("Configuration reloaded: " + list + ".");
  }
  if (!after.per_listener_settings && !before.password_file.empty() && !after.password_file.empty()) {
    files.passwords.rename(before.password_file, after.password_file);
  }
  if (!after.per_listener_settings && !before.acl_file.empty() && !after.acl_file.empty()) {
    files.acls.rename(before.acl_file, after.acl_file);
  }
  const broker::Settings settings = make_settings(after);
  for (auto& w : workers) {
    net::Worker* worker = w.get();
    worker->loop().post([worker, settings] { worker->broker().apply_settings(settings); });
  }
}

// The `log_type` set (util::LogType bits): Mosquitto's default set when none is given; -v: all.
uint32_t log_types(const config::Config& cfg, bool verbose) {
  if (verbose) return util::kAllLogTypes;
  if (cfg.log_type.empty()) return util::kDefaultLogTypes;
  uint32_t types = 0;
  for (const std::string& word : cfg.log_type) types |= util::log_types_of(word);
  return types;
}

void set_log_types(Logger& log, broker::SharedState& shared, uint32_t types) {
  log.set_types(types);
  shared.log_types.store(types, std::memory_order_relaxed);
}

sigset_t block_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  return signals;
}

// The main thread's life once the workers run: flushes the log every
// 100 ms (and calls `tick`), calls `reload` on SIGHUP, returns on SIGINT or
// SIGTERM. A SIGHUP is counted in `reloads_begun` while it is still pending
// (seen through a signalfd, not yet read), so that workers, which hold back
// CONNECTs while either is true (net::Worker::reload_pending), never miss it.
// `fd` is a signalfd of the blocked signals, made at start-up with the
// process's other lasting descriptors, before any client can connect.
void wait_for_stop(int fd, Logger& log, const std::function<void()>& tick, const std::function<void()>& reload,
                   std::atomic<uint64_t>& reloads_begun) {
  while (true) {
    pollfd ready{fd, POLLIN, 0};
    const int n = ::poll(&ready, 1, 100);
    log.flush();
    tick();
    if (n <= 0) continue;  // timeout (or EINTR): just the periodic log flush
    sigset_t pending;
    if (::sigpending(&pending) == 0 && sigismember(&pending, SIGHUP) == 1) {
      reloads_begun.fetch_add(1, std::memory_order_acq_rel);
    }
    signalfd_siginfo info{};
    if (::read(fd, &info, sizeof info) != static_cast<ssize_t>(sizeof info)) continue;
    const int sig = static_cast<int>(info.ssi_signo);  // SIGHUP, the lowest, is read first
    if (sig == SIGHUP) {
      reload();
      continue;
    }
    ::close(fd);
    systemd::stopping();
    log.log(std::string("midge received signal ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") + ", stopping.");
    return;
  }
}

int run(int argc, char** argv) {
  Options opt;
  if (int rc = parse_args(argc, argv, opt); rc >= 0) return rc;
  if (opt.test_config) return test_config(opt.config_file);

  config::Config cfg;
  if (!load_config(opt, cfg)) return 3;
  // Signals are handled by this (main) thread only: blocked before any
  // other thread exists (workers, the password hashing pool, RocksDB's
  // background threads), which inherit the mask; a thread that did not
  // block SIGTERM would take it with its default action and end the
  // process without a clean stop. wait_for_stop() takes them here.
  const sigset_t signals = block_signals();
  const int signal_fd = ::signalfd(-1, &signals, SFD_CLOEXEC);
  if (signal_fd < 0) {
    std::fprintf(stderr, "Error: signalfd: %s.\n", std::strerror(errno));
    return 1;
  }

  Logger log;
  if (std::string err = log.configure(opt.verbose ? std::vector<std::string>{} : cfg.log_dest, cfg.log_timestamp,
                                     cfg.log_timestamp_format, cfg.log_facility);
      !err.empty()) {
    std::fprintf(stderr, "Error: %s\n", err.c_str());
    return 1;
  }
  log.set_types(log_types(cfg, opt.verbose));
  auto say = [&log](const std::string& line) { log.log(line); };
  auto typed_say = [&log](util::LogType type, const std::string& line) { log.log(type, line); };
  say(std::string("midge version ") + kVersion + " starting");
  say(opt.config_file.empty() ? "Using default config." : "Config loaded from " + opt.config_file + ".");
  for (const std::string& w : cfg.warnings) say("Warning: " + w);
  if (cfg.local_only) {
    say("Starting in local only mode. Connections will only be possible from clients running on this machine.");
    say("Create a configuration file which defines a listener to allow remote access.");
  }
  raise_file_limit();
  std::string user_error;
  const std::optional<Identity> identity = target_identity(cfg.user, log, user_error);
  if (!user_error.empty()) {
    say(user_error);
    return 1;
  }

  HeapTrimmer heap;
  broker::SharedState shared(make_settings(cfg));
  shared.start_time = Clock::now();
  set_log_types(log, shared, log_types(cfg, opt.verbose));
  // Like Mosquitto, a password file that cannot be read stops the start-up
  // (with its exit code 13); bad lines in it only drop those users. An
  // acl_file that cannot be read or has a bad line stops it too.
  AccessFiles files{PasswordFiles(say), AclFiles(say)};
  if (!cfg.password_file.empty()) {
    shared.authenticator = files.passwords.get(cfg.password_file);
    if (!shared.authenticator) return 13;
  }
  if (!cfg.acl_file.empty()) {
    shared.authorizer = files.acls.get(cfg.acl_file);
    if (!shared.authorizer) return 3;
  }
  unsigned threads = cfg.thread_count != 0 ? cfg.thread_count : std::max(1u, std::thread::hardware_concurrency());
  if (cfg.persistence && threads > 255) {
    // The store names workers in one byte (Journal::Receiver).
    say("Warning: with persistence, at most 255 worker threads: using 255.");
    threads = 255;
  }
  // Declared before the workers so that they are destroyed after them: a
  // listener's connection counter must outlive every ListenerSlot, some of
  // which may still wait in a worker's mailbox at shutdown (review L2).
  // The store outlives the workers, whose journals write into it.
  std::unique_ptr<broker::Store> store;
  std::vector<std::unique_ptr<net::Listener>> listeners;
  std::vector<std::unique_ptr<net::Worker>> workers;
  for (unsigned i = 0; i < threads; ++i) workers.push_back(std::make_unique<net::Worker>(i, shared, workers, typed_say));
  for (auto& w : workers) shared.worker_stats.push_back(&w->stats());
  if (cfg.persistence) {
    store = open_store(cfg, say);
    // per_listener_settings: each listener's acl_file, by port, for the
    // retained messages kept with their source (check_retain_source).
    const ListenerRules listener_rules = [&](uint16_t port) -> std::shared_ptr<broker::Authorizer> {
      if (!cfg.per_listener_settings) return nullptr;
      for (const config::Listener& l : cfg.listeners) {
        if (l.port == port && !l.acl_file.empty()) return files.acls.get(l.acl_file);
      }
      return nullptr;
    };
    if (!store || !recover(*store, shared, workers, say, listener_rules)) return 1;
  }
  if (int code = open_listeners(cfg, workers, files, listeners, say); code != 0) return code;

  if (opt.daemon && daemon(1, 0) != 0) {
    say("Error: cannot daemonize.");
    return 1;
  }
  if (!write_pid_file(cfg.pid_file, log)) return 1;
  if (identity && !drop_privileges(*identity, log, cfg.persistence ? store_path(cfg) : "")) return 1;

  for (auto& w : workers) w->start();
  // `log_dest topic`: worker 0 publishes each line on $SYS/broker/log/... (Broker::publish_log).
  net::Worker* first = workers[0].get();
  log.set_topic_sink([first](util::LogType type, const std::string& line) {
    first->loop().post([first, type, line] { first->broker().publish_log(type, line, Clock::now()); });
  });
  say(std::string("midge version ") + kVersion + " running");
  log.flush();  // start-up lines go out at once
  systemd::ready();
  config::Config current = cfg;
  wait_for_stop(signal_fd, log, [&] {
    heap.tick(shared);
  }, [&] {
    systemd::reloading();
    // Whichever way the reload ends: each worker, once it has run what the
    // reload posted, lets the CONNECTs it held meanwhile go on.
    struct ReadyAgain {
      std::vector<std::unique_ptr<net::Worker>>& workers;
      uint64_t count;
      ~ReadyAgain() {
        for (auto& w : workers) {
          net::Worker* worker = w.get();
          worker->loop().post([worker, n = count] { worker->reload_applied(n); });
        }
        systemd::ready();
      }
    } ready_again{workers, shared.reloads_begun.load(std::memory_order_acquire)};
    log.reopen();
    say("Received SIGHUP: log files re-opened.");
    std::optional<config::Config> next;
    if (!opt.config_file.empty()) {
      next = reread_config(opt, say);
      if (!next) return;
      apply_config(current, *next, files, workers, say);
      const bool logging_changed = next->log_dest != current.log_dest || next->log_timestamp != current.log_timestamp ||
                                   next->log_timestamp_format != current.log_timestamp_format ||
                                   next->log_facility != current.log_facility;
      if (logging_changed && !opt.verbose) {
        if (std::string err = log.configure(next->log_dest, next->log_timestamp, next->log_timestamp_format, next->log_facility);
            !err.empty()) {
          say("Error: " + err + "; logging stays as it was.");
        } else {
          say(std::string("midge version ") + kVersion + ": log destinations reloaded from " + opt.config_file + ".");
        }
      }
      if (!opt.verbose) set_log_types(log, shared, log_types(*next, false));
      current = std::move(*next);
    }
    files.passwords.reload();
    const bool renew = files.acls.reload();
    // After the settings posted by apply_config: each loop runs its tasks in order.
    for (auto& w : workers) {
      net::Worker* worker = w.get();
      worker->loop().post([worker, renew] {
        if (renew) worker->broker().renew_access();
        worker->broker().revalidate(Clock::now());
      });
    }
    reload_tls(listeners, say);
  }, shared.reloads_begun);
  log.set_topic_sink(nullptr);  // no line may be posted to a stopped worker
  workers[0]->loop().post([&listeners] {
    for (auto& l : listeners) l->close();
  });
  for (auto& w : workers) w->stop();
  for (auto& w : workers) w->join();
  files.passwords.stop();  // no answer may reach a destroyed worker
  if (!cfg.pid_file.empty()) ::unlink(cfg.pid_file.c_str());
  say(std::string("midge version ") + kVersion + " terminating");
  return 0;
}

}  // namespace midge::server
