"""MQTT 5 features: properties, message expiry, topic aliases, subscription identifiers,
no-local, shared subscriptions, maximum packet size, request/response, receive maximum."""
import time

import pytest
from paho.mqtt.subscribeoptions import SubscribeOptions

import mqttraw as m
from conftest import V311, V5, props, PacketTypes, wait_until


def test_properties_passed_through(broker, connected):
    b = broker()
    s = connected(b.port, V5, "s")
    s.subscribe("pp/t", 1)
    pub = connected(b.port, V5, "p")
    pub.publish("pp/t", "héllo".encode(), 1, properties=props(
        PacketTypes.PUBLISH, UserProperty=[("a", "1"), ("a", "2"), ("b", "x")],
        ContentType="text/plain; charset=utf-8", PayloadFormatIndicator=1,
        ResponseTopic="pp/reply", CorrelationData=b"\x00corr\xff"))
    (msg,) = s.wait_messages(1)
    p = msg.properties
    assert p.UserProperty == [("a", "1"), ("a", "2"), ("b", "x")]  # order kept [MQTT-3.3.2-18]
    assert p.ContentType == "text/plain; charset=utf-8"
    assert p.PayloadFormatIndicator == 1
    assert p.ResponseTopic == "pp/reply"
    assert p.CorrelationData == b"\x00corr\xff"


def test_request_response_pattern(broker, connected):
    b = broker()
    responder = connected(b.port, V5, "responder")
    responder.subscribe("svc/req", 1)
    requester = connected(b.port, V5, "requester")
    requester.subscribe("svc/resp/requester", 1)
    requester.publish("svc/req", b"ping", 1, properties=props(
        PacketTypes.PUBLISH, ResponseTopic="svc/resp/requester", CorrelationData=b"42"))
    (req,) = responder.wait_messages(1)
    responder.publish(req.properties.ResponseTopic, b"pong", 1, properties=props(
        PacketTypes.PUBLISH, CorrelationData=req.properties.CorrelationData))
    (resp,) = requester.wait_messages(1)
    assert resp.payload == b"pong" and resp.properties.CorrelationData == b"42"


def test_response_information_only_if_requested(broker, raw):
    """Response Information only if requested [MQTT-3.1.2-28] (absent by default too)."""
    b = broker()
    for i, plist in enumerate(([(m.P_REQUEST_RESPONSE_INFO, 0)], [])):
        ack = raw(b.port, 5).connect("rri%d" % i, properties=plist)
        assert ack.rc == 0 and ack.prop(m.P_RESPONSE_INFO) is None


@pytest.mark.midge_only
def test_response_information_is_a_usable_topic_base(broker, raw, connected):
    """Midge answers a request with "midge/response/<client id>", a topic the client can use
    for responses (MQTT 5.0 section 4.10.2). Mosquitto 2.0.11 sends no Response Information
    (the spec allows that)."""
    b = broker()
    c = raw(b.port, 5)
    ack = c.connect("rri1", properties=[(m.P_REQUEST_RESPONSE_INFO, 1)])
    assert ack.rc == 0 and ack.prop(m.P_RESPONSE_INFO) == "midge/response/rri1"
    assert c.subscribe([("midge/response/rri1/#", m.sub_options(0))]).codes == [0]
    connected(b.port, V5, "responder").publish("midge/response/rri1/x", b"pong")
    p = c.recv_type(m.PUBLISH)
    assert (p.topic, p.payload) == ("midge/response/rri1/x", b"pong")


def test_message_expiry_remaining_time(broker, connected):
    """The forwarded Message Expiry Interval is the received value minus the time the message
    waited in the server [MQTT-3.3.2-6]."""
    b = broker()
    pub = connected(b.port, V5, "p")
    pub.publish("mx/t", b"r", 1, retain=True,
                properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=10))
    s0 = connected(b.port, V5, "s0")
    s0.subscribe("mx/t", 1)
    (fresh,) = s0.wait_messages(1)
    assert fresh.properties.MessageExpiryInterval in (9, 10)
    time.sleep(2.1)  # let the stored message age
    s = connected(b.port, V5, "s")
    s.subscribe("mx/t", 1)
    (msg,) = s.wait_messages(1)
    assert 1 <= msg.properties.MessageExpiryInterval <= 8


