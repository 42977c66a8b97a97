"""MQTT over WebSockets listeners (`protocol websockets`, plain ws:// only).

A WebSocket client (paho, transport="websockets", path /mqtt) and a TCP client exchange
messages through one broker; raw sockets check the handshake and framing rules (RFC 6455:
client frames masked, binary frames only for MQTT [MQTT-6.0.0-1], ping/pong, close).
"""
import os
import socket
import struct
import subprocess
import time

import pytest

from conftest import IS_MOSQUITTO, V311, V5, Client, free_port, mqtt, mqttraw, port_open, wait_until

BIG = 200 * 1024
KEY = "dGhlIHNhbXBsZSBub25jZQ=="


class WsClient(Client):
    """conftest.Client over ws://127.0.0.1:port/mqtt."""

    def __init__(self, port, version=V311, client_id="", clean=True, path="/mqtt"):
        super().__init__(port, version, client_id, clean)
        old = self.paho
        kw = {} if version == V5 else {"clean_session": clean}
        self.paho = mqtt.Client(client_id=client_id, protocol=version, transport="websockets",
                                reconnect_on_failure=False, **kw)
        self.paho.ws_set_options(path=path)
        for cb in ("on_connect", "on_disconnect", "on_message", "on_subscribe",
                   "on_unsubscribe", "on_publish"):
            setattr(self.paho, cb, getattr(old, cb))


@pytest.fixture
def ws_broker(broker):
    """A broker with its TCP listener plus a websockets listener: (broker, ws_port)."""
    def make(extra=()):
        ws_port = free_port()
        b = broker(list(extra) + ["listener %d 127.0.0.1" % ws_port, "protocol websockets"])
        wait_until(lambda: port_open(ws_port), what="websockets port")
        return b, ws_port

    return make


@pytest.fixture
def clients():
    made = []

    def make(cls, port, version=V311, client_id="", clean=True, **kw):
        c = cls(port, version, client_id, clean, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()


# ------------------------------------------------------------------ raw WebSocket helpers

def handshake(port, path="/mqtt", protocol="mqtt", extra=b""):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n" % (path, port, KEY))
    if protocol:
        req += "Sec-WebSocket-Protocol: %s\r\n" % protocol
    s.sendall(req.encode() + b"\r\n" + extra)
    head = b""
    while b"\r\n\r\n" not in head:
        d = s.recv(1)
        assert d, "closed during the handshake: %r" % head
        head += d
    return s, head


def frame(opcode, payload, masked=True, fin=True, mask=b"\x12\x34\x56\x78"):
    n = len(payload)
    h = bytes([(0x80 if fin else 0) | opcode])
    m = 0x80 if masked else 0
    if n < 126:
        h += bytes([m | n])
    elif n <= 0xFFFF:
        h += bytes([m | 126]) + struct.pack("!H", n)
    else:
        h += bytes([m | 127]) + struct.pack("!Q", n)
    if not masked:
        return h + payload
    return h + mask + bytes(b ^ mask[i & 3] for i, b in enumerate(payload))


def read_frame(s):
    def exact(n):
        out = b""
        while len(out) < n:
            d = s.recv(n - len(out))
            if not d:
                raise mqttraw.Closed()
            out += d
        return out
    b0, b1 = exact(2)
    assert not (b1 & 0x80), "server frames must not be masked"
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", exact(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", exact(8))[0]
    return b0 & 0x0F, exact(n)


def closed_within(s, timeout=5.0):
    """True when the server closes the socket (frames before the EOF are skipped)."""
    s.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not s.recv(4096):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    return False


# ------------------------------------------------------------------ pub/sub through paho

@pytest.mark.parametrize("qos", [0, 1, 2])
def test_ws_and_tcp_exchange_messages(ws_broker, clients, qos):
    b, ws_port = ws_broker()
    ws = clients(WsClient, ws_port, client_id="ws-%d" % qos)
    tcp = clients(Client, b.port, client_id="tcp-%d" % qos)
    ws.connect()
    tcp.connect()
    ws.subscribe("to/ws", qos)
    tcp.subscribe("to/tcp", qos)
    tcp.publish("to/ws", b"from tcp", qos)
    ws.publish("to/tcp", b"from ws", qos)
    m = ws.wait_messages(1)[0]
    assert (m.topic, m.payload, m.qos) == ("to/ws", b"from tcp", qos)
    m = tcp.wait_messages(1)[0]
    assert (m.topic, m.payload, m.qos) == ("to/tcp", b"from ws", qos)


