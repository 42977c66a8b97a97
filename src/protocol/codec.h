// Sans-IO MQTT codec: a pure function of bytes in, packet (or error) out, and
// packet in, bytes appended out. Never touches a socket, clock or global.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/packets.h"

namespace midge::protocol {

enum class DecodeStatus : uint8_t {
  kPacket,    // `packet` holds a packet; `consumed` bytes were used
  kNeedMore,  // the buffer holds only part of a packet; feed more bytes
  kError,     // malformed/protocol error; `error` says which, close the connection
};

struct DecodeResult {
  DecodeStatus status = DecodeStatus::kNeedMore;
  size_t consumed = 0;
  ReasonCode error = ReasonCode::kSuccess;
  // For kError: a short human-readable explanation for logs / reason string.
  const char* message = "";
};

struct DecodeLimits {
  // Largest whole packet (fixed header included) accepted; larger packets are
  // rejected with kPacketTooLarge as soon as the fixed header is read, before
  // the body arrives. 268435460 is the protocol maximum.
  uint32_t max_packet_size = 268435460;
};

// Decodes the first packet in `data`, sent by a client to a server or by a
// server to a client (both directions are accepted; the caller decides what
// is legal for its role). `version` is the protocol version negotiated by
// CONNECT; to decode the CONNECT itself, pass any version: a CONNECT packet
// carries its own version and the decoder reads it from the packet.
// Validates everything that can be checked on one packet alone: fixed header
// flags [MQTT-2.2.2-2], remaining length encoding, string lengths, UTF-8
// well-formedness and forbidden code points [MQTT-1.5.4], property ids allowed
// per packet and duplicates, packet id != 0 where required, reserved bits,
// QoS 3, topic names without wildcards, topic filters syntax, non-empty
// SUBSCRIBE/UNSUBSCRIBE. Does not check semantics that need state (topic
// alias ranges, receive maximum, ...).
DecodeResult decode(std::string_view data, Version version, Packet& packet,
                    const DecodeLimits& limits = {});

// A PUBLISH decoded without copying: `topic` and `payload` point into the
// bytes given to decode_borrowed and are valid as long as those are. The
// properties are decoded (v5) into the object, which may be reused for the
// packets of one protocol version.
struct PublishView {
  bool dup = false;
  uint8_t qos = 0;
  bool retain = false;
  std::string_view topic;
  uint16_t packet_id = 0;
  Properties properties;
  std::string_view payload;
};

// decode(), except that a PUBLISH goes into `publish` (and `*is_publish` is
// set): the server's hot path, which copies the topic and payload only once,
// into the message it routes.
DecodeResult decode_borrowed(std::string_view data, Version version, Packet& packet,
                             PublishView& publish, bool* is_publish,
                             const DecodeLimits& limits = {});
// The size of the whole packet starting at `data` (fixed header included),
// or 0 while its fixed header is incomplete. A malformed remaining length
// gives 1: decode reports the error.
size_t frame_size(std::string_view data);

// A view of a PUBLISH held in a PublishPacket (properties copied).
PublishView view_of(const PublishPacket& p);

// Appends the encoding of `packet` for protocol `version` to `out`.
// Properties are written only for v5. For v3 CONNACK/SUBACK the reason codes
// are mapped onto 3.1.1 return codes.
void encode(const Packet& packet, Version version, std::string& out);

// Size in bytes of the whole encoded packet, for maximum-packet-size checks.
size_t encoded_size(const Packet& packet, Version version);

// Variable byte integer (section 1.5.5) helpers, used by the encoder and by
// callers that build packets by hand.
void append_varint(uint32_t value, std::string& out);
size_t varint_size(uint32_t value);

}  // namespace midge::protocol
