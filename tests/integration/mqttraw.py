"""A tiny, independent MQTT 3.1/3.1.1/5.0 packet builder and reader for black-box tests.

Hand-written from the OASIS specifications; deliberately shares nothing with the broker's
own codec (src/protocol) so that a bug there cannot hide itself here.
"""
import select
import socket
import struct
import time

# Packet types (MQTT 3.1.1 / 5.0 section 2.1.2).
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = (
    8, 9, 10, 11, 12, 13, 14, 15)

# MQTT 5 property identifiers (section 2.2.2.2) and their wire types.
P_PAYLOAD_FORMAT, P_MESSAGE_EXPIRY, P_CONTENT_TYPE = 0x01, 0x02, 0x03
P_RESPONSE_TOPIC, P_CORRELATION_DATA, P_SUBSCRIPTION_ID = 0x08, 0x09, 0x0B
P_SESSION_EXPIRY, P_ASSIGNED_CLIENT_ID, P_SERVER_KEEP_ALIVE = 0x11, 0x12, 0x13
P_AUTH_METHOD, P_AUTH_DATA, P_REQUEST_PROBLEM_INFO = 0x15, 0x16, 0x17
P_WILL_DELAY, P_REQUEST_RESPONSE_INFO, P_RESPONSE_INFO = 0x18, 0x19, 0x1A
P_SERVER_REFERENCE, P_REASON_STRING, P_RECEIVE_MAXIMUM = 0x1C, 0x1F, 0x21
P_TOPIC_ALIAS_MAXIMUM, P_TOPIC_ALIAS, P_MAXIMUM_QOS, P_RETAIN_AVAILABLE = 0x22, 0x23, 0x24, 0x25
P_USER_PROPERTY, P_MAXIMUM_PACKET_SIZE = 0x26, 0x27
P_WILDCARD_SUB_AVAILABLE, P_SUB_ID_AVAILABLE, P_SHARED_SUB_AVAILABLE = 0x28, 0x29, 0x2A

_PROP_TYPES = {
    0x01: "byte", 0x02: "u32", 0x03: "str", 0x08: "str", 0x09: "bin", 0x0B: "varint",
    0x11: "u32", 0x12: "str", 0x13: "u16", 0x15: "str", 0x16: "bin", 0x17: "byte",
    0x18: "u32", 0x19: "byte", 0x1A: "str", 0x1C: "str", 0x1F: "str", 0x21: "u16",
    0x22: "u16", 0x23: "u16", 0x24: "byte", 0x25: "byte", 0x26: "pair", 0x27: "u32",
    0x28: "byte", 0x29: "byte", 0x2A: "byte",
}


def varint(n):
    out = bytearray()
    while True:
        digit = n % 128
        n //= 128
        if n:
            digit |= 0x80
        out.append(digit)
        if not n:
            return bytes(out)


def u16(n):
    return struct.pack("!H", n)


def u32(n):
    return struct.pack("!I", n)


def mstr(s):
    if isinstance(s, str):
        s = s.encode("utf-8")
    return u16(len(s)) + s


def props(plist):
    """plist: list of (id, value); a pair value for user properties is (key, value)."""
    body = bytearray()
    for pid, val in plist or ():
        kind = _PROP_TYPES[pid]
        body += varint(pid)
        if kind == "byte":
            body.append(val)
        elif kind == "u16":
            body += u16(val)
        elif kind == "u32":
            body += u32(val)
        elif kind == "varint":
            body += varint(val)
        elif kind in ("str", "bin"):
            body += mstr(val)
        else:
            body += mstr(val[0]) + mstr(val[1])
    return varint(len(body)) + bytes(body)


def packet(first_byte, body):
    return bytes([first_byte]) + varint(len(body)) + bytes(body)


