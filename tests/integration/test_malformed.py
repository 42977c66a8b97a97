"""Bad input over raw sockets: each error closes only that connection (v5: with the reason
code first, where the spec asks for one), and the broker keeps serving everyone else."""
import socket
import time

import pytest

import mqttraw as m
from conftest import IS_MOSQUITTO, V311


@pytest.fixture
def healthy(broker, connected):
    """A broker plus a subscriber connected before the abuse; check() proves it still works."""
    b = broker()
    sub = connected(b.port, V311, "healthy")
    sub.subscribe("health/#", 1)
    pub = connected(b.port, V311, "healthy-pub")
    state = {"n": 0}

    def check():
        assert b.alive(), b.log_tail()
        state["n"] += 1
        pub.publish("health/x", b"%d" % state["n"], qos=1)
        msgs = sub.wait_messages(state["n"])
        assert msgs[-1].payload == b"%d" % state["n"]
    b.check = check
    return b


def closed_after(c, timeout=3):
    return [(p.type, p.rc) for p in c.wait_closed(timeout)]


# --- before CONNECT ---------------------------------------------------------------------

PRE_CONNECT = {
    "garbage": b"\xde\xad\xbe\xef" * 8,
    "remaining_length_5_bytes": b"\x10\xff\xff\xff\xff\x01",
    "first_pingreq": m.PINGREQ_BYTES,
    "first_subscribe": m.subscribe(1, [("a", 0)]),
    "first_publish": m.publish("a", b"x"),
    "bad_protocol_name": m.connect("x").replace(b"MQTT", b"MQTX"),
    "v311_reserved_flag": m.connect("x").replace(b"MQTT\x04\x02", b"MQTT\x04\x03"),
    "v311_bad_utf8_client_id": m.connect(b"a\xffb"),
}


@pytest.mark.parametrize("name", sorted(PRE_CONNECT))
def test_bad_first_bytes_close_connection(healthy, raw, name):
    """[MQTT-3.1.0-1], [MQTT-3.1.2-1], [MQTT-3.1.2-3], [MQTT-1.5.3-1], [MQTT-2.2.3-1]: close,
    and no CONNACK 0 (nothing, or a refusal)."""
    c = raw(healthy.port, 4)
    c.send(PRE_CONNECT[name])
    pkts = closed_after(c)
    assert all(t == m.CONNACK and rc != 0 for t, rc in pkts), pkts
    healthy.check()


def test_unsupported_protocol_level(healthy, raw):
    """[MQTT-3.1.2-2]: CONNACK 0x01 unacceptable protocol level, then close."""
    c = raw(healthy.port, 4)
    c.send(m.connect("lvl").replace(b"MQTT\x04", b"MQTT\x07"))
    assert c.recv_raw() == b"\x20\x02\x00\x01"
    c.wait_closed(2)
    healthy.check()


V5_CONNECT_ERRORS = {
    "reserved_flag": (m.connect("x", proto=5).replace(b"MQTT\x05\x02", b"MQTT\x05\x03"), 0x81),
    "will_qos_3": (m.connect("x", proto=5, will={"topic": "a", "payload": b"x", "qos": 3}),
                   0x81),
    "unknown_property": (m.packet(0x10, m.mstr("MQTT") + b"\x05\x02\x00\x3c\x02\x7f\x00"
                                  + m.mstr("x")), 0x81),
    "duplicate_property": (m.connect("x", proto=5, properties=[(m.P_SESSION_EXPIRY, 1),
                                                               (m.P_SESSION_EXPIRY, 2)]), 0x82),
    "receive_maximum_0": (m.connect("x", proto=5, properties=[(m.P_RECEIVE_MAXIMUM, 0)]), 0x82),
    "bad_utf8_client_id": (m.connect(b"a\xffb", proto=5), 0x81),
}


@pytest.mark.parametrize("name", sorted(V5_CONNECT_ERRORS))
def test_v5_bad_connect_closes(healthy, raw, name):
    """MQTT 5.0 section 4.13.1: close; a CONNACK with the reason code MAY come first."""
    data, code = V5_CONNECT_ERRORS[name]
    c = raw(healthy.port, 5)
    c.send(data)
    pkts = closed_after(c)
    assert pkts in ([], [(m.CONNACK, code)]), pkts
    healthy.check()


@pytest.mark.parametrize("name", sorted(V5_CONNECT_ERRORS))
def test_v5_bad_connect_closed_without_connack_as_mosquitto(healthy, raw, name):
    """Both Mosquitto and Midge just close (issue 14: a client cannot tell them apart); the
    reason is in the broker's log."""
    data, _ = V5_CONNECT_ERRORS[name]
    c = raw(healthy.port, 5)
    c.send(data)
    assert closed_after(c) == []


