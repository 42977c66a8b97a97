#include "midge_bench/conn.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

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

Conn::Conn(PacketHandler& handler, protocol::Version version, size_t read_buffer)
    : handler_(handler), version_(version), min_read_(read_buffer) {}

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
  return true;
}

void Conn::close_now() {
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

void Conn::on_readable() {
  if (fd_ < 0) return;
  if (in_.size() - in_len_ < min_read_ / 2) in_.resize(std::max(in_.size() * 2, min_read_));
  const ssize_t n = ::read(fd_, in_.data() + in_len_, in_.size() - in_len_);
  if (n == 0) return fail("closed by broker");
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return;
    return fail(std::strerror(errno));
  }
  in_len_ += static_cast<size_t>(n);
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
    return true;
  }
  size_t off = 0;
  while (off < out_.size()) {
    const ssize_t n = ::send(fd_, out_.data() + off, out_.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == ENOTCONN) break;  // ENOTCONN: connect in progress
      fail(std::strerror(errno));
      return true;
    }
    off += static_cast<size_t>(n);
  }
  out_.erase(0, off);
  return out_.empty();
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
    if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) conn->on_readable();
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
