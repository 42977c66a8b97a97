"""Large payloads (issue 9: output as slices of the shared message block).

Payloads of 1 KiB and more leave the broker from the message block itself, not copied per
subscriber (src/broker/broker_publish.cc kSharedPayloadMin); over WebSockets the slices move
into the frames. These tests check every byte of such payloads at many subscribers over TCP
and WebSockets, a slow subscriber's memory bound, and QoS 1 resends of large in-flight
messages after a reconnect.
"""
import hashlib
import os
import socket
import struct
import time

import pytest

from conftest import V311, V5, Client, free_port, port_open, proc_rss_kb, wait_until
import mqttraw
from mqttraw import PUBLISH, PUBACK, P_SESSION_EXPIRY
from test_websockets import WsClient

KIB, MIB = 1024, 1024 * 1024
# 1023 and 1024 sit on either side of kSharedPayloadMin (copied / sent as a slice).
SIZES = [1023, 1024, 16 * KIB, 200 * KIB, 16 * KIB, 200 * KIB]
# ASan's quarantine keeps freed memory resident: the RSS bounds only hold without it
# (as in test_limits.py and test_attacks_broker.py).
SANITIZED = os.environ.get("MIDGE_SANITIZED") == "1"
# QoS 0 must not be dropped here: these tests check delivery, not the output bound
# (test_slow_subscriber_memory_stays_bounded does).
NO_DROP = ["max_pending_output %d" % (256 * MIB)]


def digest(data):
    return hashlib.sha256(data).hexdigest()


def publish_all(port, paho_clients):
    """Publishes SIZES at QoS 0, 1 and 2 on topics big/0, big/1, big/2 (random bytes, each
    message different), interleaved, without waiting between them; waits for every
    acknowledgement. Returns {topic: [sha256 of each payload, in publish order]}."""
    pub = paho_clients(Client, port, V5, "big-publisher")
    pub.connect()
    sent = {"big/%d" % q: [] for q in range(3)}
    infos = []
    for size in SIZES:
        for qos in range(3):
            payload = os.urandom(size)
            sent["big/%d" % qos].append(digest(payload))
            infos.append(pub.publish("big/%d" % qos, payload, qos, wait=False))
    pub.ev.wait_for(lambda: all(i.mid in pub.ev.published for i in infos), timeout=30,
                    what="all publishes acknowledged")
    return sent


def check_received(msgs, sent, sub_qos, who):
    """Every message on every topic, whole, in publish order per topic [MQTT-4.6.0-5], at
    min(publish QoS, subscription QoS)."""
    total = sum(len(v) for v in sent.values())
    assert len(msgs) == total, "%s: %d messages, expected %d" % (who, len(msgs), total)
    for topic, hashes in sent.items():
        got = [m for m in msgs if m.topic == topic]
        assert [digest(m.payload) for m in got] == hashes, "%s: %s differs" % (who, topic)
        qos = min(int(topic[-1]), sub_qos)
        assert [m.qos for m in got] == [qos] * len(got), who


@pytest.fixture
def paho_clients():
    """Factory: paho_clients(cls, port, version, client_id) -> Client or WsClient; all stopped
    at teardown."""
    made = []

    def make(cls, port, version=V311, client_id=""):
        c = cls(port, version, client_id)
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()


# ------------------------------------------------------------------ (a) TCP fan-out

def test_large_payloads_to_20_tcp_subscribers(broker, paho_clients):
    """1 KiB to 200 KiB payloads at QoS 0, 1 and 2 to 20 subscribers (v3.1.1 and v5,
    subscription QoS 0, 1 and 2): every subscriber gets every byte, in order."""
    b = broker(NO_DROP)
    subs = []
    for i in range(20):
        version = V311 if i % 2 else V5
        c = paho_clients(Client, b.port, version, "sub-%d" % i)
        c.connect()
        c.subscribe("big/#", i % 3)
        subs.append((c, i % 3, "sub-%d" % i))
    sent = publish_all(b.port, paho_clients)
    total = sum(len(v) for v in sent.values())
    for c, sub_qos, name in subs:
        check_received(c.wait_messages(total, timeout=30), sent, sub_qos, name)
    time.sleep(0.2)
    for c, sub_qos, name in subs:  # nothing twice
        check_received(c.messages(), sent, sub_qos, name)


