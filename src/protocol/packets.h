// MQTT control packets as plain values, shared by MQTT 3.1, 3.1.1 and 5.0.
// Fields that only exist in 5.0 are simply left empty for older versions.
// All byte strings (topics, payloads, binary data) are std::string.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "protocol/reason_code.h"
#include "protocol/user_properties.h"

namespace midge::protocol {

// The protocol level byte of CONNECT: 3 = MQTT 3.1 ("MQIsdp"), 4 = 3.1.1, 5 = 5.0.
enum class Version : uint8_t { kV31 = 3, kV311 = 4, kV5 = 5 };

enum class PacketType : uint8_t {
  kConnect = 1,
  kConnack = 2,
  kPublish = 3,
  kPuback = 4,
  kPubrec = 5,
  kPubrel = 6,
  kPubcomp = 7,
  kSubscribe = 8,
  kSuback = 9,
  kUnsubscribe = 10,
  kUnsuback = 11,
  kPingreq = 12,
  kPingresp = 13,
  kDisconnect = 14,
  kAuth = 15,
};

// Where the four single properties a message forwards (Payload Format
// Indicator, Content Type, Response Topic, Correlation Data, in that index
// order) came in a PUBLISH or a will: after how many User Properties, and
// their rank among themselves. The decoder fills it so that a message is
// forwarded with its properties in the publisher's order, as Mosquitto does;
// zero (a fixed order) for properties built by hand. Not part of the value:
// two property sets that differ only in order compare equal.
struct ForwardOrder {
  uint16_t users_before[4] = {0, 0, 0, 0};
  uint8_t rank[4] = {0, 0, 0, 0};
  bool operator==(const ForwardOrder&) const { return true; }
};

// MQTT 5.0 properties (section 2.2.2.2). Which ones may appear depends on the
// packet; the decoder rejects a property that is not allowed in its packet and
// a property that appears twice when the spec forbids it.
struct Properties {
  std::optional<uint8_t> payload_format_indicator;        // 0x01
  std::optional<uint32_t> message_expiry_interval;        // 0x02
  std::optional<std::string> content_type;                // 0x03
  std::optional<std::string> response_topic;              // 0x08
  std::optional<std::string> correlation_data;            // 0x09
  std::vector<uint32_t> subscription_identifiers;         // 0x0B
  std::optional<uint32_t> session_expiry_interval;        // 0x11
  std::optional<std::string> assigned_client_identifier;  // 0x12
  std::optional<uint16_t> server_keep_alive;              // 0x13
  std::optional<std::string> authentication_method;       // 0x15
  std::optional<std::string> authentication_data;         // 0x16
  std::optional<uint8_t> request_problem_information;     // 0x17
  std::optional<uint32_t> will_delay_interval;            // 0x18
  std::optional<uint8_t> request_response_information;    // 0x19
  std::optional<std::string> response_information;        // 0x1A
  std::optional<std::string> server_reference;            // 0x1C
  std::optional<std::string> reason_string;               // 0x1F
  std::optional<uint16_t> receive_maximum;                // 0x21
  std::optional<uint16_t> topic_alias_maximum;            // 0x22
  std::optional<uint16_t> topic_alias;                    // 0x23
  std::optional<uint8_t> maximum_qos;                     // 0x24
  std::optional<uint8_t> retain_available;                // 0x25
  UserProperties user_properties;                         // 0x26
  std::optional<uint32_t> maximum_packet_size;            // 0x27
  std::optional<uint8_t> wildcard_subscription_available;     // 0x28
  std::optional<uint8_t> subscription_identifier_available;   // 0x29
  std::optional<uint8_t> shared_subscription_available;       // 0x2A
  ForwardOrder forward_order;

  bool operator==(const Properties&) const = default;
};

struct Will {
  std::string topic;
  std::string payload;
  uint8_t qos = 0;
  bool retain = false;
  Properties properties;  // will properties (v5)
  bool operator==(const Will&) const = default;
};

struct ConnectPacket {
  Version version = Version::kV311;
  bool clean_start = true;  // "clean session" in 3.1/3.1.1
  uint16_t keep_alive = 0;
  std::string client_id;
  std::optional<Will> will;
  std::optional<std::string> username;
  std::optional<std::string> password;
  Properties properties;
  bool operator==(const ConnectPacket&) const = default;
};

struct ConnackPacket {
  bool session_present = false;
  // For 3.1/3.1.1 the encoder maps this onto the 3.1.1 return codes
  // (see to_v3_connack_code); for 5.0 it is sent as is.
  ReasonCode reason = ReasonCode::kSuccess;
  Properties properties;
  bool operator==(const ConnackPacket&) const = default;
};

struct PublishPacket {
  bool dup = false;
  uint8_t qos = 0;
  bool retain = false;
  std::string topic;        // may be empty in v5 when a topic alias is used
  uint16_t packet_id = 0;   // only when qos > 0
  Properties properties;
  std::string payload;
  bool operator==(const PublishPacket&) const = default;
};

// PUBACK, PUBREC, PUBREL and PUBCOMP share one shape.
struct AckPacket {
  PacketType type = PacketType::kPuback;
  uint16_t packet_id = 0;
  ReasonCode reason = ReasonCode::kSuccess;
  Properties properties;
  bool operator==(const AckPacket&) const = default;
};

struct SubscribeOptions {
  uint8_t max_qos = 0;
  bool no_local = false;             // v5
  bool retain_as_published = false;  // v5
  uint8_t retain_handling = 0;       // v5: 0, 1 or 2
  bool operator==(const SubscribeOptions&) const = default;
};

struct Subscription {
  std::string filter;
  SubscribeOptions options;
  bool operator==(const Subscription&) const = default;
};

struct SubscribePacket {
  uint16_t packet_id = 0;
  Properties properties;  // subscription identifier, user properties
  std::vector<Subscription> subscriptions;
  bool operator==(const SubscribePacket&) const = default;
};

struct SubackPacket {
  uint16_t packet_id = 0;
  Properties properties;
  // One per filter. For v3 the encoder sends 0x00/0x01/0x02 or 0x80 for any
  // failure code.
  std::vector<ReasonCode> reasons;
  bool operator==(const SubackPacket&) const = default;
};

struct UnsubscribePacket {
  uint16_t packet_id = 0;
  Properties properties;
  std::vector<std::string> filters;
  bool operator==(const UnsubscribePacket&) const = default;
};

struct UnsubackPacket {
  uint16_t packet_id = 0;
  Properties properties;
  std::vector<ReasonCode> reasons;  // v5 only; ignored for v3
  bool operator==(const UnsubackPacket&) const = default;
};

struct PingreqPacket {
  bool operator==(const PingreqPacket&) const = default;
};
struct PingrespPacket {
  bool operator==(const PingrespPacket&) const = default;
};

struct DisconnectPacket {
  ReasonCode reason = ReasonCode::kSuccess;  // v5 only
  Properties properties;
  bool operator==(const DisconnectPacket&) const = default;
};

struct AuthPacket {
  ReasonCode reason = ReasonCode::kSuccess;
  Properties properties;
  bool operator==(const AuthPacket&) const = default;
};

using Packet = std::variant<ConnectPacket, ConnackPacket, PublishPacket, AckPacket,
                            SubscribePacket, SubackPacket, UnsubscribePacket,
                            UnsubackPacket, PingreqPacket, PingrespPacket,
                            DisconnectPacket, AuthPacket>;

PacketType packet_type(const Packet& packet);
const char* packet_type_name(PacketType type);

}  // namespace midge::protocol
