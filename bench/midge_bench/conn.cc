#include "midge_bench/conn.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include <climits>
#include <cstring>
#include <ctime>
#include <stdexcept>

namespace midge::bench {

using protocol::DecodeStatus;
using protocol::PacketType;

int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

Conn::Conn(PacketHandler& handler, protocol::Version version, size_t read_buffer,
           const Link* link)
    : handler_(handler), version_(version), link_(link), min_read_(read_buffer) {}

Conn::~Conn() { close_now(); }

bool Conn::start_connect(const sockaddr_in& to, const sockaddr_in* source) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return false;
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (source != nullptr) {
    // Several 127.0.0.x sources give each one its own ephemeral port range.
    ::setsockopt(fd_, SOL_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (::bind(fd_, reinterpret_cast<const sockaddr*>(source), sizeof *source) != 0) {
      const int e = errno;
      close_now();
      errno = e;
      return false;
    }
  }
  if (::connect(fd_, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0 &&
      errno != EINPROGRESS) {
    const int e = errno;
    close_now();
    errno = e;
    return false;
  }
  if (link_ != nullptr && link_->ws()) {
    state_ = State::kWsUpgrade;
    wire_ = ws_upgrade_request(link_->host(), link_->ws_path(), ws_key_);
    rng_ ^= static_cast<uint64_t>(now_ns()) * 0x2545f4914f6cdd1dull + static_cast<uint64_t>(fd_);
  }
  if (link_ != nullptr && link_->tls() != nullptr) {
    ssl_ = link_->new_ssl(fd_);
    if (ssl_ == nullptr) {
      close_now();
      errno = ENOMEM;
      return false;
    }
    state_ = State::kTlsHandshake;
  }
  return true;
}

void Conn::close_now() {
  if (ssl_ != nullptr) SSL_free(ssl_);
  ssl_ = nullptr;
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  connected = false;
}

long parse_publish(std::string_view data, protocol::Version version, PublishView& out) {
  const auto* p = reinterpret_cast<const uint8_t*>(data.data());
  const size_t n = data.size();
  // Fixed header: type and flags, then the remaining length (1..4 bytes).
  size_t pos = 1;
  uint32_t length = 0;
  for (int shift = 0;; shift += 7) {
    if (pos >= n) return 0;
    if (shift > 21) return -1;
    const uint8_t b = p[pos++];
    length |= uint32_t{b & 0x7fu} << shift;
    if ((b & 0x80) == 0) break;
  }
  if (n - pos < length) return 0;
  const size_t end = pos + length;
  out.qos = (p[0] >> 1) & 3;
  out.retain = (p[0] & 1) != 0;
  out.dup = (p[0] & 8) != 0;
  if (out.qos == 3 || end - pos < 2) return -1;
  const size_t topic_len = (size_t{p[pos]} << 8) | p[pos + 1];
  pos += 2;
  if (end - pos < topic_len) return -1;
  out.topic = data.substr(pos, topic_len);
  pos += topic_len;
  out.packet_id = 0;
  if (out.qos > 0) {
    if (end - pos < 2) return -1;
    out.packet_id = static_cast<uint16_t>((p[pos] << 8) | p[pos + 1]);
    pos += 2;
  }
  if (version == protocol::Version::kV5) {
    uint32_t props = 0;
    for (int shift = 0;; shift += 7) {
      if (pos >= end || shift > 21) return -1;
      const uint8_t b = p[pos++];
      props |= uint32_t{b & 0x7fu} << shift;
      if ((b & 0x80) == 0) break;
    }
    if (end - pos < props) return -1;
    pos += props;
  }
  out.payload = data.substr(pos, end - pos);
  return static_cast<long>(end);
}

void Conn::fail(const char* why) {
  close_now();
  handler_.on_closed(*this, why);
}

namespace {

// The reason of the last TLS failure, kept for on_closed (single thread).
const char* tls_failure(const char* what) {
  static std::string text;
  char buf[256];
  const unsigned long e = ERR_get_error();
  if (e != 0) {
    ERR_error_string_n(e, buf, sizeof buf);
    text = std::string(what) + ": " + buf;
  } else {
    text = std::string(what) + (errno != 0 ? std::string(": ") + std::strerror(errno) : "");
  }
  return text.c_str();
}

}  // namespace

bool Conn::tls_handshake(bool& want_write) {
  ERR_clear_error();
  errno = 0;
  const int r = SSL_do_handshake(ssl_);
  if (r == 1) {
    state_ = link_->ws() ? State::kWsUpgrade : State::kReady;
    return true;
  }
  const int e = SSL_get_error(ssl_, r);
  if (e == SSL_ERROR_WANT_WRITE) want_write = true;
  if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) fail(tls_failure("TLS handshake"));
  return false;
}

long Conn::read_some(std::vector<char>& buf, size_t& len) {
  if (buf.size() - len < min_read_ / 2) buf.resize(std::max(buf.size() * 2, min_read_));
  const size_t room = std::min<size_t>(buf.size() - len, INT_MAX);
  if (ssl_ != nullptr) {
    ERR_clear_error();
    errno = 0;
    const int r = SSL_read(ssl_, buf.data() + len, static_cast<int>(room));
    if (r > 0) {
      len += static_cast<size_t>(r);
      return r;
    }
    const int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
    if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0)) {
      fail("closed by broker");
    } else {
      fail(tls_failure("TLS read"));
    }
    return -1;
  }
  const ssize_t n = ::read(fd_, buf.data() + len, room);
  if (n > 0) {
    len += static_cast<size_t>(n);
    return n;
  }
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
  fail(n == 0 ? "closed by broker" : std::strerror(errno));
  return -1;
}

