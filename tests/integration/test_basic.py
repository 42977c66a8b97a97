"""The Mosquitto tutorial's own examples with the real tools, and mixed protocol versions."""
import re

from conftest import ALL_VERSIONS, V5


def sync(mosq, port, reader, topic="sync/x"):
    """Publishes to `topic` (which `reader` also subscribes) until it shows up: from then on
    every subscription of that mosquitto_sub is live. Returns the number of lines so far."""
    for _ in range(50):
        mosq.pub(port, "-t", topic, "-m", "ready")
        if reader.wait_for(lambda ls: topic + " ready" in ls, 0.2, fail=False):
            return len(reader.lines)
    raise AssertionError("subscriber never became ready: %r" % reader.lines)


def test_tutorial_test_val(broker, mosq):
    b = broker()
    sub = mosq.sub(b.port, "-v", "-t", "test/val")
    # Exactly the tutorial's commands; republish until the subscription is live.
    for _ in range(50):
        mosq.pub(b.port, "-t", "test/val", "-m", "Bonjour")
        if sub.wait_lines(1, 0.2, fail=False):
            break
    lines = sub.wait_lines(1)
    assert lines[0] == "test/val Bonjour"
    assert all(line == "test/val Bonjour" for line in lines)


def published_lines(mosq, port, sub_filter, topics):
    """Subscribes with mosquitto_sub -v to sub_filter, publishes every topic (QoS 1, so it was
    routed before the next one goes), then an end marker; returns what the subscriber printed."""
    r = mosq.sub(port, "-v", "-t", sub_filter, "-t", "sync/x")
    start = sync(mosq, port, r)
    for t in topics:
        mosq.pub(port, "-q", "1", "-t", t, "-m", "20")
    mosq.pub(port, "-q", "1", "-t", "sync/x", "-m", "end")
    lines = r.wait_for(lambda ls: "sync/x end" in ls)
    return sorted(line for line in lines[start:] if not line.startswith("sync/x"))


def test_tutorial_single_level_wildcard(broker, mosq):
    b = broker()
    got = published_lines(mosq, b.port, "maison/+/temp",
                          ["maison/salon/temp", "maison/salon/hum", "jardin/temp",
                           "maison/garage/temp"])
    assert got == ["maison/garage/temp 20", "maison/salon/temp 20"]


def test_tutorial_multi_level_wildcard(broker, mosq):
    b = broker()
    got = published_lines(mosq, b.port, "maison/#",
                          ["maison/rdc/salon/hum", "annexe/couloir/hum", "maison/garage/temp"])
    assert got == ["maison/garage/temp 20", "maison/rdc/salon/hum 20"]


def test_tutorial_sys_version(broker, mosq):
    b = broker(["sys_interval 1"])
    res = mosq.sub_once(b.port, "-v", "-t", "$SYS/broker/version", "-C", "1", "-W", "5")
    assert res.returncode == 0, res.stderr
    out = res.stdout.decode().strip()
    assert re.match(r"^\$SYS/broker/version \S+ version \d+\.\d+", out), out


def test_tutorial_sys_counters(broker, mosq):
    b = broker(["sys_interval 1"])
    for name, pattern in [("clients/connected", r"^\d+$"), ("clients/maximum", r"^\d+$"),
                          ("messages/received", r"^\d+$"), ("uptime", r"^\d+ seconds$")]:
        res = mosq.sub_once(b.port, "-v", "-t", "$SYS/broker/" + name, "-C", "1", "-W", "5")
        assert res.returncode == 0, (name, res.stderr)
        topic, _, value = res.stdout.decode().strip().partition(" ")
        assert topic == "$SYS/broker/" + name
        assert re.match(pattern, value), (name, value)


def test_pub_sub_tools_qos_and_retain(broker, mosq):
    b = broker()
    mosq.pub(b.port, "-t", "tools/r", "-m", "kept", "-r", "-q", "2")
    res = mosq.sub_once(b.port, "-v", "-t", "tools/#", "-C", "1", "-W", "5", "-q", "2")
    assert res.stdout.decode().strip() == "tools/r kept"


def test_all_versions_see_each_other(broker, connected):
    b = broker()
    clients = {v: connected(b.port, v, "mix-%d" % v) for v in ALL_VERSIONS}
    for c in clients.values():
        c.subscribe("mix/#", 1)
    for v, c in clients.items():
        c.publish("mix/from-%d" % v, b"hello from %d" % v, qos=1)
    expected = sorted("mix/from-%d" % v for v in ALL_VERSIONS)
    for v, c in clients.items():
        msgs = c.wait_messages(3)
        assert sorted(m.topic for m in msgs) == expected, v
        for m in msgs:
            assert m.payload == b"hello from " + m.topic.rsplit("-", 1)[1].encode()
    for c in clients.values():
        c.expect_nothing(0.2)


def test_v5_and_v311_interop_properties_dropped_for_v311(broker, connected):
    """A v5 publisher's properties never leak into a v3.1.1 subscriber's packet."""
    from conftest import props, PacketTypes
    b = broker()
    old = connected(b.port, 4, "old")
    old.subscribe("interop", 0)
    new = connected(b.port, V5, "new")
    new.publish("interop", b"p", 1,
                properties=props(PacketTypes.PUBLISH, UserProperty=[("k", "v")],
                                 ContentType="text/plain"))
    (m,) = old.wait_messages(1)
    assert m.payload == b"p" and m.topic == "interop"
