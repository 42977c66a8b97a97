// A non-blocking, event-driven MQTT 3.1/3.1.1/5.0 client over the sans-IO
// codec in src/protocol. It never waits: the caller owns the event loop
// (poll, epoll, an existing reactor...) and several AsyncClients can share it.
//
// Each turn the caller polls fd() for POLLIN, plus POLLOUT when wants_write(),
// and calls on_readable() / on_writable() on readiness (on_readable() also on
// POLLHUP/POLLERR), and on_timer(now) no later than next_timer(). fd() can
// change (a new connect, the next address of a host) so re-read it each turn.
//
// Transports: plain TCP and unix sockets only. The TLS and WebSocket layers in
// transport.h do their handshakes blocking (with a deadline), so connect()
// refuses options with tls/websocket enabled. Host name resolution
// (getaddrinfo) is blocking; pass numeric addresses when that matters.
//
// Sending: publish()/subscribe()/unsubscribe() only encode into an output
// buffer, written by on_writable(). Packets queued before CONNACK are held and
// sent once the session is accepted. QoS 1/2 publishes beyond the server's
// Receive Maximum (v5 CONNACK) or set_max_inflight() wait in order until a
// flow completes [MQTT-4.9.0-2].
//
// Incoming QoS 2 messages are held from PUBLISH (answered with PUBREC) and
// delivered by on_message on PUBREL (answered with PUBCOMP), as Client and
// libmosquitto do, so a resent PUBLISH is never delivered twice [MQTT-4.3.3].
//
// In-flight state is not kept across connections (no session resumption).
//
// Thread ownership: one AsyncClient belongs to the loop thread. Callbacks run
// inside on_readable/on_writable/on_timer/disconnect; they may call publish(),
// subscribe(), unsubscribe(), disconnect() and connect(), but must not destroy
// the client.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "client/client.h"
#include "client/transport.h"
#include "protocol/codec.h"
#include "protocol/packets.h"

namespace midge::client {

class AsyncClient {
 public:
  using Clock = std::chrono::steady_clock;
  using Time = Clock::time_point;

  enum class State : uint8_t {
    kIdle,         // not connected
    kConnecting,   // TCP connect in progress
    kWaitConnack,  // CONNECT queued or sent, no CONNACK yet
    kConnected,    // CONNACK with success received
    kClosing,      // DISCONNECT queued; closed once it is written
  };

  // CONNACK, also a refusal (then on_disconnect follows with kRefused).
  std::function<void(const protocol::ConnackPacket&)> on_connect;
  // An application message (QoS 2: once, when PUBREL arrives).
  std::function<void(const protocol::PublishPacket&)> on_message;
  // Our QoS 1 publish got PUBACK, or our QoS 2 publish got PUBCOMP (or a
  // PUBREC with a failure reason, which ends the flow); `reason` from the ack.
  std::function<void(uint16_t packet_id, protocol::ReasonCode reason)> on_delivered;
  std::function<void(const protocol::SubackPacket&)> on_suback;
  std::function<void(const protocol::UnsubackPacket&)> on_unsuback;
  // The connection is gone. kind kNone: our disconnect() completed; kClosed
  // with `reason`: the server sent DISCONNECT or closed; kTimeout: connect,
  // CONNACK or PINGRESP did not arrive in time; else what failed.
  std::function<void(const Error&)> on_disconnect;

  AsyncClient() = default;
  ~AsyncClient();
  AsyncClient(const AsyncClient&) = delete;
  AsyncClient& operator=(const AsyncClient&) = delete;

  // Starts connecting (closing any current connection silently) and queues
  // CONNECT. Returns an error only for what fails at once (lookup, socket(),
  // unsupported TLS/WebSocket); later failures arrive via on_disconnect.
  // options.timeout bounds the TCP connect plus the wait for CONNACK.
  Error connect(const ConnectOptions& options);