long Conn::write_some(const char* data, size_t bytes, bool& want_write) {
  if (ssl_ != nullptr) {
    // A retry repeats the failed call's length [SSL_write(3)]; the bytes
    // are the same, the buffer may have moved or grown behind them.
    const size_t len = ssl_retry_ > 0 ? ssl_retry_ : std::min<size_t>(bytes, INT_MAX);
    ERR_clear_error();
    errno = 0;
    const int r = SSL_write(ssl_, data, static_cast<int>(len));
    if (r > 0) {
      ssl_retry_ = 0;
      return r;
    }
    ssl_retry_ = len;
    const int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_WANT_WRITE) want_write = true;
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) fail(tls_failure("TLS write"));
    return -1;
  }
  const ssize_t n = ::send(fd_, data, bytes, MSG_NOSIGNAL);
  if (n >= 0) return n;
  if (errno == EINTR) return 0;
  if (errno == EAGAIN || errno == ENOTCONN) {  // ENOTCONN: connect in progress
    want_write = true;
  } else {
    fail(std::strerror(errno));
  }
  return -1;
}

bool Conn::ws_input() {
  if (state_ == State::kWsUpgrade) {
    const std::string_view v(raw_.data(), raw_len_);
    const size_t end = v.find("\r\n\r\n");
    if (end == std::string_view::npos) {
      if (raw_len_ > 16384) fail("no end to the WebSocket upgrade response");
      return false;
    }
    if (!ws_upgrade_ok(v.substr(0, end + 4), ws_key_)) {
      fail("WebSocket upgrade refused");
      return false;
    }
    raw_len_ -= end + 4;
    std::memmove(raw_.data(), raw_.data() + end + 4, raw_len_);
    state_ = State::kReady;
  }
  bool closed = false;
  const long used = ws_unframe(std::string_view(raw_.data(), raw_len_), in_, in_len_, pings_,
                               closed);
  if (used < 0) {
    fail("malformed WebSocket frame from the broker");
    return false;
  }
  raw_len_ -= static_cast<size_t>(used);
  std::memmove(raw_.data(), raw_.data() + used, raw_len_);
  if (closed) {
    fail("WebSocket close from the broker");
    return false;
  }
  if (!pings_.empty()) {
    ws_frame(pings_, rng_, wire_, 0xA);  // pong [RFC 6455 5.5.3]
    pings_.clear();
  }
  return true;
}

void Conn::on_readable() {
  if (fd_ < 0) return;
  if (state_ == State::kTlsHandshake) {
    bool want_write = false;
    if (!tls_handshake(want_write)) return;
  }
  const bool ws = link_ != nullptr && link_->ws();
  for (;;) {
    const long n = ws ? read_some(raw_, raw_len_) : read_some(in_, in_len_);
    if (n <= 0) return;
    if (ws && !ws_input()) {
      if (fd_ < 0) return;
      continue;  // upgrade response incomplete: read on
    }
    decode_input();
    // Plain sockets are level-triggered; TLS may hold decrypted bytes
    // that epoll cannot see, so read it until it wants more.
    if (fd_ < 0 || ssl_ == nullptr) return;
  }
}

