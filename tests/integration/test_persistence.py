"""Persistence (issue 12): retained messages, persistent sessions, their queues and in-flight
state survive a restart (SIGTERM) and a crash (kill -9); a damaged store is skipped and logged,
never a crash; store write faults are answered with the right codes.

Mosquitto 2.0.11 saves its database on a clean stop only, so it passes the restart variants;
the kill -9 variants are midge_only.
"""
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

import mqttraw as m
from conftest import (BROKER_BIN, IS_MOSQUITTO, V311, V5, PacketTypes, free_port, keep_root, port_open,
                      proc_rss_kb, props, wait_until)

CRASH = pytest.mark.midge_only(
    reason="Mosquitto saves only every autosave_interval; kill -9 loses what came since")
STOPS = ["restart", pytest.param("kill9", marks=CRASH)]
# Words a log line about a damaged store uses (case-insensitive).
DAMAGE_WORDS = ("corrupt", "damage", "truncat", "torn", "skipp")


def pconf(location, *more):
    lines = ["persistence true", "persistence_location %s/" % location]
    if IS_MOSQUITTO and os.getuid() == 0:
        lines.append("user root")  # else it drops to 'mosquitto', which cannot write tmp_path
    return lines + list(more)


@pytest.fixture
def loc(tmp_path):
    d = tmp_path / "store"
    d.mkdir()
    return d


@pytest.fixture
def pbroker(broker, loc):
    """Factory: a started broker with `persistence true` in `loc`, plus config lines."""
    def make(*more, **kw):
        return broker(pconf(loc, *more), **kw)
    return make


def bounce(b, how="restart"):
    """Stops the broker (SIGTERM, or kill -9) and starts it again on the same port."""
    if how == "kill9":
        b.kill9()
    else:
        b.stop()
    b.start()


def session(raw, port, cid, proto=4, expiry=None):
    """A raw client connected with clean session/start 0; returns (client, CONNACK)."""
    c = raw(port, proto, timeout=10)
    ack = c.connect(cid, clean=False,
                    properties=[(m.P_SESSION_EXPIRY, expiry)] if expiry else None)
    assert ack.rc == 0, "CONNACK rc %#x" % ack.rc
    return c, ack


def bye(c):
    c.send(m.disconnect(c.proto))
    c.wait_closed(5)


def receive(c, done, timeout=10.0):
    """Reads PUBLISHes, acknowledging each (QoS 1 PUBACK; QoS 2 PUBREC, then PUBCOMP for the
    PUBREL), until done(publishes) holds and no QoS 2 handshake it began is half done."""
    got, waiting_rel = [], set()
    deadline = time.monotonic() + timeout
    while not (done(got) and not waiting_rel):
        try:
            p = c.recv(max(0.01, deadline - time.monotonic()))
        except (TimeoutError, m.Closed) as e:
            pytest.fail("%r while receiving; got %r, PUBREL awaited for %r"
                        % (e, [(x.topic, x.payload) for x in got], sorted(waiting_rel)))
        if p.type == m.PUBLISH:
            got.append(p)
            if p.qos == 1:
                c.send(m.puback(p.mid, c.proto))
            elif p.qos == 2:
                c.send(m.pubrec(p.mid, c.proto))
                waiting_rel.add(p.mid)
        elif p.type == m.PUBREL:
            c.send(m.pubcomp(p.mid, c.proto))
            waiting_rel.discard(p.mid)
    return got


def has(payload):
    return lambda got: any(p.payload == payload for p in got)


def mark(port, topic, payload, qos=1):
    """Publishes from a fresh clean client, acknowledged: a marker the test waits for."""
    c = m.RawClient(port, 4, timeout=10)
    try:
        assert c.connect("").rc == 0
        if qos:
            c.publish_acked(topic, payload, qos=qos)
        else:
            c.publish(topic, payload)
            c.send(m.disconnect())
            c.wait_closed(5)
    finally:
        c.close()


def store_dir(location, name="mosquitto.db"):
    """Midge's store: a directory named after persistence_file (default mosquitto.db) + .midge."""
    return Path(location) / (name + ".midge")


def damage_logged(b, offset):
    """Whether the log since offset tells of damage (paths left out: they name the test)."""
    text = b.log.read_bytes()[offset:].decode("utf-8", "replace")
    return any(w in text.replace(str(b.dir.parent), "").lower() for w in DAMAGE_WORDS)


# ------------------------------------------------------------------ retained messages

RETAINED = [("r/q0", b"zero", 0), ("r/q1", b"one\x00\xffbin", 1), ("r/q2", b"two", 2),
            ("r/deep/a/b", b"deep", 1), ("r/big", bytes(range(256)) * 64, 1)]
JSON_PROPS = dict(ContentType="application/json", UserProperty=("origin", "test"))


@pytest.mark.parametrize("how", STOPS)
def test_retained_messages_survive(pbroker, connected, how):
    b = pbroker()
    pub = connected(b.port, V5, "rpub")
    pub.publish("r/gone", b"soon cleared", qos=1, retain=True)
    for topic, payload, qos in RETAINED:  # QoS 0 first: later acks prove it was handled
        pub.publish(topic, payload, qos=qos, retain=True)
    pub.publish("r/props", b'{"a": 1}', qos=1, retain=True,
                properties=props(PacketTypes.PUBLISH, **JSON_PROPS))
    pub.publish("r/gone", b"", qos=1, retain=True)  # cleared
    bounce(b, how)
    sub = connected(b.port, V5, "rsub")
    sub.subscribe("r/#", 2)
    mark(b.port, "r/zz-marker", b"live")  # retained messages come before any later message
    sub.wait_messages(1, topic="r/zz-marker")
    sub.wait_messages(1, topic="r/q2")  # paho hands QoS 2 over at PUBREL: maybe after the marker
    got = {msg.topic: msg for msg in sub.messages()}
    assert sorted(got) == sorted([t for t, _, _ in RETAINED] + ["r/props", "r/zz-marker"])
    for topic, payload, qos in RETAINED:
        msg = got[topic]
        assert (msg.payload, msg.qos, msg.retain) == (payload, qos, True), topic
    p = got["r/props"].properties
    assert p.ContentType == "application/json"
    assert p.UserProperty == [("origin", "test")]


# ------------------------------------------------------------------ the database file

