// libFuzzer target for the MQTT decoder: any bytes, any version. Every
// packet the decoder accepts must survive encode -> decode unchanged.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "protocol/codec.h"

using midge::protocol::DecodeStatus;
using midge::protocol::Packet;
using midge::protocol::Version;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static constexpr Version kVersions[] = {Version::kV31, Version::kV311, Version::kV5};
  const Version version = kVersions[data[0] % 3];
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  midge::protocol::DecodeLimits limits;
  limits.max_packet_size = 1 << 16;
  while (!input.empty()) {
    Packet packet;
    const auto r = midge::protocol::decode(input, version, packet, limits);
    if (r.status != DecodeStatus::kPacket) break;
    if (r.consumed == 0 || r.consumed > input.size()) std::abort();
    // A CONNECT carries its own version; everything else uses ours.
    Version v = version;
    if (auto* c = std::get_if<midge::protocol::ConnectPacket>(&packet)) v = c->version;
    std::string bytes;
    midge::protocol::encode(packet, v, bytes);
    if (bytes.size() != midge::protocol::encoded_size(packet, v)) std::abort();
    Packet again;
    const auto r2 = midge::protocol::decode(bytes, v, again);
    if (r2.status != DecodeStatus::kPacket || r2.consumed != bytes.size() || !(again == packet)) std::abort();
    input.remove_prefix(r.consumed);
  }
  return 0;
}
