// libFuzzer target for the MQTT decoder: any bytes, any version (the first
// byte picks 3.1, 3.1.1 or 5). Every packet decode accepts must survive
// encode -> decode unchanged, and decode_borrowed (the server's path) must
// agree with decode on every packet, PUBLISH included.
#include <cstdint>
#include <string>
#include <string_view>

#include "check.h"
#include "protocol/codec.h"

namespace p = midge::protocol;

namespace {

void check_round_trip(const p::Packet& packet, p::Version version) {
  // A CONNECT carries its own version; everything else uses ours.
  if (auto* c = std::get_if<p::ConnectPacket>(&packet)) version = c->version;
  std::string bytes;
  p::encode(packet, version, bytes);
  FUZZ_CHECK(bytes.size() == p::encoded_size(packet, version));
  p::Packet again;
  const auto r = p::decode(bytes, version, again);
  FUZZ_CHECK(r.status == p::DecodeStatus::kPacket && r.consumed == bytes.size() && again == packet);
}

void check_borrowed(std::string_view input, p::Version version, const p::Packet& packet,
                    const p::DecodeResult& r, const p::DecodeLimits& limits) {
  p::Packet other;
  p::PublishView view;
  bool is_publish = false;
  const auto b = p::decode_borrowed(input, version, other, view, &is_publish, limits);
  FUZZ_CHECK(b.status == r.status && b.consumed == r.consumed);
  if (r.status == p::DecodeStatus::kError) FUZZ_CHECK(b.error == r.error);
  if (r.status != p::DecodeStatus::kPacket) return;
  const auto* pub = std::get_if<p::PublishPacket>(&packet);
  FUZZ_CHECK(is_publish == (pub != nullptr));
  if (!pub) {
    FUZZ_CHECK(other == packet);
    return;
  }
  const p::PublishView want = p::view_of(*pub);
  FUZZ_CHECK(view.dup == want.dup && view.qos == want.qos && view.retain == want.retain &&
        view.topic == want.topic && view.packet_id == want.packet_id &&
        view.payload == want.payload && view.properties == want.properties);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static constexpr p::Version kVersions[] = {p::Version::kV31, p::Version::kV311, p::Version::kV5};
  const p::Version version = kVersions[data[0] % 3];
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  p::DecodeLimits limits;
  limits.max_packet_size = 1 << 16;
  while (!input.empty()) {
    p::Packet packet;
    const auto r = p::decode(input, version, packet, limits);
    check_borrowed(input, version, packet, r, limits);
    if (r.status != p::DecodeStatus::kPacket) break;
    FUZZ_CHECK(r.consumed != 0 && r.consumed <= input.size());
    FUZZ_CHECK(p::frame_size(input) == r.consumed);
    check_round_trip(packet, version);
    input.remove_prefix(r.consumed);
  }
  return 0;
}