def connect(client_id="", proto=4, clean=True, keepalive=60, will=None, username=None,
            password=None, properties=None):
    """will: dict(topic, payload, qos=0, retain=False, properties=[])."""
    name, level = (b"MQIsdp", 3) if proto == 3 else (b"MQTT", proto)
    flags = 0x02 if clean else 0
    if will:
        flags |= 0x04 | (will.get("qos", 0) << 3) | (0x20 if will.get("retain") else 0)
    if username is not None:
        flags |= 0x80
    if password is not None:
        flags |= 0x40
    body = mstr(name) + bytes([level, flags]) + u16(keepalive)
    if proto == 5:
        body += props(properties)
    body += mstr(client_id)
    if will:
        if proto == 5:
            body += props(will.get("properties"))
        body += mstr(will["topic"]) + mstr(will.get("payload", b""))
    if username is not None:
        body += mstr(username)
    if password is not None:
        body += mstr(password)
    return packet(0x10, body)


def publish(topic, payload=b"", qos=0, retain=False, dup=False, mid=1, proto=4, properties=None):
    if isinstance(payload, str):
        payload = payload.encode()
    first = 0x30 | (0x08 if dup else 0) | (qos << 1) | (1 if retain else 0)
    body = mstr(topic)
    if qos:
        body += u16(mid)
    if proto == 5:
        body += props(properties)
    return packet(first, body + payload)


def _ack(first, mid, proto, rc, properties):
    body = u16(mid)
    if proto == 5 and (rc or properties):
        body += bytes([rc or 0])
        if properties:
            body += props(properties)
    return packet(first, body)


def puback(mid, proto=4, rc=0, properties=None):
    return _ack(0x40, mid, proto, rc, properties)


def pubrec(mid, proto=4, rc=0, properties=None):
    return _ack(0x50, mid, proto, rc, properties)


def pubrel(mid, proto=4, rc=0, properties=None):
    return _ack(0x62, mid, proto, rc, properties)


def pubcomp(mid, proto=4, rc=0, properties=None):
    return _ack(0x70, mid, proto, rc, properties)


def subscribe(mid, filters, proto=4, properties=None):
    """filters: list of (filter, options byte); for v3 the options byte is the QoS."""
    body = u16(mid)
    if proto == 5:
        body += props(properties)
    for flt, opts in filters:
        body += mstr(flt) + bytes([opts])
    return packet(0x82, body)


def sub_options(qos=0, no_local=False, rap=False, retain_handling=0):
    return qos | (0x04 if no_local else 0) | (0x08 if rap else 0) | (retain_handling << 4)


def unsubscribe(mid, filters, proto=4):
    body = u16(mid) + (props([]) if proto == 5 else b"")
    for flt in filters:
        body += mstr(flt)
    return packet(0xA2, body)


PINGREQ_BYTES = b"\xc0\x00"


def disconnect(proto=4, rc=None, properties=None):
    if proto != 5 or (rc is None and not properties):
        return b"\xe0\x00"
    body = bytes([rc or 0])
    if properties:
        body += props(properties)
    return packet(0xE0, body)


# ---------------------------------------------------------------- decoding

def read_varint(buf, pos):
    mult, val = 1, 0
    for i in range(4):
        b = buf[pos + i]
        val += (b & 0x7F) * mult
        if not b & 0x80:
            return val, pos + i + 1
        mult *= 128
    raise ValueError("malformed variable byte integer")


