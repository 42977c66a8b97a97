#include "protocol/properties.h"

#include <cassert>
#include <string_view>

#include "protocol/codec.h"
#include "protocol/topic.h"

namespace midge::protocol::detail {
namespace {

// Property identifiers, MQTT 5.0 table 2-4.
enum : uint8_t {
  kPayloadFormatIndicator = 0x01,
  kMessageExpiryInterval = 0x02,
  kContentType = 0x03,
  kResponseTopic = 0x08,
  kCorrelationData = 0x09,
  kSubscriptionIdentifier = 0x0B,
  kSessionExpiryInterval = 0x11,
  kAssignedClientIdentifier = 0x12,
  kServerKeepAlive = 0x13,
  kAuthenticationMethod = 0x15,
  kAuthenticationData = 0x16,
  kRequestProblemInformation = 0x17,
  kWillDelayInterval = 0x18,
  kRequestResponseInformation = 0x19,
  kResponseInformation = 0x1A,
  kServerReference = 0x1C,
  kReasonString = 0x1F,
  kReceiveMaximum = 0x21,
  kTopicAliasMaximum = 0x22,
  kTopicAlias = 0x23,
  kMaximumQos = 0x24,
  kRetainAvailable = 0x25,
  kUserProperty = 0x26,
  kMaximumPacketSize = 0x27,
  kWildcardSubscriptionAvailable = 0x28,
  kSubscriptionIdentifierAvailable = 0x29,
  kSharedSubscriptionAvailable = 0x2A,
};

constexpr uint64_t bit(uint8_t id) { return uint64_t{1} << id; }

template <typename... Ids>
constexpr uint64_t mask(Ids... ids) {
  return (bit(ids) | ...);
}

constexpr uint64_t kKnown = mask(
    kPayloadFormatIndicator, kMessageExpiryInterval, kContentType, kResponseTopic, kCorrelationData,
    kSubscriptionIdentifier, kSessionExpiryInterval, kAssignedClientIdentifier, kServerKeepAlive,
    kAuthenticationMethod, kAuthenticationData, kRequestProblemInformation, kWillDelayInterval,
    kRequestResponseInformation, kResponseInformation, kServerReference, kReasonString,
    kReceiveMaximum, kTopicAliasMaximum, kTopicAlias, kMaximumQos, kRetainAvailable, kUserProperty,
    kMaximumPacketSize, kWildcardSubscriptionAvailable, kSubscriptionIdentifierAvailable,
    kSharedSubscriptionAvailable);

// Which properties each packet may carry (MQTT 5.0 section 3.x.2.x lists).
constexpr uint64_t allowed(PropertyContext context) {
  switch (context) {
    case PropertyContext::kConnect:
      return mask(kSessionExpiryInterval, kReceiveMaximum, kMaximumPacketSize, kTopicAliasMaximum,
                  kRequestResponseInformation, kRequestProblemInformation, kUserProperty,
                  kAuthenticationMethod, kAuthenticationData);
    case PropertyContext::kWill:
      return mask(kWillDelayInterval, kPayloadFormatIndicator, kMessageExpiryInterval, kContentType,
                  kResponseTopic, kCorrelationData, kUserProperty);
    case PropertyContext::kConnack:
      return mask(kSessionExpiryInterval, kReceiveMaximum, kMaximumQos, kRetainAvailable,
                  kMaximumPacketSize, kAssignedClientIdentifier, kTopicAliasMaximum, kReasonString,
                  kUserProperty, kWildcardSubscriptionAvailable, kSubscriptionIdentifierAvailable,
                  kSharedSubscriptionAvailable, kServerKeepAlive, kResponseInformation,
                  kServerReference, kAuthenticationMethod, kAuthenticationData);
    case PropertyContext::kPublish:
      return mask(kPayloadFormatIndicator, kMessageExpiryInterval, kTopicAlias, kResponseTopic,
                  kCorrelationData, kUserProperty, kSubscriptionIdentifier, kContentType);
    case PropertyContext::kAck:
    case PropertyContext::kSuback:
    case PropertyContext::kUnsuback: return mask(kReasonString, kUserProperty);
    case PropertyContext::kSubscribe: return mask(kSubscriptionIdentifier, kUserProperty);
    case PropertyContext::kUnsubscribe: return mask(kUserProperty);
    case PropertyContext::kDisconnect:
      return mask(kSessionExpiryInterval, kReasonString, kUserProperty, kServerReference);
    case PropertyContext::kAuth:
      return mask(kAuthenticationMethod, kAuthenticationData, kReasonString, kUserProperty);
  }
  return 0;
}

constexpr Status kTruncated = {ReasonCode::kMalformedPacket, "truncated property"};
constexpr Status kBadUtf8 = {ReasonCode::kMalformedPacket, "property string is not valid UTF-8"};

Status read_string(Reader& r, std::optional<std::string>& out) {
  std::string_view s;
  if (!r.binary(s)) return kTruncated;
  if (!is_valid_utf8(s)) return kBadUtf8;
  out.emplace(s);
  return kOk;
}

Status read_binary(Reader& r, std::optional<std::string>& out) {
  std::string_view s;
  if (!r.binary(s)) return kTruncated;
  out.emplace(s);
  return kOk;
}

// A byte property whose only legal values are 0 and 1.
Status read_flag(Reader& r, std::optional<uint8_t>& out) {
  uint8_t v = 0;
  if (!r.u8(v)) return kTruncated;
  if (v > 1) return protocol_error("property value must be 0 or 1");
  out = v;
  return kOk;
}

Status read_u16(Reader& r, std::optional<uint16_t>& out, bool nonzero) {
  uint16_t v = 0;
  if (!r.u16(v)) return kTruncated;
  // Receive Maximum 0 [3.1.2.11.3, 3.2.2.3.3] and Topic Alias 0 [MQTT-3.3.2-8]
  // are Protocol Errors.
  if (nonzero && v == 0) return protocol_error("property value must not be 0");
  out = v;
  return kOk;
}

Status read_u32(Reader& r, std::optional<uint32_t>& out, bool nonzero) {
  uint32_t v = 0;
  if (!r.u32(v)) return kTruncated;
  if (nonzero && v == 0) return protocol_error("maximum packet size must not be 0");
  out = v;
  return kOk;
}

Status read_user_property(Reader& r, UserProperties& out) {
  std::string_view key;
  std::string_view value;
  if (!r.binary(key) || !r.binary(value)) return kTruncated;
  if (!is_valid_utf8(key) || !is_valid_utf8(value)) return kBadUtf8;
  out.emplace_back(key, value);
  return kOk;
}

Status read_subscription_identifier(Reader& r, std::vector<uint32_t>& out) {
  uint32_t v = 0;
  if (!r.varint(v)) return malformed("bad subscription identifier encoding");
  // [3.3.2.3.8] / [3.8.2.1.2]: "It is a Protocol Error if the Subscription
  // Identifier has a value of 0."
  if (v == 0) return protocol_error("subscription identifier 0");
  out.push_back(v);
  return kOk;
}

Status read_one(Reader& r, uint8_t id, Properties& p) {
  switch (id) {
    case kPayloadFormatIndicator: return read_flag(r, p.payload_format_indicator);
    case kMessageExpiryInterval: return read_u32(r, p.message_expiry_interval, false);
    case kContentType: return read_string(r, p.content_type);
    case kResponseTopic: {
      if (auto s = read_string(r, p.response_topic); s.failed()) return s;
      // [MQTT-3.3.2-14] a Topic Name: no wildcards.
      if (!is_valid_topic_name(*p.response_topic)) return protocol_error("bad response topic");
      return kOk;
    }
    case kCorrelationData: return read_binary(r, p.correlation_data);
    case kSubscriptionIdentifier:
      return read_subscription_identifier(r, p.subscription_identifiers);
    case kSessionExpiryInterval: return read_u32(r, p.session_expiry_interval, false);
    case kAssignedClientIdentifier: return read_string(r, p.assigned_client_identifier);
    case kServerKeepAlive: return read_u16(r, p.server_keep_alive, false);
    case kAuthenticationMethod: return read_string(r, p.authentication_method);
    case kAuthenticationData: return read_binary(r, p.authentication_data);
    case kRequestProblemInformation: return read_flag(r, p.request_problem_information);
    case kWillDelayInterval: return read_u32(r, p.will_delay_interval, false);
    case kRequestResponseInformation: return read_flag(r, p.request_response_information);
    case kResponseInformation: return read_string(r, p.response_information);
    case kServerReference: return read_string(r, p.server_reference);
    case kReasonString: return read_string(r, p.reason_string);
    case kReceiveMaximum: return read_u16(r, p.receive_maximum, true);
    case kTopicAliasMaximum: return read_u16(r, p.topic_alias_maximum, false);
    case kTopicAlias: return read_u16(r, p.topic_alias, true);
    case kMaximumQos: return read_flag(r, p.maximum_qos);  // [3.2.2.3.4] 0 or 1
    case kRetainAvailable: return read_flag(r, p.retain_available);
    case kUserProperty: return read_user_property(r, p.user_properties);
    case kMaximumPacketSize: return read_u32(r, p.maximum_packet_size, true);
    case kWildcardSubscriptionAvailable: return read_flag(r, p.wildcard_subscription_available);
    case kSubscriptionIdentifierAvailable: return read_flag(r, p.subscription_identifier_available);
    case kSharedSubscriptionAvailable: return read_flag(r, p.shared_subscription_available);
    default: break;
  }
  return malformed("unknown property identifier");
}

// Fills a ForwardOrder as the properties are read.
class OrderNote {
 public:
  explicit OrderNote(ForwardOrder& order) : order_(order) { order_ = ForwardOrder{}; }
  void saw(uint8_t id) {
    int index = -1;
    switch (id) {
      case kPayloadFormatIndicator: index = 0; break;
      case kContentType: index = 1; break;
      case kResponseTopic: index = 2; break;
      case kCorrelationData: index = 3; break;
      case kUserProperty:
        if (users_ < UINT16_MAX) ++users_;
        return;
      default: return;
    }
    order_.users_before[index] = users_;
    order_.rank[index] = singles_++;
  }

