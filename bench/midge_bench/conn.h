// The load generator's client engine: one non-blocking TCP connection that
// speaks MQTT through protocol::encode/decode, and an epoll loop that drives
// many of them from one thread. Reads go into a large buffer and every whole
// packet in it is decoded; writes are appended to an output buffer and
// flushed once per loop turn (EPOLLOUT armed only while output is pending),
// so the generator itself makes few syscalls per message. Under TLS the whole
// pending output goes to one SSL_write per turn (records up to 16 KB); under
// WebSocket it becomes one masked frame per turn.
// Single-threaded: a Loop and its Conns belong to the thread that runs it.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/ssl.h>

#include "midge_bench/link.h"
#include "protocol/codec.h"
#include "protocol/packets.h"

namespace midge::bench {

class Conn;

// A received PUBLISH, parsed in place: the views point into the read
// buffer and are valid during the on_publish call only. The generator reads
// millions of these a second, so it skips what protocol::decode does for the
// broker (UTF-8 checks, property parsing, copies).
struct PublishView {
  uint8_t qos = 0;
  bool retain = false;
  bool dup = false;
  uint16_t packet_id = 0;
  std::string_view topic;
  std::string_view payload;
};

// Parses one PUBLISH at the start of `data`. Returns the bytes it takes,
// 0 when more are needed, or -1 when it is malformed.
long parse_publish(std::string_view data, protocol::Version version, PublishView& out);

// Receives decoded packets. `now_ns` is the steady clock read once per read().
class PacketHandler {
 public:
  virtual ~PacketHandler() = default;
  virtual void on_publish(Conn& conn, const PublishView& publish, int64_t now_ns) = 0;
  virtual void on_packet(Conn& conn, protocol::Packet& packet, int64_t now_ns) = 0;
  virtual void on_closed(Conn& conn, const char* why) = 0;
};

int64_t now_ns();

class Conn {
 public:
  // `link` (shared, may be null: plain TCP) says what lies under MQTT.
  Conn(PacketHandler& handler, protocol::Version version, size_t read_buffer,
       const Link* link = nullptr);
  ~Conn();
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  // Starts a non-blocking connect from `source` (port 0 = any) to `to`.
  // Returns false (errno set) when the socket cannot be created or bound.
  bool start_connect(const sockaddr_in& to, const sockaddr_in* source);
  int fd() const { return fd_; }
  bool open() const { return fd_ >= 0; }
  void close_now();

  // Output: append a packet, or raw bytes built by publish_encoder.
  void send(const protocol::Packet& packet) { protocol::encode(packet, version_, out_); }
  std::string& out() { return out_; }
  size_t pending() const { return out_.size(); }

  // Loop callbacks.
  void on_readable();
  // Advances the TLS/WebSocket handshake, then writes as much of the output
  // as the socket takes; returns false when it must wait for EPOLLOUT.
  bool flush();
  // Something to write once the transport allows it (the loop marks the
  // connection after a read that completed a handshake).
  bool has_output() const {
    return !out_.empty() || !wire_.empty() || state_ == State::kTlsHandshake;
  }

  protocol::Version version() const { return version_; }
  uint32_t tag = 0;        // owner's index
  bool connected = false;  // CONNACK received
  bool epollout = false;   // EPOLLOUT currently armed
  bool dirty = false;      // in the loop's flush list

 private:
  // Where a connection stands below MQTT.
  enum class State : uint8_t { kTlsHandshake, kWsUpgrade, kReady };

  void fail(const char* why);
  bool tls_handshake(bool& want_write);
  // Reads what the socket (or TLS) has into `buf` at `len`; returns the
  // byte count, 0 when nothing is there, -1 after fail().
  long read_some(std::vector<char>& buf, size_t& len);
  // Writes `bytes` from the front of `data`; returns the count taken, or -1
  // when it must wait (`want_write`: for EPOLLOUT) or failed.
  long write_some(const char* data, size_t bytes, bool& want_write);
  bool ws_input();  // unframes raw_ into in_; false after fail()
  void decode_input();

  PacketHandler& handler_;
  protocol::Version version_;
  const Link* link_;
  State state_ = State::kReady;
  SSL* ssl_ = nullptr;
  size_t ssl_retry_ = 0;  // length of an SSL_write to repeat (OpenSSL requires it)
  std::string wire_;      // bytes for the socket when WS frames or an upgrade lie between
  std::vector<char> raw_; // WebSocket: bytes read, not yet unframed
  size_t raw_len_ = 0;
  std::string ws_key_;
  std::string pings_;
  uint64_t rng_ = 0x9e3779b97f4a7c15ull;
  int fd_ = -1;
  std::vector<char> in_;
  size_t in_len_ = 0;
  size_t min_read_;
  std::string out_;
  protocol::Packet packet_;  // other packets decode here
};

class Loop {
 public:
  Loop();
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  void add(Conn& conn);
  void remove(Conn& conn);
  // Marks `conn` as having output to flush at the end of this turn.
  void mark(Conn& conn) {
    if (!conn.dirty) {
      conn.dirty = true;
      dirty_.push_back(&conn);
    }
  }
  // One turn: waits up to timeout_ms, handles readiness, flushes dirty
  // connections. Returns the number of events.
  int turn(int timeout_ms);
  void flush_all();

 private:
  void set_epollout(Conn& conn, bool on);
  int epfd_;
  std::vector<Conn*> dirty_;
};

}  // namespace midge::bench
