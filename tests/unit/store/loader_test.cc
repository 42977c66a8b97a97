#include "store/loader.h"

#include <gtest/gtest.h>

#include <map>

#include "broker/session.h"
#include "store/store_test_util.h"

namespace midge::store {
namespace {

using testing::Loaded;
using testing::message;

const Clocks kClocks{TimePoint(std::chrono::hours(1)), 1'800'000'000'000};

std::string session_fields() {
  broker::Session s;
  s.client_id = "c";
  return encode_session(s, 0, kClocks);
}

std::string delivery_value(std::string_view payload) {
  broker::Delivery d;
  d.message = message("t", payload, 2);
  d.qos = 2;
  return encode_delivery(d, 0, kClocks);
}

// Feeds records in key order, as RocksDB hands them over.
Loaded feed(const std::map<std::string, std::string>& records) {
  Loaded l;
  const broker::RecoveryVisitor v = l.visitor();
  Loader loader(v, kClocks);
  for (const auto& [k, value] : records) loader.record(k, value);
  loader.finish();
  return l;
}

TEST(Loader, DeliveriesMergeBySeqWithReleasedAndOrphanStates) {
  Loaded l = feed({
      {session_key("c", kSessionFields), session_fields()},
      {delivery_key("c", kDeliveryState, 1), encode_inflight(11, false)},  // orphan: skipped
      {delivery_key("c", kDeliveryState, 2), encode_inflight(12, true)},   // released, message gone
      {delivery_key("c", kDeliveryState, 4), encode_inflight(14, false)},  // in flight
      {delivery_key("c", kDeliveryMessage, 3), delivery_value("three")},   // queued
      {delivery_key("c", kDeliveryMessage, 4), delivery_value("four")},
      {delivery_key("c", kDeliveryMessage, 5), delivery_value("five")},
      {delivery_key("c", kDeliveryState, 6), encode_inflight(16, true)},   // released, after them all
  });
  ASSERT_EQ(l.sessions.size(), 1u);
  const auto& d = l.sessions[0].deliveries;
  ASSERT_EQ(d.size(), 5u);
  EXPECT_EQ(d[0].seq, 2u);
  EXPECT_FALSE(d[0].message);
  EXPECT_TRUE(d[0].released);
  EXPECT_EQ(d[0].packet_id, 12);
  EXPECT_EQ(d[1].seq, 3u);
  EXPECT_EQ(d[1].packet_id, 0);
  EXPECT_EQ(d[2].seq, 4u);
  EXPECT_EQ(d[2].message->payload, "four");
  EXPECT_EQ(d[2].packet_id, 14);
  EXPECT_FALSE(d[2].released);
  EXPECT_EQ(d[3].seq, 5u);
  EXPECT_EQ(d[4].seq, 6u);
  EXPECT_TRUE(d[4].released);
  ASSERT_EQ(l.problems.size(), 1u) << l.all_problems();
  EXPECT_EQ(l.problems[0],
            "store: skipped session \"c\" in-flight state 1: in flight without its message and not released");
}

TEST(Loader, MalformedKeysAreReportedAndTheRestLoads) {
  Loaded l = feed({
      {"S\x00", "x"},                                               // too short for a session key
      {std::string("S\x00\x09" "c", 4) + "m", session_fields()},  // length beyond the key
      {session_key("c", kSessionFields), session_fields()},
      {delivery_key("c", kDeliveryMessage, 1) + "!", delivery_value("x")},  // seq of 9 bytes
      {session_key("c", 'z'), "x"},
      {incoming_key("c", 0), encode_incoming()},                    // packet id 0
      {"M\x01", encode_marker(1)},
      {"T\x01", "x"},
  });
  ASSERT_EQ(l.sessions.size(), 1u);
  EXPECT_TRUE(l.sessions[0].deliveries.empty());
  EXPECT_TRUE(l.sessions[0].incoming_qos2.empty());
  EXPECT_EQ(l.problems.size(), 7u) << l.all_problems();
}

}  // namespace
}  // namespace midge::store
