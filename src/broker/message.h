// An application message as routed by the broker: immutable once published
// and shared (one allocation) by every subscriber it is delivered to.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "protocol/packets.h"
#include "util/time.h"

namespace midge::broker {

struct Message {
  std::string topic;
  std::string payload;
  uint8_t qos = 0;
  bool retain = false;
  // v5 properties forwarded unchanged, pre-encoded once
  // (protocol::encode_pass_through_properties).
  std::string pass_through;
  // Absolute expiry from the v5 Message Expiry Interval; none = never.
  std::optional<TimePoint> expires_at;
  // Publishing client, for v5 No Local [MQTT-3.8.3-3]; empty for the broker.
  std::string origin_client_id;

  size_t footprint() const { return sizeof(Message) + topic.size() + payload.size() + pass_through.size(); }
  bool expired(TimePoint now) const { return expires_at && *expires_at <= now; }
};

using MessagePtr = std::shared_ptr<const Message>;

}  // namespace midge::broker