def read_props(buf, pos):
    """Returns (list of (id, value), new pos)."""
    length, pos = read_varint(buf, pos)
    end = pos + length
    out = []
    while pos < end:
        pid, pos = read_varint(buf, pos)
        kind = _PROP_TYPES[pid]
        if kind == "byte":
            val, pos = buf[pos], pos + 1
        elif kind == "u16":
            val, pos = struct.unpack_from("!H", buf, pos)[0], pos + 2
        elif kind == "u32":
            val, pos = struct.unpack_from("!I", buf, pos)[0], pos + 4
        elif kind == "varint":
            val, pos = read_varint(buf, pos)
        elif kind in ("str", "bin"):
            n = struct.unpack_from("!H", buf, pos)[0]
            val = bytes(buf[pos + 2:pos + 2 + n])
            if kind == "str":
                val = val.decode("utf-8")
            pos += 2 + n
        else:
            n = struct.unpack_from("!H", buf, pos)[0]
            k = bytes(buf[pos + 2:pos + 2 + n]).decode()
            pos += 2 + n
            n = struct.unpack_from("!H", buf, pos)[0]
            v = bytes(buf[pos + 2:pos + 2 + n]).decode()
            pos += 2 + n
            val = (k, v)
        out.append((pid, val))
    if pos != end:
        raise ValueError("property length mismatch")
    return out, end


class Packet:
    """A decoded packet. Always: type, flags, body, raw. Per type (when proto known):
    CONNACK: session_present, rc, props; PUBLISH: topic, payload, qos, retain, dup, mid, props;
    PUBACK..PUBCOMP: mid, rc, props; SUBACK/UNSUBACK: mid, codes, props; DISCONNECT: rc, props."""

    def __init__(self, raw, proto):
        self.raw = raw
        self.type = raw[0] >> 4
        self.flags = raw[0] & 0x0F
        _, pos = read_varint(raw, 1)
        self.body = raw[pos:]
        self.props = []
        self.rc = 0
        self.mid = None
        b = self.body
        v5 = proto == 5
        if self.type == CONNACK:
            self.session_present = bool(b[0] & 1)
            self.rc = b[1]
            if v5 and len(b) > 2:
                self.props, _ = read_props(b, 2)
        elif self.type == PUBLISH:
            self.qos = (self.flags >> 1) & 3
            self.retain = bool(self.flags & 1)
            self.dup = bool(self.flags & 8)
            n = struct.unpack_from("!H", b, 0)[0]
            self.topic = bytes(b[2:2 + n]).decode("utf-8")
            pos = 2 + n
            if self.qos:
                self.mid = struct.unpack_from("!H", b, pos)[0]
                pos += 2
            if v5:
                self.props, pos = read_props(b, pos)
            self.payload = bytes(b[pos:])
        elif self.type in (PUBACK, PUBREC, PUBREL, PUBCOMP):
            self.mid = struct.unpack_from("!H", b, 0)[0]
            if v5 and len(b) > 2:
                self.rc = b[2]
                if len(b) > 3:
                    self.props, _ = read_props(b, 3)
        elif self.type in (SUBACK, UNSUBACK):
            self.mid = struct.unpack_from("!H", b, 0)[0]
            pos = 2
            if v5:
                self.props, pos = read_props(b, pos)
            self.codes = list(b[pos:])
        elif self.type == DISCONNECT:
            if len(b) >= 1:
                self.rc = b[0]
            if len(b) > 1:
                self.props, _ = read_props(b, 1)

    def prop(self, pid, default=None):
        for k, v in self.props:
            if k == pid:
                return v
        return default

    def prop_all(self, pid):
        return [v for k, v in self.props if k == pid]

    def __repr__(self):
        return "<Packet type=%d flags=%x body=%r>" % (self.type, self.flags, bytes(self.body[:60]))


class Closed(Exception):
    pass


