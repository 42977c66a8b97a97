"""Short midge_bench runs against the real broker. Counts only, never timings:
QoS 1 and 2 deliver every message exactly once, QoS 0 with a window loses nothing.

midge_bench is found at $MIDGE_BENCH, else next to the broker's build
(<build>/bench/midge_bench for MIDGE_BIN=<build>/src/midge), else <repo>/build/bench.
"""
import json
import os
import shutil
import subprocess

import pytest

import certs as certs_mod
from conftest import BROKER_BIN, IS_MOSQUITTO, REPO, free_port, port_open, wait_until


def bench_path():
    env = os.environ.get("MIDGE_BENCH")
    if env:
        return env
    if not IS_MOSQUITTO:
        build = os.path.dirname(os.path.dirname(os.path.abspath(BROKER_BIN)))
        candidate = os.path.join(build, "bench", "midge_bench")
        if os.path.exists(candidate):
            return candidate
    return os.path.join(REPO, "build", "bench", "midge_bench")


# Heavy load on every core: run alone (scripts/test), so as not to slow the other tests.
pytestmark = pytest.mark.serial

BENCH_CONF = ["max_inflight_messages 1000", "max_queued_messages 100000"]


def run_bench(b, *args, expect_rc=0, port=None):
    exe = bench_path()
    if not os.access(exe, os.X_OK):
        pytest.fail("midge_bench not found at %s: build it or set MIDGE_BENCH" % exe)
    argv = [exe, "--host", "127.0.0.1", "--port", str(port or b.port), "--json", "--check",
            "--drain-timeout", "10", "--broker-pid", str(b.pid)] + [str(a) for a in args]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    lines = [l for l in res.stdout.splitlines() if l.startswith("{")]
    assert len(lines) == 1, "no JSON line from %s\nstdout: %s\nstderr: %s" % (
        argv, res.stdout, res.stderr)
    report = json.loads(lines[0])
    assert res.returncode == expect_rc, "midge_bench exit %d: %s\n%s" % (
        res.returncode, report, b.log_tail())
    if expect_rc == 0:
        assert report["error"] == "", report
    return report


def assert_exactly_once(r):
    assert r["sent"] > 0
    assert r["acked"] == r["sent"], r
    assert r["delivered"] == r["expected"], r
    assert r["lost"] == 0 and r["duplicated"] == 0, r
    assert r["check"] == "pass", r


@pytest.mark.parametrize("version", [4, 5])
def test_fan_in_qos1_exactly_once(broker, version):
    b = broker(BENCH_CONF)
    r = run_bench(b, "--scenario", "fan-in", "--qos", 1, "--publishers", 4, "--window", 50,
                  "--messages", 4000, "--mqtt-version", version)
    assert r["expected"] == 4000
    assert_exactly_once(r)


def test_fan_in_qos0_window_loses_nothing(broker):
    b = broker(BENCH_CONF)
    r = run_bench(b, "--scenario", "fan-in", "--qos", 0, "--publishers", 4, "--window", 50,
                  "--messages", 8000)
    assert r["sent"] == 8000 and r["delivered"] == 8000 and r["lost"] == 0, r
    assert r["duplicated"] == 0 and r["check"] == "pass", r


def test_fan_out_qos2_exactly_once(broker):
    b = broker(BENCH_CONF)
    r = run_bench(b, "--scenario", "fan-out", "--qos", 2, "--subscribers", 10, "--window", 20,
                  "--messages", 500)
    assert r["expected"] == 5000
    assert_exactly_once(r)


def test_pairs_qos0_window_loses_nothing(broker):
    b = broker(BENCH_CONF)
    r = run_bench(b, "--scenario", "pairs", "--qos", 0, "--publishers", 10, "--window", 20,
                  "--messages", 5000, "--payload", 1024)
    assert r["delivered"] == 5000 and r["lost"] == 0 and r["duplicated"] == 0, r
    assert r["out_of_order"] == 0, r  # one publisher per subscriber: order is kept [MQTT-4.6.0-6]