def whole_read_stream(count, topic_of, junk_topic=None):
    """`count` PUBLISH packets of 16-40 KiB payloads (each different, its index in its first 4
    bytes), grouped three by three (about 64 KiB, one read of the broker) or, with
    `junk_topic`, each alone with 48 KiB of small QoS 0 messages to that topic after it, so
    that it is the one large payload in its read. Returns ([bytes to send in one go], [sha256
    of each payload])."""
    groups, hashes, group = [], [], b""
    for i in range(count):
        size = 16 * KIB + (i * 4099) % (24 * KIB)
        payload = struct.pack("!I", i) + os.urandom(size - 4)
        hashes.append(digest(payload))
        group += mqttraw.publish(topic_of(i), payload)
        if junk_topic:
            group += mqttraw.publish(junk_topic, b"j" * 1000) * 48
        if junk_topic or i % 3 == 2 or i == count - 1:
            groups.append(group)
            group = b""
    return groups, hashes


def test_whole_read_payloads_stay_intact_while_blocks_are_reused(broker, paho_clients, raw):
    """Payloads of 16 KiB and more that arrive whole in one read are sent from the broker's
    read block, not copied (src/broker/input_block.h); the next reads must then go elsewhere
    until the last subscriber has written them. Two workers, five live subscribers (v3.1.1 and
    v5) and one that reads nothing until the publisher is done, so that its output holds many
    blocks while the publisher's reads go on: every subscriber gets every byte, in order. A
    retained one among them is copied and replayed whole."""
    b = broker(NO_DROP + ["thread_count 2"])
    subs = []
    for i in range(5):
        c = paho_clients(Client, b.port, V311 if i % 2 else V5, "whole-%d" % i)
        c.connect()
        c.subscribe("whole/#", i % 2)
        subs.append(c)
    late = raw(b.port)
    late.connect("whole-late")
    late.subscribe([("whole/#", 0)])
    count = 300
    groups, hashes = whole_read_stream(count, lambda i: "whole/%d" % (i % 3))
    pub = raw(b.port)
    pub.connect("whole-pub")
    for g in groups:
        pub.send(g)
    retained = os.urandom(20 * KIB)
    pub.send(mqttraw.publish("whole/kept", retained, retain=True))
    pub.publish_acked("whole/end", b"", qos=1)

    def check(payloads, who):
        big = [p for p in payloads if len(p) >= 16 * KIB and p != retained]
        assert len(big) == count, "%s: %d of %d" % (who, len(big), count)
        for i, p in enumerate(big):
            assert struct.unpack("!I", p[:4])[0] == i, "%s: message %d out of order" % (who, i)
            assert digest(p) == hashes[i], "%s: message %d damaged" % (who, i)
        assert retained in payloads, who

    for n, c in enumerate(subs):
        msgs = c.wait_messages(count + 2, timeout=30)
        check([m.payload for m in msgs], "whole-%d" % n)
    got = []
    while True:
        p = late.recv(10)
        assert p.type == PUBLISH, p
        if p.topic == "whole/end":
            break
        got.append(p.payload)
    check(got, "whole-late")
    fresh = raw(b.port)
    fresh.connect("whole-fresh")
    fresh.subscribe([("whole/kept", 0)])
    assert fresh.recv_type(PUBLISH, 10).payload == retained


