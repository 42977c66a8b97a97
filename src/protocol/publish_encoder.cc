#include "protocol/publish_encoder.h"

#include <cstring>
#include <utility>

#include "protocol/codec.h"

namespace midge::protocol {
namespace {

void put_u16(uint16_t v, std::string& out) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xff));
}


void put_str(std::string_view s, std::string& out) {
  put_u16(static_cast<uint16_t>(s.size()), out);
  out.append(s);
}

size_t property_length(const OutgoingPublish& p) {
  size_t n = p.pass_through.size();
  if (p.message_expiry) n += 5;
  if (p.topic_alias != 0) n += 3;
  for (uint32_t id : p.subscription_ids) n += 1 + varint_size(id);
  return n;
}

size_t remaining_length(const OutgoingPublish& p, Version version) {
  size_t n = 2 + p.topic.size() + p.payload.size();
  if (p.qos > 0) n += 2;
  if (version == Version::kV5) {
    const size_t props = property_length(p);
    n += varint_size(static_cast<uint32_t>(props)) + props;
  }
  return n;
}

}  // namespace

// The forwarded properties in the order the publisher sent them
// (ForwardOrder): each single property goes before the User Property it
// preceded.
std::string encode_pass_through_properties(const Properties& properties) {
  struct Single {
    uint16_t users_before;
    uint8_t rank;
    uint8_t index;
  };
  Single singles[4];
  size_t count = 0;
  const ForwardOrder& order = properties.forward_order;
  const bool present[4] = {properties.payload_format_indicator.has_value(), properties.content_type.has_value(),
                           properties.response_topic.has_value(), properties.correlation_data.has_value()};
  for (uint8_t i = 0; i < 4; ++i) {
    if (present[i]) singles[count++] = {order.users_before[i], order.rank[i], i};
  }
  // At most four: an insertion sort.
  for (size_t i = 1; i < count; ++i) {
    for (size_t j = i; j > 0; --j) {
      const Single& a = singles[j - 1];
      const Single& b = singles[j];
      if (a.users_before < b.users_before || (a.users_before == b.users_before && a.rank <= b.rank)) break;
      std::swap(singles[j - 1], singles[j]);
    }
  }
  std::string out;
  auto put_single = [&](uint8_t index) {
    switch (index) {
      case 0:
        out.push_back(0x01);
        out.push_back(static_cast<char>(*properties.payload_format_indicator));
        break;
      case 1: out.push_back(0x03); put_str(*properties.content_type, out); break;
      case 2: out.push_back(0x08); put_str(*properties.response_topic, out); break;
      default: out.push_back(0x09); put_str(*properties.correlation_data, out); break;
    }
  };
  size_t next = 0;
  size_t users = 0;
  for (const auto& [key, value] : properties.user_properties) {
    while (next < count && singles[next].users_before <= users) put_single(singles[next++].index);
    out.push_back(0x26);
    put_str(key, out);
    put_str(value, out);
    ++users;
  }
  while (next < count) put_single(singles[next++].index);
  return out;
}

size_t publish_size(const OutgoingPublish& p, Version version) {
  const size_t rl = remaining_length(p, version);
  return 1 + varint_size(static_cast<uint32_t>(rl)) + rl;
}

size_t publish_packet_id_offset(const OutgoingPublish& p, Version version) {
  const size_t rl = remaining_length(p, version);
  return 1 + varint_size(static_cast<uint32_t>(rl)) + 2 + p.topic.size();
}

// Appends in a few pieces into space reserved up front: resize() would
// zero-fill first (it showed as a memset in fan-out profiles), and
// push_back per byte showed too.
void encode_publish(const OutgoingPublish& p, Version version, std::string& out) {
  const size_t rl = remaining_length(p, version);
  // A remaining length over 268435455 has no encoding (2.1.4): write
  // nothing rather than a malformed packet. Callers check publish_size().
  if (rl > 268435455) return;
  const size_t props = version == Version::kV5 ? property_length(p) : 0;
  out.reserve(out.size() + 1 + varint_size(static_cast<uint32_t>(rl)) + rl -
              (p.omit_payload ? p.payload.size() : 0));
  // Fixed fields go through a small stack buffer, flushed before each
  // variable-length piece.
  char buf[64];
  size_t n = 0;
  auto u8 = [&](uint32_t v) { buf[n++] = static_cast<char>(v & 0xff); };
  auto u16 = [&](uint32_t v) {
    u8(v >> 8);
    u8(v);
  };
  auto varint = [&](uint32_t v) {
    do {
      uint32_t byte = v & 0x7f;
      v >>= 7;
      if (v) byte |= 0x80;
      u8(byte);
    } while (v);
  };
  auto bytes = [&](std::string_view s) {
    out.append(buf, n);
    n = 0;
    out.append(s);
  };
  uint32_t first = 0x30u | (uint32_t{p.qos} << 1);
  if (p.dup) first |= 0x08;
  if (p.retain) first |= 0x01;
  u8(first);
  varint(static_cast<uint32_t>(rl));
  u16(static_cast<uint32_t>(p.topic.size()));
  bytes(p.topic);
  if (p.qos > 0) u16(p.packet_id);
  if (version == Version::kV5) {
    varint(static_cast<uint32_t>(props));
    // Mosquitto's order: subscription identifiers, the publisher's
    // properties as it sent them, then the remaining expiry.
    for (uint32_t id : p.subscription_ids) {
      if (n > sizeof buf - 8) {
        out.append(buf, n);
        n = 0;
      }
      u8(0x0B);
      varint(id);
    }
    bytes(p.pass_through);
    if (p.message_expiry) {
      u8(0x02);
      u16(*p.message_expiry >> 16);
      u16(*p.message_expiry & 0xffff);
    }
    if (p.topic_alias != 0) {
      u8(0x23);
      u16(p.topic_alias);
    }
  }
  if (p.omit_payload) {
    out.append(buf, n);
  } else {
    bytes(p.payload);
  }
}

}  // namespace midge::protocol