def test_expired_messages_never_delivered(broker, raw, connected):
    b = broker()
    sess = [(m.P_SESSION_EXPIRY, 60)]
    c = raw(b.port, 5)
    c.connect("mxq", clean=False, properties=sess)
    c.subscribe([("mxq/t", 1)])
    c.send(m.disconnect(5))
    c.wait_closed(2)
    pub = connected(b.port, V5, "p")
    pub.publish("mxq/t", b"short", 1, properties=props(PacketTypes.PUBLISH,
                                                          MessageExpiryInterval=1))
    pub.publish("mxq/t", b"long", 1, properties=props(PacketTypes.PUBLISH,
                                                         MessageExpiryInterval=100))
    pub.publish("mxq/t", b"forever", 1)
    pub.publish("mxr/t", b"retained-short", 1, retain=True,
                properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=1))
    time.sleep(2.1)  # both short-lived messages expire while waiting
    c = raw(b.port, 5)
    assert c.connect("mxq", clean=False, properties=sess).session_present
    got = []
    for _ in range(2):
        p = c.recv_type(m.PUBLISH)
        got.append(p.payload)
        c.send(m.puback(p.mid, 5))
        if p.payload == b"long":
            assert 90 <= p.prop(m.P_MESSAGE_EXPIRY) <= 99
        else:
            assert p.prop(m.P_MESSAGE_EXPIRY) is None
    assert got == [b"long", b"forever"]
    assert c.try_recv(0.3) is None
    late = connected(b.port, V5, "late")
    late.subscribe("mxr/t", 1)
    late.expect_nothing(0.3)  # the expired retained message is gone too


def test_topic_alias_client_to_broker(broker, raw, connected):
    b = broker()
    s = connected(b.port, V311, "s")
    s.subscribe("al/#", 0)
    c = raw(b.port, 5)
    ack = c.connect("alias")
    maximum = ack.prop(m.P_TOPIC_ALIAS_MAXIMUM, 0)
    assert maximum >= 1
    c.publish("al/long/topic/name", b"1", properties=[(m.P_TOPIC_ALIAS, 1)])
    c.publish("", b"2", properties=[(m.P_TOPIC_ALIAS, 1)])  # alias only
    c.publish("al/other", b"3", properties=[(m.P_TOPIC_ALIAS, 1)])  # remap
    c.publish("", b"4", properties=[(m.P_TOPIC_ALIAS, 1)])
    msgs = s.wait_messages(4)
    assert [(x.topic, x.payload) for x in msgs] == [
        ("al/long/topic/name", b"1"), ("al/long/topic/name", b"2"),
        ("al/other", b"3"), ("al/other", b"4")]


@pytest.mark.parametrize("alias", [0, "over"])
def test_topic_alias_invalid(broker, raw, alias):
    """Above Topic Alias Maximum -> DISCONNECT 0x94 (reason code table, 3.14.2.1); alias 0 is
    forbidden too [MQTT-3.3.2-8]: 0x94, or 0x81/0x82 (Mosquitto says 0x81)."""
    b = broker()
    c = raw(b.port, 5)
    maximum = c.connect("badalias").prop(m.P_TOPIC_ALIAS_MAXIMUM, 0)
    value = maximum + 1 if alias == "over" else 0
    c.publish("al/t", b"x", properties=[(m.P_TOPIC_ALIAS, value)])
    pkts = [(p.type, p.rc) for p in c.wait_closed(3)]
    if alias == 0:
        assert pkts in ([(m.DISCONNECT, 0x94)], [(m.DISCONNECT, 0x81)], [(m.DISCONNECT, 0x82)])
    else:
        assert pkts == [(m.DISCONNECT, 0x94)]


def test_topic_alias_unknown_is_protocol_error(broker, raw):
    """An empty topic with an alias never mapped is a Protocol Error (3.3.2.3.4)."""
    b = broker()
    c = raw(b.port, 5)
    c.connect("unmapped")
    c.publish("", b"x", properties=[(m.P_TOPIC_ALIAS, 1)])
    pkts = c.wait_closed(3)
    assert [(p.type, p.rc) for p in pkts] in ([], [(m.DISCONNECT, 0x82)])


def test_no_topic_alias_toward_client_that_did_not_allow(broker, raw, connected):
    b = broker()
    c = raw(b.port, 5)
    c.connect("noalias")
    c.subscribe([("na/t", 0)])
    pub = connected(b.port, V311, "p")
    for i in range(3):
        pub.publish("na/t", b"%d" % i, qos=1)
    for i in range(3):
        p = c.recv_type(m.PUBLISH)
        assert p.topic == "na/t" and p.prop(m.P_TOPIC_ALIAS) is None  # [MQTT-3.3.2-10]


