// Broker: MQTT semantics driven by hand, without I/O. Every test feeds
// decoded packets and events to one Broker (worker 0) with a fake clock, and
// decodes with the real codec the bytes it writes to each FakeLink.
#include "broker/broker.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <typeinfo>
#include <vector>

#include "broker/fake_link.h"

namespace midge::broker {
namespace {

using protocol::AckPacket;
using protocol::ConnackPacket;
using protocol::ConnectPacket;
using protocol::DisconnectPacket;
using protocol::Packet;
using protocol::PacketType;
using protocol::PublishPacket;
using protocol::ReasonCode;
using protocol::SubackPacket;
using protocol::SubscribeOptions;
using protocol::SubscribePacket;
using protocol::Version;
using fakes::FakeLink;
using fakes::FakeRouter;

constexpr Version kV311 = Version::kV311;
constexpr Version kV5 = Version::kV5;

class BrokerTest : public ::testing::Test {
 protected:
  BrokerTest() { settings_.sys_interval = 0; }  // no $SYS noise unless asked

  // The broker is built on first use, so a test may change settings_ first.
  Broker& broker() {
    if (!broker_) {
      shared_ = std::make_unique<SharedState>(settings_);
      broker_ = std::make_unique<Broker>(0, *shared_, router_);
      shared_->worker_stats.push_back(&broker_->stats());
    }
    return *broker_;
  }
  Stats& stats() { return broker().stats(); }
  void advance(seconds s) { now_ += s; }
  void tick() { broker().tick(now_); }

  static ConnectPacket conn(const std::string& id, Version v = kV5, bool clean = true) {
    ConnectPacket c;
    c.version = v;
    c.client_id = id;
    c.clean_start = clean;
    c.keep_alive = 60;
    return c;
  }
  static protocol::Will will(const std::string& topic, const std::string& payload) {
    protocol::Will w;
    w.topic = topic;
    w.payload = payload;
    return w;
  }

  // Connects on a new link; expects CONNACK first (returned in *ack).
  FakeLink& connect(ConnectPacket c, ConnackPacket* ack = nullptr) {
    links_.push_back(std::make_unique<FakeLink>());
    FakeLink& link = *links_.back();
    const bool ok = broker().on_connect(link, std::move(c), false, now_);
    EXPECT_TRUE(ok);
    std::vector<Packet> packets = link.take();
    EXPECT_FALSE(packets.empty());
    if (!packets.empty()) {
      EXPECT_TRUE(std::holds_alternative<ConnackPacket>(packets[0]));
      if (auto* a = std::get_if<ConnackPacket>(&packets[0]); a && ack) *ack = *a;
      packets.erase(packets.begin());
    }
    // Whatever followed the CONNACK (resent messages) stays readable.
    for (const Packet& p : packets) protocol::encode(p, link.version, link.out_);
    return link;
  }
  FakeLink& connect(const std::string& id, Version v = kV5, bool clean = true) {
    return connect(conn(id, v, clean));
  }

  void in(FakeLink& link, Packet p) { broker().on_packet(link, std::move(p), now_); }

  // Subscribes; checks the SUBACK and returns what followed it (retained
  // messages).
  std::vector<Packet> subscribe(FakeLink& link, const std::string& filter, SubscribeOptions options,
                                uint32_t subscription_id = 0) {
    SubscribePacket s;
    s.packet_id = next_id_++;
    s.subscriptions.push_back({filter, options});
    if (subscription_id != 0) s.properties.subscription_identifiers.push_back(subscription_id);
    in(link, std::move(s));
    std::vector<Packet> packets = link.take();
    EXPECT_FALSE(packets.empty());
    if (packets.empty()) return packets;
    const auto* ack = std::get_if<SubackPacket>(&packets[0]);
    EXPECT_NE(ack, nullptr);
    if (ack) {
      last_suback_ = *ack;
      EXPECT_EQ(ack->reasons.size(), 1u);
    }
    packets.erase(packets.begin());
    return packets;
  }
  std::vector<Packet> subscribe(FakeLink& link, const std::string& filter, uint8_t qos,
                                uint32_t subscription_id = 0) {
    SubscribeOptions o;
    o.max_qos = qos;
    return subscribe(link, filter, o, subscription_id);
  }

  static PublishPacket pub(const std::string& topic, const std::string& payload, uint8_t qos = 0,
                           uint16_t id = 0, bool retain = false) {
    PublishPacket p;
    p.topic = topic;
    p.payload = payload;
    p.qos = qos;
    p.packet_id = id;
    p.retain = retain;
    return p;
  }
  static AckPacket ack(PacketType type, uint16_t id, ReasonCode reason = ReasonCode::kSuccess) {
    AckPacket a;
    a.type = type;
    a.packet_id = id;
    a.reason = reason;
    return a;
  }

  // Every packet written to `link` since the last read; fails on anything
  // that is not a PUBLISH.
  static std::vector<PublishPacket> publishes(FakeLink& link) {
    std::vector<PublishPacket> out;
    for (Packet& p : link.take()) {
      if (auto* publish = std::get_if<PublishPacket>(&p)) {
        out.push_back(std::move(*publish));
      } else {
        ADD_FAILURE() << "expected only PUBLISH, got "
                      << protocol::packet_type_name(protocol::packet_type(p));
      }
    }
    return out;
  }
  static std::vector<PublishPacket> publishes(std::vector<Packet> packets) {
    std::vector<PublishPacket> out;
    for (Packet& p : packets) {
      if (auto* publish = std::get_if<PublishPacket>(&p)) out.push_back(std::move(*publish));
    }
    return out;
  }
  // Exactly one packet of type T.
  template <typename T>
  static T single(FakeLink& link) {
    std::vector<Packet> packets = link.take();
    EXPECT_EQ(packets.size(), 1u);
    if (packets.size() != 1 || !std::holds_alternative<T>(packets[0])) {
      ADD_FAILURE() << "expected one " << typeid(T).name();
      return T{};
    }
    return std::get<T>(packets[0]);
  }
  static std::vector<std::string> payloads(const std::vector<PublishPacket>& ps) {
    std::vector<std::string> out;
    for (const PublishPacket& p : ps) out.push_back(p.payload);
    return out;
  }
  const Session& session(const std::string& id) {
    const Session* s = broker().find_session(id);
    EXPECT_NE(s, nullptr) << id;
    static const Session kNone;
    return s ? *s : kNone;
  }

  Settings settings_;
  FakeRouter router_;
  std::unique_ptr<SharedState> shared_;
  std::unique_ptr<Broker> broker_;
  std::vector<std::unique_ptr<FakeLink>> links_;
  TimePoint now_ = TimePoint{} + std::chrono::hours(1);
  uint16_t next_id_ = 100;
  SubackPacket last_suback_;
};

using Strings = std::vector<std::string>;

// ---------------------------------------------------------------- CONNECT

TEST_F(BrokerTest, ConnackV311SessionPresent) {
  ConnackPacket ack;
  FakeLink& first = connect(conn("c", kV311, /*clean=*/false), &ack);
  EXPECT_EQ(ack.reason, ReasonCode::kSuccess);
  EXPECT_FALSE(ack.session_present);
  EXPECT_EQ(first.version, kV311);
  in(first, DisconnectPacket{});
  EXPECT_EQ(first.closes, 1);
  ASSERT_NE(broker().find_session("c"), nullptr);  // persistent session kept

  connect(conn("c", kV311, false), &ack);
  EXPECT_TRUE(ack.session_present);  // [MQTT-3.2.2-2]
  connect(conn("c", kV311, true), &ack);
  EXPECT_FALSE(ack.session_present);  // clean session discards it [MQTT-3.2.2-1]
}

TEST_F(BrokerTest, ConnackV5SessionPresentAndProperties) {
  settings_.max_inflight_messages = 20;
  settings_.max_topic_alias = 10;
  ConnectPacket c = conn("c", kV5, true);
  c.properties.session_expiry_interval = 60;
  ConnackPacket ack;
  FakeLink& first = connect(c, &ack);
  EXPECT_EQ(ack.reason, ReasonCode::kSuccess);
  EXPECT_FALSE(ack.session_present);
  EXPECT_EQ(ack.properties.receive_maximum, 20);
  EXPECT_EQ(ack.properties.topic_alias_maximum, 10);
  in(first, DisconnectPacket{});

  c.clean_start = false;
  connect(c, &ack);
  EXPECT_TRUE(ack.session_present);

  // Session Expiry 0: the session ends with the connection.
  FakeLink& other = connect("d", kV5, true);
  in(other, DisconnectPacket{});
  EXPECT_EQ(broker().find_session("d"), nullptr);
  connect(conn("d", kV5, false), &ack);
  EXPECT_FALSE(ack.session_present);
}

TEST_F(BrokerTest, RefusedWhenAnonymousNotAllowed) {
  settings_.allow_anonymous = false;
  FakeLink link;
  EXPECT_FALSE(broker().on_connect(link, conn("c", kV5), false, now_));
  auto ack = single<ConnackPacket>(link);
  EXPECT_EQ(ack.reason, ReasonCode::kNotAuthorized);
  EXPECT_EQ(link.closes, 1);
  EXPECT_EQ(broker().session_count(), 0u);
}

TEST_F(BrokerTest, AssignedClientIdentifier) {
  ConnectPacket c = conn("", kV5);
  ASSERT_TRUE(Broker::assign_client_id(c, settings_));  // [MQTT-3.1.3-6]
  EXPECT_EQ(c.client_id.rfind(settings_.auto_id_prefix, 0), 0u);
  const std::string id = c.client_id;
  FakeLink link;
  ASSERT_TRUE(broker().on_connect(link, std::move(c), /*id_assigned=*/true, now_));
  auto ack_packet = single<ConnackPacket>(link);
  EXPECT_EQ(ack_packet.properties.assigned_client_identifier, id);
  EXPECT_NE(broker().find_session(id), nullptr);

  // 3.1.1 with clean session 0 must bring an id [MQTT-3.1.3-7].
  ConnectPacket v3 = conn("", kV311, /*clean=*/false);
  EXPECT_FALSE(Broker::assign_client_id(v3, settings_));
  FakeLink refused;
  EXPECT_FALSE(broker().on_connect(refused, std::move(v3), false, now_));
  EXPECT_EQ(single<ConnackPacket>(refused).reason, ReasonCode::kClientIdentifierNotValid);
  EXPECT_EQ(refused.closes, 1);
}

TEST_F(BrokerTest, PingreqGetsPingresp) {
  FakeLink& c = connect("c", kV311);
  in(c, protocol::PingreqPacket{});
  single<protocol::PingrespPacket>(c);
}

// ---------------------------------------------------------------- QoS

TEST_F(BrokerTest, Qos0FromOneSessionToAnother) {
  FakeLink& sub = connect("sub", kV311);
  subscribe(sub, "t/#", 0);
  FakeLink& p = connect("pub", kV5);
  in(p, pub("t/1", "hello"));
  auto got = publishes(sub);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].topic, "t/1");
  EXPECT_EQ(got[0].payload, "hello");
  EXPECT_EQ(got[0].qos, 0);
  EXPECT_FALSE(got[0].retain);
  EXPECT_TRUE(p.take().empty());  // nothing to acknowledge
  EXPECT_EQ(router_.broadcasts.size(), 1u);
  EXPECT_EQ(stats().publish_received(), 1u);
  EXPECT_EQ(stats().publish_sent(), 1u);
}

