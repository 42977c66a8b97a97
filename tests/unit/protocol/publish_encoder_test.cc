// The fast PUBLISH encoder must produce exactly what the general encoder
// produces for the same packet.
#include "protocol/publish_encoder.h"

#include <gtest/gtest.h>

#include "protocol/codec.h"

namespace midge::protocol {
namespace {

std::string general(const PublishPacket& p, Version v) {
  std::string out;
  encode(p, v, out);
  return out;
}

TEST(PublishEncoder, MatchesGeneralEncoderV311) {
  for (uint8_t qos = 0; qos <= 2; ++qos) {
    PublishPacket p;
    p.topic = "maison/salon/temp";
    p.payload = std::string(300, 'x');  // two-byte remaining length
    p.qos = qos;
    p.retain = qos == 1;
    p.dup = qos == 2;
    p.packet_id = qos ? 77 : 0;
    OutgoingPublish o;
    o.topic = p.topic;
    o.payload = p.payload;
    o.qos = p.qos;
    o.retain = p.retain;
    o.dup = p.dup;
    o.packet_id = p.packet_id;
    std::string fast = "prefix";
    encode_publish(o, Version::kV311, fast);
    EXPECT_EQ(fast.substr(6), general(p, Version::kV311));
    EXPECT_EQ(publish_size(o, Version::kV311), fast.size() - 6);
  }
}

TEST(PublishEncoder, MatchesGeneralEncoderV5WithProperties) {
  PublishPacket p;
  p.topic = "";
  p.payload = "hello";
  p.qos = 1;
  p.packet_id = 9;
  p.properties.payload_format_indicator = 1;
  p.properties.content_type = "text/plain";
  p.properties.response_topic = "reply/here";
  p.properties.correlation_data = std::string("\x00\x01", 2);
  p.properties.user_properties = {{"k", "v"}, {"k", "w"}};
  p.properties.message_expiry_interval = 0x01020304;
  p.properties.topic_alias = 3;
  p.properties.subscription_identifiers = {1, 300, 268435455};
  const std::string pass = encode_pass_through_properties(p.properties);
  OutgoingPublish o;
  o.topic = p.topic;
  o.payload = p.payload;
  o.qos = 1;
  o.packet_id = 9;
  o.pass_through = pass;
  o.message_expiry = 0x01020304;
  o.topic_alias = 3;
  o.subscription_ids = p.properties.subscription_identifiers;
  std::string fast;
  encode_publish(o, Version::kV5, fast);
  // Same bytes, and it decodes back to the same packet.
  Packet back;
  const DecodeResult r = decode(fast, Version::kV5, back);
  ASSERT_EQ(r.status, DecodeStatus::kPacket);
  EXPECT_EQ(std::get<PublishPacket>(back), p);
  EXPECT_EQ(fast.size(), publish_size(o, Version::kV5));
}

}  // namespace
}  // namespace midge::protocol

namespace midge::protocol {
namespace {

// The decoder reuses the packet object it is given; nothing of a previous
// packet may leak into the next one.
TEST(DecoderReuse, PropertiesDoNotLeakIntoTheNextPacket) {
  PublishPacket full;
  full.topic = "a/b";
  full.payload = "x";
  full.qos = 1;
  full.packet_id = 5;
  full.properties.content_type = "text/plain";
  full.properties.user_properties = {{"k", "v"}};
  full.properties.message_expiry_interval = 7;
  PublishPacket bare;
  bare.topic = "c";
  bare.payload = "y";
  AckPacket ack_full;
  ack_full.packet_id = 9;
  ack_full.reason = ReasonCode::kNoMatchingSubscribers;
  ack_full.properties.reason_string = "none";
  AckPacket ack_bare;
  ack_bare.packet_id = 10;
  std::string bytes;
  for (const Packet& p : std::vector<Packet>{full, bare, ack_full, ack_bare, full, bare}) {
    encode(p, Version::kV5, bytes);
  }
  Packet reused;
  std::string_view rest = bytes;
  std::vector<Packet> expected{full, bare, ack_full, ack_bare, full, bare};
  for (const Packet& want : expected) {
    const DecodeResult r = decode(rest, Version::kV5, reused);
    ASSERT_EQ(r.status, DecodeStatus::kPacket);
    EXPECT_EQ(reused, want);
    rest.remove_prefix(r.consumed);
  }
}

}  // namespace
}  // namespace midge::protocol