def test_shared_group_qos1_each_message_once(broker):
    b = broker(BENCH_CONF)
    r = run_bench(b, "--scenario", "shared", "--qos", 1, "--publishers", 4, "--subscribers", 3,
                  "--window", 20, "--messages", 3000)
    # The group as a whole receives every message once.
    assert r["expected"] == 3000
    assert_exactly_once(r)


def test_retained_all_arrive(broker):
    b = broker(BENCH_CONF)
    r = run_bench(b, "--scenario", "retained", "--qos", 1, "--retained", 2000)
    assert r["received"] == 2000 and r["duplicated"] == 0 and r["check"] == "pass", r


# ------------------------------------------------------------ persistence (issue 12)

# Mosquitto started as root drops to user 'mosquitto', which cannot write the tmp dirs.
PERSIST_USER = ["user root"] if IS_MOSQUITTO and os.geteuid() == 0 else []


def persist_conf(tmp_path):
    store = tmp_path / "store"
    store.mkdir(exist_ok=True)
    return BENCH_CONF + PERSIST_USER + ["persistence true", "persistence_location %s/" % store]


@pytest.mark.parametrize("version", [4, 5])
def test_fan_in_qos1_to_persistent_subscriber(broker, tmp_path, version):
    b = broker(persist_conf(tmp_path))
    r = run_bench(b, "--scenario", "fan-in", "--qos", 1, "--publishers", 4, "--window", 50,
                  "--messages", 4000, "--persistent", "--mqtt-version", version)
    assert r["persistent"] == 1 and r["expected"] == 4000
    assert_exactly_once(r)


def test_loaded_sessions_and_retained_survive_a_restart(broker, tmp_path):
    """bench/recovery.sh's loader and probes: what load-* stored, probe-* finds after a
    restart (the probe of a session gets its first queued message)."""
    b = broker(persist_conf(tmp_path))
    r = run_bench(b, "--scenario", "load-sessions", "--sessions", 200, "--queued", 3,
                  "--concurrency", 16)
    assert r["acked"] == 600 and r["check"] == "pass", r
    r = run_bench(b, "--scenario", "load-retained", "--retained", 1000)
    assert r["acked"] == 1000 and r["check"] == "pass", r
    b.restart()
    r = run_bench(b, "--scenario", "probe-session", "--sessions", 200, "--duration", 10)
    assert r["check"] == "pass" and r["session_present"] == 1 and r["ready_unix_ns"] > 0, r
    r = run_bench(b, "--scenario", "probe-retained", "--retained", 1000, "--duration", 10)
    assert r["check"] == "pass" and r["ready_unix_ns"] > 0, r


def test_probe_without_the_restored_message_fails(broker, tmp_path):
    """A probe does not succeed on an empty broker: it needs the restored message."""
    b = broker(persist_conf(tmp_path))
    r = run_bench(b, "--scenario", "probe-retained", "--retained", 10, "--duration", 1,
                  expect_rc=1)
    assert r["check"] == "fail" and r["ready_unix_ns"] == 0, r


def test_idle_connections_all_accepted(broker):
    b = broker(BENCH_CONF)
    r = run_bench(b, "--scenario", "connections", "--connections", 300, "--sources", 3,
                  "--hold", 0.2)
    assert r["connected"] == 300 and r["check"] == "pass", r


# ------------------------------------------------------------ TLS and WebSocket (issue 10)

# Mosquitto started as root drops to user 'mosquitto', which cannot read the tmp dirs.
STAY_ROOT = ["user root"] if IS_MOSQUITTO and os.geteuid() == 0 else []
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None,
                                   reason="needs the openssl command")


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return certs_mod.make_all(tmp_path_factory.mktemp("bench-certs"))


