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