def left_behind(b, loc, raw):
    """A retained message and a persistent session with a subscription, then a clean stop."""
    c, _ = session(raw, b.port, "keyed")
    assert c.subscribe([("k/t", 1)]).codes == [1]
    p = m.RawClient(b.port, 4, timeout=10)
    assert p.connect("").rc == 0
    p.publish_acked("k/retained", b"kept", qos=1, retain=True)
    p.close()
    bye(c)
    b.stop()
    assert (Path(loc) / "mosquitto.db").is_file()


def what_is_left(b, raw):
    """(session present, retained payloads under k/#) as the restarted broker serves them."""
    c, ack = session(raw, b.port, "keyed")
    c.subscribe([("k/#", 1)])
    mark(b.port, "k/zz", b"marker")  # retained messages come before any later message
    got = receive(c, has(b"marker"))
    bye(c)
    return ack.session_present, [p.payload for p in got if p.retain]


def test_removing_the_database_file_resets_the_store(pbroker, loc, raw):
    """Mosquitto's users clear retained messages and sessions by removing mosquitto.db."""
    b = pbroker()
    left_behind(b, loc, raw)
    b.start()
    assert what_is_left(b, raw) == (True, [b"kept"])
    b.stop()
    (Path(loc) / "mosquitto.db").unlink()
    b.start()
    assert what_is_left(b, raw) == (False, [])
    if not IS_MOSQUITTO:  # kept aside one reset long
        assert "was removed since the last run" in b.log_text()
        assert (Path(str(store_dir(loc)) + ".discarded")).is_dir()


@pytest.mark.midge_only(reason="Midge's store beside Mosquitto's file")
def test_an_existing_database_file_is_never_changed(pbroker, loc, raw):
    """Mosquitto's own file, kept for a return to Mosquitto: Midge neither reads nor rewrites it."""
    theirs = Path(loc) / "mosquitto.db"
    theirs.write_bytes(b"\x00\xb5\x00mosquitto db" + bytes(8) + b"not Midge's" * 9)
    before = theirs.read_bytes()
    b = pbroker()
    left_behind(b, loc, raw)
    assert theirs.read_bytes() == before
    b.start()
    assert what_is_left(b, raw) == (True, [b"kept"])
    assert theirs.read_bytes() == before


@pytest.mark.midge_only(reason="an older Midge's store")
def test_a_store_without_a_key_is_kept_and_keyed(pbroker, loc, raw):
    """A store written before the database file was its key has neither: it is kept."""
    b = pbroker()
    left_behind(b, loc, raw)
    (Path(loc) / "mosquitto.db").unlink()
    (store_dir(loc) / "MIDGE_KEYED").unlink()
    b.start()
    assert what_is_left(b, raw) == (True, [b"kept"])
    assert (Path(loc) / "mosquitto.db").is_file()


@pytest.mark.midge_only(reason="Midge's file read by Mosquitto")
@pytest.mark.skipif(not os.access("/usr/sbin/mosquitto", os.X_OK), reason="needs Debian's mosquitto")
def test_mosquitto_reads_the_database_file_midge_wrote(pbroker, broker, loc, raw):
    b = pbroker()
    left_behind(b, loc, raw)
    lines = ["persistence true", "persistence_location %s/" % loc]
    theirs = broker(lines + (["user root"] if os.getuid() == 0 else []), binary="/usr/sbin/mosquitto")
    assert what_is_left(theirs, raw) == (False, [])
    theirs.stop()
    assert "rror" not in theirs.log_text()


# ------------------------------------------------------------------ persistent sessions

@pytest.mark.parametrize("proto", [4, 5])
@pytest.mark.parametrize("how", STOPS)
def test_persistent_subscriptions_survive(pbroker, raw, proto, how):
    b = pbroker()
    c, ack = session(raw, b.port, "keep", proto, expiry=300 if proto == 5 else None)
    assert not ack.session_present
    if proto == 5:  # options and subscription identifier are kept too
        sub = c.subscribe([("k/t", m.sub_options(1)), ("k/nl", m.sub_options(1, no_local=True))],
                          properties=[(m.P_SUBSCRIPTION_ID, 42)])
    else:
        sub = c.subscribe([("k/t", 1), ("k/nl", 1)])
    assert sub.codes == [1, 1]
    if how == "restart":
        bye(c)
    bounce(b, how)  # kill -9: SUBACK came, so the subscription must be there
    c, ack = session(raw, b.port, "keep", proto, expiry=300 if proto == 5 else None)
    assert ack.session_present
    mark(b.port, "k/t", b"live")
    p = c.recv_type(m.PUBLISH)
    assert (p.topic, p.payload, p.qos) == ("k/t", b"live", 1)
    c.send(m.puback(p.mid, proto))
    if proto == 5:
        assert p.prop_all(m.P_SUBSCRIPTION_ID) == [42]
        c.publish("k/nl", b"own", qos=1, mid=9)  # no local: not sent back
        assert c.recv_type(m.PUBACK).mid == 9
    else:
        mark(b.port, "k/nl", b"other")
    mark(b.port, "k/t", b"after")
    want = [b"after"] if proto == 5 else [b"after", b"other"]
    got = receive(c, lambda g: all(has(w)(g) for w in want))
    assert sorted(x.payload for x in got) == want


@pytest.mark.parametrize("how", STOPS)
def test_queued_messages_survive_in_order_once(pbroker, raw, connected, how):
    b = pbroker("max_queued_messages 1000")
    c, _ = session(raw, b.port, "queue")
    assert c.subscribe([("q/t", 2)]).codes == [2]
    bye(c)
    pub = connected(b.port, V311, "qpub")
    sent = [(b"m%02d" % i, 1 + i % 2) for i in range(30)]  # QoS 1 and 2 alternate
    for payload, qos in sent:
        pub.publish("q/t", payload, qos=qos)
    bounce(b, how)
    c, ack = session(raw, b.port, "queue")
    assert ack.session_present
    got = receive(c, lambda g: len(g) >= len(sent), timeout=20)
    mark(b.port, "q/t", b"end")  # anything sent twice would come before it
    got += receive(c, has(b"end"))
    assert [(p.payload, p.qos) for p in got] == sent + [(b"end", 1)]


def numbered_publisher(client, port, cid, topic, qos, count):
    """A paho client queueing `count` numbered messages; paho sends them as acks allow (20 in
    flight). Returns (client, {packet id: number})."""
    c = client(port, V311, cid)
    c.connect()
    c.paho.max_inflight_messages_set(20)
    mids = {}
    for n in range(count):
        info = c.paho.publish(topic, b"%d" % n, qos)
        assert info.rc == 0
        mids[info.mid] = n
    return c, mids


