// Fast path for the PUBLISH packets a server sends: the pass-through v5
// properties of a message are encoded once (PassThrough) and every delivery
// only adds what differs per subscriber (packet id, topic alias, expiry,
// subscription identifiers), written straight into the output buffer.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "protocol/packets.h"

namespace midge::protocol {

// Encoded body (no length prefix) of the properties a server forwards
// unchanged [MQTT-3.3.2-4..]: payload format indicator, content type,
// response topic, correlation data and user properties, in that order.
std::string encode_pass_through_properties(const Properties& properties);

struct OutgoingPublish {
  std::string_view topic;    // sent as is; empty when only `topic_alias` is sent
  std::string_view payload;
  uint8_t qos = 0;
  bool retain = false;
  bool dup = false;
  uint16_t packet_id = 0;
  std::string_view pass_through;            // from encode_pass_through_properties
  std::optional<uint32_t> message_expiry;   // remaining seconds
  uint16_t topic_alias = 0;                 // 0 = none
  std::span<const uint32_t> subscription_ids;
  // Encode everything but the payload bytes (the Remaining Length still
  // counts them): the caller sends the payload as a separate slice.
  bool omit_payload = false;
};

// The whole packet's size, payload included even with omit_payload.
size_t publish_size(const OutgoingPublish& p, Version version);
void encode_publish(const OutgoingPublish& p, Version version, std::string& out);
// Where the packet identifier sits in encode_publish's output (qos > 0), so
// one encoding can be copied to many subscribers with only the id patched.
size_t publish_packet_id_offset(const OutgoingPublish& p, Version version);

}  // namespace midge::protocol
