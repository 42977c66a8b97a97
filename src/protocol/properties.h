// Internal to src/protocol: MQTT 5.0 properties (section 2.2.2), decoded in
// one pass with per-packet allow lists and duplicate detection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "protocol/packets.h"
#include "protocol/wire.h"

namespace midge::protocol::detail {

// Where a property block sits; decides which property ids are allowed.
enum class PropertyContext : uint8_t {
  kConnect,
  kWill,
  kConnack,
  kPublish,
  kAck,  // PUBACK, PUBREC, PUBREL, PUBCOMP
  kSubscribe,
  kSuback,
  kUnsubscribe,
  kUnsuback,
  kDisconnect,
  kAuth,
};

// Reads the property length and the properties into `out` (which must be
// empty). Unknown id or bad encoding -> Malformed Packet; id not allowed in
// `context`, repeated id that may appear once, or an out-of-range value ->
// Protocol Error.
Status decode_properties(Reader& reader, PropertyContext context, Properties& out);

// Bytes of the properties alone, without the property length prefix.
size_t properties_size(const Properties& props);

// Appends the property length (of `size` = properties_size(props)) and the
// properties, in increasing id order.
void encode_properties(const Properties& props, size_t size, std::string& out);

}  // namespace midge::protocol::detail
