"""Running as a service (issue 13): privilege drop, pid file, log types and destinations, log
reopening, systemd notifications, and the start-up errors that must be one clear line and exit
code 1. The real broker binary, started as the test's user (root in CI: the privilege tests
need it and skip otherwise)."""
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

import mqttraw
from conftest import (BROKER_BIN, IS_MOSQUITTO, V5, free_port, port_open, wait_until)

pytestmark = [
    pytest.mark.midge_only(reason="Midge's service behaviour (user midge, sd_notify, log lines)"),
    # Whom Midge drops to depends on whether user midge exists, which test_package.py changes.
    pytest.mark.serial,
]

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="privilege drop: needs to start as root")


def service_user():
    """Whom Midge drops to by default: midge if that user exists, else nobody."""
    for name in ("midge", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    pytest.skip("neither user midge nor nobody exists")


def status_ids(pid):
    """Real uid and gid from /proc/PID/status."""
    uid = gid = None
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                uid = int(line.split()[1])
            elif line.startswith("Gid:"):
                gid = int(line.split()[1])
    return uid, gid


@pytest.fixture
def shared_dir():
    """A folder under /tmp that the dropped user can enter and write (pytest's tmp_path is 0700
    root): for the store, the log file and the notify socket."""
    d = tempfile.mkdtemp(prefix="midge-service-", dir="/tmp")
    if ROOT:
        u = service_user()
        os.chown(d, u.pw_uid, u.pw_gid)
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


class Proc:
    """midge with a config file, its output collected in a file."""

    def __init__(self, tmp_path, lines, args=(), env=None):
        self.port = free_port()
        self.conf = tmp_path / ("midge-%d.conf" % self.port)
        self.conf.write_text("\n".join(["listener %d 127.0.0.1" % self.port, "allow_anonymous true"] +
                                       list(lines)) + "\n")
        self.out = tmp_path / ("midge-%d.out" % self.port)
        self.outf = open(self.out, "wb")
        self.proc = subprocess.Popen([BROKER_BIN, "-c", str(self.conf)] + list(args), stdout=self.outf,
                                     stderr=subprocess.STDOUT, env=dict(os.environ, **(env or {})))

    def text(self):
        return self.out.read_text(errors="replace")

    def wait_listening(self):
        wait_until(lambda: port_open(self.port) or self.proc.poll() is not None, 10, what="listener")
        assert self.proc.poll() is None, "exited %s\n%s" % (self.proc.returncode, self.text())

    def exit_code(self, timeout=10):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail("midge did not exit within %ds\n%s" % (timeout, self.text()))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.exit_code()
        self.outf.close()
        return rc


@pytest.fixture
def midge(tmp_path):
    made = []

    def make(lines=(), args=(), env=None):
        p = Proc(tmp_path, lines, args, env)
        made.append(p)
        return p

    yield make
    for p in made:
        if p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait()
        p.outf.close()


def pub_sub_works(port):
    topic = "service/check"
    sub = subprocess.Popen(["mosquitto_sub", "-p", str(port), "-t", topic, "-C", "1", "-W", "10"],
                           stdout=subprocess.PIPE, text=True)
    wait_until(lambda: _subscribed(port, topic, sub), 10, what="subscriber")
    out, _ = sub.communicate(timeout=10)
    assert out.strip() == "hello", out


def _subscribed(port, topic, sub):
    """Publishes until the subscriber has the message (its SUBSCRIBE may still be on the way)."""
    subprocess.run(["mosquitto_pub", "-p", str(port), "-t", topic, "-m", "hello"], check=True, timeout=10)
    try:
        sub.wait(0.2)
    except subprocess.TimeoutExpired:
        return False
    return True


# ------------------------------------------------------------------ privileges

@needs_root
def test_default_user_drops_root(tmp_path):
    """Started as root without `user`, as `mosquitto -p` is: Midge runs as midge (or nobody)."""
    port = free_port()
    out = open(tmp_path / "out", "wb")
    proc = subprocess.Popen([BROKER_BIN, "-p", str(port)], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: port_open(port) or proc.poll() is not None, 10, what="listener")
        u = service_user()
        # The drop happens before the workers start, which is before the log says "running".
        wait_until(lambda: "running" in (tmp_path / "out").read_text(), 10, what="running")
        assert status_ids(proc.pid) == (u.pw_uid, u.pw_gid)
        text = (tmp_path / "out").read_text()
        assert "Running as user '%s'." % u.pw_name in text, text
        if u.pw_name == "nobody":
            assert "Unable to drop privileges to 'midge' because this user does not exist. " \
                   "Trying 'nobody' instead." in text, text
        pub_sub_works(port)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        out.close()


@needs_root
def test_user_root_keeps_root_and_says_so(midge):
    m = midge(["user root"])
    m.wait_listening()
    wait_until(lambda: "running" in m.text(), 10, what="running")
    assert status_ids(m.proc.pid) == (0, 0)
    assert "Warning: running as root, as option 'user root' asks." in m.text()
    assert m.stop() == 0


@needs_root
def test_unknown_configured_user_is_one_line_and_exit_1(midge):
    m = midge(["user no-such-user-midge"])
    assert m.exit_code() == 1
    errors = [line for line in m.text().splitlines() if "Error" in line]
    assert len(errors) == 1 and "Unable to drop privileges to 'no-such-user-midge' because this user does " \
                                "not exist." in errors[0], m.text()
    assert "running" not in m.text()


@needs_root
def test_store_and_log_stay_usable_after_the_drop(midge, shared_dir, tmp_path):
    """The store written as the dropped user, a log file reopened on SIGHUP (logrotate moved it
    away), a restart that reads the store back."""
    u = service_user()
    log = os.path.join(shared_dir, "midge.log")
    lines = ["user %s" % u.pw_name, "persistence true", "persistence_location %s/" % shared_dir,
             "log_dest file %s" % log]
    m = midge(lines)
    m.wait_listening()
    wait_until(lambda: os.path.exists(log) and "running" in open(log).read(), 10, what="running in the log")
    assert status_ids(m.proc.pid) == (u.pw_uid, u.pw_gid)
    assert os.stat(log).st_uid == u.pw_uid  # created by root before the drop, then handed over
    subprocess.run(["mosquitto_pub", "-p", str(m.port), "-t", "kept", "-m", "retained-1", "-r", "-q", "1"],
                   check=True, timeout=10)
    os.rename(log, log + ".1")
    m.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: os.path.exists(log) and "log files re-opened" in open(log).read(), 10,
               what="a new log file after SIGHUP")
    assert os.stat(log).st_uid == u.pw_uid
    store = os.path.join(shared_dir, "mosquitto.db.midge")
    owners = {os.stat(os.path.join(store, f), follow_symlinks=False).st_uid for f in os.listdir(store)}
    assert owners == {u.pw_uid}, owners
    assert m.stop() == 0
    again = midge(lines)
    again.wait_listening()
    got = subprocess.run(["mosquitto_sub", "-p", str(again.port), "-t", "kept", "-C", "1", "-W", "10"],
                         capture_output=True, text=True, timeout=15)
    assert got.stdout.strip() == "retained-1", (got.stdout, open(log).read())
    assert again.stop() == 0