@pytest.mark.parametrize("piece", [1000, 16 * KIB + 7, 60000, 100000])
def test_large_packets_arriving_in_pieces(broker, paho_clients, raw, piece):
    """Packets of 5 B to 600 KiB sent in pieces of `piece` bytes with a pause after each,
    so that the broker finds them split at every kind of place, the socket drained in
    between: a split packet then waits in a block of its own (larger than 16 KiB and at most a
    read budget ahead of what came) or in the connection's buffer (larger ones), or moves to
    the start of the next read's block. Every subscriber gets every byte, in order."""
    b = broker(NO_DROP)
    subs = []
    for i in range(3):
        c = paho_clients(Client, b.port, V5 if i else V311, "pieces-%d" % i)
        c.connect()
        c.subscribe("pieces/#", i % 2)
        subs.append(c)
    # Runs of one size too: after a packet larger than a block, the next read goes into a block
    # of the same size.
    sizes = [16 * KIB, 20000, 64 * KIB, 70000, 128 * KIB, 256 * KIB, 300000, 600000, 17000, 5] + \
        [70000] * 5 + [64 * KIB + 100] * 4 + [70001, 70000, 69999, 100]
    payloads = [struct.pack("!I", i) + os.urandom(n - 4) if n >= 4 else b"x" * n
                for i, n in enumerate(sizes)]
    stream = b"".join(mqttraw.publish("pieces/t", p, qos=i % 2, mid=i + 1) for i, p in enumerate(payloads))
    pub = raw(b.port)
    pub.connect("pieces-pub")
    for pos in range(0, len(stream), piece):
        pub.send(stream[pos:pos + piece])
        time.sleep(0.001)
    for n, c in enumerate(subs):
        got = [m.payload for m in c.wait_messages(len(sizes), timeout=30)]
        assert [len(p) for p in got] == sizes, "pieces-%d" % n
        assert [digest(p) for p in got] == [digest(p) for p in payloads], "pieces-%d" % n


# ------------------------------------------------------------------ (b) WebSockets

def ws_broker(broker, extra=()):
    """A broker with a TCP and a websockets listener: (broker, ws_port)."""
    ws_port = free_port()
    b = broker(list(extra) + ["listener %d 127.0.0.1" % ws_port, "protocol websockets"])
    wait_until(lambda: port_open(ws_port), what="websockets port")
    return b, ws_port


def test_large_payloads_over_websockets(broker, paho_clients):
    """The same payloads to WebSocket subscribers (paho, v3.1.1 and v5, QoS 0-2) and to a raw
    WebSocket reader that decodes every frame itself; a TCP subscriber alongside."""
    b, ws_port = ws_broker(broker, NO_DROP)
    subs = []
    for i, (version, qos) in enumerate([(V311, 0), (V5, 1), (V311, 2), (V5, 2)]):
        c = paho_clients(WsClient, ws_port, version, "ws-%d" % i)
        c.connect()
        c.subscribe("big/#", qos)
        subs.append((c, qos, "ws-%d" % i))
    tcp = paho_clients(Client, b.port, V5, "tcp")
    tcp.connect()
    tcp.subscribe("big/#", 1)
    subs.append((tcp, 1, "tcp"))
    raw_ws = mqttraw.WsRawClient(ws_port, proto=5, timeout=10)
    try:
        assert raw_ws.connect("ws-raw").rc == 0
        raw_ws.subscribe([("big/#", 1)])
        sent = publish_all(b.port, paho_clients)
        total = sum(len(v) for v in sent.values())
        for c, qos, name in subs:
            check_received(c.wait_messages(total, timeout=30), sent, qos, name)
        got = []
        while len(got) < total:
            p = raw_ws.recv_type(PUBLISH, timeout=10)
            if p.qos:
                raw_ws.send(mqttraw.puback(p.mid, 5))
            got.append(p)
        check_received(got, sent, 1, "ws-raw")
    finally:
        raw_ws.close()


# ------------------------------------------------------------------ (c) slow subscriber

def rss_mib(pid):
    return proc_rss_kb(pid) / 1024.0