class RawClient:
    """A blocking socket speaking hand-built MQTT. recv() returns one Packet at a time."""

    def __init__(self, port, proto=4, host="127.0.0.1", timeout=5.0):
        self.proto = proto
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.closed = False

    def send(self, data):
        self.sock.sendall(data)

    def _frame(self):
        """Returns one complete frame from the buffer, or None."""
        if len(self.buf) < 2:
            return None
        mult, length, i = 1, 0, 1
        while True:
            if i >= len(self.buf):
                return None
            b = self.buf[i]
            length += (b & 0x7F) * mult
            mult *= 128
            i += 1
            if not b & 0x80:
                break
            if i > 4:
                raise ValueError("broker sent a malformed remaining length")
        if len(self.buf) < i + length:
            return None
        raw = bytes(self.buf[:i + length])
        del self.buf[:i + length]
        return raw

    def recv_raw(self, timeout=5.0):
        """One whole frame as bytes; raises Closed if the broker closed, TimeoutError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            raw = self._frame()
            if raw is not None:
                return raw
            if self.closed:
                raise Closed()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no packet within %.1fs" % timeout)
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                raise TimeoutError("no packet within %.1fs" % timeout)
            except (ConnectionResetError, BrokenPipeError):
                data = b""
            if not data:
                self.closed = True
            self.buf += data

    def recv(self, timeout=5.0):
        return Packet(self.recv_raw(timeout), self.proto)

    def recv_type(self, ptype, timeout=5.0, skip=()):
        """Next packet, asserting its type; packet types in `skip` are ignored."""
        while True:
            p = self.recv(timeout)
            if p.type in skip:
                continue
            assert p.type == ptype, "expected packet type %d, got %r" % (ptype, p)
            return p

    def try_recv(self, timeout):
        """A packet, or None if nothing arrives within timeout (proving a negative)."""
        try:
            return self.recv(timeout)
        except TimeoutError:
            return None

    def wait_closed(self, timeout=5.0):
        """Reads until the broker closes the connection; returns the packets that came first.
        Raises TimeoutError if the connection is still open after timeout."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                got.append(self.recv(max(0.01, deadline - time.monotonic())))
            except Closed:
                return got

    def is_closed_within(self, timeout):
        try:
            self.wait_closed(timeout)
            return True
        except TimeoutError:
            return False

    def connect(self, client_id="", clean=True, keepalive=60, **kw):
        """Sends CONNECT and returns the CONNACK packet."""
        self.send(connect(client_id, proto=self.proto, clean=clean, keepalive=keepalive, **kw))
        return self.recv_type(CONNACK)

    def subscribe(self, filters, mid=1, properties=None):
        """filters: list of (filter, options). Returns the SUBACK packet."""
        self.send(subscribe(mid, filters, self.proto, properties))
        return self.recv_type(SUBACK)

    def publish(self, topic, payload=b"", qos=0, retain=False, mid=1, properties=None, dup=False):
        self.send(publish(topic, payload, qos, retain, dup, mid, self.proto, properties))

    def publish_acked(self, topic, payload=b"", qos=1, retain=False, mid=1, properties=None):
        """Publishes with a complete QoS 1/2 handshake."""
        self.publish(topic, payload, qos, retain, mid, properties)
        if qos == 1:
            return self.recv_type(PUBACK)
        if qos == 2:
            rec = self.recv_type(PUBREC)
            self.send(pubrel(mid, self.proto))
            self.recv_type(PUBCOMP)
            return rec
        return None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self):
        """Closes abruptly with a TCP RST (SO_LINGER 0): no DISCONNECT, no FIN handshake."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()


# ---------------------------------------------------------------- WebSockets and raw sockets

WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 section 1.3's sample key


def ws_frame(opcode, payload, fin=True, mask=b"\x37\xfa\x21\x3d"):
    """One client frame: always masked, as RFC 6455 section 5.3 requires."""
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n <= 0xFFFF:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + mask + bytes(b ^ mask[i & 3] for i, b in enumerate(payload))


class WsRawClient(RawClient):
    """RawClient over ws://host:port/path: the upgrade is done at construction; send() wraps
    the MQTT bytes in one masked binary frame, send_wire() sends bytes as they are; recv()
    returns MQTT packets unwrapped from the server's binary frames."""

    def __init__(self, port, proto=4, host="127.0.0.1", timeout=5.0, path="/mqtt"):
        super().__init__(port, proto, host, timeout)
        self.wire = bytearray()
        req = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Protocol: mqtt\r\n\r\n" % (path, host, port, WS_KEY))
        self.sock.sendall(req.encode())
        head = bytearray()
        while b"\r\n\r\n" not in head:
            data = self.sock.recv(4096)
            if not data:
                raise Closed()
            head += data
        end = head.index(b"\r\n\r\n") + 4
        if b" 101 " not in head[:head.index(b"\r\n")]:
            raise ValueError("upgrade refused: %r" % bytes(head[:end]))
        self.wire += head[end:]

    def send(self, data):
        self.sock.sendall(ws_frame(0x2, data))

    def send_wire(self, data):
        self.sock.sendall(data)

    def _unframe(self):
        """Moves the payload of every whole server frame in wire into buf."""
        while len(self.wire) >= 2:
            n, pos = self.wire[1] & 0x7F, 2
            if n == 126:
                if len(self.wire) < 4:
                    return
                n, pos = struct.unpack_from("!H", self.wire, 2)[0], 4
            elif n == 127:
                if len(self.wire) < 10:
                    return
                n, pos = struct.unpack_from("!Q", self.wire, 2)[0], 10
            if len(self.wire) < pos + n:
                return
            opcode = self.wire[0] & 0x0F
            if opcode in (0x0, 0x2):
                self.buf += self.wire[pos:pos + n]
            elif opcode == 0x8:
                self.closed = True
            del self.wire[:pos + n]

    def recv_raw(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            self._unframe()
            raw = self._frame()
            if raw is not None:
                return raw
            if self.closed:
                raise Closed()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no packet within %.1fs" % timeout)
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                raise TimeoutError("no packet within %.1fs" % timeout)
            except (ConnectionResetError, BrokenPipeError):
                data = b""
            if not data:
                self.closed = True
            self.wire += data


def read_to_end(sock, timeout=5.0):
    """Reads until the peer closes. Returns (bytes, how): how is "eof" for a clean close,
    "reset" for a connection reset (RST), "timeout" if still open after timeout."""
    got = bytearray()
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return bytes(got), "timeout"
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except socket.timeout:
            return bytes(got), "timeout"
        except ConnectionResetError:
            return bytes(got), "reset"
        if not data:
            return bytes(got), "eof"
        got += data


def split_packets(data):
    """Splits a byte string holding whole MQTT packets into their raw frames."""
    out, pos = [], 0
    while pos < len(data):
        length, body = read_varint(data, pos + 1)
        out.append(bytes(data[pos:body + length]))
        pos = body + length
    return out


TCP_ESTABLISHED = 1


def tcp_state(sock):
    """The kernel's TCP state of sock (Linux TCP_INFO, first byte): 1 is ESTABLISHED; a
    connection the peer closed or reset shows another state. Reads nothing from the socket."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


class SockClient(RawClient):
    """RawClient over a socket the caller made (to set options such as SO_RCVBUF before
    connecting)."""

    def __init__(self, sock, proto=4):
        self.proto = proto
        self.sock = sock
        self.buf = bytearray()
        self.closed = False


def send_while_reading(sock, data, timeout=5.0):
    """Sends data without blocking while reading what comes, as a client with a network
    thread does, until the peer closes. Returns (bytes read, how it ended: "eof", "reset" or
    "timeout", the error a send raised or None)."""
    sock.setblocking(False)
    got, pos, send_error = bytearray(), 0, None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sending = pos < len(data) and send_error is None
        readable, writable, _ = select.select([sock], [sock] if sending else [], [], 0.05)
        if readable:
            try:
                chunk = sock.recv(65536)
            except BlockingIOError:
                chunk = None
            except ConnectionResetError:
                return bytes(got), "reset", send_error
            if chunk == b"":
                return bytes(got), "eof", send_error
            got += chunk or b""
        if writable:
            try:
                pos += sock.send(data[pos:pos + 65536])
            except BlockingIOError:
                pass
            except (BrokenPipeError, ConnectionResetError) as e:
                send_error = e
    return bytes(got), "timeout", send_error
