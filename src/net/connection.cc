#include "net/connection.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "broker/broker.h"
#include "broker/session.h"
#include "net/worker.h"

namespace midge::net {

using protocol::DecodeStatus;
using protocol::ReasonCode;

namespace {

// A client that does not send CONNECT within this time is dropped.
constexpr auto kConnectTimeout = seconds(10);
// How long a closing connection may take to drain its output.
constexpr auto kCloseTimeout = seconds(5);
// Read at most this much from one socket per loop turn, so one flooding
// client cannot stall the others on its worker.
constexpr size_t kReadBudget = 256 * 1024;
// A split packet missing at least this much is read straight into in_.
constexpr size_t kDirectReadMin = 4096;
// Output buffers bigger than this are released once written.
// Largest packet accepted before CONNECT is accepted: an unauthenticated
// client cannot make the broker buffer and decode more than this. The
// largest legitimate CONNECT (client id, will topic and payload, user name
// and password, each up to 65535 bytes, and properties) fits.
constexpr uint32_t kMaxPacketBeforeConnect = 384 * 1024;
// After the broker ends a connection (with a reason the client should read)
// it half-closes and discards input for at most this long before closing:
// closing with unread input would make the kernel send a reset, which can
// destroy the reason still in flight to the client.
constexpr auto kDrainTime = seconds(2);
// A client whose output stays above the bound with no byte of it read for
// 1.5 x its keep alive (as if it had gone silent), or for this long when it
// has no keep alive, is disconnected.
constexpr auto kOutputStallTime = seconds(60);

// MQTT bytes un-wrapped from one read of a TLS or WebSocket connection.
thread_local std::string t_plain;

// Protocol level of a (possibly malformed) CONNECT, to answer it in its own
// version: 5 when the bytes say "MQTT" level 5.
bool looks_like_v5_connect(std::string_view data) {
  size_t i = 1;
  while (i < data.size() && i < 5 && (static_cast<uint8_t>(data[i]) & 0x80)) ++i;
  ++i;  // past the last remaining-length byte
  return data.size() > i + 6 && data.substr(i, 6) == std::string_view("\0\4MQTT", 6) &&
         data[i + 6] == 5;
}

// Client ids and user names may hold any character but U+0000: control
// characters (C0, DEL, C1) and backslashes are escaped so that a client
// cannot forge or garble log lines.
std::string escape_for_log(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  char hex[8];
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<uint8_t>(text[i]);
    const bool c1 = c == 0xC2 && i + 1 < text.size() && static_cast<uint8_t>(text[i + 1]) >= 0x80 &&
                    static_cast<uint8_t>(text[i + 1]) <= 0x9F;
    if (c < 0x20 || c == 0x7F || c == '\\') {
      std::snprintf(hex, sizeof(hex), "\\x%02x", c);
      out += hex;
    } else if (c1) {
      std::snprintf(hex, sizeof(hex), "\\u%04x", static_cast<uint8_t>(text[++i]));
      out += hex;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// Mosquitto's log line for an accepted CONNECT.
std::string describe_connect(const protocol::ConnectPacket& c, const std::string& peer) {
  const char* p = c.version == protocol::Version::kV31 ? "p1" : c.version == protocol::Version::kV311 ? "p2" : "p5";
  std::string line = "New client connected from " + peer + " as " + c.client_id + " (" + p +
                     ", c" + (c.clean_start ? "1" : "0") + ", k" + std::to_string(c.keep_alive);
  if (c.username) line += ", u'" + *c.username + "'";
  return line + ").";
}

}  // namespace

std::string Connection::peer() const {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (getpeername(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "unknown";
  if (addr.ss_family == AF_UNIX) {  // the client's end has no name: the listener's path, as Mosquitto
    len = sizeof(addr);
    if (getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "unknown";
    return std::string(reinterpret_cast<const sockaddr_un*>(&addr)->sun_path) + ":0";
  }
  char host[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  if (addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
    port = ntohs(a->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
    port = ntohs(a->sin6_port);
  }
  return std::string(host) + ":" + std::to_string(port);
}

Connection::Connection(Worker& worker, int fd, uint64_t id, ListenerSlot slot)
    : worker_(worker), fd_(fd), id_(id), slot_(std::move(slot)) {
  if (const Listener* listener = slot_.listener(); listener && !listener->options().mount_point.empty()) {
    mount = &listener->options().mount_point;
  }
  limits_.max_packet_size = std::min(packet_limit(), kMaxPacketBeforeConnect);
  if (const Listener* listener = slot_.listener()) {
    max_qos = listener->options().max_qos;
    traffic_slot = listener->traffic_slot();
  }
  // Output is already coalesced into one write per loop turn, so Nagle's
  // algorithm would only add latency.
  const int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  worker_.loop().add(fd_, this, EPOLLIN | EPOLLOUT | EPOLLRDHUP);
}

Connection::~Connection() {
  if (fd_ >= 0) ::close(fd_);
  if (own_block_) own_block_->release();
}

void Connection::start(std::string pending) {
  const TimePoint now = Clock::now();
  deadline_ = now + kConnectTimeout;
  worker_.watch_deadline(*this);
  in_ = std::move(pending);
  if (!in_.empty()) process_input(now);
  if (handover_) {
    complete_handover({});
    return;
  }
  // Edge-triggered: bytes that arrived before registration give no event.
  if (!closed_ && !closing_) on_readable();
}

void Connection::adopt(protocol::ConnectPacket&& connect, bool id_assigned, std::string pending) {
  const TimePoint now = Clock::now();
  deadline_ = now + kConnectTimeout;
  worker_.watch_deadline(*this);
  version = connect.version;
  in_ = std::move(pending);  // decoded once the CONNECT is accepted
  // Output queued by the previous owner (the 101 answer, a pong).
  if (transport_ && !transport_->wire().empty()) commit();
  if (check_credentials(std::move(connect), id_assigned, now) && connected_) resume_input(now);
}

void Connection::on_io(uint32_t events) {
  if (closed_) return;
  // Edge-triggered: data and the peer's FIN can come in one event, so once
  // the FIN is seen reads go on to EOF instead of stopping at a short read.
  if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) peer_fin_ = true;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) on_readable();
  if (closed_) return;
  if ((events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) && waiting_write_) {
    waiting_write_ = false;
    write_now();
  }
}

// Reads until the socket is drained (a short read or EAGAIN) or the turn's
// budget is spent, decoding as we go.
void Connection::on_readable() {
  if (closed_ || read_scheduled_) return;
  if (draining_) {
    drain_input();
    return;
  }
  if (closing_ || output_blocked_) return;
  if (worker_.worker_count() > 1 && worker_.peers_overloaded()) {
    read_scheduled_ = true;  // read again after a short pause
    worker_.pause_reading(*this);
    return;
  }
  size_t total = 0;
  // A packet split at the end of the last read, still in the block: moved
  // to the next block's start instead of into in_ (one copy, not two).
  std::string_view split;
  bool budget_spent = false;
  while (!budget_spent) {
    if (pending_bytes() > output_limit()) {  // replies back up: stop reading
      if (!split.empty()) keep_split(split, broker::InputBlock::kBorrowMin);
      block_reading();
      return;
    }
    if (own_block_) {
      // The rest of a packet larger than a block goes into its own block.
      // What follows goes into a block of the same size: streams of large
      // packets mostly repeat their size, so the next packet lands there
      // whole (routed from there) or split (its own block already).
      broker::InputBlock& own = *own_block_;
      const size_t missing = own.size() - own.filled;
      // (Only when the rest may come in this read: a read rarely brings
      // more than a block.)
      broker::InputBlock* next = missing < broker::InputBlock::kSize ? broker::InputBlock::make(own.size()) : nullptr;
      iovec iov[2] = {{own.data() + own.filled, missing}, {next ? next->data() : nullptr, next ? next->size() : 0}};
      const ssize_t n = ::readv(fd_, iov, next ? 2 : 1);
      const size_t requested = missing + (next ? next->size() : 0);
      if (n <= 0 && next) next->release();
      if (const ReadOutcome r = after_read(n, total); r != ReadOutcome::kOk) {
        if (r == ReadOutcome::kAgain) continue;
        return;
      }
      const size_t into_own = std::min(static_cast<size_t>(n), missing);
      own.filled += static_cast<uint32_t>(into_own);
      if (own.filled == own.size()) {
        own_block_ = nullptr;
        const TimePoint now = Clock::now();
        {
          const broker::InputBlock::Decoding decoding(&own);
          take_input(std::string_view(own.data(), own.size()), now);  // one whole packet
        }
        large_frame_ = own.size() > broker::InputBlock::kSize ? static_cast<uint32_t>(own.size()) : 0;
        own.release();  // its messages may keep it
        const size_t after = static_cast<size_t>(n) - into_own;
        if (!closed_ && !closing_ && after > 0) take_sized_read(std::exchange(next, nullptr), after, now, split);
      }
      if (next) next->release();
      if (!read_again(static_cast<size_t>(n), requested)) break;
      budget_spent = total >= kReadBudget;
      continue;
    }
    if (large_frame_ != 0 && split.empty() && in_.empty() && !transport_) {
      // This client sends packets larger than a block, all of one size so
      // far: the next one is read into a block of that size, where it is
      // whole or, split, in its own block already.
      broker::InputBlock* sized = broker::InputBlock::make(large_frame_);
      const ssize_t n = ::recv(fd_, sized->data(), sized->size(), 0);
      if (n <= 0) sized->release();
      if (const ReadOutcome r = after_read(n, total); r != ReadOutcome::kOk) {
        if (r == ReadOutcome::kAgain) continue;
        return;
      }
      const size_t requested = sized->size();
      take_sized_read(sized, static_cast<size_t>(n), Clock::now(), split);
      if (!read_again(static_cast<size_t>(n), requested)) break;
      budget_spent = total >= kReadBudget;
      continue;
    }
    // Reads land in this thread's input block: a large payload that comes
    // whole is then routed from there, not copied (broker/input_block.h).
    // A packet split by the previous read is first moved to the block's
    // start when it fits there, so that it is whole once the rest comes.
    // The rest of a larger one goes straight into in_ (then what follows it
    // into the block): its payload is then copied once, from in_ into its
    // message, instead of twice.
    broker::InputBlock& block = broker::InputBlock::writable(split);
    const size_t carried = split.empty() ? carry_split_packet(block) : split.size();
    split = {};
    const size_t room = carried > 0 ? 0 : direct_read_room();
    const size_t have = in_.size();
    ssize_t n;
    if (room > 0) {
      in_.resize(have + room);
      iovec iov[2] = {{in_.data() + have, room}, {block.data(), block.size()}};
      n = ::readv(fd_, iov, 2);
      in_.resize(have + (n > 0 ? std::min(static_cast<size_t>(n), room) : 0));
    } else {
      n = ::recv(fd_, block.data() + carried, block.size() - carried, 0);
    }
    if (n <= 0 && carried > 0) in_.assign(block.data(), carried);  // nothing came: back where it was
    if (const ReadOutcome r = after_read(n, total); r != ReadOutcome::kOk) {
      if (r == ReadOutcome::kAgain) continue;
      return;
    }
    if (transport_) [[unlikely]] {
      take_transport_input(std::string_view(block.data(), static_cast<size_t>(n)), Clock::now());
    } else {
      const broker::InputBlock::Decoding decoding(&block);
      if (room > 0) {
        take_direct_read(block, static_cast<size_t>(n), room, Clock::now());
      } else {
        take_input(std::string_view(block.data(), carried + static_cast<size_t>(n)), Clock::now(), &split);
      }
    }
    if (!read_again(static_cast<size_t>(n), room + block.size() - carried)) break;
    budget_spent = total >= kReadBudget;
  }
  // A split packet left in the block waits in a block of its own or in in_
  // unless the next read moves it along.
  if (!split.empty()) keep_split(split, broker::InputBlock::kBorrowMin);
  if (!budget_spent) return;
  // Budget spent with data left: continue on a later turn, after the other
  // sockets (no new edge will come for what is already buffered).
  read_scheduled_ = true;
  worker_.loop().post([self = shared_from_this()] { self->resume_reading(); });
}

// After a read that returned `n`: kOk, counted in `total` and the
// statistics; kAgain, interrupted (read again); kStop, nothing more for
// now, or the peer is gone (then the connection is closed).
Connection::ReadOutcome Connection::after_read(ssize_t n, size_t& total) {
  if (n < 0) {
    if (errno == EINTR) return ReadOutcome::kAgain;
    if (errno != EAGAIN && errno != EWOULDBLOCK) lost(Clock::now());  // reset or error: the peer is gone
    return ReadOutcome::kStop;
  }
  if (n == 0) {
    lost(Clock::now());
    return ReadOutcome::kStop;
  }
  total += static_cast<size_t>(n);
  broker::Stats::add(worker_.stats().bytes_received, static_cast<uint64_t>(n));
  broker::Stats::add(worker_.stats().of(traffic_slot).bytes_received, static_cast<uint64_t>(n));
  return ReadOutcome::kOk;
}

// After a read that brought `n` of the `requested` bytes: whether to read
// again in this turn (budget permitting). Not once the connection closes
// or a CONNECT awaits its verdict (read_scheduled_), nor once the socket
// is drained (a short read, unless the peer sent FIN: then the next read
// sees it).
bool Connection::read_again(size_t n, size_t requested) const {
  if (closed_ || closing_ || read_scheduled_) return false;
  return n == requested || peer_fin_;
}

// Whether a packet split by a read may wait in an input block: plain TCP
// only (other input is un-wrapped first), and not while a CONNECT is
// decided or handed over (in_ is theirs then).
bool Connection::reads_in_blocks() const {
  return !transport_ && connected_ && !handover_ && !pending_connect_;
}

// Whether `split`, the start of a packet, is carried from read to read in
// the input block (whole packet no larger than a block), not in in_.
bool Connection::carries(std::string_view split) const {
  if (!reads_in_blocks()) return false;
  const size_t need = protocol::frame_size(split);  // 0: its fixed header is split too
  return need == 0 ? split.size() < broker::InputBlock::kSize
                   : need > split.size() && need <= broker::InputBlock::kSize;
}

// `got` bytes read into `sized`, a block of the size of the client's last
// large packet (whose reference this takes): the start of a packet of that
// size stays there as its own block; anything else is decoded from there
// (large payloads borrowed), a packet split at its end moved to the
// thread's block (`split`, for on_readable's next read), and the size is
// forgotten unless the bytes began with a packet of that size.
void Connection::take_sized_read(broker::InputBlock* sized, size_t got, TimePoint now, std::string_view& split) {
  const std::string_view data(sized->data(), got);
  const size_t first = protocol::frame_size(data);
  if (first == sized->size() && got < first && carries_own(data)) {
    sized->filled = static_cast<uint32_t>(got);
    own_block_ = sized;  // read on into it
    return;
  }
  if (first != sized->size()) large_frame_ = 0;
  {
    const broker::InputBlock::Decoding decoding(sized);
    take_input(data, now, &split);
  }
  // A split packet left there moves to the thread's block now: `sized`
  // may go away below.
  if (!split.empty()) split = std::string_view(broker::InputBlock::writable(split).data(), split.size());
  sized->release();
}

// Whether `split`, the start of a packet, may wait in a block of its own,
// allocated for the whole packet now: only when that is at most one read
// budget more than what came (as in_ grows with the bytes that come, not
// with what a header announces).
bool Connection::carries_own(std::string_view split) const {
  if (!reads_in_blocks()) return false;
  const size_t need = protocol::frame_size(split);
  return need > split.size() && need <= limits_.max_packet_size && need - split.size() <= kReadBudget;
}

// Keeps `split`, the start of a packet that the next read will not find
// in the thread's block: in a block of its own, allocated for the whole
// packet, when the packet is larger than `min` (so that its payload, when
// large, is then borrowed from there: copied once in all), if carries_own
// allows it; else in in_.
void Connection::keep_split(std::string_view split, size_t min) {
  const size_t need = protocol::frame_size(split);
  if (need <= min || !carries_own(split)) {
    in_.assign(split);
    return;
  }
  own_block_ = broker::InputBlock::make(need);
  std::memcpy(own_block_->data(), split.data(), split.size());
  own_block_->filled = static_cast<uint32_t>(split.size());
}

// Moves the packet split at the end of in_ (all of in_) to the start of
// `block` when the whole packet fits there, so that the next read, after
// it, completes it in place; returns the bytes moved (0: none, in_ is
// unchanged); only where carries() allows.
size_t Connection::carry_split_packet(broker::InputBlock& block) {
  if (in_.empty() || !carries(in_)) return 0;
  const size_t have = in_.size();
  std::memcpy(block.data(), in_.data(), have);
  in_.clear();
  if (in_.capacity() > 4096) std::string().swap(in_);
  return have;
}

// How much of the packet split at the end of in_ is missing, when it is
// worth reading straight into in_ (plain TCP only: other input is un-wrapped
// first); 0 otherwise.
size_t Connection::direct_read_room() const {
  if (transport_ || in_.empty()) return 0;
  const size_t need = protocol::frame_size(in_);
  if (need <= in_.size() || need > limits_.max_packet_size) return 0;
  const size_t missing = need - in_.size();
  // At most one read budget at a time: in_ grows with the bytes that come,
  // not with what a header announces.
  return missing >= kDirectReadMin ? std::min(missing, kReadBudget) : 0;
}

// After a read of `n` bytes of which up to `room` went into in_ and the rest
// into `block`.
void Connection::take_direct_read(const broker::InputBlock& block, size_t n, size_t room, TimePoint now) {
  if (n > room) {  // in_'s packet (whole, or still split when room was capped), then the rest
    take_input(std::string_view(block.data(), n - room), now);
    return;
  }
  if (in_.size() < protocol::frame_size(in_)) return;  // still incomplete
  process_input(now);
  if (handover_) complete_handover({});
}

void Connection::resume_reading() {
  read_scheduled_ = false;
  on_readable();
}

// Decodes and handles every whole packet at the start of `data`; returns
// the bytes used. Stops early when the connection closes or moves.
size_t Connection::decode_all(std::string_view data, TimePoint now) {
  size_t pos = 0;
  // One packet object for the whole batch: the decoder reuses what the
  // previous packet left instead of building and destroying a CONNECT-sized
  // variant per packet. PUBLISH packets are decoded in place (no copy).
  protocol::Packet packet;
  protocol::PublishView publish;
  while (!closed_ && !closing_ && pos < data.size()) {
    const std::string_view rest = data.substr(pos);
    bool is_publish = false;
    const protocol::DecodeResult r =
        protocol::decode_borrowed(rest, version, packet, publish, &is_publish, limits_);
    if (r.status == DecodeStatus::kNeedMore) break;
    if (r.status == DecodeStatus::kError) {
      if (!connected_ && looks_like_v5_connect(rest)) version = protocol::Version::kV5;
      fail(r.error, now, r.message);
      break;
    }
    pos += r.consumed;
    if (is_publish) {
      if (!connected_) {  // the first packet must be CONNECT [MQTT-3.1.0-1]
        fail(ReasonCode::kProtocolError, now);
        break;
      }
      update_deadline(now);
      worker_.broker().on_publish(*this, publish, now);
      continue;
    }
    if (!handle_packet(std::move(packet), now)) break;
  }
  return pos;
}

// Bytes just read: decoded in place from the read buffer. Only a packet
// split across reads is copied (into in_), and only up to its end: what
// follows it is again decoded in place.
void Connection::take_input(std::string_view data, TimePoint now, std::string_view* split) {
  const size_t rest = take_input_until_stop(data, now, split);
  // A hand-over after a CONNECT keeps every byte read behind it, in order:
  // what was left in in_ (moved already), then the rest of this read.
  if (handover_) complete_handover(data.substr(data.size() - rest));
}

// take_input's work; returns how many bytes at the end of `data` were not
// looked at because the connection stopped (closed, or handed over).
size_t Connection::take_input_until_stop(std::string_view data, TimePoint now, std::string_view* split) {
  while (!in_.empty() && !data.empty()) {
    const size_t need = protocol::frame_size(in_);
    if (need == 0) {  // the fixed header itself is split: one byte more
      in_.push_back(data.front());
      data.remove_prefix(1);
      continue;
    }
    // Up to the end of the split packet; anything odd (a malformed or
    // oversized header) takes everything and lets decode report it.
    size_t take = data.size();
    // (A packet already whole, after a direct read, takes nothing.)
    if (need >= in_.size() && need <= limits_.max_packet_size) take = std::min(take, need - in_.size());
    in_.append(data.substr(0, take));
    data.remove_prefix(take);
    process_input(now);
    if (closed_ || closing_) return data.size();
    // Not consumed (cannot happen), or a CONNECT awaiting its verdict: keep the order.
    if ((!in_.empty() || !connected_) && !data.empty()) {
      in_.append(data);
      return 0;
    }
  }
  if (data.empty()) return 0;
  const size_t used = decode_all(data, now);
  if (closed_ || closing_) return data.size() - used;
  if (used < data.size()) {
    const std::string_view rest = data.substr(used);
    if (split && carries(rest)) {
      *split = rest;  // left where it is, for the caller's next read
    } else if (split) {
      keep_split(rest, broker::InputBlock::kSize);
    } else {
      in_.assign(rest);
    }
  }
  return 0;
}

// Bytes read from a TLS or WebSocket connection: handshakes, then records
// or frames whose payload is the MQTT byte stream fed to take_input.
void Connection::take_transport_input(std::string_view data, TimePoint now) {
  std::string& payload = t_plain;
  payload.clear();
  const Transport::Result r = transport_->feed(data, payload);
  if (!transport_->wire().empty()) commit();  // handshake answers, pongs, alerts, close replies
  if (!payload.empty()) {
    take_input(payload, now);
    if (payload.capacity() > 1024 * 1024) std::string().swap(payload);
    if (closed_ || closing_ || r == Transport::Result::kOk) return;
  } else if (r == Transport::Result::kOk) {
    return;
  }
  if (closed_ || closing_) return;
  if (r == Transport::Result::kClose) {
    if (connected_) worker_.log_connection("Client " + client_name() + " closed its connection.");
  } else if (!transport_->established()) {
    // Failed handshakes are logged whatever connection_messages says: a
    // client with a wrong certificate, or a scan, shows in the log.
    worker_.log("Client " + peer() + " disconnected: " + transport_->error() + ".");
  } else {
    worker_.log_connection("Client " + (connected_ ? client_name() : peer()) + " disconnected: " +
                           transport_->error() + ".");
  }
  close();
}

void Connection::process_input(TimePoint now) {
  const size_t used = decode_all(in_, now);
  if (handover_) {  // what followed the CONNECT goes along
    handover_->bytes.assign(in_, used);
    std::string().swap(in_);
    return;
  }
  if (closed_ || closing_) return;
  if (used == in_.size()) {
    in_.clear();
    if (in_.capacity() > 4096) std::string().swap(in_);  // idle connections stay small
  } else if (used > 0) {
    in_.erase(0, used);
  }
}

// Returns false when this connection stopped processing input (closed or
// handed over to another worker).
bool Connection::handle_packet(protocol::Packet&& packet, TimePoint now) {
  if (!connected_) {
    auto* connect = std::get_if<protocol::ConnectPacket>(&packet);
    if (!connect) {  // the first packet must be CONNECT [MQTT-3.1.0-1]
      fail(ReasonCode::kProtocolError, now);
      return false;
    }
    handle_connect(std::move(*connect), now);
    return connected_ && !closed_ && !closing_;
  }
  update_deadline(now);
  if (std::holds_alternative<protocol::DisconnectPacket>(packet)) {
    if (worker_.shared().logs(util::LogType::kDebug)) {
      worker_.log(util::LogType::kDebug, "Received DISCONNECT from " + client_name());
    }
    worker_.log_connection("Client " + client_name() + " disconnected.");
  }
  worker_.broker().on_packet(*this, std::move(packet), now);
  return !closed_ && !closing_;
}

void Connection::handle_connect(protocol::ConnectPacket&& connect, TimePoint now) {
  version = connect.version;
  const bool assigned = broker::Broker::assign_client_id(connect, worker_.settings());
  // Before routing: the session belongs to the user name's worker.
  if (!username_as_client_id(connect, assigned)) {
    finish_connect(std::move(connect), assigned, ReasonCode::kNotAuthorized, peer(), now);
    return;
  }
  const unsigned workers = worker_.worker_count();
  const unsigned target =
      connect.client_id.empty() ? worker_.index() : broker::Broker::worker_for(connect.client_id, workers);
  if (target != worker_.index()) {
    // The socket moves to the worker that owns this client id; the move
    // happens once every byte already read behind the CONNECT is known
    // (complete_handover).
    closed_ = true;  // this object is done; the socket lives on elsewhere
    worker_.loop().remove(fd_);
    handover_ = std::make_unique<Handover>(Handover{target, std::move(connect), assigned, {}});
    return;
  }
  check_credentials(std::move(connect), assigned, now);
}

bool Connection::check_credentials(protocol::ConnectPacket&& connect, bool id_assigned, TimePoint now) {
  if (worker_.reload_pending()) {  // judged by the rules of the reload (resume_connect)
    pending_connect_ = std::make_unique<PendingConnect>(PendingConnect{std::move(connect), id_assigned, peer()});
    read_scheduled_ = true;  // the CONNECT timeout still runs
    worker_.hold_connect(*this);
    return false;
  }
  if (const Listener* listener = slot_.listener(); listener && listener->options().identity_as_username) {
    certificate_login(connect, *listener->options().identity_as_username);
    const ReasonCode verdict = connect.username ? ReasonCode::kSuccess : ReasonCode::kBadUserNameOrPassword;
    finish_connect(std::move(connect), id_assigned, verdict, peer(), now);
    return true;
  }
  const std::weak_ptr<Connection> weak = weak_from_this();
  EventLoop* loop = &worker_.loop();
  broker::Authenticator::Reply reply;
  // Called on a hashing thread: the verdict comes back to this worker.
  // The client may be gone by then (weak), or closing (on_credentials).
  reply.answer = [weak, loop](ReasonCode verdict) {
    loop->post([weak, verdict] {
      if (auto self = weak.lock()) self->on_credentials(verdict);
    });
  };
  reply.wanted = [weak] { return !weak.expired(); };
  const Listener* listener = slot_.listener();
  const broker::AccessPolicy* policy = listener ? listener->options().access.get() : nullptr;
  const std::optional<ReasonCode> verdict = worker_.broker().check_credentials(connect, std::move(reply), policy);
  if (verdict) {
    finish_connect(std::move(connect), id_assigned, *verdict, peer(), now);
    return true;
  }
  // The address now: a client that resets meanwhile has none by the verdict.
  pending_connect_ = std::make_unique<PendingConnect>(PendingConnect{std::move(connect), id_assigned, peer()});
  read_scheduled_ = true;  // no reads until the verdict; the CONNECT timeout still runs
  return false;
}

const broker::AccessPolicy* Connection::policy() const {
  const Listener* listener = slot_.listener();
  return listener ? listener->options().access.get() : nullptr;
}

uint16_t Connection::listener_port() const {
  const Listener* listener = slot_.listener();
  return listener ? listener->options().port : 0;
}

bool Connection::certificate_login() const {
  const Listener* listener = slot_.listener();
  return listener && listener->options().identity_as_username.has_value();
}

// use_identity_as_username / use_subject_as_username, as Mosquitto: the
// name the TLS handshake proved replaces the CONNECT's user name and
// password, which are not checked; no proof, no user name (refused).
void Connection::certificate_login(protocol::ConnectPacket& connect, PeerIdentity kind) const {
  connect.password.reset();
  connect.username.reset();
  if (transport_) {
    if (std::optional<std::string> name = transport_->peer_identity(kind)) connect.username = std::move(*name);
  }
}

// As Mosquitto (handle_connect.c): the user name, from the CONNECT or from
// the certificate, replaces the client id before the password is checked, so
// user B naming user A's client id gets a session of its own. An empty
// client id that may not be assigned one stays empty (identifier rejected).
bool Connection::username_as_client_id(protocol::ConnectPacket& connect, bool id_assigned) const {
  const Listener* listener = slot_.listener();
  if (!listener || !listener->options().username_as_client_id) return true;
  if (connect.client_id.empty() && !id_assigned) return true;
  if (listener->options().identity_as_username) certificate_login(connect, *listener->options().identity_as_username);
  if (!connect.username || connect.username->empty()) return false;
  connect.client_id = *connect.username;
  return true;
}

void Connection::resume_connect() {
  if (closed_ || closing_ || !pending_connect_) return;
  const std::unique_ptr<PendingConnect> pending = std::move(pending_connect_);
  read_scheduled_ = false;
  const TimePoint now = Clock::now();
  if (check_credentials(std::move(pending->connect), pending->id_assigned, now) && connected_) resume_input(now);
}

void Connection::on_credentials(ReasonCode verdict) {
  if (closed_ || closing_ || !pending_connect_) return;
  const std::unique_ptr<PendingConnect> pending = std::move(pending_connect_);
  read_scheduled_ = false;
  const TimePoint now = Clock::now();
  if (finish_connect(std::move(pending->connect), pending->id_assigned, verdict, pending->peer, now)) {
    resume_input(now);
  }
}

bool Connection::finish_connect(protocol::ConnectPacket&& connect, bool id_assigned, ReasonCode verdict,
                                const std::string& from, TimePoint now) {
  std::string line = describe_connect(connect, from);
  const std::string client_id = connect.client_id;
  const std::optional<std::string> username = connect.username;
  const Listener* listener = slot_.listener();
  const broker::AccessPolicy* policy = listener ? listener->options().access.get() : nullptr;
  accepted_line_ = &line;
  const ReasonCode result = worker_.broker().connect(*this, std::move(connect), id_assigned, verdict, now, policy);
  accepted_line_ = nullptr;
  if (result != ReasonCode::kSuccess) {
    // Logged whatever connection_messages says: failed logins are how a
    // brute force shows.
    worker_.log("Client " + escape_for_log(client_id) + " from " + from + " refused: " +
                protocol::reason_code_name(result) +
                (username ? " (user '" + escape_for_log(*username) + "')." : " (no user name)."));
    return false;
  }
  connected_ = true;
  limits_.max_packet_size = packet_limit();
  update_deadline(now);
  return true;
}

void Connection::accepted() {
  if (accepted_line_) worker_.log_connection(*std::exchange(accepted_line_, nullptr));
}

void Connection::resume_input(TimePoint now) {
  if (!in_.empty()) process_input(now);
  // Edge-triggered: bytes that arrived meanwhile give no new event.
  if (!closed_ && !closing_) on_readable();
}

void Connection::complete_handover(std::string_view rest) {
  std::unique_ptr<Handover> h = std::move(handover_);
  h->bytes.append(rest);
  const int fd = std::exchange(fd_, -1);  // the socket lives on elsewhere
  worker_.hand_over(*this, fd, h->target, std::move(h->connect), h->assigned, std::move(h->bytes));
}

uint32_t Connection::packet_limit() const {
  const uint32_t max = worker_.settings().max_packet_size;
  return max != 0 ? max : protocol::DecodeLimits{}.max_packet_size;
}

size_t Connection::output_limit() const { return worker_.settings().max_pending_output; }

// The client's output is above the bound: its input waits in the socket
// (TCP slows it down) until the output drains. Meanwhile the keep alive
// gives way to a stall deadline, re-armed whenever a write makes progress.
void Connection::block_reading() {
  output_blocked_ = true;
  arm_stall_deadline(Clock::now());
}

void Connection::arm_stall_deadline(TimePoint now) {
  Duration stall = kOutputStallTime;
  if (session && session->keep_alive != 0) stall = milliseconds(uint64_t{session->keep_alive} * 1500);
  deadline_ = now + stall;
  worker_.watch_deadline(*this);
}

// After a write made progress.
void Connection::output_progress(TimePoint now) {
  const size_t pending = pending_bytes();
  if (output_blocked_) {
    if (pending > output_limit() / 2) {
      arm_stall_deadline(now);
      return;
    }
    output_blocked_ = false;
    update_deadline(now);
    if (!read_scheduled_) {  // no new edge will come for input already waiting
      read_scheduled_ = true;
      worker_.loop().post([self = shared_from_this()] { self->resume_reading(); });
    }
  }
  if (waiting_for_room && connected_ && (pending == 0 || pending <= output_limit() / 2)) {
    waiting_for_room = false;
    worker_.broker().on_link_writable(*this, now);
  }
}

void Connection::update_deadline(TimePoint now) {
  if (output_blocked_) return;  // the stall deadline applies
  if (!session || session->keep_alive == 0) {
    deadline_ = TimePoint::max();
    return;
  }
  // The server closes a connection silent for 1.5 x Keep Alive [MQTT-3.1.2-22].
  deadline_ = now + milliseconds(uint64_t{session->keep_alive} * 1500);
  worker_.watch_deadline(*this);  // only pushes when the deadline moved earlier
}

void Connection::on_deadline(TimePoint now) {
  if (closed_) return;
  if (!closing_ && pending_connect_) {
    // Its password check was still queued: logged like a refusal whatever connection_messages
    // says, so that a brute force that overloads the checks does not vanish from the log.
    const protocol::ConnectPacket& c = pending_connect_->connect;
    worker_.log("Warning: Client " + escape_for_log(c.client_id) + " from " + pending_connect_->peer +
                " refused: its password was not checked within " + std::to_string(kConnectTimeout.count()) +
                " s" + (c.username ? " (user '" + escape_for_log(*c.username) + "')." : "."));
    pending_connect_.reset();
  }
  if (closing_ || !connected_) {
    finish_close();
    return;
  }
  if (output_blocked_) {
    worker_.log_connection("Client " + client_name() + " has not read its output (" +
                           std::to_string(pending_bytes()) + " bytes waiting), disconnecting.");
    close_logged_ = true;
    broker::Stats::add(worker_.stats().disconnects[static_cast<uint8_t>(ReasonCode::kKeepAliveTimeout)]);
    worker_.broker().on_link_lost(*this, now);  // no DISCONNECT: it would not be read
    finish_close();
    return;
  }
  worker_.log_connection("Client " + client_name() + " has exceeded timeout, disconnecting.");
  close_logged_ = true;
  worker_.broker().on_keepalive_expired(*this, now);
  if (!closed_ && !closing_) close();
}

void Connection::fail(ReasonCode reason, TimePoint now, const char* why) {
  worker_.log_connection("Client " + (connected_ ? client_name() : peer()) + " disconnected: " +
                         protocol::reason_code_name(reason) + (why && *why ? std::string(" (") + why + ")" : "") + ".");
  close_logged_ = true;
  broker::Stats::add(worker_.stats().disconnects[static_cast<uint8_t>(reason)]);
  if (connected_) {
    worker_.broker().on_protocol_error(*this, reason, now, why);
    if (!closed_ && !closing_) close();
    return;
  }
  // Errors in or before CONNECT: a CONNACK refusal for an unknown protocol
  // level [MQTT-3.1.2-2] and for a CONNECT over the pre-CONNECT bound. A
  // CONNECT that does not decode (malformed, a bad will) is closed without
  // one, as Mosquitto does: the CONNACK is a MAY there (4.13.1).
  if (reason == ReasonCode::kUnsupportedProtocolVersion) {
    out_.bytes().append("\x20\x02\x00\x01", 4);  // 3.1.1 return code 1 [MQTT-3.1.2-2]
  } else if (version == protocol::Version::kV5 && reason == ReasonCode::kPacketTooLarge) {
    protocol::ConnackPacket ack;
    ack.reason = reason;
    protocol::encode(ack, protocol::Version::kV5, out_.bytes());
  }
  close();
}

void Connection::commit() {
  if (closed_) return;
  // Output is written once per loop turn, but one turn can route megabytes
  // to one subscriber (a fan-in of large messages): past half the bound it
  // is written at once, so the bound only ever holds what the socket refused.
  // Not while the store's journal holds records: that write would commit
  // half of the broker's current operation (a message routed to some of
  // its subscribers); the bound still holds, since the broker appends
  // nothing to a link past it (Broker::fits_output).
  if (!transport_ && !waiting_write_ && out_.size() > output_limit() / 2 && worker_.may_write_early()) [[unlikely]] {
    write_early();
  }
  if (dirty_) return;
  dirty_ = true;
  worker_.mark_dirty(*this);
}

// write_now's sending loop alone, safe in the middle of the broker's work:
// errors, closing and the callbacks are left to the flush at the end of the
// turn.
void Connection::write_early() {
  while (!out_.empty()) {
    const ssize_t n = send_some(out_);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) waiting_write_ = true;
      break;
    }
  }
}

// One sendmsg of the first slices of `q` (at most OutQueue::kMaxIov);
// consumes what was written. Returns sendmsg's result.
ssize_t Connection::send_some(OutQueue& q) {
  worker_.before_write();  // nothing leaves before the store has it (broker/store.h)
  iovec iov[OutQueue::kMaxIov];
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = q.gather(iov, OutQueue::kMaxIov);
  const ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
  if (n > 0) {
    q.consume(static_cast<size_t>(n));
    broker::Stats::add(worker_.stats().bytes_sent, static_cast<uint64_t>(n));
    broker::Stats::add(worker_.stats().of(traffic_slot).bytes_sent, static_cast<uint64_t>(n));
  }
  return n;
}

void Connection::flush() {
  dirty_ = false;
  if (closed_ || waiting_write_) return;
  write_now();
}

void Connection::write_now() {
  OutQueue* q = &out_;
  if (transport_) [[unlikely]] {
    transport_->push(out_, closing_);
    q = &transport_->wire();
  }
  while (!q->empty()) {
    const ssize_t n = send_some(*q);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        waiting_write_ = true;  // EPOLLOUT (edge) tells when there is room
        return;
      }
      lost(Clock::now());
      return;
    }
    if (!q->empty()) output_progress(Clock::now());
  }
  if (closing_) {
    begin_drain();
    return;
  }
  output_progress(Clock::now());
}

void Connection::close() {
  if (closed_ || closing_) return;
  closing_ = true;
  output_blocked_ = false;
  deadline_ = Clock::now() + kCloseTimeout;
  worker_.watch_deadline(*this);
  if (!waiting_write_) write_now();
}

void Connection::close_for(ReasonCode reason, const char* why, std::string_view client_id) {
  if (closed_ || closing_) return;
  // Logged and counted once (fail() and on_deadline() do both themselves).
  // A refused CONNECT is logged where its verdict is known (finish_connect).
  if (!close_logged_) {
    close_logged_ = true;
    broker::Stats::add(worker_.stats().disconnects[static_cast<uint8_t>(reason)]);
    if (connected_) {
      worker_.log_connection("Client " + std::string(client_id) + " disconnected by the broker: " +
                             protocol::reason_code_name(reason) +
                             (why && *why ? std::string(" (") + why + ")" : "") + ".");
    }
  }
  close();
}

// Everything is written: half-close, so the client reads our last packet
// and then EOF, and discard what it still sends for a short time. Closing
// with unread input would reset the connection instead.
void Connection::begin_drain() {
  if (draining_ || closed_) return;
  draining_ = true;
  ::shutdown(fd_, SHUT_WR);
  deadline_ = Clock::now() + kDrainTime;
  worker_.watch_deadline(*this);
  read_scheduled_ = false;
  drain_input();
}

// Reads and discards until the socket is empty (then waits for more), EOF,
// an error or a flood (more than one read budget at once): the last three
// close.
void Connection::drain_input() {
  size_t total = 0;
  while (total < kReadBudget) {
    // Not into the input block: a drain may start while another
    // connection's bytes in it are being decoded (and MSG_TRUNC, which
    // would discard without a buffer, is for TCP only, not Unix sockets).
    thread_local char discard[16 * 1024];
    const ssize_t n = ::recv(fd_, discard, sizeof(discard), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) break;
    total += static_cast<size_t>(n);
  }
  finish_close();
}

std::string Connection::client_name() const {
  return session ? session->client_id : std::string("<unknown>");
}

void Connection::lost(TimePoint now) {
  if (closed_) return;
  if (connected_ && !closing_) worker_.log_connection("Client " + client_name() + " closed its connection.");
  if (connected_ && !closing_) worker_.broker().on_link_lost(*this, now);
  finish_close();
}

void Connection::awaits_commit() {
  if (awaits_commit_) return;
  awaits_commit_ = true;
  worker_.hold_until_commit(*this);
}

void Connection::abort_unwritten() {
  awaits_commit_ = false;
  if (closed_) return;
  if (connected_ && !closing_) {
    worker_.log_connection("Client " + client_name() + " disconnected: the store could not write what it was sent.");
  }
  out_.release();
  finish_close();
}

void Connection::finish_close() {
  if (closed_) return;
  closed_ = true;
  if (session) worker_.broker().on_link_lost(*this, Clock::now());
  if (fd_ >= 0) {
    worker_.loop().remove(fd_);
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    fd_ = -1;
  }
  worker_.remove(id_);
}

}  // namespace midge::net