// A large payload decoded from the thread's input block is routed from
// there (no copy); a small one, a retained one, or one decoded elsewhere
// (a packet split across reads) is copied into its message.
TEST_F(BrokerTest, LargePayloadFromInputBlockIsBorrowed) {
  FakeLink& sub = connect("sub", kV311);
  subscribe(sub, "t/#", 0);
  FakeLink& p = connect("pub", kV5);
  InputBlock& block = InputBlock::writable();
  std::memset(block.data(), 'z', InputBlock::kSize);
  auto publish = [&](size_t len, bool retain, bool decoding) {
    protocol::PublishView v;
    v.topic = "t/1";
    v.retain = retain;
    v.payload = std::string_view(block.data() + 10, len);
    if (decoding) {
      const InputBlock::Decoding guard(&block);
      broker().on_publish(p, v, now_);
    } else {
      broker().on_publish(p, v, now_);
    }
    EXPECT_EQ(publishes(sub).size(), 1u);
    EXPECT_EQ(router_.broadcasts.size(), 1u);
    MessagePtr m = router_.broadcasts.empty() ? nullptr : router_.broadcasts.back();
    router_.broadcasts.clear();
    return m;
  };
  MessagePtr big = publish(InputBlock::kBorrowMin, false, true);
  ASSERT_TRUE(big);
  EXPECT_EQ(big->backing(), &block);
  EXPECT_EQ(big->payload.data(), block.data() + 10);
  EXPECT_EQ(publish(InputBlock::kBorrowMin - 1, false, true)->backing(), nullptr);
  EXPECT_EQ(publish(InputBlock::kBorrowMin, true, true)->backing(), nullptr);
  EXPECT_EQ(publish(InputBlock::kBorrowMin, false, false)->backing(), nullptr);
  EXPECT_EQ(InputBlock::decoding(), nullptr);
}

// Per listener and QoS: the counters the link's traffic_slot names.
TEST_F(BrokerTest, TrafficCountedByListenerSlotAndQos) {
  ASSERT_EQ(stats().add_traffic_slot(), 1u);  // as net::Worker::add_listener does
  FakeLink& sub = connect("sub", kV311);
  sub.traffic_slot = 1;
  subscribe(sub, "t", 2);
  FakeLink& p = connect("pub", kV5);
  in(p, pub("t", "a", 0));
  in(p, pub("t", "b", 1, 1));
  in(p, pub("t", "c", 2, 2));
  EXPECT_EQ(stats().of(0).publish_received[0].load(), 1u);
  EXPECT_EQ(stats().of(0).publish_received[1].load(), 1u);
  EXPECT_EQ(stats().of(0).publish_received[2].load(), 1u);
  EXPECT_EQ(stats().of(1).publish_sent[0].load(), 1u);
  EXPECT_EQ(stats().of(1).publish_sent[1].load(), 1u);
  EXPECT_EQ(stats().of(1).publish_sent[2].load(), 1u);
  EXPECT_EQ(stats().of(0).publish_sent[1].load(), 0u);
  EXPECT_EQ(stats().of(1).publish_received[0].load(), 0u);
}

TEST_F(BrokerTest, Qos1FromOneSessionToAnother) {
  FakeLink& sub = connect("sub", kV311);
  subscribe(sub, "t", 1);
  FakeLink& p = connect("pub", kV5);
  in(p, pub("t", "m", 1, 7));
  auto puback = single<AckPacket>(p);
  EXPECT_EQ(puback.type, PacketType::kPuback);
  EXPECT_EQ(puback.packet_id, 7);
  EXPECT_EQ(puback.reason, ReasonCode::kSuccess);

  auto got = publishes(sub);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].qos, 1);
  EXPECT_NE(got[0].packet_id, 0);
  EXPECT_FALSE(got[0].dup);
  EXPECT_EQ(session("sub").inflight.size(), 1u);
  EXPECT_EQ(stats().stored_messages.load(), 1);
  EXPECT_EQ(stats().inflight_messages.load(), 1);

  in(sub, ack(PacketType::kPuback, got[0].packet_id));
  EXPECT_TRUE(session("sub").inflight.empty());
  EXPECT_EQ(stats().stored_messages.load(), 0);
  EXPECT_EQ(stats().inflight_messages.load(), 0);
  EXPECT_TRUE(sub.take().empty());
}

TEST_F(BrokerTest, Qos2IncomingFlowRoutesOnceDespiteDuplicate) {
  FakeLink& sub = connect("sub", kV311);
  subscribe(sub, "t", 2);
  FakeLink& p = connect("pub", kV5);

  in(p, pub("t", "once", 2, 9));
  auto rec = single<AckPacket>(p);
  EXPECT_EQ(rec.type, PacketType::kPubrec);
  EXPECT_EQ(rec.packet_id, 9);
  EXPECT_EQ(publishes(sub).size(), 1u);

  // The client did not see PUBREC and resends with DUP: acknowledged again,
  // not routed again [MQTT-4.3.3-9].
  PublishPacket again = pub("t", "once", 2, 9);
  again.dup = true;
  in(p, again);
  rec = single<AckPacket>(p);
  EXPECT_EQ(rec.type, PacketType::kPubrec);
  EXPECT_EQ(rec.packet_id, 9);
  EXPECT_TRUE(sub.take().empty());
  EXPECT_EQ(router_.broadcasts.size(), 1u);

  in(p, ack(PacketType::kPubrel, 9));
  auto comp = single<AckPacket>(p);
  EXPECT_EQ(comp.type, PacketType::kPubcomp);
  EXPECT_EQ(comp.packet_id, 9);
  EXPECT_EQ(comp.reason, ReasonCode::kSuccess);
  EXPECT_TRUE(session("pub").incoming_qos2.empty());

  // After PUBCOMP the packet id is free: the same id is a new message.
  in(p, pub("t", "twice", 2, 9));
  EXPECT_EQ(single<AckPacket>(p).type, PacketType::kPubrec);
  EXPECT_EQ(payloads(publishes(sub)), Strings{"twice"});
}

TEST_F(BrokerTest, PubrelForUnknownIdGetsPubcompSuccessAsMosquitto) {
  FakeLink& p = connect("pub", kV5);
  in(p, ack(PacketType::kPubrel, 33));
  auto comp = single<AckPacket>(p);
  EXPECT_EQ(comp.type, PacketType::kPubcomp);
  EXPECT_EQ(comp.packet_id, 33);
  EXPECT_EQ(comp.reason, ReasonCode::kSuccess);
}

TEST_F(BrokerTest, Qos2OutgoingFlow) {
  FakeLink& sub = connect("sub", kV5);
  subscribe(sub, "t", 2);
  FakeLink& p = connect("pub", kV311);
  in(p, pub("t", "x", 2, 1));
  p.take();
  auto got = publishes(sub);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].qos, 2);
  const uint16_t id = got[0].packet_id;

  in(sub, ack(PacketType::kPubrec, id));
  auto rel = single<AckPacket>(sub);
  EXPECT_EQ(rel.type, PacketType::kPubrel);
  EXPECT_EQ(rel.packet_id, id);
  ASSERT_EQ(session("sub").inflight.size(), 1u);
  EXPECT_TRUE(session("sub").inflight.front().released);

  in(sub, ack(PacketType::kPubcomp, id));
  EXPECT_TRUE(sub.take().empty());
  EXPECT_TRUE(session("sub").inflight.empty());
}

TEST_F(BrokerTest, Qos2OutgoingPubrecWithErrorDropsMessage) {
  FakeLink& sub = connect("sub", kV5);
  subscribe(sub, "t", 2);
  FakeLink& p = connect("pub", kV311);
  in(p, pub("t", "x", 2, 1));
  auto got = publishes(sub);
  ASSERT_EQ(got.size(), 1u);
  in(sub, ack(PacketType::kPubrec, got[0].packet_id, ReasonCode::kUnspecifiedError));
  EXPECT_TRUE(sub.take().empty());  // no PUBREL [MQTT-4.3.3-?]
  EXPECT_TRUE(session("sub").inflight.empty());
}

// Regression: the payload of an outgoing QoS 2 message is released at
// PUBREC, before PUBCOMP; the stored counters ($SYS/broker/store/messages/*)
// must still come back to zero once the exchange completes.
TEST_F(BrokerTest, StoredCountersReturnToZeroAfterQos2Delivery) {
  FakeLink& sub = connect("sub", kV5);
  subscribe(sub, "t", 2);
  FakeLink& p = connect("pub", kV311);
  in(p, pub("t", "payload", 2, 1));
  auto got = publishes(sub);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(stats().stored_messages.load(), 1);
  in(sub, ack(PacketType::kPubrec, got[0].packet_id));
  in(sub, ack(PacketType::kPubcomp, got[0].packet_id));
  EXPECT_TRUE(session("sub").inflight.empty());
  EXPECT_EQ(stats().stored_messages.load(), 0);
  EXPECT_EQ(stats().stored_bytes.load(), 0);
}

TEST_F(BrokerTest, QosDowngradedToSubscriptionMaximum) {
  FakeLink& s0 = connect("s0", kV311);
  subscribe(s0, "d", 0);
  FakeLink& s1 = connect("s1", kV311);
  subscribe(s1, "d", 1);
  FakeLink& s2 = connect("s2", kV5);
  subscribe(s2, "d", 2);
  FakeLink& p = connect("pub", kV5);
  in(p, pub("d", "x", 2, 5));
  auto g0 = publishes(s0);
  auto g1 = publishes(s1);
  auto g2 = publishes(s2);
  ASSERT_EQ(g0.size(), 1u);
  ASSERT_EQ(g1.size(), 1u);
  ASSERT_EQ(g2.size(), 1u);
  EXPECT_EQ(g0[0].qos, 0);
  EXPECT_EQ(g0[0].packet_id, 0);
  EXPECT_EQ(g1[0].qos, 1);
  EXPECT_EQ(g2[0].qos, 2);

  // A QoS 1 message stays QoS 1 on a QoS 2 subscription (never upgraded).
  in(p, pub("d", "y", 1, 6));
  auto up = publishes(s2);
  ASSERT_EQ(up.size(), 1u);
  EXPECT_EQ(up[0].qos, 1);
}

TEST_F(BrokerTest, GrantedQosCappedByMaxQos) {
  settings_.max_qos = 1;
  FakeLink& s = connect("s", kV5);
  subscribe(s, "g", 2);
  ASSERT_EQ(last_suback_.reasons.size(), 1u);
  EXPECT_EQ(last_suback_.reasons[0], ReasonCode::kGrantedQos1);
}

TEST_F(BrokerTest, OverlappingSubscriptionsGiveOneCopyWithMaxQosAndAllIds) {
  FakeLink& s = connect("s", kV5);
  subscribe(s, "o/+", 0, 1);
  subscribe(s, "o/#", 2, 2);
  subscribe(s, "o/x", 1);  // no identifier
  subscribe(s, "o/y", 1, 4);  // does not match
  FakeLink& p = connect("pub", kV5);
  in(p, pub("o/x", "m", 2, 1));
  auto got = publishes(s);
  ASSERT_EQ(got.size(), 1u);  // [MQTT-3.3.4-2]
  EXPECT_EQ(got[0].qos, 2);
  auto ids = got[0].properties.subscription_identifiers;
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<uint32_t>{1, 2}));  // [MQTT-3.3.4-3]
}

TEST_F(BrokerTest, OverlappingSubscriptionsV311OneCopy) {
  FakeLink& s = connect("s", kV311);
  subscribe(s, "o/+", 1);
  subscribe(s, "#", 0);
  FakeLink& p = connect("pub", kV311);
  in(p, pub("o/x", "m", 1, 1));
  auto got = publishes(s);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].qos, 1);
}

