"""Byte for byte what Mosquitto 2.0 sends, where the MQTT specification leaves the choice to the
server (issue 14; docs/compatibility.md names the Mosquitto test behind each case). Each test
compares the exact bytes, so `MIDGE_TEST_BROKER=mosquitto` checks the expectation itself."""
import re
import time

import pytest

import mqttraw as m


def connected(raw, port, cid, proto=5):
    c = raw(port, proto)
    ack = c.connect(cid)
    assert ack.rc == 0
    return c


def test_v5_connack_properties_in_mosquittos_order(broker, raw):
    """Cause A: Topic Alias Maximum (10), then Receive Maximum (20); no Maximum Packet Size,
    which is announced only when max_packet_size is set (2.2.2.2: any order is valid)."""
    b = broker()
    c = raw(b.port, 5)
    c.send(m.connect("order", proto=5))
    assert c.recv_raw() == bytes.fromhex("20 09 00 00 06 22 00 0a 21 00 14")


def test_v5_connack_with_max_packet_size(broker, raw):
    b = broker(["max_packet_size 1000"])
    c = raw(b.port, 5)
    c.send(m.connect("order", proto=5))
    assert c.recv_raw() == bytes.fromhex("20 0e 00 00 0b 22 00 0a 27 00 00 03 e8 21 00 14")


@pytest.mark.parametrize("subscribed", [False, True])
def test_v5_puback_says_no_matching_subscribers(broker, raw, subscribed):
    """Cause B: PUBACK 0x10 when no subscription matches (3.4.2.1 MAY); plain PUBACK else."""
    b = broker()
    c = connected(raw, b.port, "nomatch")
    if subscribed:
        other = connected(raw, b.port, "listener")
        other.subscribe([("nomatch/t", 0)])
    c.send(m.publish("nomatch/t", b"x", qos=1, mid=19, proto=5))
    expected = "40 02 00 13" if subscribed else "40 03 00 13 10"
    assert c.recv_raw() == bytes.fromhex(expected)


def test_v311_puback_without_subscribers_is_plain(broker, raw):
    b = broker()
    c = connected(raw, b.port, "nomatch3", proto=4)
    c.send(m.publish("nomatch/t", b"x", qos=1, mid=19))
    assert c.recv_raw() == bytes.fromhex("40 02 00 13")


def test_qos2_pubrec_comes_before_the_delivery_to_the_publisher_itself(broker, raw):
    """Cause J: a client subscribed to its own topic reads the PUBREC first."""
    b = broker()
    c = connected(raw, b.port, "self", proto=4)
    c.subscribe([("self/t", 2)])
    c.send(m.publish("self/t", b"x", qos=2, mid=11))
    assert c.recv_raw() == bytes.fromhex("50 02 00 0b")


@pytest.mark.parametrize("proto", [4, 5])
def test_pubrel_for_an_unknown_id_gets_a_plain_pubcomp(broker, raw, proto):
    """Cause K: a PUBREL resent after its PUBCOMP was lost is answered with Success."""
    b = broker()
    c = connected(raw, b.port, "rel", proto=proto)
    c.send(m.pubrel(1, proto=proto))
    assert c.recv_raw() == bytes.fromhex("70 02 00 01")


@pytest.mark.midge_only
def test_server_disconnect_carries_no_reason_string(broker, raw):
    """Cause C: Mosquitto's DISCONNECT is the reason code alone (e0 01 XX); Midge's reason goes
    to its log. (Midge only: what Mosquitto 2.0.11 does on a second CONNECT is not this test's
    subject.)"""
    b = broker()
    c = connected(raw, b.port, "twice")
    c.send(m.connect("twice", proto=5))
    assert c.recv_raw() == bytes.fromhex("e0 01 82")


@pytest.mark.parametrize("proto,expected", [(4, "20 02 00 05"), (5, "20 03 00 95 00")])
def test_will_over_message_size_limit_is_refused(broker, raw, proto, expected):
    """Cause M: the will is a message like any other; one over message_size_limit is refused at
    CONNECT (v5: 0x95 Packet too large; 3.1.1: return code 5, as Mosquitto)."""
    b = broker(["message_size_limit 1"])
    c = raw(b.port, proto)
    c.send(m.connect("will", proto=proto, will={"topic": "w", "payload": b"12"}))
    assert c.recv_raw() == bytes.fromhex(expected)
    ok = raw(b.port, proto)
    ok.send(m.connect("will1", proto=proto, will={"topic": "w", "payload": b"1"}))
    assert ok.recv_raw()[:4] == bytes.fromhex("20 02 00 00" if proto == 4 else "20 09 00 00")


