"""Sessions: clean session/start, session present, expiry, takeover, client ids, offline
queueing and redelivery."""
import time

import pytest

import mqttraw as m
from conftest import V311


def persistent_sub(raw, port, cid, flt, qos=1, proto=4, props=None):
    """Connects a persistent session subscribed to flt, then disconnects cleanly."""
    c = raw(port, proto)
    ack = c.connect(cid, clean=False, properties=props)
    assert ack.rc == 0
    c.subscribe([(flt, qos)])
    c.send(m.disconnect(proto))
    c.wait_closed(2)
    return ack


def drain_publishes(c, quiet=0.3):
    out = []
    while True:
        p = c.try_recv(quiet)
        if p is None:
            return out
        if p.type == m.PUBLISH:
            out.append(p)


@pytest.mark.parametrize("proto", [3, 4])
def test_clean_session_false_keeps_subscription_and_queue(broker, raw, connected, proto):
    b = broker()
    assert not persistent_sub(raw, b.port, "ps", "ps/t", 1, proto).session_present
    pub = connected(b.port, V311, "pub")
    pub.publish("ps/t", b"while-away", qos=1)
    c = raw(b.port, proto)
    ack = c.connect("ps", clean=False)
    if proto == 4:
        assert ack.session_present  # [MQTT-3.2.2-2]
    p = c.recv_type(m.PUBLISH)
    assert (p.topic, p.payload, p.qos) == ("ps/t", b"while-away", 1)
    c.send(m.puback(p.mid))
    pub.publish("ps/t", b"live", qos=1)  # the subscription itself survived
    assert c.recv_type(m.PUBLISH).payload == b"live"


def test_clean_session_true_discards_state(broker, raw, connected):
    b = broker()
    persistent_sub(raw, b.port, "cs", "cs/t")
    c = raw(b.port, 4)
    assert not c.connect("cs", clean=True).session_present  # [MQTT-3.2.2-1]
    c.send(m.disconnect())
    c.wait_closed(2)
    pub = connected(b.port, V311, "pub")
    pub.publish("cs/t", b"x", qos=1)
    c = raw(b.port, 4)
    assert not c.connect("cs", clean=False).session_present
    assert drain_publishes(c) == []


def test_v5_session_expiry_zero_ends_at_disconnect(broker, raw):
    b = broker()
    persistent_sub(raw, b.port, "se0", "se/t", proto=5)  # no Session Expiry: 0
    c = raw(b.port, 5)
    assert not c.connect("se0", clean=False).session_present


def test_v5_session_expiry_elapses(broker, raw, connected):
    b = broker()
    props = [(m.P_SESSION_EXPIRY, 1)]
    persistent_sub(raw, b.port, "se1", "se/t", proto=5, props=props)
    persistent_sub(raw, b.port, "se5", "se/t", proto=5, props=[(m.P_SESSION_EXPIRY, 30)])
    # Expiry cannot be observed without resuming (and so resetting) the session: just wait.
    time.sleep(2.2)
    c = raw(b.port, 5)
    assert not c.connect("se1", clean=False, properties=props).session_present
    c5 = raw(b.port, 5)
    assert c5.connect("se5", clean=False, properties=props).session_present


def test_v5_session_expiry_changed_on_disconnect(broker, raw):
    """DISCONNECT may set Session Expiry to 0, ending the session at once (3.14.2.2.2)."""
    b = broker()
    c = raw(b.port, 5)
    c.connect("sed", clean=False, properties=[(m.P_SESSION_EXPIRY, 60)])
    c.subscribe([("sed/t", 1)])
    c.send(m.disconnect(5, rc=0, properties=[(m.P_SESSION_EXPIRY, 0)]))
    c.wait_closed(2)
    c = raw(b.port, 5)
    assert not c.connect("sed", clean=False, properties=[(m.P_SESSION_EXPIRY, 60)]) \
        .session_present