def hwm_mib(pid):
    """Peak RSS of the process so far (VmHWM)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


COUNT, BIG = 200, 256 * KIB


def flood_and_read(b, pub, probe, slow, chunks, hashes, probe_topic, mark_topic):
    """Sends `chunks` (PUBLISH packets of payloads starting with their index, to a subscriber
    that reads nothing), waits until the broker has handled them (a message to `probe`), then
    has the subscriber read everything it was sent up to a QoS 1 marker on `mark_topic`, each
    payload checked against `hashes`. Returns (RSS before in MiB, peak growth in MiB, the
    indexes received, in order and without repeats)."""
    rss0 = rss_mib(b.pid)
    for c in chunks:
        pub.send(c)
    pub.publish(probe_topic, b"done")  # handled after every message before it
    assert probe.recv_type(PUBLISH, 30).payload == b"done"
    # VmHWM: the peak, whenever it happened (no sampling).
    peak = hwm_mib(b.pid) - rss0
    # A QoS 1 marker is queued, not dropped: it arrives after everything sent before it.
    pub.publish_acked(mark_topic, b"end", qos=1)
    got = []
    while True:
        p = slow.recv(10)
        assert p.type == PUBLISH, p
        if p.topic == mark_topic:
            slow.send(mqttraw.puback(p.mid))
            break
        index = struct.unpack("!I", p.payload[:4])[0]
        assert digest(p.payload) == hashes[index], "payload %d damaged" % index
        got.append(index)
    assert got == sorted(set(got)) and got, got  # in order, no repeats
    return rss0, peak, got


def slow_round(b, raw, name):
    """One round: a subscriber that reads nothing, 200 x 256 KiB QoS 0 messages to it, then
    it reads all it was sent and leaves. Returns (RSS before in MiB, peak growth in MiB)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A small receive buffer: the broker's own queue fills, not the kernel's.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * KIB)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", b.port))
    slow = mqttraw.SockClient(sock)
    slow.connect(name)
    slow.subscribe([("big", 0), ("mark", 1)])
    probe = raw(b.port)
    probe.connect(name + "-probe")
    probe.subscribe([("probe", 0)])
    pub = raw(b.port)
    pub.connect(name + "-flood")

    payloads = [struct.pack("!I", i) + os.urandom(BIG - 4) for i in range(COUNT)]
    hashes = [digest(p) for p in payloads]
    rss0, peak, got = flood_and_read(b, pub, probe, slow, [mqttraw.publish("big", p) for p in payloads],
                                     hashes, "probe", "mark")
    assert len(got) < COUNT  # the bound did drop some: the test exercised it
    slow.send(mqttraw.disconnect())
    for c in (slow, pub, probe):
        c.close()
    print("%s: RSS %.1f MiB, peak growth %.1f MiB, received %d of %d"
          % (name, rss0, peak, len(got), COUNT))
    return rss0, peak


def rss_settled(pid):
    """RSS once the broker has handled the departures (it stops changing)."""
    last = rss_mib(pid)
    for _ in range(20):
        time.sleep(0.1)
        now = rss_mib(pid)
        if now == last:
            return now
        last = now
    return last


# Peak RSS growth while a subscriber holds back 200 x 256 KiB: the 1 MiB output bound plus
# one packet (1.25 MiB of message blocks), the publisher's input (one 256 KiB packet), and
# 8 MiB of allocator slack (measured: 1.0-5.6 MiB growth in all). Without the bound it would
# be 50 MiB; the code of aba19c2 (old per-subscriber limit) grows by 71 MiB here.
PEAK_BOUND_MIB = 1.25 + 0.25 + 8


@pytest.mark.serial  # peak RSS: 20.9 MiB once beside other tests (-n 4)
@pytest.mark.midge_only
def test_slow_subscriber_memory_stays_bounded(broker, raw):
    """A subscriber that reads nothing while 200 x 256 KiB QoS 0 messages (50 MiB) are
    published to it: Midge queues at most max_pending_output (1 MiB) plus one packet for it
    and drops the rest (README, slow consumers). The broker's RSS stays within the bound;
    the subscriber then reads every packet it was sent, whole and in order, and leaves."""
    b = broker()
    rss0, peak = slow_round(b, raw, "slow")
    assert SANITIZED or peak < PEAK_BOUND_MIB, "RSS grew by %.1f MiB" % peak
    after = rss_settled(b.pid)
    print("RSS: start %.1f MiB, after %.1f MiB" % (rss0, after))
    # With glibc's default settings the first freed 256 KiB block raises its mmap threshold,
    # and later ones are carved from the heap and kept there: measured 0.8-3.6 MiB above a
    # 6.3 MiB start after one round, up to 5.3 MiB after several (a plateau, not a growth;
    # test_slow_subscriber_memory_returns shows the broker frees it all). Hence 10 % + 4 MiB.
    assert SANITIZED or after < rss0 * 1.10 + 4, (rss0, after)


# A 16 KiB payload read whole holds its 64 KiB read block while it waits (README, "Memory
# limits"): at most 4 x the 1 MiB output bound, plus one block being read, plus the same 8 MiB
# of allocator slack as above.
PINNED_BOUND_MIB = 4 * 1 + 0.0625 + 8


