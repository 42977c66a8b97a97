#include "client/ws_transport.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include "util/websocket_frame.h"

namespace midge::client {
namespace {

constexpr size_t kMaxHeader = 16 * 1024;   // HTTP response head we accept
constexpr size_t kMaxFrame = 256 * 1024;   // payload bytes per frame we send
constexpr size_t kReadChunk = 64 * 1024;

enum Opcode : uint8_t {
  kContinuation = 0, kText = 1, kBinary = 2, kClose = 8, kPing = 9, kPong = 10,
};

Error ws_error(const std::string& what) {
  Error e;
  e.kind = ErrorKind::kWebSocket;
  e.message = "WebSocket: " + what;
  return e;
}

std::string base64(const unsigned char* data, size_t len) {
  std::string out(4 * ((len + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data,
                          static_cast<int>(len));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& ch : out) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

// Appends one masked client frame [RFC 6455 5.2]; we never fragment a write.
void append_frame(std::string& out, uint8_t opcode, const char* data, size_t len) {
  util::append_ws_frame_header(out, opcode, len, /*masked=*/true);
  unsigned char mask[4];
  RAND_bytes(mask, sizeof mask);
  out.append(reinterpret_cast<const char*>(mask), sizeof mask);
  size_t start = out.size();
  out.append(data, len);
  for (size_t i = 0; i < len; ++i) out[start + i] = static_cast<char>(out[start + i] ^ mask[i & 3]);
}

class WsTransport final : public Transport {
 public:
  WsTransport(TransportPtr lower, std::string leftover)
      : lower_(std::move(lower)), raw_(std::move(leftover)), unparsed_(!raw_.empty()) {}

  int fd() const override { return lower_->fd(); }

  ssize_t read(char* buf, size_t len, Error& error) override {
    if (payload_pos_ == payload_.size() && !closed_) {
      if (!unparsed_ && !fill(error)) return -1;
      unparsed_ = false;
      if (!parse(error) || !flush_out(error)) return -1;
    }
    size_t n = std::min(len, payload_.size() - payload_pos_);
    if (n > 0) {
      std::memcpy(buf, payload_.data() + payload_pos_, n);
      payload_pos_ += n;
      return static_cast<ssize_t>(n);
    }
    if (closed_) {
      error.kind = ErrorKind::kClosed;
      error.message = "connection closed by server";
      return -1;
    }
    return 0;
  }

  ssize_t write(const char* buf, size_t len, Error& error) override {
    if (!flush_out(error)) return -1;
    if (out_pos_ < out_.size() || len == 0) return 0;
    size_t n = std::min(len, kMaxFrame);
    append_frame(out_, kBinary, buf, n);
    if (!flush_out(error)) return -1;
    return static_cast<ssize_t>(n);
  }

  bool has_buffered_input() const override {
    return unparsed_ || closed_ || payload_pos_ < payload_.size() || lower_->has_buffered_input();
  }
  bool has_pending_output() const override {
    return out_pos_ < out_.size() || lower_->has_pending_output();
  }
  short read_wait_events() const override { return lower_->read_wait_events(); }
  short write_wait_events() const override { return lower_->write_wait_events(); }

  void shutdown() override {
    if (!close_sent_) {
      const char normal[2] = {0x03, static_cast<char>(0xE8)};  // 1000, normal closure
      append_frame(out_, kClose, normal, sizeof normal);
      close_sent_ = true;
    }
    Error ignored;
    flush_out(ignored);
    lower_->shutdown();
  }

 private:
  bool fill(Error& error) {
    size_t old = raw_.size();
    raw_.resize(old + kReadChunk);
    ssize_t n = lower_->read(raw_.data() + old, kReadChunk, error);
    raw_.resize(old + static_cast<size_t>(std::max<ssize_t>(n, 0)));
    return n >= 0;
  }

  bool flush_out(Error& error) {
    while (out_pos_ < out_.size()) {
      ssize_t n = lower_->write(out_.data() + out_pos_, out_.size() - out_pos_, error);
      if (n < 0) return false;
      if (n == 0) break;
      out_pos_ += static_cast<size_t>(n);
    }
    if (out_pos_ == out_.size()) {
      out_.clear();
      out_pos_ = 0;
    }
    return true;
  }

  // Decodes every complete frame header (and whatever payload is there) in raw_.
  bool parse(Error& error) {
    if (payload_pos_ == payload_.size()) {
      payload_.clear();
      payload_pos_ = 0;
    }
    size_t pos = 0;
    for (;;) {
      size_t avail = raw_.size() - pos;
      if (data_left_ > 0) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(data_left_, avail));
        if (n == 0) break;
        payload_.append(raw_, pos, n);
        pos += n;
        data_left_ -= n;
        continue;
      }
      size_t used = 0;
      if (!parse_frame(std::string_view(raw_).substr(pos), used, error)) return false;
      if (used == 0 || closed_) break;
      pos += used;
    }
    raw_.erase(0, pos);
    return true;
  }

  // One frame header at the front of `in`; control frames are taken whole.
  // `used` stays 0 when more bytes are needed.
  bool parse_frame(std::string_view in, size_t& used, Error& error) {
    if (in.size() < 2) return true;
    auto byte = [&](size_t i) { return static_cast<uint8_t>(in[i]); };
    uint8_t opcode = byte(0) & 0x0F;
    if ((byte(0) & 0x70) != 0) return fail(error, "reserved bits set in a frame");
    if ((byte(1) & 0x80) != 0) return fail(error, "masked frame from the server");  // [5.1]
    uint64_t len = byte(1) & 0x7F;
    size_t header = 2 + (len == 126 ? 2 : len == 127 ? 8 : 0);
    if (in.size() < header) return true;
    if (header > 2) {
      len = 0;
      for (size_t i = 2; i < header; ++i) len = (len << 8) | byte(i);
    }
    if (opcode == kBinary || opcode == kContinuation) {
      data_left_ = len;
      used = header;
      return true;
    }
    if (opcode == kText) return fail(error, "text frame (MQTT needs binary frames)");
    if (opcode != kClose && opcode != kPing && opcode != kPong) {
      return fail(error, "unknown frame opcode");
    }
    if (len > 125 || (byte(0) & 0x80) == 0) return fail(error, "bad control frame");
    if (in.size() < header + len) return true;
    control(opcode, in.substr(header, len));
    used = header + len;
    return true;
  }

  void control(uint8_t opcode, std::string_view body) {
    if (opcode == kPing && !close_sent_) {
      append_frame(out_, kPong, body.data(), body.size());
    } else if (opcode == kClose) {
      if (!close_sent_) {  // echo the status code [RFC 6455 5.5.1]
        append_frame(out_, kClose, body.data(), std::min<size_t>(body.size(), 2));
        close_sent_ = true;
      }
      closed_ = true;
    }
  }

  bool fail(Error& error, const char* what) {
    error = ws_error(what);
    return false;
  }

  TransportPtr lower_;
  std::string raw_;        // bytes from below not yet decoded
  bool unparsed_;          // raw_ holds bytes that came with the handshake response
  uint64_t data_left_ = 0; // payload bytes of the current data frame still to come
  std::string payload_;    // decoded MQTT bytes not yet read
  size_t payload_pos_ = 0;
  std::string out_;        // framed bytes not yet written below
  size_t out_pos_ = 0;
  bool close_sent_ = false;
  bool closed_ = false;
};

std::string host_header(const ConnectOptions& o) {
  std::string host = o.host.find(':') != std::string::npos ? "[" + o.host + "]" : o.host;
  uint16_t default_port = o.tls.enabled ? 443 : 80;
  if (o.port != default_port) host += ":" + std::to_string(o.port);
  return host;
}

// Checks the 101 response head [RFC 6455 4.1, client requirements 1-6].
bool check_response(std::string_view head, const std::string& key, Error& error) {
  size_t eol = head.find("\r\n");
  std::string_view status = head.substr(0, eol);
  if (!status.starts_with("HTTP/1.1 101")) {
    error = ws_error("upgrade refused: " + std::string(status));
    return false;
  }
  bool upgrade = false, connection = false, accept = false;
  std::string expected = websocket_accept(key);
  while (eol != std::string_view::npos && eol + 2 < head.size()) {
    size_t start = eol + 2;
    eol = head.find("\r\n", start);
    std::string_view line = head.substr(start, eol == std::string_view::npos ? eol : eol - start);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string name = to_lower(trim(line.substr(0, colon)));
    std::string_view value = trim(line.substr(colon + 1));
    if (name == "upgrade") upgrade = to_lower(value) == "websocket";
    if (name == "connection") connection = to_lower(value).find("upgrade") != std::string::npos;
    if (name == "sec-websocket-accept") accept = value == expected;
    if (name == "sec-websocket-protocol" && to_lower(value) != "mqtt") {
      error = ws_error("server chose subprotocol '" + std::string(value) + "'");
      return false;
    }
  }
  if (!upgrade || !connection || !accept) {
    error = ws_error(!accept ? "bad Sec-WebSocket-Accept" : "bad Upgrade/Connection headers");
    return false;
  }
  return true;
}

}  // namespace

std::string websocket_accept(std::string_view key) {
  std::string text(key);
  text += "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  return base64(digest, sizeof digest);
}

TransportPtr websocket_handshake(TransportPtr lower, const ConnectOptions& options,
                                 Deadline deadline, Error& error) {
  unsigned char nonce[16];
  RAND_bytes(nonce, sizeof nonce);
  std::string key = base64(nonce, sizeof nonce);
  std::string path = options.websocket.path.empty() ? "/" : options.websocket.path;
  std::string request = "GET " + path + " HTTP/1.1\r\nHost: " + host_header(options) +
                        "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Key: " + key +
                        "\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n";
  if (!write_all(*lower, request, deadline, error)) return nullptr;
  std::string response;
  size_t end = std::string::npos;
  while ((end = response.find("\r\n\r\n")) == std::string::npos) {
    if (response.size() > kMaxHeader) {
      error = ws_error("response header too long");
      return nullptr;
    }
    if (!read_more(*lower, response, deadline, error)) return nullptr;
  }
  if (!check_response(std::string_view(response).substr(0, end + 2), key, error)) return nullptr;
  return std::make_unique<WsTransport>(std::move(lower), response.substr(end + 4));
}

}  // namespace midge::client