def test_v5_clean_start_discards_session(broker, raw):
    b = broker()
    persistent_sub(raw, b.port, "csx", "x", proto=5, props=[(m.P_SESSION_EXPIRY, 60)])
    c = raw(b.port, 5)
    assert not c.connect("csx", clean=True, properties=[(m.P_SESSION_EXPIRY, 60)]) \
        .session_present


def test_persistent_client_expiration_option_accepted(broker, raw):
    """persistent_client_expiration (mosquitto units: h d w m y) is accepted, and a session
    well inside it still resumes. This is only a smoke test: the expiry itself takes at least
    an hour, so it is tested with a fake clock in tests/unit/broker/broker_test.cc
    (PersistentV311SessionExpiresWithPersistentClientExpiration)."""
    b = broker(["persistent_client_expiration 1h"])
    persistent_sub(raw, b.port, "pce", "pce/t")
    c = raw(b.port, 4)
    assert c.connect("pce", clean=False).session_present


@pytest.mark.parametrize("proto", [3, 4])
def test_takeover_v3_closes_old_connection(broker, raw, connected, proto):
    b = broker()
    old = raw(b.port, proto)
    old.connect("same")
    new = raw(b.port, proto)
    assert new.connect("same").rc == 0
    assert old.wait_closed(3) == []  # [MQTT-3.1.4-2]; nothing (no DISCONNECT in v3)
    new.subscribe([("tk/t", 0)])
    pub = connected(b.port, V311, "pub")
    pub.publish("tk/t", b"x", qos=1)
    assert new.recv_type(m.PUBLISH).payload == b"x"


def takeover_v5(b, raw):
    old = raw(b.port, 5)
    old.connect("same5", clean=False, properties=[(m.P_SESSION_EXPIRY, 60)])
    old.subscribe([("tk5/t", 1)])
    new = raw(b.port, 5)
    ack = new.connect("same5", clean=False, properties=[(m.P_SESSION_EXPIRY, 60)])
    assert ack.rc == 0 and ack.session_present
    return old.wait_closed(3)


def test_takeover_v5_closes_old_connection(broker, raw):
    pkts = takeover_v5(broker(), raw)
    assert all(p.type == m.DISCONNECT and p.rc == 0x8E for p in pkts)


@pytest.mark.midge_only
def test_takeover_v5_disconnect_0x8e(broker, raw):
    """[MQTT-3.1.4-3]: the existing client gets DISCONNECT 0x8E Session taken over.
    Mosquitto 2.0.11 closes the old connection without sending it."""
    pkts = takeover_v5(broker(), raw)
    assert [(p.type, p.rc) for p in pkts] == [(m.DISCONNECT, 0x8E)]


def test_v5_assigned_client_identifier(broker, raw):
    b = broker()
    ids = set()
    for _ in range(2):
        c = raw(b.port, 5)
        ack = c.connect("")
        assert ack.rc == 0
        cid = ack.prop(m.P_ASSIGNED_CLIENT_ID)  # [MQTT-3.2.2-16]
        assert cid
        ids.add(cid)
    assert len(ids) == 2


def test_v311_empty_client_id(broker, raw):
    b = broker()
    c = raw(b.port, 4)
    assert c.connect("", clean=True).rc == 0  # [MQTT-3.1.3-6]
    c2 = raw(b.port, 4)
    c2.send(m.connect("", clean=False))
    # [MQTT-3.1.3-8]: CONNACK 0x02 Identifier rejected, then close
    assert c2.recv_raw() == b"\x20\x02\x00\x02"
    c2.wait_closed(2)


def test_v31_empty_client_id_rejected(broker, raw):
    """MQTT 3.1 requires a 1-23 character client identifier."""
    b = broker()
    c = raw(b.port, 3)
    c.send(m.connect("", proto=3, clean=True))
    assert c.recv_raw() == b"\x20\x02\x00\x02"
    c.wait_closed(2)