@needs_root
def test_store_the_user_cannot_reach_stops_the_start(midge, tmp_path):
    """tmp_path is 0700 root: the store opens as root, but after the drop its user could not
    create the store's next file, so the first QoS 1 publish after a log roll would fail.
    Midge says so at once and does not start."""
    u = service_user()
    m = midge(["user %s" % u.pw_name, "persistence true", "persistence_location %s/" % tmp_path])
    one_error_exit_1(m, "user '%s' cannot write the store %s/mosquitto.db.midge: Permission denied"
                     % (u.pw_name, tmp_path))
    assert "running" not in m.text()


# ------------------------------------------------------------------ start-up errors

def one_error_exit_1(m, expected):
    assert m.exit_code() == 1, m.text()
    errors = [line for line in m.text().splitlines() if "Error" in line]
    assert len(errors) == 1 and expected in errors[0], m.text()


def test_pid_file_in_a_missing_directory(midge, tmp_path):
    m = midge(["pid_file %s/no-such-dir/midge.pid" % tmp_path])
    one_error_exit_1(m, "Unable to write pid file %s/no-such-dir/midge.pid: No such file or directory."
                     % tmp_path)


def test_pid_file_written_and_removed(midge, tmp_path):
    pid_file = tmp_path / "midge.pid"
    m = midge(["pid_file %s" % pid_file] + (["user root"] if ROOT else []))
    m.wait_listening()
    assert pid_file.read_text() == "%d\n" % m.proc.pid
    assert m.stop() == 0
    assert not pid_file.exists()


