"""SIGHUP re-reads the configuration file (issue 11).

- allow_anonymous, the limits and the other broker settings apply at once, without dropping
  connected clients;
- a changed password_file or acl_file path is read instead of the old one;
- an invalid file changes nothing and the log names the file and line;
- what needs a restart (listeners, threads, logging) is named in the log.
"""
import signal

import pytest

from conftest import IS_MOSQUITTO, wait_until
import mqttraw
from test_auth import auth_conf, connack, make_file


@pytest.fixture
def broker(broker):
    """The brokers of these tests run with -v: their files are rewritten without the log_type
    lines the fixture adds otherwise, and their traffic is small."""
    def make(*args, **kw):
        kw.setdefault("verbose", True)
        return broker(*args, **kw)
    return make


def rewrite(b, *lines):
    """Replaces the broker's config with its listener plus `lines`."""
    b.conf.write_text("\n".join(["listener %d 127.0.0.1" % b.port] + auth_conf(*lines)) + "\n")


def hup(b):
    b.proc.send_signal(signal.SIGHUP)


def test_allow_anonymous_false_refuses_new_anonymous_clients(broker):
    b = broker(auth_conf())
    assert connack(b.port, 4) == 0
    rewrite(b, "allow_anonymous false")
    hup(b)
    wait_until(lambda: connack(b.port, 4) == 5, what="anonymous CONNECT refused after SIGHUP")
    assert connack(b.port, 5) == 0x87



def test_a_connect_right_after_sighup_gets_the_new_rules(broker, tmp_path):
    """Cause V (04-retain-check-source.py): a client that connects as soon as SIGHUP is sent is
    judged by the reloaded rules, as with Mosquitto, which reloads before it reads the next
    packet: Midge's workers hold a CONNECT while a reload is pending. Twenty flips of the ACL
    between read-write and read-only, each CONNECT sent right after its signal and followed by
    a publish: PUBACK 0x10 (allowed, nobody subscribed) or 0x87 (denied)."""
    acl = tmp_path / "flip.acl"
    acl.write_text("topic readwrite flip/#\n")
    lines = ["allow_anonymous true", "acl_file %s" % acl]
    b = broker(auth_conf(*lines))
    for i in range(20):
        writable = i % 2 == 1
        acl.write_text("topic %s flip/#\n" % ("readwrite" if writable else "read"))
        rewrite(b, *lines)
        hup(b)
        c = mqttraw.RawClient(b.port, 5)
        try:
            assert c.connect("flip").rc == 0
            ack = c.publish_acked("flip/t", b"x", qos=1, mid=1)
            assert ack.rc == (0x10 if writable else 0x87), "flip %d" % i
        finally:
            c.close()

def test_message_size_limit_applies_after_reload(broker):
    b = broker(auth_conf())
    c = mqttraw.RawClient(b.port, 5)
    try:
        assert c.connect("sized").rc == 0
        assert c.publish_acked("t", b"x" * 100, qos=1, mid=1).rc in (0, 0x10)
    finally:
        c.close()
    rewrite(b, "allow_anonymous true", "message_size_limit 50")
    hup(b)

    def refused():
        r = mqttraw.RawClient(b.port, 5)
        try:
            r.connect("sized")
            # Mosquitto answers 0x95, which is not a PUBACK reason code (3.4.2.1); Midge 0x97.
            return r.publish_acked("t", b"x" * 100, qos=1, mid=1).rc == (0x95 if IS_MOSQUITTO else 0x97)
        finally:
            r.close()
    wait_until(refused, what="a 100-byte payload refused (0x97) after SIGHUP")


def test_connected_clients_stay_connected(broker):
    b = broker(auth_conf())
    c = mqttraw.RawClient(b.port, 4)
    try:
        assert c.connect("stays").rc == 0
        assert c.subscribe([("t", 1)]).codes == [1]
        rewrite(b, "allow_anonymous true", "max_queued_messages 10")
        hup(b)
        wait_until(lambda: "SIGHUP" in b.log_text() or IS_MOSQUITTO, what="SIGHUP logged")
        c.publish("t", b"after", qos=0)
        p = c.recv_type(mqttraw.PUBLISH)
        assert p.payload == b"after"
    finally:
        c.close()


def test_password_file_path_change_is_read(broker, tmp_path):
    first = make_file(tmp_path / "first", [("alice", "one")])
    second = make_file(tmp_path / "second", [("bob", "two")])
    b = broker(auth_conf("allow_anonymous false", "password_file " + first))
    assert connack(b.port, 4, username="alice", password="one") == 0
    rewrite(b, "allow_anonymous false", "password_file " + second)
    hup(b)
    wait_until(lambda: connack(b.port, 4, username="bob", password="two") == 0,
               what="the new password file in force")
    assert connack(b.port, 4, username="alice", password="one") == 5