@pytest.fixture
def secure_broker(broker, certs):
    """A broker with listeners .tls (TLS), .ws (websockets) and .wss (websockets + TLS),
    all serving server.crt; extra_tls lines go to the TLS listener."""
    def make(*extra_tls):
        ports = {name: free_port() for name in ("tls", "ws", "wss")}
        cert = ["certfile " + certs["server.crt"], "keyfile " + certs["server.key"]]
        lines = STAY_ROOT + BENCH_CONF + [
            "listener %d 127.0.0.1" % ports["tls"]] + cert + list(extra_tls) + [
            "listener %d 127.0.0.1" % ports["ws"], "protocol websockets",
            "listener %d 127.0.0.1" % ports["wss"], "protocol websockets"] + cert
        b = broker(lines)
        for name, port in ports.items():
            wait_until(lambda: port_open(port), 10, what="the %s listener" % name)
            setattr(b, name, port)
        return b
    return make


@needs_openssl
def test_tls_fan_in_qos1_exactly_once(secure_broker, certs):
    b = secure_broker()
    r = run_bench(b, "--tls", "--cafile", certs["ca.crt"], "--scenario", "fan-in", "--qos", 1,
                  "--publishers", 4, "--window", 50, "--messages", 4000, port=b.tls)
    assert r["expected"] == 4000
    assert_exactly_once(r)


@needs_openssl
def test_tls_large_payloads_lose_nothing(secure_broker, certs):
    # 40 KB payloads span several TLS records each.
    b = secure_broker()
    r = run_bench(b, "--tls", "--cafile", certs["ca.crt"], "--scenario", "pairs", "--qos", 0,
                  "--publishers", 4, "--window", 10, "--messages", 400, "--payload", 40000,
                  port=b.tls)
    assert r["delivered"] == 400 and r["lost"] == 0 and r["out_of_order"] == 0, r


@needs_openssl
def test_ws_fan_out_qos0_window_loses_nothing(secure_broker):
    b = secure_broker()
    r = run_bench(b, "--ws", "--scenario", "fan-out", "--qos", 0, "--subscribers", 10,
                  "--window", 20, "--messages", 1000, port=b.ws)
    assert r["delivered"] == 10000 and r["lost"] == 0 and r["duplicated"] == 0, r


@needs_openssl
def test_wss_fan_out_qos2_exactly_once(secure_broker, certs):
    b = secure_broker()
    r = run_bench(b, "--tls", "--ws", "--cafile", certs["ca.crt"], "--scenario", "fan-out",
                  "--qos", 2, "--subscribers", 5, "--window", 20, "--messages", 400,
                  "--payload", 3000, port=b.wss)
    assert r["expected"] == 2000
    assert_exactly_once(r)


@needs_openssl
def test_tls_handshakes_all_complete(secure_broker, certs):
    b = secure_broker()
    r = run_bench(b, "--tls", "--cafile", certs["ca.crt"], "--scenario", "handshakes",
                  "--handshakes", 300, "--concurrency", 16, port=b.tls)
    assert r["completed"] == 300 and r["transport"] == "tls" and r["check"] == "pass", r
    assert r["broker_cpu_s"] > 0, r


@needs_openssl
def test_tls_client_certificate(secure_broker, certs):
    b = secure_broker("cafile " + certs["ca.crt"], "require_certificate true")
    r = run_bench(b, "--tls", "--cafile", certs["ca.crt"], "--cert", certs["alice.crt"],
                  "--key", certs["alice.key"], "--scenario", "handshakes", "--handshakes", 20,
                  port=b.tls)
    assert r["completed"] == 20, r
    # Without the certificate the broker refuses the handshake.
    r = run_bench(b, "--tls", "--cafile", certs["ca.crt"], "--scenario", "handshakes",
                  "--handshakes", 1, "--drain-timeout", 2, port=b.tls, expect_rc=1)
    assert r["completed"] == 0 and r["check"] == "fail" and r["error"], r


@needs_openssl
def test_tls_checks_the_broker_certificate(secure_broker, certs):
    b = secure_broker()
    r = run_bench(b, "--tls", "--cafile", certs["other-ca.crt"], "--scenario", "handshakes",
                  "--handshakes", 1, port=b.tls, expect_rc=1)
    assert r["completed"] == 0 and "certificate verify failed" in r["error"], r
    r = run_bench(b, "--tls", "--insecure", "--scenario", "handshakes", "--handshakes", 1,
                  port=b.tls)
    assert r["completed"] == 1, r
