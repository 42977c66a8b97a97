"""midge_pub / midge_sub / midge_rr against Midge and against Debian's mosquitto (issue 3).

The Mosquitto 2.0 tools define the expected behaviour: where possible each test runs the
mosquitto_* tool with the same arguments and compares output bytes, stderr's first line and
exit code. Tools are looked up in $MIDGE_TOOLS_DIR, else <repo>/build/tools, else
<repo>/build-tools/tools.
"""
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from conftest import (tools_dir, IS_MOSQUITTO, REPO, free_port, port_open, wait_until, Client, V5, V311,
                      props, PacketTypes)
import mqttraw

MOSQUITTO = "/usr/sbin/mosquitto"


TOOLS = tools_dir("midge_sub")
pytestmark = pytest.mark.skipif(TOOLS is None, reason="midge_pub/midge_sub not built")


def tool(name):
    """'sub' -> path of midge_sub."""
    return os.path.join(TOOLS, "midge_" + name)


def mosq_tool(name):
    return "mosquitto_" + name


def run(argv, input=None, timeout=15, env=None):
    return subprocess.run(argv, input=input, capture_output=True, timeout=timeout, env=env)


def both(kind, port, *args, input=None, timeout=15, env=None):
    """Runs midge_<kind> and mosquitto_<kind> with the same args; returns (midge, mosquitto)."""
    common = ["-p", str(port)] if port else []
    m = run([tool(kind)] + common + list(args), input, timeout, env)
    q = run([mosq_tool(kind)] + common + list(args), input, timeout, env)
    return m, q


def first_line(data):
    return data.decode("utf-8", "replace").split("\n")[0]


# ------------------------------------------------------------------ brokers

class Mosquitto:
    """Debian's mosquitto on a free port, with extra config lines."""

    def __init__(self, tmp_path, lines=()):
        self.port = free_port()
        self.dir = tmp_path
        conf = tmp_path / ("mosq-%d.conf" % self.port)
        base = ["listener %d 127.0.0.1" % self.port]
        if not any(line.startswith("allow_anonymous") for line in lines):
            base.append("allow_anonymous true")
        if os.geteuid() == 0:
            base.append("user root")  # else it drops to 'mosquitto', which cannot read tmp_path
        conf.write_text("\n".join(base + list(lines)) + "\n")
        self.log = open(tmp_path / ("mosq-%d.log" % self.port), "wb")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf), "-v"], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        wait_until(lambda: port_open(self.port), 10, what="mosquitto listening")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture
def mosquitto_broker(tmp_path):
    made = []

    def make(lines=()):
        sub = tmp_path / ("m%d" % len(made))
        sub.mkdir()
        m = Mosquitto(sub, lines)
        made.append(m)
        return m

    yield make
    for m in made:
        m.stop()


@pytest.fixture(params=["midge", "mosquitto"])
def any_port(request, broker, mosquitto_broker):
    """A broker port: the real Midge (conftest's broker fixture) or Debian's mosquitto."""
    if request.param == "midge":
        return broker().port
    return mosquitto_broker().port


