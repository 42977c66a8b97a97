// encode() and encoded_size(): one size pass, one reserve, one write pass.
// The encoder trusts its input (strings <= 65535 bytes, valid QoS, ...): it
// encodes what the broker or client built, not what a peer sent.
#include <cassert>

#include "protocol/codec.h"
#include "protocol/properties.h"
#include "protocol/wire.h"

namespace midge::protocol {
namespace {

using detail::binary_size;
using detail::properties_size;
using detail::put_binary;
using detail::put_u16;
using detail::put_u8;

size_t property_block_size(size_t props) {
  return varint_size(static_cast<uint32_t>(props)) + props;
}

uint8_t v3_suback_code(ReasonCode reason) {
  switch (reason) {
    case ReasonCode::kSuccess: return 0x00;
    case ReasonCode::kGrantedQos1: return 0x01;
    case ReasonCode::kGrantedQos2: return 0x02;
    default: return 0x80;  // 3.1.1 has a single failure code (3.9.3)
  }
}

// One struct per direction of work keeps the size and write logic for a
// packet type next to each other.
struct Encoder {
  Version version;
  bool v5() const { return version == Version::kV5; }

  // ---- first byte of the fixed header ----
  uint8_t header(const ConnectPacket&) const { return 0x10; }
  uint8_t header(const ConnackPacket&) const { return 0x20; }
  uint8_t header(const PublishPacket& p) const {
    return static_cast<uint8_t>(0x30 | (p.dup ? 0x08 : 0) | (p.qos << 1) | (p.retain ? 1 : 0));
  }
  uint8_t header(const AckPacket& p) const {
    return static_cast<uint8_t>((static_cast<uint8_t>(p.type) << 4) |
                                (p.type == PacketType::kPubrel ? 0x02 : 0));
  }
  uint8_t header(const SubscribePacket&) const { return 0x82; }
  uint8_t header(const SubackPacket&) const { return 0x90; }
  uint8_t header(const UnsubscribePacket&) const { return 0xA2; }
  uint8_t header(const UnsubackPacket&) const { return 0xB0; }
  uint8_t header(const PingreqPacket&) const { return 0xC0; }
  uint8_t header(const PingrespPacket&) const { return 0xD0; }
  uint8_t header(const DisconnectPacket&) const { return 0xE0; }
  uint8_t header(const AuthPacket&) const { return 0xF0; }

  // ---- body (remaining length) sizes ----
  size_t props(const Properties& p) const {
    return v5() ? property_block_size(properties_size(p)) : 0;
  }

  size_t body(const ConnectPacket& p) const {
    size_t n = binary_size(version == Version::kV31 ? "MQIsdp" : "MQTT") + 1 + 1 + 2;
    n += props(p.properties) + binary_size(p.client_id);
    if (p.will)
      n += props(p.will->properties) + binary_size(p.will->topic) + binary_size(p.will->payload);
    if (p.username) n += binary_size(*p.username);
    if (p.password) n += binary_size(*p.password);
    return n;
  }
  size_t body(const ConnackPacket& p) const { return 2 + props(p.properties); }
  size_t body(const PublishPacket& p) const {
    return binary_size(p.topic) + (p.qos > 0 ? 2 : 0) + props(p.properties) + p.payload.size();
  }
  size_t body(const AckPacket& p) const {
    if (!v5()) return 2;
    const size_t n = properties_size(p.properties);
    if (n == 0) return p.reason == ReasonCode::kSuccess ? 2 : 3;  // 3.4.2.1 short forms
    return 3 + property_block_size(n);
  }
  size_t body(const SubscribePacket& p) const {
    size_t n = 2 + props(p.properties);
    for (const auto& s : p.subscriptions) n += binary_size(s.filter) + 1;
    return n;
  }
  size_t body(const SubackPacket& p) const { return 2 + props(p.properties) + p.reasons.size(); }
  size_t body(const UnsubscribePacket& p) const {
    size_t n = 2 + props(p.properties);
    for (const auto& f : p.filters) n += binary_size(f);
    return n;
  }
  size_t body(const UnsubackPacket& p) const {
    return v5() ? 2 + props(p.properties) + p.reasons.size() : 2;
  }
  size_t body(const PingreqPacket&) const { return 0; }
  size_t body(const PingrespPacket&) const { return 0; }
  size_t body(const DisconnectPacket& p) const {
    return reason_and_props_size(p.reason, p.properties, true);
  }
  size_t body(const AuthPacket& p) const {
    return reason_and_props_size(p.reason, p.properties, false);
  }

  // DISCONNECT / AUTH: nothing for Success without properties (3.14.2.1,
  // 3.15.2.1). DISCONNECT may also stop after the reason code ("if the
  // Remaining Length is less than 2, a value of 0 is used", 3.14.2.2.1);
  // AUTH describes no such form, so it keeps the property length.
  // v3 DISCONNECT is empty.
  size_t reason_and_props_size(ReasonCode reason, const Properties& p, bool reason_only) const {
    if (!v5()) return 0;
    const size_t n = properties_size(p);
    if (n == 0 && reason == ReasonCode::kSuccess) return 0;
    if (n == 0 && reason_only) return 1;
    return 1 + property_block_size(n);
  }

