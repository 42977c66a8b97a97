#include "client/async_client.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "client/socket.h"

namespace midge::client {

using protocol::AckPacket;
using protocol::Packet;
using protocol::PacketType;
using protocol::ReasonCode;

namespace {

// Reads per on_readable(): a fast sender cannot starve the other clients of a
// shared loop; poll is level-triggered, so the rest is read next turn.
constexpr int kMaxReadsPerTurn = 16;
constexpr size_t kCompactOutputAt = 1 << 20;

Error make_error(ErrorKind kind, std::string message, ReasonCode reason = ReasonCode::kSuccess) {
  Error e;
  e.kind = kind;
  e.reason = reason;
  e.message = std::move(message);
  return e;
}

Error sys_error(int err) {
  Error e = make_error(ErrorKind::kSystem, std::strerror(err));
  e.sys_errno = err;
  return e;
}

bool bind_local(int fd, const std::string& address, int family, Error& error) {
  addrinfo hints{};
  hints.ai_family = family;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(address.c_str(), nullptr, &hints, &res);
  if (rc != 0) {
    error = make_error(ErrorKind::kLookup, gai_strerror(rc));
    return false;
  }
  bool ok = bind(fd, res->ai_addr, res->ai_addrlen) == 0;
  if (!ok) error = sys_error(errno);
  freeaddrinfo(res);
  return ok;
}

bool is_flow_publish(const Packet& packet) {
  const auto* pub = std::get_if<protocol::PublishPacket>(&packet);
  return pub != nullptr && pub->qos > 0;
}

}  // namespace

AsyncClient::~AsyncClient() { reset_connection(); }

int AsyncClient::fd() const { return transport_ ? transport_->fd() : connecting_fd_; }

bool AsyncClient::wants_write() const {
  if (state_ == State::kConnecting) return true;  // connect completion shows as POLLOUT
  return transport_ && (out_pos_ < out_.size() || transport_->has_pending_output());
}

// ------------------------------------------------------------------ connecting

Error AsyncClient::connect(const ConnectOptions& options) {
  reset_connection();
  if (options.tls.enabled || options.websocket.enabled) {
    return make_error(options.tls.enabled ? ErrorKind::kTlsSetup : ErrorKind::kWebSocket,
                      "AsyncClient supports plain TCP and unix sockets only");
  }
  options_ = options;
  version_ = options.connect.version;
  client_id_ = options.connect.client_id;
  keep_alive_ = options.connect.keep_alive;
  receive_maximum_ = 65535;
  Error error;
  if (!resolve(options, error)) return error;
  connect_deadline_ = options.timeout.count() < 0 ? Time::max() : Clock::now() + options.timeout;
  send(options.connect);
  if (!try_next_address(error)) {
    reset_connection();
    return error;
  }
  return {};
}

bool AsyncClient::resolve(const ConnectOptions& options, Error& error) {
  addresses_.clear();
  next_address_ = 0;
  if (!options.unix_path.empty()) {
    Address a;
    auto* sun = reinterpret_cast<sockaddr_un*>(&a.addr);
    if (options.unix_path.size() >= sizeof sun->sun_path) {
      error = sys_error(ENAMETOOLONG);
      return false;
    }
    sun->sun_family = AF_UNIX;
    std::memcpy(sun->sun_path, options.unix_path.data(), options.unix_path.size());
    a.len = sizeof(sockaddr_un);
    a.family = AF_UNIX;
    addresses_.push_back(a);
    return true;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::string service = std::to_string(options.port);
  int rc = getaddrinfo(options.host.c_str(), service.c_str(), &hints, &res);
  if (rc != 0) {
    error = make_error(ErrorKind::kLookup, gai_strerror(rc));
    return false;
  }
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    Address a;
    std::memcpy(&a.addr, ai->ai_addr, ai->ai_addrlen);
    a.len = ai->ai_addrlen;
    a.family = ai->ai_family;
    addresses_.push_back(a);
  }
  freeaddrinfo(res);
  return true;
}

// Starts a non-blocking connect to the next address; false when none is left.
bool AsyncClient::try_next_address(Error& error) {
  while (next_address_ < addresses_.size()) {
    const Address& a = addresses_[next_address_++];
    int fd = socket(a.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      error = sys_error(errno);
      continue;
    }
    if (!options_.bind_address.empty() && a.family != AF_UNIX &&
        !bind_local(fd, options_.bind_address, a.family, error)) {
      close(fd);
      continue;
    }
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&a.addr), a.len) != 0 &&
        errno != EINPROGRESS && errno != EAGAIN) {
      error = sys_error(errno);
      close(fd);
      continue;
    }
    if (options_.nodelay && a.family != AF_UNIX) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    connecting_fd_ = fd;
    state_ = State::kConnecting;
    return true;
  }
  return false;
}