@pytest.mark.parametrize("how", STOPS)
def test_publishers_interrupted_lose_nothing_acknowledged(pbroker, raw, client, how):
    b = pbroker("max_queued_messages 100000")
    c, _ = session(raw, b.port, "victim")
    assert c.subscribe([("c/1", 2), ("c/2", 2)]).codes == [2, 2]
    bye(c)
    pubs = [numbered_publisher(client, b.port, "p%d" % q, "c/%d" % q, q, 5000) for q in (1, 2)]
    for pub, _ in pubs:  # stop while both still publish
        pub.ev.wait_for(lambda pub=pub: len(pub.ev.published) >= 300, timeout=30,
                        what="300 acknowledgements")
    if how == "kill9":
        b.kill9()
    else:
        b.stop()
    acked = {}
    for q, (pub, mids) in zip((1, 2), pubs):
        pub.wait_disconnected(10)  # every ack the broker sent has been read
        with pub.ev.cond:
            acked[q] = sorted(mids[mid] for mid in pub.ev.published)
        assert acked[q][-1] < 4999, "the publisher finished before the stop"
    b.start()
    c, ack = session(raw, b.port, "victim")
    assert ack.session_present

    def numbers(got, topic):
        return [int(p.payload) for p in got if p.topic == topic and p.payload != b"end"]
    got = receive(c, lambda g: all(set(acked[q]) <= set(numbers(g, "c/%d" % q)) for q in (1, 2)),
                  timeout=60)
    mark(b.port, "c/1", b"end")
    mark(b.port, "c/2", b"end", qos=2)
    got += receive(c, lambda g: len([p for p in g if p.payload == b"end"]) == 2)
    q1, q2 = numbers(got, "c/1"), numbers(got, "c/2")
    assert q2 == sorted(set(q2)), "QoS 2: in order, exactly once"
    firsts = [n for i, n in enumerate(q1) if n not in q1[:i]]
    assert firsts == sorted(firsts), "QoS 1: in order"
    for q, seen in ((1, q1), (2, q2)):
        lost = sorted(set(acked[q]) - set(seen))
        assert not lost, "QoS %d acknowledged but lost: %r" % (q, lost[:20])


class Qos2Receiver:
    """A QoS 2 receiver as the spec has it [MQTT-4.3.3]: a message is new unless its packet id
    awaits PUBREL (then it is a resent copy); the ids awaiting PUBREL outlive a reconnection."""

    def __init__(self):
        self.awaiting, self.delivered = set(), []

    def run(self, c, done, timeout=30.0):
        deadline = time.monotonic() + timeout
        while not done(self.delivered):
            try:
                p = c.recv(max(0.01, deadline - time.monotonic()))
            except (TimeoutError, m.Closed) as e:
                pytest.fail("%r; delivered %d, last %r" % (e, len(self.delivered),
                                                          self.delivered[-3:]))
            if p.type == m.PUBLISH:
                if p.mid not in self.awaiting:
                    self.delivered.append(p.payload)
                self.awaiting.add(p.mid)
                c.send(m.pubrec(p.mid))
            elif p.type == m.PUBREL:
                self.awaiting.discard(p.mid)
                c.send(m.pubcomp(p.mid))


@pytest.mark.parametrize("how", STOPS)
def test_online_subscriber_gets_qos2_once_across_a_stop(pbroker, raw, client, how):
    b = pbroker("max_queued_messages 100000")
    c, _ = session(raw, b.port, "online")
    assert c.subscribe([("o/2", 2)]).codes == [2]
    pub, mids = numbered_publisher(client, b.port, "o-pub", "o/2", 2, 5000)
    rx = Qos2Receiver()
    rx.run(c, lambda d: len(d) >= 300)  # stopped mid-stream, handshakes half done
    if how == "kill9":
        b.kill9()
    else:
        b.stop()
    pub.wait_disconnected(10)
    with pub.ev.cond:
        acked = {b"%d" % mids[mid] for mid in pub.ev.published}
    b.start()
    c, ack = session(raw, b.port, "online")
    assert ack.session_present
    rx.run(c, lambda d: acked <= set(d))
    mark(b.port, "o/2", b"end", qos=2)
    rx.run(c, lambda d: b"end" in d)
    numbers = [int(x) for x in rx.delivered if x != b"end"]
    assert numbers == sorted(set(numbers)), "QoS 2 delivered twice or out of order"


@pytest.mark.parametrize("how", STOPS)
def test_inflight_messages_are_resent_with_their_ids(pbroker, raw, connected, how):
    b = pbroker()
    s, _ = session(raw, b.port, "fly")
    assert s.subscribe([("f/#", 2)]).codes == [2]
    pub = connected(b.port, V311, "fpub")
    sent = [("f/1", b"a1", 1), ("f/2", b"b1", 2), ("f/1", b"a2", 1), ("f/2", b"b2", 2)]
    for topic, payload, qos in sent:
        pub.publish(topic, payload, qos=qos)
    first = [s.recv_type(m.PUBLISH) for _ in sent]  # never acknowledged...
    assert [(p.topic, p.payload, p.qos) for p in first] == sent
    s.send(m.pubrec(first[1].mid))  # ...but b1's PUBREC
    assert s.recv_type(m.PUBREL).mid == first[1].mid
    bounce(b, how)
    s, ack = session(raw, b.port, "fly")
    assert ack.session_present
    again = [s.recv() for _ in range(4)]
    publishes = [p for p in again if p.type == m.PUBLISH]
    assert [(p.payload, p.mid, p.dup) for p in publishes] == [
        (p.payload, p.mid, True) for p in (first[0], first[2], first[3])]
    assert [p.mid for p in again if p.type == m.PUBREL] == [first[1].mid]  # not b1 again
    for p in publishes:
        s.send(m.puback(p.mid) if p.qos == 1 else m.pubrec(p.mid))
    s.send(m.pubcomp(first[1].mid))
    assert s.recv_type(m.PUBREL).mid == first[3].mid
    s.send(m.pubcomp(first[3].mid))
    mark(b.port, "f/1", b"end")
    assert [p.payload for p in receive(s, has(b"end"))] == [b"end"]