  // ---- writers ----
  void write_props(const Properties& p, std::string& out) const {
    if (v5()) detail::encode_properties(p, properties_size(p), out);
  }

  void write(const ConnectPacket& p, std::string& out) const {
    put_binary(out, version == Version::kV31 ? "MQIsdp" : "MQTT");
    put_u8(out, static_cast<uint8_t>(version));
    uint8_t flags = p.clean_start ? 0x02 : 0;
    if (p.will) {
      flags |= static_cast<uint8_t>(0x04 | (p.will->qos << 3) | (p.will->retain ? 0x20 : 0));
    }
    if (p.password) flags |= 0x40;
    if (p.username) flags |= 0x80;
    put_u8(out, flags);
    put_u16(out, p.keep_alive);
    write_props(p.properties, out);
    put_binary(out, p.client_id);
    if (p.will) {
      write_props(p.will->properties, out);
      put_binary(out, p.will->topic);
      put_binary(out, p.will->payload);
    }
    if (p.username) put_binary(out, *p.username);
    if (p.password) put_binary(out, *p.password);
  }
  void write(const ConnackPacket& p, std::string& out) const {
    // 3.1 has no session present flag (the byte is reserved).
    put_u8(out, p.session_present && version != Version::kV31 ? 1 : 0);
    put_u8(out, v5() ? static_cast<uint8_t>(p.reason) : to_v3_connack_code(p.reason));
    write_props(p.properties, out);
  }
  void write(const PublishPacket& p, std::string& out) const {
    put_binary(out, p.topic);
    if (p.qos > 0) put_u16(out, p.packet_id);
    write_props(p.properties, out);
    out.append(p.payload);
  }
  void write(const AckPacket& p, std::string& out) const {
    put_u16(out, p.packet_id);
    if (!v5()) return;
    const size_t n = properties_size(p.properties);
    if (n == 0 && p.reason == ReasonCode::kSuccess) return;
    put_u8(out, static_cast<uint8_t>(p.reason));
    if (n > 0) detail::encode_properties(p.properties, n, out);
  }
  void write(const SubscribePacket& p, std::string& out) const {
    put_u16(out, p.packet_id);
    write_props(p.properties, out);
    for (const auto& s : p.subscriptions) {
      put_binary(out, s.filter);
      uint8_t o = s.options.max_qos;
      if (v5()) {
        o |= static_cast<uint8_t>((s.options.no_local ? 0x04 : 0) |
                                  (s.options.retain_as_published ? 0x08 : 0) |
                                  (s.options.retain_handling << 4));
      }
      put_u8(out, o);
    }
  }
  void write(const SubackPacket& p, std::string& out) const {
    put_u16(out, p.packet_id);
    write_props(p.properties, out);
    for (ReasonCode r : p.reasons) put_u8(out, v5() ? static_cast<uint8_t>(r) : v3_suback_code(r));
  }
  void write(const UnsubscribePacket& p, std::string& out) const {
    put_u16(out, p.packet_id);
    write_props(p.properties, out);
    for (const auto& f : p.filters) put_binary(out, f);
  }
  void write(const UnsubackPacket& p, std::string& out) const {
    put_u16(out, p.packet_id);
    if (!v5()) return;
    write_props(p.properties, out);
    for (ReasonCode r : p.reasons) put_u8(out, static_cast<uint8_t>(r));
  }
  void write(const PingreqPacket&, std::string&) const {}
  void write(const PingrespPacket&, std::string&) const {}
  void write(const DisconnectPacket& p, std::string& out) const {
    write_reason_and_props(p.reason, p.properties, true, out);
  }
  void write(const AuthPacket& p, std::string& out) const {
    write_reason_and_props(p.reason, p.properties, false, out);
  }
  void write_reason_and_props(ReasonCode reason, const Properties& p, bool reason_only,
                              std::string& out) const {
    const size_t size = reason_and_props_size(reason, p, reason_only);
    if (size == 0) return;
    put_u8(out, static_cast<uint8_t>(reason));
    if (size > 1) write_props(p, out);
  }
};

}  // namespace

size_t varint_size(uint32_t value) {
  if (value < 128) return 1;
  if (value < 16384) return 2;
  if (value < 2097152) return 3;
  return 4;
}

void append_varint(uint32_t value, std::string& out) {
  assert(value <= 268435455);
  do {
    uint8_t b = value & 0x7F;
    value >>= 7;
    if (value > 0) b |= 0x80;
    out.push_back(static_cast<char>(b));
  } while (value > 0);
}

size_t encoded_size(const Packet& packet, Version version) {
  const Encoder enc{version};
  const size_t body = std::visit([&](const auto& p) { return enc.body(p); }, packet);
  return 1 + varint_size(static_cast<uint32_t>(body)) + body;
}

void encode(const Packet& packet, Version version, std::string& out) {
  const Encoder enc{version};
  std::visit(
      [&](const auto& p) {
        const size_t body = enc.body(p);
        assert(body <= 268435455);
        out.reserve(out.size() + 1 + varint_size(static_cast<uint32_t>(body)) + body);
        put_u8(out, enc.header(p));
        append_varint(static_cast<uint32_t>(body), out);
        [[maybe_unused]] const size_t start = out.size();
        enc.write(p, out);
        assert(out.size() - start == body);
      },
      packet);
}

}  // namespace midge::protocol
