#include "server/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <sys/resource.h>
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
#include <string>
#include <thread>
#include <vector>

#include "auth/password_authenticator.h"
#include "auth/password_file.h"
#include "broker/shared_state.h"
#include "config/config.h"
#include "net/worker.h"
#include "server/heap.h"
#include "server/logger.h"

namespace midge::server {
namespace {

constexpr const char* kVersion = "0.1.0";

struct Options {
  std::string config_file;
  int port = -1;
  bool verbose = false;
  bool daemon = false;
  bool help_config = false;  // print the option table and exit
};

void usage(FILE* out) {
  std::fprintf(out,
               "midge version %s\n\n"
               "midge is an MQTT 5.0/3.1.1/3.1 broker.\n\n"
               "Usage: midge [-c config_file] [-d] [-h] [-p port] [-v]\n"
               "       midge --help-config [markdown]\n\n"
               " -c : specify the broker config file.\n"
               " -d : put the broker into the background after starting.\n"
               " -h : display this help.\n"
               " --help-config : list every configuration option, its default and whether\n"
               "      Midge applies it, warns that it does not, or refuses to start with it.\n"
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
    } else if (a == "--help-config") {
      const bool markdown = i + 1 < argc && std::string(argv[i + 1]) == "markdown";
      std::fputs((markdown ? config::describe_applied_markdown() : config::describe_options()).c_str(), stdout);
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
  s.max_inflight_messages = c.max_inflight_messages;
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
  s.max_qos = c.max_qos;  // the lowest of the listeners' (config/parser.cc)
  s.max_topic_alias = c.max_topic_alias;
  s.allow_zero_length_clientid = c.allow_zero_length_clientid;
  s.auto_id_prefix = c.auto_id_prefix;
  s.refuse_cross_user_takeover = c.refuse_cross_user_takeover;
  s.version = std::string("midge version ") + kVersion;
  return s;
}

// One address a listener binds.
struct Endpoint {
  sockaddr_storage addr{};
  socklen_t len = 0;
  bool v6 = false;
};

Endpoint any_address(bool v6, uint16_t port) {
  Endpoint e;
  e.v6 = v6;
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&e.addr);
    a->sin6_family = AF_INET6;
    a->sin6_addr = in6addr_any;
    a->sin6_port = htons(port);
    e.len = sizeof(sockaddr_in6);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&e.addr);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_ANY);
    a->sin_port = htons(port);
    e.len = sizeof(sockaddr_in);
  }
  return e;
}

