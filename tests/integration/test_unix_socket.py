"""`listener 0 PATH`: MQTT over a unix socket, as Mosquitto 2.0 serves it, with Debian's
mosquitto clients (`--unix`) and paho over TCP on the same broker."""
import os
import stat
import time

import paho.mqtt.client as paho
import pytest

from conftest import IS_MOSQUITTO, wait_until


def unix_broker(broker, tmp_path):
    path = str(tmp_path / "mqtt.sock")
    lines = ["listener 0 " + path, "allow_anonymous true"]
    if IS_MOSQUITTO and os.getuid() == 0:
        lines.append("user root")  # it cannot reach pytest's root-only tmp dir otherwise
    b = broker(lines)  # the fixture's own TCP listener tells when the broker is up
    wait_until(lambda: os.path.exists(path), what="the unix socket")
    return b, path


def publish_until(publish, received, what):
    """Publishes again until `received()` (a subscriber may not be subscribed yet)."""
    deadline = time.monotonic() + 10
    while not received():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        publish()
        time.sleep(0.1)


def test_unix_socket_clients_and_tcp_clients_share_topics(broker, mosq, tmp_path):
    b, path = unix_broker(broker, tmp_path)
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    sub = mosq.sub(b.port, "--unix", path, "-t", "u/#", "-v")
    publish_until(lambda: mosq.pub(b.port, "-t", "u/tcp", "-m", "from-tcp"),
                  lambda: sub.wait_lines(1, timeout=0.2, fail=False), "the unix subscriber")
    assert sub.wait_lines(1)[0] == "u/tcp from-tcp"
    got = []
    c = paho.Client(client_id="tcp-sub")
    c.on_message = lambda cl, u, m: got.append((m.topic, m.payload))
    c.connect("127.0.0.1", b.port)
    c.subscribe("v/#")
    c.loop_start()
    try:
        publish_until(lambda: mosq.pub(b.port, "--unix", path, "-t", "v/unix", "-m", "from-unix"),
                      lambda: got, "a message published over the unix socket")
        assert got[0] == ("v/unix", b"from-unix")
    finally:
        c.loop_stop()
        c.disconnect()


@pytest.mark.midge_only(reason="the log line's wording")
def test_unix_client_is_logged_with_the_socket_path(broker, mosq, tmp_path):
    b, path = unix_broker(broker, tmp_path)
    mosq.pub(b.port, "--unix", path, "-t", "x", "-m", "y")
    wait_until(lambda: "New client connected from %s:0 as " % path in b.log_text(), what="the connect log line")


def test_socket_file_removed_at_stop_and_stale_one_replaced(broker, mosq, tmp_path):
    b, path = unix_broker(broker, tmp_path)
    b.stop()
    assert not os.path.exists(path)
    b.start()
    wait_until(lambda: os.path.exists(path), what="the unix socket")
    b.kill9()  # leaves the socket file behind
    assert os.path.exists(path)
    b.start()  # binds again over the stale file
    wait_until(lambda: os.path.exists(path), what="the unix socket after a restart")
    mosq.pub(b.port, "--unix", path, "-t", "x", "-m", "after restart")
