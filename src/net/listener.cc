#include "net/listener.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cerrno>
#include <cstring>

#include "net/connection.h"
#include "net/metrics.h"
#include "net/metrics_endpoint.h"
#include "net/tls.h"
#include "net/websocket.h"
#include "net/worker.h"

namespace midge::net {
namespace {

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
// `listener 0 PATH`: a unix socket.
Endpoint unix_address(const std::string& path, std::string& error) {
  Endpoint e;
  auto* a = reinterpret_cast<sockaddr_un*>(&e.addr);
  if (path.empty() || path.size() >= sizeof(a->sun_path)) {
    error = "unix socket path '" + path + "' is empty or longer than " + std::to_string(sizeof(a->sun_path) - 1) +
            " bytes";
    return e;
  }
  a->sun_family = AF_UNIX;
  std::memcpy(a->sun_path, path.data(), path.size());
  e.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  return e;
}

std::vector<Endpoint> resolve(const ListenerOptions& l, std::string& error) {
  std::vector<Endpoint> out;
  if (l.port == 0) {
    Endpoint e = unix_address(l.address, error);
    if (error.empty()) out.push_back(e);
    return out;
  }
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

}  // namespace

// A listening socket, served by worker 0's loop; accepted sockets go to the
// workers in turn.
class Acceptor final : public EventLoop::Handler {
 public:
  explicit Acceptor(Listener& listener) : listener_(listener), workers_(listener.workers_) {}
  ~Acceptor() override {
    if (fd_ >= 0) ::close(fd_);
  }

  std::string open(const Endpoint& e) {
    fd_ = ::socket(e.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return std::strerror(errno);
    const int one = 1;
    if (e.addr.ss_family == AF_UNIX) {
      unix_path_ = reinterpret_cast<const sockaddr_un*>(&e.addr)->sun_path;
      remove_stale_socket();
    } else {
      setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    }
    if (e.v6) setsockopt(fd_, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (::bind(fd_, reinterpret_cast<const sockaddr*>(&e.addr), e.len) != 0 || ::listen(fd_, SOMAXCONN) != 0) {
      std::string err = std::strerror(errno);
      ::close(fd_);
      fd_ = -1;
      unix_path_.clear();
      return err;
    }
    // Owner and group may connect, as Mosquitto's unix sockets.
    if (!unix_path_.empty()) ::chmod(unix_path_.c_str(), 0770);
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
      const int max = listener_.options_.max_connections;
      if (max >= 0 && listener_.open_connections.load(std::memory_order_relaxed) >= max) {
        ::close(fd);
        continue;
      }
      listener_.open_connections.fetch_add(1, std::memory_order_relaxed);
      Worker* target = workers_[listener_.next_worker_++ % workers_.size()].get();
      auto slot = std::make_shared<ListenerSlot>(&listener_);
      target->loop().post([target, fd, slot] { target->adopt_socket(fd, std::move(*slot)); });
    }
    return true;
  }

  void close() {
    if (fd_ < 0) return;
    workers_[0]->loop().remove(fd_);
    ::close(fd_);
    fd_ = -1;
    if (!unix_path_.empty()) ::unlink(unix_path_.c_str());
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

  // A socket file left by a broker that did not stop cleanly would make bind
  // fail; anything else at that path is left alone (bind then says why).
  void remove_stale_socket() const {
    struct stat st {};
    if (::lstat(unix_path_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(unix_path_.c_str());
  }

  Listener& listener_;
  std::vector<std::unique_ptr<Worker>>& workers_;
  int fd_ = -1;
  std::string unix_path_;  // unlinked when the listener closes
  bool retrying_ = false;
};


Listener::Listener(ListenerOptions options, std::vector<std::unique_ptr<Worker>>& workers)
    : options_(std::move(options)), workers_(workers), traffic_slot_(Worker::add_listener(workers, *this)) {}

std::string Listener::label() const {
  return options_.port == 0 ? options_.address : std::to_string(options_.port);
}

Listener::~Listener() = default;

std::string Listener::open(bool ipv6_optional, const Say& say) {
  std::string err;
  const std::vector<Endpoint> endpoints = resolve(options_, err);
  if (!err.empty()) return err;
  const char* kind = options_.websocket ? "websockets" : options_.http ? "http" : nullptr;
  for (const Endpoint& ep : endpoints) {
    if (options_.port == 0) {
      say("Opening unix listen socket on path " + options_.address + ".");
    } else if (!kind || &ep == &endpoints.front()) {  // Mosquitto logs a websockets listener once
      say(std::string("Opening ") + (kind ? kind : ep.v6 ? "ipv6" : "ipv4") + " listen socket on port " +
          std::to_string(options_.port) + ".");
    }
    auto a = std::make_unique<Acceptor>(*this);
    if (std::string e = a->open(ep); !e.empty()) {
      // A missing IPv6 stack is not fatal when IPv4 works.
      if (ep.v6 && (options_.address.empty() || ipv6_optional)) {
        say("Warning: cannot open ipv6 listen socket: " + e);
        continue;
      }
      if (options_.port == 0) return "Unable to open unix listen socket on path " + options_.address + ": " + e + ".";
      return "Unable to open listen socket on " + (options_.address.empty() ? std::string("*") : options_.address) +
             " port " + std::to_string(options_.port) + ": " + e + ".";
    }
    acceptors_.push_back(std::move(a));
  }
  return "";
}

void Listener::close() {
  for (auto& a : acceptors_) a->close();
}

std::unique_ptr<Transport> Listener::make_transport() const {
  std::unique_ptr<Transport> tls = options_.tls ? options_.tls->new_transport() : nullptr;
  if (options_.tls && !tls) return nullptr;
  if (options_.http) {
    // Rendered on the worker that accepted the scrape, from every worker's
    // counters (net/metrics.h says why no message goes between workers).
    auto http = std::make_unique<MetricsEndpoint>([&workers = workers_] { return metrics_text(workers); });
    return tls ? stack_transports(std::move(http), std::move(tls)) : std::move(http);
  }
  if (!options_.websocket) return tls;
  auto ws = std::make_unique<WebSocket>(options_.http_dir);
  if (!tls) return ws;
  return stack_transports(std::move(ws), std::move(tls));
}

}  // namespace midge::net
