"""Will messages: abnormal close, keepalive timeout, takeover, DISCONNECT, v5 delay."""
import time

import pytest

import mqttraw as m
from conftest import V311, V5


def will(topic="will/t", payload=b"gone", qos=0, retain=False, properties=None):
    return {"topic": topic, "payload": payload, "qos": qos, "retain": retain,
            "properties": properties or []}


def watcher(connected, port, flt="will/#", qos=2, version=V311):
    w = connected(port, version, "watcher")
    w.subscribe(flt, qos)
    return w


@pytest.mark.parametrize("proto", [3, 4, 5])
def test_will_on_abnormal_close(broker, raw, connected, proto):
    b = broker()
    w = watcher(connected, b.port)
    c = raw(b.port, proto)
    assert c.connect("wc", will=will()).rc == 0
    c.abort()
    (msg,) = w.wait_messages(1, timeout=3)
    assert (msg.topic, msg.payload, msg.retain) == ("will/t", b"gone", False)


@pytest.mark.parametrize("proto", [3, 4, 5])
def test_no_will_on_disconnect(broker, raw, connected, proto):
    b = broker()
    w = watcher(connected, b.port)
    c = raw(b.port, proto)
    c.connect("wc", will=will())
    c.send(m.disconnect(proto))
    c.wait_closed(2)  # the broker closes after DISCONNECT [MQTT-3.14.4-1]
    w.expect_nothing(0.5)


def test_v5_disconnect_with_will_message_reason(broker, raw, connected):
    b = broker()
    w = watcher(connected, b.port)
    c = raw(b.port, 5)
    c.connect("wc", will=will(payload=b"rc4"))
    c.send(m.disconnect(5, rc=0x04))
    assert [x.payload for x in w.wait_messages(1, timeout=3)] == [b"rc4"]


def test_will_on_keepalive_timeout(broker, raw, connected):
    b = broker()
    w = watcher(connected, b.port)
    c = raw(b.port, 4)
    c.connect("ka", keepalive=1, will=will(payload=b"ka"))
    t0 = time.monotonic()
    # Mosquitto 2.0.11 notices the timeout only at its next periodic check (~6 s here);
    # the punctual bound is in test_keepalive.py (midge_only).
    (msg,) = w.wait_messages(1, timeout=8)
    assert msg.payload == b"ka"
    assert time.monotonic() - t0 >= 1.4  # not before 1.5 x keepalive


@pytest.mark.parametrize("proto", [4, 5])
def test_will_on_takeover(broker, raw, connected, proto):
    """The old connection is closed by the server, so its will is published (v5: the new
    connection uses Clean Start and there is no will delay, MQTT 5.0 section 3.1.3.2.2)."""
    b = broker()
    w = watcher(connected, b.port)
    old = raw(b.port, proto)
    old.connect("dup-id", will=will(payload=b"old"))
    new = raw(b.port, proto)
    assert new.connect("dup-id").rc == 0
    old.wait_closed(3)
    assert [x.payload for x in w.wait_messages(1, timeout=3)] == [b"old"]


def test_will_retain_and_qos(broker, raw, connected):
    b = broker()
    w0 = watcher(connected, b.port, qos=0)
    w2 = connected(b.port, V5, "w2")
    w2.subscribe("will/#", 2)
    c = raw(b.port, 4)
    c.connect("wr", will=will(payload=b"kept", qos=1, retain=True))
    c.abort()
    (m0,) = w0.wait_messages(1, timeout=3)
    (m2,) = w2.wait_messages(1, timeout=3)
    assert m0.qos == 0 and m2.qos == 1  # downgraded to each subscription
    assert not m0.retain
    late = connected(b.port, V311, "late")
    late.subscribe("will/#", 2)
    (ml,) = late.wait_messages(1)
    assert (ml.payload, ml.retain, ml.qos) == (b"kept", True, 1)