class Bg:
    """A tool running in the background; stdout/stderr collected as bytes."""

    def __init__(self, argv, env=None):
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env)
        self.out = b""
        self.err = b""

    def wait(self, timeout=10):
        try:
            self.out, self.err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.out, self.err = self.proc.communicate()
            pytest.fail("%s did not exit; printed %r %r" % (self.proc.args[0], self.out, self.err))
        return self.proc.returncode

    def kill(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.out, self.err = self.proc.communicate(timeout=5)


@pytest.fixture
def bg():
    made = []

    def make(argv, env=None):
        b = Bg(argv, env)
        made.append(b)
        return b

    yield make
    for b in made:
        if b.proc.poll() is None:
            b.proc.kill()
            b.proc.communicate()


def make_session(which, port, cid, topic, qos=1, version="311"):
    """Creates a persistent session subscribed to topic, then leaves (-E): messages published
    next are queued, and a later `-c -i cid` sub gets them without any race."""
    exe = mosq_tool("sub") if which == "mosquitto" else tool("sub")
    r = run([exe, "-p", str(port), "-c",
             "-i", cid, "-q", str(qos), "-t", topic, "-E", "-V", version])
    assert r.returncode == 0, r.stderr


def sub_cmd(which, port, *args):
    exe = tool("sub") if which == "midge" else mosq_tool("sub")
    return [exe, "-p", str(port)] + list(args)


def compare_subs(port, publish, sub_args, count, version="311", qos=1):
    """Queues the same messages for a midge_sub and a mosquitto_sub session, then has both
    print them with sub_args; returns (midge_out, mosquitto_out) after checking exit codes."""
    tag = "%d" % time.monotonic_ns()
    outs = {}
    for which in ("midge", "mosquitto"):
        make_session(which, port, "cmp-%s-%s" % (which, tag), "cmp/#", qos, version)
    publish()
    for which in ("midge", "mosquitto"):
        r = run(sub_cmd(which, port, "-c", "-i", "cmp-%s-%s" % (which, tag), "-q", str(qos),
                        "-t", "cmp/#", "-C", str(count), "-V", version, "-W", "10") + list(sub_args))
        assert r.returncode == 0, (which, r.returncode, r.stderr)
        outs[which] = r.stdout
    return outs["midge"], outs["mosquitto"]


def mpub(port, *args):
    r = run([mosq_tool("pub"), "-p", str(port)] + list(args))
    assert r.returncode == 0, r.stderr


# ------------------------------------------------------------------ tutorial command lines

def test_tutorial_sub_pub_localhost(any_port, bg):
    sub = bg([tool("sub"), "-v", "-h", "localhost", "-p", str(any_port), "-t", "test/val",
              "-C", "1", "-W", "10"])
    # The sub may not be subscribed yet: publish until it prints.
    deadline = time.monotonic() + 10
    while sub.proc.poll() is None and time.monotonic() < deadline:
        r = run([tool("pub"), "-h", "localhost", "-p", str(any_port), "-t", "test/val",
                 "-m", "Bonjour"])
        assert r.returncode == 0 and r.stdout == b"" and r.stderr == b""
        time.sleep(0.1)
    assert sub.wait() == 0
    assert sub.out == b"test/val Bonjour\n"


def test_sys_broker_version(any_port):
    m, q = both("sub", any_port, "-v", "-h", "localhost", "-t", "$SYS/broker/version", "-C", "1",
                "-W", "10")
    assert m.returncode == q.returncode == 0
    assert m.stdout.startswith(b"$SYS/broker/version ")
    assert m.stdout == q.stdout


def test_user_password_against_mosquitto_password_file(tmp_path, mosquitto_broker):
    pw = tmp_path / "pw"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pw), "sondes", "mot2passe"], check=True)
    m = mosquitto_broker(["allow_anonymous false", "password_file %s" % pw])
    check_credentials(m.port)


def test_user_password_against_midge_password_file(tmp_path, broker):
    """The same checks against the broker under test, reading mosquitto_passwd's file: a
    broker that ignored credentials would accept the wrong password."""
    pw = tmp_path / "pw"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pw), "sondes", "mot2passe"], check=True)
    stay_root = ["user root"] if IS_MOSQUITTO and os.geteuid() == 0 else []
    b = broker(["allow_anonymous false", "password_file %s" % pw] + stay_root)
    check_credentials(b.port)


def check_credentials(port):
    """Right credentials work for midge_pub/midge_sub; wrong or missing ones are refused
    exactly as mosquitto_* report it."""
    p = str(port)
    ok = run([tool("pub"), "-h", "localhost", "-p", p, "-u", "sondes", "-P", "mot2passe", "-t",
              "ctrlled", "-m", "1"])
    assert ok.returncode == 0, ok.stderr
    # Wildcard subscription with credentials; the retained message proves the round trip.
    mpub(port, "-u", "sondes", "-P", "mot2passe", "-t", "maison/salon/valeur", "-m", "21",
         "-r")
    r = run([tool("sub"), "-v", "-h", "localhost", "-p", p, "-u", "sondes", "-P", "mot2passe",
             "-t", "maison/+/valeur", "-C", "1", "-W", "10"])
    assert r.returncode == 0 and r.stdout == b"maison/salon/valeur 21\n"
    for kind in ("pub", "sub", "rr"):
        extra = {"pub": ["-t", "a", "-m", "x"], "sub": ["-t", "a"],
                 "rr": ["-t", "a", "-e", "b", "-m", "x"]}[kind]
        for version in (["-V", "311"], ["-V", "5"]):
            mm, qq = both(kind, port, "-u", "sondes", "-P", "faux", *extra, *version)
            assert mm.returncode == qq.returncode, (kind, version, mm.stderr, qq.stderr)
            assert mm.returncode in (5, 135)
            assert mm.stderr == qq.stderr, (kind, version)
        mm, qq = both(kind, port, *extra)  # anonymous: refused too
        assert (mm.returncode, mm.stderr) == (qq.returncode, qq.stderr)


# ------------------------------------------------------------------ a fake broker sees CONNECT

def parse_connect(raw):
    """Minimal server-side CONNECT parser (3.1, 3.1.1, 5.0)."""
    _, pos = mqttraw.read_varint(raw, 1)

    def string(pos):
        n = struct.unpack_from("!H", raw, pos)[0]
        return bytes(raw[pos + 2:pos + 2 + n]), pos + 2 + n

    name, pos = string(pos)
    level, flags = raw[pos], raw[pos + 1]
    keepalive = struct.unpack_from("!H", raw, pos + 2)[0]
    pos += 4
    out = {"name": name, "level": level, "clean": bool(flags & 2), "keepalive": keepalive,
           "props": [], "will": None, "username": None, "password": None}
    if level == 5:
        out["props"], pos = mqttraw.read_props(raw, pos)
    cid, pos = string(pos)
    out["client_id"] = cid.decode()
    if flags & 4:
        wprops = []
        if level == 5:
            wprops, pos = mqttraw.read_props(raw, pos)
        wt, pos = string(pos)
        wp, pos = string(pos)
        out["will"] = {"topic": wt.decode(), "payload": wp, "qos": (flags >> 3) & 3,
                       "retain": bool(flags & 0x20), "props": wprops}
    if flags & 0x80:
        u, pos = string(pos)
        out["username"] = u.decode()
    if flags & 0x40:
        out["password"], pos = string(pos)
    return out