// route() encodes a message once per variant and copies it to every session
// that needs nothing of its own; each must still get its version, QoS,
// retain flag, packet id and properties.
TEST_F(BrokerTest, OneMessageToSessionsOfEveryVariant) {
  FakeLink& a = connect("a", kV311);
  subscribe(a, "v/t", 1);
  FakeLink& b = connect("b", kV5);
  subscribe(b, "v/t", 1);
  FakeLink& c = connect("c", kV5);
  SubscribeOptions rap;
  rap.retain_as_published = true;
  subscribe(c, "v/t", rap);
  FakeLink& d = connect("d", kV5);
  subscribe(d, "v/t", 2, 9);
  FakeLink& e = connect("e", Version::kV31);
  subscribe(e, "v/#", 2);
  FakeLink& f = connect("f", kV311);
  subscribe(f, "v/+", 1);
  // b and f already have a message in flight, so their next ids differ.
  FakeLink& p = connect("p", kV5);
  in(p, pub("v/other", "first", 1, 1));
  in(p, pub("v/t", "warm", 1, 2));
  for (FakeLink* l : {&a, &b, &c, &d, &e, &f}) l->take();

  in(p, pub("v/t", "m1", 2, 3, /*retain=*/true));
  in(p, pub("v/t", "m2", 1, 4));
  auto ga = publishes(a), gb = publishes(b), gc = publishes(c), gd = publishes(d),
       ge = publishes(e), gf = publishes(f);
  for (auto* g : {&ga, &gb, &gc, &gd, &ge, &gf}) {
    ASSERT_EQ(g->size(), 2u);
    EXPECT_EQ(payloads(*g), (Strings{"m1", "m2"}));
    EXPECT_EQ((*g)[0].topic, "v/t");
    EXPECT_NE((*g)[0].packet_id == 0, (*g)[0].qos > 0);
  }
  EXPECT_EQ(ga[0].qos, 1);
  EXPECT_EQ(gc[0].qos, 0);
  EXPECT_EQ(gd[0].qos, 2);
  EXPECT_EQ(ge[0].qos, 2);
  EXPECT_EQ(ge[1].qos, 1);
  // The retain flag only with Retain As Published [MQTT-3.3.1-12].
  EXPECT_TRUE(gc[0].retain);
  EXPECT_FALSE(ga[0].retain || gb[0].retain || gd[0].retain || ge[0].retain);
  EXPECT_EQ(gd[0].properties.subscription_identifiers, (std::vector<uint32_t>{9}));
  EXPECT_TRUE(gb[0].properties.subscription_identifiers.empty());
  // Packet ids follow each session's own sequence.
  EXPECT_EQ(gb[1].packet_id, gb[0].packet_id + 1);
  EXPECT_EQ(gf[0].packet_id, session("f").inflight.front().packet_id + 2);
  EXPECT_EQ(gf[1].packet_id, gf[0].packet_id + 1);
  EXPECT_EQ(session("a").inflight.size(), 3u);  // warm, m1, m2
}

TEST_F(BrokerTest, NoLocal) {
  SubscribeOptions no_local;
  no_local.max_qos = 1;
  no_local.no_local = true;
  FakeLink& a = connect("a", kV5);
  subscribe(a, "n", no_local);
  FakeLink& b = connect("b", kV5);
  subscribe(b, "n", 1);

  in(a, pub("n", "from a"));
  EXPECT_TRUE(a.take().empty());  // [MQTT-3.8.3-3]
  EXPECT_EQ(payloads(publishes(b)), Strings{"from a"});

  in(b, pub("n", "from b"));
  EXPECT_EQ(payloads(publishes(a)), Strings{"from b"});
  EXPECT_EQ(payloads(publishes(b)), Strings{"from b"});  // b did not ask for No Local
}

TEST_F(BrokerTest, UnsubscribeStopsDelivery) {
  FakeLink& s = connect("s", kV5);
  subscribe(s, "u", 0);
  protocol::UnsubscribePacket u;
  u.packet_id = 3;
  u.filters = {"u", "never"};
  in(s, u);
  auto ack = single<protocol::UnsubackPacket>(s);
  EXPECT_EQ(ack.packet_id, 3);
  EXPECT_EQ(ack.reasons,
            (std::vector<ReasonCode>{ReasonCode::kSuccess, ReasonCode::kNoSubscriptionExisted}));
  FakeLink& p = connect("p", kV5);
  in(p, pub("u", "x"));
  EXPECT_TRUE(s.take().empty());
  EXPECT_EQ(stats().subscriptions.load(), 0);
}

// ---------------------------------------------------------------- retained

TEST_F(BrokerTest, RetainedSetReplaceClear) {
  FakeLink& p = connect("pub", kV311);
  in(p, pub("r/1", "one", 1, 1, /*retain=*/true));
  p.take();

  FakeLink& s1 = connect("s1", kV311);
  auto got = publishes(subscribe(s1, "r/#", 1));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].topic, "r/1");
  EXPECT_EQ(got[0].payload, "one");
  EXPECT_TRUE(got[0].retain);  // sent because of a new subscription [MQTT-3.3.1-8]
  EXPECT_EQ(got[0].qos, 1);
  in(s1, ack(PacketType::kPuback, got[0].packet_id));

  // Replace: live subscribers get it with RETAIN 0 [MQTT-3.3.1-9].
  in(p, pub("r/1", "two", 0, 0, true));
  auto live = publishes(s1);
  ASSERT_EQ(live.size(), 1u);
  EXPECT_FALSE(live[0].retain);
  EXPECT_EQ(live[0].payload, "two");

  FakeLink& s2 = connect("s2", kV311);
  got = publishes(subscribe(s2, "r/+", 1));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, "two");
  EXPECT_EQ(got[0].qos, 0);  // stored at the QoS it was published with
  EXPECT_EQ(shared_->retained.count(), 1u);

  // Clear with an empty payload [MQTT-3.3.1-6], [MQTT-3.3.1-7].
  in(p, pub("r/1", "", 0, 0, true));
  EXPECT_EQ(shared_->retained.count(), 0u);
  FakeLink& s3 = connect("s3", kV311);
  EXPECT_TRUE(subscribe(s3, "r/#", 1).empty());
}

TEST_F(BrokerTest, RetainedDeliveredPerMatchingTopicAndDowngraded) {
  FakeLink& p = connect("pub", kV5);
  in(p, pub("a/1", "x", 2, 1, true));
  in(p, pub("a/2", "y", 1, 2, true));
  in(p, pub("b/1", "z", 0, 0, true));
  p.take();
  FakeLink& s = connect("s", kV5);
  auto got = publishes(subscribe(s, "a/+", 0));
  ASSERT_EQ(got.size(), 2u);
  std::sort(got.begin(), got.end(), [](auto& l, auto& r) { return l.topic < r.topic; });
  EXPECT_EQ(got[0].topic, "a/1");
  EXPECT_EQ(got[1].topic, "a/2");
  for (const auto& g : got) {
    EXPECT_EQ(g.qos, 0);
    EXPECT_TRUE(g.retain);
  }
}

TEST_F(BrokerTest, RetainAsPublished) {
  SubscribeOptions rap;
  rap.retain_as_published = true;
  FakeLink& keep = connect("keep", kV5);
  subscribe(keep, "r", rap);
  FakeLink& plain = connect("plain", kV5);
  subscribe(plain, "r", 0);
  FakeLink& p = connect("pub", kV5);
  in(p, pub("r", "x", 0, 0, true));
  auto k = publishes(keep);
  auto n = publishes(plain);
  ASSERT_EQ(k.size(), 1u);
  ASSERT_EQ(n.size(), 1u);
  EXPECT_TRUE(k[0].retain);
  EXPECT_FALSE(n[0].retain);
}

TEST_F(BrokerTest, RetainHandling) {
  FakeLink& p = connect("pub", kV5);
  in(p, pub("h/1", "kept", 0, 0, true));
  FakeLink& s = connect("s", kV5);
  SubscribeOptions rh1;
  rh1.retain_handling = 1;
  EXPECT_EQ(subscribe(s, "h/#", rh1).size(), 1u);  // new subscription
  EXPECT_EQ(subscribe(s, "h/#", rh1).size(), 0u);  // already existed [MQTT-3.3.1-10]
  SubscribeOptions rh0;
  EXPECT_EQ(subscribe(s, "h/#", rh0).size(), 1u);  // always [MQTT-3.3.1-9]
  SubscribeOptions rh2;
  rh2.retain_handling = 2;
  EXPECT_EQ(subscribe(s, "h/+", rh2).size(), 0u);  // never [MQTT-3.3.1-11]
  // The subscription works for live messages all the same.
  in(p, pub("h/2", "live"));
  auto got = publishes(s);
  ASSERT_EQ(got.size(), 1u);  // one copy for h/# and h/+
  EXPECT_EQ(got[0].payload, "live");
}

// ---------------------------------------------------------------- in-flight window

TEST_F(BrokerTest, InflightWindowFromSettings) {
  settings_.max_inflight_messages = 3;
  FakeLink& sub = connect("sub", kV311);
  subscribe(sub, "w", 1);
  FakeLink& p = connect("pub", kV311);
  for (int i = 0; i < 10; ++i) in(p, pub("w", std::to_string(i), 1, static_cast<uint16_t>(i + 1)));
  EXPECT_EQ(p.take().size(), 10u);  // every PUBACK, whatever the subscriber does

  std::vector<PublishPacket> unacked = publishes(sub);
  EXPECT_EQ(unacked.size(), 3u);
  Strings seen = payloads(unacked);
  while (!unacked.empty()) {
    EXPECT_LE(session("sub").inflight.size(), 3u);
    in(sub, ack(PacketType::kPuback, unacked.front().packet_id));
    unacked.erase(unacked.begin());
    auto more = publishes(sub);
    EXPECT_LE(more.size(), 1u);  // one ack frees one slot
    for (auto& m : more) {
      seen.push_back(m.payload);
      unacked.push_back(m);
    }
    EXPECT_LE(unacked.size(), 3u);
  }
  EXPECT_EQ(seen, (Strings{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}));
  EXPECT_TRUE(session("sub").queue.empty());
}

TEST_F(BrokerTest, InflightWindowFromClientReceiveMaximum) {
  settings_.max_inflight_messages = 20;
  ConnectPacket c = conn("sub", kV5);
  c.properties.receive_maximum = 2;
  FakeLink& sub = connect(c);
  subscribe(sub, "w", 2);
  FakeLink& p = connect("pub", kV5);
  for (int i = 0; i < 4; ++i) in(p, pub("w", std::to_string(i), 2, static_cast<uint16_t>(i + 1)));
  auto first = publishes(sub);
  ASSERT_EQ(first.size(), 2u);  // [MQTT-3.3.4-7]

  // QoS 2 stays unacknowledged until PUBCOMP: PUBREC alone frees nothing.
  in(sub, ack(PacketType::kPubrec, first[0].packet_id));
  auto rel = single<AckPacket>(sub);
  EXPECT_EQ(rel.type, PacketType::kPubrel);
  in(sub, ack(PacketType::kPubcomp, first[0].packet_id));
  auto next = publishes(sub);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].payload, "2");
  in(sub, ack(PacketType::kPubrec, first[1].packet_id));
  in(sub, ack(PacketType::kPubcomp, first[1].packet_id));
  auto packets = sub.take();  // PUBREL, then the last PUBLISH
  auto last = publishes(packets);
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(last[0].payload, "3");
}

// ---------------------------------------------------------------- offline queue