def test_retained_and_big_payload(ws_broker, clients):
    b, ws_port = ws_broker()
    big = os.urandom(BIG)
    tcp = clients(Client, b.port, client_id="tcp")
    tcp.connect()
    tcp.publish("keep/big", big, 1, retain=True)
    ws = clients(WsClient, ws_port, client_id="ws")
    ws.connect()
    ws.subscribe("keep/#", 1)
    # Mosquitto 2.0.11 (libwebsockets) takes about 6 s to send 200 KB over WebSockets.
    m = ws.wait_messages(1, timeout=20)[0]
    assert m.retain and m.payload == big
    # And back: a 200 KB publish from the WebSocket client, many reads/frames.
    tcp.subscribe("back", 1)
    ws.publish("back", big[::-1], 1)
    m = tcp.wait_messages(1, timeout=20, topic="back")[0]
    assert m.payload == big[::-1]


def test_many_messages_in_a_burst(ws_broker, clients):
    b, ws_port = ws_broker()
    ws = clients(WsClient, ws_port, client_id="ws")
    ws.connect()
    ws.subscribe("burst", 1)
    tcp = clients(Client, b.port, client_id="tcp")
    tcp.connect()
    for i in range(500):
        tcp.publish("burst", b"%d" % i, 1, wait=False)
    msgs = ws.wait_messages(500, timeout=10)
    assert [m.payload for m in msgs] == [b"%d" % i for i in range(500)]


def test_v5_over_websockets(ws_broker, clients):
    b, ws_port = ws_broker()
    ws = clients(WsClient, ws_port, V5, client_id="ws5")
    flags, rc, props = ws.connect()
    assert rc == 0
    ws.subscribe("v5/t", 2)
    tcp = clients(Client, b.port, V5, client_id="tcp5")
    tcp.connect()
    tcp.publish("v5/t", b"hello 5", 2)
    m = ws.wait_messages(1)[0]
    assert (m.payload, m.qos) == (b"hello 5", 2)
    ws.disconnect()


def test_tutorial_config_and_any_path(broker, clients):
    """`listener P` + `listener P2` + `protocol websockets`, as in the tutorials; the
    WebSocket path does not matter."""
    p, p2 = free_port(), free_port()
    b = broker(["listener %d" % p, "listener %d" % p2, "protocol websockets"])
    wait_until(lambda: port_open(p) and port_open(p2), what="both listeners")
    for path in ("/mqtt", "/"):
        ws = clients(WsClient, p2, client_id="ws" + path, path=path)
        ws.connect()
        ws.subscribe("t", 0)
        tcp = clients(Client, p, client_id="tcp" + path)
        tcp.connect()
        tcp.publish("t", path.encode(), 1)
        assert ws.wait_messages(1)[0].payload == path.encode()
        ws.stop()
        tcp.stop()
    if not IS_MOSQUITTO:
        assert "Opening websockets listen socket on port %d." % p2 in b.log_text()


def test_will_sent_when_websocket_drops(ws_broker, clients):
    b, ws_port = ws_broker()
    tcp = clients(Client, b.port, client_id="watcher")
    tcp.connect()
    tcp.subscribe("will/t", 0)
    s, head = handshake(ws_port)
    assert b" 101 " in head.split(b"\r\n")[0]
    s.sendall(frame(2, mqttraw.connect("dies", will={"topic": "will/t", "payload": b"gone"})))
    op, data = read_frame(s)
    assert op == 2 and data[0] == 0x20
    s.close()
    assert tcp.wait_messages(1)[0].payload == b"gone"


# ------------------------------------------------------------------ raw handshake and framing