// Addresses one `listener` binds: all interfaces (IPv4 and IPv6) or what
// ADDRESS resolves to.
std::vector<Endpoint> resolve(const config::Listener& l, std::string& error) {
  std::vector<Endpoint> out;
  if (l.address.empty()) {
    if (l.socket_domain != "ipv6") out.push_back(any_address(false, l.port));
    if (l.socket_domain != "ipv4") out.push_back(any_address(true, l.port));
    return out;
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  hints.ai_family = l.socket_domain == "ipv4" ? AF_INET : l.socket_domain == "ipv6" ? AF_INET6 : AF_UNSPEC;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(l.port);
  if (int rc = getaddrinfo(l.address.c_str(), port.c_str(), &hints, &res); rc != 0) {
    error = "cannot resolve listener address '" + l.address + "': " + gai_strerror(rc);
    return out;
  }
  for (addrinfo* r = res; r; r = r->ai_next) {
    Endpoint e;
    std::memcpy(&e.addr, r->ai_addr, r->ai_addrlen);
    e.len = r->ai_addrlen;
    e.v6 = r->ai_family == AF_INET6;
    const bool dup = std::any_of(out.begin(), out.end(), [&](const Endpoint& o) {
      return o.len == e.len && std::memcmp(&o.addr, &e.addr, e.len) == 0;
    });
    if (!dup) out.push_back(e);
  }
  freeaddrinfo(res);
  return out;
}

// A listening socket, served by worker 0's loop; accepted sockets go to the
// workers in turn.
class Acceptor final : public net::EventLoop::Handler {
 public:
  Acceptor(std::vector<std::unique_ptr<net::Worker>>& workers, int max_connections,
           std::shared_ptr<std::atomic<int>> open, bool websocket, std::string http_dir)
      : workers_(workers), max_connections_(max_connections), open_(std::move(open)), websocket_(websocket),
        http_dir_(std::move(http_dir)) {}
  ~Acceptor() override {
    if (fd_ >= 0) ::close(fd_);
  }

  std::string open(const Endpoint& e) {
    fd_ = ::socket(e.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return std::strerror(errno);
    const int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (e.v6) setsockopt(fd_, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (::bind(fd_, reinterpret_cast<const sockaddr*>(&e.addr), e.len) != 0 || ::listen(fd_, SOMAXCONN) != 0) {
      std::string err = std::strerror(errno);
      ::close(fd_);
      fd_ = -1;
      return err;
    }
    workers_[0]->loop().add(fd_, this, EPOLLIN);
    return "";
  }

  void on_io(uint32_t /*events*/) override {
    if (retrying_) return;  // the retry timer takes over
    if (!accept_all()) out_of_descriptors();
  }

  // Accepts every queued client; false when no descriptor was left.
  bool accept_all() {
    while (fd_ >= 0) {
      const int fd = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return !(errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM);
      }
      // max_connections counts this listener's open sockets (-1: no limit).
      if (max_connections_ >= 0 && open_->load(std::memory_order_relaxed) >= max_connections_) {
        ::close(fd);
        continue;
      }
      open_->fetch_add(1, std::memory_order_relaxed);
      net::Worker* target = workers_[next_++ % workers_.size()].get();
      auto slot = std::make_shared<net::ListenerSlot>(open_.get());
      target->loop().post([target, fd, slot, ws = websocket_, dir = http_dir_] {
        target->adopt_socket(fd, std::move(*slot), ws, dir);
      });
    }
    return true;
  }

  void close() {
    if (fd_ < 0) return;
    workers_[0]->loop().remove(fd_);
    ::close(fd_);
    fd_ = -1;
  }

 private:
  // The queue still holds clients but no descriptor is free: no new edge
  // would come for them, so accepting is retried on a timer (logged once
  // per episode) until descriptors are free again.
  void out_of_descriptors() {
    if (!retrying_) {
      workers_[0]->log(std::string("Warning: cannot accept connections: ") + std::strerror(errno) +
                       " (raise the open files limit, e.g. LimitNOFILE in the service, or lower max_connections);" +
                       " retrying.");
    }
    retrying_ = true;
    workers_[0]->loop().after(std::chrono::milliseconds(100), [this] {
      if (fd_ < 0) return;
      if (!accept_all()) {
        out_of_descriptors();
        return;
      }
      retrying_ = false;
      workers_[0]->log("Accepting connections again.");
    });
  }

  std::vector<std::unique_ptr<net::Worker>>& workers_;
  int max_connections_;
  std::shared_ptr<std::atomic<int>> open_;
  bool websocket_;  // MQTT over WebSockets (RFC 6455)
  std::string http_dir_;  // its http_dir after realpath, or empty
  int fd_ = -1;
  size_t next_ = 0;
  bool retrying_ = false;
};

// realpath of a listener's http_dir, which must be a directory.
bool resolve_http_dir(const std::string& dir, std::string& out) {
  char* real = ::realpath(dir.c_str(), nullptr);
  if (!real) return false;
  out = real;
  std::free(real);
  struct stat st {};
  return ::stat(out.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Reads the password file; null (after logging why) when it cannot be read.
std::shared_ptr<const auth::PasswordFile> read_password_file(const std::string& path,
                                                             const std::function<void(const std::string&)>& say) {
  std::vector<std::string> problems;
  std::string error;
  std::shared_ptr<const auth::PasswordFile> users = auth::PasswordFile::load(path, problems, error);
  for (const std::string& p : problems) say(p);
  if (!users) say("Error: " + error);
  return users;
}

// Password hashing threads: one on small machines, so that a flood of
// CONNECTs never takes more than one core from the workers.
auth::PasswordAuthenticator::Limits hashing_limits() {
  auth::PasswordAuthenticator::Limits limits;
  limits.threads = std::thread::hardware_concurrency() >= 4 ? 2 : 1;
  return limits;
}

// O_NOFOLLOW: started as root, Midge must not write through a symbolic link that the owner of the
// pid file's directory planted there (security review M7).
void write_pid_file(const std::string& path, Logger& log) {
  if (path.empty()) return;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
  const std::string text = std::to_string(getpid()) + "\n";
  const bool ok = fd >= 0 && ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  const int error = errno;
  if (fd >= 0) ::close(fd);
  if (!ok) log.log("Warning: Unable to write pid file " + path + ": " + std::strerror(error) + ".");
}

// `user NAME`: started as root, switch to that user once the listeners, the log and the pid file
// are open. An unknown user falls back to nobody, as in mosquitto. Without `user`, nothing changes.
bool drop_privileges(const std::optional<std::string>& user, Logger& log) {
  if (!user) return true;
  if (geteuid() != 0) {
    log.log("Not started as root: option 'user " + *user + "' has no effect.");
    return true;
  }
  if (*user == "root") {
    log.log("Warning: running as root, as option 'user root' asks.");
    return true;
  }
  std::string name = *user;
  const passwd* pw = ::getpwnam(name.c_str());
  if (!pw) {
    log.log("Warning: user '" + name + "' does not exist; switching to user 'nobody' instead.");
    name = "nobody";
    pw = ::getpwnam(name.c_str());
  }
  if (!pw) {
    log.log("Error: cannot drop privileges: user 'nobody' does not exist either.");
    return false;
  }
  const uid_t uid = pw->pw_uid;
  const gid_t gid = pw->pw_gid;
  if (::initgroups(name.c_str(), gid) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0) {
    log.log("Error: cannot switch to user '" + name + "': " + std::strerror(errno) + ".");
    return false;
  }
  log.log("Running as user '" + name + "'.");
  return true;
}

}  // namespace

int run(int argc, char** argv) {
  Options opt;
  if (int rc = parse_args(argc, argv, opt); rc >= 0) return rc;

  config::Config cfg;
  if (!opt.config_file.empty()) {
    auto loaded = config::load_file(opt.config_file);
    if (auto* err = std::get_if<config::Error>(&loaded)) {
      std::fprintf(stderr, "Error: %s\n", err->to_string().c_str());
      return 3;
    }
    cfg = std::get<config::Config>(std::move(loaded));
  } else {
    auto loaded = config::parse_string("", "<default>");
    cfg = std::get<config::Config>(std::move(loaded));
  }
  if (opt.port > 0) config::apply_port_override(cfg, static_cast<uint16_t>(opt.port));

  Logger log;
  if (std::string err = log.configure(opt.verbose ? std::vector<std::string>{} : cfg.log_dest, cfg.log_timestamp,
                                     cfg.log_timestamp_format);
      !err.empty()) {
    std::fprintf(stderr, "Error: %s\n", err.c_str());
    return 1;
  }
  auto say = [&log](const std::string& line) { log.log(line); };
  say(std::string("midge version ") + kVersion + " starting");
  say(opt.config_file.empty() ? "Using default config." : "Config loaded from " + opt.config_file + ".");
  for (const std::string& w : cfg.warnings) say("Warning: " + w);
  if (cfg.local_only) {
    say("Starting in local only mode. Connections will only be possible from clients running on this machine.");
    say("Create a configuration file which defines a listener to allow remote access.");
  }
  raise_file_limit();

  HeapTrimmer heap;
  broker::SharedState shared(make_settings(cfg));
  shared.start_time = Clock::now();
  // Like Mosquitto, a password file that cannot be read stops the start-up
  // (with its exit code 13); bad lines in it only drop those users.
  const std::string password_file = cfg.password_file;  // one for every listener (config/parser.cc)
  std::shared_ptr<auth::PasswordAuthenticator> passwords;
  if (!password_file.empty()) {
    auto users = read_password_file(password_file, say);
    if (!users) {
      say("Error opening password file \"" + password_file + "\".");
      return 13;
    }
    passwords = std::make_shared<auth::PasswordAuthenticator>(std::move(users), hashing_limits());
    shared.authenticator = passwords;
  }
  const unsigned threads = cfg.thread_count != 0 ? cfg.thread_count : std::max(1u, std::thread::hardware_concurrency());
  // Declared before the workers so that they are destroyed after them: a
  // listener's connection counter must outlive every ListenerSlot, some of
  // which may still wait in a worker's mailbox at shutdown (review L2).
  std::vector<std::unique_ptr<Acceptor>> acceptors;
  std::vector<std::unique_ptr<net::Worker>> workers;
  for (unsigned i = 0; i < threads; ++i) workers.push_back(std::make_unique<net::Worker>(i, shared, workers, say));
  for (auto& w : workers) shared.worker_stats.push_back(&w->stats());

  std::vector<config::Listener> listeners = cfg.listeners;
  if (cfg.local_only) {
    config::Listener l;
    l.port = listeners.empty() ? 1883 : listeners.front().port;
    l.address = "127.0.0.1";
    config::Listener l6 = l;
    l6.address = "::1";
    listeners = {l, l6};
  }
  for (const config::Listener& l : listeners) {
    // TLS options never reach here: the configuration is refused (config/options.cc, kTls).
    const bool websocket = l.protocol == "websockets";
    if (l.protocol != "mqtt" && !websocket) {
      say("Warning: " + l.file + ":" + std::to_string(l.line) + ": protocol " + l.protocol +
          " is not supported by this build yet; listener on port " + std::to_string(l.port) + " skipped.");
      continue;
    }
    if (l.port == 0) {
      say("Warning: " + l.file + ":" + std::to_string(l.line) + ": unix socket listeners are not supported yet; " +
          l.address + " skipped.");
      continue;
    }
    std::string http_dir;  // as Mosquitto: a missing directory stops the broker
    if (websocket && !l.http_dir.empty() && !resolve_http_dir(l.http_dir, http_dir)) {
      say("Error: Unable to open http dir \"" + l.http_dir + "\".");
      say("Error: Unable to create websockets listener on port " + std::to_string(l.port) + ".");
      return 1;
    }
    std::string err;
    auto endpoints = resolve(l, err);
    auto open = std::make_shared<std::atomic<int>>(0);  // shared by the listener's sockets
    if (!err.empty()) {
      say("Error: " + err);
      return 1;
    }
    for (const auto& ep : endpoints) {
      auto a = std::make_unique<Acceptor>(workers, l.max_connections, open, websocket, http_dir);
      const bool v6 = ep.v6;
      // Mosquitto logs a websockets listener once, whatever it binds.
      if (!websocket || &ep == &endpoints.front()) {
        say(std::string("Opening ") + (websocket ? "websockets" : v6 ? "ipv6" : "ipv4") + " listen socket on port " +
            std::to_string(l.port) + ".");
      }
      if (std::string e = a->open(ep); !e.empty()) {
        // A missing IPv6 stack is not fatal when IPv4 works.
        if (v6 && (l.address.empty() || cfg.local_only)) {
          say("Warning: cannot open ipv6 listen socket: " + e);
          continue;
        }
        say("Error: Unable to open listen socket on " + (l.address.empty() ? std::string("*") : l.address) +
            " port " + std::to_string(l.port) + ": " + e + ".");
        return 1;
      }
      acceptors.push_back(std::move(a));
    }
  }
  if (acceptors.empty()) {
    say("Error: Unable to open any listening socket.");
    return 1;
  }

  if (opt.daemon && daemon(1, 0) != 0) {
    say("Error: cannot daemonize.");
    return 1;
  }
  write_pid_file(cfg.pid_file, log);
  if (!drop_privileges(cfg.user, log)) return 1;

  // Signals are handled by this (main) thread only: block them before the
  // workers start so that they inherit the mask, then wait for them here.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  for (auto& w : workers) w->start();
  say(std::string("midge version ") + kVersion + " running");
  log.flush();  // start-up lines go out at once
  const timespec flush_period{0, 100'000'000};
  while (true) {
    const int sig = sigtimedwait(&signals, nullptr, &flush_period);
    log.flush();
    heap.tick(shared);
    if (sig < 0) continue;  // timeout (or EINTR): just the periodic log flush
    if (sig == SIGHUP) {
      say("Received SIGHUP: log files re-opened" +
          std::string(password_file.empty() ? "" : ", password file re-read") +
          " (other configuration changes need a restart).");
      log.reopen();
      // Mosquitto re-reads the password file on SIGHUP; so do we (from the
      // path given at start). A file that cannot be read keeps the old users.
      if (!password_file.empty()) {
        if (auto users = read_password_file(password_file, say)) {
          passwords->replace(std::move(users));
          say("Reloaded password file " + password_file + ".");
        } else {
          say("Error: password file " + password_file + " not reloaded; keeping the previous users.");
        }
      }
      continue;
    }
    say(std::string("midge received signal ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") + ", stopping.");
    break;
  }
  workers[0]->loop().post([&acceptors] {
    for (auto& a : acceptors) a->close();
  });
  for (auto& w : workers) w->stop();
  for (auto& w : workers) w->join();
  if (passwords) passwords->stop();  // no answer may reach a destroyed worker
  if (!cfg.pid_file.empty()) ::unlink(cfg.pid_file.c_str());
  say(std::string("midge version ") + kVersion + " terminating");
  return 0;
}

}  // namespace midge::server