@pytest.mark.midge_only(reason="Midge's log lines (Mosquitto 2.0.11 logs nothing about the bad line)")
def test_invalid_file_changes_nothing(broker):
    b = broker(auth_conf())
    rewrite(b, "allow_anonymous false", "max_queued_messages lots")
    hup(b)
    wait_until(lambda: "configuration not reloaded" in b.log_text(), what="reload refused")
    assert "%s:3: " % b.conf.name in b.log_text() or "%s:3: " % str(b.conf) in b.log_text(), b.log_tail()
    assert connack(b.port, 4) == 0  # allow_anonymous true still in force
    assert b.alive()


@pytest.mark.midge_only(reason="Midge's log lines")
def test_changes_that_need_a_restart_are_named(broker):
    from conftest import free_port, port_open
    b = broker(auth_conf())
    other = free_port()
    b.conf.write_text("listener %d 127.0.0.1\nallow_anonymous true\nlistener %d 127.0.0.1\n"
                      "max_keepalive 30\n" % (b.port, other))
    hup(b)
    wait_until(lambda: "listener %d added" % other in b.log_text(), what="restart warning")
    assert "Configuration reloaded: max_keepalive 65535 -> 30." in b.log_text(), b.log_tail()
    assert not port_open(other)


def closed_by_broker(c):
    """Waits for the broker to end the connection; returns the DISCONNECT's reason, or None
    when it closed without one."""
    try:
        while True:
            p = c.recv(timeout=5)
            if p.type == mqttraw.DISCONNECT:
                return p.rc
    except mqttraw.Closed:
        return None


@pytest.mark.parametrize("proto", [4, 5])
def test_anonymous_clients_are_disconnected_when_no_longer_allowed(broker, proto):
    b = broker(auth_conf())
    c = mqttraw.RawClient(b.port, proto)
    try:
        assert c.connect("anon").rc == 0
        rewrite(b, "allow_anonymous false")
        hup(b)
        reason = closed_by_broker(c)
    finally:
        c.close()
    # Midge says why to v5 clients; Mosquitto closes without a word.
    assert reason == (0x87 if proto == 5 and not IS_MOSQUITTO else None)


def test_users_removed_or_changed_are_disconnected(broker, tmp_path):
    from test_auth import MOSQUITTO_PASSWD, run
    path = make_file(tmp_path / "passwd", [("stays", "pw"), ("removed", "pw"), ("changed", "pw")])
    b = broker(auth_conf("allow_anonymous false", "password_file " + path))
    clients = {}
    try:
        for name in ("stays", "removed", "changed"):
            clients[name] = mqttraw.RawClient(b.port, 5)
            assert clients[name].connect(name, username=name, password="pw").rc == 0
        assert run([MOSQUITTO_PASSWD, "-D", path, "removed"]).returncode == 0
        assert run([MOSQUITTO_PASSWD, "-b", path, "changed", "new"]).returncode == 0
        hup(b)
        for name in ("removed", "changed"):
            assert closed_by_broker(clients[name]) in (None, 0x87), name
        # The one whose entry did not change still talks to the broker.
        stays = clients["stays"]
        assert stays.subscribe([("t", 0)]).codes == [0]
        stays.publish("t", b"still here")
        assert stays.recv_type(mqttraw.PUBLISH).payload == b"still here"
    finally:
        for c in clients.values():
            c.close()


def test_log_destination_change_applies(tmp_path):
    """Without -v (which sends everything to stderr), log_dest follows the reloaded file."""
    import subprocess
    from conftest import BROKER_BIN, free_port, keep_root, port_open
    port = free_port()
    first, second = tmp_path / "first.log", tmp_path / "second.log"
    conf = tmp_path / "midge.conf"
    base = "listener %d 127.0.0.1\nallow_anonymous true\n" % port + "\n".join(auth_conf()) + "\n"
    base = keep_root(base)
    conf.write_text(base + "log_dest file %s\n" % first)
    proc = subprocess.Popen([BROKER_BIN, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: port_open(port), what="broker listening")
        conf.write_text(base + "log_dest file %s\nconnection_messages true\n" % second)
        proc.send_signal(signal.SIGHUP)
        wait_until(second.exists, what="logging moved to the second file")
        assert connack(port, 4) == 0
        wait_until(lambda: "New client connected" in second.read_text(), what="connection logged")
        assert "New client connected" not in first.read_text()
    finally:
        proc.terminate()
        proc.wait(10)
