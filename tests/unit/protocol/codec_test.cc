// Golden bytes below are written by hand from the OASIS MQTT 3.1, 3.1.1 and
// 5.0 specifications (section numbers in the names), never produced by the
// encoder under test.
#include "protocol/codec.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

// Expected packets are written with designated initializers that omit
// defaulted members; g++ 12 warns about that (later versions do not).
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace midge::protocol {
namespace {

// "10 0e 00 04" -> bytes.
std::string Hex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i < hex.size();) {
    if (hex[i] == ' ') {
      ++i;
      continue;
    }
    out.push_back(
        static_cast<char>(std::strtoul(std::string(hex.substr(i, 2)).c_str(), nullptr, 16)));
    i += 2;
  }
  return out;
}

std::string ToHex(std::string_view bytes) {
  static const char* kDigits = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : bytes) {
    if (!out.empty()) out.push_back(' ');
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

struct Golden {
  const char* name;
  Version version;
  std::string bytes;
  Packet packet;
};

AckPacket Ack(PacketType type, uint16_t id, ReasonCode reason = ReasonCode::kSuccess,
              Properties props = {}) {
  return AckPacket{.type = type, .packet_id = id, .reason = reason, .properties = std::move(props)};
}

// Packets that exist identically in 3.1 and 3.1.1 (all but CONNECT/CONNACK).
void AddCommonV3(std::vector<Golden>& g, Version v) {
  g.push_back({"PUBLISH qos0 (3.3)", v, Hex("30 07 00 03 61 2F 62 68 69"),
               PublishPacket{.topic = "a/b", .payload = "hi"}});
  g.push_back(
      {"PUBLISH qos1 dup retain", v, Hex("3B 06 00 01 74 00 07 78"),
       PublishPacket{
           .dup = true, .qos = 1, .retain = true, .topic = "t", .packet_id = 7, .payload = "x"}});
  g.push_back({"PUBLISH qos2 empty payload", v, Hex("34 05 00 01 74 12 34"),
               PublishPacket{.qos = 2, .topic = "t", .packet_id = 0x1234}});
  g.push_back({"PUBLISH 2-byte remaining length", v,
               Hex("30 CB 01 00 01 74") + std::string(200, 'p'),
               PublishPacket{.topic = "t", .payload = std::string(200, 'p')}});
  g.push_back({"PUBACK (3.4)", v, Hex("40 02 00 07"), Ack(PacketType::kPuback, 7)});
  g.push_back({"PUBREC (3.5)", v, Hex("50 02 00 07"), Ack(PacketType::kPubrec, 7)});
  g.push_back({"PUBREL (3.6)", v, Hex("62 02 00 07"), Ack(PacketType::kPubrel, 7)});
  g.push_back({"PUBCOMP (3.7)", v, Hex("70 02 00 07"), Ack(PacketType::kPubcomp, 7)});
  g.push_back({"SUBSCRIBE (3.8)", v, Hex("82 0C 00 0A 00 03 61 2F 2B 01 00 01 23 02"),
               SubscribePacket{.packet_id = 10,
                               .subscriptions = {{"a/+", {.max_qos = 1}}, {"#", {.max_qos = 2}}}}});
  g.push_back({"SUBACK (3.9)", v, Hex("90 04 00 0A 01 80"),
               SubackPacket{.packet_id = 10,
                            .reasons = {ReasonCode::kGrantedQos1, ReasonCode::kUnspecifiedError}}});
  g.push_back({"UNSUBSCRIBE (3.10)", v, Hex("A2 07 00 0B 00 03 61 2F 2B"),
               UnsubscribePacket{.packet_id = 11, .filters = {"a/+"}}});
  g.push_back({"UNSUBACK (3.11)", v, Hex("B0 02 00 0B"), UnsubackPacket{.packet_id = 11}});
  g.push_back({"PINGREQ (3.12)", v, Hex("C0 00"), PingreqPacket{}});
  g.push_back({"PINGRESP (3.13)", v, Hex("D0 00"), PingrespPacket{}});
  g.push_back({"DISCONNECT (3.14)", v, Hex("E0 00"), DisconnectPacket{}});
}

std::vector<Golden> V31Goldens() {
  std::vector<Golden> g;
  const Version v = Version::kV31;
  g.push_back(
      {"3.1 CONNECT MQIsdp user+password", v,
       Hex("10 16 00 06 4D 51 49 73 64 70 03 C2 00 3C 00 02 63 31 00 01 75 00 01 70"),
       ConnectPacket{
           .version = v, .keep_alive = 60, .client_id = "c1", .username = "u", .password = "p"}});
  g.push_back({"3.1 CONNECT will", v,
               Hex("10 16 00 06 4D 51 49 73 64 70 03 0E 00 05 00 01 63 00 01 77 00 02 6F 6B"),
               ConnectPacket{.version = v,
                             .keep_alive = 5,
                             .client_id = "c",
                             .will = Will{.topic = "w", .payload = "ok", .qos = 1}}});
  g.push_back({"3.1 CONNACK identifier rejected", v, Hex("20 02 00 02"),
               ConnackPacket{.reason = ReasonCode::kClientIdentifierNotValid}});
  AddCommonV3(g, v);
  return g;
}

std::vector<Golden> V311Goldens() {
  std::vector<Golden> g;
  const Version v = Version::kV311;
  g.push_back({"3.1.1 CONNECT minimal (3.1)", v,
               Hex("10 0E 00 04 4D 51 54 54 04 02 00 3C 00 02 63 31"),
               ConnectPacket{.version = v, .keep_alive = 60, .client_id = "c1"}});
  g.push_back({"3.1.1 CONNECT will+user+password", v,
               Hex("10 1B 00 04 4D 51 54 54 04 EC 00 0A 00 01 63 00 01 77 00 03 62 79 65 "
                   "00 01 75 00 01 70"),
               ConnectPacket{.version = v,
                             .clean_start = false,
                             .keep_alive = 10,
                             .client_id = "c",
                             .will = Will{.topic = "w", .payload = "bye", .qos = 1, .retain = true},
                             .username = "u",
                             .password = "p"}});
  g.push_back({"3.1.1 CONNACK session present (3.2)", v, Hex("20 02 01 00"),
               ConnackPacket{.session_present = true}});
  g.push_back({"3.1.1 CONNACK not authorized", v, Hex("20 02 00 05"),
               ConnackPacket{.reason = ReasonCode::kNotAuthorized}});
  AddCommonV3(g, v);
  return g;
}

std::vector<Golden> V5Goldens() {
  std::vector<Golden> g;
  const Version v = Version::kV5;
  g.push_back(
      {"5.0 CONNECT properties (3.1)", v,
       Hex("10 17 00 04 4D 51 54 54 05 02 00 3C 08 21 00 0A 11 00 00 00 78 00 02 63 31"),
       ConnectPacket{.version = v,
                     .keep_alive = 60,
                     .client_id = "c1",
                     .properties = {.session_expiry_interval = 120, .receive_maximum = 10}}});
  g.push_back({"5.0 CONNECT will properties, password without user name", v,
               Hex("10 22 00 04 4D 51 54 54 05 54 00 00 00 00 00 07 01 01 18 00 00 00 05 "
                   "00 03 77 2F 74 00 02 6F 6B 00 02 01 02"),
               ConnectPacket{.version = v,
                             .clean_start = false,
                             .client_id = "",
                             .will = Will{.topic = "w/t",
                                          .payload = "ok",
                                          .qos = 2,
                                          .properties = {.payload_format_indicator = 1,
                                                         .will_delay_interval = 5}},
                             .password = std::string("\x01\x02")}});
  g.push_back({"5.0 CONNACK properties (3.2), in Mosquitto's order", v, Hex("20 0B 00 00 08 22 00 0A 12 00 02 69 64"),
               ConnackPacket{
                   .properties = {.assigned_client_identifier = "id", .topic_alias_maximum = 10}}});
  g.push_back({"5.0 CONNACK not authorized", v, Hex("20 03 00 87 00"),
               ConnackPacket{.reason = ReasonCode::kNotAuthorized}});
  g.push_back({"5.0 PUBLISH qos1 properties (3.3)", v,
               Hex("32 18 00 03 61 2F 62 00 05 0E 01 01 02 00 00 00 3C 03 00 04 74 65 78 74 68 69"),
               PublishPacket{.qos = 1,
                             .topic = "a/b",
                             .packet_id = 5,
                             .properties = {.payload_format_indicator = 1,
                                            .message_expiry_interval = 60,
                                            .content_type = "text"},
                             .payload = "hi"}});
  g.push_back(
      {"5.0 PUBLISH several subscription identifiers", v,
       Hex("30 0A 00 01 74 05 0B 01 0B 80 01 78"),
       PublishPacket{
           .topic = "t", .properties = {.subscription_identifiers = {1, 128}}, .payload = "x"}});
  g.push_back({"5.0 PUBLISH empty topic with alias", v, Hex("30 07 00 00 03 23 00 01 7A"),
               PublishPacket{.topic = "", .properties = {.topic_alias = 1}, .payload = "z"}});
  g.push_back({"5.0 PUBACK short (3.4.2.1)", v, Hex("40 02 00 01"), Ack(PacketType::kPuback, 1)});
  g.push_back({"5.0 PUBACK reason only", v, Hex("40 03 00 01 10"),
               Ack(PacketType::kPuback, 1, ReasonCode::kNoMatchingSubscribers)});
  g.push_back(
      {"5.0 PUBREC reason string (3.5)", v, Hex("50 09 00 02 80 05 1F 00 02 6E 6F"),
       Ack(PacketType::kPubrec, 2, ReasonCode::kUnspecifiedError, {.reason_string = "no"})});
  g.push_back({"5.0 PUBREL not found (3.6)", v, Hex("62 03 00 03 92"),
               Ack(PacketType::kPubrel, 3, ReasonCode::kPacketIdentifierNotFound)});
  g.push_back({"5.0 PUBCOMP (3.7)", v, Hex("70 02 00 03"), Ack(PacketType::kPubcomp, 3)});
  g.push_back({"5.0 SUBSCRIBE options and shared filter (3.8)", v,
               Hex("82 18 00 01 02 0B 05 00 03 61 2F 23 2D 00 0A 24 73 68 61 72 65 2F 67 2F 78 00"),
               SubscribePacket{.packet_id = 1,
                               .properties = {.subscription_identifiers = {5}},
                               .subscriptions = {{"a/#",
                                                  {.max_qos = 1,
                                                   .no_local = true,
                                                   .retain_as_published = true,
                                                   .retain_handling = 2}},
                                                 {"$share/g/x", {}}}}});
  g.push_back({"5.0 SUBACK (3.9)", v, Hex("90 05 00 01 00 01 9E"),
               SubackPacket{.packet_id = 1,
                            .reasons = {ReasonCode::kGrantedQos1,
                                        ReasonCode::kSharedSubscriptionsNotSupported}}});
  g.push_back(
      {"5.0 UNSUBSCRIBE user property (3.10)", v,
       Hex("A2 0D 00 02 07 26 00 01 6B 00 01 76 00 01 23"),
       UnsubscribePacket{
           .packet_id = 2, .properties = {.user_properties = {{"k", "v"}}}, .filters = {"#"}}});
  g.push_back(
      {"5.0 UNSUBACK (3.11)", v, Hex("B0 05 00 02 00 00 11"),
       UnsubackPacket{.packet_id = 2,
                      .reasons = {ReasonCode::kSuccess, ReasonCode::kNoSubscriptionExisted}}});
  g.push_back({"5.0 PINGREQ (3.12)", v, Hex("C0 00"), PingreqPacket{}});
  g.push_back({"5.0 PINGRESP (3.13)", v, Hex("D0 00"), PingrespPacket{}});
  g.push_back({"5.0 DISCONNECT short (3.14)", v, Hex("E0 00"), DisconnectPacket{}});
  g.push_back({"5.0 DISCONNECT reason only", v, Hex("E0 01 04"),
               DisconnectPacket{.reason = ReasonCode::kDisconnectWithWill}});
  g.push_back(
      {"5.0 DISCONNECT properties", v, Hex("E0 0B 8E 09 11 00 00 00 00 1C 00 01 73"),
       DisconnectPacket{.reason = ReasonCode::kSessionTakenOver,
                        .properties = {.session_expiry_interval = 0, .server_reference = "s"}}});
  g.push_back({"5.0 AUTH short (3.15)", v, Hex("F0 00"), AuthPacket{}});
  g.push_back({"5.0 AUTH continue", v, Hex("F0 0D 18 0B 15 00 03 53 43 52 16 00 02 01 02"),
               AuthPacket{.reason = ReasonCode::kContinueAuthentication,
                          .properties = {.authentication_method = "SCR",
                                         .authentication_data = std::string("\x01\x02")}}});
  return g;
}

void CheckGolden(const Golden& g) {
  SCOPED_TRACE(g.name);
  const std::string& bytes = g.bytes;
  // Whole.
  Packet packet;
  DecodeResult r = decode(bytes, g.version, packet);
  ASSERT_EQ(r.status, DecodeStatus::kPacket) << r.message;
  EXPECT_EQ(r.consumed, bytes.size());
  EXPECT_TRUE(packet == g.packet);
  // Followed by another packet: only the first is consumed.
  r = decode(bytes + Hex("C0 00"), g.version, packet);
  ASSERT_EQ(r.status, DecodeStatus::kPacket);
  EXPECT_EQ(r.consumed, bytes.size());
  // One byte at a time: every strict prefix needs more.
  for (size_t n = 0; n < bytes.size(); ++n) {
    Packet partial;
    const DecodeResult pr = decode(std::string_view(bytes).substr(0, n), g.version, partial);
    ASSERT_EQ(pr.status, DecodeStatus::kNeedMore) << "prefix " << n;
  }
  // Encoding gives the golden bytes back, after what `out` already held.
  std::string out = "xy";
  encode(g.packet, g.version, out);
  EXPECT_EQ(ToHex(out.substr(2)), ToHex(bytes));
  EXPECT_EQ(encoded_size(g.packet, g.version), bytes.size());
}

TEST(CodecGolden, V31) {
  for (const auto& g : V31Goldens()) CheckGolden(g);
}
TEST(CodecGolden, V311) {
  for (const auto& g : V311Goldens()) CheckGolden(g);
}
TEST(CodecGolden, V5) {
  for (const auto& g : V5Goldens()) CheckGolden(g);
}

TEST(CodecGolden, ConnectVersionComesFromPacket) {
  // The caller's version is irrelevant for CONNECT.
  for (Version caller : {Version::kV31, Version::kV311, Version::kV5}) {
    Packet packet;
    auto r =
        decode(Hex("10 17 00 04 4D 51 54 54 05 02 00 3C 08 21 00 0A 11 00 00 00 78 00 02 63 31"),
               caller, packet);
    ASSERT_EQ(r.status, DecodeStatus::kPacket);
    EXPECT_EQ(std::get<ConnectPacket>(packet).version, Version::kV5);
  }
}

TEST(CodecGolden, V5PasswordWithoutUserName) {
  Packet packet;
  auto r =
      decode(Hex("10 11 00 04 4D 51 54 54 05 42 00 3C 00 00 00 00 02 70 77"), Version::kV5, packet);
  ASSERT_EQ(r.status, DecodeStatus::kPacket) << r.message;
  EXPECT_EQ(std::get<ConnectPacket>(packet).password, "pw");
  EXPECT_FALSE(std::get<ConnectPacket>(packet).username);
}

struct BadCase {
  const char* name;
  Version version;
  const char* hex;
  ReasonCode expected;
};

constexpr ReasonCode kMalformed = ReasonCode::kMalformedPacket;
constexpr ReasonCode kProtocol = ReasonCode::kProtocolError;

const BadCase kBadCases[] = {
    // Fixed header.
    {"remaining length 5 bytes", Version::kV311, "30 FF FF FF FF 7F", kMalformed},
    {"remaining length 4 bytes + continuation", Version::kV311, "30 FF FF FF FF", kMalformed},
    {"non-minimal remaining length v5", Version::kV5, "C0 80 00", kMalformed},
    {"reserved type 0", Version::kV311, "00 00", kMalformed},
    {"PINGREQ flags", Version::kV311, "C1 00", kMalformed},
    {"CONNECT flags", Version::kV311, "11 00", kMalformed},
    {"SUBSCRIBE flags 0", Version::kV311, "80 06 00 01 00 01 61 00", kMalformed},
    {"UNSUBSCRIBE flags 0", Version::kV311, "A0 05 00 01 00 01 61", kMalformed},
    {"PUBREL flags 0", Version::kV311, "60 02 00 01", kMalformed},
    {"PUBACK flags", Version::kV5, "42 02 00 01", kMalformed},
    {"AUTH in 3.1.1", Version::kV311, "F0 00", kMalformed},
    {"PUBLISH QoS 3 (3.3.1.2)", Version::kV311, "36 05 00 01 74 00 01", kMalformed},
    {"PUBLISH DUP on QoS 0", Version::kV311, "38 03 00 01 74", kMalformed},
    // CONNECT.
    {"CONNECT bad protocol name", Version::kV311, "10 0C 00 04 4D 51 54 58 04 02 00 3C 00 00",
     ReasonCode::kUnsupportedProtocolVersion},
    {"CONNECT level 6", Version::kV311, "10 0C 00 04 4D 51 54 54 06 02 00 3C 00 00",
     ReasonCode::kUnsupportedProtocolVersion},
    {"CONNECT MQIsdp level 4", Version::kV311, "10 0E 00 06 4D 51 49 73 64 70 04 02 00 3C 00 00",
     ReasonCode::kUnsupportedProtocolVersion},
    {"CONNECT MQTT level 3", Version::kV311, "10 0C 00 04 4D 51 54 54 03 02 00 3C 00 00",
     ReasonCode::kUnsupportedProtocolVersion},
    {"CONNECT reserved flag", Version::kV311, "10 0C 00 04 4D 51 54 54 04 03 00 3C 00 00",
     kMalformed},
    {"CONNECT will QoS without will", Version::kV311, "10 0C 00 04 4D 51 54 54 04 0A 00 3C 00 00",
     kMalformed},
    {"CONNECT will retain without will", Version::kV311,
     "10 0C 00 04 4D 51 54 54 04 22 00 3C 00 00", kMalformed},
    {"CONNECT will QoS 3", Version::kV311,
     "10 11 00 04 4D 51 54 54 04 1E 00 3C 00 00 00 01 74 00 00", kMalformed},
    {"3.1.1 password without user name", Version::kV311,
     "10 10 00 04 4D 51 54 54 04 42 00 3C 00 00 00 02 70 77", kMalformed},
    {"CONNECT trailing byte", Version::kV311, "10 0D 00 04 4D 51 54 54 04 02 00 3C 00 00 FF",
     kMalformed},
    {"CONNECT truncated", Version::kV311, "10 02 00 04", kMalformed},
    {"CONNECT client id bad UTF-8", Version::kV311,
     "10 0E 00 04 4D 51 54 54 04 02 00 3C 00 02 C0 80", kMalformed},
    {"CONNECT will topic wildcard", Version::kV311,
     "10 11 00 04 4D 51 54 54 04 06 00 3C 00 00 00 01 23 00 00", ReasonCode::kTopicNameInvalid},
    {"CONNECT will payload not UTF-8", Version::kV5,
     "10 16 00 04 4D 51 54 54 05 06 00 3C 00 00 00 02 01 01 00 01 74 00 01 FF",
     ReasonCode::kPayloadFormatInvalid},
    {"CONNECT maximum packet size 0", Version::kV5,
     "10 12 00 04 4D 51 54 54 05 02 00 3C 05 27 00 00 00 00 00 00", kProtocol},
    {"CONNECT request problem information 2", Version::kV5,
     "10 0F 00 04 4D 51 54 54 05 02 00 3C 02 17 02 00 00", kProtocol},
    {"CONNECT receive maximum 0", Version::kV5,
     "10 10 00 04 4D 51 54 54 05 02 00 3C 03 21 00 00 00 00", kProtocol},
    {"CONNECT topic alias in CONNECT", Version::kV5,
     "10 10 00 04 4D 51 54 54 05 02 00 3C 03 23 00 01 00 00", kMalformed},
    {"CONNECT duplicate session expiry", Version::kV5,
     "10 17 00 04 4D 51 54 54 05 02 00 3C 0A 11 00 00 00 01 11 00 00 00 02 00 00", kProtocol},
    {"CONNECT authentication data without method", Version::kV5,
     "10 10 00 04 4D 51 54 54 05 02 00 3C 03 16 00 00 00 00", kProtocol},
    // CONNACK.
    {"CONNACK reserved flags", Version::kV311, "20 02 02 00", kMalformed},
    {"CONNACK return code 6", Version::kV311, "20 02 00 06", kMalformed},
    {"CONNACK session present with error", Version::kV311, "20 02 01 05", kProtocol},
    {"CONNACK v3 length 3", Version::kV311, "20 03 00 00 00", kMalformed},
    {"CONNACK maximum QoS 2", Version::kV5, "20 05 00 00 02 24 02", kProtocol},
    {"CONNACK receive maximum 0", Version::kV5, "20 06 00 00 03 21 00 00", kProtocol},
    {"CONNACK reason not for CONNACK", Version::kV5, "20 03 00 10 00", kMalformed},
    // PUBLISH.
    {"PUBLISH packet id 0", Version::kV311, "32 05 00 01 74 00 00", kProtocol},
    {"PUBLISH topic '+'", Version::kV311, "30 05 00 03 61 2F 2B", ReasonCode::kTopicNameInvalid},
    {"PUBLISH topic '#'", Version::kV5, "30 04 00 01 23 00", ReasonCode::kTopicNameInvalid},
    {"PUBLISH empty topic 3.1.1", Version::kV311, "30 02 00 00", ReasonCode::kTopicNameInvalid},
    {"PUBLISH overlong NUL in topic", Version::kV311, "30 04 00 02 C0 80", kMalformed},
    {"PUBLISH U+0000 in topic", Version::kV311, "30 03 00 01 00", kMalformed},
    {"PUBLISH surrogate in topic", Version::kV311, "30 05 00 03 ED A0 80", kMalformed},
    {"PUBLISH topic length beyond packet", Version::kV311, "30 03 00 05 61", kMalformed},
    {"PUBLISH missing packet id", Version::kV311, "32 03 00 01 74", kMalformed},
    {"PUBLISH empty topic without alias", Version::kV5, "30 03 00 00 00", kProtocol},
    {"PUBLISH topic alias 0", Version::kV5, "30 07 00 01 74 03 23 00 00", kProtocol},
    {"PUBLISH unknown property", Version::kV5, "30 06 00 01 74 02 05 00", kMalformed},
    {"PUBLISH property id with high bit", Version::kV5, "30 06 00 01 74 02 80 01", kMalformed},
    {"PUBLISH session expiry not allowed", Version::kV5, "30 09 00 01 74 05 11 00 00 00 01",
     kMalformed},
    {"PUBLISH duplicate payload format", Version::kV5, "30 08 00 01 74 04 01 00 01 00", kProtocol},
    {"PUBLISH payload format 2", Version::kV5, "30 06 00 01 74 02 01 02", kProtocol},
    {"PUBLISH subscription identifier 0", Version::kV5, "30 06 00 01 74 02 0B 00", kProtocol},
    {"PUBLISH payload not UTF-8", Version::kV5, "30 07 00 01 74 02 01 01 FF",
     ReasonCode::kPayloadFormatInvalid},
    {"PUBLISH property length beyond packet", Version::kV5, "30 05 00 01 74 05 01", kMalformed},
    {"PUBLISH truncated property", Version::kV5, "30 06 00 01 74 02 02 00", kMalformed},
    {"PUBLISH response topic wildcard", Version::kV5, "30 08 00 01 74 04 08 00 01 23", kProtocol},
    {"PUBLISH user property bad UTF-8", Version::kV5, "30 0B 00 01 74 07 26 00 01 FF 00 01 76",
     kMalformed},
    // Acks.
    {"PUBACK packet id 0", Version::kV311, "40 02 00 00", kProtocol},
    {"PUBACK 3.1.1 length 3", Version::kV311, "40 03 00 01 00", kMalformed},
    {"PUBACK length 1", Version::kV5, "40 01 00", kMalformed},
    {"PUBACK reason for PUBREL only", Version::kV5, "40 03 00 01 92", kMalformed},
    {"PUBCOMP reason for PUBACK only", Version::kV5, "70 03 00 01 10", kMalformed},
    {"PUBACK subscription identifier", Version::kV5, "40 06 00 01 00 02 0B 01", kMalformed},
    // SUBSCRIBE.
    {"SUBSCRIBE no payload", Version::kV311, "82 02 00 01", kProtocol},
    {"SUBSCRIBE no payload v5", Version::kV5, "82 03 00 01 00", kProtocol},
    {"SUBSCRIBE packet id 0", Version::kV311, "82 06 00 00 00 01 61 00", kMalformed},
    {"UNSUBSCRIBE packet id 0", Version::kV5, "A2 06 00 00 00 00 01 61", kMalformed},
    {"SUBSCRIBE missing options", Version::kV311, "82 05 00 01 00 01 61", kMalformed},
    {"SUBSCRIBE 3.1.1 reserved bits", Version::kV311, "82 06 00 01 00 01 61 04", kMalformed},
    {"SUBSCRIBE 3.1.1 QoS 3", Version::kV311, "82 06 00 01 00 01 61 03", kMalformed},
    {"SUBSCRIBE v5 reserved bits", Version::kV5, "82 07 00 01 00 00 01 61 40", kMalformed},
    {"SUBSCRIBE v5 QoS 3", Version::kV5, "82 07 00 01 00 00 01 61 03", kProtocol},
    {"SUBSCRIBE retain handling 3", Version::kV5, "82 07 00 01 00 00 01 61 30", kProtocol},
    {"SUBSCRIBE no local on $share [MQTT-3.8.3-4]", Version::kV5,
     "82 10 00 01 00 00 0A 24 73 68 61 72 65 2F 67 2F 61 04", kProtocol},
    {"SUBSCRIBE two subscription identifiers", Version::kV5,
     "82 0B 00 01 04 0B 01 0B 02 00 01 61 00", kProtocol},
    {"SUBSCRIBE filter bad UTF-8", Version::kV311, "82 06 00 01 00 01 FF 00", kMalformed},
    // SUBACK, UNSUBSCRIBE, UNSUBACK.
    {"SUBACK 3.1.1 code 3", Version::kV311, "90 03 00 01 03", kMalformed},
    {"SUBACK no reason codes", Version::kV311, "90 02 00 01", kProtocol},
    {"SUBACK v5 code 0x10", Version::kV5, "90 04 00 01 00 10", kMalformed},
    {"UNSUBSCRIBE no payload", Version::kV311, "A2 02 00 01", kProtocol},
    {"UNSUBSCRIBE filter #/a", Version::kV311, "A2 07 00 01 00 03 23 2F 61",
     ReasonCode::kTopicFilterInvalid},
    {"UNSUBSCRIBE subscription identifier", Version::kV5, "A2 08 00 01 02 0B 01 00 01 61",
     kMalformed},
    {"UNSUBACK 3.1.1 length 3", Version::kV311, "B0 03 00 01 00", kMalformed},
    {"UNSUBACK v5 no reasons", Version::kV5, "B0 03 00 01 00", kProtocol},
    // PING, DISCONNECT, AUTH.
    {"PINGREQ with body", Version::kV311, "C0 01 00", kMalformed},
    {"PINGRESP with body", Version::kV5, "D0 01 00", kMalformed},
    {"DISCONNECT 3.1.1 with body", Version::kV311, "E0 01 00", kMalformed},
    {"DISCONNECT unknown reason", Version::kV5, "E0 01 05", kMalformed},
    {"DISCONNECT topic alias property", Version::kV5, "E0 05 00 03 23 00 01", kMalformed},
    {"DISCONNECT trailing after properties", Version::kV5, "E0 03 00 00 00", kMalformed},
    {"AUTH data without method", Version::kV5, "F0 06 18 04 16 00 01 61", kProtocol},
    {"AUTH reason 0x04", Version::kV5, "F0 02 04 00", kMalformed},
};

TEST(CodecErrors, Table) {
  for (const auto& c : kBadCases) {
    SCOPED_TRACE(c.name);
    Packet packet;
    const DecodeResult r = decode(Hex(c.hex), c.version, packet);
    ASSERT_EQ(r.status, DecodeStatus::kError);
    EXPECT_EQ(static_cast<int>(r.error), static_cast<int>(c.expected)) << r.message;
    EXPECT_NE(std::string_view(r.message), "");
  }
}

TEST(CodecErrors, LenientCases) {
  struct Ok {
    Version version;
    const char* hex;
  };
  // 3.1.1 has no minimal-length rule; 3.1 does not fix SUBSCRIBE flags.
  for (const Ok& c : {Ok{Version::kV311, "C0 80 00"}, Ok{Version::kV31, "80 06 00 01 00 01 61 00"},
                      Ok{Version::kV31, "8A 06 00 01 00 01 61 00"},
                      Ok{Version::kV31, "20 02 01 00"},  // 3.1: reserved byte ignored
                      Ok{Version::kV5, "30 07 00 01 74 02 01 01 00"}}) {  // U+0000 in payload ok
    Packet packet;
    const DecodeResult r = decode(Hex(c.hex), c.version, packet);
    EXPECT_EQ(r.status, DecodeStatus::kPacket) << c.hex << " " << r.message;
  }
}

TEST(CodecLimits, PacketTooLargeFromFixedHeaderAlone) {
  Packet packet;
  // 203-byte body + 3 header bytes = 206 > 100: rejected before the body.
  DecodeResult r = decode(Hex("30 CB 01"), Version::kV311, packet, {.max_packet_size = 100});
  EXPECT_EQ(r.status, DecodeStatus::kError);
  EXPECT_EQ(r.error, ReasonCode::kPacketTooLarge);
  // Exactly at the limit is accepted.
  const std::string whole = Hex("30 07 00 03 61 2F 62 68 69");
  r = decode(whole, Version::kV311, packet, {.max_packet_size = 9});
  EXPECT_EQ(r.status, DecodeStatus::kPacket);
  r = decode(whole, Version::kV311, packet, {.max_packet_size = 8});
  EXPECT_EQ(r.error, ReasonCode::kPacketTooLarge);
}

// Mosquitto's limit: at most 200 '/' in a topic name or filter (protocol/topic.h).
TEST(CodecLimits, TopicLevels) {
  auto packet_with = [](uint8_t first, std::string_view head, const std::string& topic, std::string_view tail) {
    std::string body(head);
    body.push_back(static_cast<char>(topic.size() >> 8));
    body.push_back(static_cast<char>(topic.size() & 0xFF));
    body += topic;
    body += tail;
    std::string out(1, static_cast<char>(first));
    for (size_t n = body.size();; n >>= 7) {  // remaining length
      out.push_back(static_cast<char>((n & 0x7F) | (n > 0x7F ? 0x80 : 0)));
      if (n <= 0x7F) break;
    }
    return out + body;
  };
  const std::string ok(200, '/');
  const std::string deep(201, '/');
  Packet packet;
  EXPECT_EQ(decode(packet_with(0x30, "", ok, "x"), Version::kV311, packet).status, DecodeStatus::kPacket);
  const DecodeResult r = decode(packet_with(0x30, "", deep, "x"), Version::kV311, packet);
  EXPECT_EQ(r.status, DecodeStatus::kError);
  EXPECT_EQ(r.error, ReasonCode::kMalformedPacket);
  EXPECT_EQ(decode(packet_with(0x82, std::string_view("\0\1", 2), ok, std::string_view("\0", 1)), Version::kV311,
                   packet).status,
            DecodeStatus::kPacket);
  EXPECT_EQ(decode(packet_with(0x82, std::string_view("\0\1", 2), deep, std::string_view("\0", 1)),
                   Version::kV311, packet).error,
            ReasonCode::kMalformedPacket);
  EXPECT_EQ(decode(packet_with(0xA2, std::string_view("\0\1", 2), deep, ""), Version::kV311, packet).error,
            ReasonCode::kMalformedPacket);
}

TEST(CodecLimits, NeedMore) {
  Packet packet;
  for (const char* hex : {"", "30", "30 80", "30 FF FF FF", "30 FF FF FF 7F 00 01"}) {
    EXPECT_EQ(decode(Hex(hex), Version::kV311, packet).status, DecodeStatus::kNeedMore) << hex;
  }
}

TEST(CodecDecode, ReusesPublishAndResetsFields) {
  Packet packet;
  ASSERT_EQ(
      decode(Hex("32 18 00 03 61 2F 62 00 05 0E 01 01 02 00 00 00 3C 03 00 04 74 65 78 74 68 69"),
             Version::kV5, packet)
          .status,
      DecodeStatus::kPacket);
  ASSERT_EQ(decode(Hex("30 03 00 01 74"), Version::kV5, packet).status, DecodeStatus::kError);
  ASSERT_EQ(decode(Hex("30 04 00 01 74 00"), Version::kV5, packet).status, DecodeStatus::kPacket);
  EXPECT_TRUE(packet == Packet(PublishPacket{.topic = "t"}));
}

TEST(CodecEncode, V3ConnackCodes) {
  const std::pair<ReasonCode, const char*> cases[] = {
      {ReasonCode::kSuccess, "20 02 00 00"},
      {ReasonCode::kUnsupportedProtocolVersion, "20 02 00 01"},
      {ReasonCode::kClientIdentifierNotValid, "20 02 00 02"},
      {ReasonCode::kServerUnavailable, "20 02 00 03"},
      {ReasonCode::kServerBusy, "20 02 00 03"},
      {ReasonCode::kBadUserNameOrPassword, "20 02 00 04"},
      {ReasonCode::kNotAuthorized, "20 02 00 05"},
      {ReasonCode::kBanned, "20 02 00 05"},
  };
  for (const auto& [reason, hex] : cases) {
    std::string out;
    encode(ConnackPacket{.reason = reason}, Version::kV311, out);
    EXPECT_EQ(ToHex(out), ToHex(Hex(hex))) << reason_code_name(reason);
  }
  std::string out;
  // 3.1 has no session present flag.
  encode(ConnackPacket{.session_present = true}, Version::kV31, out);
  EXPECT_EQ(ToHex(out), "20 02 00 00");
}

TEST(CodecEncode, V3DropsPropertiesAndMapsSubackFailures) {
  std::string out;
  encode(PublishPacket{.topic = "t", .properties = {.message_expiry_interval = 9}, .payload = "x"},
         Version::kV311, out);
  EXPECT_EQ(ToHex(out), "30 04 00 01 74 78");
  out.clear();
  encode(SubackPacket{.packet_id = 1,
                      .properties = {.reason_string = "r"},
                      .reasons = {ReasonCode::kGrantedQos2, ReasonCode::kNotAuthorized,
                                  ReasonCode::kQuotaExceeded}},
         Version::kV311, out);
  EXPECT_EQ(ToHex(out), "90 05 00 01 02 80 80");
  out.clear();
  encode(DisconnectPacket{.reason = ReasonCode::kServerShuttingDown}, Version::kV311, out);
  EXPECT_EQ(ToHex(out), "E0 00");
  out.clear();
  encode(Ack(PacketType::kPuback, 4, ReasonCode::kQuotaExceeded), Version::kV311, out);
  EXPECT_EQ(ToHex(out), "40 02 00 04");
}

TEST(CodecEncode, Varint) {
  const std::pair<uint32_t, const char*> cases[] = {
      {0, "00"},
      {127, "7F"},
      {128, "80 01"},
      {16383, "FF 7F"},
      {16384, "80 80 01"},
      {2097151, "FF FF 7F"},
      {2097152, "80 80 80 01"},
      {268435455, "FF FF FF 7F"},
  };
  for (const auto& [value, hex] : cases) {
    std::string out;
    append_varint(value, out);
    EXPECT_EQ(ToHex(out), hex);
    EXPECT_EQ(varint_size(value), out.size());
  }
}

// Every 5.0 property, each in a packet that allows it, survives encode ->
// decode, and encoded_size() agrees with the bytes.
void RoundTrip(const Packet& packet) {
  SCOPED_TRACE(packet_type_name(packet_type(packet)));
  std::string out;
  encode(packet, Version::kV5, out);
  EXPECT_EQ(out.size(), encoded_size(packet, Version::kV5));
  Packet decoded;
  const DecodeResult r = decode(out, Version::kV5, decoded);
  ASSERT_EQ(r.status, DecodeStatus::kPacket) << r.message;
  EXPECT_EQ(r.consumed, out.size());
  EXPECT_TRUE(decoded == packet);
}

TEST(CodecProperties, RoundTripAll) {
  const UserProperties users = {{"k1", "v1"}, {"k1", "v2"}, {"", ""}};
  RoundTrip(
      ConnectPacket{.version = Version::kV5,
                    .client_id = "client",
                    .will = Will{.topic = "will/t",
                                 .payload = "\xC3\xA9",
                                 .qos = 1,
                                 .properties = {.payload_format_indicator = 1,
                                                .message_expiry_interval = 0xFFFFFFFF,
                                                .content_type = "text/plain",
                                                .response_topic = "reply/here",
                                                .correlation_data = std::string("\x00\xFF", 2),
                                                .will_delay_interval = 30,
                                                .user_properties = users}},
                    .username = "user",
                    .properties = {.session_expiry_interval = 3600,
                                   .authentication_method = "SCRAM",
                                   .authentication_data = "abc",
                                   .request_problem_information = 0,
                                   .request_response_information = 1,
                                   .receive_maximum = 65535,
                                   .topic_alias_maximum = 16,
                                   .user_properties = users,
                                   .maximum_packet_size = 1048576}});
  RoundTrip(ConnackPacket{.session_present = true,
                          .properties = {.session_expiry_interval = 10,
                                         .assigned_client_identifier = "auto-1",
                                         .server_keep_alive = 30,
                                         .authentication_method = "SCRAM",
                                         .authentication_data = "xyz",
                                         .response_information = "resp/",
                                         .server_reference = "other:1883",
                                         .reason_string = "welcome",
                                         .receive_maximum = 100,
                                         .topic_alias_maximum = 10,
                                         .maximum_qos = 1,
                                         .retain_available = 0,
                                         .user_properties = users,
                                         .maximum_packet_size = 65536,
                                         .wildcard_subscription_available = 1,
                                         .subscription_identifier_available = 0,
                                         .shared_subscription_available = 1}});
  RoundTrip(
      PublishPacket{.qos = 2,
                    .topic = "a/b",
                    .packet_id = 65535,
                    .properties = {.payload_format_indicator = 0,
                                   .message_expiry_interval = 5,
                                   .content_type = "bin",
                                   .response_topic = "r",
                                   .correlation_data = "cd",
                                   .subscription_identifiers = {1, 127, 128, 16384, 268435455},
                                   .topic_alias = 65535,
                                   .user_properties = users},
                    .payload = std::string("\x00\x01\xFF", 3)});
  for (PacketType t :
       {PacketType::kPuback, PacketType::kPubrec, PacketType::kPubrel, PacketType::kPubcomp}) {
    RoundTrip(Ack(t, 9, ReasonCode::kSuccess, {.reason_string = "ok", .user_properties = users}));
  }
  RoundTrip(SubscribePacket{
      .packet_id = 3,
      .properties = {.subscription_identifiers = {268435455}, .user_properties = users},
      .subscriptions = {{"x", {.max_qos = 2, .retain_handling = 1}}}});
  RoundTrip(SubackPacket{.packet_id = 3,
                         .properties = {.reason_string = "s", .user_properties = users},
                         .reasons = {ReasonCode::kGrantedQos2}});
  RoundTrip(UnsubscribePacket{
      .packet_id = 4, .properties = {.user_properties = users}, .filters = {"a", "$share/g/b/#"}});
  RoundTrip(UnsubackPacket{.packet_id = 4,
                           .properties = {.reason_string = "u", .user_properties = users},
                           .reasons = {ReasonCode::kSuccess, ReasonCode::kNotAuthorized}});
  RoundTrip(DisconnectPacket{.properties = {.session_expiry_interval = 1,
                                            .server_reference = "elsewhere",
                                            .reason_string = "bye",
                                            .user_properties = users}});
  RoundTrip(AuthPacket{.reason = ReasonCode::kReauthenticate,
                       .properties = {.authentication_method = "m",
                                      .authentication_data = "d",
                                      .reason_string = "again",
                                      .user_properties = users}});
  // Success with an empty property block still encodes the reason for AUTH
  // with properties and the short form without.
  RoundTrip(AuthPacket{.reason = ReasonCode::kContinueAuthentication});
  RoundTrip(DisconnectPacket{.reason = ReasonCode::kSuccess, .properties = {.reason_string = "r"}});
}

TEST(CodecProperties, LargePacketFourByteLength) {
  // 2,097,152-byte body needs a 4-byte remaining length.
  const PublishPacket big{.topic = "t", .payload = std::string(2097152 - 4, 'x')};
  RoundTrip(big);
  std::string out;
  encode(big, Version::kV5, out);
  EXPECT_EQ(ToHex(out.substr(0, 5)), "30 80 80 80 01");
}

TEST(ReasonCodes, V3ConnackMappingAndNames) {
  for (uint8_t code = 0; code <= 5; ++code) {
    EXPECT_EQ(to_v3_connack_code(from_v3_connack_code(code)), code);
  }
  EXPECT_STREQ(reason_code_name(ReasonCode::kMalformedPacket), "Malformed Packet");
  EXPECT_STREQ(packet_type_name(PacketType::kPubrel), "PUBREL");
  EXPECT_EQ(packet_type(Ack(PacketType::kPubcomp, 1)), PacketType::kPubcomp);
}

}  // namespace
}  // namespace midge::protocol