@pytest.mark.parametrize("how", STOPS)
def test_incoming_qos2_delivered_once_across_a_stop(pbroker, raw, how):
    b = pbroker()
    s, _ = session(raw, b.port, "in-sub")
    assert s.subscribe([("in/t", 2)]).codes == [2]
    p, _ = session(raw, b.port, "in-pub")
    p.publish("in/t", b"once", qos=2, mid=7)
    assert p.recv_type(m.PUBREC).mid == 7  # no PUBREL yet
    mark(b.port, "in/t", b"mark1")  # delivered at PUBLISH (Midge) or at PUBREL (Mosquitto)
    got = receive(s, has(b"mark1"))
    bounce(b, how)
    s, ack = session(raw, b.port, "in-sub")
    assert ack.session_present
    p, ack = session(raw, b.port, "in-pub")
    assert ack.session_present
    p.publish("in/t", b"once", qos=2, mid=7, dup=True)
    assert p.recv_type(m.PUBREC).mid == 7
    p.send(m.pubrel(7))
    assert p.recv_type(m.PUBCOMP).mid == 7
    mark(b.port, "in/t", b"mark2")
    got += receive(s, has(b"mark2"))
    assert [x.payload for x in got].count(b"once") == 1, [x.payload for x in got]


@pytest.mark.parametrize("how", STOPS)
def test_unsubscribe_and_discarded_sessions_stay_gone(pbroker, raw, how):
    b = pbroker()
    c, _ = session(raw, b.port, "unsub")
    c.subscribe([("u/kept", 1), ("u/dropped", 1)])
    c.send(m.unsubscribe(2, ["u/dropped"]))
    c.recv_type(m.UNSUBACK)
    bye(c)
    c, _ = session(raw, b.port, "discarded")
    c.subscribe([("u/kept", 1)])
    bye(c)
    c = raw(b.port, 4)
    assert c.connect("discarded", clean=True).rc == 0  # discards the session
    bye(c)
    bounce(b, how)
    c, ack = session(raw, b.port, "discarded")
    assert not ack.session_present
    c, ack = session(raw, b.port, "unsub")
    assert ack.session_present
    mark(b.port, "u/dropped", b"dropped")
    mark(b.port, "u/kept", b"kept")
    assert [p.payload for p in receive(c, has(b"kept"))] == [b"kept"]


@pytest.mark.parametrize("how", STOPS)
def test_message_expiry_runs_while_the_broker_is_down(pbroker, raw, connected, how):
    b = pbroker()
    c, _ = session(raw, b.port, "exp", 5, expiry=300)
    c.subscribe([("x/t", m.sub_options(1))])
    bye(c)
    p = raw(b.port, 5)
    assert p.connect("xpub").rc == 0
    for mid, (topic, payload, expiry, retain) in enumerate([
            ("x/t", b"short", 1, False), ("x/t", b"long", 600, False),
            ("x/r1", b"short", 1, True), ("x/r2", b"long", 600, True)], 1):
        p.publish_acked(topic, payload, qos=1, retain=retain, mid=mid,
                        properties=[(m.P_MESSAGE_EXPIRY, expiry)])
    if how == "kill9":
        b.kill9()
    else:
        b.stop()
    time.sleep(2.2)  # past the 1 s expiry (whole seconds in Mosquitto), with the broker down
    b.start()
    c, ack = session(raw, b.port, "exp", 5, expiry=300)
    assert ack.session_present
    got = receive(c, has(b"long"))  # "short" was queued first
    assert [x.payload for x in got] == [b"long"]
    if how == "restart":
        # "short" took id 1 when queued and the store kept both ids (issue 14, F). (After a
        # kill -9 a message still in transit between workers is routed again: new ids.)
        assert got[0].mid == 2
    assert 0 < got[0].prop(m.P_MESSAGE_EXPIRY) <= 598  # the time down counts
    assert retained_set(connected, b.port, "x") == {"x/r2": b"long"}


def will_client(raw, port, cid, delay):
    c = raw(port, 5)
    will = dict(topic="will/" + cid, payload=b"lost " + cid.encode(), qos=1,
                properties=[(m.P_WILL_DELAY, delay)] if delay else [])
    assert c.connect(cid, clean=False, properties=[(m.P_SESSION_EXPIRY, 300)], will=will).rc == 0
    return c


@pytest.mark.midge_only(reason="Mosquitto 2.0.11 keeps no wills in its database")
@pytest.mark.parametrize("how", ["restart", "kill9"])
def test_wills_of_sessions_online_at_the_stop(pbroker, raw, how):
    """Their connections ended without DISCONNECT: each will goes out once, after its delay,
    unless the client is back in time."""
    b = pbroker()
    watcher, _ = session(raw, b.port, "watcher")
    assert watcher.subscribe([("will/#", 1)]).codes == [1]
    bye(watcher)
    will_client(raw, b.port, "now", 0)
    will_client(raw, b.port, "later", 2)
    bounce(b, how)
    _, ack = session(raw, b.port, "later", 5, expiry=300)  # in time: no will
    assert ack.session_present
    watcher, _ = session(raw, b.port, "watcher")
    got = receive(watcher, has(b"lost now"))
    time.sleep(2.5)  # past the 2 s will delay
    mark(b.port, "will/end", b"end")
    got += receive(watcher, has(b"end"))
    assert [x.payload for x in got] == [b"lost now", b"end"]


@pytest.mark.parametrize("proto", [4, 5])
def test_clean_sessions_leave_nothing_behind(pbroker, raw, proto):
    b = pbroker()
    gone = raw(b.port, proto)
    assert gone.connect("gone", clean=True).rc == 0
    gone.subscribe([("g/t", 1)])
    bye(gone)
    online = raw(b.port, proto)  # still connected at the stop
    assert online.connect("online", clean=True).rc == 0
    online.subscribe([("g/t", 1)])
    if proto == 5:  # clean start 0 without expiry: the session ends at disconnect
        zero, _ = session(raw, b.port, "zero", 5)
        zero.subscribe([("g/t", 1)])
        bye(zero)
    kept, _ = session(raw, b.port, "kept", proto, expiry=300 if proto == 5 else None)
    kept.subscribe([("g/t", 1)])
    bye(kept)
    b.restart()
    for cid in ["gone", "online"] + (["zero"] if proto == 5 else []):
        c, ack = session(raw, b.port, cid, proto)
        assert not ack.session_present, cid
        bye(c)
    c, ack = session(raw, b.port, "kept", proto, expiry=300 if proto == 5 else None)
    assert ack.session_present  # the store works: the persistent one is there


@pytest.mark.midge_only(reason="Mosquitto 2.0.11 does not expire sessions it loads (a FIXME in "
                        "persist_read.c): it restarts their expiry")
