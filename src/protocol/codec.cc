// decode(): fixed header, then one function per packet type. Reason code
// choices (the connection driver turns them into CONNACK/DISCONNECT):
// - kMalformedPacket: anything that is not a valid encoding: lengths, UTF-8
//   [MQTT-1.5.4-1], fixed header flags [MQTT-2.2.2-2], reserved bits, unknown
//   property ids, QoS 3 in PUBLISH/CONNECT (3.3.1.2), reason codes that are
//   not defined for the packet.
// - kMalformedPacket also: a property not valid for the packet type (5.0
//   2.2.2.2), packet id 0 in SUBSCRIBE/UNSUBSCRIBE (as Mosquitto).
// - kProtocolError: well-formed but forbidden: duplicate properties, packet
//   id 0 (PUBLISH, acks), empty SUBSCRIBE/UNSUBSCRIBE/SUBACK/UNSUBACK,
//   retain handling 3 and maximum QoS 3 in v5 SUBSCRIBE (3.8.3.1), no local
//   on a shared subscription [MQTT-3.8.3-4], empty v5 topic without alias.
// - kTopicNameInvalid: a PUBLISH or will topic with '+'/'#' or empty (v3).
//   kTopicFilterInvalid: an UNSUBSCRIBE filter with bad wildcard or $share
//   syntax (SUBSCRIBE filters are checked by the server, one by one). Both are DISCONNECT reason codes in 5.0 (3.14.2.1) and
//   CONNACK allows 0x90 for the will topic (3.2.2.2).
// - kUnsupportedProtocolVersion: CONNECT with an unknown name/level pair.
// - kPayloadFormatInvalid: payload format indicator 1 and a payload (or will
//   payload) that is not UTF-8 (3.3.2.3.2).
// - kPacketTooLarge: fixed header announces more than limits.max_packet_size.
// On kError the content of `packet` is unspecified.
#include "protocol/codec.h"

#include <initializer_list>

#include "protocol/properties.h"
#include "protocol/topic.h"
#include "protocol/wire.h"

namespace midge::protocol {
namespace {

using detail::malformed;
using detail::PropertyContext;
using detail::protocol_error;
using detail::Reader;
using detail::Status;

constexpr Status kOk = detail::kOk;
constexpr Status kTruncated = malformed("packet shorter than its fields");
constexpr Status kTrailing = malformed("unexpected bytes at end of packet");
constexpr Status kBadUtf8 = malformed("string is not valid UTF-8");
constexpr Status kBadPacketId = protocol_error("packet identifier 0");

// A set of reason code values, for the per-packet lists of 5.0 section 3.
class CodeSet {
 public:
  constexpr CodeSet(std::initializer_list<uint8_t> codes) {
    for (uint8_t c : codes) words_[c >> 6] |= uint64_t{1} << (c & 63);
  }
  constexpr bool has(uint8_t c) const { return (words_[c >> 6] >> (c & 63)) & 1; }

