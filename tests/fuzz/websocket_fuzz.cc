// libFuzzer target for the WebSocket server side: the handshake and the
// frame parser. The first byte picks how the rest is cut into reads; the
// result (MQTT payload, bytes queued to send, outcome) must not depend on
// how the bytes were split, since TCP may split them anywhere.
#include <cstdint>
#include <string>
#include <string_view>

#include "check.h"
#include "net/websocket.h"

using midge::net::WebSocket;

namespace {

struct Outcome {
  WebSocket::Result result = WebSocket::Result::kOk;
  std::string payload;
  std::string wire;
  bool operator==(const Outcome&) const = default;
};

// Feeds `input` in pieces of `step` bytes (0: in one piece), stopping at
// the first kClose/kError as the Connection does.
Outcome run(std::string_view input, size_t step) {
  WebSocket ws;
  Outcome out;
  while (!input.empty() && out.result == WebSocket::Result::kOk) {
    const size_t n = step == 0 ? input.size() : std::min(step, input.size());
    out.result = ws.feed(input.substr(0, n), out.payload);
    input.remove_prefix(n);
  }
  // The WebSocket layer queues only its own bytes (answers, pongs, closes):
  // no shared slices, nothing written yet.
  FUZZ_CHECK(ws.wire().shared_slices() == 0 && ws.wire().size() == ws.wire().bytes().size());
  out.wire = ws.wire().bytes();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t step = data[0] % 17 + 1;
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  (void)midge::net::websocket_handshake(input.substr(0, WebSocket::kMaxRequest));
  FUZZ_CHECK(run(input, 0) == run(input, step));
  return 0;
}