def test_session_expiry_runs_while_the_broker_is_down(pbroker, raw):
    b = pbroker()
    for cid, expiry in (("short", 2), ("long", 300)):
        c, _ = session(raw, b.port, cid, 5, expiry)
        c.subscribe([("e/t", 1)])
        bye(c)
    b.stop()
    time.sleep(2.5)  # past the 2 s expiry, with no broker to ask
    b.start()
    c, ack = session(raw, b.port, "short", 5, expiry=2)
    assert not ack.session_present
    c, ack = session(raw, b.port, "long", 5, expiry=300)
    assert ack.session_present


@pytest.mark.midge_only(reason="persistence_sync is a Midge option")
def test_persistence_sync_survives_a_crash(pbroker, raw, connected):
    b = pbroker("persistence_sync true")
    connected(b.port, V311, "spub").publish("sync/t", b"synced", qos=1, retain=True)
    c, _ = session(raw, b.port, "sync")
    c.subscribe([("sync/q", 2)])
    bye(c)
    connected(b.port, V311, "spub2").publish("sync/q", b"queued", qos=2)
    bounce(b, "kill9")
    assert retained_set(connected, b.port, "sync") == {"sync/t": b"synced"}
    c, ack = session(raw, b.port, "sync")
    assert ack.session_present
    assert [p.payload for p in receive(c, has(b"queued"))] == [b"queued"]


# ------------------------------------------------------------------ a bad location

def run_broker(tmp_path, lines, timeout=15, binary=BROKER_BIN, env=None):
    """Runs the broker in the foreground; returns (exit code or None if it was still up after
    `timeout`, stderr). A broker still up is stopped."""
    conf = tmp_path / "fg.conf"
    conf.write_text(keep_root("\n".join(["listener %d 127.0.0.1" % free_port(), "allow_anonymous true"]
                                        + list(lines)) + "\n"))
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, cwd=str(tmp_path), env=env)
    try:
        _, err = proc.communicate(timeout=timeout)
        return proc.returncode, err.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
        return None, err.decode("utf-8", "replace")


@pytest.mark.midge_only(reason="Mosquitto 2.0.11 starts and fails only when it saves")
def test_missing_location_refuses_to_start(tmp_path):
    missing = tmp_path / "no" / "such"
    rc, err = run_broker(tmp_path, pconf(missing))
    assert rc is not None and rc > 0, "exit code %r, stderr %r" % (rc, err)
    assert [line for line in err.splitlines() if str(missing) in line], err


# ------------------------------------------------------------------ the store module

@pytest.fixture
def lone_binary(tmp_path):
    """A copy of the broker in a folder of its own, where no store module is (neither beside it
    nor in ../lib*/midge), and an environment without the MIDGE_STORE_MODULE override."""
    d = tmp_path / "bin"
    d.mkdir()
    binary = d / "midge"
    shutil.copy2(BROKER_BIN, binary)
    env = {k: v for k, v in os.environ.items() if k != "MIDGE_STORE_MODULE"}
    return binary, env


def test_broker_without_its_store_module_serves_without_persistence(lone_binary, tmp_path, connected):
    binary, env = lone_binary
    conf = tmp_path / "plain.conf"
    port = free_port()
    conf.write_text(keep_root("listener %d 127.0.0.1\nallow_anonymous true\n" % port))
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env)
    try:
        wait_until(lambda: port_open(port) or proc.poll() is not None, timeout=10, what="the broker to listen")
        assert proc.poll() is None, "exit code %r" % proc.returncode
        c = connected(port, V311, "lone")
        c.subscribe("lone/t", qos=1)
        c.publish("lone/t", b"x", qos=1)
        assert [m.payload for m in c.wait_messages(1)] == [b"x"]
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


@pytest.mark.midge_only(reason="Midge's store is a module of its own (midge_store.so)")
def test_missing_store_module_refuses_to_start(lone_binary, loc, tmp_path):
    """persistence true and no module where the broker looks: one error line naming the path it
    tried, and a non-zero exit before any listener opens."""
    binary, env = lone_binary
    rc, err = run_broker(tmp_path, pconf(loc), binary=str(binary), env=env)
    assert rc is not None and rc > 0, "exit code %r, stderr %r" % (rc, err)
    lines = [line for line in err.splitlines() if "store module" in line]
    assert len(lines) == 1, err
    assert str(binary.parent) in lines[0] and "midge_store.so" in lines[0], lines[0]
    assert "No such file" in lines[0], lines[0]  # dlerror()'s reason


@pytest.mark.midge_only(reason="MIDGE_STORE_MODULE is Midge's test hook")
def test_store_module_that_is_no_library_refuses_to_start(loc, tmp_path):
    """MIDGE_STORE_MODULE names a file that is not a shared object: refused, with dlerror()."""
    fake = tmp_path / "midge_store.so"
    fake.write_text("not a library\n")
    rc, err = run_broker(tmp_path, pconf(loc), env=dict(os.environ, MIDGE_STORE_MODULE=str(fake)))
    assert rc is not None and rc > 0, "exit code %r, stderr %r" % (rc, err)
    lines = [line for line in err.splitlines() if str(fake) in line]
    assert len(lines) == 1 and "store module" in lines[0], err


@pytest.fixture
def read_only_dir(tmp_path):
    """A directory nobody can write: chmod 555, or as root (where modes do not bind) a
    read-only tmpfs."""
    d = tmp_path / "ro"
    d.mkdir()
    if os.getuid() != 0:
        d.chmod(0o555)
        yield d
        d.chmod(0o755)
        return
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(d)],
                      capture_output=True).returncode != 0:
        pytest.skip("root without mount: cannot make a read-only directory")
    try:
        yield d
    finally:  # lazily: a broker still running must not leave the mount behind
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


@pytest.mark.midge_only(reason="Mosquitto 2.0.11 starts and fails only when it saves")
def test_read_only_location_is_refused_or_reported(read_only_dir, broker):  # broker stops first
    b = broker(pconf(read_only_dir), start=False)
    b.start(wait=False)
    wait_until(lambda: not b.alive() or port_open(b.port), timeout=15,
               what="the broker to exit or listen")
    if not b.alive():
        rc = b.wait_exit()
        assert rc > 0, "exit code %r (negative: killed by a signal)" % rc
        assert str(read_only_dir) in b.log_text(), b.log_tail()
        return
    wait_until(lambda: str(read_only_dir) in b.log_text(), what="an error naming the directory")
    c = m.RawClient(b.port, 5)
    try:
        assert c.connect("ro").rc == 0
        assert c.publish_acked("ro/t", b"x", qos=1, retain=True).rc in (0x97, 0x80)
    finally:
        c.close()


# ------------------------------------------------------------------ a damaged store

