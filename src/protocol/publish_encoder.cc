#include "protocol/publish_encoder.h"

#include "protocol/codec.h"

namespace midge::protocol {
namespace {

void put_u16(uint16_t v, std::string& out) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xff));
}

void put_u32(uint32_t v, std::string& out) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
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

std::string encode_pass_through_properties(const Properties& properties) {
  std::string out;
  if (properties.payload_format_indicator) {
    out.push_back(0x01);
    out.push_back(static_cast<char>(*properties.payload_format_indicator));
  }
  if (properties.content_type) {
    out.push_back(0x03);
    put_str(*properties.content_type, out);
  }
  if (properties.response_topic) {
    out.push_back(0x08);
    put_str(*properties.response_topic, out);
  }
  if (properties.correlation_data) {
    out.push_back(0x09);
    put_str(*properties.correlation_data, out);
  }
  for (const auto& [key, value] : properties.user_properties) {
    out.push_back(0x26);
    put_str(key, out);
    put_str(value, out);
  }
  return out;
}

size_t publish_size(const OutgoingPublish& p, Version version) {
  const size_t rl = remaining_length(p, version);
  return 1 + varint_size(static_cast<uint32_t>(rl)) + rl;
}

void encode_publish(const OutgoingPublish& p, Version version, std::string& out) {
  const size_t rl = remaining_length(p, version);
  out.reserve(out.size() + 5 + rl);
  uint8_t first = 0x30 | static_cast<uint8_t>(p.qos << 1);
  if (p.dup) first |= 0x08;
  if (p.retain) first |= 0x01;
  out.push_back(static_cast<char>(first));
  append_varint(static_cast<uint32_t>(rl), out);
  put_str(p.topic, out);
  if (p.qos > 0) put_u16(p.packet_id, out);
  if (version == Version::kV5) {
    append_varint(static_cast<uint32_t>(property_length(p)), out);
    out.append(p.pass_through);
    if (p.message_expiry) {
      out.push_back(0x02);
      put_u32(*p.message_expiry, out);
    }
    if (p.topic_alias != 0) {
      out.push_back(0x23);
      put_u16(p.topic_alias, out);
    }
    for (uint32_t id : p.subscription_ids) {
      out.push_back(0x0B);
      append_varint(id, out);
    }
  }
  out.append(p.payload);
}

}  // namespace midge::protocol
