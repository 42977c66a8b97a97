// Codec micro-benchmarks: decoding and encoding PUBLISH for MQTT 3.1.1 and
// 5.0, the packet every message costs.
#include <benchmark/benchmark.h>

#include <string>

#include "protocol/codec.h"
#include "protocol/publish_encoder.h"

namespace {

using namespace midge::protocol;

PublishPacket sample(Version v, size_t payload, uint8_t qos) {
  PublishPacket p;
  p.qos = qos;
  p.packet_id = qos ? 42 : 0;
  p.topic = "sensors/building-7/floor-3/room-12/temperature";
  p.payload.assign(payload, 'p');
  if (v == Version::kV5) {
    p.properties.payload_format_indicator = 0;
    p.properties.message_expiry_interval = 3600;
    p.properties.content_type = "application/json";
    p.properties.user_properties.push_back({"trace", "abc123"});
  }
  return p;
}

// Args: payload bytes, QoS.
void decode_publish(benchmark::State& state, Version v) {
  std::string wire;
  encode(Packet{sample(v, static_cast<size_t>(state.range(0)),
                       static_cast<uint8_t>(state.range(1)))},
         v, wire);
  // Decode a buffer of 64 back-to-back packets, as after one large read().
  std::string buf;
  for (int i = 0; i < 64; ++i) buf += wire;
  Packet packet;
  for (auto _ : state) {
    size_t off = 0;
    while (off < buf.size()) {
      const DecodeResult r = decode(std::string_view(buf).substr(off), v, packet);
      if (r.status != DecodeStatus::kPacket) state.SkipWithError("decode failed");
      off += r.consumed;
    }
    benchmark::DoNotOptimize(packet);
  }
  state.SetItemsProcessed(state.iterations() * 64);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(buf.size()));
}

void encode_publish_generic(benchmark::State& state, Version v) {
  const Packet packet{sample(v, static_cast<size_t>(state.range(0)),
                             static_cast<uint8_t>(state.range(1)))};
  std::string out;
  for (auto _ : state) {
    out.clear();
    encode(packet, v, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
}

// The server's fast path: pass-through properties encoded once, then one
// encode_publish per subscriber.
void encode_publish_fast(benchmark::State& state, Version v) {
  const PublishPacket p = sample(v, static_cast<size_t>(state.range(0)),
                                 static_cast<uint8_t>(state.range(1)));
  const std::string pass = encode_pass_through_properties(p.properties);
  OutgoingPublish out;
  out.topic = p.topic;
  out.payload = p.payload;
  out.qos = p.qos;
  out.packet_id = p.packet_id;
  out.pass_through = pass;
  if (v == Version::kV5) out.message_expiry = 3599;
  std::string buf;
  buf.reserve(64 * 1024);
  for (auto _ : state) {
    buf.clear();
    for (int i = 0; i < 64; ++i) encode_publish(out, v, buf);
    benchmark::DoNotOptimize(buf.data());
  }
  state.SetItemsProcessed(state.iterations() * 64);
}

void args(benchmark::internal::Benchmark* b) {
  for (int64_t size : {16, 64, 1024, 65536}) b->Args({size, 0});
  b->Args({64, 1});
}

BENCHMARK_CAPTURE(decode_publish, v311, Version::kV311)->Apply(args);
BENCHMARK_CAPTURE(decode_publish, v5, Version::kV5)->Apply(args);
BENCHMARK_CAPTURE(encode_publish_generic, v311, Version::kV311)->Apply(args);
BENCHMARK_CAPTURE(encode_publish_generic, v5, Version::kV5)->Apply(args);
BENCHMARK_CAPTURE(encode_publish_fast, v311, Version::kV311)->Apply(args);
BENCHMARK_CAPTURE(encode_publish_fast, v5, Version::kV5)->Apply(args);

}  // namespace
