"""Command line and configuration: -c, -p, -v, local-only mode, config errors, SIGTERM."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
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


# A sanitizer report in a broker's output fails the test even when the exit code is the
# one expected (a config error exits non-zero anyway).
SANITIZER_REPORT = re.compile(r"ERROR: \w+Sanitizer|runtime error:")


class Proc:
    """A broker started with its own command line. expect_error: it must exit by itself with
    an error status (not a signal); otherwise it must exit 0 on SIGTERM. The proc fixture
    checks this, and the log, at teardown."""

    def __init__(self, args, tmp_path, expect_error=False):
        self.log = tmp_path / ("cli-%d.log" % time.monotonic_ns())
        self.logf = open(self.log, "wb")
        self.expect_error = expect_error
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

    def problem(self):
        """Stops the broker; returns what went wrong with its exit, or None."""
        running = self.p.poll() is None
        rc = self.stop()
        if SANITIZER_REPORT.search(self.text()):
            return "sanitizer report in the broker's output"
        if self.expect_error and running:
            return "still running; an error exit was expected"
        if self.expect_error and rc <= 0:
            return "exit status %s; an error exit was expected" % rc
        if not self.expect_error and rc != 0:
            return "exit status %s" % rc
        return None


@pytest.fixture
def proc(tmp_path):
    made = []

    def make(args, expect_error=False):
        p = Proc(args, tmp_path, expect_error)
        made.append(p)
        return p
    yield make
    problems = ["%s: %s\n%s" % (p.p.args, why, p.text()) for p in made
                for why in [p.problem()] if why]
    if problems:
        pytest.fail("\n".join(problems))


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


# --- local-only mode in a network namespace of its own -------------------------------------
# There port 1883 is always free (Debian's mosquitto service often holds it on the host), and
# an address that is not loopback can be added, so "not reachable from outside" is always
# checked, online or not.

OUTSIDE_IP = "192.0.2.1"  # TEST-NET-1, put on lo inside the namespace
HERE = os.path.dirname(os.path.abspath(__file__))


def _netns_main(argv):
    """Runs inside the namespace (see local_only_in_netns); prints what it saw as JSON."""
    port, workdir, args = int(argv[0]), argv[1], argv[2:]
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "addr", "add", OUTSIDE_IP + "/32", "dev", "lo"], check=True)
    log = os.path.join(workdir, "netns-%d.log" % port)
    res = {"has_v6": ipv6_loopback_available()}
    with open(log, "wb") as logf:
        p = subprocess.Popen([BROKER_BIN] + args, stdout=logf, stderr=subprocess.STDOUT,
                             cwd=workdir)
        deadline = time.monotonic() + 10
        while not port_open(port) and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        res.update(v4=mqtt_ok(port), v6=res["has_v6"] and mqtt_ok(port, "::1"),
                   outside=port_open(port, OUTSIDE_IP), control=_wildcard_reachable())
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        try:
            res["rc"] = p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            res["rc"] = "no exit within 10 s of SIGTERM"
    with open(log, errors="replace") as f:
        res["log"] = f.read()
    print(json.dumps(res))


def _wildcard_reachable():
    """Control: a listener on every address is reachable at OUTSIDE_IP."""
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.bind(("0.0.0.0", 0))
    ls.listen(1)
    try:
        return port_open(ls.getsockname()[1], OUTSIDE_IP)
    finally:
        ls.close()


def _unshare():
    """The command prefix for a new network namespace, or (None, reason)."""
    tool = shutil.which("unshare")
    if not tool or not shutil.which("ip"):
        return None, "unshare or ip not installed"
    cmd = [tool, "--net"] if os.geteuid() == 0 else [tool, "--map-root-user", "--net"]
    r = subprocess.run(cmd + ["ip", "link", "set", "lo", "up"], capture_output=True,
                       timeout=30)
    if r.returncode != 0:
        return None, "cannot make a network namespace: %s" % r.stderr.decode(errors="replace")
    return cmd, None


def local_only_in_netns(tmp_path, port, args):
    """Starts the broker with args in a new network namespace and checks local-only mode
    there. Returns None when it ran, else why the machine cannot do it."""
    cmd, why = _unshare()
    if cmd is None:
        return why
    code = ("import sys; sys.path.insert(0, %r); import test_cli; "
            "test_cli._netns_main(sys.argv[1:])" % HERE)
    r = subprocess.run(cmd + [sys.executable, "-c", code, str(port), str(tmp_path)] + args,
                       capture_output=True, timeout=90)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    res = json.loads(r.stdout.decode().strip().splitlines()[-1])
    log = res["log"]
    assert not SANITIZER_REPORT.search(log), log
    assert res["v4"], log
    assert res["v6"] or not res["has_v6"], log
    assert res["control"] and not res["outside"], log  # not reachable from outside
    assert re.search(r"local.only", log, re.I), log
    assert res["rc"] == 0, log
    return None


def test_p_option_local_only(proc, tmp_path):
    """`-p PORT` without a listener in a config: 127.0.0.1 and ::1 only (Mosquitto 2.0)."""
    port = free_port()
    why = local_only_in_netns(tmp_path, port, ["-p", str(port), "-v"])
    if why is None:
        return
    p = proc(["-p", str(port), "-v"])  # on the host: "outside" only if it has an address
    check_local_only(port, p)
    assert p.stop() == 0


def test_config_without_listener_defaults_to_1883_local_only(proc, tmp_path):
    conf = tmp_path / "nolistener.conf"
    conf.write_text("allow_anonymous true\n")
    why = local_only_in_netns(tmp_path, 1883, ["-c", str(conf), "-v"])
    if why is None:
        return
    if port_open(1883) or (ipv6_loopback_available() and port_open(1883, "::1")):
        pytest.skip("%s, and something else listens on 1883 here" % why)
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
    p = proc(["-c", str(conf)], expect_error=True)
    rc = p.p.wait(10)
    assert rc != 0
    out = p.text()
    assert "bogus_option" in out and re.search(r"bad\.conf:2\b", out), out


@pytest.mark.midge_only
def test_bad_value_is_an_error(proc, tmp_path):
    """Mosquitto 2.0.11 reads numbers with atoi() and silently takes 'lots' as 0."""
    conf = tmp_path / "badval.conf"
    conf.write_text("listener %d 127.0.0.1\nmax_queued_messages lots\n" % free_port())
    p = proc(["-c", str(conf)], expect_error=True)
    assert p.p.wait(10) != 0
    assert re.search(r"Error: \S*badval\.conf:2: .*max_queued_messages", p.text()), p.text()


def test_missing_config_file_is_an_error(proc, tmp_path):
    p = proc(["-c", str(tmp_path / "does-not-exist.conf")], expect_error=True)
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
