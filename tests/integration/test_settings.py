"""Settings the broker must apply, warn about or refuse (issue 8; security review H1, M7, L6, L11).

Each test starts the real binary with a configuration file and checks what it does: a listener
with TLS options, an ACL file or a mount point must not start in plaintext or wide open; options
that are accepted but not applied are named in a start-up warning (file:line); log and pid files
are not written through symbolic links; control characters from clients are escaped in the log;
`user` drops root; max_packet_size has Mosquitto's default (none) and is enforced when set.
"""
import os
import pwd
import re
import shutil
import signal
import subprocess

import pytest

import mqttraw as m
from conftest import BROKER_BIN, IS_MOSQUITTO, REPO, free_port, keep_root, port_open, wait_until

pytestmark = pytest.mark.midge_only

MIB = 1024 * 1024


class Run:
    """One broker process started on a config file, without -v so that log_dest applies."""

    def __init__(self, tmp_path, text, args=()):
        self.conf = tmp_path / "midge.conf"
        self.conf.write_text(keep_root(text))
        self.out = tmp_path / "midge.out"
        self.outf = open(self.out, "wb")
        self.proc = subprocess.Popen([BROKER_BIN, "-c", str(self.conf)] + list(args), stdout=self.outf,
                                     stderr=subprocess.STDOUT, cwd=str(tmp_path))

    def exited_within(self, timeout):
        try:
            self.proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def output(self):
        return self.out.read_text(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.outf.close()


@pytest.fixture
def run(tmp_path):
    made = []

    def make(text, args=()):
        sub = tmp_path / ("r%d" % len(made))
        sub.mkdir()
        r = Run(sub, text, args)
        made.append(r)
        return r

    yield make
    for r in made:
        r.stop()


def refused(r, port, what):
    """The broker must exit with an error instead of serving; returns its output."""
    if not r.exited_within(10):
        listening = port_open(port)
        pytest.fail("broker still running 10 s after start with %s (listening on %d: %s)\n%s"
                    % (what, port, listening, r.output()))
    assert r.proc.returncode != 0, r.output()
    assert not port_open(port)
    return r.output()


# ------------------------------------------------------------------ refused options

@pytest.mark.parametrize("protocol", ["mqtt", "websockets"])
def test_listener_with_unusable_certificate_refuses_to_start(run, tmp_path, protocol):
    # Review H1: such a listener used to open in plaintext (mqtt) and serve anonymous clients.
    port = free_port()
    r = run("listener %d 127.0.0.1\nprotocol %s\nallow_anonymous true\ncertfile %s/server.crt\n"
            "keyfile %s/server.key\n" % (port, protocol, tmp_path, tmp_path))
    out = refused(r, port, "certfile/keyfile that do not exist")
    assert re.search(r"Error: %s:1: listener on port %d: certfile %s/server.crt cannot be used"
                     % (re.escape(str(r.conf)), port, re.escape(str(tmp_path))), out), out


@pytest.mark.parametrize("line", ["cafile /etc/ssl/ca.pem", "require_certificate true",
                                  "use_identity_as_username true", "keyfile /etc/ssl/k.pem"])
def test_tls_option_without_certificate_refuses_to_start(run, line):
    # Without certfile and keyfile the listener would serve plaintext to clients set up for TLS.
    port = free_port()
    r = run("listener %d 127.0.0.1\nallow_anonymous true\n%s\n" % (port, line))
    out = refused(r, port, line)
    assert "Error: %s:1: listener %d: " % (r.conf, port) in out, out


@pytest.mark.parametrize("line", ["auth_plugin /usr/lib/auth.so", "clientid_prefixes sensor-",
                                  "tls_engine pkcs11", "plugin /usr/lib/auth.so"])
def test_security_option_refuses_to_start(run, line):
    port = free_port()
    r = run("listener %d 127.0.0.1\nallow_anonymous true\n%s\n" % (port, line))
    out = refused(r, port, line)
    name = line.split()[0]
    assert "Error: %s:3: option '%s' is not supported by Midge yet" % (r.conf, name) in out, out


def test_per_listener_settings_that_differ_refuse_to_start(run):
    # Review L11: a setting Midge applies once must not leak from one listener to another.
    p1, p2 = free_port(), free_port()
    r = run("per_listener_settings true\nlistener %d 127.0.0.1\nauto_id_prefix a-\n"
            "listener %d 127.0.0.1\nauto_id_prefix b-\n" % (p1, p2))
    out = refused(r, p1, "per-listener settings that differ")
    assert not port_open(p2)
    assert "Error: %s:4: per_listener_settings: this listener's auto_id_prefix differs" % r.conf in out, out


def test_max_pending_output_below_its_minimum_is_an_error(run):
    port = free_port()
    r = run("listener %d 127.0.0.1\nmax_pending_output 1000\n" % port)
    out = refused(r, port, "max_pending_output 1000")
    assert "%s:2: option 'max_pending_output': value 1000 out of range (65536..4294967295)" % r.conf in out


# ------------------------------------------------------------------ warned options

def test_autosave_and_memory_limit_warn_with_file_and_line_and_run(broker, raw, tmp_path):
    b = broker(["persistence true", "persistence_location %s/" % tmp_path, "autosave_interval 1800",
                "memory_limit 1000000"])
    log = wait_until(lambda: " running\n" in b.log_text() and b.log_text(), what="the start-up lines")
    assert ("Warning: %s:5: option 'autosave_interval' is not applied by Midge yet (Midge writes every change "
            "as it is made, before acknowledging it: there is no periodic save)" % b.conf) in log, log
    assert "Warning: %s:6: option 'memory_limit' is not applied by Midge yet" % b.conf in log
    assert "option 'persistence" not in log, log
    c = raw(b.port)
    assert c.connect("p1").rc == 0


def test_long_persistent_client_expiration_keeps_the_session(broker, raw):
    # Review L6: 1000 years used to overflow the nanosecond clock, so the session expired at the
    # next timer tick. One worker, so the tick that publishes $SYS has run the session timers too.
    b = broker(["persistent_client_expiration 1000y", "sys_interval 1", "thread_count 1"])
    wait_until(lambda: "longer than Midge's maximum of 200 years" in b.log_text(), what="the warning")
    c = raw(b.port)
    assert c.connect("keeper", clean=False).rc == 0
    c.subscribe([("t/keep", 1)])
    c.send(m.disconnect())
    c.wait_closed()
    watch = raw(b.port)
    assert watch.connect("watch").rc == 0
    watch.subscribe([("$SYS/broker/uptime", 0)])
    watch.recv_type(m.PUBLISH)  # the retained value
    for _ in range(2):  # two $SYS updates after the disconnect: the timers have run since
        assert watch.recv_type(m.PUBLISH, timeout=5).retain is False
    c2 = raw(b.port)
    ack = c2.connect("keeper", clean=False)
    assert ack.session_present, "the session was dropped"


# ------------------------------------------------------------------ the README is the table

def readme_block():
    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    begin = text.index("<!-- options: begin")
    begin = text.index("\n", begin) + 1
    end = text.index("<!-- options: end -->")
    return text[begin:end]


def names_in(text):
    return set(re.findall(r"`([a-z0-9_.*]+)`", text))


def test_readme_option_list_is_the_table():
    out = subprocess.run([BROKER_BIN, "--help-config", "markdown"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    block = readme_block()
    # Both directions: every option of the table is in the README with its state, and nothing else.
    assert block == out.stdout, "README.md's option list differs from `midge --help-config markdown`"
    table = subprocess.run([BROKER_BIN, "--help-config"], capture_output=True, text=True, timeout=10).stdout
    rows = {line.split()[0]: line.split()[2] for line in table.splitlines()[1:] if line.strip()}
    assert {n for n in names_in(block) if n in rows} == set(rows)
    assert rows["tls_engine"] == "refused" and rows["certfile"] == "applied" and rows["persistence"] == "applied" and rows["autosave_interval"] == "warning" and rows["user"] == "applied"


# ------------------------------------------------------------------ log and pid files (M7)

def test_client_id_with_newline_cannot_forge_a_log_line(broker, raw):
    b = broker()
    c = raw(b.port)
    assert c.connect("a\nNew client connected from 6.6.6.6 as admin (p2, c1, k60).",
                     username="u\nForged: u").rc == 0
    wait_until(lambda: "6.6.6.6" in b.log_text(), what="the connect log line")
    log = b.log_text()
    assert not re.search(r"^(\d+: )?New client connected from 6\.6\.6\.6", log, re.M), log
    assert not re.search(r"^Forged", log, re.M), log
    assert "as a\\x0aNew client connected from 6.6.6.6" in log, log
    assert "u'u\\x0aForged: u'" in log, log


def test_each_connection_is_logged_before_its_connect(broker, raw):
    """As Mosquitto's notice: the accepted socket first, then the client it turned out to be."""
    b = broker()
    c = raw(b.port)
    here = "127.0.0.1:%d" % c.sock.getsockname()[1]
    assert c.connect("logged-one").rc == 0
    wait_until(lambda: "as logged-one" in b.log_text(), what="the connect log line")
    lines = b.log_text().splitlines()
    accepted = [i for i, line in enumerate(lines) if
                line.endswith("New connection from %s on port %d." % (here, b.port))]
    connected = [i for i, line in enumerate(lines) if "New client connected from %s as logged-one" % here in line]
    assert len(accepted) == 1 and len(connected) == 1 and accepted[0] < connected[0], lines


def test_log_lines_are_cut_at_1000_bytes(broker, raw):
    """A client id of 65,000 bytes (MQTT allows 65,535) is not logged whole at every event: the
    line stops at 1000 bytes as in Mosquitto (issue 14, Mosquitto's 01-connect-575314)."""
    b = broker()
    c = raw(b.port, proto=5)
    cid = "L" * 65000
    assert c.connect(cid).rc == 0
    c.send(m.disconnect(5))
    def long_lines():
        return [line for line in b.log_text().splitlines() if "LLLL" in line]
    wait_until(lambda: len(long_lines()) >= 2, what="the connect and disconnect lines")
    assert max(len(line) for line in long_lines()) <= 1000 + 40, [len(x) for x in long_lines()]


def test_pid_file_is_not_written_through_a_symlink(run, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    link = tmp_path / "midge.pid"
    os.symlink(victim, link)
    port = free_port()
    r = run("listener %d 127.0.0.1\npid_file %s\n" % (port, link))
    # As Mosquitto, a pid file that cannot be written stops the start-up.
    assert r.exited_within(10), r.output()
    assert r.proc.returncode == 1
    assert "Error: Unable to write pid file %s: Too many levels of symbolic links." % link in r.output()
    assert victim.read_text() == "precious\n"


def test_pid_file_is_written(run, tmp_path):
    pid_file = tmp_path / "midge.pid"
    port = free_port()
    r = run("listener %d 127.0.0.1\npid_file %s\n" % (port, pid_file))
    wait_until(lambda: pid_file.exists() and pid_file.read_text() == "%d\n" % r.proc.pid, timeout=10,
               what="the pid file")
    assert oct(pid_file.stat().st_mode & 0o777) == "0o644"


def test_log_timestamp_format_is_applied(run, tmp_path):
    port = free_port()
    log = tmp_path / "midge.log"
    run("listener %d 127.0.0.1\nlog_dest file %s\nlog_timestamp_format %%Y-%%m-%%dT%%H:%%M:%%S\n" % (port, log))
    wait_until(lambda: log.exists() and " running\n" in log.read_text(), timeout=10, what="the start-up lines")
    lines = log.read_text().splitlines()
    assert all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d: ", line) for line in lines), lines


def test_log_file_is_not_opened_through_a_symlink(run, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    link = tmp_path / "midge.log"
    os.symlink(victim, link)
    port = free_port()
    r = run("listener %d 127.0.0.1\nlog_dest file %s\n" % (port, link))
    out = refused(r, port, "a log file that is a symbolic link")
    assert victim.read_text() == "precious\n"
    assert "Error: cannot open log file %s" % link in out, out


# ------------------------------------------------------------------ user (M7)

def uids(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return set(int(x) for x in line.split()[1:])
    raise AssertionError("no Uid line")


def groups(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Groups:"):
                return set(int(x) for x in line.split()[1:])
    raise AssertionError("no Groups line")


@pytest.mark.parametrize("user,expected", [("nobody", "nobody")])
def test_user_drops_root_after_opening_files(run, tmp_path, user, expected):
    port = free_port()
    log = tmp_path / "root-only" / "midge.log"
    log.parent.mkdir()
    os.chmod(log.parent, 0o700)  # only root can create the log file: it must be opened before the drop
    r = run("listener %d 127.0.0.1\nlog_dest file %s\nuser %s\n" % (port, log, user))
    wait_until(lambda: port_open(port) or r.proc.poll() is not None, timeout=10, what="start-up")
    assert r.proc.poll() is None, r.output()
    if os.geteuid() != 0:
        assert uids(r.proc.pid) == {os.geteuid()}  # not root: nothing to drop
        return
    wait_until(lambda: "Running as user '%s'" % expected in log.read_text(), what="the user line")
    pw = pwd.getpwnam(expected)
    assert uids(r.proc.pid) == {pw.pw_uid}
    assert 0 not in groups(r.proc.pid)


def test_user_root_stays_root_and_says_so(run, tmp_path):
    port = free_port()
    log = tmp_path / "midge.log"
    r = run("listener %d 127.0.0.1\nlog_dest file %s\nuser root\n" % (port, log))
    wait_until(lambda: port_open(port), timeout=10, what="start-up")
    if os.geteuid() == 0:
        wait_until(lambda: log.exists() and "running as root" in log.read_text(), timeout=10, what="the user line")
    assert uids(r.proc.pid) == {os.geteuid()}


# ------------------------------------------------------------------ max_packet_size default (C2)

def publish_big(c, size, qos=0):
    try:
        c.publish("big", b"x" * size, qos=qos)
    except OSError:
        pass  # the broker may close before reading it all


@pytest.mark.parametrize("proto", [4, 5])
def test_default_max_packet_size_is_mosquittos(broker, raw, proto):
    """No limit by default but the protocol's, as Mosquitto (issue 14): a v5 CONNACK announces
    none (Maximum Packet Size absent means no limit, MQTT 5.0 3.2.2.3.6) and a 2 MiB message
    goes through, as a camera's snapshot would with Mosquitto."""
    b = broker()
    c = raw(b.port, proto=proto)
    ack = c.connect("big")
    assert ack.rc == 0
    if proto == 5:
        assert ack.prop(0x27) is None
    c.subscribe([("big", 0)])
    publish_big(c, 2 * MIB, qos=1)
    assert c.recv_type(m.PUBLISH, timeout=10, skip=(m.PUBACK,)).payload == b"x" * (2 * MIB)


@pytest.mark.parametrize("proto", [4, 5])
def test_max_packet_size_when_set_is_announced_and_enforced(broker, raw, proto):
    b = broker(["max_packet_size 1048576"])
    c = raw(b.port, proto=proto)
    ack = c.connect("big")
    assert ack.rc == 0
    if proto == 5:
        assert ack.prop(0x27) == MIB  # Maximum Packet Size in CONNACK
    publish_big(c, 2 * MIB)
    got = c.wait_closed(10)
    if proto == 5:
        assert [(p.type, p.rc) for p in got] == [(m.DISCONNECT, 0x95)]
    else:
        assert got == []


# ------------------------------------------------------------------ Debian's default config

def test_debian_default_mosquitto_conf_starts_and_keeps_its_store(run, tmp_path):
    src = "/etc/mosquitto/mosquitto.conf"
    if not os.path.exists(src):
        pytest.skip("no Debian mosquitto.conf on this machine")
    lines = open(src).read().splitlines()
    conf_d = tmp_path / "conf.d"
    shutil.copytree("/etc/mosquitto/conf.d", conf_d) if os.path.isdir("/etc/mosquitto/conf.d") else conf_d.mkdir()
    redirect = {"pid_file": str(tmp_path / "mosquitto.pid"), "persistence_location": str(tmp_path) + "/",
                "log_dest": "file " + str(tmp_path / "mosquitto.log"), "include_dir": str(conf_d)}
    out, where = [], {}
    for i, line in enumerate(lines, 1):
        word = line.split()[0] if line.strip() and not line.startswith("#") else None
        if word in redirect:
            line = "%s %s" % (word, redirect[word])
        if word:
            where[word] = i
        out.append(line)
    port = free_port()  # no listener: local-only mode, which honours -p
    r = run("\n".join(out) + "\n", args=["-p", str(port)])
    wait_until(lambda: port_open(port) or r.proc.poll() is not None, timeout=10, what="start-up")
    assert r.proc.poll() is None, r.output()
    log = wait_until(lambda: " running\n" in (tmp_path / "mosquitto.log").read_text()
                     and (tmp_path / "mosquitto.log").read_text(), what="the start-up lines")
    assert "option 'persistence" not in log, log  # applied: the store is in persistence_location
    assert (tmp_path / "mosquitto.db.midge").is_dir()
    assert "Error" not in log, log
    assert (tmp_path / "mosquitto.pid").read_text() == "%d\n" % r.proc.pid
    c = m.RawClient(port)
    assert c.connect("debian").rc == 0
    c.close()