 private:
  uint64_t words_[4] = {0, 0, 0, 0};
};

constexpr CodeSet kConnackCodes = {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86,
                                   0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
                                   0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F};
constexpr CodeSet kPubackCodes = {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99};
constexpr CodeSet kPubrelCodes = {0x00, 0x92};
constexpr CodeSet kSubackCodes = {0x00, 0x01, 0x02, 0x80, 0x83, 0x87,
                                  0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2};
constexpr CodeSet kV3SubackCodes = {0x00, 0x01, 0x02, 0x80};
constexpr CodeSet kUnsubackCodes = {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91};
constexpr CodeSet kDisconnectCodes = {0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D,
                                      0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
                                      0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2};
constexpr CodeSet kAuthCodes = {0x00, 0x18, 0x19};

Status read_utf8(Reader& r, std::string_view& out) {
  if (!r.binary(out)) return kTruncated;
  return is_valid_utf8(out) ? kOk : kBadUtf8;
}

Status read_reason(Reader& r, const CodeSet& codes, ReasonCode& out) {
  uint8_t c = 0;
  if (!r.u8(c)) return kTruncated;
  if (!codes.has(c)) return malformed("reason code not valid for this packet");
  out = static_cast<ReasonCode>(c);
  return kOk;
}

Status read_packet_id(Reader& r, uint16_t& id) {
  if (!r.u16(id)) return kTruncated;
  return id == 0 ? kBadPacketId : kOk;  // [MQTT-2.3.1-1]
}

// SUBSCRIBE and UNSUBSCRIBE with packet id 0: the specification names no reason code
// [MQTT-2.2.1-3]; Malformed Packet, as Mosquitto answers (PUBLISH and the acks keep Protocol Error,
// which Mosquitto sends for those).
Status read_subscribe_packet_id(Reader& r, uint16_t& id) {
  if (!r.u16(id)) return kTruncated;
  return id == 0 ? malformed("packet identifier 0") : kOk;
}

// Payload Format Indicator 1 means UTF-8 Encoded Character Data (3.3.2.3.2).
// U+0000 is a valid character there, so only well-formedness is checked.
bool payload_format_ok(const Properties& props, std::string_view payload) {
  return props.payload_format_indicator.value_or(0) != 1 ||
         detail::is_well_formed_utf8(payload, /*allow_nul=*/true);
}

constexpr Status kPayloadFormat = {ReasonCode::kPayloadFormatInvalid,
                                   "payload is not UTF-8 but format indicator is 1"};

// ---- CONNECT (3.1) ----

Status read_protocol(Reader& r, Version& version) {
  std::string_view name;
  uint8_t level = 0;
  if (!r.binary(name) || !r.u8(level)) return kTruncated;
  if (name == "MQTT" && (level == 4 || level == 5)) {
    version = static_cast<Version>(level);
  } else if (name == "MQIsdp" && level == 3) {
    version = Version::kV31;
  } else {
    // [MQTT-3.1.2-1], [MQTT-3.1.2-2]: 3.1.1 answers CONNACK 0x01, 5.0 0x84.
    return {ReasonCode::kUnsupportedProtocolVersion, "unsupported protocol name or level"};
  }
  return kOk;
}

Status check_connect_flags(uint8_t flags, Version version) {
  if (flags & 0x01) return malformed("CONNECT reserved flag set");  // [MQTT-3.1.2-3]
  const bool will = flags & 0x04;
  const uint8_t will_qos = (flags >> 3) & 0x03;
  const bool will_retain = flags & 0x20;
  // [MQTT-3.1.2-11], [MQTT-3.1.2-13], [MQTT-3.1.2-15]
  if (!will && (will_qos != 0 || will_retain)) return malformed("will QoS/retain without will");
  if (will_qos == 3) return malformed("will QoS 3");  // [MQTT-3.1.2-14]
  // [MQTT-3.1.2-22] in 3.1.1 (and 3.1); 5.0 allows a password alone (3.1.2.9).
  if (version != Version::kV5 && (flags & 0x40) && !(flags & 0x80)) {
    return malformed("password without user name");
  }
  return kOk;
}

Status read_will(Reader& r, Version version, uint8_t flags, Will& will) {
  will.qos = (flags >> 3) & 0x03;
  will.retain = flags & 0x20;
  if (version == Version::kV5) {
    if (auto s = decode_properties(r, PropertyContext::kWill, will.properties); s.failed()) {
      return s;
    }
  }
  std::string_view topic;
  std::string_view payload;
  if (auto s = read_utf8(r, topic); s.failed()) return s;
  if (!r.binary(payload)) return kTruncated;
  if (!is_valid_topic_name(topic)) {
    return {ReasonCode::kTopicNameInvalid, "invalid will topic"};  // [MQTT-3.1.3-11]
  }
  if (has_too_many_levels(topic)) return malformed("will topic with more than 201 levels");
  if (!payload_format_ok(will.properties, payload)) return kPayloadFormat;
  will.topic.assign(topic);
  will.payload.assign(payload);
  return kOk;
}

Status decode_connect(Reader& r, Packet& packet) {
  auto& p = packet.emplace<ConnectPacket>();
  uint8_t flags = 0;
  if (auto s = read_protocol(r, p.version); s.failed()) return s;
  if (!r.u8(flags) || !r.u16(p.keep_alive)) return kTruncated;
  if (auto s = check_connect_flags(flags, p.version); s.failed()) return s;
  p.clean_start = flags & 0x02;
  if (p.version == Version::kV5) {
    if (auto s = decode_properties(r, PropertyContext::kConnect, p.properties); s.failed()) {
      return s;
    }
  }
  std::string_view text;
  if (auto s = read_utf8(r, text); s.failed()) return s;  // [MQTT-3.1.3-4]
  p.client_id.assign(text);
  if (flags & 0x04) {
    if (auto s = read_will(r, p.version, flags, p.will.emplace()); s.failed()) return s;
  }
  if (flags & 0x80) {
    if (auto s = read_utf8(r, text); s.failed()) return s;  // [MQTT-3.1.3-11]
    p.username.emplace(text);
  }
  if (flags & 0x40) {
    if (!r.binary(text)) return kTruncated;
    p.password.emplace(text);
  }
  return r.empty() ? kOk : kTrailing;
}

// ---- CONNACK (3.2) ----

Status decode_connack(Reader& r, Version version, Packet& packet) {
  auto& p = packet.emplace<ConnackPacket>();
  uint8_t flags = 0;
  uint8_t code = 0;
  if (version != Version::kV5) {
    if (!r.u8(flags) || !r.u8(code)) return kTruncated;
    if (code > 5) return malformed("unknown CONNACK return code");
    p.reason = from_v3_connack_code(code);
  } else {
    if (!r.u8(flags)) return kTruncated;
    if (auto s = read_reason(r, kConnackCodes, p.reason); s.failed()) return s;
    if (auto s = decode_properties(r, PropertyContext::kConnack, p.properties); s.failed()) {
      return s;
    }
  }
  // 3.1 has no session present flag: the whole byte is reserved there.
  if (version != Version::kV31) {
    if (flags & 0xFE) return malformed("CONNACK reserved flags set");  // [MQTT-3.2.2-1]
    p.session_present = flags & 0x01;
    // [MQTT-3.2.2-4] (3.1.1), [MQTT-3.2.2-6] (5.0)
    if (p.session_present && is_error(p.reason)) {
      return protocol_error("session present with a failure reason");
    }
  }
  return r.empty() ? kOk : kTrailing;
}

// ---- PUBLISH (3.3) ----

// Empties properties field by field: cheap when (as on the hot path) they
// are already empty, unlike assigning a fresh 500-byte Properties.
void clear_properties(Properties& p) {
  p.payload_format_indicator.reset();
  p.message_expiry_interval.reset();
  p.content_type.reset();
  p.response_topic.reset();
  p.correlation_data.reset();
  p.subscription_identifiers.clear();
  p.session_expiry_interval.reset();
  p.assigned_client_identifier.reset();
  p.server_keep_alive.reset();
  p.authentication_method.reset();
  p.authentication_data.reset();
  p.request_problem_information.reset();
  p.will_delay_interval.reset();
  p.request_response_information.reset();
  p.response_information.reset();
  p.server_reference.reset();
  p.reason_string.reset();
  p.receive_maximum.reset();
  p.topic_alias_maximum.reset();
  p.topic_alias.reset();
  p.maximum_qos.reset();
  p.retain_available.reset();
  p.user_properties.clear();
  p.maximum_packet_size.reset();
  p.wildcard_subscription_available.reset();
  p.subscription_identifier_available.reset();
  p.shared_subscription_available.reset();
  p.forward_order = ForwardOrder{};
}

#if defined(__x86_64__) && defined(__GLIBCXX__)
static_assert(sizeof(Properties) == 520, "a Properties field was added: reset it in clear_properties");
#endif

PublishPacket& reuse_publish(Packet& packet) {
  // Keeps the topic and payload buffers of the previous PUBLISH, if any: the
  // hot path then decodes without allocating once the buffers are warm.
  if (auto* p = std::get_if<PublishPacket>(&packet)) return *p;
  return packet.emplace<PublishPacket>();
}

Status check_publish_topic(std::string_view topic, Version version, const Properties& props) {
  if (topic.empty()) {
    // 3.3.2.3.4: an empty topic needs a Topic Alias; 3.1.1 [MQTT-4.7.3-1].
    if (version == Version::kV5) {
      return props.topic_alias ? kOk : protocol_error("empty topic without topic alias");
    }
    return {ReasonCode::kTopicNameInvalid, "empty topic name"};
  }
  if (has_wildcard(topic)) {
    return {ReasonCode::kTopicNameInvalid, "wildcard in topic name"};  // [MQTT-3.3.2-2]
  }
  if (has_too_many_levels(topic)) return malformed("topic name with more than 201 levels");
  return kOk;
}

Status decode_publish_view(Reader& r, uint8_t flags, Version version, PublishView& p) {
  p.dup = flags & 0x08;
  p.qos = (flags >> 1) & 0x03;
  p.retain = flags & 0x01;
  p.packet_id = 0;
  // Only v5 fills properties, and a view is reused by one connection (one
  // version) only.
  if (version == Version::kV5) clear_properties(p.properties);
  if (auto s = read_utf8(r, p.topic); s.failed()) return s;
  if (p.qos > 0) {
    if (auto s = read_packet_id(r, p.packet_id); s.failed()) return s;
  }
  if (version == Version::kV5) {
    if (auto s = decode_properties(r, PropertyContext::kPublish, p.properties); s.failed()) {
      return s;
    }
  }
  if (auto s = check_publish_topic(p.topic, version, p.properties); s.failed()) return s;
  p.payload = r.rest();
  if (!payload_format_ok(p.properties, p.payload)) return kPayloadFormat;
  return kOk;
}

Status decode_publish(Reader& r, uint8_t flags, Version version, Packet& packet) {
  PublishPacket& p = reuse_publish(packet);
  // The view's properties are decoded straight into the packet's.
  PublishView view;
  if (version != Version::kV5) clear_properties(p.properties);
  std::swap(view.properties, p.properties);
  const Status s = decode_publish_view(r, flags, version, view);
  std::swap(view.properties, p.properties);
  if (s.failed()) return s;
  p.dup = view.dup;
  p.qos = view.qos;
  p.retain = view.retain;
  p.packet_id = view.packet_id;
  p.topic.assign(view.topic);
  p.payload.assign(view.payload);
  return kOk;
}

// ---- PUBACK, PUBREC, PUBREL, PUBCOMP (3.4 - 3.7) ----

AckPacket& reuse_ack(Packet& packet, Version version) {
  if (auto* p = std::get_if<AckPacket>(&packet)) {
    p->packet_id = 0;
    p->reason = ReasonCode::kSuccess;
    // Only v5 acks carry properties; a packet object is reused by the
    // connections of one protocol version.
    if (version == Version::kV5) clear_properties(p->properties);
    return *p;
  }
  return packet.emplace<AckPacket>();
}

Status decode_ack(Reader& r, PacketType type, Version version, Packet& packet) {
  auto& p = reuse_ack(packet, version);
  p.type = type;
  if (auto s = read_packet_id(r, p.packet_id); s.failed()) return s;
  if (version == Version::kV5 && !r.empty()) {
    // 3.4.2.1: remaining length 2 means Success without properties; below 4
    // there is no property length.
    const bool rel = type == PacketType::kPubrel || type == PacketType::kPubcomp;
    if (auto s = read_reason(r, rel ? kPubrelCodes : kPubackCodes, p.reason); s.failed()) {
      return s;
    }
    if (!r.empty()) {
      if (auto s = decode_properties(r, PropertyContext::kAck, p.properties); s.failed()) {
        return s;
      }
    }
  }
  return r.empty() ? kOk : kTrailing;
}

// ---- SUBSCRIBE (3.8) ----

Status read_subscribe_options(uint8_t o, Version version, SubscribeOptions& options) {
  options.max_qos = o & 0x03;
  if (version != Version::kV5) {
    if (o & 0xFC) return malformed("SUBSCRIBE reserved bits set");  // 3.1.1 [MQTT-3.8.3-4]
    if (options.max_qos == 3) return malformed("SUBSCRIBE QoS 3");
    return kOk;
  }
  if (o & 0xC0) return malformed("SUBSCRIBE reserved bits set");       // [MQTT-3.8.3-5]
  if (options.max_qos == 3) return protocol_error("SUBSCRIBE QoS 3");  // 3.8.3.1
  options.no_local = o & 0x04;
  options.retain_as_published = o & 0x08;
  options.retain_handling = (o >> 4) & 0x03;
  if (options.retain_handling == 3) return protocol_error("retain handling 3");  // 3.8.3.1
  return kOk;
}

Status check_filter(std::string_view filter) {
  return is_valid_topic_filter(filter)
             ? kOk
             : Status{ReasonCode::kTopicFilterInvalid, "invalid topic filter"};
}

Status decode_subscribe(Reader& r, Version version, Packet& packet) {
  auto& p = packet.emplace<SubscribePacket>();
  if (auto s = read_subscribe_packet_id(r, p.packet_id); s.failed()) return s;
  if (version == Version::kV5) {
    if (auto s = decode_properties(r, PropertyContext::kSubscribe, p.properties); s.failed()) {
      return s;
    }
  }
  // 3.1.1 [MQTT-3.8.3-3], 5.0 [MQTT-3.8.3-2]: at least one filter.
  if (r.empty()) return protocol_error("SUBSCRIBE without topic filter");
  while (!r.empty()) {
    std::string_view filter;
    uint8_t options = 0;
    if (auto s = read_utf8(r, filter); s.failed()) return s;
    if (has_too_many_levels(filter)) return malformed("topic filter with more than 201 levels");
    if (!r.u8(options)) return kTruncated;
    Subscription& sub = p.subscriptions.emplace_back();
    if (auto s = read_subscribe_options(options, version, sub.options); s.failed()) return s;
    // A filter with bad wildcards is refused by the server in its SUBACK
    // (0x80 / 0x8F), filter by filter, so the valid ones still count.
    std::string_view group;
    std::string_view inner;
    if (sub.options.no_local && split_shared_filter(filter, group, inner)) {
      return protocol_error("no local on a shared subscription");  // [MQTT-3.8.3-4]
    }
    sub.filter.assign(filter);
  }
  return kOk;
}

// ---- SUBACK (3.9) ----

Status decode_suback(Reader& r, Version version, Packet& packet) {
  auto& p = packet.emplace<SubackPacket>();
  if (auto s = read_packet_id(r, p.packet_id); s.failed()) return s;
  if (version == Version::kV5) {
    if (auto s = decode_properties(r, PropertyContext::kSuback, p.properties); s.failed()) {
      return s;
    }
  }
  if (r.empty()) return protocol_error("SUBACK without reason codes");
  const CodeSet& codes = version == Version::kV5 ? kSubackCodes : kV3SubackCodes;
  p.reasons.reserve(r.remaining());
  while (!r.empty()) {
    if (auto s = read_reason(r, codes, p.reasons.emplace_back()); s.failed()) return s;
  }
  return kOk;
}

// ---- UNSUBSCRIBE (3.10) and UNSUBACK (3.11) ----

Status decode_unsubscribe(Reader& r, Version version, Packet& packet) {
  auto& p = packet.emplace<UnsubscribePacket>();
  if (auto s = read_subscribe_packet_id(r, p.packet_id); s.failed()) return s;
  if (version == Version::kV5) {
    if (auto s = decode_properties(r, PropertyContext::kUnsubscribe, p.properties); s.failed()) {
      return s;
    }
  }
  // 3.1.1 [MQTT-3.10.3-2], 5.0 3.10.3: at least one filter.
  if (r.empty()) return protocol_error("UNSUBSCRIBE without topic filter");
  while (!r.empty()) {
    std::string_view filter;
    if (auto s = read_utf8(r, filter); s.failed()) return s;
    if (has_too_many_levels(filter)) return malformed("topic filter with more than 201 levels");
    if (auto s = check_filter(filter); s.failed()) return s;
    p.filters.emplace_back(filter);
  }
  return kOk;
}

Status decode_unsuback(Reader& r, Version version, Packet& packet) {
  auto& p = packet.emplace<UnsubackPacket>();
  if (auto s = read_packet_id(r, p.packet_id); s.failed()) return s;
  if (version != Version::kV5) return r.empty() ? kOk : kTrailing;
  if (auto s = decode_properties(r, PropertyContext::kUnsuback, p.properties); s.failed()) {
    return s;
  }
  if (r.empty()) return protocol_error("UNSUBACK without reason codes");
  p.reasons.reserve(r.remaining());
  while (!r.empty()) {
    if (auto s = read_reason(r, kUnsubackCodes, p.reasons.emplace_back()); s.failed()) return s;
  }
  return kOk;
}

// ---- DISCONNECT (3.14) and AUTH (3.15) ----

// Both may omit the reason code (remaining length 0 = Success) and, below
// remaining length 2, the property length (3.14.2.2.1, 3.15.2.1).
template <typename P>
Status decode_reason_and_properties(Reader& r, const CodeSet& codes, PropertyContext context,
                                    Packet& packet) {
  auto& p = packet.emplace<P>();
  if (r.empty()) return kOk;
  if (auto s = read_reason(r, codes, p.reason); s.failed()) return s;
  if (r.empty()) return kOk;
  if (auto s = decode_properties(r, context, p.properties); s.failed()) return s;
  return r.empty() ? kOk : kTrailing;
}

Status decode_empty(Reader& r, Packet& packet, Packet&& value) {
  if (!r.empty()) return malformed("packet must have remaining length 0");
  packet = std::move(value);
  return kOk;
}

// ---- fixed header ----

// [MQTT-2.2.2-1], [MQTT-2.2.2-2]: flags of every type but PUBLISH are fixed.
// 3.1 put DUP/QoS bits on PUBREL/SUBSCRIBE/UNSUBSCRIBE and not every 3.1
// client sets them as 3.1.1 does, so for 3.1 those three are not checked.
Status check_fixed_header(uint8_t byte0, Version version) {
  const auto type = static_cast<PacketType>(byte0 >> 4);
  const uint8_t flags = byte0 & 0x0F;
  switch (type) {
    case PacketType::kPublish: {
      const uint8_t qos = (flags >> 1) & 0x03;
      if (qos == 3) return malformed("PUBLISH QoS 3");                       // [MQTT-3.3.1-4]
      if (qos == 0 && (flags & 0x08)) return malformed("DUP set on QoS 0");  // [MQTT-3.3.1-2]
      return kOk;
    }
    case PacketType::kPubrel:
    case PacketType::kSubscribe:
    case PacketType::kUnsubscribe:
      if (version == Version::kV31) return kOk;
      return flags == 0x02 ? kOk : malformed("invalid fixed header flags");
    case PacketType::kAuth:
      if (version != Version::kV5) return malformed("AUTH before MQTT 5.0");
      [[fallthrough]];
    case PacketType::kConnect:
    case PacketType::kConnack:
    case PacketType::kPuback:
    case PacketType::kPubrec:
    case PacketType::kPubcomp:
    case PacketType::kSuback:
    case PacketType::kUnsuback:
    case PacketType::kPingreq:
    case PacketType::kPingresp:
    case PacketType::kDisconnect: return flags == 0 ? kOk : malformed("invalid fixed header flags");
  }
  return malformed("reserved packet type 0");
}

Status decode_body(uint8_t byte0, std::string_view body, Version version, Packet& packet) {
  Reader r(body);
  const auto type = static_cast<PacketType>(byte0 >> 4);
  switch (type) {
    case PacketType::kConnect: return decode_connect(r, packet);
    case PacketType::kConnack: return decode_connack(r, version, packet);
    case PacketType::kPublish: return decode_publish(r, byte0 & 0x0F, version, packet);
    case PacketType::kPuback:
    case PacketType::kPubrec:
    case PacketType::kPubrel:
    case PacketType::kPubcomp: return decode_ack(r, type, version, packet);
    case PacketType::kSubscribe: return decode_subscribe(r, version, packet);
    case PacketType::kSuback: return decode_suback(r, version, packet);
    case PacketType::kUnsubscribe: return decode_unsubscribe(r, version, packet);
    case PacketType::kUnsuback: return decode_unsuback(r, version, packet);
    case PacketType::kPingreq: return decode_empty(r, packet, PingreqPacket{});
    case PacketType::kPingresp: return decode_empty(r, packet, PingrespPacket{});
    case PacketType::kDisconnect:
      if (version != Version::kV5) return decode_empty(r, packet, DisconnectPacket{});
      return decode_reason_and_properties<DisconnectPacket>(r, kDisconnectCodes,
                                                            PropertyContext::kDisconnect, packet);
    case PacketType::kAuth:
      return decode_reason_and_properties<AuthPacket>(r, kAuthCodes, PropertyContext::kAuth,
                                                      packet);
  }
  return malformed("reserved packet type 0");
}

DecodeResult error(Status s) { return {DecodeStatus::kError, 0, s.code, s.message}; }

}  // namespace

namespace {

// The fixed header (2.1): checks it and finds the body. Returns kNeedMore
// (status) until the whole packet is there.
DecodeResult frame(std::string_view data, Version version, const DecodeLimits& limits,
                   std::string_view& body) {
  if (data.empty()) return {};
  const auto byte0 = static_cast<uint8_t>(data[0]);
  if (auto s = check_fixed_header(byte0, version); s.failed()) return error(s);
  // Remaining length (2.1.4): at most 4 bytes, so a continuation bit on the
  // 4th byte is malformed without waiting for a 5th.
  uint32_t remaining = 0;
  size_t pos = 1;
  for (;;) {
    if (pos >= data.size()) return {};
    const auto b = static_cast<uint8_t>(data[pos]);
    remaining |= static_cast<uint32_t>(b & 0x7F) << (7 * (pos - 1));
    ++pos;
    if ((b & 0x80) == 0) {
      // [MQTT-1.5.5-1] (5.0 only): shortest form; 3.1.1 has no such rule.
      if (b == 0 && pos > 2 && version == Version::kV5) {
        return error(malformed("non-minimal remaining length"));
      }
      break;
    }
    if (pos == 5) return error(malformed("remaining length longer than 4 bytes"));
  }
  const uint64_t total = uint64_t{pos} + remaining;
  if (total > limits.max_packet_size) {
    return error({ReasonCode::kPacketTooLarge, "packet exceeds maximum packet size"});
  }
  if (data.size() < total) return {};
  body = data.substr(pos, remaining);
  return {DecodeStatus::kPacket, static_cast<size_t>(total), ReasonCode::kSuccess, ""};
}

}  // namespace

DecodeResult decode(std::string_view data, Version version, Packet& packet,
                    const DecodeLimits& limits) {
  std::string_view body;
  DecodeResult r = frame(data, version, limits, body);
  if (r.status != DecodeStatus::kPacket) return r;
  if (auto s = decode_body(static_cast<uint8_t>(data[0]), body, version, packet); s.failed()) {
    return error(s);
  }
  return r;
}

DecodeResult decode_borrowed(std::string_view data, Version version, Packet& packet,
                             PublishView& publish, bool* is_publish, const DecodeLimits& limits) {
  *is_publish = false;
  std::string_view body;
  DecodeResult r = frame(data, version, limits, body);
  if (r.status != DecodeStatus::kPacket) return r;
  const auto byte0 = static_cast<uint8_t>(data[0]);
  if (static_cast<PacketType>(byte0 >> 4) != PacketType::kPublish) {
    if (auto s = decode_body(byte0, body, version, packet); s.failed()) return error(s);
    return r;
  }
  Reader reader(body);
  if (auto s = decode_publish_view(reader, byte0 & 0x0F, version, publish); s.failed()) {
    return error(s);
  }
  *is_publish = true;
  return r;
}

size_t frame_size(std::string_view data) {
  uint32_t remaining = 0;
  for (size_t pos = 1; pos < 5; ++pos) {
    if (pos >= data.size()) return 0;
    const auto b = static_cast<uint8_t>(data[pos]);
    remaining |= static_cast<uint32_t>(b & 0x7F) << (7 * (pos - 1));
    if ((b & 0x80) == 0) return pos + 1 + size_t{remaining};
  }
  return 1;
}

PublishView view_of(const PublishPacket& p) {
  PublishView v;
  v.dup = p.dup;
  v.qos = p.qos;
  v.retain = p.retain;
  v.topic = p.topic;
  v.packet_id = p.packet_id;
  v.properties = p.properties;
  v.payload = p.payload;
  return v;
}

}  // namespace midge::protocol
