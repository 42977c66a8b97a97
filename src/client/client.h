// A small synchronous MQTT client over TCP, TLS and WebSockets (see
// transport.h), built on the sans-IO codec in src/protocol. One Client is one
// connection, used from one thread.
//
// The API is batch-friendly: publish()/subscribe()/unsubscribe() only append
// encoded bytes to an output buffer; next_event() (or flush()) writes the
// whole buffer at once and then reads and decodes everything that arrived.
// A load generator can queue many messages and flush once per turn.
//
// Protocol chores are handled inside: PUBACK/PUBREC/PUBREL/PUBCOMP for both
// directions, PINGREQ when the keep alive is due and a lost-PINGRESP timeout.
// Incoming QoS 2 messages are held from PUBLISH (answered with PUBREC) and
// delivered on PUBREL (answered with PUBCOMP), as libmosquitto does, so a
// resent PUBLISH is never delivered twice [MQTT-4.3.3].
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>

#include "protocol/codec.h"
#include "protocol/packets.h"

namespace midge::client {

// TLS as the Mosquitto tools set it up: the peer certificate is always
// verified against cafile/capath (or the system store); `insecure` only skips
// the host name check. With `psk` the handshake authenticates with a
// pre-shared key instead (TLS 1.2 PSK cipher suites, or a TLS 1.3 external
// PSK) and the broker shows no certificate.
struct TlsOptions {
  bool enabled = false;
  std::string cafile;
  std::string capath;
  bool use_os_certs = false;  // trust the system's default CA store too
  std::string certfile;       // client certificate (chain), PEM
  std::string keyfile;        // its private key, PEM
  bool insecure = false;
  std::string min_version;    // "tlsv1.3", "tlsv1.2", "tlsv1.1" or empty
  std::string ciphers;        // OpenSSL cipher list (TLS <= 1.2)
  std::string alpn;           // one ALPN protocol name, or empty
  std::optional<std::string> psk;  // TLS-PSK key bytes; empty or > 512 bytes fails the handshake
  std::string psk_identity;        // sent with it (at most 255 bytes are kept)
};

// MQTT over WebSockets (RFC 6455, subprotocol "mqtt"), over TCP or TLS.
struct WebSocketOptions {
  bool enabled = false;
  std::string path = "/mqtt";
};

class Transport;

struct ConnectOptions {
  std::string host = "localhost";
  uint16_t port = 1883;
  std::string bind_address;  // local address to bind before connecting, if set
  std::string unix_path;     // connect to a unix domain socket instead of TCP
  bool nodelay = false;      // TCP_NODELAY
  TlsOptions tls;
  WebSocketOptions websocket;
  // Applies to the TCP connect and to waiting for CONNACK; a dead host never hangs.
  std::chrono::milliseconds timeout{10000};
  // Version, client id, clean start, keep alive, will, credentials, properties.
  protocol::ConnectPacket connect;
};

enum class ErrorKind : uint8_t {
  kNone,
  kLookup,    // host name resolution failed
  kSystem,    // a socket call failed; `sys_errno` says why
  kTimeout,   // connect or CONNACK did not arrive in time
  kProtocol,  // the server sent bytes the codec rejects, or an unexpected packet
  kRefused,   // CONNACK with a failure reason; `reason` holds it
  kClosed,    // the server closed the connection (or sent DISCONNECT)
  kTlsSetup,  // TLS settings unusable (bad cipher list, key not matching the certificate...)
  kTls,       // TLS handshake or certificate verification failed
  kWebSocket, // the server refused or botched the WebSocket upgrade
};

struct Error {
  ErrorKind kind = ErrorKind::kNone;
  int sys_errno = 0;
  protocol::ReasonCode reason = protocol::ReasonCode::kSuccess;
  std::string message;  // human-readable, for logs
  explicit operator bool() const { return kind != ErrorKind::kNone; }
};

enum class EventType : uint8_t {
  kTimeout,      // nothing happened before the deadline
  kPublish,      // an application message arrived: `publish`
  kPublishDone,  // our QoS 1/2 publish `packet_id` completed with `reason`
  kSuback,       // `suback`
  kUnsuback,     // `unsuback`
  kDisconnect,   // the server sent DISCONNECT (`reason`); the connection is closed
  kClosed,       // the connection is gone; `error` says why
};

struct Event {
  EventType type = EventType::kTimeout;
  uint16_t packet_id = 0;
  protocol::ReasonCode reason = protocol::ReasonCode::kSuccess;
  protocol::PublishPacket publish;
  protocol::SubackPacket suback;
  protocol::UnsubackPacket unsuback;
  protocol::Properties properties;  // of PUBACK/PUBCOMP/DISCONNECT
  Error error;
};

// The next packet identifier after `last` (1..65535, wrapping) that is not
// in `in_use`, recorded there; 0 when all 65535 are in use.
uint16_t take_packet_id(uint16_t& last, std::set<uint16_t>& in_use);

class Client {
 public:
  // Called for every packet sent (sent = true) or received, e.g. for -d logs.
  using PacketHook = std::function<void(bool sent, const protocol::Packet&)>;