@pytest.mark.serial  # RSS
@pytest.mark.midge_only
def test_slow_subscriber_holding_read_blocks_stays_bounded(broker, raw):
    """The worst case of borrowed payloads: each 16-40 KiB message is the only large one in its
    read (48 KiB of small messages to a topic nobody reads follow it), so each one a subscriber
    holds keeps a whole 64 KiB block. A subscriber that reads nothing is sent 400 of them
    (11 MiB, and 400 blocks: 25 MiB if they were all held): the broker's growth stays within 4
    times the output bound, then the subscriber reads every message it was sent, whole."""
    b = broker()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * KIB)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", b.port))
    slow = mqttraw.SockClient(sock)
    slow.connect("pin-slow")
    slow.subscribe([("pin/big", 0), ("pin/mark", 1)])
    probe = raw(b.port)
    probe.connect("pin-probe")
    probe.subscribe([("pin/probe", 0)])
    pub = raw(b.port)
    pub.connect("pin-flood")
    groups, hashes = whole_read_stream(400, lambda i: "pin/big", junk_topic="pin/junk")
    rss0, peak, got = flood_and_read(b, pub, probe, slow, groups, hashes, "pin/probe", "pin/mark")
    assert len(got) < 400  # the output bound dropped some: it was reached
    print("pinned blocks: RSS %.1f MiB, peak growth %.1f MiB, received %d of 400"
          % (rss0, peak, len(got)))
    assert SANITIZED or peak < PINNED_BOUND_MIB, "RSS grew by %.1f MiB" % peak