def test_daemon_mode_detaches_and_writes_its_pid(tmp_path):
    """-d: the command returns at once, the broker runs on in the background under the pid in
    pid_file, and stops on SIGTERM, removing the pid file."""
    port = free_port()
    pid_file = tmp_path / "daemon.pid"
    conf = tmp_path / "daemon.conf"
    conf.write_text("listener %d 127.0.0.1\nallow_anonymous true\npid_file %s\n%s" %
                    (port, pid_file, "user root\n" if ROOT else ""))
    started = subprocess.run([BROKER_BIN, "-c", str(conf), "-d"], capture_output=True, timeout=10)
    assert started.returncode == 0, started
    wait_until(lambda: pid_file.exists() and pid_file.read_text().endswith("\n"), 10, what="the pid file")
    pid = int(pid_file.read_text())
    try:
        wait_until(lambda: port_open(port), 10, what="the daemon's listener")
        pub_sub_works(port)
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not os.path.exists("/proc/%d" % pid) or
               open("/proc/%d/stat" % pid).read().split()[2] == "Z", 10, what="the daemon to stop")
    wait_until(lambda: not pid_file.exists(), 5, what="the pid file to go")


def test_log_file_not_writable(midge, tmp_path):
    (tmp_path / "a-directory").mkdir()
    m = midge(["log_dest file %s" % (tmp_path / "a-directory")])
    one_error_exit_1(m, "cannot open log file %s: Is a directory" % (tmp_path / "a-directory"))


def test_port_in_use(midge):
    first = midge(["user root"] if ROOT else [])
    first.wait_listening()
    conf = first.conf.parent / "second.conf"
    conf.write_text("listener %d 127.0.0.1\n" % first.port)
    out = subprocess.run([BROKER_BIN, "-c", str(conf)], capture_output=True, text=True, timeout=10)
    assert out.returncode == 1, out
    errors = [line for line in (out.stdout + out.stderr).splitlines() if "Error" in line]
    assert errors and all("Address already in use" in e or "Unable to open" in e for e in errors), out
    pub_sub_works(first.port)  # the first broker is unharmed
    assert first.stop() == 0


def test_started_twice_on_one_store(midge, shared_dir):
    """A second unit started on the same store and port: exit 1, the first one keeps running."""
    lines = (["user root"] if ROOT else []) + ["persistence true", "persistence_location %s/" % shared_dir]
    first = midge(lines)
    first.wait_listening()
    conf = first.conf.parent / "twice.conf"
    conf.write_text(first.conf.read_text())
    out = subprocess.run([BROKER_BIN, "-c", str(conf)], capture_output=True, text=True, timeout=10)
    assert out.returncode == 1, out
    text = out.stdout + out.stderr
    assert len([line for line in text.splitlines() if "Error" in line]) == 1, text
    pub_sub_works(first.port)
    assert first.stop() == 0


# ------------------------------------------------------------------ log types and destinations

def test_log_type_error_keeps_only_errors(midge):
    m = midge(["log_type error"] + (["user root"] if ROOT else []))
    m.wait_listening()
    pub_sub_works(m.port)
    assert m.stop() == 0
    assert m.text() == "", m.text()  # no error happened: not even "running" or connections


def test_log_type_subscribe_and_notice(midge):
    m = midge(["log_type subscribe", "log_type unsubscribe", "log_type notice"] + (["user root"] if ROOT else []))
    m.wait_listening()
    subprocess.run(["mosquitto_sub", "-p", str(m.port), "-i", "sub-logger", "-t", "a/+/c", "-q", "1",
                    "-E"], check=True, timeout=10)
    assert m.stop() == 0
    lines = [line.split(": ", 1)[1] for line in m.text().splitlines()]
    assert "sub-logger 1 a/+/c" in lines, lines
    assert any(line.startswith("New client connected") or "sub-logger" in line and "connect" in line
               for line in lines), lines
    assert not any("running" in line for line in lines), lines  # information is not asked for


