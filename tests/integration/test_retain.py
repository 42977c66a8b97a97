"""Retained messages: set, replace, clear, delivery on subscribe, v5 retain options."""
import pytest
from paho.mqtt.subscribeoptions import SubscribeOptions

from conftest import V31, V311, V5


@pytest.mark.parametrize("version", [V31, V311, V5])
def test_set_replace_clear(broker, connected, version):
    b = broker()
    pub = connected(b.port, version, "rp")
    pub.publish("ret/a", b"v1", qos=1, retain=True)
    s1 = connected(b.port, version, "s1")
    s1.subscribe("ret/#", 1)
    (m,) = s1.wait_messages(1)
    assert (m.topic, m.payload, m.retain) == ("ret/a", b"v1", True)

    pub.publish("ret/a", b"v2", qos=1, retain=True)  # replace
    live = s1.wait_messages(2)[1]
    assert live.payload == b"v2" and not live.retain  # live delivery: retain 0 [MQTT-3.3.1-9]
    s2 = connected(b.port, version, "s2")
    s2.subscribe("ret/a", 1)
    assert [(m.payload, m.retain) for m in s2.wait_messages(1)] == [(b"v2", True)]
    s2.expect_nothing(0.2)

    pub.publish("ret/a", b"", qos=1, retain=True)  # clear
    # the empty message itself is delivered to current subscribers as normal [MQTT-3.3.1-10]
    cleared = s1.wait_messages(3)[2]
    assert cleared.payload == b""
    s3 = connected(b.port, version, "s3")
    s3.subscribe("ret/#", 1)
    s3.expect_nothing(0.3)


def test_retained_on_wildcard_and_qos(broker, connected):
    b = broker()
    pub = connected(b.port, V311, "rp")
    pub.publish("house/a", b"A", qos=1, retain=True)
    pub.publish("house/b/c", b"C", qos=2, retain=True)
    pub.publish("house/d", b"D", qos=0, retain=True)
    pub.publish("other", b"O", qos=1, retain=True)
    s = connected(b.port, V311, "rs")
    s.subscribe("house/#", 1)
    msgs = s.wait_messages(3)
    got = sorted((m.topic, m.payload, m.qos, m.retain) for m in msgs)
    # QoS of a retained message delivered on subscribe: min(stored QoS, granted QoS)
    assert got == [("house/a", b"A", 1, True), ("house/b/c", b"C", 1, True),
                   ("house/d", b"D", 0, True)]
    s.expect_nothing(0.2)


def test_non_retained_publish_does_not_replace(broker, connected):
    b = broker()
    pub = connected(b.port, V311, "rp")
    pub.publish("keep", b"old", qos=1, retain=True)
    pub.publish("keep", b"live", qos=1, retain=False)
    s = connected(b.port, V311, "rs")
    s.subscribe("keep", 1)
    assert [m.payload for m in s.wait_messages(1)] == [b"old"]


def test_retained_survives_publisher_disconnect(broker, connected):
    b = broker()
    pub = connected(b.port, V311, "rp")
    pub.publish("gone", b"still", qos=1, retain=True)
    pub.disconnect()
    s = connected(b.port, V5, "rs")
    s.subscribe("gone", 0)
    assert [m.payload for m in s.wait_messages(1)] == [b"still"]


@pytest.mark.parametrize("rh,expect_first,expect_again", [(0, 1, 1), (1, 1, 0), (2, 0, 0)])
def test_v5_retain_handling(broker, connected, rh, expect_first, expect_again):
    """Retain Handling 0: send on every subscribe; 1: only if the subscription is new;
    2: never (MQTT 5.0 section 3.8.3.1)."""
    b = broker()
    pub = connected(b.port, V5, "rp")
    pub.publish("rh/t", b"r", qos=1, retain=True)
    s = connected(b.port, V5, "rs")
    opts = SubscribeOptions(qos=1, retainHandling=rh)
    s.subscribe("rh/t", options=opts)
    if expect_first:
        s.wait_messages(1)
    s.expect_nothing(0.2)
    assert len(s.messages()) == expect_first
    s.subscribe("rh/t", options=opts)  # the same subscription again
    if expect_again:
        s.wait_messages(expect_first + 1)
    s.expect_nothing(0.2)
    assert len(s.messages()) == expect_first + expect_again
    assert all(m.retain for m in s.messages())


@pytest.mark.parametrize("rap", [False, True])
def test_v5_retain_as_published(broker, connected, rap):
    b = broker()
    s = connected(b.port, V5, "rs")
    s.subscribe("rap/t", options=SubscribeOptions(qos=1, retainAsPublished=rap))
    pub = connected(b.port, V5, "rp")
    pub.publish("rap/t", b"r", qos=1, retain=True)
    pub.publish("rap/t", b"n", qos=1, retain=False)
    msgs = s.wait_messages(2)
    assert [(m.payload, m.retain) for m in msgs] == [(b"r", rap), (b"n", False)]
