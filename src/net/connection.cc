#include "net/connection.h"

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
// Output buffers bigger than this are released once written.
constexpr size_t kKeepOutCapacity = 64 * 1024;

thread_local char t_scratch[64 * 1024];

// Protocol level of a (possibly malformed) CONNECT, to answer it in its own
// version: 5 when the bytes say "MQTT" level 5.
bool looks_like_v5_connect(std::string_view data) {
  size_t i = 1;
  while (i < data.size() && i < 5 && (static_cast<uint8_t>(data[i]) & 0x80)) ++i;
  ++i;  // past the last remaining-length byte
  return data.size() > i + 6 && data.substr(i, 6) == std::string_view("\0\4MQTT", 6) &&
         data[i + 6] == 5;
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
  asio::error_code ec;
  const auto ep = socket_.remote_endpoint(ec);
  if (ec) return "unknown";
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

Connection::Connection(Worker& worker, asio::ip::tcp::socket socket, uint64_t id, ListenerSlot slot)
    : worker_(worker), socket_(std::move(socket)), id_(id), slot_(std::move(slot)) {
  const uint32_t max = worker.settings().max_packet_size;
  if (max != 0) limits_.max_packet_size = max;
  asio::error_code ec;
  socket_.non_blocking(true, ec);
}

Connection::~Connection() = default;

void Connection::start(std::string pending) {
  const TimePoint now = Clock::now();
  deadline_ = now + kConnectTimeout;
  worker_.watch_deadline(*this);
  in_ = std::move(pending);
  if (!in_.empty()) process_input(now);
  read_more();
}

void Connection::adopt(protocol::ConnectPacket&& connect, bool id_assigned, std::string pending) {
  const TimePoint now = Clock::now();
  deadline_ = now + kConnectTimeout;
  version = connect.version;
  std::string line = describe_connect(connect, peer());
  if (!worker_.broker().on_connect(*this, std::move(connect), id_assigned, now)) return;
  worker_.log_connection(line);
  connected_ = true;
  update_deadline(now);
  worker_.watch_deadline(*this);
  in_ = std::move(pending);
  if (!in_.empty()) process_input(now);
  read_more();
}

void Connection::read_more() {
  if (closed_ || closing_ || reading_) return;
  reading_ = true;
  socket_.async_wait(asio::socket_base::wait_read,
                     [self = shared_from_this()](const asio::error_code& ec) { self->on_read(ec, 0); });
}

// The socket is readable: read until it is drained (a short read) or the
// turn's budget is spent, decoding as we go.
void Connection::on_read(const asio::error_code& ec, size_t /*unused*/) {
  reading_ = false;
  if (closed_ || closing_) return;
  if (ec) {
    lost(Clock::now());
    return;
  }
  if (worker_.worker_count() > 1 && worker_.peers_overloaded()) {
    reading_ = true;  // read again after a short pause
    worker_.pause_reading(*this);
    return;
  }
  size_t total = 0;
  bool drained = false;
  while (total < kReadBudget) {
    asio::error_code rec;
    const size_t n = socket_.read_some(asio::buffer(t_scratch, sizeof(t_scratch)), rec);
    if (rec == asio::error::would_block || rec == asio::error::try_again) {
      drained = true;
      break;
    }
    if (rec) {  // EOF or reset: the peer is gone
      lost(Clock::now());
      return;
    }
    total += n;
    broker::Stats::add(worker_.stats().bytes_received, n);
    in_.append(t_scratch, n);
    process_input(Clock::now());
    if (closed_ || closing_) return;
    if (n < sizeof(t_scratch)) {
      drained = true;
      break;
    }
  }
  if (drained) {
    read_more();
  } else {
    // Budget spent: continue on a later turn, after the other sockets.
    reading_ = true;
    asio::post(worker_.io(), [self = shared_from_this()] { self->on_read({}, 0); });
  }
}

void Connection::resume_reading() {
  reading_ = false;
  if (closed_ || closing_) return;
  on_read({}, 0);
}

void Connection::process_input(TimePoint now) {
  while (!closed_ && !closing_ && in_start_ < in_.size()) {
    std::string_view data(in_.data() + in_start_, in_.size() - in_start_);
    protocol::Packet packet;
    const protocol::DecodeResult r = protocol::decode(data, version, packet, limits_);
    if (r.status == DecodeStatus::kNeedMore) break;
    if (r.status == DecodeStatus::kError) {
      if (!connected_ && looks_like_v5_connect(data)) version = protocol::Version::kV5;
      fail(r.error, now, r.message);
      return;
    }
    in_start_ += r.consumed;
    if (!handle_packet(std::move(packet), now)) return;
  }
  if (in_start_ == in_.size()) {
    in_.clear();
    in_start_ = 0;
    if (in_.capacity() > sizeof(t_scratch)) std::string().swap(in_);
  } else if (in_start_ > 0) {
    in_.erase(0, in_start_);
    in_start_ = 0;
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
    worker_.log_connection("Client " + client_name() + " disconnected.");
  }
  worker_.broker().on_packet(*this, std::move(packet), now);
  return !closed_ && !closing_;
}

void Connection::handle_connect(protocol::ConnectPacket&& connect, TimePoint now) {
  version = connect.version;
  const bool assigned = broker::Broker::assign_client_id(connect, worker_.settings());
  const unsigned workers = worker_.worker_count();
  const unsigned target =
      connect.client_id.empty() ? worker_.index() : broker::Broker::worker_for(connect.client_id, workers);
  if (target != worker_.index()) {
    std::string pending = in_.substr(in_start_);
    in_.clear();
    in_start_ = 0;
    closed_ = true;  // this object is done; the socket lives on elsewhere
    worker_.hand_over(*this, socket_, target, std::move(connect), assigned, std::move(pending));
    return;
  }
  std::string line = describe_connect(connect, peer());
  if (!worker_.broker().on_connect(*this, std::move(connect), assigned, now)) return;
  worker_.log_connection(line);
  connected_ = true;
  update_deadline(now);
}

void Connection::update_deadline(TimePoint now) {
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
  if (closing_ || !connected_) {
    finish_close();
    return;
  }
  worker_.log_connection("Client " + client_name() + " has exceeded timeout, disconnecting.");
  worker_.broker().on_keepalive_expired(*this, now);
  if (!closed_ && !closing_) close();
}

void Connection::fail(ReasonCode reason, TimePoint now, const char* why) {
  worker_.log_connection("Client " + (connected_ ? client_name() : peer()) + " disconnected: " +
                         protocol::reason_code_name(reason) + (why && *why ? std::string(" (") + why + ")" : "") + ".");
  if (connected_) {
    worker_.broker().on_protocol_error(*this, reason, now, why);
    if (!closed_ && !closing_) close();
    return;
  }
  // Errors in or before CONNECT: a CONNACK refusal where the spec has one.
  if (reason == ReasonCode::kUnsupportedProtocolVersion) {
    out_.append("\x20\x02\x00\x01", 4);  // 3.1.1 return code 1 [MQTT-3.1.2-2]
  } else if (version == protocol::Version::kV5) {
    protocol::ConnackPacket ack;
    ack.reason = reason;
    protocol::encode(ack, protocol::Version::kV5, out_);
  }
  close();
}

void Connection::commit() {
  if (dirty_ || closed_) return;
  dirty_ = true;
  worker_.mark_dirty(*this);
}

void Connection::flush() {
  dirty_ = false;
  if (closed_ || waiting_write_) return;
  write_now();
}

void Connection::write_now() {
  while (out_start_ < out_.size()) {
    asio::error_code ec;
    const size_t n =
        socket_.write_some(asio::buffer(out_.data() + out_start_, out_.size() - out_start_), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      waiting_write_ = true;
      socket_.async_wait(asio::socket_base::wait_write, [self = shared_from_this()](const asio::error_code& wec) {
        self->waiting_write_ = false;
        if (self->closed_) return;
        if (wec) {
          self->lost(Clock::now());
          return;
        }
        self->write_now();
      });
      return;
    }
    if (ec) {
      lost(Clock::now());
      return;
    }
    out_start_ += n;
    broker::Stats::add(worker_.stats().bytes_sent, n);
  }
  out_.clear();
  out_start_ = 0;
  if (out_.capacity() > kKeepOutCapacity) std::string().swap(out_);
  if (closing_) finish_close();
}

void Connection::close() {
  if (closed_ || closing_) return;
  closing_ = true;
  deadline_ = Clock::now() + kCloseTimeout;
  worker_.watch_deadline(*this);
  if (!waiting_write_) write_now();
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

void Connection::finish_close() {
  if (closed_) return;
  closed_ = true;
  if (session) worker_.broker().on_link_lost(*this, Clock::now());
  asio::error_code ec;
  socket_.shutdown(asio::socket_base::shutdown_both, ec);
  socket_.close(ec);
  worker_.remove(id_);
}

}  // namespace midge::net
