"""$SYS/broker/... topics, with Mosquitto's names (sys_interval 1)."""
import re
import time

from conftest import V311

LOAD = ["messages/received", "messages/sent", "bytes/received", "bytes/sent",
        "publish/received", "publish/sent", "publish/dropped", "connections", "sockets"]
NAMES = (["version", "uptime", "clients/connected", "clients/disconnected", "clients/maximum",
          "clients/total", "clients/expired", "messages/received", "messages/sent",
          "publish/messages/received", "publish/messages/sent", "publish/messages/dropped",
          "publish/bytes/received", "publish/bytes/sent", "bytes/received", "bytes/sent",
          "subscriptions/count", "shared_subscriptions/count", "retained messages/count",
          "store/messages/count", "store/messages/bytes"]
         + ["load/%s/%s" % (n, w) for n in LOAD for w in ("1min", "5min", "15min")])
NUMERIC = [n for n in NAMES if n not in ("version", "uptime")]


def latest(client, name):
    vals = [m.payload.decode() for m in client.messages("$SYS/broker/" + name)]
    return vals[-1] if vals else None


def test_all_names_published_retained(broker, connected):
    b = broker(["sys_interval 1"])
    c = connected(b.port, V311, "sysall")
    c.subscribe("$SYS/#", 0)
    want = {"$SYS/broker/" + n for n in NAMES}
    c.ev.wait_for(lambda: want <= {m.topic for m in c.ev.messages}, timeout=5,
                  what="all $SYS names, missing %s" % sorted(
                      want - {m.topic for m in c.messages()}))
    for n in NUMERIC:
        v = latest(c, n)
        assert re.match(r"^\d+(\.\d+)?$", v), (n, v)
    assert re.match(r"^\d+ seconds$", latest(c, "uptime"))
    # $SYS values are retained: a new subscriber gets them at once, with the retain flag
    late = connected(b.port, V311, "late")
    late.subscribe("$SYS/broker/version", 0)
    (m,) = late.wait_messages(1)
    assert m.retain


def test_connected_and_received_counters_move(broker, connected):
    b = broker(["sys_interval 1"])
    c = connected(b.port, V311, "sysmon")
    c.subscribe([("$SYS/broker/clients/connected", 0), ("$SYS/broker/messages/received", 0),
                 ("$SYS/broker/clients/maximum", 0), ("$SYS/broker/uptime", 0),
                 ("$SYS/broker/clients/total", 0)])
    c.wait_messages(5)
    # the retained value may predate this client; only "sysmon" is connected now
    c.ev.wait_for(lambda: latest(c, "clients/connected") == "1", timeout=4,
                  what="clients/connected == 1")
    base = 1
    received = int(latest(c, "messages/received"))
    others = [connected(b.port, V311, "extra%d" % i) for i in range(2)]
    for o in others:
        o.publish("count/me", b"x", qos=1)
    c.ev.wait_for(lambda: int(latest(c, "clients/connected")) == base + 2, timeout=4,
                  what="clients/connected to reach %d" % (base + 2))
    c.ev.wait_for(lambda: int(latest(c, "messages/received")) >= received + 4, timeout=4,
                  what="messages/received to grow")
    assert int(latest(c, "clients/maximum")) >= base + 2
    assert int(latest(c, "clients/total")) >= base + 2
    others[0].disconnect()
    c.ev.wait_for(lambda: int(latest(c, "clients/connected")) == base + 1, timeout=4,
                  what="clients/connected to drop")
    t0 = int(latest(c, "uptime").split()[0])
    c.ev.wait_for(lambda: int(latest(c, "uptime").split()[0]) > t0, timeout=4,
                  what="uptime to advance")


def test_sys_interval_zero_disables_periodic_updates(broker, connected):
    b = broker(["sys_interval 0"])
    c = connected(b.port, V311, "s0")
    c.subscribe("$SYS/broker/uptime", 0)
    time.sleep(0.5)  # proving a negative: no uptime publication
    assert c.messages() == []