  Client();
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  void set_packet_hook(PacketHook hook) { hook_ = std::move(hook); }
  // Called with the bytes of every packet received, once it has decoded, before the
  // packet hook (e.g. for the wire order of properties, which decoding does not keep).
  using RawHook = std::function<void(std::string_view bytes)>;
  void set_raw_hook(RawHook hook) { raw_hook_ = std::move(hook); }

  // Opens the connection, sends CONNECT and waits for CONNACK (stored in
  // `connack` when given). A refusal returns kRefused with the reason code.
  Error connect(const ConnectOptions& options, protocol::ConnackPacket* connack = nullptr);

  // Queue a packet; packet ids (0 in the argument) are assigned here and
  // returned. Nothing is written until flush() or next_event().
  uint16_t publish(protocol::PublishPacket packet);
  uint16_t subscribe(protocol::SubscribePacket packet);
  uint16_t unsubscribe(protocol::UnsubscribePacket packet);

  // Sends DISCONNECT (flushing what is queued first) and closes.
  void disconnect(const protocol::DisconnectPacket& packet = {});

  // Writes everything queued. Reads (without decoding) while waiting so a
  // server that writes back cannot deadlock us.
  Error flush();

  // Flushes, then returns the next event, waiting at most `timeout`
  // (negative: wait for ever, but keep alive still runs).
  Event next_event(std::chrono::milliseconds timeout);

  bool connected() const { return transport_ != nullptr; }
  int fd() const;
  protocol::Version version() const { return version_; }
  // The client id given in CONNECT, or the one the server assigned (v5).
  const std::string& client_id() const { return client_id_; }
  // QoS 1/2 publishes sent and not yet completed.
  size_t inflight() const { return outgoing_.size(); }
  // v5 CONNACK limits, for callers that pace themselves.
  uint16_t server_receive_maximum() const { return server_receive_maximum_; }

 private:
  using Time = std::chrono::steady_clock::time_point;

  Error wait_connack(Time deadline, protocol::ConnackPacket& connack);
  void queue(const protocol::Packet& packet);
  uint16_t next_packet_id();
  // Reads what the socket has (waiting up to `deadline`); false + error when closed.
  Error read_some(Time deadline);
  // Decodes one packet from the input buffer; nullopt when more bytes are needed.
  std::optional<protocol::Packet> take_packet(Error& error);
  // Handles acks and pings; returns true and fills `event` if the packet is
  // something the caller must see.
  bool handle(protocol::Packet& packet, Event& event);
  bool handle_ack(protocol::AckPacket& ack, Event& event);
  Time keepalive_deadline() const;
  Error keepalive(Time now);
  void close_socket();
  Event closed_event(Error error);

  std::unique_ptr<Transport> transport_;
  protocol::Version version_ = protocol::Version::kV311;
  std::string client_id_;
  std::string in_;
  size_t in_pos_ = 0;
  std::string out_;
  PacketHook hook_;
  RawHook raw_hook_;
  uint16_t last_id_ = 0;
  uint16_t keep_alive_ = 0;
  uint16_t server_receive_maximum_ = 65535;
  Time last_sent_{};
  Time ping_sent_{};
  bool ping_outstanding_ = false;
  // Our QoS 1/2 publishes by packet id; value = QoS, 3 = PUBREL sent.
  std::unordered_map<uint16_t, uint8_t> outgoing_;
  std::set<uint16_t> ids_in_use_;     // subscribe/unsubscribe/publish ids not yet acked
  // Incoming QoS 2 messages we sent PUBREC for, delivered on PUBREL.
  std::unordered_map<uint16_t, protocol::PublishPacket> awaiting_rel_;
};

}  // namespace midge::client
