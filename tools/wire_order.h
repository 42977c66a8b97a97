// The order in which a v5 PUBLISH carried its properties. mosquitto_sub prints
// properties (%j) in wire order; the codec keeps only their values.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace midge::tools {

struct PublishOrder {
  uint8_t qos = 0;
  uint16_t packet_id = 0;         // 0 for QoS 0
  std::vector<uint8_t> ids;       // property identifiers in wire order, repeats kept
};

// Walks a v5 PUBLISH (whole packet, fixed header included); nullopt if it is
// not a PUBLISH. `ids` is empty if the properties cannot be walked.
std::optional<PublishOrder> publish_property_order(std::string_view packet);

}  // namespace midge::tools