TEST_F(BrokerTest, OfflineQueueBoundedByMaxQueuedMessages) {
  settings_.max_queued_messages = 3;
  FakeLink& sub = connect("sub", kV311, /*clean=*/false);
  subscribe(sub, "q", 1);
  in(sub, DisconnectPacket{});

  FakeLink& p = connect("pub", kV311);
  for (int i = 0; i < 5; ++i) in(p, pub("q", std::to_string(i), 1, static_cast<uint16_t>(i + 1)));
  EXPECT_EQ(stats().publish_dropped.load(), 2u);
  EXPECT_EQ(stats().dropped[static_cast<int>(DropReason::kQueueFull)].load(), 2u);
  EXPECT_EQ(session("sub").queue.size(), 3u);
  EXPECT_EQ(stats().stored_messages.load(), 3);
  EXPECT_EQ(stats().queued_messages.load(), 3);

  ConnackPacket ack_packet;
  FakeLink& again = connect(conn("sub", kV311, false), &ack_packet);
  EXPECT_TRUE(ack_packet.session_present);
  auto got = publishes(again);
  EXPECT_EQ(payloads(got), (Strings{"0", "1", "2"}));
  for (const auto& g : got) {
    EXPECT_EQ(g.qos, 1);
    EXPECT_FALSE(g.dup);
  }
}

TEST_F(BrokerTest, Qos0NotQueuedOffline) {
  FakeLink& sub = connect("sub", kV311, false);
  subscribe(sub, "q", 1);
  subscribe(sub, "q0", 0);
  in(sub, DisconnectPacket{});
  FakeLink& p = connect("pub", kV311);
  in(p, pub("q", "qos0 message"));
  in(p, pub("q0", "downgraded to 0", 1, 1));
  EXPECT_TRUE(session("sub").queue.empty());
  FakeLink& again = connect(conn("sub", kV311, false));
  EXPECT_TRUE(again.take().empty());
}

TEST_F(BrokerTest, Qos0QueuedOfflineWhenConfigured) {
  settings_.queue_qos0_messages = true;
  FakeLink& sub = connect("sub", kV311, false);
  subscribe(sub, "q", 0);
  in(sub, DisconnectPacket{});
  FakeLink& p = connect("pub", kV311);
  in(p, pub("q", "a"));
  in(p, pub("q", "b", 1, 1));
  FakeLink& again = connect(conn("sub", kV311, false));
  auto got = publishes(again);
  EXPECT_EQ(payloads(got), (Strings{"a", "b"}));
  for (const auto& g : got) EXPECT_EQ(g.qos, 0);
}

TEST_F(BrokerTest, ReconnectResendsUnackedWithDupInOrder) {
  FakeLink& sub = connect("sub", kV311, false);
  subscribe(sub, "r", 2);
  FakeLink& p = connect("pub", kV311);
  in(p, pub("r", "a", 1, 1));
  in(p, pub("r", "b", 1, 2));
  in(p, pub("r", "c", 2, 3));
  in(p, pub("r", "d", 2, 4));
  auto first = publishes(sub);
  ASSERT_EQ(first.size(), 4u);
  in(sub, ack(PacketType::kPuback, first[1].packet_id));  // "b" done
  in(sub, ack(PacketType::kPubrec, first[3].packet_id));  // "d" released
  EXPECT_EQ(single<AckPacket>(sub).type, PacketType::kPubrel);

  broker().on_link_lost(sub, now_);
  EXPECT_EQ(session("sub").link, nullptr);
  in(p, pub("r", "e", 1, 5));  // queued while offline

  FakeLink& again = connect(conn("sub", kV311, false));
  std::vector<Packet> packets = again.take();
  ASSERT_EQ(packets.size(), 4u);  // [MQTT-4.4.0-1]
  auto* a = std::get_if<PublishPacket>(&packets[0]);
  auto* c = std::get_if<PublishPacket>(&packets[1]);
  auto* d = std::get_if<AckPacket>(&packets[2]);
  auto* e = std::get_if<PublishPacket>(&packets[3]);
  ASSERT_TRUE(a && c && d && e);
  EXPECT_EQ(a->payload, "a");
  EXPECT_TRUE(a->dup);
  EXPECT_EQ(a->packet_id, first[0].packet_id);
  EXPECT_EQ(c->payload, "c");
  EXPECT_TRUE(c->dup);
  EXPECT_EQ(c->qos, 2);
  EXPECT_EQ(c->packet_id, first[2].packet_id);
  EXPECT_EQ(d->type, PacketType::kPubrel);  // PUBREC seen: resend PUBREL, not PUBLISH
  EXPECT_EQ(d->packet_id, first[3].packet_id);
  EXPECT_EQ(e->payload, "e");
  EXPECT_FALSE(e->dup);
}

// ---------------------------------------------------------------- message expiry

TEST_F(BrokerTest, MessageExpiryOfQueuedMessages) {
  ConnectPacket c = conn("sub", kV5);
  c.properties.session_expiry_interval = 1000;
  FakeLink& sub = connect(c);
  subscribe(sub, "e", 1);
  in(sub, DisconnectPacket{});

  FakeLink& p = connect("pub", kV5);
  PublishPacket short_lived = pub("e", "short", 1, 1);
  short_lived.properties.message_expiry_interval = 10;
  PublishPacket long_lived = pub("e", "long", 1, 2);
  long_lived.properties.message_expiry_interval = 30;
  in(p, short_lived);
  in(p, long_lived);
  in(p, pub("e", "forever", 1, 3));

  advance(seconds(11));
  c.clean_start = false;
  FakeLink& again = connect(c);
  auto got = publishes(again);
  ASSERT_EQ(payloads(got), (Strings{"long", "forever"}));  // [MQTT-3.3.2-5]
  EXPECT_EQ(got[0].properties.message_expiry_interval, 19u);  // [MQTT-3.3.2-6]
  EXPECT_FALSE(got[1].properties.message_expiry_interval.has_value());
}

TEST_F(BrokerTest, MessageExpiryForwardedOnline) {
  FakeLink& sub = connect("sub", kV5);
  subscribe(sub, "e", 0);
  FakeLink& p = connect("pub", kV5);
  PublishPacket m = pub("e", "x");
  m.properties.message_expiry_interval = 30;
  m.properties.content_type = "text/plain";
  in(p, m);
  auto got = publishes(sub);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].properties.message_expiry_interval, 30u);
  EXPECT_EQ(got[0].properties.content_type, "text/plain");
}

TEST_F(BrokerTest, RetainedMessageExpires) {
  FakeLink& p = connect("pub", kV5);
  PublishPacket m = pub("re", "x", 0, 0, true);
  m.properties.message_expiry_interval = 5;
  in(p, m);
  advance(seconds(2));
  FakeLink& s1 = connect("s1", kV5);
  auto got = publishes(subscribe(s1, "re", 0));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].properties.message_expiry_interval, 3u);
  advance(seconds(3));
  FakeLink& s2 = connect("s2", kV5);
  EXPECT_TRUE(subscribe(s2, "re", 0).empty());
}

// ---------------------------------------------------------------- wills

class WillTest : public BrokerTest {
 protected:
  FakeLink& watch() {
    FakeLink& w = connect("watcher", kV311);
    subscribe(w, "will/#", 1);
    return w;
  }
};

TEST_F(WillTest, PublishedOnLinkLost) {
  FakeLink& w = watch();
  ConnectPacket c = conn("c", kV311);
  c.will = will("will/c", "gone");
  c.will->qos = 1;
  FakeLink& link = connect(c);
  broker().on_link_lost(link, now_);
  auto got = publishes(w);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].topic, "will/c");
  EXPECT_EQ(got[0].payload, "gone");
  EXPECT_EQ(got[0].qos, 1);
  EXPECT_EQ(broker().find_session("c"), nullptr);
}

TEST_F(WillTest, NotPublishedAfterDisconnect) {
  FakeLink& w = watch();
  ConnectPacket c3 = conn("c3", kV311);
  c3.will = will("will/c3", "gone");
  FakeLink& l3 = connect(c3);
  in(l3, DisconnectPacket{});  // [MQTT-3.1.2-10]
  ConnectPacket c5 = conn("c5", kV5);
  c5.will = will("will/c5", "gone");
  FakeLink& l5 = connect(c5);
  in(l5, DisconnectPacket{});
  EXPECT_EQ(l3.closes, 1);
  EXPECT_EQ(l5.closes, 1);
  broker().on_link_lost(l3, now_);  // the socket closing afterwards changes nothing
  broker().on_link_lost(l5, now_);
  EXPECT_TRUE(w.take().empty());
}

TEST_F(WillTest, V5DisconnectWithWillMessage) {
  FakeLink& w = watch();
  ConnectPacket c = conn("c", kV5);
  c.will = will("will/c", "asked for");
  FakeLink& link = connect(c);
  DisconnectPacket d;
  d.reason = ReasonCode::kDisconnectWithWill;
  in(link, d);
  EXPECT_EQ(link.closes, 1);
  EXPECT_EQ(payloads(publishes(w)), Strings{"asked for"});
}

TEST_F(WillTest, RetainedWill) {
  ConnectPacket c = conn("c", kV311);
  c.will = will("will/c", "gone");
  c.will->retain = true;
  FakeLink& link = connect(c);
  broker().on_link_lost(link, now_);
  FakeLink& late = connect("late", kV311);
  auto got = publishes(subscribe(late, "will/#", 0));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(got[0].retain);
}

TEST_F(WillTest, DelayedWillPublishedByTick) {
  FakeLink& w = watch();
  ConnectPacket c = conn("c", kV5);
  c.properties.session_expiry_interval = 100;
  c.will = will("will/c", "late");
  c.will->properties.will_delay_interval = 5;
  FakeLink& link = connect(c);
  broker().on_link_lost(link, now_);
  EXPECT_TRUE(w.take().empty());
  advance(seconds(4));
  tick();
  EXPECT_TRUE(w.take().empty());
  advance(seconds(1));
  tick();
  EXPECT_EQ(payloads(publishes(w)), Strings{"late"});
  EXPECT_NE(broker().find_session("c"), nullptr);  // the session outlives its will
  advance(seconds(10));
  tick();
  EXPECT_TRUE(w.take().empty());  // once only
}

TEST_F(WillTest, DelayedWillCancelledByReconnect) {
  FakeLink& w = watch();
  ConnectPacket c = conn("c", kV5);
  c.properties.session_expiry_interval = 100;
  c.will = will("will/c", "late");
  c.will->properties.will_delay_interval = 5;
  FakeLink& link = connect(c);
  broker().on_link_lost(link, now_);
  advance(seconds(3));
  ConnectPacket back = conn("c", kV5, /*clean=*/false);
  back.properties.session_expiry_interval = 100;
  ConnackPacket ack_packet;
  connect(back, &ack_packet);
  EXPECT_TRUE(ack_packet.session_present);
  advance(seconds(10));
  tick();
  EXPECT_TRUE(w.take().empty());  // [MQTT-3.1.3-9]
}

TEST_F(WillTest, DelayedWillSentWhenSessionExpiresFirst) {
  FakeLink& w = watch();
  ConnectPacket c = conn("c", kV5);
  c.properties.session_expiry_interval = 3;
  c.will = will("will/c", "late");
  c.will->properties.will_delay_interval = 60;
  FakeLink& link = connect(c);
  broker().on_link_lost(link, now_);
  advance(seconds(3));
  tick();
  EXPECT_EQ(payloads(publishes(w)), Strings{"late"});
  EXPECT_EQ(broker().find_session("c"), nullptr);
}

TEST_F(WillTest, KeepaliveExpiredV5) {
  FakeLink& w = watch();
  ConnectPacket c = conn("c", kV5);
  c.will = will("will/c", "timeout");
  FakeLink& link = connect(c);
  broker().on_keepalive_expired(link, now_);
  auto d = single<DisconnectPacket>(link);
  EXPECT_EQ(d.reason, ReasonCode::kKeepAliveTimeout);
  EXPECT_EQ(link.closes, 1);
  EXPECT_EQ(payloads(publishes(w)), Strings{"timeout"});
}