@pytest.mark.parametrize("will_topic", ["", "a/+"])
def test_v5_connect_with_a_bad_will_is_closed_without_connack(broker, raw, will_topic):
    """Cause D: a CONNECT whose will topic is empty or a filter is closed at once, with no
    CONNACK (4.13.1: it MAY send one), as Mosquitto does."""
    b = broker()
    c = raw(b.port, 5)
    c.send(m.connect("badwill", proto=5, will={"topic": will_topic, "payload": b"x"}))
    assert c.wait_closed(5) == []


def test_assigned_client_identifier_has_mosquittos_form(broker, raw):
    """Cause E: `auto-` and a UUID's form in upper-case hex (41 bytes), distinct each time."""
    b = broker()
    ids = set()
    for _ in range(3):
        c = raw(b.port, 5)
        ack = c.connect("")
        assert ack.rc == 0
        ids.add(ack.prop(0x12))
    assert len(ids) == 3, ids
    for cid in ids:
        assert re.fullmatch(r"auto-[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}", cid), cid


@pytest.mark.parametrize("proto,rc", [(4, 2), (5, 0x80)])
def test_an_empty_client_id_refused_as_mosquitto_does(broker, raw, proto, rc):
    """Cause E, second half: with allow_zero_length_clientid false, 3.1.1 gets return code 2
    (identifier rejected) and 5.0 gets 0x80 (0x85 is allowed too, 3.1.3-8; Mosquitto sends
    0x80), then the connection closes."""
    b = broker(["allow_zero_length_clientid false"])
    c = raw(b.port, proto)
    assert c.connect("").rc == rc
    assert c.wait_closed(5) == []


def test_forwarded_properties_keep_the_publishers_order(broker, raw):
    """Cause P: a message goes out with its properties as the publisher sent them (User
    Properties interleaved with the others), after the subscription identifier and before the
    Message Expiry Interval (2.2.2.2 leaves the order free but for User Properties among
    themselves [MQTT-3.3.2-18])."""
    b = broker()
    sub = connected(raw, b.port, "order-sub")
    sub.send(m.subscribe(1, [("order/t", 0)], proto=5, properties=[(0x0B, 7)]))
    assert sub.recv_raw()[0] == 0x90
    pub = connected(raw, b.port, "order-pub")
    sent = [(0x26, ("key1", "value1")), (0x08, "response/topic"), (0x09, b"data"), (0x01, 1),
            (0x03, "application/test"), (0x26, ("key2", "value2"))]
    pub.send(m.publish("order/t", b"hello", qos=0, proto=5, properties=sent + [(0x02, 300)]))
    got = sub.recv_raw()
    # topic, then the properties: subscription id, the publisher's six, expiry
    body = got[2:]
    props_at = 2 + len("order/t")
    # the remaining expiry: 300, or 299 if a second boundary passed on the way
    expected = [m.props([(0x0B, 7)] + sent + [(0x02, left)]) for left in (300, 299)]
    assert body[props_at:props_at + len(expected[0])] in expected, got.hex(" ")


@pytest.mark.parametrize("topic,reason", [("$SYS/broker/uptime", 0x87), ("$SYS/broker/connection/me", 0x87),
                                          ("$SYS/broker/connection//state", 0x10),
                                          ("$SYS/broker/connection/me/state", 0x10),
                                          ("$share/group/topic", 0x87)])
def test_publishes_to_reserved_topics(broker, raw, topic, reason):
    """Cause L: $SYS is the broker's but for bridges' $SYS/broker/connection/NAME/state, and
    $share/... names subscriptions, not topics (4.7.2 leaves $ topics to the server)."""
    b = broker()
    c = connected(raw, b.port, "dollar")
    c.send(m.publish(topic, b"message", qos=1, mid=5, proto=5))
    assert c.recv_raw() == bytes.fromhex("40 03 00 05 %02x" % reason)


def test_bridge_state_topic_reaches_its_subscribers(broker, raw):
    b = broker()
    sub = connected(raw, b.port, "state-sub")
    sub.subscribe([("$SYS/broker/connection/+/state", 0)])
    pub = connected(raw, b.port, "bridge")
    pub.send(m.publish("$SYS/broker/connection/bridge1/state", b"1", qos=1, mid=2, proto=5))
    assert pub.recv_raw() == bytes.fromhex("40 02 00 02")
    got = sub.recv()
    assert got.topic == "$SYS/broker/connection/bridge1/state" and got.payload == b"1"