class FakeBroker:
    """Accepts one connection, answers CONNACK with `rc`, records every packet received."""

    def __init__(self, rc=0, proto=4):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.rc = rc
        self.proto = proto
        self.packets = []
        self.connect = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.listener.settimeout(10)
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        raw = mqttraw.RawClient.__new__(mqttraw.RawClient)
        raw.sock, raw.buf, raw.closed, raw.proto = conn, bytearray(), False, self.proto
        try:
            first = raw.recv_raw(10)
            self.connect = parse_connect(first)
            if self.connect["level"] == 5:
                raw.send(b"\x20\x03\x00" + bytes([self.rc]) + b"\x00")
            else:
                raw.send(b"\x20\x02\x00" + bytes([self.rc]))
            while True:
                pkt = raw.recv_raw(15)
                self.packets.append(pkt)
                if pkt[0] >> 4 == mqttraw.PINGREQ:
                    raw.send(b"\xd0\x00")
                if pkt[0] >> 4 == mqttraw.DISCONNECT:
                    break
        except Exception:  # noqa: BLE001 - the tool closing is the normal end
            pass
        conn.close()

    def close(self):
        self.listener.close()
        self.thread.join(5)


def test_connect_carries_credentials_will_and_properties():
    fb = FakeBroker(proto=5)
    r = run([tool("pub"), "-p", str(fb.port), "-V", "5", "-u", "sondes", "-P", "mot2passe",
             "-i", "cid1", "-k", "33", "-c", "-t", "t", "-m", "m", "--will-topic", "w/t",
             "--will-payload", "bye", "--will-qos", "1", "--will-retain",
             "-D", "connect", "receive-maximum", "7", "-D", "will", "content-type", "txt",
             "-D", "connect", "user-property", "k", "v"])
    fb.close()
    assert r.returncode == 0, r.stderr
    c = fb.connect
    assert (c["level"], c["client_id"], c["keepalive"], c["clean"]) == (5, "cid1", 33, False)
    assert (c["username"], c["password"]) == ("sondes", b"mot2passe")
    assert (mqttraw.P_RECEIVE_MAXIMUM, 7) in c["props"]
    assert (mqttraw.P_USER_PROPERTY, ("k", "v")) in c["props"]
    assert (mqttraw.P_SESSION_EXPIRY, 0xFFFFFFFF) in c["props"]  # -c on v5: never expires
    assert c["will"] == {"topic": "w/t", "payload": b"bye", "qos": 1, "retain": True,
                         "props": [(mqttraw.P_CONTENT_TYPE, "txt")]}


@pytest.mark.parametrize("version,level,name", [("31", 3, b"MQIsdp"), ("311", 4, b"MQTT"),
                                                ("mqttv5", 5, b"MQTT")])
def test_protocol_versions_and_default_client_id(version, level, name):
    fb = FakeBroker(proto=level)
    r = run([tool("pub"), "-p", str(fb.port), "-V", version, "-t", "t", "-m", "m", "-x", "60"])
    fb.close()
    assert r.returncode == 0, r.stderr
    c = fb.connect
    assert (c["level"], c["name"], c["keepalive"], c["clean"]) == (level, name, 60, True)
    if level == 3:
        assert c["client_id"].startswith("mosq-") and len(c["client_id"]) == 23
    else:
        assert c["client_id"] == ""  # the broker assigns one, as with mosquitto_pub
    if level == 5:
        assert (mqttraw.P_SESSION_EXPIRY, 60) in c["props"]


def test_id_prefix_uses_pid():
    fb = FakeBroker()
    r = run([tool("pub"), "-p", str(fb.port), "-I", "pre-", "-t", "t", "-m", "m", "-d"])
    fb.close()
    assert r.returncode == 0
    assert fb.connect["client_id"].startswith("pre-") and fb.connect["client_id"][4:].isdigit()
    assert first_line(r.stdout) == "Client %s sending CONNECT" % fb.connect["client_id"]