TEST_F(WillTest, KeepaliveExpiredV311) {
  FakeLink& w = watch();
  ConnectPacket c = conn("c", kV311);
  c.will = will("will/c", "timeout");
  FakeLink& link = connect(c);
  broker().on_keepalive_expired(link, now_);
  EXPECT_TRUE(link.take().empty());  // 3.1.1 has no server DISCONNECT
  EXPECT_EQ(link.closes, 1);
  EXPECT_EQ(payloads(publishes(w)), Strings{"timeout"});
}

TEST_F(WillTest, WillToSysTopicIsDropped) {
  FakeLink& w = connect("w", kV311);
  subscribe(w, "$SYS/#", 0);
  ConnectPacket c = conn("c", kV311);
  c.will = will("$SYS/fake", "x");
  FakeLink& link = connect(c);
  broker().on_link_lost(link, now_);
  EXPECT_TRUE(w.take().empty());
}

// ---------------------------------------------------------------- session lifetime

TEST_F(BrokerTest, SessionExpiresViaTick) {
  ConnectPacket c = conn("c", kV5);
  c.properties.session_expiry_interval = 10;
  FakeLink& link = connect(c);
  subscribe(link, "x/#", 1);
  in(link, DisconnectPacket{});
  EXPECT_EQ(stats().clients_disconnected.load(), 1);
  advance(seconds(9));
  tick();
  ASSERT_NE(broker().find_session("c"), nullptr);
  advance(seconds(1));
  tick();
  EXPECT_EQ(broker().find_session("c"), nullptr);
  EXPECT_EQ(stats().clients_expired.load(), 1u);
  EXPECT_EQ(stats().clients_disconnected.load(), 0);
  EXPECT_EQ(stats().subscriptions.load(), 0);
  // Its subscriptions are gone from the tree too.
  FakeLink& p = connect("p", kV5);
  in(p, pub("x/y", "z", 1, 1));
  EXPECT_EQ(session("p").inflight.size(), 0u);
  ConnackPacket ack_packet;
  connect(conn("c", kV5, false), &ack_packet);
  EXPECT_FALSE(ack_packet.session_present);
}

TEST_F(BrokerTest, SessionExpiryFromDisconnectProperty) {
  ConnectPacket c = conn("c", kV5);
  c.properties.session_expiry_interval = 100;
  FakeLink& link = connect(c);
  DisconnectPacket d;
  d.properties.session_expiry_interval = 2;
  in(link, d);
  advance(seconds(2));
  tick();
  EXPECT_EQ(broker().find_session("c"), nullptr);
}

TEST_F(BrokerTest, PersistentV311SessionExpiresWithPersistentClientExpiration) {
  settings_.persistent_client_expiration = 60;
  FakeLink& link = connect("c", kV311, false);
  in(link, DisconnectPacket{});
  advance(seconds(59));
  tick();
  EXPECT_NE(broker().find_session("c"), nullptr);
  advance(seconds(1));
  tick();
  EXPECT_EQ(broker().find_session("c"), nullptr);
}

TEST_F(BrokerTest, ReconnectCancelsSessionExpiry) {
  ConnectPacket c = conn("c", kV5);
  c.properties.session_expiry_interval = 10;
  FakeLink& link = connect(c);
  in(link, DisconnectPacket{});
  advance(seconds(5));
  c.clean_start = false;
  connect(c);
  advance(seconds(10));
  tick();
  ASSERT_NE(broker().find_session("c"), nullptr);
  EXPECT_NE(session("c").link, nullptr);
}

TEST_F(BrokerTest, TakeoverV5) {
  FakeLink& old_link = connect("c", kV5);
  subscribe(old_link, "t", 0);
  ConnackPacket ack_packet;
  FakeLink& new_link = connect(conn("c", kV5, false), &ack_packet);
  auto d = single<DisconnectPacket>(old_link);
  EXPECT_EQ(d.reason, ReasonCode::kSessionTakenOver);  // [MQTT-3.1.4-3]
  EXPECT_EQ(old_link.closes, 1);
  EXPECT_EQ(old_link.session, nullptr);
  EXPECT_EQ(new_link.closes, 0);
  EXPECT_EQ(session("c").link, &new_link);
  EXPECT_EQ(broker().session_count(), 1u);
  EXPECT_EQ(stats().clients_connected.load(), 1);
  // The old link going away later does not touch the new connection.
  broker().on_link_lost(old_link, now_);
  EXPECT_EQ(session("c").link, &new_link);
}

TEST_F(BrokerTest, TakeoverV311ClosesWithoutDisconnect) {
  FakeLink& old_link = connect("c", kV311);
  FakeLink& new_link = connect("c", kV311);
  EXPECT_TRUE(old_link.take().empty());
  EXPECT_EQ(old_link.closes, 1);
  EXPECT_EQ(session("c").link, &new_link);
}

TEST_F(BrokerTest, TakeoverPublishesOldWill) {
  FakeLink& w = connect("watcher", kV311);
  subscribe(w, "will/#", 0);
  ConnectPacket c = conn("c", kV5);
  c.will = will("will/c", "taken over");
  connect(c);
  connect("c", kV5);
  EXPECT_EQ(payloads(publishes(w)), Strings{"taken over"});
}

TEST_F(BrokerTest, ShutdownSendsServerShuttingDown) {
  FakeLink& a = connect("a", kV5);
  FakeLink& b = connect("b", kV311);
  broker().shutdown(now_);
  EXPECT_EQ(single<DisconnectPacket>(a).reason, ReasonCode::kServerShuttingDown);
  EXPECT_TRUE(b.take().empty());
  EXPECT_EQ(a.closes, 1);
  EXPECT_EQ(b.closes, 1);
}

// ---------------------------------------------------------------- limits

TEST_F(BrokerTest, V5ClientExceedingReceiveMaximumWithQos2) {
  settings_.max_inflight_messages = 2;
  ConnackPacket ack_packet;
  FakeLink& c = connect(conn("c", kV5), &ack_packet);
  EXPECT_EQ(ack_packet.properties.receive_maximum, 2);
  in(c, pub("t", "1", 2, 1));
  in(c, pub("t", "2", 2, 2));
  EXPECT_EQ(c.take().size(), 2u);  // two PUBRECs
  in(c, pub("t", "3", 2, 3));
  auto d = single<DisconnectPacket>(c);
  EXPECT_EQ(d.reason, ReasonCode::kReceiveMaximumExceeded);  // [MQTT-3.3.4-9]
  EXPECT_EQ(c.closes, 1);
}

TEST_F(BrokerTest, ReceiveMaximumFreedByPubrel) {
  settings_.max_inflight_messages = 1;
  FakeLink& c = connect("c", kV5);
  in(c, pub("t", "1", 2, 1));
  in(c, ack(PacketType::kPubrel, 1));
  in(c, pub("t", "2", 2, 2));
  auto packets = c.take();
  ASSERT_EQ(packets.size(), 3u);  // PUBREC, PUBCOMP, PUBREC
  EXPECT_EQ(std::get<AckPacket>(packets[2]).type, PacketType::kPubrec);
  EXPECT_EQ(c.closes, 0);
}

TEST_F(BrokerTest, TopicAliasFromClient) {
  FakeLink& s = connect("s", kV311);
  subscribe(s, "al/#", 0);
  FakeLink& c = connect("c", kV5);
  PublishPacket set = pub("al/x", "1");
  set.properties.topic_alias = 1;
  in(c, set);
  PublishPacket use = pub("", "2");
  use.properties.topic_alias = 1;
  in(c, use);
  PublishPacket reset = pub("al/y", "3");
  reset.properties.topic_alias = 1;
  in(c, reset);
  in(c, use);
  auto got = publishes(s);
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[0].topic, "al/x");
  EXPECT_EQ(got[1].topic, "al/x");
  EXPECT_EQ(got[1].payload, "2");
  EXPECT_EQ(got[2].topic, "al/y");
  EXPECT_EQ(got[3].topic, "al/y");
  EXPECT_EQ(c.closes, 0);
}

TEST_F(BrokerTest, UnknownTopicAliasIsProtocolError) {
  FakeLink& c = connect("c", kV5);
  PublishPacket use = pub("", "x");
  use.properties.topic_alias = 2;
  in(c, use);
  EXPECT_EQ(single<DisconnectPacket>(c).reason, ReasonCode::kProtocolError);
  EXPECT_EQ(c.closes, 1);
}

TEST_F(BrokerTest, TopicAliasAboveMaximumIsInvalid) {
  settings_.max_topic_alias = 10;
  FakeLink& c = connect("c", kV5);
  PublishPacket p = pub("t", "x");
  p.properties.topic_alias = 11;
  in(c, p);
  EXPECT_EQ(single<DisconnectPacket>(c).reason, ReasonCode::kTopicAliasInvalid);
  EXPECT_EQ(c.closes, 1);

  FakeLink& zero = connect("z", kV5);
  p.properties.topic_alias = 0;
  in(zero, p);
  EXPECT_EQ(single<DisconnectPacket>(zero).reason, ReasonCode::kTopicAliasInvalid);
}

TEST_F(BrokerTest, OutgoingTopicAliasWhenClientAnnouncesMaximum) {
  ConnectPacket c = conn("s", kV5);
  c.properties.topic_alias_maximum = 1;
  FakeLink& s = connect(c);
  subscribe(s, "oa/#", 0);
  FakeLink& plain = connect("plain", kV5);  // announces none: never gets aliases
  subscribe(plain, "oa/#", 0);
  FakeLink& p = connect("p", kV5);
  in(p, pub("oa/1", "a"));
  in(p, pub("oa/1", "b"));
  in(p, pub("oa/2", "c"));
  in(p, pub("oa/2", "d"));
  auto got = publishes(s);
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[0].topic, "oa/1");
  EXPECT_EQ(got[0].properties.topic_alias, 1);
  EXPECT_EQ(got[1].topic, "");  // alias only [MQTT-3.3.2-12]
  EXPECT_EQ(got[1].properties.topic_alias, 1);
  EXPECT_EQ(got[2].topic, "oa/2");  // table full: full topic
  EXPECT_FALSE(got[2].properties.topic_alias.has_value());
  EXPECT_EQ(got[3].topic, "oa/2");
  auto plain_got = publishes(plain);
  ASSERT_EQ(plain_got.size(), 4u);
  for (const auto& g : plain_got) {
    EXPECT_FALSE(g.properties.topic_alias.has_value());
    EXPECT_FALSE(g.topic.empty());
  }
}

TEST_F(BrokerTest, OutgoingTopicAliasesResetOnReconnect) {
  ConnectPacket c = conn("s", kV5);
  c.properties.topic_alias_maximum = 5;
  c.properties.session_expiry_interval = 100;
  FakeLink& s = connect(c);
  subscribe(s, "t", 0);
  FakeLink& p = connect("p", kV5);
  in(p, pub("t", "a"));
  EXPECT_EQ(publishes(s).at(0).topic, "t");
  broker().on_link_lost(s, now_);
  c.clean_start = false;
  FakeLink& again = connect(c);
  in(p, pub("t", "b"));
  auto got = publishes(again);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].topic, "t");  // aliases belong to a connection [MQTT-3.3.2-10]
}