def test_v5_will_properties_passed_through(broker, raw, connected):
    b = broker()
    w = watcher(connected, b.port, version=V5)
    c = raw(b.port, 5)
    wp = [(m.P_CONTENT_TYPE, "text/plain"), (m.P_USER_PROPERTY, ("k", "v")),
          (m.P_RESPONSE_TOPIC, "resp/t"), (m.P_CORRELATION_DATA, b"\x01\x02"),
          (m.P_PAYLOAD_FORMAT, 1)]
    c.connect("wp", will=will(payload=b"p", properties=wp))
    c.abort()
    (msg,) = w.wait_messages(1, timeout=3)
    p = msg.properties
    assert p.ContentType == "text/plain"
    assert p.UserProperty == [("k", "v")]
    assert p.ResponseTopic == "resp/t"
    assert p.CorrelationData == b"\x01\x02"
    assert p.PayloadFormatIndicator == 1


def test_v5_will_delay_cancelled_by_reconnect(broker, raw, connected):
    """Two clients with Will Delay 1 s drop at once; one reconnects at once (Clean Start 0),
    which cancels its will [MQTT-3.1.3-9]; the other's will arrives after the delay."""
    b = broker()
    w = watcher(connected, b.port)
    sess = [(m.P_SESSION_EXPIRY, 30)]
    a = raw(b.port, 5)
    a.connect("wd-a", clean=False, properties=sess,
              will=will("will/a", b"a", properties=[(m.P_WILL_DELAY, 1)]))
    z = raw(b.port, 5)
    z.connect("wd-z", clean=False, properties=sess,
              will=will("will/z", b"z", properties=[(m.P_WILL_DELAY, 1)]))
    t0 = time.monotonic()
    a.abort()
    z.abort()
    a2 = raw(b.port, 5)
    assert a2.connect("wd-a", clean=False, properties=sess).session_present
    (msg,) = w.wait_messages(1, timeout=4)
    elapsed = time.monotonic() - t0
    assert msg.topic == "will/z"
    assert elapsed >= 0.9, elapsed  # not before the delay
    w.expect_nothing(0.3)
    assert [x.topic for x in w.messages()] == ["will/z"]


@pytest.mark.serial  # an upper bound on the will's delay
@pytest.mark.midge_only
def test_v5_will_delay_punctual(broker, raw, connected):
    """The delayed will comes within 0.5 s after its Will Delay. The spec only says "not
    before" (MQTT 5.0 section 3.1.3.2.2); punctuality is Midge's promise. Mosquitto 2.0.11
    publishes delayed wills from a periodic check: here it was up to 0.8 s late."""
    b = broker()
    w = watcher(connected, b.port)
    c = raw(b.port, 5)
    c.connect("wdp", clean=False, properties=[(m.P_SESSION_EXPIRY, 30)],
              will=will(payload=b"late", properties=[(m.P_WILL_DELAY, 2)]))
    t0 = time.monotonic()
    c.abort()
    w.wait_messages(1, timeout=4)
    assert 1.9 <= time.monotonic() - t0 <= 2.5


def test_v5_will_sent_when_session_ends_before_delay(broker, raw, connected):
    """The will is published when the Will Delay passes or the session ends, whichever is
    first (MQTT 5.0 section 3.1.3.2.2)."""
    b = broker()
    w = watcher(connected, b.port)
    c = raw(b.port, 5)
    c.connect("wse", clean=False, properties=[(m.P_SESSION_EXPIRY, 1)],
              will=will(payload=b"sess", properties=[(m.P_WILL_DELAY, 30)]))
    t0 = time.monotonic()
    c.abort()
    assert [x.payload for x in w.wait_messages(1, timeout=4)] == [b"sess"]
    # Not at once: a broker ignoring the Will Delay would publish on the drop.
    assert time.monotonic() - t0 >= 0.9


def test_v5_no_will_on_takeover_with_delay_and_resume(broker, raw, connected):
    """Takeover by Clean Start 0 with a Will Delay > 0: the will is not sent
    (MQTT 5.0 section 3.1.3.2.2, 'unless the new connection specifies Clean Start 0')."""
    b = broker()
    w = watcher(connected, b.port)
    sess = [(m.P_SESSION_EXPIRY, 30)]
    old = raw(b.port, 5)
    old.connect("tk", clean=False, properties=sess,
                will=will(payload=b"no", properties=[(m.P_WILL_DELAY, 1)]))
    new = raw(b.port, 5)
    assert new.connect("tk", clean=False, properties=sess).session_present
    old.wait_closed(3)
    # Watch well past the 1 s delay: a broker that kept the will timer would publish it here.
    w.expect_nothing(2.5)