def test_keepalive_sends_pingreq():
    fb = FakeBroker()
    sub = subprocess.Popen([tool("sub"), "-p", str(fb.port), "-k", "5", "-t", "t", "-W", "7"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sub.communicate(timeout=15)
    fb.close()
    assert sub.returncode == 27
    assert any(p[0] >> 4 == mqttraw.PINGREQ for p in fb.packets), fb.packets


@pytest.mark.parametrize("rc,proto", [(1, 4), (2, 4), (3, 4), (4, 4), (5, 4), (0x87, 5),
                                      (0x86, 5), (0x8A, 5)])
def test_connack_refusal_exit_code(rc, proto):
    results = []
    for exe in (tool("sub"), mosq_tool("sub"), tool("pub"), mosq_tool("pub")):
        fb = FakeBroker(rc=rc, proto=proto)
        args = ["-t", "t"] if "sub" in exe else ["-t", "t", "-m", "m"]
        r = run([exe, "-p", str(fb.port), "-V", "5" if proto == 5 else "311"] + args)
        fb.close()
        results.append((r.returncode, r.stderr))
    assert results[0] == results[1]
    assert results[2] == results[3]
    assert results[0][0] == rc


# ------------------------------------------------------------------ output, byte for byte

PAYLOADS = [b"hello", b"", b"with space", b"\xff\xfe bad utf8 \x80",
            b"a\x01\x7f\xc3\xa9\"\\\t/", b"{\"a\": 1.5, \"b\": [1, 2]}",
            b"x" * 300]


def utf8(b):
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def publish_payloads(port, qos=1, version="311", extra=(), payloads=PAYLOADS):
    def go():
        for i, payload in enumerate(payloads):
            args = ["-p", str(port), "-t", "cmp/%d" % i, "-q", str(qos), "-V", version]
            args += ["-n"] if not payload else ["-m", payload]
            r = subprocess.run([mosq_tool("pub")] + args + list(extra), capture_output=True)
            assert r.returncode == 0, r.stderr
    return go


@pytest.mark.parametrize("args", [["-v"], [], ["-N"], ["-v", "-N"],
                                  ["-F", "%t|%p|%q|%r|%l|%m|%x|%X"],
                                  ["-F", "%5t|%-5t|%05l|%-05l|%.1t|%3.1t|%5m|%%|@@|\\t\\\\\\e|\\0"],
                                  ["-v", "-T", "cmp/1", "-T", "cmp/+/none"]])
def test_output_matches_mosquitto_sub(any_port, args):
    m, q = compare_subs(any_port, publish_payloads(any_port), args, len(PAYLOADS)
                        - (1 if "-T" in args else 0))
    assert m == q


def _strip_tst(out):
    import re
    return re.sub(rb'"tst":(\t?)"[^"]*"', rb'"tst":\1"T"', out)


@pytest.mark.parametrize("args", [["-F", "%j"], ["-F", "%j", "--pretty"], ["-F", "%J"],
                                  ["-F", "%J", "--pretty"]])
def test_json_output(any_port, args):
    m, q = compare_subs(any_port, publish_payloads(any_port, qos=2), args, len(PAYLOADS),
                        qos=2)
    assert _strip_tst(m) == _strip_tst(q)


def _strip_expiry(out):
    """The remaining Message Expiry Interval (300 s sent) counts down between the two
    subscribers' reads: check it is plausible, then mask it."""
    import re
    values = re.findall(rb'"message-expiry-interval":\t?(\d+)', out)
    values += re.findall(rb"\|(\d+)\|", out)
    assert values and all(270 <= int(v) <= 300 for v in values), values
    out = re.sub(rb'("message-expiry-interval":\t?)\d+', rb"\1E", out)
    return re.sub(rb"\|\d+\|", b"|E|", out)


@pytest.mark.parametrize("qos,extra", [(1, []), (2, ["--pretty"])])  # QoS 2: held until PUBREL
def test_v5_property_codes_match_mosquitto_sub(any_port, qos, extra):
    """-F codes and %j with v5 properties, byte for byte: mosquitto_sub prints %j properties
    in the order they came on the wire. The publisher sends them out of identifier order, with
    user properties apart; Mosquitto forwards them in that order, Midge in its own."""
    port = any_port
    pub_props = ["-D", "publish", "content-type", "text/plain", "-D", "publish", "user-property",
                 "k", "v", "-D", "publish", "user-property", "k2", "v2", "-D", "publish",
                 "response-topic", "rt", "-D", "publish", "correlation-data", "cd", "-D",
                 "publish", "payload-format-indicator", "1", "-D", "publish",
                 "message-expiry-interval", "300", "-D", "publish", "user-property", "k3", "v3"]
    # Payload format indicator 1 promises UTF-8: leave out the invalid payload.
    payloads = [p for p in PAYLOADS if utf8(p)]
    m, q = compare_subs(port, publish_payloads(port, qos, "5", pub_props, payloads),
                        ["-F", "%t %C %D |%E| %F %P %R %A %S|%j"] + extra, len(payloads),
                        version="5", qos=qos)
    assert _strip_tst(_strip_expiry(m)) == _strip_tst(_strip_expiry(q))
    assert b" text/plain cd |E| 1 k:v k2:v2 k3:v3 rt  |" in _strip_expiry(m)


def test_time_codes(any_port):
    mpub(any_port, "-t", "time/a", "-m", "x", "-r")
    before = time.time()
    r = run([tool("sub"), "-p", str(any_port), "-t", "time/a", "-C", "1",
             "-F", "%U|%I|@Y-@m-@d @H:@M:@S.@N|@@"])
    assert r.returncode == 0
    u, iso, strf, at = r.stdout.decode().rstrip("\n").split("|")
    assert abs(float(u) - before) < 5 and len(u.split(".")[1]) == 9
    assert time.strftime("%Y-%m-%dT%H", time.localtime(float(u))) == iso[:13]
    assert len(strf) == 29 and at == "@"


# ------------------------------------------------------------------ midge_sub behaviour

def test_count_exit_and_timeout(any_port):
    for i in range(3):
        mpub(any_port, "-t", "cnt/%d" % i, "-m", str(i), "-r")
    m, q = both("sub", any_port, "-t", "cnt/#", "-C", "2", "-v")
    assert m.returncode == q.returncode == 0
    # Retained messages come in the broker's order; -C stops after exactly two.
    lines = m.stdout.decode().splitlines()
    assert len(lines) == 2 and set(lines) <= {"cnt/0 0", "cnt/1 1", "cnt/2 2"}
    t0 = time.monotonic()
    m, q = both("sub", any_port, "-t", "nothing/here", "-W", "1")
    assert time.monotonic() - t0 < 6
    assert m.returncode == q.returncode == 27
    assert (m.stdout, m.stderr) == (q.stdout, q.stderr) == (b"", b"Timed out\n")


def test_exit_after_subscribe_and_debug(any_port):
    m, q = both("sub", any_port, "-t", "e/1", "-t", "e/2", "-q", "1", "-E", "-d", "-i", "dbg")
    assert m.returncode == q.returncode == 0
    assert m.stdout == q.stdout
    assert b"Subscribed (mid: 1): 1, 1\n" in m.stdout


def test_retained_filters(any_port):
    mpub(any_port, "-t", "rf/a", "-m", "ra", "-r")
    mpub(any_port, "-t", "rf/b", "-m", "rb", "-r")
    # -R hides retained messages: nothing arrives within -W.
    m, q = both("sub", any_port, "-t", "rf/#", "-R", "-W", "1")
    assert (m.returncode, m.stdout) == (q.returncode, q.stdout) == (27, b"")
    # --retained-only prints retained ones and exits at the first live message.
    sub = subprocess.Popen([tool("sub"), "-p", str(any_port), "-t", "rf/#", "--retained-only",
                            "-v"], stdout=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while sub.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
        mpub(any_port, "-t", "rf/live", "-m", "live")
    out, _ = sub.communicate(timeout=5)
    assert sub.returncode == 0 and sorted(out.splitlines()) == [b"rf/a ra", b"rf/b rb"]
    # --remove-retained clears what it sees (-T keeps rf/b).
    r = run([tool("sub"), "-p", str(any_port), "-t", "rf/+", "--remove-retained", "-T", "rf/b",
             "-W", "1"])
    assert r.returncode == 27 and r.stdout == b"ra\n"
    r = run([tool("sub"), "-p", str(any_port), "-t", "rf/+", "-W", "1", "-v"])
    assert r.stdout == b"rf/b rb\n"


def test_unsubscribe_flag(any_port):
    mpub(any_port, "-t", "un/a", "-m", "a", "-r")
    mpub(any_port, "-t", "un/b", "-m", "b", "-r")
    m, q = both("sub", any_port, "-t", "un/a", "-U", "un/b", "-E", "-d", "-i", "unsub")
    assert m.returncode == q.returncode == 0
    assert b"sending UNSUBSCRIBE (Mid: 2, Topic: un/b)" in m.stdout


def test_persistent_session_gets_queued_messages(any_port):
    for version in ("311", "5"):
        cid = "persist-" + version
        make_session("sub", any_port, cid, "ps/" + version, 1, version)
        mpub(any_port, "-t", "ps/" + version, "-m", "queued", "-q", "1")
        r = run([tool("sub"), "-p", str(any_port), "-c", "-i", cid, "-q", "1", "-t",
                 "ps/" + version, "-C", "1", "-W", "10", "-V", version])
        assert (r.returncode, r.stdout) == (0, b"queued\n"), r.stderr


def test_will_published_when_killed(any_port, bg):
    sub = bg([tool("sub"), "-p", str(any_port), "-t", "will/+", "-v", "-C", "1", "-W", "10"])
    victim = bg([tool("sub"), "-p", str(any_port), "-t", "x", "--will-topic", "will/t",
                 "--will-payload", "gone", "--will-qos", "1", "-k", "5"])
    time.sleep(1.0)  # both connected and subscribed
    victim.kill()
    assert sub.wait(15) == 0
    assert sub.out == b"will/t gone\n"


# ------------------------------------------------------------------ midge_pub behaviour

@pytest.mark.parametrize("qos", ["0", "1", "2"])
@pytest.mark.parametrize("version", ["31", "311", "5"])
def test_pub_modes(any_port, tmp_path, qos, version):
    f = tmp_path / "payload.bin"
    f.write_bytes(b"file\x00data\n")
    base = [tool("pub"), "-p", str(any_port), "-q", qos, "-V", version, "-r"]
    steps = [(["-t", "pm/m", "-m", "text"], None, b"text"),
             (["-t", "pm/f", "-f", str(f)], None, b"file\x00data\n"),
             (["-t", "pm/s", "-s"], b"all\nof stdin", b"all\nof stdin"),
             (["-t", "pm/n", "-m", "x"], None, b"x")]
    for args, stdin, want in steps:
        r = run(base + args, input=stdin)
        assert r.returncode == 0, r.stderr
        topic = args[1]
        got = run([tool("sub"), "-p", str(any_port), "-t", topic, "-C", "1", "-W", "5", "-N"])
        assert got.stdout == want, topic


def test_pub_lines_and_repeat(any_port):
    make_session("sub", any_port, "lines", "pl/#", 2)
    r = run([tool("pub"), "-p", str(any_port), "-t", "pl/l", "-l", "-q", "2"],
            input=b"one\ntwo\n\nfour\n")
    assert r.returncode == 0, r.stderr
    r = run([tool("pub"), "-p", str(any_port), "-t", "pl/r", "-m", "again", "-q", "1",
             "--repeat", "3", "--repeat-delay", "0.1"])
    assert r.returncode == 0, r.stderr
    got = run([tool("sub"), "-p", str(any_port), "-c", "-i", "lines", "-q", "2", "-t", "pl/#",
               "-C", "7", "-W", "10", "-v"])
    lines = got.stdout.decode().splitlines()
    # Per topic, order is kept (QoS 1 and QoS 2 flows may interleave).
    assert [x for x in lines if x.startswith("pl/l")] == ["pl/l one", "pl/l two", "pl/l (null)",
                                                          "pl/l four"]
    assert [x for x in lines if x.startswith("pl/r")] == ["pl/r again"] * 3


def test_pub_debug_matches_mosquitto(any_port):
    m, q = both("pub", any_port, "-t", "dbg/x", "-m", "hello", "-q", "2", "-d", "-i", "dbgpub")
    assert m.returncode == q.returncode == 0
    assert m.stdout == q.stdout


def test_pub_v5_properties_reach_subscriber(broker):
    port = broker().port
    c = Client(port, V5)
    c.connect()
    c.subscribe("prop/#", 1)
    r = run([tool("pub"), "-p", str(port), "-V", "5", "-q", "1", "-t", "prop/x", "-m", "p",
             "-D", "publish", "content-type", "ct", "-D", "publish", "user-property", "a", "b",
             "-D", "publish", "response-topic", "resp", "-D", "publish", "correlation-data",
             "corr", "-D", "publish", "message-expiry-interval", "100"])
    assert r.returncode == 0, r.stderr
    msg = c.wait_messages(1)[0]
    p = msg.properties
    assert (p.ContentType, p.UserProperty, p.ResponseTopic, p.CorrelationData) == (
        "ct", [("a", "b")], "resp", b"corr")
    c.stop()


# ------------------------------------------------------------------ midge_rr

def test_rr_request_response(any_port):
    responder = Client(any_port, V5)
    responder.paho.on_message = lambda cl, u, msg: cl.publish(
        msg.properties.ResponseTopic, b"pong:" + msg.payload, 1,
        properties=props(PacketTypes.PUBLISH, CorrelationData=getattr(
            msg.properties, "CorrelationData", b"")))
    responder.connect()
    responder.subscribe("rr/req", 1)
    m, q = both("rr", any_port, "-t", "rr/req", "-e", "rr/resp", "-m", "ping", "-W", "10")
    responder.stop()
    assert m.returncode == q.returncode == 0, (m.stderr, q.stderr)
    assert m.stdout == q.stdout == b"pong:ping\n"


def test_rr_timeout(any_port):
    m, q = both("rr", any_port, "-t", "rr/none", "-e", "rr/noresp", "-m", "x", "-W", "1")
    assert m.returncode == q.returncode == 27
    assert m.stderr == q.stderr


# ------------------------------------------------------------------ options

def test_url_and_config_file(any_port, tmp_path):
    mpub(any_port, "-t", "url/t", "-m", "via url", "-r")
    r = run([tool("sub"), "-L", "mqtt://user:pw@127.0.0.1:%d/url/t" % any_port, "-C", "1",
             "-W", "5"])
    assert (r.returncode, r.stdout) == (0, b"via url\n"), r.stderr
    # Default options from $XDG_CONFIG_HOME/midge_sub, then from ~/.config/midge_pub.
    xdg = tmp_path / "xdg"
    xdg.mkdir()
    (xdg / "midge_sub").write_text("# defaults\n-p %d\n-v\n-W 5\n" % any_port)
    env = dict(os.environ, XDG_CONFIG_HOME=str(xdg))
    r = run([tool("sub"), "-t", "url/t", "-C", "1"], env=env)
    assert (r.returncode, r.stdout) == (0, b"url/t via url\n"), r.stderr
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    (home / ".config" / "midge_pub").write_text("-p %d\n-m hello from config\n" % any_port)
    env = dict(os.environ, HOME=str(home))
    env.pop("XDG_CONFIG_HOME", None)
    r = run([tool("pub"), "-t", "cfg/t", "-r"], env=env)
    assert r.returncode == 0, r.stderr
    r = run([tool("sub"), "-p", str(any_port), "-t", "cfg/t", "-C", "1", "-W", "5"])
    assert r.stdout == b"hello from config\n"


BAD_INPUT = [
    ("pub", ["-z"]), ("sub", ["-z"]), ("rr", ["-z"]), ("pub", ["-t"]), ("sub", ["-t", "a", "-p"]),
    ("pub", ["-t", "a", "-m", "b", "-p", "70000"]), ("sub", ["-t", "a", "-q", "3"]),
    ("pub", ["-t", "a", "-m", "b", "-q", "5"]), ("pub", ["-m", "b"]), ("pub", ["-t", "a"]),
    ("pub", ["-t", "a/#", "-m", "b"]), ("sub", []), ("sub", ["-t", "a/#/b"]),
    ("sub", ["-t", "a", "-k", "3"]), ("sub", ["-t", "a", "-V", "7"]),
    ("sub", ["-t", "a", "-C", "0"]), ("sub", ["-t", "a", "-W", "0"]), ("sub", ["-t", "a", "-F"]),
    ("sub", ["-t", "a", "-F", "%z"]), ("sub", ["-t", "a", "-F", "\\z"]),
    ("pub", ["-t", "a", "-m", "x", "-n"]), ("pub", ["-t", "a", "-m", "x", "-c"]),
    ("pub", ["-t", "a", "-m", "x", "--will-payload", "p"]),
    ("pub", ["-t", "a", "-m", "x", "--will-topic", "w/#"]),
    ("pub", ["-t", "a", "-m", "x", "--will-qos", "3", "--will-topic", "w"]),
    ("pub", ["-t", "a", "-m", "x", "-D", "foo", "content-type", "x"]),
    ("pub", ["-t", "a", "-m", "x", "-D", "publish", "foo", "x"]),
    ("pub", ["-t", "a", "-m", "x", "-D", "connect", "content-type", "x"]),
    ("pub", ["-t", "a", "-m", "x", "-D", "publish", "user-property", "k"]),
    ("pub", ["-t", "a", "-m", "x", "-M", "0"]), ("pub", ["-t", "a", "-m", "x", "--repeat", "0"]),
    ("pub", ["-t", "a", "-m", "x", "-x", "abc"]), ("sub", ["-t", "a", "-R", "--retained-only"]),
    ("sub", ["-L", "foo://h/t"]), ("sub", ["-L", "mqtt://host"]),
    ("pub", ["-t", "a", "-f", "/nonexistent/file"]), ("rr", ["-t", "a", "-m", "x"]),
]


@pytest.mark.parametrize("kind,args", BAD_INPUT, ids=[" ".join([k] + a) for k, a in BAD_INPUT])
def test_bad_input_like_mosquitto(kind, args):
    m, q = both(kind, None, *args)
    assert m.returncode == q.returncode == 1
    want = first_line(q.stderr).replace("mosquitto_", "midge_")
    assert first_line(m.stderr) == want


def test_password_without_username_v3():
    port = free_port()  # nothing listening: the check comes first, as in mosquitto_pub
    for version, want_line in (("311", "Error: Problem setting username and/or password."),
                               ("31", "Error: Problem setting username and/or password."),
                               ("5", "Error: Connection refused")):
        m, q = both("pub", port, "-t", "a", "-m", "x", "-P", "pw", "-V", version)
        assert m.returncode == q.returncode == 1
        assert first_line(m.stderr) == first_line(q.stderr) == want_line


def test_unreachable_host_and_closed_port():
    port = free_port()
    for kind, extra in (("pub", ["-m", "x"]), ("sub", []), ("rr", ["-e", "r", "-m", "x"])):
        m, q = both(kind, port, "-t", "a", *extra)
        assert (m.returncode, m.stderr) == (q.returncode, q.stderr) == (1, b"Error: Connection refused\n")
    m, q = both("sub", None, "-h", "nonexistent.invalid", "-t", "a")
    assert (m.returncode, m.stderr) == (q.returncode, q.stderr)


def test_connect_timeout_never_hangs():
    # A listener that never accepts/answers: the tool gives up instead of hanging.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(0)
    t0 = time.monotonic()
    r = run([tool("pub"), "-p", str(s.getsockname()[1]), "-t", "a", "-m", "x"], timeout=30)
    s.close()
    assert r.returncode == 1 and time.monotonic() - t0 < 20
    assert r.stderr == b"Error: Connection timed out\n"


def test_proxy_not_supported_yet():
    """TLS, TLS-PSK and WebSockets work (test_tools_tls_ws.py, test_tools_psk.py); SOCKS
    proxies do not yet."""
    r = run([tool("sub"), "-t", "a", "--proxy", "socks5h://h:1"])
    assert r.returncode == 1
    assert b"not supported yet" in r.stderr


def test_help():
    for kind in ("pub", "sub", "rr"):
        r = run([tool(kind), "--help"])
        assert r.returncode == 1  # as the mosquitto tools
        assert b"Usage: midge_" + kind.encode() in r.stdout


# ------------------------------------------------------------------ remaining flags

def test_unix_socket(tmp_path, mosquitto_broker):
    sock = tmp_path / "mq.sock"
    mosquitto_broker(["listener 0 %s" % sock])
    r = run([tool("pub"), "--unix", str(sock), "-t", "unix/t", "-m", "via unix", "-r"])
    assert r.returncode == 0, r.stderr
    r = run([tool("sub"), "--unix", str(sock), "-t", "unix/t", "-C", "1", "-W", "5"])
    assert (r.returncode, r.stdout) == (0, b"via unix\n")


def test_bind_address_nodelay_inflight(any_port):
    r = run([tool("pub"), "-p", str(any_port), "-A", "127.0.0.1", "--nodelay", "-M", "1",
             "-q", "1", "-t", "bind/t", "-m", "b", "--repeat", "5", "-r"])
    assert r.returncode == 0, r.stderr
    r = run([tool("sub"), "-p", str(any_port), "-A", "127.0.0.1", "--nodelay", "-t", "bind/t",
             "-C", "1", "-W", "5"])
    assert (r.returncode, r.stdout) == (0, b"b\n")
    r = run([tool("pub"), "-p", str(any_port), "-A", "nonexistent.invalid", "-t", "a", "-m", "x"])
    assert r.returncode == 1


def test_quiet_hides_errors():
    port = free_port()
    m, q = both("pub", port, "-t", "a", "-m", "x", "--quiet")
    assert (m.returncode, m.stderr) == (q.returncode, q.stderr) == (1, b"")


def test_retain_as_published_and_subscribe_properties(any_port):
    m, q = both("sub", any_port, "-V", "5", "-t", "rap/#", "--retain-as-published", "-E", "-d",
                "-i", "rap", "-D", "subscribe", "user-property", "k", "v", "-q", "2")
    assert m.returncode == q.returncode == 0, (m.stderr, q.stderr)
    assert m.stdout == q.stdout
    assert b"Options: 0x08" in m.stdout


def test_random_filter(any_port):
    for i in range(20):
        mpub(any_port, "-t", "rnd/%d" % i, "-m", "x", "-r")
    r = run([tool("sub"), "-p", str(any_port), "-t", "rnd/#", "--random-filter", "100", "-C",
             "20", "-W", "5"])
    assert r.returncode == 0 and r.stdout == b"x\n" * 20
    r = run([tool("sub"), "-p", str(any_port), "-t", "rnd/#", "--random-filter", "0.1", "-W",
             "2"])
    assert r.returncode == 27 and len(r.stdout) < 20


def test_rr_format_and_v311(any_port):
    responder = Client(any_port, V311)
    responder.paho.on_message = lambda cl, u, msg: cl.publish("rr2/resp", b"R" + msg.payload, 1)
    responder.connect()
    responder.subscribe("rr2/req", 1)
    m, q = both("rr", any_port, "-V", "311", "-t", "rr2/req", "-e", "rr2/resp", "-m", "x",
                "-F", "%t:%p:%q", "-q", "1", "-W", "10")
    responder.stop()
    assert m.returncode == q.returncode == 0, (m.stderr, q.stderr)
    assert m.stdout == q.stdout == b"rr2/resp:Rx:1\n"


def test_session_expiry_flag_v5(any_port):
    r = run([tool("sub"), "-p", str(any_port), "-V", "5", "-c", "-x", "60", "-i", "sx", "-q",
             "1", "-t", "sx/t", "-E"])
    assert r.returncode == 0, r.stderr
    mpub(any_port, "-t", "sx/t", "-m", "kept", "-q", "1")
    r = run([tool("sub"), "-p", str(any_port), "-V", "5", "-c", "-x", "0", "-i", "sx", "-q",
             "1", "-t", "sx/t", "-C", "1", "-W", "5"])
    assert (r.returncode, r.stdout) == (0, b"kept\n")


def test_sub_reconnects_after_broker_restart(broker, bg):
    b = broker()
    sub = bg([tool("sub"), "-p", str(b.port), "-t", "rc/t", "-v", "-C", "1", "-W", "20"])
    time.sleep(0.5)
    b.restart()  # like mosquitto_sub, midge_sub reconnects (every second) and resubscribes
    deadline = time.monotonic() + 15
    while sub.proc.poll() is None and time.monotonic() < deadline:
        mpub(b.port, "-t", "rc/t", "-m", "back")
        time.sleep(0.3)
    assert sub.wait() == 0
    assert sub.out == b"rc/t back\n"
