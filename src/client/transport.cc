#include "client/transport.h"

#include <poll.h>

#include <cerrno>
#include <cstring>

#include "client/socket.h"
#include "client/tls_transport.h"
#include "client/ws_transport.h"

namespace midge::client {

ssize_t read_append(Transport& transport, std::string& buffer, size_t& consumed, Error& error) {
  constexpr size_t kReadChunk = 64 * 1024;
  if (consumed > 0 && consumed == buffer.size()) {
    buffer.clear();
    consumed = 0;
  }
  const size_t old = buffer.size();
  buffer.resize(old + kReadChunk);
  const ssize_t got = transport.read(buffer.data() + old, kReadChunk, error);
  buffer.resize(old + (got > 0 ? static_cast<size_t>(got) : 0));
  return got;
}

short Transport::read_wait_events() const { return POLLIN; }
short Transport::write_wait_events() const { return POLLOUT; }

bool wait_fd(int fd, short events, Deadline deadline, Error& error) {
  for (;;) {
    pollfd pfd{fd, events, 0};
    int n = poll(&pfd, 1, poll_timeout(deadline));
    if (n > 0) return true;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error.kind = ErrorKind::kSystem;
      error.sys_errno = errno;
      error.message = std::strerror(errno);
      return false;
    }
    error.kind = ErrorKind::kTimeout;
    error.sys_errno = ETIMEDOUT;
    error.message = std::strerror(ETIMEDOUT);
    return false;
  }
}

bool write_all(Transport& t, const std::string& data, Deadline deadline, Error& error) {
  size_t sent = 0;
  while (sent < data.size() || t.has_pending_output()) {
    ssize_t n = t.write(data.data() + sent, data.size() - sent, error);
    if (n < 0) return false;
    sent += static_cast<size_t>(n);
    if (n == 0 && !wait_fd(t.fd(), t.write_wait_events(), deadline, error)) return false;
  }
  return true;
}

bool read_more(Transport& t, std::string& into, Deadline deadline, Error& error) {
  char buf[4096];
  for (;;) {
    if (!t.has_buffered_input() && !wait_fd(t.fd(), t.read_wait_events(), deadline, error)) {
      return false;
    }
    ssize_t n = t.read(buf, sizeof buf, error);
    if (n < 0) return false;
    if (n > 0) {
      into.append(buf, static_cast<size_t>(n));
      return true;
    }
  }
}

TransportPtr open_transport(const ConnectOptions& options, Deadline deadline, Error& error) {
  int fd = open_connection(options, deadline, error);
  if (fd < 0) return nullptr;
  TransportPtr transport = make_tcp_transport(fd);
  // TLS settings are loaded once TCP is up, as libmosquitto does: an
  // unreachable broker is reported before a bad cipher list or key.
  if (options.tls.enabled) {
    std::unique_ptr<TlsContext> tls = TlsContext::create(options.tls, error);
    if (!tls) return nullptr;
    transport = tls->handshake(std::move(transport), options.host, deadline, error);
    if (!transport) return nullptr;
  }
  if (options.websocket.enabled) {
    transport = websocket_handshake(std::move(transport), options, deadline, error);
  }
  return transport;
}

}  // namespace midge::client