def test_v5_delayed_will_dropped_when_the_client_returns_with_clean_start(broker, raw, connected):
    """Cause N (07-will-delay-recover.py): Session Expiry 30, Will Delay 1. The client leaves
    with its will (DISCONNECT 0x04) and is back before the delay with Clean Start 1, which ends
    the old session: no will, as Mosquitto; a new connection came before the delay passed
    [MQTT-3.1.3-9] (the specification allows either reading)."""
    b = broker()
    w = watcher(connected, b.port)
    c = raw(b.port, 5)
    c.connect("wdr", clean=False, properties=[(m.P_SESSION_EXPIRY, 30)],
              will=will(payload=b"will", properties=[(m.P_WILL_DELAY, 1)]))
    c.send(m.disconnect(5, rc=0x04))  # Disconnect with Will Message
    c.wait_closed(3)  # the broker has seen it: the will waits for its delay
    again = raw(b.port, 5)
    assert not again.connect("wdr", clean=True, properties=[(m.P_SESSION_EXPIRY, 30)]).session_present
    time.sleep(1.5)  # past the will delay: time has to pass
    again.publish("will/t", b"ready")  # the first message the watcher gets
    assert [x.payload for x in w.wait_messages(1, timeout=3)] == [b"ready"]

@pytest.mark.parametrize("proto", [4, 5])
@pytest.mark.parametrize("keep1,keep2", [(False, False), (True, False), (False, True), (True, True)])
def test_takeover_will_and_session_present(broker, raw, connected, proto, keep1, keep2):
    """A client with a will is taken over. The old session ends with its connection unless it
    was kept (Clean Session 0; v5: Session Expiry > 0): no session is then present, as with
    Mosquitto. The will goes out when a session ends; when both keep the session, none is sent,
    since a new connection came before the delay passed [MQTT-3.1.2-8]; 3.1.1 the same, as
    Mosquitto 2.0 (cause I, 07-will-takeover.py; 3.1.2.5 does not list a take-over)."""
    b = broker()
    w = watcher(connected, b.port)

    def props(keep):
        return [(m.P_SESSION_EXPIRY, 60 if keep else 0)] if proto == 5 else None

    old = raw(b.port, proto)
    assert old.connect("will-test", clean=not keep1, properties=props(keep1), will=will(payload=b"LWT")).rc == 0
    new = raw(b.port, proto)
    ack = new.connect("will-test", clean=not keep2, properties=props(keep2))
    assert ack.rc == 0 and ack.session_present == (keep1 and keep2)
    old.wait_closed(3)
    if keep1 and keep2:
        new.publish("will/test", b"ready")  # the first message the watcher gets
        assert [x.payload for x in w.wait_messages(1, timeout=3)] == [b"ready"]
    else:
        assert [x.payload for x in w.wait_messages(1, timeout=3)] == [b"LWT"]


def test_v5_delayed_will_not_sent_on_a_takeover_that_ends_the_session(broker, raw, connected):
    """A connected client with Session Expiry 60 and Will Delay 1 is taken over by a connection
    with Clean Start 1: the old session ends, but the new connection came before the delay
    passed [MQTT-3.1.3-9]: no will, as Mosquitto."""
    b = broker()
    w = watcher(connected, b.port)
    old = raw(b.port, 5)
    old.connect("tkc", clean=False, properties=[(m.P_SESSION_EXPIRY, 60)],
                will=will(payload=b"no", properties=[(m.P_WILL_DELAY, 1)]))
    new = raw(b.port, 5)
    assert not new.connect("tkc", clean=True).session_present
    old.wait_closed(3)
    time.sleep(1.5)  # past the will delay: time has to pass
    new.publish("will/t", b"ready")  # the first message the watcher gets
    assert [x.payload for x in w.wait_messages(1, timeout=3)] == [b"ready"]