TEST_F(BrokerTest, ClientMaximumPacketSize) {
  ConnectPacket c = conn("s", kV5);
  c.properties.maximum_packet_size = 64;
  FakeLink& s = connect(c);
  subscribe(s, "m", 1);
  FakeLink& p = connect("p", kV5);
  in(p, pub("m", std::string(100, 'x'), 1, 1));
  EXPECT_TRUE(s.take().empty());  // [MQTT-3.1.2-25]
  EXPECT_EQ(stats().publish_dropped.load(), 1u);
  EXPECT_EQ(stats().dropped[static_cast<int>(DropReason::kTooLarge)].load(), 1u);
  EXPECT_TRUE(session("s").inflight.empty());
  in(p, pub("m", "small", 1, 2));
  auto got = publishes(s);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, "small");
  EXPECT_EQ(stats().stored_messages.load(), 1);
}

TEST_F(BrokerTest, SysPublishFromClientNotRouted) {
  FakeLink& w = connect("w", kV311);
  subscribe(w, "$SYS/#", 0);
  FakeLink& c5 = connect("c5", kV5);
  in(c5, pub("$SYS/broker/fake", "x", 1, 1, /*retain=*/true));
  auto ack5 = single<AckPacket>(c5);
  EXPECT_EQ(ack5.type, PacketType::kPuback);
  EXPECT_EQ(ack5.reason, ReasonCode::kNotAuthorized);
  FakeLink& c3 = connect("c3", kV311);
  in(c3, pub("$SYS/broker/fake", "x", 1, 2));
  EXPECT_EQ(single<AckPacket>(c3).type, PacketType::kPuback);  // v3 cannot say no
  in(c3, pub("$SYS/broker/fake", "x"));
  EXPECT_TRUE(w.take().empty());
  EXPECT_TRUE(router_.broadcasts.empty());
  EXPECT_EQ(shared_->retained.count(), 0u);
}

TEST_F(BrokerTest, SysPublishedByBrokerOnTick) {
  settings_.sys_interval = 10;
  FakeLink& w = connect("w", kV311);
  subscribe(w, "$SYS/broker/version", 0);
  tick();
  auto got = publishes(w);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, settings_.version);
  advance(seconds(5));
  tick();
  EXPECT_TRUE(w.take().empty());
}

// A payload over message_size_limit is dropped and refused with a reason
// code PUBACK/PUBREC may carry (3.4.2.1 / 3.5.2.1: 0x95 Packet Too Large is
// not one of them, so 0x97 Quota exceeded is used); the PUBACK must decode.
TEST_F(BrokerTest, MessageSizeLimit) {
  settings_.message_size_limit = 4;
  FakeLink& s = connect("s", kV311);
  subscribe(s, "t", 0);
  FakeLink& c = connect("c", kV5);
  in(c, pub("t", "too long", 1, 1));
  auto puback = single<AckPacket>(c);
  EXPECT_EQ(puback.type, PacketType::kPuback);
  EXPECT_TRUE(protocol::is_error(puback.reason));
  EXPECT_TRUE(s.take().empty());
  in(c, pub("t", "ok", 1, 2));
  EXPECT_EQ(payloads(publishes(s)), Strings{"ok"});
}

TEST_F(BrokerTest, RemotePublishIsNotBroadcastAgain) {
  FakeLink& s = connect("s", kV311);
  subscribe(s, "t", 0);
  MessageFields f;
  f.topic = "t";
  f.payload = "from elsewhere";
  broker().on_remote_publish(Message::create(f), now_);
  EXPECT_EQ(payloads(publishes(s)), Strings{"from elsewhere"});
  EXPECT_TRUE(router_.broadcasts.empty());
}

// Above the output bound QoS 0 is dropped (and counted) while QoS 1 waits
// in the session queue until the link has room again (review H2).
TEST_F(BrokerTest, SlowConsumerDropsQos0AndQueuesQos1) {
  FakeLink& s = connect("s", kV311);
  subscribe(s, "t", 1);
  s.pending = settings_.max_pending_output + 1;
  FakeLink& p = connect("p", kV311);
  in(p, pub("t", "dropped"));
  in(p, pub("t", "kept", 1, 1));
  EXPECT_TRUE(publishes(s).empty());
  EXPECT_EQ(stats().publish_dropped.load(), 1u);
  EXPECT_EQ(stats().dropped[static_cast<int>(DropReason::kOutputFull)].load(), 1u);
  EXPECT_EQ(session("s").queue.size(), 1u);
  EXPECT_EQ(stats().queued_messages.load(), 1);
  s.pending = 0;
  broker().on_link_writable(s, now_);
  EXPECT_EQ(payloads(publishes(s)), Strings{"kept"});
  EXPECT_TRUE(session("s").queue.empty());
}

// PUBACK/PUBREC/PUBREL/PUBCOMP are written directly by send_ack(); they
// still count in stats.messages_sent, "all packets sent" in stats.h
// ($SYS/broker/messages/sent).
TEST_F(BrokerTest, AcksCountedAsMessagesSent) {
  FakeLink& c = connect("c", kV311);
  const uint64_t before = stats().messages_sent.load();
  in(c, pub("t", "x", 1, 1));
  EXPECT_EQ(single<AckPacket>(c).type, PacketType::kPuback);
  EXPECT_EQ(stats().messages_sent.load(), before + 1);
}


// clients_disconnected counts offline persistent sessions. on_connect reads
// whether the session was offline before take_over() clears its link, so
// (a) taking over an *online* session leaves the counter alone, and (b) a
// clean-start CONNECT that discards an *offline* session decrements it.
TEST_F(BrokerTest, ClientsDisconnectedUnchangedByTakeoverOfOnlineSession) {
  connect("online", kV5);
  connect(conn("online", kV5, /*clean=*/false));  // takeover of a live session
  EXPECT_EQ(stats().clients_disconnected.load(), 0);
  EXPECT_EQ(stats().clients_connected.load(), 1);
}

// Case (b) of the test above.
TEST_F(BrokerTest, ClientsDisconnectedDecrementedWhenCleanStartDiscardsOfflineSession) {
  FakeLink& p = connect("persistent", kV311, false);
  in(p, DisconnectPacket{});
  EXPECT_EQ(stats().clients_disconnected.load(), 1);
  connect(conn("persistent", kV311, /*clean=*/true));  // discards the offline session
  EXPECT_EQ(stats().clients_disconnected.load(), 0);
  EXPECT_EQ(stats().clients_connected.load(), 1);
}

TEST_F(BrokerTest, ClientsDisconnectedCounterOnResume) {
  FakeLink& p = connect("persistent", kV311, false);
  in(p, DisconnectPacket{});
  EXPECT_EQ(stats().clients_disconnected.load(), 1);
  connect(conn("persistent", kV311, false));
  EXPECT_EQ(stats().clients_disconnected.load(), 0);
  EXPECT_EQ(stats().clients_connected.load(), 1);
}

TEST_F(BrokerTest, SecondConnectIsProtocolError) {
  FakeLink& c = connect("c", kV5);
  in(c, conn("c", kV5));  // [MQTT-3.1.0-2]
  EXPECT_EQ(single<DisconnectPacket>(c).reason, ReasonCode::kProtocolError);
  EXPECT_EQ(c.closes, 1);
}

TEST_F(BrokerTest, ProtocolErrorGivesV5DisconnectAndWill) {
  FakeLink& w = connect("w", kV311);
  subscribe(w, "will/#", 0);
  ConnectPacket c = conn("c", kV5);
  c.will = will("will/c", "broken");
  FakeLink& link = connect(c);
  broker().on_protocol_error(link, ReasonCode::kMalformedPacket, now_);
  EXPECT_EQ(single<DisconnectPacket>(link).reason, ReasonCode::kMalformedPacket);
  EXPECT_EQ(link.closes, 1);
  EXPECT_EQ(payloads(publishes(w)), Strings{"broken"});
}

TEST_F(BrokerTest, SessionExpiryCannotBeSetAtDisconnectWhenItWasZero) {
  FakeLink& c = connect("c", kV5);  // Session Expiry 0
  DisconnectPacket d;
  d.properties.session_expiry_interval = 30;
  in(c, d);  // [MQTT-3.14.2-2]
  EXPECT_EQ(single<DisconnectPacket>(c).reason, ReasonCode::kProtocolError);
  EXPECT_EQ(broker().find_session("c"), nullptr);
}

TEST_F(BrokerTest, QosAboveMaximumIsRefused) {
  settings_.max_qos = 1;
  ConnackPacket ack_packet;
  FakeLink& c = connect(conn("c", kV5), &ack_packet);
  EXPECT_EQ(ack_packet.properties.maximum_qos, 1);
  in(c, pub("t", "x", 2, 1));
  EXPECT_EQ(single<DisconnectPacket>(c).reason, ReasonCode::kQosNotSupported);
}

TEST_F(BrokerTest, RetainRefusedWhenNotAvailable) {
  settings_.retain_available = false;
  ConnackPacket ack_packet;
  FakeLink& c = connect(conn("c", kV5), &ack_packet);
  EXPECT_EQ(ack_packet.properties.retain_available, 0);
  in(c, pub("t", "x", 0, 0, true));
  EXPECT_EQ(single<DisconnectPacket>(c).reason, ReasonCode::kRetainNotSupported);
  EXPECT_EQ(shared_->retained.count(), 0u);
}

TEST_F(BrokerTest, ServerKeepAliveForV5AndRefusalForV311) {
  settings_.max_keepalive = 30;
  ConnackPacket ack_packet;
  connect(conn("c5", kV5), &ack_packet);  // asks for 60
  EXPECT_EQ(ack_packet.properties.server_keep_alive, 30);
  EXPECT_EQ(session("c5").keep_alive, 30);
  FakeLink link;
  EXPECT_FALSE(broker().on_connect(link, conn("c3", kV311), false, now_));
  EXPECT_EQ(single<ConnackPacket>(link).reason, ReasonCode::kClientIdentifierNotValid);
  EXPECT_EQ(link.closes, 1);
}

TEST_F(BrokerTest, InvalidFilterRefusedInSuback) {
  FakeLink& s = connect("s", kV5);
  subscribe(s, "a/#/b", 1);
  ASSERT_EQ(last_suback_.reasons.size(), 1u);
  EXPECT_EQ(last_suback_.reasons[0], ReasonCode::kTopicFilterInvalid);
  EXPECT_EQ(stats().subscriptions.load(), 0);
}

TEST_F(BrokerTest, RetainedOnSubscribeCarriesSubscriptionId) {
  FakeLink& p = connect("p", kV5);
  in(p, pub("sid", "x", 0, 0, true));
  FakeLink& s = connect("s", kV5);
  auto got = publishes(subscribe(s, "sid", 1, 77));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].properties.subscription_identifiers, std::vector<uint32_t>{77});
}

TEST_F(BrokerTest, SharedSubscriptionRoundRobinOnOneWorker) {
  FakeLink& a = connect("a", kV5);
  FakeLink& b = connect("b", kV5);
  subscribe(a, "$share/g/s", 0);
  subscribe(b, "$share/g/s", 0);
  FakeLink& p = connect("p", kV5);
  for (int i = 0; i < 4; ++i) in(p, pub("s", std::to_string(i)));
  auto ga = payloads(publishes(a));
  auto gb = payloads(publishes(b));
  EXPECT_EQ(ga.size(), 2u);
  EXPECT_EQ(gb.size(), 2u);
  EXPECT_TRUE(router_.shared.empty());  // both members live on this worker
  // Retained messages are not sent to shared subscriptions.
  in(p, pub("s", "r", 0, 0, true));
  a.take();
  b.take();
  FakeLink& c = connect("c", kV5);
  EXPECT_TRUE(subscribe(c, "$share/g/s", 0).empty());
}

// ---------------------------------------------------------------- limits (review 2026-11-29)

