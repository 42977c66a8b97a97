"""midge::client::AsyncClient (issue 3, "src/client (sync and async)") against Midge and Debian's
mosquitto: runs <build>/src/client/async_client_check, two AsyncClients on one poll() loop
(QoS 0/1/2 both directions, 3.1.1 and 5, keep alive pings), found next to $MIDGE_BIN
(<build>/src/midge) or in $MIDGE_ASYNC_CHECK.
"""
import os
import subprocess

import pytest

from conftest import BROKER_BIN, REPO, free_port, port_open, wait_until

MOSQUITTO = "/usr/sbin/mosquitto"


def _check_bin():
    env = os.environ.get("MIDGE_ASYNC_CHECK")
    if env:
        return env
    build = os.path.dirname(os.path.dirname(os.path.abspath(BROKER_BIN)))
    for d in (build, os.path.join(REPO, "build")):  # the second for MIDGE_TEST_BROKER=mosquitto
        path = os.path.join(d, "src", "client", "async_client_check")
        if os.access(path, os.X_OK):
            return path
    return os.path.join(build, "src", "client", "async_client_check")


CHECK = _check_bin()
pytestmark = pytest.mark.skipif(not os.access(CHECK, os.X_OK),
                                reason="async_client_check not built (%s)" % CHECK)


def run_check(port, *extra):
    res = subprocess.run([CHECK, "--host", "127.0.0.1", "--port", str(port), "--timeout", "20"]
                         + list(extra), capture_output=True, timeout=30)
    assert res.returncode == 0, (res.stdout + res.stderr).decode("utf-8", "replace")
    assert b"OK" in res.stdout


@pytest.mark.midge_only
def test_async_client_midge(broker):
    """No client-side in-flight cap: Mosquitto 2.0.11 needs one for 3.1.1 (see
    test_async_client_mosquitto, which covers Mosquitto with it)."""
    run_check(broker().port)


@pytest.mark.skipif(not os.access(MOSQUITTO, os.X_OK), reason="mosquitto not installed")
def test_async_client_mosquitto(tmp_path):
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    lines = ["listener %d 127.0.0.1" % port, "allow_anonymous true"]
    if os.geteuid() == 0:
        lines.append("user root")  # else it drops to 'mosquitto', which cannot read tmp_path
    conf.write_text("\n".join(lines) + "\n")
    with open(tmp_path / "mosquitto.log", "wb") as log:
        proc = subprocess.Popen([MOSQUITTO, "-c", str(conf), "-v"], stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: port_open(port), 10, what="mosquitto listening")
            # Mosquitto 2.0.11 stops delivering QoS 2 to a subscriber once a 3.1.1 publisher
            # has more than max_inflight_messages (20) in flight (paho shows the same), and a
            # 3.1.1 CONNACK cannot announce that limit: cap it on the client side, as
            # libmosquitto does. v5 needs no cap: the CONNACK's Receive Maximum says 20.
            run_check(port, "--max-inflight", "20")
        finally:
            proc.terminate()
            proc.wait(5)