def retained_set(connected, port, prefix):
    """Retained messages under prefix/ now served, as {topic: payload} (marker excluded)."""
    sub = connected(port, V311, "")
    sub.subscribe(prefix + "/#", 1)
    mark(port, prefix + "/~marker", b"m")
    sub.wait_messages(1, topic=prefix + "/~marker", timeout=10)
    return {x.topic: x.payload for x in sub.messages() if x.retain}


def payload_of(i):
    return b"%05d:" % i + bytes([i % 251]) * 300


@CRASH
def test_truncated_log_is_survived(pbroker, loc, connected):
    b = pbroker()
    pub = connected(b.port, V311, "tpub")
    for i in range(60):
        pub.publish("tr/%d" % i, payload_of(i), qos=1, retain=True)
    b.kill9()
    logs = sorted(store_dir(loc).glob("*.log"), key=lambda f: f.stat().st_mtime)
    assert logs and logs[-1].stat().st_size > 500, "no write-ahead log in %s" % store_dir(loc)
    os.truncate(logs[-1], logs[-1].stat().st_size - 150)  # tears the last record(s)
    offset = b.log.stat().st_size
    b.start()
    kept = retained_set(connected, b.port, "tr")
    for topic, payload in kept.items():  # what is served is right
        assert payload == payload_of(int(topic.split("/")[1])), topic
    assert len(kept) >= 58, "more than the torn tail lost: %d of 60 left" % len(kept)
    assert damage_logged(b, offset), b.log_tail()
    mark(b.port, "tr/new", b"new")
    assert b.alive()


@pytest.mark.midge_only(reason="Midge's store files (RocksDB tables) and log lines")
def test_corrupted_table_is_survived(pbroker, loc, connected):
    b = pbroker()
    pub = connected(b.port, V311, "cpub")
    for i in range(1000):
        pub.publish("co/%d" % i, payload_of(i), qos=1 if i % 100 == 99 else 0, retain=True)
    b.restart()  # the log replayed at start-up goes into a table (*.sst)
    b.stop()
    tables = sorted(store_dir(loc).glob("*.sst"), key=lambda f: f.stat().st_size)
    assert tables, "no table in %s: %s" % (store_dir(loc), os.listdir(store_dir(loc)))
    with open(tables[-1], "r+b") as f:
        f.seek(tables[-1].stat().st_size // 2)
        f.write(b"\xa5" * 64)
    offset = b.log.stat().st_size
    b.start()
    kept = retained_set(connected, b.port, "co")
    for topic, payload in kept.items():  # damaged records are skipped, never served
        assert payload == payload_of(int(topic.split("/")[1])), topic
    assert damage_logged(b, offset), b.log_tail()
    pub = connected(b.port, V5, "cpub2")
    pub.publish("co/new", b"new", qos=1, retain=True)
    assert retained_set(connected, b.port, "co").get("co/new") == b"new"


# ------------------------------------------------------------------ write faults

def durable_publish(port, topic, payload, proto=5):
    """A retained QoS 1 publish on a fresh connection: the PUBACK's reason code, or None when
    the broker closed the connection instead."""
    c = m.RawClient(port, proto, timeout=10)
    try:
        assert c.connect("").rc == 0
        return c.publish_acked(topic, payload, qos=1, retain=True).rc
    except m.Closed:
        return None
    finally:
        c.close()


OK = (0, 0x10)  # 0x10: no matching subscribers
REFUSED = (0x97, 0x80)


def refused(port, topic, proto=5, tries=8):
    """While the store fails, durable work is refused: the write that meets the fault costs its
    client the connection (its acknowledgement was held; once per worker, each has its own
    journal), later ones get a reason code (v5) or a disconnect (v3.1.1)."""
    seen = []
    for _ in range(tries):
        seen.append(durable_publish(port, topic, b"refused", proto))
        assert seen[-1] in (None,) + REFUSED, "acknowledged while the store fails: %r" % seen
        if seen[-1] is not None:
            return
    assert proto != 5, "no v5 reason code in %d tries: %r" % (tries, seen)


def accepted_again(port, topic, payload):
    """Once the store can write, durable work is acknowledged again on every worker (each
    retries its own journal; new connections go to the workers in turn)."""
    wait_until(lambda: all(durable_publish(port, topic, payload) in OK for _ in range(8)),
               timeout=15, what="8 QoS 1 publishes in a row acknowledged once the store can write")


@pytest.mark.midge_only(reason="MIDGE_STORE_FAULT_FILE is Midge's test hook")
def test_write_faults_refuse_durable_work_and_lose_nothing(pbroker, tmp_path, connected):
    fault = tmp_path / "fault"
    b = pbroker(env={"MIDGE_STORE_FAULT_FILE": str(fault)})
    assert durable_publish(b.port, "w/before", b"kept") in OK
    sub = connected(b.port, V311, "live")
    sub.subscribe("live/t", 0)
    fault.write_bytes(b"")
    refused(b.port, "w/during")
    refused(b.port, "w/during3", proto=4)
    mark(b.port, "live/t", b"qos0 still flows", qos=0)
    sub.wait_messages(1, topic="live/t")
    fault.unlink()
    accepted_again(b.port, "w/after", b"after")
    b.restart()
    kept = retained_set(connected, b.port, "w")
    assert kept.get("w/before") == b"kept" and kept.get("w/after") == b"after", kept


@pytest.fixture
def small_fs(tmp_path):
    """A 4 MiB tmpfs (root only): a disk that fills up; grow(size) makes room."""
    d = tmp_path / "small"
    d.mkdir()
    if os.getuid() != 0 or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(d)],
            capture_output=True).returncode != 0:
        pytest.skip("needs root and mount for a small tmpfs")

    def grow(size):
        subprocess.run(["mount", "-o", "remount,size=" + size, str(d)], check=True)
    try:
        yield d, grow
    finally:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


@pytest.mark.midge_only(reason="Mosquitto 2.0.11 writes only when it saves")
def test_disk_full_refuses_durable_work_and_loses_nothing(small_fs, broker, connected):
    where, grow = small_fs
    b = broker(pconf(where))
    sub = connected(b.port, V311, "live")
    sub.subscribe("live/t", 0)
    acked = []
    for i in range(200):  # 64 KiB each: 12.5 MiB at most
        rc = durable_publish(b.port, "full/%d" % i, bytes([i]) * 65536)
        if rc not in OK:
            assert rc in (None,) + REFUSED, "PUBACK %#x" % rc
            break
        acked.append(i)
    else:
        pytest.fail("200 x 64 KiB acknowledged on a 4 MiB file system")
    refused(b.port, "full/x")
    mark(b.port, "live/t", b"qos0 still flows", qos=0)
    sub.wait_messages(1, topic="live/t")
    grow("64m")
    accepted_again(b.port, "full/room", b"room")
    b.restart()
    kept = retained_set(connected, b.port, "full")
    for i in acked + ["room"]:
        want = b"room" if i == "room" else bytes([i]) * 65536
        assert kept.get("full/%s" % i) == want, "acknowledged, then lost: %s" % i


