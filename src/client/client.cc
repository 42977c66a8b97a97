#include "client/client.h"

#include <poll.h>

#include <cerrno>
#include <cstring>

#include "client/socket.h"
#include "client/transport.h"

namespace midge::client {

using protocol::AckPacket;
using protocol::Packet;
using protocol::PacketType;
using protocol::ReasonCode;
using Clock = std::chrono::steady_clock;

namespace {


Error make_error(ErrorKind kind, std::string message,
                 ReasonCode reason = ReasonCode::kSuccess) {
  Error e;
  e.kind = kind;
  e.reason = reason;
  e.message = std::move(message);
  return e;
}

Clock::time_point deadline_after(std::chrono::milliseconds timeout) {
  if (timeout.count() < 0) return Clock::time_point::max();
  return Clock::now() + timeout;
}

}  // namespace

Client::Client() = default;
Client::~Client() = default;

int Client::fd() const { return transport_ ? transport_->fd() : -1; }

void Client::close_socket() { transport_.reset(); }

Error Client::connect(const ConnectOptions& options, protocol::ConnackPacket* connack) {
  close_socket();
  in_.clear();
  in_pos_ = 0;
  out_.clear();
  outgoing_.clear();
  ids_in_use_.clear();
  awaiting_rel_.clear();
  ping_outstanding_ = false;
  version_ = options.connect.version;
  client_id_ = options.connect.client_id;
  keep_alive_ = options.connect.keep_alive;
  Clock::time_point deadline = deadline_after(options.timeout);
  Error error;
  transport_ = open_transport(options, deadline, error);
  if (!transport_) return error;
  queue(options.connect);
  protocol::ConnackPacket ack;
  error = wait_connack(deadline, ack);
  // Once connected, a reset is "connection lost" whatever errno says.
  if (error.kind == ErrorKind::kSystem) error.kind = ErrorKind::kClosed;
  if (!error && protocol::is_error(ack.reason)) {
    error = make_error(ErrorKind::kRefused, protocol::reason_code_name(ack.reason), ack.reason);
  }
  if (ack.properties.assigned_client_identifier) {
    client_id_ = *ack.properties.assigned_client_identifier;
  }
  if (ack.properties.server_keep_alive) keep_alive_ = *ack.properties.server_keep_alive;
  if (ack.properties.receive_maximum) server_receive_maximum_ = *ack.properties.receive_maximum;
  if (connack != nullptr) *connack = ack;
  if (error) close_socket();
  return error;
}

Error Client::wait_connack(Clock::time_point deadline, protocol::ConnackPacket& connack) {
  if (Error e = flush()) return e;
  for (;;) {
    Error error;
    std::optional<Packet> packet = take_packet(error);
    if (error) return error;
    if (packet) {
      if (auto* ack = std::get_if<protocol::ConnackPacket>(&*packet)) {
        connack = *ack;
        return {};
      }
      return make_error(ErrorKind::kProtocol, "expected CONNACK", ReasonCode::kProtocolError);
    }
    if (Error e = read_some(deadline)) return e;
  }
}

uint16_t take_packet_id(uint16_t& last, std::set<uint16_t>& in_use) {
  if (in_use.size() >= 65535) return 0;
  do {
    ++last;
    if (last == 0) last = 1;
  } while (in_use.count(last) != 0);
  in_use.insert(last);
  return last;
}

uint16_t Client::next_packet_id() { return take_packet_id(last_id_, ids_in_use_); }

void Client::queue(const Packet& packet) {
  protocol::encode(packet, version_, out_);
  if (hook_) hook_(true, packet);
}

uint16_t Client::publish(protocol::PublishPacket packet) {
  if (packet.qos > 0) {
    if (packet.packet_id == 0) {
      packet.packet_id = next_packet_id();
    } else {
      ids_in_use_.insert(packet.packet_id);
    }
    outgoing_[packet.packet_id] = packet.qos;
  } else {
    packet.packet_id = 0;
  }
  queue(packet);
  return packet.packet_id;
}

uint16_t Client::subscribe(protocol::SubscribePacket packet) {
  packet.packet_id = next_packet_id();
  queue(packet);
  return packet.packet_id;
}

uint16_t Client::unsubscribe(protocol::UnsubscribePacket packet) {
  packet.packet_id = next_packet_id();
  queue(packet);
  return packet.packet_id;
}

void Client::disconnect(const protocol::DisconnectPacket& packet) {
  if (!transport_) return;
  queue(packet);
  flush();
  // Half-close (after TLS close_notify / a WebSocket close frame) so the
  // server reads the DISCONNECT and does not see a reset and publish the will.
  if (transport_) transport_->shutdown();
  close_socket();
}

Error Client::flush() {
  if (out_.empty() && !(transport_ && transport_->has_pending_output())) return {};
  size_t sent = 0;
  for (;;) {
    if (!transport_) return make_error(ErrorKind::kClosed, "not connected");
    Error e;
    ssize_t n = transport_->write(out_.data() + sent, out_.size() - sent, e);
    if (n < 0) {
      out_.erase(0, sent);
      return e;
    }
    sent += static_cast<size_t>(n);
    if (sent == out_.size() && !transport_->has_pending_output()) break;
    if (n > 0) continue;
    // Cannot write now: wait, and keep reading so the server is not blocked
    // writing to us while we are blocked writing to it.
    pollfd pfd{transport_->fd(), static_cast<short>(transport_->write_wait_events() | POLLIN), 0};
    if (poll(&pfd, 1, -1) < 0 && errno != EINTR) break;
    if ((pfd.revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      if (Error re = read_some(Clock::now())) {
        out_.erase(0, sent);
        return re;
      }
    }
  }
  out_.clear();
  last_sent_ = Clock::now();
  return {};
}

Error Client::read_some(Clock::time_point deadline) {
  if (!transport_) return make_error(ErrorKind::kClosed, "not connected");
  int n = 1;
  if (!transport_->has_buffered_input()) {
    pollfd pfd{transport_->fd(), transport_->read_wait_events(), 0};
    n = poll(&pfd, 1, poll_timeout(deadline));
  }
  if (n < 0 && errno != EINTR) return make_error(ErrorKind::kSystem, std::strerror(errno));
  if (n <= 0) {
    if (deadline != Clock::time_point::max() && Clock::now() >= deadline) {
      return make_error(ErrorKind::kTimeout, std::strerror(ETIMEDOUT));
    }
    return {};
  }
  Error e;
  const ssize_t got = read_append(*transport_, in_, in_pos_, e);
  if (got >= 0) return {};
  close_socket();
  return e;
}

std::optional<Packet> Client::take_packet(Error& error) {
  if (in_pos_ >= in_.size()) return std::nullopt;
  Packet packet;
  std::string_view view(in_.data() + in_pos_, in_.size() - in_pos_);
  protocol::DecodeResult r = protocol::decode(view, version_, packet);
  if (r.status == protocol::DecodeStatus::kNeedMore) {
    if (in_pos_ > 0) {  // keep the partial packet at the front of the buffer
      in_.erase(0, in_pos_);
      in_pos_ = 0;
    }
    return std::nullopt;
  }
  if (r.status == protocol::DecodeStatus::kError) {
    error = make_error(ErrorKind::kProtocol, r.message, r.error);
    close_socket();
    return std::nullopt;
  }
  if (raw_hook_) raw_hook_(view.substr(0, r.consumed));
  in_pos_ += r.consumed;
  if (hook_) hook_(false, packet);
  return packet;
}

Clock::time_point Client::keepalive_deadline() const {
  if (keep_alive_ == 0) return Clock::time_point::max();
  auto period = std::chrono::seconds(keep_alive_);
  if (ping_outstanding_) return ping_sent_ + period;
  return last_sent_ + period;
}

Error Client::keepalive(Clock::time_point now) {
  if (keep_alive_ == 0 || now < keepalive_deadline()) return {};
  if (ping_outstanding_) {
    close_socket();
    return make_error(ErrorKind::kClosed, "no PINGRESP within the keep alive",
                      ReasonCode::kKeepAliveTimeout);
  }
  queue(protocol::PingreqPacket{});
  ping_outstanding_ = true;
  ping_sent_ = now;
  return flush();
}

Event Client::closed_event(Error error) {
  Event ev;
  ev.type = EventType::kClosed;
  ev.error = std::move(error);
  close_socket();
  return ev;
}

Event Client::next_event(std::chrono::milliseconds timeout) {
  Clock::time_point deadline = deadline_after(timeout);
  if (Error e = flush()) return closed_event(std::move(e));
  for (;;) {
    Error error;
    while (std::optional<Packet> packet = take_packet(error)) {
      Event ev;
      if (handle(*packet, ev)) return ev;
    }
    if (error) return closed_event(std::move(error));
    if (Error e = flush()) return closed_event(std::move(e));
    Clock::time_point now = Clock::now();
    if (Error e = keepalive(now)) return closed_event(std::move(e));
    if (now >= deadline) return Event{};
    Clock::time_point wake = std::min(deadline, keepalive_deadline());
    if (Error e = read_some(wake); e && e.kind != ErrorKind::kTimeout) {
      return closed_event(std::move(e));
    }
  }
}

bool Client::handle(Packet& packet, Event& event) {
  if (auto* pub = std::get_if<protocol::PublishPacket>(&packet)) {
    if (pub->qos == 1) {
      queue(AckPacket{PacketType::kPuback, pub->packet_id, ReasonCode::kSuccess, {}});
    } else if (pub->qos == 2) {
      queue(AckPacket{PacketType::kPubrec, pub->packet_id, ReasonCode::kSuccess, {}});
      awaiting_rel_.try_emplace(pub->packet_id, std::move(*pub));  // a resend keeps the first
      return false;
    }
    event.type = EventType::kPublish;
    event.packet_id = pub->packet_id;
    event.publish = std::move(*pub);
    return true;
  }
  if (auto* ack = std::get_if<AckPacket>(&packet)) return handle_ack(*ack, event);
  if (auto* suback = std::get_if<protocol::SubackPacket>(&packet)) {
    ids_in_use_.erase(suback->packet_id);
    event.type = EventType::kSuback;
    event.packet_id = suback->packet_id;
    event.suback = std::move(*suback);
    return true;
  }
  if (auto* unsuback = std::get_if<protocol::UnsubackPacket>(&packet)) {
    ids_in_use_.erase(unsuback->packet_id);
    event.type = EventType::kUnsuback;
    event.packet_id = unsuback->packet_id;
    event.unsuback = std::move(*unsuback);
    return true;
  }
  if (std::holds_alternative<protocol::PingrespPacket>(packet)) {
    ping_outstanding_ = false;
    return false;
  }
  if (auto* disc = std::get_if<protocol::DisconnectPacket>(&packet)) {
    event.type = EventType::kDisconnect;
    event.reason = disc->reason;
    event.properties = std::move(disc->properties);
    event.error = make_error(ErrorKind::kClosed, protocol::reason_code_name(disc->reason),
                             disc->reason);
    close_socket();
    return true;
  }
  // CONNACK twice, CONNECT, SUBSCRIBE... from a server: a protocol error.
  event = closed_event(make_error(ErrorKind::kProtocol, "unexpected packet from server",
                                  ReasonCode::kProtocolError));
  return true;
}

bool Client::handle_ack(AckPacket& ack, Event& event) {
  uint16_t id = ack.packet_id;
  if (ack.type == PacketType::kPubrel) {
    queue(AckPacket{PacketType::kPubcomp, id, ReasonCode::kSuccess, {}});
    auto held = awaiting_rel_.find(id);
    if (held == awaiting_rel_.end()) return false;  // already delivered (resent PUBREL)
    event.type = EventType::kPublish;
    event.packet_id = id;
    event.publish = std::move(held->second);
    awaiting_rel_.erase(held);
    return true;
  }
  auto it = outgoing_.find(id);
  if (it == outgoing_.end()) return false;  // stale or unknown id: ignore
  if (ack.type == PacketType::kPubrec && !protocol::is_error(ack.reason)) {
    it->second = 3;
    queue(AckPacket{PacketType::kPubrel, id, ReasonCode::kSuccess, {}});
    return false;
  }
  // PUBACK, PUBCOMP, or a PUBREC with a failure code: the flow is over.
  outgoing_.erase(it);
  ids_in_use_.erase(id);
  event.type = EventType::kPublishDone;
  event.packet_id = id;
  event.reason = ack.reason;
  event.properties = std::move(ack.properties);
  return true;
}

}  // namespace midge::client
