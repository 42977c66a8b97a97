"""QoS 0/1/2 in both directions, downgrade, exact flows, order, overlapping subscriptions."""
import pytest

import mqttraw as m
from conftest import V31, V311, V5


@pytest.mark.parametrize("version", [V31, V311, V5])
def test_qos_matrix_downgrade(broker, connected, version):
    """Delivered QoS = min(publish QoS, subscription QoS) [MQTT-3.8.4-6 / 3.3.5]."""
    b = broker()
    subs = {}
    for sq in (0, 1, 2):
        subs[sq] = connected(b.port, version, "sub%d" % sq)
        assert subs[sq].subscribe("q/t", sq) in ([sq], (sq,)) or \
            [int(getattr(x, "value", x)) for x in subs[sq].ev.subacks[1]] == [sq]
    pub = connected(b.port, version, "pub")
    for pq in (0, 1, 2):
        pub.publish("q/t", b"%d" % pq, qos=pq)
    for sq, c in subs.items():
        msgs = c.wait_messages(3)
        got = {int(mm.payload): mm.qos for mm in msgs}
        assert got == {pq: min(pq, sq) for pq in (0, 1, 2)}, (sq, got)


@pytest.mark.parametrize("proto", [4, 5])
def test_inbound_qos_flows_exact(broker, raw, proto):
    b = broker()
    s = raw(b.port, proto)
    s.connect("s")
    s.subscribe([("flow", 0)])
    p = raw(b.port, proto)
    p.connect("p")
    p.publish("flow", b"1", qos=1, mid=7)
    ack = p.recv_type(m.PUBACK)
    assert ack.mid == 7 and ack.rc == 0
    if proto == 4:
        assert ack.raw == b"\x40\x02\x00\x07"
    # QoS 2: PUBREC, then PUBCOMP after PUBREL; a duplicate before PUBREL is delivered once
    p.publish("flow", b"2", qos=2, mid=8)
    rec = p.recv_type(m.PUBREC)
    assert rec.mid == 8 and rec.rc == 0
    p.publish("flow", b"2", qos=2, mid=8, dup=True)
    rec2 = p.recv_type(m.PUBREC)
    assert rec2.mid == 8
    p.send(m.pubrel(8, proto))
    comp = p.recv_type(m.PUBCOMP)
    assert comp.mid == 8 and comp.rc == 0
    if proto == 4:
        assert rec.raw == b"\x50\x02\x00\x08" and comp.raw == b"\x70\x02\x00\x08"
    got = [s.recv_type(m.PUBLISH).payload for _ in range(2)]
    assert got == [b"1", b"2"]
    assert s.try_recv(0.3) is None  # exactly once


@pytest.mark.parametrize("proto", [4, 5])
def test_outbound_qos2_flow(broker, raw, connected, proto):
    b = broker()
    s = raw(b.port, proto)
    s.connect("s2")
    s.subscribe([("out2", 2)])
    pub = connected(b.port, V311, "p2")
    pub.publish("out2", b"x", qos=2)
    pkt = s.recv_type(m.PUBLISH)
    assert pkt.qos == 2 and pkt.mid and not pkt.dup and pkt.payload == b"x"
    s.send(m.pubrec(pkt.mid, proto))
    rel = s.recv_type(m.PUBREL)
    assert rel.mid == pkt.mid and rel.flags == 0x2  # [MQTT-3.6.1-1]
    s.send(m.pubcomp(pkt.mid, proto))
    assert s.try_recv(0.3) is None


def test_outbound_qos1_ids_distinct_and_nonzero(broker, raw, connected):
    b = broker()
    s = raw(b.port, 4)
    s.connect("ids")
    s.subscribe([("ids", 1)])
    pub = connected(b.port, V311, "pid")
    for i in range(10):
        pub.publish("ids", b"%d" % i, qos=1)
    pkts = [s.recv_type(m.PUBLISH) for _ in range(10)]
    mids = [p.mid for p in pkts]
    assert 0 not in mids
    assert len(set(mids)) == 10  # all in flight at once, so all distinct
    assert [p.payload for p in pkts] == [b"%d" % i for i in range(10)]
    for p in pkts:
        s.send(m.puback(p.mid))


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_order_preserved(broker, connected, qos):
    b = broker()
    sub = connected(b.port, V311, "ord-s")
    sub.subscribe("ord", qos)
    pub = connected(b.port, V5, "ord-p")
    infos = [pub.publish("ord", b"%d" % i, qos=qos, wait=False) for i in range(100)]
    if qos:
        # paho's wait_for_publish() returns silently on timeout: wait on our own ack events.
        pub.ev.wait_for(lambda: all(i.mid in pub.ev.published for i in infos), 10,
                        what="all 100 acks")
    msgs = sub.wait_messages(100, timeout=10)
    assert [int(mm.payload) for mm in msgs] == list(range(100))