def status_mib(pid, field):
    """A memory figure of /proc/PID/status (VmRSS, RssAnon, ...) in MiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    raise AssertionError("no %s for %d" % (field, pid))


# What may stay after a burst beyond 10 % of the start, in anonymous memory: each thread's stack
# pages that the burst touches for the first time (0.1 MiB; 92-120 KiB of each stack in use
# after the busiest runs, part of it before), and 0.4 MiB of heap pages that blocks made during
# the burst and still alive touch, which malloc_trim cannot return (measured with 2 workers:
# 0.2-0.67 MiB above the start in all). The code before one shared arena kept up to 1 MiB per
# worker thread's arena at its top (M_TOP_PAD; malloc_trim does not shrink a thread arena):
# 1.1-1.9 MiB above the start, over this bound.
def heap_slack_mib(pid):
    threads = len(os.listdir("/proc/%d/task" % pid))
    return 0.4 + 0.1 * threads


def anon_after_trim(pid, target, wait=5.0):
    """RssAnon once it is below `target` MiB, or after `wait` seconds. The broker gives free
    heap memory back after a second with (almost) no traffic (server/heap.h), checked once a
    second: up to 2 s after the last byte."""
    end = time.monotonic() + wait
    now = status_mib(pid, "RssAnon")
    while now >= target and time.monotonic() < end:
        time.sleep(0.1)
        now = status_mib(pid, "RssAnon")
    return now


@pytest.mark.serial  # peak RSS: 20.9 MiB once beside other tests (-n 4)
@pytest.mark.midge_only
def test_slow_subscriber_memory_returns(broker, raw):
    """Three rounds of the slow subscriber. After each, once the broker has been quiet for a
    second, its memory must come back within 10 % of where it started (issue 9's target):
    the heap (RssAnon) within 10 % plus heap_slack_mib(), and the whole RSS within 10 % plus the
    same (it also counts the pages of the program and its libraries: up to 0.6 MiB more once
    code runs for the first time). A block, a queue or an output buffer kept after the subscriber has drained
    and left would show here: one round holds 50 MiB of messages."""
    b = broker()
    rss_start = status_mib(b.pid, "VmRSS")
    anon_start = status_mib(b.pid, "RssAnon")
    anon_after, rss_after = [], []
    slack = heap_slack_mib(b.pid)
    for n in range(3):
        _, peak = slow_round(b, raw, "slow-%d" % n)
        assert SANITIZED or peak < PEAK_BOUND_MIB, "round %d: RSS grew by %.1f MiB" % (n, peak)
        anon_after.append(anon_after_trim(b.pid, anon_start * 1.10 + slack))
        rss_after.append(status_mib(b.pid, "VmRSS"))
    print("RssAnon: start %.2f MiB, after each round %s; RSS: start %.2f MiB, after %s"
          % (anon_start, anon_after, rss_start, rss_after))
    if SANITIZED:
        return
    assert max(anon_after) < anon_start * 1.10 + slack, (anon_start, anon_after)
    assert max(rss_after) < rss_start * 1.10 + slack, (rss_start, rss_after)


# ------------------------------------------------------------------ (d) resend after reconnect

RESUME_COUNT, RESUME_SIZE, WINDOW = 30, 200 * KIB, 20


def read_publishes_until_eof(c):
    """Reads until the broker closes: (whole PUBLISH packets, whether bytes of a further
    packet were left over)."""
    got = []
    while True:
        try:
            p = c.recv(10)
        except mqttraw.Closed:
            return got, bool(c.buf)
        if p.type == PUBLISH:
            got.append(p)


@pytest.mark.parametrize("how", ["disconnect", "abort"])
@pytest.mark.parametrize("proto", [4, 5])
def test_qos1_large_inflight_resent_after_reconnect(broker, raw, proto, how):
    """A QoS 1 subscriber with a persistent session leaves in the middle of 30 x 200 KiB
    messages: "disconnect" acknowledges three, sends DISCONNECT and reads until the broker
    closes (so it knows everything that went out); "abort" reads five, acknowledges none and
    resets the connection. On reconnecting it receives the rest in order, the ones already
    sent with DUP=1 and their packet identifiers [MQTT-4.4.0-1] [MQTT-3.3.1-1], the others
    with DUP=0, every payload intact."""
    b = broker(["max_inflight_messages %d" % WINDOW])
    props = [(P_SESSION_EXPIRY, 60)] if proto == 5 else None
    sub = raw(b.port, proto, timeout=10)
    sub.connect("resume", clean=False, properties=props)
    sub.subscribe([("q", 1)])
    pub = raw(b.port)
    pub.connect("resume-publisher")
    payloads = [struct.pack("!I", i) + os.urandom(RESUME_SIZE - 4) for i in range(RESUME_COUNT)]
    by_hash = {digest(p): i for i, p in enumerate(payloads)}
    for i, p in enumerate(payloads):
        pub.publish("q", p, qos=1, mid=i + 1)
    for i in range(RESUME_COUNT):  # the broker has every message in the session
        assert pub.recv_type(PUBACK, 10).mid == i + 1

    first = [sub.recv_type(PUBLISH, 10) for _ in range(5)]
    acked = 3 if how == "disconnect" else 0
    for p in first[:acked]:
        sub.send(mqttraw.puback(p.mid, proto))
    partial = False
    if how == "disconnect":
        sub.send(mqttraw.disconnect(proto))
        sub.sock.shutdown(socket.SHUT_WR)
        more, partial = read_publishes_until_eof(sub)
        first += more
    else:
        sub.abort()
    assert not any(p.dup for p in first)
    seen = [by_hash[digest(p.payload)] for p in first]
    assert seen == list(range(len(first))), seen
    mids = {i: p.mid for i, p in zip(seen, first)}

    sub = raw(b.port, proto, timeout=10)
    assert sub.connect("resume", clean=False, properties=props).session_present
    again = []
    while len(again) < RESUME_COUNT - acked:
        p = sub.recv_type(PUBLISH, 10)
        assert p.qos == 1
        sub.send(mqttraw.puback(p.mid, proto))
        again.append(p)
    order = [by_hash.get(digest(p.payload)) for p in again]
    assert order == list(range(acked, RESUME_COUNT)), order
    dups = [p.dup for p in again]
    for i, p in zip(order, again):
        if i in mids:  # went out before and was not acknowledged
            assert p.dup and p.mid == mids[i], (i, p.dup, p.mid, mids[i])
    # Never sent before (beyond the in-flight window or, after a clean close, beyond what
    # was read) means DUP=0; a packet cut short at the close may have either.
    unsent_from = acked + WINDOW if how == "abort" else len(first) + (1 if partial else 0)
    print("%s v%d: %d seen before, partial %s, DUP %s" % (how, proto, len(first), partial, dups))
    assert not any(dups[unsent_from - acked:]), dups
    assert dups == sorted(dups, reverse=True), dups  # resends first, then new ones
    assert sub.try_recv(0.3) is None  # nothing twice