def test_log_type_changes_on_reload(midge):
    m = midge(["log_type error"] + (["user root"] if ROOT else []))
    m.wait_listening()
    m.conf.write_text(m.conf.read_text().replace("log_type error", "log_type subscribe"))
    m.proc.send_signal(signal.SIGHUP)
    # The reload is asynchronous and, under `log_type error`, says nothing: subscribe until the
    # new types are in force.
    attempt = 0

    def subscribe_logged():
        nonlocal attempt
        attempt += 1
        subprocess.run(["mosquitto_sub", "-p", str(m.port), "-i", "after-reload-%d" % attempt, "-t", "r/#",
                        "-E"], check=True, timeout=10)
        time.sleep(0.2)  # the log is flushed every 100 ms
        return "after-reload-%d 0 r/#" % attempt in m.text()
    wait_until(subscribe_logged, 10, what="a subscribe line after the reload")
    assert m.stop() == 0


def test_verbose_logs_subscribes(midge):
    m = midge((["user root"] if ROOT else []), args=["-v"])
    m.wait_listening()
    subprocess.run(["mosquitto_sub", "-p", str(m.port), "-i", "verbose-sub", "-t", "x/#", "-E"],
                   check=True, timeout=10)
    wait_until(lambda: "verbose-sub 0 x/#" in m.text(), 5, what="the subscribe line")
    assert m.stop() == 0


def test_log_dest_topic(midge, connected):
    m = midge(["log_dest topic", "log_dest stderr", "log_type all"] + (["user root"] if ROOT else []))
    m.wait_listening()
    watcher = connected(m.port, V5, client_id="log-watcher")
    watcher.subscribe("$SYS/broker/log/#", qos=2)
    subprocess.run(["mosquitto_sub", "-p", str(m.port), "-i", "noisy", "-t", "t/1", "-E"], check=True, timeout=10)
    watcher.ev.wait_for(lambda: any(msg.topic == "$SYS/broker/log/M/subscribe" and b"noisy 0 t/1" in msg.payload
                                    for msg in watcher.ev.messages), what="the subscribe line on its topic")
    watcher.ev.wait_for(lambda: any(msg.topic == "$SYS/broker/log/N" and b"noisy" in msg.payload
                                    for msg in watcher.ev.messages), what="a notice line about the client")
    sub = next(msg for msg in watcher.ev.messages if msg.topic == "$SYS/broker/log/M/subscribe")
    assert sub.qos == 2 and not sub.retain
    assert m.stop() == 0


# ------------------------------------------------------------------ systemd

@pytest.fixture
def notify_socket():
    """An abstract-namespace datagram socket, as systemd's NOTIFY_SOCKET (the dropped user can
    reach it: no file permissions)."""
    name = "midge-test-notify-%d-%d" % (os.getpid(), time.monotonic_ns())
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0" + name)
    s.settimeout(10)
    yield s, "@" + name
    s.close()


def next_state(sock):
    """The next notification: its KEY=VALUE lines as a dict."""
    data = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.splitlines() if "=" in line)


def test_sd_notify_ready_reloading_stopping(midge, notify_socket):
    sock, address = notify_socket
    m = midge([], env={"NOTIFY_SOCKET": address})  # as root: dropped to midge or nobody
    state = next_state(sock)
    assert state.get("READY") == "1", state
    assert port_open(m.port)  # ready means listening
    m.proc.send_signal(signal.SIGHUP)
    state = next_state(sock)
    assert state.get("RELOADING") == "1" and int(state["MONOTONIC_USEC"]) > 0, state
    assert next_state(sock).get("READY") == "1"
    m.proc.send_signal(signal.SIGTERM)
    assert next_state(sock).get("STOPPING") == "1"
    assert m.stop() == 0


def test_sigterm_tells_v5_clients_and_exits_0(midge, raw):
    m = midge(["user root"] if ROOT else [])
    m.wait_listening()
    r = raw(m.port, proto=5)
    r.send(mqttraw.connect("told", proto=5))
    assert r.recv_type(mqttraw.CONNACK).rc == 0
    m.proc.send_signal(signal.SIGTERM)
    d = r.recv_type(mqttraw.DISCONNECT)
    assert d.rc == 0x8B  # Server shutting down
    assert m.stop() == 0