@pytest.mark.parametrize("proto", [4, 5])
def test_upgrade_outgoing_qos_delivers_at_the_granted_qos(broker, raw, proto):
    """Cause Q: with Mosquitto's upgrade_outgoing_qos, a QoS 0 message goes to a QoS 1
    subscription at QoS 1, retained or live (non-standard on purpose: [MQTT-3.8.4-8])."""
    b = broker(["upgrade_outgoing_qos true"])
    c = connected(raw, b.port, "upgrade", proto=proto)
    c.send(m.publish("retain/qos0/test", b"retained message", retain=True, proto=proto))
    assert c.subscribe([("retain/qos0/test", 1)], mid=16).codes == [1]
    assert c.recv_raw() == m.publish("retain/qos0/test", b"retained message", qos=1, retain=True, mid=1,
                                     proto=proto)
    c.send(m.puback(1, proto=proto))
    c.send(m.publish("retain/qos0/test", b"live", proto=proto))
    assert c.recv_raw() == m.publish("retain/qos0/test", b"live", qos=1, mid=2, proto=proto)


def test_without_upgrade_outgoing_qos_the_lower_qos_wins(broker, raw):
    b = broker()
    c = connected(raw, b.port, "no-upgrade", proto=4)
    assert c.subscribe([("q/t", 1)], mid=3).codes == [1]
    c.send(m.publish("q/t", b"live"))
    assert c.recv_raw() == m.publish("q/t", b"live")


def offline_subscriber(raw, port, cid, proto=5):
    """A session that outlives its connection, subscribed to `cid`/# at QoS 1, now offline."""
    c = raw(port, proto, timeout=10)
    expiry = [(m.P_SESSION_EXPIRY, 60)] if proto == 5 else None
    assert c.connect(cid, clean=False, properties=expiry).rc == 0
    c.subscribe([(cid + "/#", 1)])
    c.send(m.disconnect(proto))
    c.close()
    return expiry


def test_a_queued_message_that_expires_has_used_its_packet_id(broker, raw):
    """Cause F (02-subpub-qos1-message-expiry.py): ids are given when a message is queued for an
    offline session; the one that expires there used id 1, the next goes out with id 2."""
    b = broker()
    expiry = offline_subscriber(raw, b.port, "qexp")
    p = connected(raw, b.port, "qexp-pub")
    p.publish_acked("qexp/t", b"short", mid=1, properties=[(m.P_MESSAGE_EXPIRY, 1)])
    p.publish_acked("qexp/t", b"long", mid=2, properties=[(m.P_MESSAGE_EXPIRY, 60)])
    time.sleep(2.2)  # the first message's expiry (Mosquitto counts whole seconds): time has to pass
    c = raw(b.port, 5, timeout=10)
    assert c.connect("qexp", clean=False, properties=expiry).session_present
    got = c.recv_type(m.PUBLISH)
    assert (got.payload, got.mid) == (b"long", 2)


LONG_QUEUE = 70000


def publish_many(c, topic, count):
    """QoS 1 messages numbered 0..count-1, sent in batches, each batch's PUBACKs read."""
    batch = 1000
    for start in range(0, count, batch):
        n = min(batch, count - start)
        c.send(b"".join(m.publish(topic, b"%d" % i, qos=1, mid=i % 65535 + 1)
                        for i in range(start, start + n)))
        for _ in range(n):
            c.recv_type(m.PUBACK, timeout=30)


def read_all(c, count, hold_first):
    """Reads `count` QoS 1 messages, acknowledging each window once read; asserts that no
    PUBLISH uses an id still unacknowledged. With hold_first, the first message stays
    unacknowledged to the end (its id stays busy while the others go round the id space)."""
    unacked, held, n = set(), None, 0
    while n < count:
        p = c.recv_type(m.PUBLISH, timeout=30)
        assert 1 <= p.mid <= 65535 and p.mid not in unacked and p.mid != held, (n, p.mid)
        assert p.payload == b"%d" % n, (n, p.payload)
        if hold_first and held is None:
            held = p.mid
        else:
            unacked.add(p.mid)
        n += 1
        if len(unacked) >= 19 or n == count or not c.buf:
            c.send(b"".join(m.puback(mid) for mid in unacked))
            unacked.clear()
    return held


