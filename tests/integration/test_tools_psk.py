"""midge_pub / midge_sub / midge_rr with TLS-PSK (--psk, --psk-identity), against the broker
under test's PSK listener (psk_hint + psk_file), compared with mosquitto_pub/mosquitto_sub
2.0.11. MIDGE_TEST_BROKER=mosquitto runs the same tests against Debian's mosquitto.

Both tools negotiate TLS 1.3 with either broker (OpenSSL's external PSK); TLS 1.2 PSK suites
are checked against `openssl s_server -tls1_2`, the only server here that can refuse TLS 1.3.
"""
import os
import re
import shutil
import subprocess

import pytest

import certs as certs_mod
from conftest import IS_MOSQUITTO, Client, free_port, port_open, wait_until
from test_tools import TOOLS, first_line, run, tool

pytestmark = [
    pytest.mark.skipif(TOOLS is None, reason="midge_pub/midge_sub not built"),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command"),
]

KEY = "00112233445566778899aabbccddeeff"
OTHER_KEY = "ffeeddccbbaa99887766554433221100"
TLS_ERROR = ("Error: A TLS error occurred.", 8)
# libmosquitto fails a handshake inside mosquitto_connect() or later in its loop, depending
# on timing: a mosquitto_* run gives one of these two.
MOSQUITTO_TLS_ERRORS = {TLS_ERROR, ("Unable to connect (A TLS error occurred.).", 1)}
# Mosquitto started as root drops to user 'mosquitto', which cannot read the tmp dirs.
STAY_ROOT = ["user root"] if IS_MOSQUITTO and os.geteuid() == 0 else []
EXTRA = {"pub": ["-m", "m"], "sub": [], "rr": ["-e", "resp", "-m", "m"]}


@pytest.fixture
def psk_broker(broker, tmp_path):
    """Factory: the broker under test with a plain listener (.port) and a PSK-only one (.psk)
    knowing device1 (KEY), other (OTHER_KEY) and short (0abc)."""
    def make(*extra):
        keys = tmp_path / "psk"
        keys.write_text("device1:%s\nother:%s\nshort:0abc\n" % (KEY, OTHER_KEY))
        port = free_port()
        b = broker(STAY_ROOT + ["listener %d 127.0.0.1" % port, "psk_hint midge-test",
                                "psk_file %s" % keys, "allow_anonymous true"] + list(extra),
                   start=False)
        b.psk = port
        b.start()
        wait_until(lambda: port_open(port), 10, what="the PSK listener")
        return b
    return make


def psk_args(port, identity="device1", key=KEY):
    return ["-h", "127.0.0.1", "-p", str(port), "--psk", key, "--psk-identity", identity]


def exe(which, kind):
    return tool(kind) if which == "midge" else "mosquitto_" + kind


def queue_and_read(b, publisher, subscriber, tag):
    """A persistent QoS 1 session made by `subscriber` over PSK, a message published by
    `publisher` over PSK while it is away, then read back: no race with the subscription."""
    cid = "psk-%s-%s" % (subscriber, tag)
    args = psk_args(b.psk) + ["-c", "-i", cid, "-q", "1", "-t", "psk/%s" % tag]
    r = run([exe(subscriber, "sub")] + args + ["-E"])
    assert r.returncode == 0, r.stderr
    r = run([exe(publisher, "pub")] + psk_args(b.psk) + ["-q", "1", "-t", "psk/%s" % tag,
                                                        "-m", "from %s" % publisher])
    assert (r.returncode, r.stderr) == (0, b"")
    r = run([exe(subscriber, "sub")] + args + ["-C", "1", "-v", "-W", "10"])
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_midge_pub_to_mosquitto_sub(psk_broker):
    b = psk_broker()
    assert queue_and_read(b, "midge", "mosquitto", "a") == b"psk/a from midge\n"


def test_mosquitto_pub_to_midge_sub(psk_broker):
    b = psk_broker()
    assert queue_and_read(b, "mosquitto", "midge", "b") == b"psk/b from mosquitto\n"


