#include "client/socket.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace midge::client {
namespace {

using Time = std::chrono::steady_clock::time_point;

Error sys_error(int err) {
  Error e;
  e.kind = ErrorKind::kSystem;
  e.sys_errno = err;
  e.message = std::strerror(err);
  return e;
}

struct AddrInfoFree {
  void operator()(addrinfo* ai) const { freeaddrinfo(ai); }
};
using AddrInfoPtr = std::unique_ptr<addrinfo, AddrInfoFree>;

AddrInfoPtr resolve(const std::string& host, const char* service, bool passive, Error& error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if (passive) hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), service, &hints, &res);
  if (rc != 0) {
    error.kind = ErrorKind::kLookup;
    error.message = gai_strerror(rc);
    return nullptr;
  }
  return AddrInfoPtr(res);
}

bool bind_local(int fd, const std::string& address, int family, Error& error) {
  AddrInfoPtr local = resolve(address, nullptr, true, error);
  if (!local) return false;
  for (addrinfo* ai = local.get(); ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_family != family) continue;
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0) return true;
    error = sys_error(errno);
    return false;
  }
  error.kind = ErrorKind::kLookup;
  error.message = "no local address of the right family";
  return false;
}

// Non-blocking connect, then wait for writability until the deadline.
int connect_one(const sockaddr* addr, socklen_t len, int family, const ConnectOptions& options,
                Time deadline, Error& error) {
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = sys_error(errno);
    return -1;
  }
  if (!options.bind_address.empty() && family != AF_UNIX &&
      !bind_local(fd, options.bind_address, family, error)) {
    close(fd);
    return -1;
  }
  if (connect(fd, addr, len) != 0 && errno != EINPROGRESS) {
    error = sys_error(errno);
    close(fd);
    return -1;
  }
  pollfd pfd{fd, POLLOUT, 0};
  int n = 0;
  do {
    n = poll(&pfd, 1, poll_timeout(deadline));
  } while (n < 0 && errno == EINTR);
  int so_error = 0;
  socklen_t so_len = sizeof so_error;
  if (n == 0) {
    so_error = ETIMEDOUT;
  } else if (n < 0) {
    so_error = errno;
  } else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &so_len) != 0) {
    so_error = errno;
  }
  if (so_error != 0) {
    error = sys_error(so_error);
    if (n == 0) error.kind = ErrorKind::kTimeout;
    close(fd);
    return -1;
  }
  if (options.nodelay && family != AF_UNIX) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  return fd;
}

class TcpTransport final : public Transport {
 public:
  explicit TcpTransport(int fd) : fd_(fd) {}
  ~TcpTransport() override { close(fd_); }
  TcpTransport(const TcpTransport&) = delete;
  TcpTransport& operator=(const TcpTransport&) = delete;

  int fd() const override { return fd_; }

  ssize_t read(char* buf, size_t len, Error& error) override {
    ssize_t got = recv(fd_, buf, len, 0);
    if (got > 0) return got;
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return 0;
    if (got == 0) {
      error.kind = ErrorKind::kClosed;
      error.message = "connection closed by server";
    } else {
      error = sys_error(errno);
    }
    return -1;
  }

  ssize_t write(const char* buf, size_t len, Error& error) override {
    if (len == 0) return 0;
    ssize_t n = send(fd_, buf, len, MSG_NOSIGNAL);
    if (n >= 0) return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
    error = sys_error(errno);
    return -1;
  }

  void shutdown() override { ::shutdown(fd_, SHUT_WR); }

 private:
  int fd_;
};

}  // namespace

TransportPtr make_tcp_transport(int fd) { return std::make_unique<TcpTransport>(fd); }

int poll_timeout(Time deadline) {
  if (deadline == Time::max()) return -1;
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline -
                                                          std::chrono::steady_clock::now());
  if (left.count() <= 0) return 0;
  return left.count() > 1000000 ? 1000000 : static_cast<int>(left.count());
}

int open_connection(const ConnectOptions& options, Time deadline, Error& error) {
  if (!options.unix_path.empty()) {
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    if (options.unix_path.size() >= sizeof sun.sun_path) {
      error = sys_error(ENAMETOOLONG);
      return -1;
    }
    std::memcpy(sun.sun_path, options.unix_path.data(), options.unix_path.size());
    return connect_one(reinterpret_cast<const sockaddr*>(&sun), sizeof sun, AF_UNIX, options,
                       deadline, error);
  }
  std::string service = std::to_string(options.port);
  AddrInfoPtr addrs = resolve(options.host, service.c_str(), false, error);
  if (!addrs) return -1;
  for (addrinfo* ai = addrs.get(); ai != nullptr; ai = ai->ai_next) {
    int fd = connect_one(ai->ai_addr, ai->ai_addrlen, ai->ai_family, options, deadline, error);
    if (fd >= 0) {
      error = {};
      return fd;
    }
    if (error.kind == ErrorKind::kTimeout) break;
  }
  return -1;
}

}  // namespace midge::client