@pytest.mark.parametrize("hold_first", [
    False,
    pytest.param(True, marks=pytest.mark.midge_only(
        reason="Mosquitto does not bound ids in use: id 1 comes round again while held")),
])
def test_a_queue_longer_than_the_id_space_delivers_everything_with_free_ids(broker, raw, hold_first):
    """Cause F: 70,000 QoS 1 messages queued for an offline session. The first 65,535 get their
    ids in the queue; the rest get theirs when sent, each one free (not held by a message
    queued or in flight)."""
    b = broker(["max_queued_messages 100000"])
    offline_subscriber(raw, b.port, "longq", proto=4)
    p = connected(raw, b.port, "longq-pub", proto=4)
    publish_many(p, "longq/t", LONG_QUEUE)
    c = raw(b.port, 4, timeout=30)
    assert c.connect("longq", clean=False).session_present
    held = read_all(c, LONG_QUEUE, hold_first)
    if held is not None:
        c.send(m.puback(held))
    c.send(m.packet(0xC0, b""))  # PINGREQ: nothing more comes before its answer
    assert c.recv().type == m.PINGRESP


def test_verbose_log_shows_each_packet_as_mosquitto(broker, raw):
    """-v (log_type all): the debug line of each packet received and sent, in Mosquitto's words,
    which administrators read to see what their clients do; a PUBLISH refused says why."""
    b = broker(["message_size_limit 10"], verbose=True)
    sub = raw(b.port, 4)
    assert sub.connect("dbg-sub").rc == 0
    assert sub.subscribe([("dbg/#", 1)], mid=7).codes == [1]
    pub = raw(b.port, 4)
    assert pub.connect("dbg-pub", will=dict(topic="dbg/will", payload=b"gone", qos=1)).rc == 0
    pub.publish("dbg/q2", b"hello", qos=2, mid=9)
    pub.recv_type(m.PUBREC)
    pub.send(m.pubrel(9))
    pub.recv_type(m.PUBCOMP)
    pub.publish("$SYS/dbg", b"x")  # no client may publish there
    pub.publish("dbg/big", b"y" * 11)  # over message_size_limit
    got = sub.recv_type(m.PUBLISH)
    sub.send(m.puback(got.mid))
    sub.send(m.PINGREQ_BYTES)
    sub.recv_type(m.PINGRESP)
    sub.send(m.unsubscribe(8, ["dbg/#"]))
    sub.recv_type(m.UNSUBACK)
    pub.send(m.disconnect())
    pub.wait_closed(5)
    expected = [
        "No will message specified.",
        "Sending CONNACK to dbg-sub (0, 0)",
        "Received SUBSCRIBE from dbg-sub",
        "\tdbg/# (QoS 1)",
        "Sending SUBACK to dbg-sub",
        "Will message specified (4 bytes) (r0, q1).",
        "\tdbg/will",
        "Sending CONNACK to dbg-pub (0, 0)",
        "Received PUBLISH from dbg-pub (d0, q2, r0, m9, 'dbg/q2', ... (5 bytes))",
        "Sending PUBREC to dbg-pub (m9, rc0)",
        "Received PUBREL from dbg-pub (Mid: 9)",
        "Sending PUBCOMP to dbg-pub (m9)",
        "Denied PUBLISH from dbg-pub (d0, q0, r0, m0, '$SYS/dbg', ... (1 bytes))",
        "Dropped too large PUBLISH from dbg-pub (d0, q0, r0, m0, 'dbg/big', ... (11 bytes))",
        "Sending PUBLISH to dbg-sub (d0, q1, r0, m%d, 'dbg/q2', ... (5 bytes))" % got.mid,
        "Received PUBACK from dbg-sub (Mid: %d, RC:0)" % got.mid,
        "Received PINGREQ from dbg-sub",
        "Sending PINGRESP to dbg-sub",
        "Received UNSUBSCRIBE from dbg-sub",
        "\tdbg/#",
        "Sending UNSUBACK to dbg-sub",
        "Received DISCONNECT from dbg-pub",
    ]

    def lines():  # without the "TIMESTAMP: " prefix
        return [line.split(": ", 1)[1] for line in b.log_text().splitlines() if ": " in line]

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and expected[-1] not in lines():
        time.sleep(0.05)
    seen = lines()
    assert [line for line in expected if line not in seen] == []
    # each client's lines in the order its packets went (the two clients' lines may interleave)
    for who in ("dbg-sub", "dbg-pub"):
        mine = [line for line in expected if who in line]
        assert [line for line in seen if line in mine] == mine, who