# --- after CONNECT ----------------------------------------------------------------------

def after_connect(proto):
    v5 = b"\x00" if proto == 5 else b""
    return {
        # name: (bytes, v5 reason code)
        "remaining_length_5_bytes": (b"\x30\xff\xff\xff\xff\x01", 0x81),
        "publish_qos_3": (m.packet(0x36, m.mstr("a") + m.u16(1) + v5 + b"x"), 0x81),
        "publish_bad_utf8_topic": (m.packet(0x30, m.mstr(b"a\xffb") + v5 + b"x"), 0x81),
        "publish_nul_in_topic": (m.packet(0x30, m.mstr(b"a\x00b") + v5 + b"x"), 0x81),
        "publish_empty_topic": (m.publish("", b"x", proto=proto), 0x82),
        "subscribe_bad_header_flags": (b"\x80" + m.subscribe(1, [("a", 0)], proto)[1:], 0x81),
        # [MQTT-3.8.3-2] and 3.8.3.1: both are Protocol Errors in 5.0 (Mosquitto says 0x81)
        "subscribe_no_filters": (m.subscribe(1, [], proto), 0x82),
        "subscribe_qos_3": (m.subscribe(1, [("a", 3)], proto), 0x82),
        "pubrel_bad_header_flags": (b"\x60\x02\x00\x01", 0x81),
        "second_connect": (m.connect("again", proto=proto), 0x82),
    }


@pytest.mark.parametrize("name", sorted(after_connect(4)))
@pytest.mark.parametrize("proto", [4, 5])
def test_bad_packet_after_connect_closes(healthy, raw, proto, name):
    """Malformed packets and protocol errors close the connection (3.1.1 section 4.8,
    [MQTT-3.1.0-2] for a second CONNECT; 5.0 section 4.13: a DISCONNECT with the reason code
    SHOULD come first; if one comes, its code must be right)."""
    data, code = after_connect(proto)[name]
    c = raw(healthy.port, proto)
    c.connect("bad")
    c.send(data)
    pkts = closed_after(c)
    if proto == 4:
        assert pkts == []
    elif name in ("subscribe_no_filters", "subscribe_qos_3"):
        assert pkts in ([], [(m.DISCONNECT, 0x81)], [(m.DISCONNECT, 0x82)]), pkts
    else:
        assert pkts in ([], [(m.DISCONNECT, code)]), pkts
    healthy.check()


MALFORMED_V5 = {
    # [MQTT-2.2.1-3] names no code for packet id 0: Malformed Packet, as Mosquitto answers.
    "subscribe_packet_id_0": m.subscribe(0, [("a", 0)], 5),
    "unsubscribe_packet_id_0": m.unsubscribe(0, ["a"], 5),
    # "An Identifier which is not valid for its packet type ... is a Malformed Packet" (2.2.2.2).
    "subscribe_session_expiry": m.subscribe(1, [("a", 0)], 5, properties=[(m.P_SESSION_EXPIRY, 1)]),
    "publish_session_expiry": m.publish("a", b"x", proto=5, properties=[(m.P_SESSION_EXPIRY, 1)]),
}


@pytest.mark.parametrize("name", sorted(MALFORMED_V5))
def test_malformed_v5_packets_get_disconnect_0x81(healthy, raw, name):
    if name == "publish_session_expiry" and IS_MOSQUITTO:
        pytest.skip("Mosquitto answers 0x82 (Protocol Error) where 2.2.2.2 says Malformed Packet")
    c = raw(healthy.port, 5)
    c.connect("bad")
    c.send(MALFORMED_V5[name])
    assert closed_after(c) == [(m.DISCONNECT, 0x81)]
    healthy.check()


# Where Mosquitto 2.0.11 differs: it sends no DISCONNECT for a bad remaining length, a second
# CONNECT or a PUBREL with bad flags, and 0x81 where 5.0 says Protocol Error (0x82) for an
# empty SUBSCRIBE or a QoS 3 option.
MOSQUITTO_DIFFERS = {"remaining_length_5_bytes", "second_connect", "pubrel_bad_header_flags",
                     "subscribe_no_filters", "subscribe_qos_3"}


@pytest.mark.parametrize("name", sorted(set(after_connect(5)) - MOSQUITTO_DIFFERS))
def test_v5_bad_packet_reason_code(healthy, raw, name):
    """The DISCONNECT comes first, with the spec's code (5.0 section 4.13)."""
    data, code = after_connect(5)[name]
    c = raw(healthy.port, 5)
    c.connect("bad")
    c.send(data)
    assert closed_after(c) == [(m.DISCONNECT, code)]


