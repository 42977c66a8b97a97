#include "net/websocket.h"

#include <openssl/evp.h>

#include <algorithm>

#include "net/http_request.h"
#include "util/websocket_frame.h"

namespace midge::net {
namespace {

constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
constexpr std::string_view kBadRequest =
    "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

// Whether the request asks for a WebSocket (else it is plain HTTP).
bool wants_upgrade(const HttpRequest& r) { return r.has_token("Upgrade", "websocket"); }

// The 101 answer to a parsed upgrade request [RFC 6455 4.2.1, 4.2.2].
WsHandshake answer_upgrade(const HttpRequest& r) {
  WsHandshake h;
  h.response = std::string(kBadRequest);
  const std::string* key = r.last("Sec-WebSocket-Key");
  const std::string* version = r.last("Sec-WebSocket-Version");
  if (r.method != "GET" || r.has_body || !r.has_token("Connection", "upgrade") || !wants_upgrade(r) ||
      !version || *version != "13" || !key || key->empty()) {
    return h;
  }
  for (const char* p : {"mqtt", "mqttv3.1"}) {
    if (r.has_token("Sec-WebSocket-Protocol", p)) {
      h.protocol = p;
      break;
    }
  }
  h.ok = true;
  h.response = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Accept: " + websocket_accept_key(*key) + "\r\n";
  if (!h.protocol.empty()) h.response += "Sec-WebSocket-Protocol: " + h.protocol + "\r\n";
  h.response += "\r\n";
  return h;
}

}  // namespace

std::string websocket_accept_key(std::string_view key) {
  std::string input(key);
  input += kGuid;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  EVP_Digest(input.data(), input.size(), digest, &digest_len, EVP_sha1(), nullptr);
  std::string out(4 * ((digest_len + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), digest, static_cast<int>(digest_len));
  out.resize(static_cast<size_t>(n));
  return out;
}

WsHandshake websocket_handshake(std::string_view head) {
  const HttpParse p = parse_http_request(head, WebSocket::kMaxRequest + 4);
  if (p.status != HttpParse::kDone) return WsHandshake{false, std::string(kBadRequest), {}};
  return answer_upgrade(p.request);
}

void append_ws_frame(std::string& out, uint8_t opcode, std::string_view payload) {
  out.reserve(out.size() + 10 + payload.size());
  util::append_ws_frame_header(out, opcode, payload.size(), /*masked=*/false);
  out.append(payload);
}

void WebSocket::send_close(uint16_t code) {
  if (close_sent_ || state_ == State::kHandshake) return;
  const char body[2] = {static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)};
  append_ws_frame(wire_.bytes(), kWsClose, std::string_view(body, 2));
  close_sent_ = true;
}

// For the log: an HTTP refusal says what was asked, a bad upgrade or frame
// that it is WebSocket's.
std::string WebSocket::error() const {
  if (!error_) return "";
  if (!error_text_.empty() && error_ == error_text_.c_str()) return error_text_;
  return std::string("WebSocket protocol error (") + error_ + ")";
}

void WebSocket::push(OutQueue& out, bool closing) {
  if (!out.empty()) {
    if (is_open() && !close_sent_) {
      util::append_ws_frame_header(wire_.bytes(), kWsBinary, out.size(), /*masked=*/false);
      out.move_to(wire_);
    } else {
      out.release();
    }
  }
  if (closing) send_close(1000);  // after the last MQTT bytes
}

WebSocket::Result WebSocket::fail(const char* why, uint16_t code) {
  error_ = why;
  if (state_ == State::kHandshake) {
    wire_.bytes().append(kBadRequest);
    close_sent_ = true;  // no frames on a refused upgrade
  } else {
    send_close(code);
  }
  state_ = State::kClosed;
  return Result::kError;
}

WebSocket::Result WebSocket::feed(std::string_view data, std::string& payload) {
  if (state_ == State::kOpen) return feed_frames(data, payload);
  if (state_ == State::kClosed) return Result::kClose;
  // The handshake: look for the blank line from where the last look ended.
  const size_t had = request_.size();
  const size_t from = had >= 3 ? had - 3 : 0;
  request_.append(data.substr(0, kMaxRequest + 4 - std::min(request_.size(), kMaxRequest + 4)));
  const size_t end = request_.find("\r\n\r\n", from);
  if (end == std::string::npos) {
    if (request_.size() >= kMaxRequest + 4) return fail("request too large", 0);
    return Result::kOk;
  }
  const size_t head_size = end + 4;
  const HttpParse p = parse_http_request(std::string_view(request_).substr(0, head_size), kMaxRequest + 4);
  if (p.status != HttpParse::kDone) return fail("bad HTTP request", 0);
  if (!http_dir_.empty() && !wants_upgrade(p.request)) return answer_http(p.request);
  const WsHandshake h = answer_upgrade(p.request);
  if (!h.ok) return fail("bad WebSocket handshake", 0);
  wire_.bytes().append(h.response);
  state_ = State::kOpen;
  // Frames may follow the request in the same read.
  const size_t used = head_size - had;  // of `data`
  std::string().swap(request_);
  return feed_frames(data.substr(used), payload);
}

// A plain HTTP request on a listener with http_dir: one answer, then the
// connection closes (no keep-alive: one request per connection).
WebSocket::Result WebSocket::answer_http(const HttpRequest& request) {
  HttpAnswer a = serve_http_file(http_dir_, request);
  std::string().swap(request_);
  state_ = State::kClosed;
  close_sent_ = true;  // no frames after an HTTP answer
  if (wire_.empty()) {
    wire_.bytes() = std::move(a.response);
  } else {
    wire_.bytes().append(a.response);
  }
  if (a.status < 400) return Result::kClose;
  // The log line (Connection) says what was refused; the target is printable (Beast checks it).
  error_text_ = "HTTP " + std::to_string(a.status) + " for " + request.method + " " +
                request.target.substr(0, 200) + ": " + a.why;
  error_ = error_text_.c_str();
  return Result::kError;
}

WebSocket::Result WebSocket::feed_frames(std::string_view data, std::string& payload) {
  while (!data.empty()) {
    if (!in_frame_) {
      head_[head_len_++] = static_cast<unsigned char>(data.front());
      data.remove_prefix(1);
      if (head_len_ < 2) continue;
      const uint8_t len7 = head_[1] & 0x7F;
      const size_t need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + 4;
      if (!(head_[1] & 0x80)) return fail("unmasked frame", 1002);  // [RFC 6455 5.1]
      if (head_len_ < need) continue;
      // A whole header.
      const bool fin = head_[0] & 0x80;
      const uint8_t opcode = head_[0] & 0x0F;
      if (head_[0] & 0x70) return fail("reserved bits set", 1002);
      uint64_t len = len7;
      size_t p = 2;
      if (len7 == 126) {
        len = (uint64_t{head_[2]} << 8) | head_[3];
        p = 4;
      } else if (len7 == 127) {
        len = 0;
        for (size_t i = 2; i < 10; ++i) len = (len << 8) | head_[i];
        if (len >> 63) return fail("bad frame length", 1002);
        p = 10;
      }
      std::copy(head_ + p, head_ + p + 4, mask_);
      head_len_ = 0;
      if (opcode >= 8) {
        if (!fin || len > 125) return fail("bad control frame", 1002);
        if (opcode != kWsClose && opcode != kWsPing && opcode != kWsPong) return fail("unknown opcode", 1002);
        control_.clear();
      } else if (opcode == kWsText) {
        return fail("text frame (MQTT needs binary frames)", 1003);
      } else if (opcode == kWsBinary) {
        if (in_message_) return fail("unfinished fragmented message", 1002);
        in_message_ = !fin;
      } else if (opcode == kWsContinuation) {
        if (!in_message_) return fail("continuation without a message", 1002);
        in_message_ = !fin;
      } else {
        return fail("unknown opcode", 1002);
      }
      opcode_ = opcode;
      remaining_ = len;
      mask_pos_ = 0;
      in_frame_ = true;
      if (remaining_ == 0) {
        in_frame_ = false;
        if (opcode_ >= 8) {
          if (Result r = end_control(); r != Result::kOk) return r;
        }
      }
      continue;
    }
    const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, data.size()));
    std::string& to = opcode_ >= 8 ? control_ : payload;
    const size_t start = to.size();
    to.append(data.data(), n);
    char* b = to.data() + start;
    for (size_t i = 0; i < n; ++i) b[i] = static_cast<char>(b[i] ^ mask_[(mask_pos_ + i) & 3]);
    mask_pos_ = (mask_pos_ + n) & 3;
    remaining_ -= n;
    data.remove_prefix(n);
    if (remaining_ == 0) {
      in_frame_ = false;
      if (opcode_ >= 8) {
        if (Result r = end_control(); r != Result::kOk) return r;
      }
    }
  }
  return Result::kOk;
}

WebSocket::Result WebSocket::end_control() {
  if (opcode_ == kWsPing) {
    append_ws_frame(wire_.bytes(), kWsPong, control_);
  } else if (opcode_ == kWsClose) {
    // Echo the status code [RFC 6455 5.5.1].
    if (!close_sent_) {
      append_ws_frame(wire_.bytes(), kWsClose, std::string_view(control_).substr(0, control_.size() >= 2 ? 2 : 0));
      close_sent_ = true;
    }
    state_ = State::kClosed;
    return Result::kClose;
  }
  return Result::kOk;  // pong: nothing to do
}

}  // namespace midge::net