@pytest.mark.midge_only
def test_topic_alias_broker_to_client(broker, raw, connected):
    """Midge uses topic aliases toward clients that allow them (Topic Alias Maximum > 0);
    Mosquitto 2.0.11 never does (allowed by the spec, a Midge feature)."""
    b = broker()
    c = raw(b.port, 5)
    c.connect("wantalias", properties=[(m.P_TOPIC_ALIAS_MAXIMUM, 2)])
    c.subscribe([("ta/#", 0)])
    pub = connected(b.port, V311, "p")
    seq = ["ta/aaaaaaaaaaaaaaaa/1", "ta/aaaaaaaaaaaaaaaa/1", "ta/bbbbbbbbbbbbbbbb/2",
           "ta/aaaaaaaaaaaaaaaa/1", "ta/cccccccccccccccc/3", "ta/cccccccccccccccc/3",
           "ta/bbbbbbbbbbbbbbbb/2"]
    for i, t in enumerate(seq):
        pub.publish(t, b"%d" % i, qos=1)
    aliases = {}
    resolved = []
    used_alias_only = 0
    for i in range(len(seq)):
        p = c.recv_type(m.PUBLISH)
        alias = p.prop(m.P_TOPIC_ALIAS)
        if alias is not None:
            assert 1 <= alias <= 2  # never above the client's maximum [MQTT-3.3.2-10]
            if p.topic:
                aliases[alias] = p.topic
            else:
                used_alias_only += 1
                assert alias in aliases
        resolved.append(p.topic or aliases[alias])
        assert p.payload == b"%d" % i
    assert resolved == seq
    assert used_alias_only >= 1


def test_subscription_identifiers(broker, connected):
    b = broker()
    s = connected(b.port, V5, "s")
    s.subscribe("sid/a/#", 1, properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=5))
    s.subscribe("sid/b", 1, properties=props(PacketTypes.SUBSCRIBE,
                                             SubscriptionIdentifier=268435455))
    s.subscribe("sid/c", 1)
    pub = connected(b.port, V311, "p")
    for t in ("sid/a/x", "sid/b", "sid/c"):
        pub.publish(t, b"", qos=1)
    msgs = {x.topic: x for x in s.wait_messages(3)}
    assert msgs["sid/a/x"].properties.SubscriptionIdentifier == [5]
    assert msgs["sid/b"].properties.SubscriptionIdentifier == [268435455]
    assert not hasattr(msgs["sid/c"].properties, "SubscriptionIdentifier")


def test_no_local(broker, connected):
    b = broker()
    c = connected(b.port, V5, "nl")
    c.subscribe("nl/t", options=SubscribeOptions(qos=1, noLocal=True))
    c.subscribe("nl/all", options=SubscribeOptions(qos=1, noLocal=False))
    other = connected(b.port, V5, "other")
    c.publish("nl/t", b"mine", qos=1)
    c.publish("nl/all", b"mine-too", qos=1)
    other.publish("nl/t", b"theirs", qos=1)
    msgs = c.wait_messages(2)
    c.expect_nothing(0.3)
    assert sorted(x.payload for x in c.messages()) == [b"mine-too", b"theirs"]
    assert len(msgs) == 2


def test_shared_subscriptions(broker, connected):
    b = broker()
    members = [connected(b.port, V5, "g1"), connected(b.port, V5, "g2"),
               connected(b.port, V311, "g3")]  # 3.1.1 clients may join too
    for mem in members:
        mem.subscribe("$share/grp/sh/t", 1)
    solo = connected(b.port, V311, "solo")
    solo.subscribe("$share/other/sh/+", 1)
    plain = connected(b.port, V5, "plain")
    plain.subscribe("sh/t", 1)
    pub = connected(b.port, V5, "p")
    n = 30
    for i in range(n):
        pub.publish("sh/t", b"%d" % i, qos=1)
    assert len(plain.wait_messages(n)) == n
    assert len(solo.wait_messages(n)) == n  # each group gets every message once
    wait_until(lambda: sum(len(x.messages()) for x in members) >= n,
               what="group to receive %d" % n)
    for x in members:
        x.expect_nothing(0.1)
    got = sorted(int(msg.payload) for x in members for msg in x.messages())
    assert got == list(range(n))  # split across the group, each delivered once
    assert all(x.messages() for x in members)  # every member got a share
    for x in members:
        assert all(msg.topic == "sh/t" for msg in x.messages())