// The bound is absolute: one packet larger than it still goes out on an
// empty buffer, and nothing is added once a packet would cross it (H2).
TEST_F(BrokerTest, OutputBoundIsAbsolute) {
  settings_.max_pending_output = 1000;
  settings_.max_queued_messages = 0;  // once an escape from the bound
  FakeLink& s = connect("s", kV311);
  subscribe(s, "t", 0);
  FakeLink& p = connect("p", kV311);
  in(p, pub("t", std::string(5000, 'x')));
  EXPECT_EQ(publishes(s).size(), 1u);  // nothing pending: it goes out
  s.pending = 900;
  in(p, pub("t", std::string(200, 'y')));
  EXPECT_TRUE(publishes(s).empty());
  EXPECT_EQ(stats().publish_dropped.load(), 1u);
  in(p, pub("t", "z"));
  EXPECT_EQ(payloads(publishes(s)), Strings{"z"});
}

// QoS 1 with a large window: only what fits is written, the rest waits in
// order and follows as the link drains (H2).
TEST_F(BrokerTest, Qos1WindowDoesNotBypassOutputBound) {
  settings_.max_pending_output = 1000;
  settings_.max_inflight_messages = 0;
  FakeLink& s = connect("s", kV5);
  subscribe(s, "t", 1);
  s.track_output = true;  // unread bytes count as pending
  FakeLink& p = connect("p", kV311);
  for (int i = 0; i < 10; ++i) {
    in(p, pub("t", std::to_string(i) + std::string(400, '.'), 1, static_cast<uint16_t>(i + 1)));
  }
  EXPECT_EQ(session("s").queue.size(), 8u);
  Strings got;
  for (int turn = 0; turn < 10 && got.size() < 10; ++turn) {
    auto batch = publishes(s);  // the client reads: pending drops to 0
    EXPECT_LE(batch.size(), 2u);  // ~410 bytes each against a 1000-byte bound
    for (auto& m : batch) got.push_back(m.payload.substr(0, 1));
    broker().on_link_writable(s, now_);
  }
  EXPECT_EQ(got, (Strings{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}));
}

// A repeated filter in one SUBSCRIBE replays the retained messages once,
// and the replays count against the output bound (C1).
TEST_F(BrokerTest, RetainedReplayOncePerFilterAndPacedByTheOutputBound) {
  FakeLink& p = connect("p", kV311);
  for (int i = 0; i < 3; ++i) in(p, pub("r/" + std::to_string(i), "v", 0, 0, true));
  FakeLink& s = connect("s", kV311);
  SubscribePacket sub;
  sub.packet_id = 1;
  for (int i = 0; i < 100; ++i) sub.subscriptions.push_back({"r/#", SubscribeOptions{}});
  in(s, std::move(sub));
  std::vector<Packet> packets = s.take();
  ASSERT_FALSE(packets.empty());
  EXPECT_EQ(std::get<SubackPacket>(packets[0]).reasons.size(), 100u);
  EXPECT_EQ(publishes(std::move(packets)).size(), 3u);
  s.pending = settings_.max_pending_output + 1;
  SubscribePacket again;
  again.packet_id = 2;
  again.subscriptions.push_back({"r/#", SubscribeOptions{}});
  in(s, std::move(again));
  // Above the output bound the replay waits (references to the stored
  // messages) and goes out, all of it, once the output has drained.
  EXPECT_EQ(publishes(s.take()).size(), 0u);
  EXPECT_EQ(stats().publish_dropped.load(), 0u);
  s.pending = 0;
  broker().on_link_writable(s, now_);
  EXPECT_EQ(publishes(s.take()).size(), 3u);
}

// One timer entry per session, whatever the number of reconnects (M5).
TEST_F(BrokerTest, SessionTimersDoNotGrowAcrossReconnects) {
  for (int i = 0; i < 10000; ++i) {
    ConnectPacket c = conn(std::string(200, 'c'), kV5, /*clean=*/false);
    c.properties.session_expiry_interval = 0xFFFFFFFE;
    c.will = will("w", "x");
    c.will->properties.will_delay_interval = 1000;
    FakeLink& link = connect(std::move(c));
    EXPECT_LE(broker().timer_count(), 1u);
    broker().on_link_lost(link, now_);
    EXPECT_EQ(broker().timer_count(), 1u);
    advance(seconds(1));
    links_.clear();
  }
  advance(seconds(2000));
  tick();  // the delayed will is due: the timer is re-armed for the expiry
  EXPECT_EQ(broker().timer_count(), 1u);
}

TEST_F(BrokerTest, SessionExpiryCappedByPersistentClientExpiration) {
  settings_.persistent_client_expiration = 60;
  ConnectPacket c = conn("v5", kV5, /*clean=*/false);
  c.properties.session_expiry_interval = 0xFFFFFFFE;
  ConnackPacket ack;
  FakeLink& link = connect(std::move(c), &ack);
  EXPECT_EQ(ack.properties.session_expiry_interval, 60u);  // told to the client
  in(link, DisconnectPacket{});
  advance(seconds(59));
  tick();
  EXPECT_NE(broker().find_session("v5"), nullptr);
  advance(seconds(2));
  tick();
  EXPECT_EQ(broker().find_session("v5"), nullptr);
}

TEST_F(BrokerTest, SubscriptionQuotaPerClient) {
  settings_.max_subscriptions_per_client = 2;
  FakeLink& v5 = connect("v5", kV5);
  subscribe(v5, "a", 0);
  subscribe(v5, "b", 0);
  subscribe(v5, "c", 0);
  EXPECT_EQ(last_suback_.reasons[0], ReasonCode::kQuotaExceeded);
  subscribe(v5, "a", 1);  // an existing filter may be changed
  EXPECT_EQ(last_suback_.reasons[0], ReasonCode::kGrantedQos1);
  EXPECT_EQ(session("v5").subscriptions.size(), 2u);
  FakeLink& v3 = connect("v3", kV311);
  subscribe(v3, "a", 0);
  subscribe(v3, "b", 0);
  subscribe(v3, "c", 0);
  EXPECT_TRUE(protocol::is_error(last_suback_.reasons[0]));  // 0x80 on the wire
}

TEST_F(BrokerTest, SharedGroupsBounded) {
  settings_.max_shared_groups = 2;
  FakeLink& c = connect("c", kV5);
  subscribe(c, "$share/g1/t", 0);
  subscribe(c, "$share/g2/t", 0);
  subscribe(c, "$share/g3/t", 0);
  EXPECT_EQ(last_suback_.reasons[0], ReasonCode::kQuotaExceeded);
  subscribe(c, "$share/g1/t", 1);  // joining an existing group is fine
  EXPECT_EQ(last_suback_.reasons[0], ReasonCode::kGrantedQos1);
}

// Subscription identifiers count in max_queued_bytes (M4).
TEST_F(BrokerTest, SubscriptionIdsCountInQueuedBytes) {
  ConnectPacket c = conn("s", kV5, /*clean=*/false);
  c.properties.session_expiry_interval = 100;
  FakeLink& s = connect(std::move(c));
  for (uint32_t i = 1; i <= 10; ++i) subscribe(s, i % 2 ? "t" : "+", 1, i);
  in(s, DisconnectPacket{});
  FakeLink& p = connect("p", kV311);
  in(p, pub("t", "xy", 1, 1));
  EXPECT_EQ(session("s").queued_bytes, 2u + 2 * sizeof(uint32_t));  // "t" and "+" keep one id each
}

// A $share delivery whose member ended goes to another member (L13).
TEST_F(BrokerTest, SharedDeliveryToGoneMemberGoesToAnother) {
  FakeLink& a = connect("a", kV5);
  subscribe(a, "$share/g/t", 1);
  SharedMember gone{0, "gone", 1, 0, true, std::string("g\0t", 3)};
  MessageFields f;
  f.topic = "t";
  f.payload = "m";
  f.qos = 1;
  broker().on_shared_delivery(gone, Message::create(f), now_);
  EXPECT_EQ(payloads(publishes(a)), Strings{"m"});
}

TEST_F(BrokerTest, ExpiredRetainedMessagesAreRemoved) {
  FakeLink& p = connect("p", kV5);
  PublishPacket m = pub("r", "v", 0, 0, true);
  m.properties.message_expiry_interval = 10;
  in(p, std::move(m));
  in(p, pub("keep", "v", 0, 0, true));
  EXPECT_EQ(shared_->retained.count(), 2u);
  advance(seconds(11));
  tick();
  EXPECT_EQ(shared_->retained.count(), 1u);
  in(p, pub("r", "again", 0, 0, true));  // the emptied branch can be used again
  EXPECT_EQ(shared_->retained.count(), 2u);
}

TEST_F(BrokerTest, IncomingQos2IdsAreASet) {
  FakeLink& c = connect("c", kV311);
  for (uint32_t id = 1; id <= 65535; ++id) in(c, pub("t", "x", 2, static_cast<uint16_t>(id)));
  EXPECT_EQ(session("c").incoming_qos2.size(), 65535u);
  in(c, pub("t", "x", 2, 7));  // a resend: acknowledged, not stored twice
  EXPECT_EQ(session("c").incoming_qos2.size(), 65535u);
  c.take();
  in(c, ack(PacketType::kPubrel, 7));
  EXPECT_EQ(single<AckPacket>(c).reason, ReasonCode::kSuccess);
  EXPECT_EQ(session("c").incoming_qos2.size(), 65534u);
}

TEST_F(BrokerTest, OutgoingTopicAliasesBoundedInBytes) {
  ConnectPacket c = conn("s", kV5);
  c.properties.topic_alias_maximum = 65535;
  FakeLink& s = connect(std::move(c));
  subscribe(s, "#", 0);
  FakeLink& p = connect("p", kV311);
  for (int i = 0; i < 20; ++i) in(p, pub(std::to_string(i) + std::string(60000, 'a'), "x"));
  EXPECT_EQ(publishes(s).size(), 20u);
  ASSERT_NE(session("s").aliases, nullptr);
  EXPECT_LE(session("s").aliases->out_bytes, Session::kMaxAliasBytes);
  EXPECT_LT(session("s").aliases->out.size(), 20u);
}

TEST_F(BrokerTest, ResponseInformationNeverTooLong) {
  ConnectPacket c = conn(std::string(65535, 'i'), kV5);
  c.properties.request_response_information = 1;
  ConnackPacket ack;
  connect(std::move(c), &ack);  // fails to decode if the property overflowed
  EXPECT_EQ(ack.reason, ReasonCode::kSuccess);
}


// ---------------------------------------------------------------- persistence (broker_store.cc)

class StoreTest : public BrokerTest {
 protected:
  Broker& stored_broker() {
    Broker& b = broker();
    b.set_journal(&journal_);
    return b;
  }
  std::vector<std::string> records() { return journal_.take(); }
  fakes::FakeJournal journal_;
};

TEST_F(StoreTest, CleanSessionsWriteNothing) {
  stored_broker();
  FakeLink& sub = connect("sub");  // v5, no session expiry
  subscribe(sub, "t/#", 1);
  FakeLink& publisher = connect("pub", kV311);
  in(publisher, pub("t/1", "m", 1, 1));
  EXPECT_EQ(records(), Strings{});
}

TEST_F(StoreTest, APersistentSessionIsJournaledThroughItsLife) {
  stored_broker();
  FakeLink& s = connect("s", kV311, /*clean=*/false);
  EXPECT_EQ(records(), (Strings{"put_session s online w0"}));
  subscribe(s, "t/#", 1);
  EXPECT_EQ(records(), (Strings{"put_subscription s t/# q1"}));
  in(s, DisconnectPacket{});
  EXPECT_EQ(records(), (Strings{"put_session s offline w0"}));
  FakeLink& p = connect("p", kV311);
  in(p, pub("t/1", "m1", 1, 1));
  EXPECT_EQ(records(), (Strings{"put_delivery s 1 m1"}));
  FakeLink& again = connect("s", kV311, /*clean=*/false);
  const std::vector<PublishPacket> got = publishes(again);
  ASSERT_EQ(got.size(), 1u);
  // Queued, then sent: the in-flight state is a record of its own.
  EXPECT_EQ(records(), (Strings{"put_session s online w0", "put_inflight s 1 id" + std::to_string(got[0].packet_id)}));
  in(again, ack(PacketType::kPuback, got[0].packet_id));
  EXPECT_EQ(records(), (Strings{"erase_delivery s 1 +state"}));
  // Clean Start ends the session and everything stored of it.
  connect("s", kV311, /*clean=*/true);
  EXPECT_EQ(records(), (Strings{"erase_session s"}));
}

