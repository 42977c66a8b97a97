#include "store/records.h"

#include <gtest/gtest.h>

#include "broker/retained_store.h"
#include "broker/session.h"
#include "store/store_test_util.h"

namespace midge::store {
namespace {

using testing::message;

const Clocks kClocks{TimePoint(std::chrono::hours(5)), 1'800'000'000'000};

// Every value kind once, with optional parts present.
std::vector<std::pair<const char*, std::string>> samples() {
  broker::Session s;
  s.client_id = "c";
  s.version = protocol::Version::kV5;
  s.expiry_interval = 60;
  s.username = std::make_unique<const std::string>("user");
  s.expires_at = kClocks.steady + seconds(60);
  s.will = std::make_unique<protocol::Will>();
  s.will->topic = "will/t";
  s.will->payload = "bye";
  s.will->properties.will_delay_interval = 10;
  s.will_at = kClocks.steady + seconds(10);
  broker::Delivery d;
  d.message = message("a/b", "payload", 2, kClocks.steady + seconds(5));
  d.qos = 2;
  d.subscription_ids = {1, 2};
  broker::RetainSource source;
  source.username = std::make_unique<const std::string>("u");
  broker::RetainSource of_listener;
  of_listener.listener_port = 1884;
  broker::SessionSubscription sub;
  sub.options.max_qos = 2;
  sub.subscription_id = 7;
  return {
      {"retained", encode_retained(*d.message, &source, kClocks)},
      {"retained of a listener", encode_retained(*d.message, &of_listener, kClocks)},
      {"session", encode_session(s, 1, kClocks)},
      {"subscription", encode_subscription(sub)},
      {"delivery", encode_delivery(d, 0, kClocks)},
      {"inflight", encode_inflight(3, true)},
      {"incoming", encode_incoming()},
      {"transit", encode_transit(*d.message, {{1, 9}, {2, 10}}, kClocks)},
      {"shared transit", encode_shared_transit(*d.message, {1, 9}, {"member-1", 1, 7}, kClocks)},
      {"marker", encode_marker(5)},
      {"workers", encode_workers(4)},
  };
}

bool decode(const std::string& kind, std::string_view v) {
  const char* why = "";
  broker::StoredRetained r;
  broker::StoredSession s;
  broker::StoredSubscription sub;
  broker::StoredDelivery d;
  broker::StoredTransit t;
  uint64_t seq = 0;
  unsigned w = 0;
  if (kind == "retained") return decode_retained(v, kClocks, r, why) && r.username == "u" && r.listener_port == 0;
  if (kind == "retained of a listener") {
    return decode_retained(v, kClocks, r, why) && r.has_source && !r.username && r.listener_port == 1884;
  }
  if (kind == "session") return decode_session(v, kClocks, s, why);
  if (kind == "subscription") return decode_subscription(v, sub, why);
  if (kind == "delivery") return decode_delivery(v, kClocks, d, why);
  if (kind == "inflight") return decode_inflight(v, d, why);
  if (kind == "incoming") return decode_incoming(v, why);
  if (kind == "transit") return decode_transit(v, kClocks, t, why) && !t.member;
  if (kind == "shared transit") {
    return decode_transit(v, kClocks, t, why) && t.member && t.member->client_id == "member-1" &&
           t.member->qos == 1 && t.member->subscription_id == 7 && t.receivers.size() == 1 &&
           t.receivers[0].worker == 1 && t.receivers[0].seq == 9;
  }
  if (kind == "marker") return decode_marker(v, seq, why);
  if (kind == "workers") return decode_workers(v, w, why);
  ADD_FAILURE() << kind;
  return false;
}

TEST(Records, EveryValueDecodesWholeAndFailsOnEveryTruncation) {
  for (const auto& [kind, value] : samples()) {
    EXPECT_TRUE(decode(kind, value)) << kind;
    for (size_t n = 0; n < value.size(); ++n) {
      // Copied so that a read past the end would show under ASan.
      const std::string cut = value.substr(0, n);
      EXPECT_FALSE(decode(kind, cut)) << kind << " cut at " << n;
    }
    EXPECT_FALSE(decode(kind, value + '\0')) << kind << " with a trailing byte";
    std::string other_version = value;
    other_version[0] = static_cast<char>(kFormatVersion + 1);
    EXPECT_FALSE(decode(kind, other_version)) << kind;
  }
}

// A queued message keeps the packet id it was given (issue 14, cause F);
// one sent at once records its in-flight id; a retained replay says so.
TEST(Records, DeliveriesKeepTheirQueuedOrInFlightId) {
  broker::Delivery d;
  d.message = message("a/b", "p", 1, std::nullopt);
  d.qos = 1;
  d.from_retained = true;
  d.packet_id = 9;
  const char* why = "";
  broker::StoredDelivery queued;
  ASSERT_TRUE(decode_delivery(encode_delivery(d, 0, kClocks), kClocks, queued, why)) << why;
  EXPECT_EQ(queued.packet_id, 0);
  EXPECT_EQ(queued.queued_packet_id, 9);
  EXPECT_TRUE(queued.from_retained);
  broker::StoredDelivery sent;
  ASSERT_TRUE(decode_delivery(encode_delivery(d, 9, kClocks), kClocks, sent, why)) << why;
  EXPECT_EQ(sent.packet_id, 9);
  EXPECT_EQ(sent.queued_packet_id, 0);
  EXPECT_TRUE(sent.from_retained);
}

TEST(Records, FlippedBytesNeverCrashTheDecoder) {
  for (const auto& [kind, value] : samples()) {
    for (size_t i = 0; i < value.size(); ++i) {
      for (int x : {0x01, 0x80, 0xFF}) {
        std::string v = value;
        v[i] = static_cast<char>(v[i] ^ x);
        decode(kind, v);  // either outcome; ASan checks the reads
      }
    }
  }
}

TEST(Records, OutOfRangeFieldsAreRejected) {
  broker::SessionSubscription sub;
  sub.options.retain_handling = 3;
  broker::StoredSubscription out;
  const char* why = "";
  EXPECT_FALSE(decode_subscription(encode_subscription(sub), out, why));
  EXPECT_STREQ(why, "retain handling above 2");

  std::string inflight = encode_inflight(1, false);
  inflight.back() = 2;  // a flag that is neither 0 nor 1
  broker::StoredDelivery d;
  EXPECT_FALSE(decode_inflight(inflight, d, why));
  EXPECT_FALSE(decode_inflight(encode_inflight(0, false), d, why));  // packet id 0
}

TEST(Records, HugeLengthsFailWithoutAllocating) {
  std::string v(1, static_cast<char>(kFormatVersion));
  v += std::string("\xFF\xFF\xFF\xFF", 4);  // topic of 4 GiB in a 5-byte value
  broker::StoredRetained r;
  const char* why = "";
  EXPECT_FALSE(decode_retained(v, kClocks, r, why));
  EXPECT_STREQ(why, "message topic");
}

TEST(Records, SessionRangesOfPrefixIdsDoNotOverlap) {
  const std::string a = session_prefix("a");
  const std::string a_end = prefix_end(a);
  for (const std::string& k : {session_key("ab", kSessionFields), delivery_key("ab", kDeliveryMessage, 0),
                               session_key("", kSessionFields), session_key("b", kSessionFields)}) {
    EXPECT_FALSE(k >= a && k < a_end) << describe_key(k);
  }
  for (const std::string& k : {session_key("a", kSessionFields), delivery_key("a", kDeliveryState, ~0ull),
                               subscription_key("a", "\xFF\xFF"), incoming_key("a", 0xFFFF)}) {
    EXPECT_TRUE(k >= a && k < a_end) << describe_key(k);
  }
  EXPECT_EQ(prefix_end("a\xFF\xFF"), "b");
  EXPECT_EQ(prefix_end("\xFF"), "");
}

TEST(Records, TransitRangeEndsAfterItsLastId) {
  EXPECT_LT(transit_key(1, 5), transit_end(1, 5));
  EXPECT_GE(transit_key(1, 6), transit_end(1, 5));
  EXPECT_LT(transit_key(1, ~0ull), transit_end(1, ~0ull));
  EXPECT_GE(transit_key(2, 0), transit_end(1, ~0ull));
}

TEST(Records, KeysAreDescribedReadably) {
  EXPECT_EQ(describe_key(delivery_key("c1", kDeliveryMessage, 42)), "session \"c1\" delivery 42");
  EXPECT_EQ(describe_key(retained_key("a/\x01")), "retained \"a/\\x01\"");
  EXPECT_EQ(describe_key(transit_key(3, 9)), "transit 3/9");
  EXPECT_EQ(describe_key("Z"), "key \"Z\"");
}

TEST(Records, DeadlinesKeepTheirWallClockTimeAcrossARestart) {
  // Written at steady 5 h; read by a process whose steady clock is at 1 h
  // 10 s of wall time later.
  const int64_t wall = to_wall_ms(kClocks.steady + seconds(30), kClocks);
  EXPECT_EQ(wall, kClocks.wall_ms + 30'000);
  const Clocks later{TimePoint(std::chrono::hours(1)), kClocks.wall_ms + 10'000};
  EXPECT_EQ(from_wall_ms(wall, later), later.steady + seconds(20));
  // A deadline already past stays past.
  EXPECT_LT(from_wall_ms(kClocks.wall_ms - 1000, later), later.steady);
  // Garbage from disk neither overflows nor lands in the near future.
  EXPECT_GT(from_wall_ms(INT64_MAX, later), later.steady + std::chrono::hours(24 * 365 * 100));
  EXPECT_LT(from_wall_ms(INT64_MIN, later), later.steady);
  // A session that never expires (2^32 - 1 s) comes back intact.
  const TimePoint never = kClocks.steady + seconds(0xFFFFFFFFu);
  EXPECT_EQ(from_wall_ms(to_wall_ms(never, kClocks), kClocks), never);
}

}  // namespace
}  // namespace midge::store