def test_midge_sub_live_and_retained(psk_broker):
    """A retained message and the next live one, both over PSK, printed like mosquitto_sub."""
    b = psk_broker()
    r = run([tool("pub")] + psk_args(b.psk) + ["-t", "psk/r", "-m", "kept", "-r"])
    assert r.returncode == 0, r.stderr
    out = {}
    for which in ("midge", "mosquitto"):
        sub = subprocess.Popen([exe(which, "sub")] + psk_args(b.psk) +
                               ["-t", "psk/r", "-v", "-C", "2", "-W", "10"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # The retained message arrives once the subscription is in place: publish then.
        first = sub.stdout.readline()
        run([tool("pub")] + psk_args(b.psk) + ["-t", "psk/r", "-m", "live"])
        rest, err = sub.communicate(timeout=15)
        assert sub.returncode == 0, err
        out[which] = first + rest
    assert out["midge"] == out["mosquitto"] == b"psk/r kept\npsk/r live\n"


def test_midge_rr_over_psk(psk_broker):
    """midge_rr's request goes out over PSK; a plain-port client answers it."""
    b = psk_broker()
    responder = Client(b.port, version=5)
    try:
        responder.connect()
        responder.subscribe("req/psk")
        rr = subprocess.Popen([tool("rr")] + psk_args(b.psk) +
                              ["-t", "req/psk", "-e", "resp/psk", "-m", "question", "-W", "10"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        [req] = responder.wait_messages(1)
        assert req.payload == b"question"
        responder.publish("resp/psk", b"answer")
        out, err = rr.communicate(timeout=15)
    finally:
        responder.stop()
    assert (rr.returncode, out, err) == (0, b"answer\n", b"")


@pytest.mark.parametrize("case", ["wrong-key", "unknown-identity", "empty-key", "long-key"])
def test_refused_like_mosquitto(case, psk_broker):
    """A wrong key or identity fails the handshake: midge_* say what mosquitto_* say (one of
    its two timing-dependent outcomes), and the broker serves the right key afterwards."""
    b = psk_broker()
    identity, key = {"wrong-key": ("device1", OTHER_KEY), "unknown-identity": ("nobody", KEY),
                     "empty-key": ("device1", ""), "long-key": ("device1", "ab" * 600)}[case]
    for kind in ("pub", "sub", "rr"):
        args = psk_args(b.psk, identity, key) + ["-t", "psk/x"] + EXTRA[kind]
        m = run([tool(kind)] + args)
        assert (first_line(m.stderr), m.returncode) == TLS_ERROR, (kind, m.stderr)
        assert m.stdout == b""
        seen = set()
        for _ in range(60):
            q = run(["mosquitto_" + kind] + args)
            seen.add((first_line(q.stderr), q.returncode))
            if TLS_ERROR in seen:
                break
        assert TLS_ERROR in seen and seen <= MOSQUITTO_TLS_ERRORS, seen
    r = run([tool("pub")] + psk_args(b.psk) + ["-t", "psk/x", "-m", "still served"])
    assert (r.returncode, r.stderr) == (0, b"")


@pytest.mark.parametrize("digits", ["0abc", "abc", "0ABC"])
def test_key_digits_read_as_mosquitto_reads_them(digits, psk_broker):
    """libmosquitto reads the key as one hexadecimal number: "abc" is the bytes 0a bc."""
    b = psk_broker()
    for which in ("midge", "mosquitto"):
        r = run([exe(which, "pub")] + psk_args(b.psk, "short", digits) + ["-t", "k", "-m", "x"])
        assert (r.returncode, r.stderr) == (0, b""), which
    r = run([tool("pub")] + psk_args(b.psk, "short", "00abc") + ["-t", "k", "-m", "x"])
    assert (first_line(r.stderr), r.returncode) == TLS_ERROR  # 00 0a bc: another key


def test_identity_is_the_username(psk_broker):
    """With use_identity_as_username the broker logs the PSK identity as the user name."""
    b = psk_broker("use_identity_as_username true")
    r = run([tool("pub")] + psk_args(b.psk, "other", OTHER_KEY) +
            ["-i", "psk-login", "-t", "psk/u", "-m", "x"])
    assert r.returncode == 0, r.stderr

    def username():
        for line in b.log_text().splitlines():
            if "New client connected" in line and " as psk-login (" in line:
                return re.search(r"u'([^']*)'", line).group(1) if "u'" in line else "(none)"
        return None
    assert wait_until(username, what="the connection log line") == "other"


# ------------------------------------------------------------------ option errors

def _flag_cases():
    port = ["-p", str(free_port())]  # nothing listens: a connection attempt is refused
    psk = ["--psk", KEY, "--psk-identity", "me"]
    return {
        "psk-no-identity": ["--psk", KEY],
        "identity-no-psk": ["--psk-identity", "me"] + port,  # ignored: plain TCP
        "psk-no-value": ["--psk"],
        "identity-no-value": ["--psk-identity"],
        "psk-and-cafile": psk + ["--cafile", "/etc/hostname"],
        "psk-and-capath": psk + ["--capath", "/etc"],
        "psk-cert-without-key": psk + ["--cert", "/etc/hostname"],
        "psk-with-cert-and-key": psk + ["--cert", "/nonexistent", "--key", "/nonexistent"] + port,
        "non-hex-key": ["--psk", "0x0011", "--psk-identity", "me"] + port,
        "non-hex-key-quiet": ["--psk", "zz", "--psk-identity", "me", "--quiet"] + port,
        "non-hex-and-bad-tls-version": ["--psk", "zz", "--psk-identity", "me",
                                        "--tls-version", "tlsv9"] + port,
        "bad-tls-version": psk + ["--tls-version", "tlsv9"] + port,
        "odd-digit-count": ["--psk", "abc", "--psk-identity", "me"] + port,
        "psk-no-identity-before-missing-client-id": ["--psk", KEY, "-c", "-V", "311"],
        "psk-and-clean-session-ok": psk + ["-c", "-i", "x"] + port,
    }


@pytest.mark.parametrize("case", sorted(_flag_cases()))
@pytest.mark.parametrize("kind", ["pub", "sub", "rr"])
def test_flag_errors_like_mosquitto(kind, case):
    args = _flag_cases()[case] + ["-t", "psk/opts"] + EXTRA[kind]
    m = run([tool(kind)] + args)
    q = run(["mosquitto_" + kind] + args)
    assert m.returncode == q.returncode != 0, (m.stderr, q.stderr)
    assert m.stdout == q.stdout
    assert m.stderr.replace(b"midge_", b"mosquitto_") == q.stderr


def test_psk_missing_before_topic_check():
    """--psk without --psk-identity is reported before the missing topic, as mosquitto does."""
    for kind in ("pub", "sub", "rr"):
        m, q = run([tool(kind), "--psk", KEY]), run(["mosquitto_" + kind, "--psk", KEY])
        assert (m.returncode, m.stderr.replace(b"midge_", b"mosquitto_")) == (q.returncode,
                                                                               q.stderr)


# ------------------------------------------------------------------ default port

def _connect_ports(argv):
    """The TCP ports argv's process tries to connect to, seen by strace."""
    r = run(["strace", "-f", "-e", "trace=connect", "-o", "/dev/stderr"] + argv)
    return [int(p) for p in re.findall(rb"AF_INET6?, sin6?_port=htons\((\d+)\)", r.stderr)]


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_default_port_8883_with_psk():
    """mosquitto_pub connects to 8883 when --psk is given without -p; --psk-identity alone
    leaves 1883."""
    for extra, port in ((["--psk", KEY, "--psk-identity", "me"], 8883),
                        (["--psk-identity", "me"], 1883)):
        for argv0 in (tool("pub"), "mosquitto_pub"):
            ports = _connect_ports([argv0, "-h", "127.0.0.1", "-t", "t", "-m", "x"] + extra)
            if not ports:
                pytest.skip("strace cannot trace here")
            assert set(ports) == {port}, (argv0, ports)


# ------------------------------------------------------------------ TLS 1.2, certificates

class PskServer:
    """`openssl s_server -tls1_2` with a PSK and no certificate, for one connection: it
    answers with the CONNACK written to its stdin and prints the bytes it decrypts."""

    def __init__(self):
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["openssl", "s_server", "-accept", "127.0.0.1:%d" % self.port, "-nocert",
             "-psk", KEY, "-psk_identity", "device1", "-tls1_2", "-naccept", "1"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for line in self.proc.stdout:  # listening once it says ACCEPT
            if line == b"ACCEPT\n":
                break
        # s_server sends what stdin holds once a client is in (and past the handshake).
        self.proc.stdin.write(b"\x20\x02\x00\x00")
        self.proc.stdin.flush()

    def output(self):
        try:
            out, _ = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return out


def test_tls12_psk_suites_like_mosquitto():
    """Against a TLS 1.2-only PSK server midge_pub completes the handshake and sends what
    mosquitto_pub sends, byte for byte."""
    got = {}
    for which in ("midge", "mosquitto"):
        # s_server prints what it decrypts and "DONE" as the client leaves; when the client
        # closes at once, under load, it can print DONE before the data it read last: that
        # exchange is run again (at most six times in all: it failed three times in a row once, under a full CI load), a client that never gets its
        # PUBLISH through still fails.
        for _ in range(6):
            server = PskServer()
            r = run([exe(which, "pub")] + psk_args(server.port) +
                    ["-i", "tls12", "-q", "0", "-t", "tls12/t", "-m", "over TLS 1.2"])
            out = server.output()
            assert (r.returncode, r.stderr) == (0, b""), which
            got[which] = out[:out.index(b"DONE")] if b"DONE" in out else out
            if b"tls12/tover TLS 1.2" in got[which]:
                break
    assert b"tls12/tover TLS 1.2" in got["midge"], got
    assert got["midge"] == got["mosquitto"]


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return certs_mod.make_all(tmp_path_factory.mktemp("psk-certs"))


def test_certificate_listener_refused_unlike_mosquitto(broker, certs):
    """A broker that answers a PSK client with an (unchecked) certificate: mosquitto_pub
    connects anyway, without authenticating the broker at all; midge_pub refuses, as no CA
    was given to check the certificate with. A deliberate difference."""
    port = free_port()
    b = broker(STAY_ROOT + ["listener %d 127.0.0.1" % port, "certfile " + certs["server.crt"],
                            "keyfile " + certs["server.key"], "allow_anonymous true"])
    wait_until(lambda: port_open(port), 10, what="the TLS listener")
    args = psk_args(port) + ["-t", "psk/c", "-m", "x"]
    q = run(["mosquitto_pub"] + args)
    assert q.returncode == 0, q.stderr
    m = run([tool("pub")] + args)
    assert (first_line(m.stderr), m.returncode) == TLS_ERROR
    assert b.alive()