def test_handshake_answer(ws_broker):
    b, ws_port = ws_broker()
    s, head = handshake(ws_port)
    lines = head.decode().split("\r\n")
    assert lines[0].startswith("HTTP/1.1 101")
    hdrs = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
    assert hdrs["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert hdrs["sec-websocket-protocol"] == "mqtt"
    assert hdrs["upgrade"].lower() == "websocket"
    s.close()


def read_until_closed(s):
    """Reads until the peer closes or the socket's timeout passes. Returns (data, how): how is
    "eof" or "reset" when the peer closed, None when it timed out with the socket still open."""
    got = b""
    try:
        while True:
            d = s.recv(4096)
            if not d:
                return got, "eof"
            got += d
    except ConnectionResetError:
        return got, "reset"
    except socket.timeout:
        return got, None


@pytest.mark.parametrize("request_bytes", [
    b"GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n",
    b"garbage\r\n\r\n",
    b"GET /mqtt HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n",
])
def test_bad_handshake_refused(ws_broker, request_bytes):
    """A bad upgrade request gets no 101 and the socket is closed (Midge: 400, see below)."""
    b, ws_port = ws_broker()
    s = socket.create_connection(("127.0.0.1", ws_port), timeout=5)
    s.sendall(request_bytes)
    got, closed = read_until_closed(s)
    assert closed, "socket still open after 5 s; got %r" % got
    assert b" 101 " not in got
    assert b.alive()


@pytest.mark.midge_only
def test_bad_handshake_gets_400(ws_broker):
    """Midge answers 400 Bad Request; mosquitto (libwebsockets) answers 403 or just closes."""
    b, ws_port = ws_broker()
    for req in (b"GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n", b"garbage\r\n\r\n",
                b"GET / HTTP/1.1\r\n" + b"X: " + b"a" * 9000 + b"\r\n\r\n"):
        s = socket.create_connection(("127.0.0.1", ws_port), timeout=5)
        try:
            s.sendall(req)
        except (BrokenPipeError, ConnectionResetError):
            pass
        got, closed = read_until_closed(s)
        assert closed, "socket still open after 5 s; got %r" % got
        assert got.startswith(b"HTTP/1.1 400 Bad Request\r\n"), got
        s.close()


def test_ping_gets_pong(ws_broker):
    b, ws_port = ws_broker()
    s, head = handshake(ws_port)
    s.sendall(frame(9, b"are you there"))
    assert read_frame(s) == (10, b"are you there")
    # Still usable for MQTT afterwards.
    s.sendall(frame(2, mqttraw.connect("pinger")))
    op, data = read_frame(s)
    assert op == 2 and data[:2] == b"\x20\x02"
    s.close()


def test_packets_split_and_merged_across_frames(ws_broker, clients):
    b, ws_port = ws_broker()
    tcp = clients(Client, b.port, client_id="tcp")
    tcp.connect()
    tcp.subscribe("split/#", 1)
    s, _ = handshake(ws_port)
    data = (mqttraw.connect("splitter") + mqttraw.publish("split/a", b"A" * 300, 0)
            + mqttraw.publish("split/b", b"B" * 70000, 0) + mqttraw.publish("split/c", b"C", 0))
    # Frames of 1, 7, 1000, ... bytes: packets split across frames and frames with several
    # packets; a binary message fragmented into continuation frames at the end.
    sizes, pos, out = [1, 7, 1000, 3], 0, b""
    i = 0
    while pos < len(data) - 100:
        n = sizes[i % len(sizes)] if i < 40 else 20000
        out += frame(2, data[pos:pos + n])
        pos += n
        i += 1
    rest = data[pos:]
    out += frame(2, rest[:50], fin=False) + frame(0, rest[50:], fin=True)
    s.sendall(out)
    msgs = tcp.wait_messages(3)
    assert [(m.topic, len(m.payload)) for m in msgs] == [("split/a", 300), ("split/b", 70000), ("split/c", 1)]
    s.close()


def test_close_frame_answered(ws_broker):
    b, ws_port = ws_broker()
    s, _ = handshake(ws_port)
    s.sendall(frame(2, mqttraw.connect("closer")))
    assert read_frame(s)[0] == 2
    s.sendall(frame(8, b"\x03\xe8"))
    op, data = read_frame(s)
    assert op == 8 and data[:2] == b"\x03\xe8"
    assert closed_within(s)


def test_garbage_frames_close_only_that_client(ws_broker, clients):
    """Unmasked and text frames (holding non-MQTT bytes here) close the connection; the other
    clients keep working."""
    b, ws_port = ws_broker()
    ws = clients(WsClient, ws_port, client_id="good-ws")
    ws.connect()
    ws.subscribe("still/#", 0)
    tcp = clients(Client, b.port, client_id="good-tcp")
    tcp.connect()
    for bad in (frame(2, b"ab", masked=False), frame(1, b"ab")):
        s, _ = handshake(ws_port)
        s.sendall(bad)
        assert closed_within(s)
        s.close()
    tcp.publish("still/ok", b"yes", 1)
    assert ws.wait_messages(1)[0].payload == b"yes"


@pytest.mark.midge_only
@pytest.mark.parametrize("kind", ["unmasked", "text"])
def test_unmasked_or_text_connect_closed(ws_broker, clients, kind):
    """RFC 6455 5.1 (client frames are masked) and MQTT 6.0 (binary frames only): even a valid
    CONNECT in such a frame closes the connection, with a close frame. Mosquitto 2.0.11
    (libwebsockets) is lenient: it answers such a CONNECT with a CONNACK."""
    b, ws_port = ws_broker()
    s, _ = handshake(ws_port)
    payload = mqttraw.connect("bad-" + kind)
    s.sendall(frame(2, payload, masked=False) if kind == "unmasked" else frame(1, payload))
    op, data = read_frame(s)
    assert op == 8 and data[:2] in (b"\x03\xea", b"\x03\xeb")  # 1002 / 1003
    assert closed_within(s)
    ws = clients(WsClient, ws_port, client_id="after")
    ws.connect()


@pytest.mark.midge_only
def test_connect_timeout_applies(broker):
    """A WebSocket that completes the handshake but never sends CONNECT is dropped after
    Midge's 10 s CONNECT timeout (mosquitto's timeout for this case is not the same)."""
    ws_port = free_port()
    broker(["listener %d 127.0.0.1" % ws_port, "protocol websockets"])
    wait_until(lambda: port_open(ws_port), what="websockets port")
    s, head = handshake(ws_port)
    assert closed_within(s, timeout=14)


def test_midge_tools_over_ws(ws_broker):
    from test_tools import TOOLS, tool
    if TOOLS is None:
        pytest.skip("midge_pub/midge_sub not built")
    b, ws_port = ws_broker()
    url = "ws://127.0.0.1:%d/mqtt" % ws_port
    sub = subprocess.Popen([tool("sub"), "-L", url, "-t", "tools/t", "-C", "2", "-W", "10"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)
        big = b"x" * BIG
        for payload in (b"hello over ws", big):
            r = subprocess.run([tool("pub"), "-L", url, "-t", "tools/t", "-q", "1", "-s"], input=payload,
                               capture_output=True, timeout=15)
            assert r.returncode == 0, r.stderr
        out, err = sub.communicate(timeout=15)
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.wait()
    assert sub.returncode == 0, err
    assert out == b"hello over ws\n" + big + b"\n"


@pytest.mark.midge_only
def test_hand_over_between_workers_keeps_framing(ws_broker, clients):
    """thread_count (a Midge extension) 4: CONNECTs move the connection to the worker owning the
    client id; the WebSocket state moves with it, even when the upgrade request, CONNECT and a
    PUBLISH come in one write (the 101 answer is still queued at the hand-over)."""
    b, ws_port = ws_broker(["thread_count 4"])
    tcp = clients(Client, b.port, client_id="watch")
    tcp.connect()
    tcp.subscribe("hand/#", 0)
    socks = []
    for i in range(12):
        cid = "hand-%d" % i
        data = mqttraw.connect(cid) + mqttraw.publish("hand/%d" % i, cid.encode(), 0)
        s, head = handshake(ws_port, extra=frame(2, data[:5]) + frame(2, data[5:]))
        assert b" 101 " in head.split(b"\r\n")[0]
        op, ack = read_frame(s)
        assert op == 2 and ack[:2] == b"\x20\x02"
        s.sendall(frame(9, b"p%d" % i))
        assert read_frame(s) == (10, b"p%d" % i)
        socks.append(s)
    msgs = tcp.wait_messages(12)
    assert sorted(m.payload for m in msgs) == sorted(b"hand-%d" % i for i in range(12))
    for i in range(12):
        ws = clients(WsClient, ws_port, client_id="paho-hand-%d" % i)
        ws.connect()
        ws.subscribe("back/%d" % i, 1)
        tcp.publish("back/%d" % i, b"b", 1)
        assert ws.wait_messages(1)[0].payload == b"b"
    for s in socks:
        s.close()