# ------------------------------------------------------------------ deferred deliveries
# A QoS 1 message to a connected persistent subscriber is written only if the subscriber has
# not acknowledged it when the publisher's PUBACK is due (Broker::end_turn): either way the
# PUBACK leaves only once the message is safe.

@pytest.mark.parametrize("how", STOPS)
def test_an_unacknowledged_delivery_is_written_before_the_publishers_puback(pbroker, raw, how):
    b = pbroker()
    s, _ = session(raw, b.port, "slow-sub")
    assert s.subscribe([("d/t", 1)]).codes == [1]
    pub = raw(b.port, 4)
    assert pub.connect("d-pub").rc == 0
    assert pub.publish_acked("d/t", b"kept", qos=1).type == m.PUBACK
    first = s.recv_type(m.PUBLISH)  # received, never acknowledged
    assert first.payload == b"kept"
    bounce(b, how)
    s, ack = session(raw, b.port, "slow-sub")
    assert ack.session_present
    again = s.recv_type(m.PUBLISH)
    assert (again.payload, again.dup, again.mid) == (b"kept", True, first.mid)


def test_an_acknowledged_delivery_leaves_nothing_behind(pbroker, raw):
    """(A clean stop: after kill -9 the erasure of an acknowledged delivery may not be written
    yet, and a second copy is what QoS 1 allows.)"""
    b = pbroker()
    s, _ = session(raw, b.port, "quick-sub")
    assert s.subscribe([("d/t", 1)]).codes == [1]
    pub = raw(b.port, 4)
    assert pub.connect("d-pub").rc == 0
    pub.publish("d/t", b"once", qos=1, mid=7)
    got = s.recv_type(m.PUBLISH)
    s.send(m.puback(got.mid))
    assert pub.recv_type(m.PUBACK).mid == 7
    bounce(b, "restart")
    s, ack = session(raw, b.port, "quick-sub")
    assert ack.session_present
    mark(b.port, "d/t", b"after the restart")
    assert s.recv_type(m.PUBLISH).payload == b"after the restart"  # not "once" again


def test_pubacks_keep_the_order_of_their_publishes(pbroker, raw):
    """PUBACKs held for deferred deliveries and PUBACKs that need nothing (no subscriber) go
    in the order of the PUBLISHes [MQTT-4.6.0-2]."""
    b = pbroker()
    s, _ = session(raw, b.port, "order-sub")
    assert s.subscribe([("o/kept", 1)]).codes == [1]
    pub = raw(b.port, 4)
    assert pub.connect("o-pub").rc == 0
    for mid in range(1, 41):
        pub.publish("o/kept" if mid % 3 else "o/nobody", b"%d" % mid, qos=1, mid=mid)
    acks = [pub.recv_type(m.PUBACK).mid for _ in range(40)]
    assert acks == list(range(1, 41))
    got = receive(s, lambda g: len(g) >= 27)
    assert [p.payload for p in got] == [b"%d" % i for i in range(1, 41) if i % 3]


# ------------------------------------------------------------------ a worker's write fails

def publish_as(port, cid, topic, payload, retain=False):
    """A v5 QoS 1 publish from client `cid` (clean): the PUBACK's reason code, or None when the
    broker closed the connection instead."""
    c = m.RawClient(port, 5, timeout=10)
    try:
        assert c.connect(cid).rc == 0
        return c.publish_acked(topic, payload, qos=1, retain=retain).rc
    except m.Closed:
        return None
    finally:
        c.close()


def fail_writes_of(fault, thread):
    """Names the thread whose commits fail. Written whole at once: a worker reading a half
    written (empty) file would fail too."""
    tmp = fault.with_suffix(".tmp")
    tmp.write_text(thread)
    os.replace(tmp, fault)


def ids_on_both_workers(b, fault):
    """With worker 1's writes failing (the fault file names its thread, midge-w1), a durable
    publish is acknowledged on worker 0 and refused on worker 1: one client id of each. Then
    the fault goes and worker 1 writes again."""
    fail_writes_of(fault, "midge-w1")
    found = {}
    for i in range(100):
        cid = "fw-%d" % i
        rc = publish_as(b.port, cid, "probe/" + cid, b"x", retain=True)
        found.setdefault(0 if rc in OK else 1, cid)
        if len(found) == 2:
            break
    assert len(found) == 2, found
    fault.unlink()
    wait_until(lambda: publish_as(b.port, found[1], "probe/again", b"y", retain=True) in OK, 15,
               what="worker 1 writing again")
    # The log is written every 100 ms: once this line is in, so is everything before it, and
    # the counts the tests take from here on start from the truth.
    wait_until(lambda: "The store writes again" in b.log_text(), 5, what="the log flushed")
    return found[0], found[1]


def store_errors(b):
    return b.log_text().count("Error: the store could not write")


def published_while_worker_1_fails(pbroker, tmp_path, raw, filter_, topic, payload):
    """Two workers; an offline persistent session on worker 1 subscribed to `filter_`; then,
    while worker 1 cannot write, `payload` published on `topic` from worker 0 and acknowledged
    there. Returns (broker, fault file, a client id on worker 0, the session's id)."""
    fault = tmp_path / "fault"
    b = pbroker("thread_count 2", env={"MIDGE_STORE_FAULT_FILE": str(fault)})
    on_w0, on_w1 = ids_on_both_workers(b, fault)
    s, _ = session(raw, b.port, on_w1)
    assert s.subscribe([(filter_, 1)]).codes == [1]
    bye(s)
    errors = store_errors(b)
    fail_writes_of(fault, "midge-w1")  # worker 1 cannot write what it does with the message
    assert publish_as(b.port, on_w0, topic, payload) == 0
    wait_until(lambda: store_errors(b) > errors, 10, what="worker 1's write failing")
    return b, fault, on_w0, on_w1


