// Internal to src/protocol: byte cursor for decoding, appenders for encoding,
// and the error value the decoder functions pass around. Not a public header.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/reason_code.h"

namespace midge::protocol::detail {

// Outcome of one decoding step: kSuccess, or the reason code the connection
// must be closed with plus a static explanation.
struct Status {
  ReasonCode code = ReasonCode::kSuccess;
  const char* message = "";
  constexpr bool failed() const { return code != ReasonCode::kSuccess; }
};

constexpr Status kOk{};
constexpr Status malformed(const char* message) { return {ReasonCode::kMalformedPacket, message}; }
constexpr Status protocol_error(const char* message) {
  return {ReasonCode::kProtocolError, message};
}

// Reads big-endian fields from a buffer that holds a whole packet body: a
// short read is always a malformed packet, never "need more".
class Reader {
 public:
  explicit Reader(std::string_view data) : pos_(data.data()), end_(data.data() + data.size()) {}

  size_t remaining() const { return static_cast<size_t>(end_ - pos_); }
  bool empty() const { return pos_ == end_; }

  bool u8(uint8_t& v) {
    if (pos_ == end_) return false;
    v = static_cast<uint8_t>(*pos_++);
    return true;
  }
  bool u16(uint16_t& v) {
    if (remaining() < 2) return false;
    v = static_cast<uint16_t>((byte(0) << 8) | byte(1));
    pos_ += 2;
    return true;
  }
  bool u32(uint32_t& v) {
    if (remaining() < 4) return false;
    v = (static_cast<uint32_t>(byte(0)) << 24) | (static_cast<uint32_t>(byte(1)) << 16) |
        (static_cast<uint32_t>(byte(2)) << 8) | byte(3);
    pos_ += 4;
    return true;
  }
  // Variable byte integer (section 1.5.5): at most 4 bytes and, as 5.0
  // requires, the shortest form [MQTT-1.5.5-1]. False on any violation.
  bool varint(uint32_t& v) {
    uint32_t value = 0;
    for (int i = 0; i < 4; ++i) {
      if (pos_ == end_) return false;
      const auto b = static_cast<uint8_t>(*pos_++);
      value |= static_cast<uint32_t>(b & 0x7F) << (7 * i);
      if ((b & 0x80) == 0) {
        if (b == 0 && i > 0) return false;  // non-minimal encoding
        v = value;
        return true;
      }
    }
    return false;
  }
  bool take(size_t n, std::string_view& out) {
    if (remaining() < n) return false;
    out = std::string_view(pos_, n);
    pos_ += n;
    return true;
  }
  // Two-byte length followed by that many bytes (1.5.4 / 1.5.6).
  bool binary(std::string_view& out) {
    uint16_t n = 0;
    return u16(n) && take(n, out);
  }
  std::string_view rest() {
    std::string_view out(pos_, remaining());
    pos_ = end_;
    return out;
  }

 private:
  uint32_t byte(size_t i) const { return static_cast<uint8_t>(pos_[i]); }
  const char* pos_;
  const char* end_;
};

// UTF-8 well-formedness (topic.cc); is_valid_utf8() is the allow_nul=false case.
bool is_well_formed_utf8(std::string_view s, bool allow_nul);

inline void put_u8(std::string& out, uint8_t v) { out.push_back(static_cast<char>(v)); }
inline void put_u16(std::string& out, uint16_t v) {
  const char b[2] = {static_cast<char>(v >> 8), static_cast<char>(v & 0xFF)};
  out.append(b, 2);
}
inline void put_u32(std::string& out, uint32_t v) {
  const char b[4] = {static_cast<char>(v >> 24), static_cast<char>((v >> 16) & 0xFF),
                     static_cast<char>((v >> 8) & 0xFF), static_cast<char>(v & 0xFF)};
  out.append(b, 4);
}
// Length-prefixed string or binary data; callers guarantee size <= 65535.
inline void put_binary(std::string& out, std::string_view s) {
  put_u16(out, static_cast<uint16_t>(s.size()));
  out.append(s);
}
inline size_t binary_size(std::string_view s) { return 2 + s.size(); }

}  // namespace midge::protocol::detail