void Conn::decode_input() {
  const int64_t now = now_ns();
  size_t off = 0;
  while (off < in_len_ && fd_ >= 0) {
    const std::string_view rest(in_.data() + off, in_len_ - off);
    const auto type = static_cast<PacketType>(static_cast<uint8_t>(rest[0]) >> 4);
    if (type == PacketType::kPublish) {
      PublishView view;
      const long used = parse_publish(rest, version_, view);
      if (used == 0) break;
      if (used < 0) return fail("malformed PUBLISH from the broker");
      off += static_cast<size_t>(used);
      handler_.on_publish(*this, view, now);
      continue;
    }
    const auto r = protocol::decode(rest, version_, packet_);
    if (r.status == DecodeStatus::kNeedMore) break;
    if (r.status == DecodeStatus::kError) return fail(r.message);
    off += r.consumed;
    handler_.on_packet(*this, packet_, now);
  }
  if (fd_ < 0) return;
  if (off > 0) {
    std::memmove(in_.data(), in_.data() + off, in_len_ - off);
    in_len_ -= off;
  }
  // Give back a buffer that grew for one large packet once it is empty.
  if (in_len_ == 0 && in_.size() > 4 * min_read_) {
    in_.resize(min_read_);
    in_.shrink_to_fit();
  }
}

bool Conn::flush() {
  if (fd_ < 0) {
    out_.clear();
    wire_.clear();
    return true;
  }
  bool want_write = false;
  if (state_ == State::kTlsHandshake && !tls_handshake(want_write)) return !want_write;
  const bool ws = link_ != nullptr && link_->ws();
  // Everything produced this turn becomes one frame once the upgrade is done.
  if (ws && state_ == State::kReady && !out_.empty()) {
    ws_frame(out_, rng_, wire_);
    out_.clear();
  }
  std::string& bytes = ws ? wire_ : out_;
  size_t off = 0;
  while (off < bytes.size()) {
    const long n = write_some(bytes.data() + off, bytes.size() - off, want_write);
    if (n < 0) break;
    off += static_cast<size_t>(n);
  }
  if (fd_ < 0) return true;
  bytes.erase(0, off);
  return bytes.empty() || !want_write;
}

Loop::Loop() : epfd_(::epoll_create1(EPOLL_CLOEXEC)) {
  if (epfd_ < 0) throw std::runtime_error("epoll_create1 failed");
}

Loop::~Loop() { ::close(epfd_); }

void Loop::add(Conn& conn) {
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT;  // EPOLLOUT until the connect completes
  ev.data.ptr = &conn;
  conn.epollout = true;
  ::epoll_ctl(epfd_, EPOLL_CTL_ADD, conn.fd(), &ev);
}

void Loop::remove(Conn& conn) {
  if (conn.open()) ::epoll_ctl(epfd_, EPOLL_CTL_DEL, conn.fd(), nullptr);
}

void Loop::set_epollout(Conn& conn, bool on) {
  if (conn.epollout == on || !conn.open()) return;
  epoll_event ev{};
  ev.events = EPOLLIN | (on ? EPOLLOUT : 0u);
  ev.data.ptr = &conn;
  ::epoll_ctl(epfd_, EPOLL_CTL_MOD, conn.fd(), &ev);
  conn.epollout = on;
}

int Loop::turn(int timeout_ms) {
  flush_all();  // output produced since the last turn goes out before we sleep
  epoll_event events[256];
  const int n = ::epoll_wait(epfd_, events, 256, timeout_ms);
  for (int i = 0; i < n; ++i) {
    auto* conn = static_cast<Conn*>(events[i].data.ptr);
    if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
      conn->on_readable();
      // A read that completed a handshake (or brought a ping) releases output.
      if (conn->open() && conn->has_output()) mark(*conn);
    }
    if ((events[i].events & EPOLLOUT) && conn->open()) {
      if (conn->flush()) set_epollout(*conn, false);
    }
  }
  flush_all();
  return n < 0 ? 0 : n;
}

void Loop::flush_all() {
  // Index loop: a flush may fail a connection whose handler marks others.
  for (size_t i = 0; i < dirty_.size(); ++i) {
    Conn* conn = dirty_[i];
    conn->dirty = false;
    if (!conn->open()) continue;
    if (conn->epollout) continue;  // the kernel buffer is full; EPOLLOUT will resume
    if (!conn->flush()) set_epollout(*conn, true);
  }
  dirty_.clear();
}

}  // namespace midge::bench
