"""Short midge_bench runs against the real broker. Counts only, never timings:
QoS 1 and 2 deliver every message exactly once, QoS 0 with a window loses nothing.

midge_bench is found at $MIDGE_BENCH, else next to the broker's build
(<build>/bench/midge_bench for MIDGE_BIN=<build>/src/midge), else <repo>/build/bench.
"""
import json
import os
import subprocess

import pytest

from conftest import BROKER_BIN, IS_MOSQUITTO, REPO


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


BENCH_CONF = ["max_inflight_messages 1000", "max_queued_messages 100000"]


def run_bench(b, *args, expect_rc=0):
    exe = bench_path()
    if not os.access(exe, os.X_OK):
        pytest.fail("midge_bench not found at %s: build it or set MIDGE_BENCH" % exe)
    argv = [exe, "--host", "127.0.0.1", "--port", str(b.port), "--json", "--check",
            "--drain-timeout", "10", "--broker-pid", str(b.pid)] + [str(a) for a in args]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    lines = [l for l in res.stdout.splitlines() if l.startswith("{")]
    assert len(lines) == 1, "no JSON line from %s\nstdout: %s\nstderr: %s" % (
        argv, res.stdout, res.stderr)
    report = json.loads(lines[0])
    assert res.returncode == expect_rc, "midge_bench exit %d: %s\n%s" % (
        res.returncode, report, b.log_tail())
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


def test_idle_connections_all_accepted(broker):
    b = broker(BENCH_CONF)
    r = run_bench(b, "--scenario", "connections", "--connections", 300, "--sources", 3,
                  "--hold", 0.2)
    assert r["connected"] == 300 and r["check"] == "pass", r