  // Queue a packet. Packet ids are assigned here (0 in the argument) and
  // returned; 0 for QoS 0, or when all 65535 ids are in use, or when not
  // connected (nothing is queued then).
  uint16_t publish(protocol::PublishPacket packet);
  uint16_t subscribe(protocol::SubscribePacket packet);
  uint16_t unsubscribe(protocol::UnsubscribePacket packet);

  // Queues DISCONNECT (dropping packets still held back) and closes once it is
  // written; on_disconnect then fires with kind kNone. Before CONNACK the
  // connection is closed at once.
  void disconnect(const protocol::DisconnectPacket& packet = {});

  // Client-side cap on QoS 1/2 publishes in flight (at least 1), on top of the
  // server's Receive Maximum. A 3.1.1 server announces no limit; Mosquitto
  // 2.0.11 stops delivering QoS 2 to subscribers when a publisher exceeds its
  // max_inflight_messages (20), so set 20 for it, as libmosquitto does.
  void set_max_inflight(uint16_t n) { max_inflight_ = n == 0 ? 1 : n; }

  int fd() const;
  bool wants_write() const;
  void on_readable();
  void on_writable();
  // Connect/CONNACK timeout, PINGREQ when the keep alive is due and a
  // lost-PINGRESP timeout (keep alive seconds after the PINGREQ).
  void on_timer(Time now);
  // When on_timer() is next needed; Time::max() when never.
  Time next_timer() const;

  State state() const { return state_; }
  protocol::Version version() const { return version_; }
  const std::string& client_id() const { return client_id_; }
  size_t inflight() const { return outgoing_.size(); }  // QoS 1/2 publishes sent, not done
  size_t held() const { return held_.size(); }          // packets not yet encoded
  size_t pings_sent() const { return pings_sent_; }

 private:
  struct Address {
    sockaddr_storage addr{};
    socklen_t len = 0;
    int family = 0;
  };

  bool resolve(const ConnectOptions& options, Error& error);
  bool try_next_address(Error& error);
  void finish_connect();
  Error read_input();
  void dispatch_input();
  void dispatch(protocol::Packet& packet);
  void handle_connack(const protocol::ConnackPacket& ack);
  void handle_publish(protocol::PublishPacket& pub);
  void handle_ack(protocol::AckPacket& ack);
  void write_output();
  void send(const protocol::Packet& packet);
  void enqueue(protocol::Packet packet);
  void release_held();
  uint16_t next_packet_id();
  template <typename P>
  uint16_t send_with_new_id(P packet);
  bool inflight_full() const;
  void close_with(Error error);
  void reset_connection();

  State state_ = State::kIdle;
  ConnectOptions options_;
  std::vector<Address> addresses_;
  size_t next_address_ = 0;
  int connecting_fd_ = -1;
  TransportPtr transport_;
  protocol::Version version_ = protocol::Version::kV311;
  std::string client_id_;
  // Bumped on every close/connect, so a loop over input stops when a callback
  // closed or replaced the connection.
  uint64_t epoch_ = 0;

  std::string in_;
  size_t in_pos_ = 0;
  std::string out_;
  size_t out_pos_ = 0;
  std::deque<protocol::Packet> held_;  // before CONNACK, or over Receive Maximum

  Time connect_deadline_ = Time::max();
  Time last_sent_{};
  Time ping_sent_{};
  bool ping_outstanding_ = false;
  size_t pings_sent_ = 0;
  uint16_t keep_alive_ = 0;
  uint16_t receive_maximum_ = 65535;
  uint16_t max_inflight_ = 65535;

  uint16_t last_id_ = 0;
  std::set<uint16_t> ids_in_use_;
  // Our QoS 1/2 publishes sent, by packet id; value = QoS, 3 = PUBREL sent.
  std::unordered_map<uint16_t, uint8_t> outgoing_;
  // Incoming QoS 2 messages we sent PUBREC for, delivered on PUBREL.
  std::unordered_map<uint16_t, protocol::PublishPacket> awaiting_rel_;
};

}  // namespace midge::client