 private:
  ForwardOrder& order_;
  uint16_t users_ = 0;
  uint8_t singles_ = 0;
};

}  // namespace

Status decode_properties(Reader& reader, PropertyContext context, Properties& out) {
  uint32_t length = 0;
  if (!reader.varint(length)) return malformed("bad property length");
  std::string_view block;
  if (!reader.take(length, block)) return malformed("property length exceeds packet");
  Reader r(block);
  const uint64_t permitted = allowed(context);
  // User Property may repeat everywhere; Subscription Identifier only in
  // PUBLISH (one per matching subscription, 3.3.2.3.8).
  const uint64_t repeatable = context == PropertyContext::kPublish
                                  ? mask(kUserProperty, kSubscriptionIdentifier)
                                  : mask(kUserProperty);
  uint64_t seen = 0;
  OrderNote order(out.forward_order);
  while (!r.empty()) {
    uint8_t id = 0;
    r.u8(id);
    // Identifiers are variable byte integers, but every defined one fits in
    // one byte, so a byte >= 64 (including a continuation byte) is unknown.
    if (id >= 64 || (kKnown & bit(id)) == 0) return malformed("unknown property identifier");
    // "An Identifier which is not valid for its packet type ... is a Malformed Packet" (5.0 2.2.2.2).
    if ((permitted & bit(id)) == 0) return malformed("property not allowed in this packet");
    if ((seen & bit(id) & ~repeatable) != 0) return protocol_error("duplicate property");
    seen |= bit(id);
    if (auto s = read_one(r, id, out); s.failed()) return s;
    order.saw(id);
  }
  // [3.1.2.11.10] "It is a Protocol Error to include Authentication Data if
  // there is no Authentication Method" (same rule in CONNACK and AUTH).
  if (out.authentication_data && !out.authentication_method) {
    return protocol_error("authentication data without method");
  }
  return kOk;
}

namespace {

size_t string_prop(const std::optional<std::string>& s) { return s ? 1 + binary_size(*s) : 0; }
template <typename T>
size_t fixed_prop(const std::optional<T>& v) {
  return v ? 1 + sizeof(T) : 0;
}

void put_string_prop(std::string& out, uint8_t id, const std::optional<std::string>& s) {
  if (!s) return;
  put_u8(out, id);
  put_binary(out, *s);
}
void put_byte_prop(std::string& out, uint8_t id, const std::optional<uint8_t>& v) {
  if (!v) return;
  put_u8(out, id);
  put_u8(out, *v);
}
void put_u16_prop(std::string& out, uint8_t id, const std::optional<uint16_t>& v) {
  if (!v) return;
  put_u8(out, id);
  put_u16(out, *v);
}
void put_u32_prop(std::string& out, uint8_t id, const std::optional<uint32_t>& v) {
  if (!v) return;
  put_u8(out, id);
  put_u32(out, *v);
}

}  // namespace

size_t properties_size(const Properties& p) {
  size_t n =
      fixed_prop(p.payload_format_indicator) + fixed_prop(p.message_expiry_interval) +
      string_prop(p.content_type) + string_prop(p.response_topic) +
      string_prop(p.correlation_data) + fixed_prop(p.session_expiry_interval) +
      string_prop(p.assigned_client_identifier) + fixed_prop(p.server_keep_alive) +
      string_prop(p.authentication_method) + string_prop(p.authentication_data) +
      fixed_prop(p.request_problem_information) + fixed_prop(p.will_delay_interval) +
      fixed_prop(p.request_response_information) + string_prop(p.response_information) +
      string_prop(p.server_reference) + string_prop(p.reason_string) +
      fixed_prop(p.receive_maximum) + fixed_prop(p.topic_alias_maximum) +
      fixed_prop(p.topic_alias) + fixed_prop(p.maximum_qos) + fixed_prop(p.retain_available) +
      fixed_prop(p.maximum_packet_size) + fixed_prop(p.wildcard_subscription_available) +
      fixed_prop(p.subscription_identifier_available) + fixed_prop(p.shared_subscription_available);
  for (uint32_t id : p.subscription_identifiers) n += 1 + varint_size(id);
  for (const auto& [key, value] : p.user_properties) {
    n += 1 + binary_size(key) + binary_size(value);
  }
  return n;
}

void encode_properties(const Properties& p, size_t size, std::string& out) {
  assert(size == properties_size(p));
  append_varint(static_cast<uint32_t>(size), out);
  if (size == 0) return;
  // Any order is valid (2.2.2.2). These first, in the order Mosquitto 2.0
  // writes its CONNACK, so that clients and tests comparing bytes see the
  // same packet (issue 14).
  put_u16_prop(out, kServerKeepAlive, p.server_keep_alive);
  put_u16_prop(out, kTopicAliasMaximum, p.topic_alias_maximum);
  put_string_prop(out, kAssignedClientIdentifier, p.assigned_client_identifier);
  put_string_prop(out, kAuthenticationMethod, p.authentication_method);
  put_string_prop(out, kAuthenticationData, p.authentication_data);
  put_byte_prop(out, kRetainAvailable, p.retain_available);
  put_u32_prop(out, kMaximumPacketSize, p.maximum_packet_size);
  put_u16_prop(out, kReceiveMaximum, p.receive_maximum);
  put_byte_prop(out, kMaximumQos, p.maximum_qos);
  put_byte_prop(out, kPayloadFormatIndicator, p.payload_format_indicator);
  put_u32_prop(out, kMessageExpiryInterval, p.message_expiry_interval);
  put_string_prop(out, kContentType, p.content_type);
  put_string_prop(out, kResponseTopic, p.response_topic);
  put_string_prop(out, kCorrelationData, p.correlation_data);
  for (uint32_t id : p.subscription_identifiers) {
    put_u8(out, kSubscriptionIdentifier);
    append_varint(id, out);
  }
  put_u32_prop(out, kSessionExpiryInterval, p.session_expiry_interval);
  put_byte_prop(out, kRequestProblemInformation, p.request_problem_information);
  put_u32_prop(out, kWillDelayInterval, p.will_delay_interval);
  put_byte_prop(out, kRequestResponseInformation, p.request_response_information);
  put_string_prop(out, kResponseInformation, p.response_information);
  put_string_prop(out, kServerReference, p.server_reference);
  put_string_prop(out, kReasonString, p.reason_string);
  put_u16_prop(out, kTopicAlias, p.topic_alias);
  for (const auto& [key, value] : p.user_properties) {
    put_u8(out, kUserProperty);
    put_binary(out, key);
    put_binary(out, value);
  }
  put_byte_prop(out, kWildcardSubscriptionAvailable, p.wildcard_subscription_available);
  put_byte_prop(out, kSubscriptionIdentifierAvailable, p.subscription_identifier_available);
  put_byte_prop(out, kSharedSubscriptionAvailable, p.shared_subscription_available);
}

}  // namespace midge::protocol::detail
