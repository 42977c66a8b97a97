#include "net/websocket.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>

#include "util/websocket_frame.h"

namespace midge::net {
namespace {

constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
constexpr std::string_view kBadRequest =
    "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Whether the comma-separated `list` holds `token` (case-insensitive).
bool has_token(std::string_view list, std::string_view token) {
  while (true) {
    const size_t comma = list.find(',');
    if (iequals(trim(list.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) return false;
    list.remove_prefix(comma + 1);
  }
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
  WsHandshake h;
  h.response = kBadRequest;
  size_t eol = head.find("\r\n");
  if (eol == std::string_view::npos) return h;
  // Request line: GET <any path> HTTP/1.1
  const std::string_view line = head.substr(0, eol);
  const size_t sp1 = line.find(' ');
  const size_t sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1 || line.substr(0, sp1) != "GET" ||
      line.substr(sp2 + 1).substr(0, 7) != "HTTP/1.") {
    return h;
  }
  std::string connection, upgrade, protocols;
  std::string_view key, version;
  bool has_key = false, has_version = false;
  head.remove_prefix(eol + 2);
  while ((eol = head.find("\r\n")) != std::string_view::npos && eol > 0) {
    const std::string_view field = head.substr(0, eol);
    head.remove_prefix(eol + 2);
    const size_t colon = field.find(':');
    if (colon == std::string_view::npos || colon == 0) return h;
    const std::string_view name = field.substr(0, colon);
    const std::string_view value = trim(field.substr(colon + 1));
    // Repeated list headers combine as one comma-separated list.
    auto add = [&](std::string& list) { list += list.empty() ? "" : ","; list += value; };
    if (iequals(name, "Connection")) {
      add(connection);
    } else if (iequals(name, "Upgrade")) {
      add(upgrade);
    } else if (iequals(name, "Sec-WebSocket-Protocol")) {
      add(protocols);
    } else if (iequals(name, "Sec-WebSocket-Key")) {
      key = value;
      has_key = true;
    } else if (iequals(name, "Sec-WebSocket-Version")) {
      version = value;
      has_version = true;
    }
  }
  if (!has_token(connection, "upgrade") || !has_token(upgrade, "websocket") || !has_version ||
      version != "13" || !has_key || key.empty()) {
    return h;
  }
  for (const char* p : {"mqtt", "mqttv3.1"}) {
    if (has_token(protocols, p)) {
      h.protocol = p;
      break;
    }
  }
  h.ok = true;
  h.response = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Accept: " + websocket_accept_key(key) + "\r\n";
  if (!h.protocol.empty()) h.response += "Sec-WebSocket-Protocol: " + h.protocol + "\r\n";
  h.response += "\r\n";
  return h;
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
  const WsHandshake h = websocket_handshake(std::string_view(request_).substr(0, head_size));
  if (!h.ok) return fail("bad WebSocket handshake", 0);
  wire_.bytes().append(h.response);
  state_ = State::kOpen;
  // Frames may follow the request in the same read.
  const size_t used = head_size - had;  // of `data`
  std::string().swap(request_);
  return feed_frames(data.substr(used), payload);
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