def test_overlapping_subscriptions_v5_one_copy_or_max_qos(broker, raw, connected):
    """[MQTT-3.3.4-2]: delivery respects the maximum QoS of all matching subscriptions; the
    server MAY send one copy per subscription. Either way some copy has the highest QoS."""
    b = broker()
    s = raw(b.port, 5)
    s.connect("ov5")
    s.subscribe([("ov/+", 1), ("ov/#", 2)])
    pub = connected(b.port, V311, "ovp")
    pub.publish("ov/a", b"x", qos=2)
    copies = []
    while True:
        p = s.try_recv(0.3)
        if p is None:
            break
        if p.type == m.PUBLISH:
            copies.append(p)
            if p.qos == 1:
                s.send(m.puback(p.mid, 5))
            elif p.qos == 2:
                s.send(m.pubrec(p.mid, 5))
        elif p.type == m.PUBREL:
            s.send(m.pubcomp(p.mid, 5))
    assert 1 <= len(copies) <= 2
    assert max(c.qos for c in copies) == 2


@pytest.mark.midge_only
def test_overlapping_subscriptions_v311_one_copy_at_max_qos(broker, raw, connected):
    """[MQTT-3.3.5-1]: the server MUST deliver respecting the maximum QoS of all matching
    subscriptions. Mosquitto 2.0.11 sends one copy at the QoS of the first match (1)."""
    b = broker()
    s = raw(b.port, 4)
    s.connect("ov")
    s.subscribe([("ov/+", 1), ("ov/#", 2)])
    pub = connected(b.port, V311, "ovp")
    pub.publish("ov/a", b"x", qos=2)
    p = s.recv_type(m.PUBLISH)
    assert p.qos == 2
    s.send(m.pubrec(p.mid))
    s.recv_type(m.PUBREL)
    s.send(m.pubcomp(p.mid))
    assert s.try_recv(0.3) is None  # one copy (Midge's choice; the spec allows more)


@pytest.mark.midge_only
def test_overlapping_subscriptions_v5_one_copy_all_ids(broker, raw, connected):
    """Midge sends one copy carrying every matching Subscription Identifier [MQTT-3.3.4-3];
    Mosquitto 2.0.11 sends one copy per subscription (allowed by [MQTT-3.3.4-2])."""
    b = broker()
    s = raw(b.port, 5)
    s.connect("ids5")
    s.subscribe([("a/+", 1)], mid=1, properties=[(m.P_SUBSCRIPTION_ID, 7)])
    s.subscribe([("a/#", 2)], mid=2, properties=[(m.P_SUBSCRIPTION_ID, 9)])
    s.subscribe([("a/b", 0)], mid=3)
    pub = connected(b.port, V311, "idp")
    pub.publish("a/b", b"x", qos=2)
    p = s.recv_type(m.PUBLISH)
    assert p.qos == 2
    assert sorted(p.prop_all(m.P_SUBSCRIPTION_ID)) == [7, 9]
    s.send(m.pubrec(p.mid, 5))
    s.recv_type(m.PUBREL)
    s.send(m.pubcomp(p.mid, 5))
    assert s.try_recv(0.3) is None


def window_check(b, raw, connected, proto, cprops, strict):
    s = raw(b.port, proto)
    s.connect("win", properties=cprops)
    s.subscribe([("win", 1)])
    pub = connected(b.port, V311, "winp")
    for i in range(6):
        pub.publish("win", b"%d" % i, qos=1)
    first = [s.recv_type(m.PUBLISH) for _ in range(2)]
    assert s.try_recv(0.3) is None  # window of 2 full
    s.send(m.puback(first[0].mid, proto))
    third = s.recv_type(m.PUBLISH)
    assert [p.payload for p in first + [third]] == [b"0", b"1", b"2"]
    if strict:
        # one acknowledgement frees exactly one slot
        assert s.try_recv(0.3) is None


def test_max_inflight_messages_window(broker, raw, connected):
    """max_inflight_messages bounds unacknowledged outgoing QoS 1 messages per client."""
    window_check(broker(["max_inflight_messages 2"]), raw, connected, 4, None, strict=False)


def test_v5_client_receive_maximum_window(broker, raw, connected):
    """The broker stops at the client's Receive Maximum [MQTT-3.3.4-7]."""
    window_check(broker(), raw, connected, 5, [(m.P_RECEIVE_MAXIMUM, 2)], strict=False)


@pytest.mark.midge_only
@pytest.mark.parametrize("proto", [4, 5])
def test_inflight_window_never_exceeded_after_ack(broker, raw, connected, proto):
    """[MQTT-3.3.4-7]: never more unacknowledged PUBLISHes than Receive Maximum. Mosquitto
    2.0.11 sends two messages after a single PUBACK (3 in flight with a window of 2)."""
    if proto == 4:
        window_check(broker(["max_inflight_messages 2"]), raw, connected, 4, None, strict=True)
    else:
        window_check(broker(), raw, connected, 5, [(m.P_RECEIVE_MAXIMUM, 2)], strict=True)
