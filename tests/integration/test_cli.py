"""Command line and configuration: -c, -p, -v, local-only mode, config errors, SIGTERM."""
import os
import re
import signal
import socket
import subprocess
import time

import pytest

import mqttraw as m
from conftest import BROKER_BIN, free_port, port_open


def mqtt_ok(port, host="127.0.0.1"):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect((host, port))
        s.sendall(m.connect("cli-probe"))
        return s.recv(4) == b"\x20\x02\x00\x00"
    except OSError:
        return False
    finally:
        s.close()


class Proc:
    def __init__(self, args, tmp_path):
        self.log = tmp_path / "cli.log"
        self.logf = open(self.log, "wb")
        self.p = subprocess.Popen([BROKER_BIN] + args, stdout=self.logf,
                                  stderr=subprocess.STDOUT, cwd=str(tmp_path))

    def text(self):
        return self.log.read_text(errors="replace")

    def wait_port(self, port, host="127.0.0.1"):
        deadline = time.monotonic() + 10
        while not port_open(port, host):
            assert self.p.poll() is None, "exited %s\n%s" % (self.p.returncode, self.text())
            assert time.monotonic() < deadline, self.text()
            time.sleep(0.02)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
                pytest.fail("no exit within 10 s of SIGTERM")
        self.logf.close()
        return self.p.returncode


@pytest.fixture
def proc(tmp_path):
    made = []

    def make(args):
        p = Proc(args, tmp_path)
        made.append(p)
        return p
    yield make
    for p in made:
        p.stop()


def non_loopback_ipv4():
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(("192.0.2.1", 9))  # no packet is sent for UDP connect
        ip = s.getsockname()[0]
        s.close()
        return None if ip.startswith("127.") else ip
    except OSError:
        return None


def ipv6_loopback_available():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


def check_local_only(port, p):
    p.wait_port(port)
    assert mqtt_ok(port)
    if ipv6_loopback_available():
        assert mqtt_ok(port, "::1")
    ip = non_loopback_ipv4()
    if ip:
        assert not port_open(port, ip)  # not reachable from outside
    assert re.search(r"local.only", p.text(), re.I), p.text()


def test_p_option_local_only(proc):
    """`-p PORT` without a listener in a config: 127.0.0.1 and ::1 only (Mosquitto 2.0)."""
    port = free_port()
    p = proc(["-p", str(port), "-v"])
    check_local_only(port, p)
    assert p.stop() == 0


def test_config_without_listener_defaults_to_1883_local_only(proc, tmp_path):
    if port_open(1883) or (ipv6_loopback_available() and port_open(1883, "::1")):
        pytest.skip("something else listens on 1883")
    conf = tmp_path / "nolistener.conf"
    conf.write_text("allow_anonymous true\n")
    p = proc(["-c", str(conf), "-v"])
    check_local_only(1883, p)
    assert p.stop() == 0


def test_two_listeners(proc, tmp_path):
    a, b = free_port(), free_port()
    conf = tmp_path / "two.conf"
    conf.write_text("listener %d 127.0.0.1\nlistener %d 127.0.0.1\nallow_anonymous true\n"
                    % (a, b))
    p = proc(["-c", str(conf)])
    p.wait_port(a)
    p.wait_port(b)
    assert mqtt_ok(a) and mqtt_ok(b)


def test_unknown_option_is_an_error_with_line(proc, tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("listener %d 127.0.0.1\nbogus_option 1\n" % free_port())
    p = proc(["-c", str(conf)])
    rc = p.p.wait(10)
    assert rc != 0
    out = p.text()
    assert "bogus_option" in out and re.search(r"bad\.conf:2\b", out), out


@pytest.mark.midge_only
def test_bad_value_is_an_error(proc, tmp_path):
    """Mosquitto 2.0.11 reads numbers with atoi() and silently takes 'lots' as 0."""
    conf = tmp_path / "badval.conf"
    conf.write_text("listener %d 127.0.0.1\nmax_queued_messages lots\n" % free_port())
    p = proc(["-c", str(conf)])
    assert p.p.wait(10) != 0


def test_missing_config_file_is_an_error(proc, tmp_path):
    p = proc(["-c", str(tmp_path / "does-not-exist.conf")])
    assert p.p.wait(10) != 0


def test_verbose_logs_client_connections(broker, raw):
    b = broker()
    c = raw(b.port, 4)
    c.connect("verbose-client-id")
    deadline = time.monotonic() + 5
    while "verbose-client-id" not in b.log_text():
        assert time.monotonic() < deadline, b.log_tail()
        time.sleep(0.05)


def test_sigterm_with_clients_exits_cleanly(broker, raw):
    b = broker()
    c = raw(b.port, 5)
    c.connect("stay", clean=False, properties=[(m.P_SESSION_EXPIRY, 60)])
    c.subscribe([("x", 1)])
    assert b.stop() == 0
    assert not b.failures
    c.wait_closed(3)


def test_restart_same_config(broker, connected):
    """The same config comes back on the same port (hook for persistence tests later)."""
    b = broker()
    pid = b.pid
    b.restart()
    assert b.pid != pid
    assert mqtt_ok(b.port)
    assert os.path.exists(b.conf)
