// Server side of RFC 6455 for MQTT over WebSockets (MQTT 5.0 / 3.1.1
// section 6): the HTTP Upgrade handshake, un-framing of client frames into a
// plain MQTT byte stream, and framing of output. Pure (no sockets; but with
// http_dir, a plain HTTP GET reads a file, see http_request.h): the
// Connection feeds it bytes read and sends what it queues in `wire`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "net/out_queue.h"
#include "net/transport.h"

namespace midge::net {

enum WsOpcode : uint8_t {
  kWsContinuation = 0, kWsText = 1, kWsBinary = 2, kWsClose = 8, kWsPing = 9, kWsPong = 10,
};

// Sec-WebSocket-Accept for a Sec-WebSocket-Key [RFC 6455 4.2.2].
std::string websocket_accept_key(std::string_view key);

// The server's answer to one HTTP request head (up to and including the
// blank line; parsed by http_request.h): a 101 Switching Protocols, or a 400
// Bad Request.
struct WsHandshake {
  bool ok = false;
  std::string response;
  std::string protocol;  // the Sec-WebSocket-Protocol chosen, or empty
};
WsHandshake websocket_handshake(std::string_view head);

// Appends one unmasked server frame (FIN set) holding `payload`.
void append_ws_frame(std::string& out, uint8_t opcode, std::string_view payload);

struct HttpRequest;

class WebSocket final : public Transport {
 public:
  // `http_dir`: the listener's http_dir after realpath, or empty. With it, a
  // request that is not an upgrade is answered with a file (one request,
  // then the connection closes); without it, with 400.
  explicit WebSocket(std::string http_dir = {}) : http_dir_(std::move(http_dir)) {}

  // Requests larger than this (without their blank line) are refused.
  static constexpr size_t kMaxRequest = 8 * 1024;

  // Transport. feed: a bad request gets a 400 (an HTTP request for a file
  // its answer, then kClose, or a 4xx/5xx and kError), a bad frame a close
  // frame (kError); handshake answers, pongs and close replies go to wire().
  // push: the MQTT output becomes one binary frame; only its header and the
  // inline bytes are copied, shared payloads move as slices.
  Result feed(std::string_view data, std::string& payload) override;
  void push(OutQueue& out, bool closing) override;
  // Framed bytes to send: control frames and handshake answers inline, MQTT
  // data frames as their header plus the connection's slices.
  OutQueue& wire() override { return wire_; }
  const OutQueue& wire() const override { return wire_; }
  std::string error() const override;
  bool established() const override { return state_ == State::kOpen; }

  bool is_open() const { return state_ == State::kOpen; }
  bool close_sent() const { return close_sent_; }
  // Queues our close frame (once), e.g. when the broker ends the connection.
  void send_close(uint16_t code);

 private:
  enum class State { kHandshake, kOpen, kClosed };
  Result fail(const char* why, uint16_t code);
  Result feed_frames(std::string_view data, std::string& payload);
  Result end_control();
  Result answer_http(const HttpRequest& request);

  OutQueue wire_;
  State state_ = State::kHandshake;
  std::string request_;       // the handshake so far
  unsigned char head_[14];    // a frame header so far
  size_t head_len_ = 0;
  bool in_frame_ = false;     // head parsed, payload bytes follow
  bool in_message_ = false;   // a fragmented data message is open
  uint8_t opcode_ = 0;
  uint64_t remaining_ = 0;    // payload bytes of this frame still to come
  unsigned char mask_[4] = {0, 0, 0, 0};
  size_t mask_pos_ = 0;
  std::string control_;       // a control frame's payload
  bool close_sent_ = false;
  const char* error_ = nullptr;
  std::string error_text_;  // error_ of a refused HTTP request
  std::string http_dir_;
};

}  // namespace midge::net