def test_shared_subscription_unsubscribe(broker, connected):
    b = broker()
    a = connected(b.port, V5, "a")
    z = connected(b.port, V5, "z")
    a.subscribe("$share/g/su", 0)
    z.subscribe("$share/g/su", 0)
    a.unsubscribe("$share/g/su")
    pub = connected(b.port, V5, "p")
    for i in range(5):
        pub.publish("su", b"%d" % i, qos=1)
    assert len(z.wait_messages(5)) == 5
    a.expect_nothing(0.2)


def test_client_maximum_packet_size(broker, raw, connected):
    """The broker does not send a packet bigger than the client's Maximum Packet Size; it
    drops that message for the client [MQTT-3.1.2-25]."""
    b = broker()
    c = raw(b.port, 5)
    c.connect("small", properties=[(m.P_MAXIMUM_PACKET_SIZE, 64)])
    c.subscribe([("mps/t", 1)])
    pub = connected(b.port, V311, "p")
    pub.publish("mps/t", b"x" * 100, qos=1)
    pub.publish("mps/t", b"small", qos=1)
    p = c.recv_type(m.PUBLISH)
    assert p.payload == b"small" and len(p.raw) <= 64
    c.send(m.puback(p.mid, 5))
    assert c.try_recv(0.3) is None


def test_broker_maximum_packet_size(broker, raw, connected):
    b = broker(["max_packet_size 200"])
    watcher = connected(b.port, V311, "w")
    watcher.subscribe("mps/#", 0)
    c = raw(b.port, 5)
    ack = c.connect("big")
    assert ack.prop(m.P_MAXIMUM_PACKET_SIZE) == 200  # advertised in CONNACK
    c.publish("mps/ok", b"y" * 100)
    c.publish("mps/big", b"x" * 300)
    assert [(p.type, p.rc) for p in c.wait_closed(3)] == [(m.DISCONNECT, 0x95)]
    msgs = watcher.wait_messages(1)
    watcher.expect_nothing(0.2)
    assert [x.topic for x in msgs] == ["mps/ok"]


def test_broker_receive_maximum_advertised(broker, raw):
    b = broker(["max_inflight_messages 3"])
    c = raw(b.port, 5)
    assert c.connect("rmadv").prop(m.P_RECEIVE_MAXIMUM) == 3


@pytest.mark.midge_only
def test_client_exceeding_receive_maximum_disconnected(broker, raw):
    """[MQTT-3.3.4-9] / section 3.3.4: more unacknowledged QoS>0 PUBLISHes than the server's
    Receive Maximum -> DISCONNECT 0x93. Mosquitto 2.0.11 answers PUBREC 0x97 instead."""
    b = broker(["max_inflight_messages 2"])
    c = raw(b.port, 5)
    assert c.connect("greedy").prop(m.P_RECEIVE_MAXIMUM) == 2
    for mid in (1, 2, 3):
        c.publish("rmx", b"x", qos=2, mid=mid)  # no PUBREL: all stay unacknowledged
    pkts = c.wait_closed(3)
    assert [p.type for p in pkts] == [m.PUBREC, m.PUBREC, m.DISCONNECT]
    assert pkts[-1].rc == 0x93


def test_v5_no_reason_string_when_problem_information_off(broker, raw):
    """With Request Problem Information 0 the server sends no Reason String and no User
    Property on PUBACK, PUBREC, SUBACK or UNSUBACK [MQTT-3.1.2-29]. A PUBACK with no
    subscribers may say 0x10 No matching subscribers; never an error."""
    b = broker()
    c = raw(b.port, 5)
    c.connect("rs", properties=[(m.P_REQUEST_PROBLEM_INFO, 0)])
    acks = [c.publish_acked("nobody/here", b"x", qos=1, mid=1),
            c.publish_acked("nobody/here", b"x", qos=2, mid=2),
            c.subscribe([("rs/+", m.sub_options(1))], mid=3)]
    c.send(m.unsubscribe(4, ["never/subscribed"], 5))
    acks.append(c.recv_type(m.UNSUBACK))
    assert [a.type for a in acks] == [m.PUBACK, m.PUBREC, m.SUBACK, m.UNSUBACK]
    assert acks[0].rc in (0x00, 0x10) and acks[1].rc in (0x00, 0x10)
    for a in acks:
        assert a.prop(m.P_REASON_STRING) is None and a.prop(m.P_USER_PROPERTY) is None, a.props