// The socket reported readiness while connecting: done, failed, or (called
// without readiness) still in progress.
void AsyncClient::finish_connect() {
  pollfd pfd{connecting_fd_, POLLOUT, 0};
  if (poll(&pfd, 1, 0) == 0) return;
  int so_error = 0;
  socklen_t len = sizeof so_error;
  if (getsockopt(connecting_fd_, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0) so_error = errno;
  if (so_error == 0) {
    transport_ = make_tcp_transport(connecting_fd_);
    connecting_fd_ = -1;
    state_ = State::kWaitConnack;
    last_sent_ = Clock::now();
    return;
  }
  close(connecting_fd_);
  connecting_fd_ = -1;
  Error error = sys_error(so_error);
  if (!try_next_address(error)) close_with(std::move(error));
}

// ------------------------------------------------------------------ events

void AsyncClient::on_readable() {
  if (state_ == State::kConnecting) {
    finish_connect();
    return;
  }
  if (!transport_) return;
  uint64_t epoch = epoch_;
  Error error = read_input();
  dispatch_input();  // what arrived before a close is still delivered
  if (error && epoch == epoch_) close_with(std::move(error));
}

void AsyncClient::on_writable() {
  if (state_ == State::kConnecting) finish_connect();
  if (transport_) write_output();
}

void AsyncClient::on_timer(Time now) {
  if (state_ == State::kConnecting || state_ == State::kWaitConnack) {
    if (now >= connect_deadline_) {
      close_with(make_error(ErrorKind::kTimeout, "no CONNACK within the connect timeout"));
    }
    return;
  }
  if (state_ != State::kConnected || keep_alive_ == 0) return;
  auto period = std::chrono::seconds(keep_alive_);
  if (ping_outstanding_) {
    if (now >= ping_sent_ + period) {
      close_with(make_error(ErrorKind::kTimeout, "no PINGRESP within the keep alive",
                            ReasonCode::kKeepAliveTimeout));
    }
    return;
  }
  if (now >= last_sent_ + period) {
    send(protocol::PingreqPacket{});
    ping_outstanding_ = true;
    ping_sent_ = now;
    ++pings_sent_;
  }
}

AsyncClient::Time AsyncClient::next_timer() const {
  if (state_ == State::kConnecting || state_ == State::kWaitConnack) return connect_deadline_;
  if (state_ != State::kConnected || keep_alive_ == 0) return Time::max();
  auto period = std::chrono::seconds(keep_alive_);
  return (ping_outstanding_ ? ping_sent_ : last_sent_) + period;
}

// ------------------------------------------------------------------ input

// Reads what the socket has; an error when the connection is closed or failed.
Error AsyncClient::read_input() {
  for (int i = 0; i < kMaxReadsPerTurn; ++i) {
    Error e;
    const ssize_t got = read_append(*transport_, in_, in_pos_, e);
    if (got < 0) return e;
    if (got == 0 && !transport_->has_buffered_input()) break;
  }
  return {};
}

void AsyncClient::dispatch_input() {
  uint64_t epoch = epoch_;
  while (epoch == epoch_ && in_pos_ < in_.size()) {
    Packet packet;
    std::string_view view(in_.data() + in_pos_, in_.size() - in_pos_);
    protocol::DecodeResult r = protocol::decode(view, version_, packet);
    if (r.status == protocol::DecodeStatus::kNeedMore) {
      in_.erase(0, in_pos_);  // keep the partial packet at the front
      in_pos_ = 0;
      return;
    }
    if (r.status == protocol::DecodeStatus::kError) {
      close_with(make_error(ErrorKind::kProtocol, r.message, r.error));
      return;
    }
    in_pos_ += r.consumed;
    dispatch(packet);
  }
}

void AsyncClient::dispatch(Packet& packet) {
  if (auto* connack = std::get_if<protocol::ConnackPacket>(&packet)) {
    if (state_ == State::kWaitConnack) return handle_connack(*connack);
  } else if (state_ == State::kWaitConnack) {
    // [MQTT-3.2.0-1] the first packet from the server is CONNACK.
  } else if (auto* pub = std::get_if<protocol::PublishPacket>(&packet)) {
    return handle_publish(*pub);
  } else if (auto* ack = std::get_if<AckPacket>(&packet)) {
    return handle_ack(*ack);
  } else if (auto* suback = std::get_if<protocol::SubackPacket>(&packet)) {
    ids_in_use_.erase(suback->packet_id);
    if (on_suback) on_suback(*suback);
    return;
  } else if (auto* unsuback = std::get_if<protocol::UnsubackPacket>(&packet)) {
    ids_in_use_.erase(unsuback->packet_id);
    if (on_unsuback) on_unsuback(*unsuback);
    return;
  } else if (std::holds_alternative<protocol::PingrespPacket>(packet)) {
    ping_outstanding_ = false;
    return;
  } else if (auto* disc = std::get_if<protocol::DisconnectPacket>(&packet)) {
    return close_with(
        make_error(ErrorKind::kClosed, protocol::reason_code_name(disc->reason), disc->reason));
  }
  close_with(make_error(ErrorKind::kProtocol, "unexpected packet from server",
                        ReasonCode::kProtocolError));
}

void AsyncClient::handle_connack(const protocol::ConnackPacket& ack) {
  connect_deadline_ = Time::max();
  if (ack.properties.assigned_client_identifier) {
    client_id_ = *ack.properties.assigned_client_identifier;
  }
  if (ack.properties.server_keep_alive) keep_alive_ = *ack.properties.server_keep_alive;
  if (ack.properties.receive_maximum) receive_maximum_ = *ack.properties.receive_maximum;
  uint64_t epoch = epoch_;
  if (protocol::is_error(ack.reason)) {
    if (on_connect) on_connect(ack);
    if (epoch == epoch_) {
      close_with(make_error(ErrorKind::kRefused, protocol::reason_code_name(ack.reason),
                            ack.reason));
    }
    return;
  }
  state_ = State::kConnected;
  release_held();  // what was queued before CONNACK goes out first
  if (on_connect) on_connect(ack);
}

void AsyncClient::handle_publish(protocol::PublishPacket& pub) {
  if (pub.qos == 2) {
    send(AckPacket{PacketType::kPubrec, pub.packet_id, ReasonCode::kSuccess, {}});
    awaiting_rel_.try_emplace(pub.packet_id, std::move(pub));  // a resend keeps the first
    return;
  }
  if (pub.qos == 1) send(AckPacket{PacketType::kPuback, pub.packet_id, ReasonCode::kSuccess, {}});
  if (on_message) on_message(pub);
}

void AsyncClient::handle_ack(AckPacket& ack) {
  uint16_t id = ack.packet_id;
  if (ack.type == PacketType::kPubrel) {
    send(AckPacket{PacketType::kPubcomp, id, ReasonCode::kSuccess, {}});
    auto held = awaiting_rel_.find(id);
    if (held == awaiting_rel_.end()) return;  // already delivered (resent PUBREL)
    protocol::PublishPacket pub = std::move(held->second);
    awaiting_rel_.erase(held);
    if (on_message) on_message(pub);
    return;
  }
  auto it = outgoing_.find(id);
  if (it == outgoing_.end()) return;  // stale or unknown id: ignore
  if (ack.type == PacketType::kPubrec && !protocol::is_error(ack.reason)) {
    it->second = 3;
    send(AckPacket{PacketType::kPubrel, id, ReasonCode::kSuccess, {}});
    return;
  }
  // PUBACK, PUBCOMP, or a PUBREC with a failure code: the flow is over.
  outgoing_.erase(it);
  ids_in_use_.erase(id);
  release_held();
  if (on_delivered) on_delivered(id, ack.reason);
}

// ------------------------------------------------------------------ output

uint16_t AsyncClient::next_packet_id() { return take_packet_id(last_id_, ids_in_use_); }

// SUBSCRIBE and UNSUBSCRIBE: a fresh packet id, then the queue.
template <typename P>
uint16_t AsyncClient::send_with_new_id(P packet) {
  if (state_ == State::kIdle || state_ == State::kClosing) return 0;
  packet.packet_id = next_packet_id();
  if (packet.packet_id == 0) return 0;
  const uint16_t id = packet.packet_id;
  enqueue(std::move(packet));
  return id;
}

uint16_t AsyncClient::publish(protocol::PublishPacket packet) {
  if (state_ == State::kIdle || state_ == State::kClosing) return 0;
  if (packet.qos == 0) {
    packet.packet_id = 0;
  } else if (packet.packet_id == 0) {
    packet.packet_id = next_packet_id();
    if (packet.packet_id == 0) return 0;
  } else {
    ids_in_use_.insert(packet.packet_id);
  }
  uint16_t id = packet.packet_id;
  enqueue(std::move(packet));
  return id;
}

uint16_t AsyncClient::subscribe(protocol::SubscribePacket packet) {
  return send_with_new_id(std::move(packet));
}

uint16_t AsyncClient::unsubscribe(protocol::UnsubscribePacket packet) {
  return send_with_new_id(std::move(packet));
}

void AsyncClient::disconnect(const protocol::DisconnectPacket& packet) {
  if (state_ == State::kIdle || state_ == State::kClosing) return;
  if (state_ != State::kConnected) return close_with({});
  held_.clear();
  send(packet);
  state_ = State::kClosing;
}

// Encodes now, unless it must wait: before CONNACK, behind packets already
// held (order is kept), or over the server's Receive Maximum.
void AsyncClient::enqueue(Packet packet) {
  bool hold = state_ != State::kConnected || !held_.empty() ||
              (is_flow_publish(packet) && inflight_full());
  if (hold) {
    held_.push_back(std::move(packet));
    return;
  }
  send(packet);
}

bool AsyncClient::inflight_full() const {
  return outgoing_.size() >= std::min(receive_maximum_, max_inflight_);
}

void AsyncClient::release_held() {
  while (state_ == State::kConnected && !held_.empty()) {
    if (is_flow_publish(held_.front()) && inflight_full()) return;
    send(held_.front());
    held_.pop_front();
  }
}

void AsyncClient::send(const Packet& packet) {
  if (const auto* pub = std::get_if<protocol::PublishPacket>(&packet); pub && pub->qos > 0) {
    outgoing_[pub->packet_id] = pub->qos;
  }
  protocol::encode(packet, version_, out_);
}

void AsyncClient::write_output() {
  while (out_pos_ < out_.size() || transport_->has_pending_output()) {
    Error e;
    ssize_t n = transport_->write(out_.data() + out_pos_, out_.size() - out_pos_, e);
    if (n < 0) return close_with(std::move(e));
    if (n == 0) break;
    out_pos_ += static_cast<size_t>(n);
    last_sent_ = Clock::now();
  }
  if (out_pos_ == out_.size()) {
    out_.clear();
    out_pos_ = 0;
  } else if (out_pos_ >= kCompactOutputAt) {
    out_.erase(0, out_pos_);
    out_pos_ = 0;
  }
  if (state_ == State::kClosing && out_.empty() && !transport_->has_pending_output()) {
    // Half-close so the server reads the DISCONNECT rather than a reset
    // (which would publish the will).
    transport_->shutdown();
    close_with({});
  }
}

// ------------------------------------------------------------------ closing

void AsyncClient::reset_connection() {
  ++epoch_;
  transport_.reset();
  if (connecting_fd_ >= 0) close(connecting_fd_);
  connecting_fd_ = -1;
  state_ = State::kIdle;
  addresses_.clear();
  next_address_ = 0;
  in_.clear();
  in_pos_ = 0;
  out_.clear();
  out_pos_ = 0;
  held_.clear();
  outgoing_.clear();
  ids_in_use_.clear();
  awaiting_rel_.clear();
  ping_outstanding_ = false;
  connect_deadline_ = Time::max();
}

void AsyncClient::close_with(Error error) {
  reset_connection();
  // A copy: the callback may replace on_disconnect (or reconnect).
  auto callback = on_disconnect;
  if (callback) callback(error);
}

}  // namespace midge::client