@pytest.mark.midge_only  # see MOSQUITTO_DIFFERS
@pytest.mark.parametrize("name", sorted(MOSQUITTO_DIFFERS))
def test_v5_bad_packet_reason_code_strict(healthy, raw, name):
    """Midge always sends the DISCONNECT first, with the spec's code."""
    data, code = after_connect(5)[name]
    c = raw(healthy.port, 5)
    c.connect("bad")
    c.send(data)
    assert closed_after(c) == [(m.DISCONNECT, code)]


@pytest.mark.parametrize("proto", [4, 5])
def test_publish_with_wildcard_topic(healthy, raw, proto):
    """[MQTT-3.3.2-2]: no wildcards in a Topic Name. v5: DISCONNECT 0x82 Protocol Error
    (Mosquitto) or 0x90 Topic Name invalid."""
    for topic in ("a/+/b", "a/#"):
        c = raw(healthy.port, proto)
        c.connect("wild")
        c.publish(topic, b"x", qos=1)
        pkts = closed_after(c)
        if proto == 4:
            assert pkts == []
        else:
            assert pkts in ([(m.DISCONNECT, 0x82)], [(m.DISCONNECT, 0x90)]), pkts
    healthy.check()


@pytest.mark.parametrize("flt", ["a/#/b", "a+/b", "#/a", "a/b#"])
def test_invalid_filter_v311(healthy, raw, flt):
    """[MQTT-4.7.1-2], [MQTT-4.7.1-3]: SUBACK 0x80 Failure, or close (Mosquitto closes)."""
    c = raw(healthy.port, 4)
    c.connect("badf")
    c.send(m.subscribe(1, [(flt, 0)]))
    try:
        p = c.recv(3)
    except m.Closed:
        p = None
    if p is not None:
        assert p.type == m.SUBACK and p.codes == [0x80], p
    healthy.check()


@pytest.mark.parametrize("flt", ["a/#/b", "a+/b"])
def test_invalid_filter_v5(healthy, raw, flt):
    """SUBACK 0x8F Topic Filter invalid, or DISCONNECT 0x81/0x8F and close (Mosquitto: 0x81)."""
    c = raw(healthy.port, 5)
    c.connect("badf5")
    c.send(m.subscribe(1, [(flt, 0)], 5))
    p = c.recv(3)
    if p.type == m.SUBACK:
        assert p.codes == [0x8F]
    else:
        assert p.type == m.DISCONNECT and p.rc in (0x81, 0x8F), p
        c.wait_closed(2)
    healthy.check()


@pytest.mark.midge_only
def test_invalid_filter_v5_suback_0x8f(healthy, raw):
    """Midge rejects just the bad filter (SUBACK 0x8F) and keeps the session and the valid
    filters of the same SUBSCRIBE; Mosquitto disconnects with 0x81."""
    c = raw(healthy.port, 5)
    c.connect("badf5")
    ack = c.subscribe([("ok/t", 1), ("a/#/b", 0), ("a+/b", 0)])
    assert ack.codes == [1, 0x8F, 0x8F]
    c.publish("ok/t", b"x", qos=0)
    assert c.recv_type(m.PUBLISH).payload == b"x"


# --- connections that never finish --------------------------------------------------------

@pytest.mark.midge_only
def test_connection_without_connect_dropped(healthy, raw):
    """A connection that never completes CONNECT is dropped within 10 s (MQTT 5.0 section
    4.? / 3.1.1 section 3.1: 'SHOULD close ... within a reasonable amount of time').
    Mosquitto 2.0.11 keeps it open forever."""
    silent = raw(healthy.port, 4)
    partial = raw(healthy.port, 4)
    partial.send(m.connect("half")[:5])
    t0 = time.monotonic()
    silent.wait_closed(10.5)
    partial.wait_closed(max(0.1, 10.5 - (time.monotonic() - t0)))
    healthy.check()


def test_flood_of_connects_and_abrupt_closes(healthy, raw):
    port = healthy.port
    for i in range(200):
        s = socket.create_connection(("127.0.0.1", port))
        kind = i % 4
        if kind == 1:
            s.sendall(m.connect("flood%d" % i)[:7])
        elif kind == 2:
            s.sendall(b"\xff" * 16)
        elif kind == 3:
            s.sendall(m.connect("flood%d" % i) + m.subscribe(1, [("health/#", 1)]))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()  # RST
        if i % 50 == 49:
            healthy.check()
    healthy.check()