@pytest.mark.parametrize("qos", [1, 2])
def test_offline_queue_bounded_by_max_queued_messages(broker, raw, connected, qos):
    b = broker(["max_queued_messages 5"])
    persistent_sub(raw, b.port, "mq", "mq/t", qos)
    pub = connected(b.port, V311, "pub")
    for i in range(12):
        pub.publish("mq/t", b"%d" % i, qos=qos)
    c = raw(b.port, 4)
    assert c.connect("mq", clean=False).session_present
    got = []
    while True:
        p = c.try_recv(0.4)
        if p is None:
            break
        if p.type == m.PUBLISH:
            got.append(p.payload)
            c.send(m.puback(p.mid) if qos == 1 else m.pubrec(p.mid))
        elif p.type == m.PUBREL:
            c.send(m.pubcomp(p.mid))
    # The oldest 5, in order; later ones dropped while the session was offline. With several
    # workers a message reaches the session's worker through a mailbox, so the last ones may
    # arrive after the reconnect: those are delivered live, and they are a tail of the run.
    assert got[:5] == [b"%d" % i for i in range(5)], got
    late = [int(x) for x in got[5:]]
    assert late == list(range(12 - len(late), 12)), got


@pytest.mark.parametrize("queue_qos0", [False, True])
def test_qos0_queued_only_with_queue_qos0_messages(broker, raw, connected, queue_qos0):
    b = broker(["queue_qos0_messages true"] if queue_qos0 else [])
    persistent_sub(raw, b.port, "q0", "q0/t", 1)
    pub = connected(b.port, V311, "pub")
    pub.publish("q0/t", b"zero", qos=0)
    pub.publish("q0/t", b"one", qos=1)
    c = raw(b.port, 4)
    c.connect("q0", clean=False)
    got = [(p.payload, p.qos) for p in drain_publishes(c)]
    if queue_qos0:
        assert got == [(b"zero", 0), (b"one", 1)]
    else:
        assert got == [(b"one", 1)]


@pytest.mark.parametrize("proto", [4, 5])
def test_redelivery_with_dup_in_order(broker, raw, connected, proto):
    """Unacknowledged PUBLISHes are resent with DUP=1 and the same packet identifiers, in the
    original order, when a persistent session reconnects [MQTT-4.4.0-1]; a PUBREC'd QoS 2
    message continues with PUBREL."""
    b = broker()
    props = [(m.P_SESSION_EXPIRY, 60)] if proto == 5 else None
    c = raw(b.port, proto)
    c.connect("rd", clean=False, properties=props)
    c.subscribe([("rd/1", 1), ("rd/2", 2)])
    pub = connected(b.port, V311, "pub")
    for i in range(3):
        pub.publish("rd/1", b"q1-%d" % i, qos=1)
    pub.publish("rd/2", b"q2-rec", qos=2)
    pub.publish("rd/2", b"q2-norec", qos=2)
    first = [c.recv_type(m.PUBLISH) for _ in range(5)]
    assert [p.payload for p in first] == [b"q1-0", b"q1-1", b"q1-2", b"q2-rec", b"q2-norec"]
    assert not any(p.dup for p in first)
    c.send(m.pubrec(first[3].mid, proto))
    c.recv_type(m.PUBREL)
    c.abort()  # no acks, no PUBCOMP

    c = raw(b.port, proto)
    assert c.connect("rd", clean=False, properties=props).session_present
    again = []
    rel = []
    while True:
        p = c.try_recv(0.4)
        if p is None:
            break
        if p.type == m.PUBLISH:
            again.append(p)
        elif p.type == m.PUBREL:
            rel.append(p.mid)
    assert [(p.payload, p.mid, p.qos) for p in again] == \
        [(p.payload, p.mid, p.qos) for p in first if p.payload != b"q2-rec"]
    assert all(p.dup for p in again)  # [MQTT-3.3.1-1]
    assert rel == [first[3].mid]  # the PUBREC'd one continues with PUBREL, not PUBLISH