// A QoS 1 message sent at once to a connected persistent session is not
// journaled; the publisher's PUBACK waits for the turn's end. Acknowledged by
// then, it is never written; still unacknowledged after the grace, it is
// written before the PUBACK goes (Broker::end_turn).
TEST_F(StoreTest, DeferredDeliveryAcknowledgedInTimeIsNeverWritten) {
  Broker& b = stored_broker();
  FakeLink& s = connect("s", kV311, /*clean=*/false);
  subscribe(s, "t", 1);
  FakeLink& p = connect("p", kV311);
  records();
  in(p, pub("t", "m", 1, 9));
  EXPECT_TRUE(p.take().empty());  // the PUBACK waits
  const std::vector<PublishPacket> got = publishes(s);  // the delivery did not
  ASSERT_EQ(got.size(), 1u);
  in(s, ack(PacketType::kPuback, got[0].packet_id));
  b.end_turn(now_);
  b.release_acks();
  EXPECT_EQ(records(), Strings{});
  const std::vector<Packet> acks = p.take();
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(std::get<AckPacket>(acks[0]).packet_id, 9);
}

TEST_F(StoreTest, DeferredDeliveryStillUnacknowledgedIsWrittenBeforeThePuback) {
  Broker& b = stored_broker();
  FakeLink& s = connect("s", kV311, /*clean=*/false);
  subscribe(s, "t", 1);
  FakeLink& p = connect("p", kV311);
  records();
  in(p, pub("t", "m", 1, 9));
  const std::vector<PublishPacket> got = publishes(s);
  ASSERT_EQ(got.size(), 1u);
  b.end_turn(now_);
  b.release_acks();
  EXPECT_TRUE(p.take().empty());  // within the grace, unacknowledged: it waits
  EXPECT_EQ(records(), Strings{});
  b.end_turn(now_ + Broker::kDeferGrace);
  EXPECT_EQ(records(), (Strings{"put_delivery s 1 m id1"}));  // journaled, then committed by the worker
  b.release_acks();
  ASSERT_EQ(p.take().size(), 1u);
  in(s, ack(PacketType::kPuback, got[0].packet_id));
  EXPECT_EQ(records(), (Strings{"erase_delivery s 1"}));
}

TEST_F(StoreTest, QoS2OutgoingKeepsOnlyItsStateOncePubrecCame) {
  stored_broker();
  FakeLink& s = connect("s", kV311, false);
  subscribe(s, "t", 2);
  FakeLink& p = connect("p", kV311);
  records();
  in(p, pub("t", "m", 2, 5));
  p.take();
  const std::vector<PublishPacket> got = publishes(s);
  ASSERT_EQ(got.size(), 1u);
  const std::string id = std::to_string(got[0].packet_id);
  // Sent at once: one record holds the message and its packet id.
  EXPECT_EQ(records(), (Strings{"put_delivery s 1 m id" + id}));
  in(s, ack(PacketType::kPubrec, got[0].packet_id));
  EXPECT_EQ(records(), (Strings{"erase_delivery_message s 1", "put_inflight s 1 id" + id + " released"}));
  in(s, ack(PacketType::kPubcomp, got[0].packet_id));
  EXPECT_EQ(records(), (Strings{"erase_delivery s 1 +state"}));
}

TEST_F(StoreTest, IncomingQoS2IdsOfAPersistentPublisher) {
  stored_broker();
  FakeLink& p = connect("p", kV311, false);
  records();
  in(p, pub("t", "m", 2, 9));
  EXPECT_EQ(records(), (Strings{"put_incoming p 9"}));
  in(p, ack(PacketType::kPubrel, 9));
  EXPECT_EQ(records(), (Strings{"erase_incoming p 9"}));
}

TEST_F(StoreTest, RetainedMessagesButNotSys) {
  stored_broker();
  FakeLink& p = connect("p", kV311);
  in(p, pub("t", "x", 0, 0, /*retain=*/true));
  in(p, pub("t", "", 0, 0, /*retain=*/true));
  broker().publish_internal("$SYS/broker/uptime", "1 seconds", true, now_);
  EXPECT_EQ(records(), (Strings{"put_retained t x", "erase_retained t"}));
}

TEST_F(StoreTest, ExpiredSessionsAreErased) {
  stored_broker();
  ConnectPacket c = conn("s", kV5, false);
  c.properties.session_expiry_interval = 10;
  FakeLink& s = connect(c);
  in(s, DisconnectPacket{});
  records();
  advance(seconds(11));
  tick();
  EXPECT_EQ(records(), (Strings{"erase_session s"}));
}

TEST_F(StoreTest, WhileTheStoreFailsQoS1IsRefused) {
  stored_broker();
  FakeLink& v5 = connect("a", kV5);
  FakeLink& v3 = connect("b", kV311);
  journal_.fail = true;
  journal_.put_incoming("x", 1);
  EXPECT_FALSE(journal_.commit());
  in(v5, pub("t", "m", 1, 3));
  const AckPacket a = single<AckPacket>(v5);
  EXPECT_EQ(a.reason, ReasonCode::kQuotaExceeded);
  in(v5, pub("t", "m", 0));  // QoS 0 needs nothing of the store
  EXPECT_EQ(v5.closes, 0);
  in(v3, pub("t", "m", 1, 3));
  EXPECT_EQ(v3.closes, 1);  // 3.1.1 has no refusal: it will send it again
}

TEST_F(StoreTest, ARestoredSessionResendsInFlightAndQueuedThenNew) {
  stored_broker();
  StoredSession st;
  st.client_id = "r";
  st.version = kV5;
  st.expiry_interval = 100;
  st.offline = true;
  st.expires_at = now_ + seconds(100);
  st.last_packet_id = 7;
  SubscribeOptions o;
  o.max_qos = 1;
  st.subscriptions.push_back({"a/#", o, 0});
  auto message = [](const std::string& payload) {
    MessageFields f;
    f.topic = "a/old";
    f.payload = payload;
    f.qos = 1;
    return Message::create(f);
  };
  StoredDelivery inflight;
  inflight.seq = 5;
  inflight.message = message("m5");
  inflight.qos = 1;
  inflight.packet_id = 7;
  StoredDelivery queued;
  queued.seq = 6;
  queued.message = message("m6");
  queued.qos = 1;
  st.deliveries.push_back(std::move(inflight));
  st.deliveries.push_back(std::move(queued));
  st.incoming_qos2.push_back(9);
  broker().restore(std::move(st), now_);
  EXPECT_EQ(records(), Strings{});  // offline, written by this worker: nothing to rewrite

  FakeLink& p = connect("p", kV311);
  in(p, pub("a/new", "m7", 1, 1));
  EXPECT_EQ(records(), (Strings{"put_delivery r 7 m7"}));  // after the restored sequence numbers
  ConnectPacket c = conn("r", kV5, false);
  c.properties.session_expiry_interval = 100;
  ConnackPacket ack;
  FakeLink& r = connect(c, &ack);
  EXPECT_TRUE(ack.session_present);
  const std::vector<PublishPacket> got = publishes(r);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(payloads(got), (Strings{"m5", "m6", "m7"}));
  EXPECT_TRUE(got[0].dup);
  EXPECT_EQ(got[0].packet_id, 7);
  EXPECT_NE(got[1].packet_id, 7);
  // The id it published with before the restart is still awaiting PUBREL:
  // a resent PUBLISH is acknowledged, not routed again [MQTT-4.3.3-9].
  FakeLink& watcher = connect("w");
  subscribe(watcher, "q", 0);
  PublishPacket again = pub("q", "dup", 2, 9);
  again.dup = true;
  in(r, std::move(again));
  EXPECT_EQ(single<AckPacket>(r).type, PacketType::kPubrec);
  EXPECT_TRUE(watcher.take().empty());
}


// Ids are given at queue time (issue 14, cause F): a restored queued message
// gets its own id back, and the next one continues after it even though the
// session record kept an older last id.
TEST_F(StoreTest, ARestoredQueuedMessageKeepsItsPacketId) {
  stored_broker();
  StoredSession st;
  st.client_id = "r";
  st.version = kV5;
  st.expiry_interval = 100;
  st.offline = true;
  st.expires_at = now_ + seconds(100);
  st.last_packet_id = 7;
  SubscribeOptions o;
  o.max_qos = 1;
  st.subscriptions.push_back({"a/#", o, 0});
  for (uint16_t id : {7, 8}) {
    MessageFields f;
    f.topic = "a/old";
    const std::string payload = "m" + std::to_string(id);
    f.payload = payload;
    f.qos = 1;
    StoredDelivery d;
    d.seq = id;
    d.message = Message::create(f);
    d.qos = 1;
    (id == 7 ? d.packet_id : d.queued_packet_id) = id;  // 7 in flight, 8 queued
    st.deliveries.push_back(std::move(d));
  }
  broker().restore(std::move(st), now_);
  FakeLink& p = connect("p", kV311);
  in(p, pub("a/new", "m9", 1, 1));
  ConnectPacket c = conn("r", kV5, false);
  c.properties.session_expiry_interval = 100;
  FakeLink& r = connect(c);
  const std::vector<PublishPacket> got = publishes(r);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(payloads(got), (Strings{"m7", "m8", "m9"}));
  EXPECT_EQ((std::vector<int>{got[0].packet_id, got[1].packet_id, got[2].packet_id}), (std::vector<int>{7, 8, 9}));
  EXPECT_TRUE(got[0].dup);
  EXPECT_FALSE(got[1].dup);
}

// Another worker stores a retained message and hands it on; this worker
// replays it to a new subscription before the live copy arrives: the client
// gets it once. (Seen in CI with 4 workers.)
TEST_F(BrokerTest, ALiveCopyOfAReplayedRetainedMessageIsNotDeliveredAgain) {
  broker();
  auto retained = [&](const std::string& payload) {
    MessageFields f;
    f.topic = "r/t";
    f.payload = payload;
    f.retain = true;
    MessagePtr m = Message::create(f);
    shared_->retained.put(m);  // as the publishing worker does before routing
    return m;
  };
  FakeLink& s = connect("s");
  const MessagePtr before = retained("before");
  EXPECT_EQ(payloads(publishes(subscribe(s, "r/#", 0))), (Strings{"before"}));
  broker().on_remote_publish(before, now_);
  EXPECT_TRUE(s.take().empty());
  const MessagePtr after = retained("after");  // stored after the replay: live
  broker().on_remote_publish(after, now_);
  EXPECT_EQ(payloads(publishes(s)), (Strings{"after"}));

  // Retain Handling 2 replays nothing: a message stored before still
  // comes live.
  FakeLink& n = connect("n");
  const MessagePtr unseen = retained("unseen");
  SubscribeOptions never;
  never.retain_handling = 2;
  EXPECT_TRUE(subscribe(n, "r/#", never).empty());
  broker().on_remote_publish(unseen, now_);
  EXPECT_EQ(payloads(publishes(n)), (Strings{"unseen"}));
}

}  // namespace
}  // namespace midge::broker