@pytest.mark.midge_only(reason="thread_count and MIDGE_STORE_FAULT_FILE are Midge's own")
def test_a_receiving_workers_failed_write_is_made_good(pbroker, tmp_path, raw):
    """A message acknowledged by the publisher's worker, whose queueing for an offline
    persistent session failed to write on the session's worker: once that worker writes again,
    it writes what the store missed (its sessions whole) before telling the publisher's worker
    it has the message, so a crash afterwards loses nothing."""
    b, fault, on_w0, on_w1 = published_while_worker_1_fails(pbroker, tmp_path, raw, "gap/t", "gap/t",
                                                            b"queued while w1 fails")
    writes_again = b.log_text().count("The store writes again")
    fault.unlink()
    wait_until(lambda: b.log_text().count("The store writes again") > writes_again, 10,
               what="worker 1 writing again")
    # Give worker 0 time to see worker 1's marker and erase its transit record (a tick is
    # 100 ms): before the fix, the queued message was then in no record at all.
    time.sleep(0.5)
    assert publish_as(b.port, on_w0, "gap/t", b"after") == 0
    bounce(b, "kill9")
    s, ack = session(raw, b.port, on_w1)
    assert ack.session_present
    got = receive(s, lambda g: len(g) >= 2)
    assert [p.payload for p in got] == [b"queued while w1 fails", b"after"]


@pytest.mark.midge_only(reason="thread_count and MIDGE_STORE_FAULT_FILE are Midge's own")
def test_a_shared_delivery_to_another_worker_survives_a_crash(pbroker, tmp_path, raw):
    """A $share message acknowledged to its publisher and handed to the worker of the member
    it picked (an offline persistent session) is journaled by the publisher's worker until that
    worker has written it: a crash before then delivers it after the restart."""
    b, fault, on_w0, on_w1 = published_while_worker_1_fails(pbroker, tmp_path, raw, "$share/g/sh/t", "sh/t",
                                                            b"shared")
    b.kill9()
    fault.unlink()
    b.start()
    s, ack = session(raw, b.port, on_w1)
    assert ack.session_present
    got = receive(s, lambda g: len(g) >= 1)
    assert [p.payload for p in got] == [b"shared"]


# ------------------------------------------------------------------ configuration

def test_tutorial_lines(broker, loc, connected):
    """Debian's mosquitto.conf and the tutorial: trailing slash, autosave options."""
    b = broker(["persistence true", "persistence_location %s/" % loc, "autosave_interval 1800",
                "autosave_on_changes false"] + pconf(loc)[2:])
    connected(b.port, V311, "tpub").publish("tut/t", b"kept", qos=1, retain=True)
    b.restart()
    assert retained_set(connected, b.port, "tut") == {"tut/t": b"kept"}
    b.stop()
    assert os.listdir(loc), "nothing written into %s" % loc


def test_persistence_file_names_the_store(broker, loc, connected):
    b = broker(pconf(loc, "persistence_file custom.db"))
    connected(b.port, V311, "npub").publish("pf/t", b"kept", qos=1, retain=True)
    b.restart()
    assert retained_set(connected, b.port, "pf") == {"pf/t": b"kept"}
    b.stop()
    # Mosquitto's file (for Midge, the store's key) and Midge's store directory beside it.
    assert sorted(os.listdir(loc)) == ["custom.db"] + ([] if IS_MOSQUITTO else ["custom.db.midge"])


@pytest.mark.midge_only(reason="Mosquitto joins location and file without a separator")
def test_location_without_trailing_slash(broker, loc, connected):
    b = broker(["persistence true", "persistence_location %s" % loc])
    connected(b.port, V311, "spub").publish("ns/t", b"kept", qos=1, retain=True)
    b.restart()
    assert retained_set(connected, b.port, "ns") == {"ns/t": b"kept"}
    assert store_dir(loc).is_dir()


@pytest.mark.parametrize("setting", [["persistence false"], []], ids=["false", "default"])
def test_persistence_off_writes_nothing(broker, loc, raw, connected, setting):
    b = broker(setting + ["persistence_location %s/" % loc] + pconf(loc)[2:])
    connected(b.port, V311, "opub").publish("off/t", b"x", qos=1, retain=True)
    c, _ = session(raw, b.port, "off-session")
    c.subscribe([("off/q", 1)])
    bye(c)
    connected(b.port, V311, "opub2").publish("off/q", b"queued", qos=1)
    b.restart()
    assert os.listdir(loc) == []
    assert retained_set(connected, b.port, "off") == {}
    c, ack = session(raw, b.port, "off-session")
    assert not ack.session_present


# ------------------------------------------------------------------ bounds

def test_a_subscriber_that_never_acknowledges_bounds_what_its_publisher_makes_held(pbroker, raw):
    """A persistent subscriber reads every QoS 1 message and acknowledges none, while a
    publisher sends 20 MB at it: every copy sent at once is held unwritten for its grace, then
    written, and its PUBACK held meanwhile (Midge's deferred deliveries). Every PUBACK comes,
    in order, and the broker holds no more than the subscriber's bounded queue. One worker: with
    two, a message handed between workers is first journaled whole by its publisher's worker,
    and the store's write buffers (up to 3 x 16 MiB, README) would hide the bound tested here."""
    b = pbroker("max_queued_messages 100", "max_inflight_messages 20", "thread_count 1")
    sub, _ = session(raw, b.port, "never-acks")
    assert sub.subscribe([("held/t", 1)]).codes == [1]
    reading = threading.Event()
    read = [0]

    def drain():  # reads everything, acknowledges nothing
        sub.sock.settimeout(0.2)
        while not reading.is_set():
            try:
                data = sub.sock.recv(1 << 16)
            except socket.timeout:
                continue
            except OSError:
                return
            if not data:
                return
            read[0] += len(data)

    t = threading.Thread(target=drain, daemon=True)
    t.start()
    pub = m.RawClient(b.port, 4, timeout=20)
    assert pub.connect("flood-pub").rc == 0
    rss0 = proc_rss_kb(b.pid)
    payload = b"h" * 1000
    for _ in range(200):
        pub.send(b"".join(m.publish("held/t", payload, qos=1, mid=i) for i in range(1, 101)))
        assert [pub.recv_type(m.PUBACK).mid for _ in range(100)] == list(range(1, 101))
    rss1 = proc_rss_kb(b.pid)
    reading.set()
    t.join(5)
    print("never-acking subscriber: read %d KB, broker RSS %d -> %d KB" % (read[0] // 1024, rss0, rss1))
    assert read[0] > 20 * 1000  # it got its inflight messages at least
    if os.environ.get("MIDGE_SANITIZED") != "1":  # ASan's quarantine holds freed memory
        assert rss1 - rss0 < 16 * 1024, (rss0, rss1)
    mark(b.port, "held/other", b"still serving")
