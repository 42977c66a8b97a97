"""mount_point (issue 11): a listener's clients live under a topic prefix.

What they publish and subscribe to gets the prefix; what they receive loses it; clients of
other listeners see the full topics. Retained messages and wills follow the same rule.
"""
import pytest

from conftest import IS_MOSQUITTO, free_port, port_open, wait_until
import mqttraw
from test_auth import auth_conf


@pytest.fixture
def mounted(broker):
    """A broker with a plain listener (b.port) and one mounted at tenant1/ (b.mounted)."""
    other = free_port()
    b = broker(auth_conf("listener %d 127.0.0.1" % other, "mount_point tenant1/", "allow_anonymous true"))
    b.mounted = other
    # The broker fixture waits for the first listener only; the second may listen a moment later.
    wait_until(lambda: port_open(other), what="the mounted listener")
    return b


def client(port, client_id, proto=4, **kw):
    c = mqttraw.RawClient(port, proto)
    assert c.connect(client_id, **kw).rc == 0
    return c


def next_publish(c):
    return c.recv_type(mqttraw.PUBLISH)


def seen_inside(topic):
    """The topic a mounted client receives for `topic` (without the mount point). Debian's
    Mosquitto 2.0.11 forgets to remove the mount point (fixed in 2.0.12, commit 723b5d70)."""
    return "tenant1/" + topic if IS_MOSQUITTO else topic


@pytest.mark.parametrize("proto", [4, 5])
def test_topics_are_prefixed_and_stripped(mounted, proto):
    inside = client(mounted.mounted, "inside", proto)
    outside = client(mounted.port, "outside", proto)
    try:
        assert inside.subscribe([("#", 0)]).codes == [0]
        assert outside.subscribe([("#", 0)]).codes == [0]
        inside.publish("a/b", b"from inside")
        p = outside.recv_type(mqttraw.PUBLISH)
        assert (p.topic, p.payload) == ("tenant1/a/b", b"from inside")
        p = next_publish(inside)
        assert (p.topic, p.payload) == (seen_inside("a/b"), b"from inside")
        outside.publish("elsewhere", b"not for tenant1")
        outside.publish("tenant1/c", b"for tenant1")
        assert (next_publish(outside).topic, next_publish(outside).topic) == ("elsewhere", "tenant1/c")
        p = next_publish(inside)  # the first message after a/b: "elsewhere" never came
        assert (p.topic, p.payload) == (seen_inside("c"), b"for tenant1")
    finally:
        inside.close()
        outside.close()


def test_retained_messages_stay_under_the_prefix(mounted):
    pub = client(mounted.mounted, "pub")
    try:
        assert pub.publish_acked("state", b"on", qos=1, retain=True).mid == 1
    finally:
        pub.close()
    inside = client(mounted.mounted, "inside")
    outside = client(mounted.port, "outside")
    try:
        assert inside.subscribe([("state", 0)]).codes == [0]
        p = next_publish(inside)
        assert (p.topic, p.payload, p.retain) == (seen_inside("state"), b"on", True)
        assert outside.subscribe([("tenant1/state", 0)]).codes == [0]
        p = next_publish(outside)
        assert (p.topic, p.payload, p.retain) == ("tenant1/state", b"on", True)
    finally:
        inside.close()
        outside.close()


def test_will_topic_gets_the_prefix(mounted):
    outside = client(mounted.port, "outside")
    try:
        assert outside.subscribe([("tenant1/#", 0)]).codes == [0]
        dying = client(mounted.mounted, "dying", will=dict(topic="status", payload=b"gone"))
        dying.abort()
        p = next_publish(outside)
        assert (p.topic, p.payload) == ("tenant1/status", b"gone")
    finally:
        outside.close()


@pytest.mark.midge_only(reason="Mosquitto 2.0 puts the mount point before the whole $share/... "
                               "filter, which then matches nothing")
def test_shared_subscription_is_mounted(mounted):
    inside = client(mounted.mounted, "member", 5)
    outside = client(mounted.port, "outside", 5)
    try:
        assert inside.subscribe([("$share/g/jobs", 0)]).codes == [0]
        outside.publish("jobs", b"not mounted")
        outside.publish("tenant1/jobs", b"mounted")
        p = next_publish(inside)
        assert (p.topic, p.payload) == (seen_inside("jobs"), b"mounted")
    finally:
        inside.close()
        outside.close()


@pytest.mark.midge_only(reason="Mosquitto 2.0 does not add the mount point to UNSUBSCRIBE filters: "
                               "the subscription is not found (UNSUBACK 0x11) and stays")
def test_unsubscribe_removes_the_mounted_subscription(mounted):
    inside = client(mounted.mounted, "inside", 5)
    try:
        assert inside.subscribe([("t", 0), ("u", 0)]).codes == [0, 0]
        inside.send(mqttraw.unsubscribe(2, ["t"], 5))
        assert inside.recv_type(mqttraw.UNSUBACK).codes == [0]
        inside.publish("t", b"after unsubscribe")
        inside.publish("u", b"marker")
        assert next_publish(inside).payload == b"marker"
    finally:
        inside.close()


@pytest.mark.parametrize("value", ["tenant/#", "a+b/"])
def test_wildcards_in_the_mount_point_refuse_to_start(broker, value):
    other = free_port()
    b = broker(auth_conf("listener %d 127.0.0.1" % other, "mount_point " + value), start=False)
    assert b.start(wait=False).wait_exit() not in (0, None)
    if not IS_MOSQUITTO:
        assert "%s:4: option 'mount_point'" % b.conf in b.log_text(), b.log_text()
