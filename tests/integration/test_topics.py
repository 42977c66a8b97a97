"""Topic matching exactly per spec (MQTT 3.1.1 section 4.7, 5.0 section 4.7)."""
import pytest

from conftest import V311, V5

# filter -> (topics that match, topics that must not)
CASES = {
    "sport/#": (["sport", "sport/", "sport/tennis", "sport/tennis/player1"],
                ["sports", "/sport", "Sport/tennis"]),
    "sport/tennis/+": (["sport/tennis/player1", "sport/tennis/"],
                       ["sport/tennis", "sport/tennis/player1/ranking"]),
    "+": (["sport", "x"], ["sport/tennis", "/sport", "$bar"]),
    "+/+": (["/finance", "a/b"], ["a", "a/b/c", "$bar/x"]),
    "/+": (["/finance"], ["finance", "finance/x"]),
    "#": (["a", "a/b", "/x"], ["$bar/x", "$bar", "$SYS/x"]),
    "+/x": (["a/x", "/x"], ["$bar/x", "x"]),
    "$bar/#": (["$bar/x", "$bar"], ["bar/x"]),
    "ACCOUNTS": (["ACCOUNTS"], ["accounts"]),
    "a/+/c": (["a/b/c", "a//c"], ["a/b/c/d", "a/c"]),
}


def spec_matches(flt, topic):
    """Reference matcher written from spec section 4.7 (independent of the broker)."""
    if topic.startswith("$") and flt[:1] in ("+", "#"):
        return False  # [MQTT-4.7.2-1]
    f, t = flt.split("/"), topic.split("/")
    for i, level in enumerate(f):
        if level == "#":
            return True  # also matches the parent level: "sport/#" matches "sport"
        if i >= len(t):
            return False
        if level != "+" and level != t[i]:
            return False
    return len(f) == len(t)


ALL_TOPICS = sorted({t for m, n in CASES.values() for t in m + n if not t.startswith("$SYS")})


@pytest.mark.parametrize("version", [V311, V5])
def test_matching_table(broker, connected, version):
    b = broker()
    subs = {}
    for i, flt in enumerate(CASES):
        c = connected(b.port, version, "m%d" % i)
        c.subscribe([(flt, 1), ("sync/end", 1)])
        subs[flt] = c
    pub = connected(b.port, version, "pub")
    for t in ALL_TOPICS:
        pub.publish(t, t.encode(), qos=1)
    pub.publish("sync/end", b"", qos=1)
    for flt, c in subs.items():
        c.wait_messages(1, topic="sync/end")
        got = sorted(m.topic for m in c.messages() if m.topic != "sync/end")
        match, nomatch = CASES[flt]
        assert all(spec_matches(flt, t) for t in match)
        assert not any(spec_matches(flt, t) for t in nomatch)
        expect = sorted(t for t in ALL_TOPICS if spec_matches(flt, t))
        assert got == expect, (flt, got)


def test_plus_and_hash_do_not_match_sys(broker, connected):
    b = broker(["sys_interval 1"])
    wild = connected(b.port, V311, "wild")
    wild.subscribe([("#", 0), ("+/broker/#", 0), ("+/+/version", 0)])
    sysc = connected(b.port, V311, "sys")
    sysc.subscribe("$SYS/broker/uptime", 0)
    # wait for two $SYS publications so a wrong match would have been delivered by then
    sysc.wait_messages(2, timeout=5)
    assert [m.topic for m in wild.messages() if m.topic.startswith("$")] == []


def test_clients_cannot_publish_into_sys(broker, connected):
    b = broker()
    watcher = connected(b.port, V311, "watch")
    watcher.subscribe([("$SYS/test/#", 0), ("sync/end", 0)])
    for v in (V311, V5):
        pub = connected(b.port, v, "pub%d" % v)
        pub.publish("$SYS/test/injected", b"x", qos=1, retain=True)
        pub.publish("$SYS/test/injected0", b"x", qos=0)
    pub.publish("sync/end", b"", qos=1)
    watcher.wait_messages(1, topic="sync/end")
    assert [m.topic for m in watcher.messages() if m.topic.startswith("$SYS")] == []
    # and nothing retained there either
    late = connected(b.port, V311, "late")
    late.subscribe([("$SYS/test/#", 0)])
    late.expect_nothing(0.3)


def test_unsubscribe_stops_delivery(broker, connected):
    b = broker()
    c = connected(b.port, V311, "u")
    c.subscribe("un/#", 0)
    pub = connected(b.port, V311, "p")
    pub.publish("un/a", b"1", qos=1)
    c.wait_messages(1)
    c.unsubscribe("un/#")
    pub.publish("un/a", b"2", qos=1)
    c.expect_nothing(0.3)
    assert [m.payload for m in c.messages()] == [b"1"]
