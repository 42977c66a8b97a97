// The header of one final WebSocket frame (RFC 6455 section 5.2), shared by
// the broker's server side (src/net) and the client transport (src/client).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace midge::util {

// Appends FIN + `opcode` and the payload length in its shortest form (7, 16
// or 64 bits), with the MASK bit when `masked` (the caller then appends the
// 4-byte key and the masked payload).
inline void append_ws_frame_header(std::string& out, uint8_t opcode, uint64_t len, bool masked) {
  const char mask_bit = masked ? static_cast<char>(0x80) : 0;
  char head[10];
  size_t n = 0;
  head[n++] = static_cast<char>(0x80 | opcode);
  if (len < 126) {
    head[n++] = static_cast<char>(mask_bit | static_cast<char>(len));
  } else if (len <= 0xFFFF) {
    head[n++] = static_cast<char>(mask_bit | 126);
    head[n++] = static_cast<char>(len >> 8);
    head[n++] = static_cast<char>(len & 0xFF);
  } else {
    head[n++] = static_cast<char>(mask_bit | 127);
    for (int shift = 56; shift >= 0; shift -= 8) head[n++] = static_cast<char>((len >> shift) & 0xFF);
  }
  out.append(head, n);
}

}  // namespace midge::util
