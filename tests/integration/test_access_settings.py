"""The access settings of issue 11 beside ACL files: use_username_as_clientid, max_inflight_bytes,
max_connections and max_qos per listener, set_tcp_nodelay, and `midge --test-config`.

Checked against Debian 12's Mosquitto 2.0.11 (MIDGE_TEST_BROKER=mosquitto) wherever it has the
option; `--test-config` is a Midge extension (Mosquitto 2.1 has a plain `--test-config` that only
parses the file) and its tests are midge_only.
"""
import os
import socket
import subprocess

import pytest

import certs
import mqttraw as m
from conftest import BROKER_BIN, IS_MOSQUITTO, free_port, port_open, wait_until

MOSQUITTO_PASSWD = "/usr/bin/mosquitto_passwd"


def password_file(path, users):
    """users: {name: password}; mosquitto_passwd writes PBKDF2 hashes, so Midge checks them off
    the event loop (the asynchronous path)."""
    for i, (name, password) in enumerate(users.items()):
        argv = [MOSQUITTO_PASSWD] + (["-c"] if i == 0 else []) + ["-b", str(path), name, password]
        subprocess.run(argv, check=True, capture_output=True, timeout=30)
    os.chmod(path, 0o600)
    return str(path)


def workers(n):
    """Several Midge workers, so that sessions live on different threads (Mosquitto has one);
    Mosquitto started as root stays root, to read the password file in the test's directory."""
    if IS_MOSQUITTO:
        return ["user root"] if os.getuid() == 0 else []
    return ["thread_count %d" % n]


def raw_connect(port, client_id, proto=4, **kw):
    c = m.RawClient(port, proto)
    return c, c.connect(client_id, **kw)


# ------------------------------------------------------------------ use_username_as_clientid

def start_named(broker, tmp_path, extra=()):
    pw = password_file(tmp_path / "pw", {"alice": "pw", "bob": "pw"})
    b = broker(start=False)
    port = b.port
    b.conf.write_text("\n".join(["listener %d 127.0.0.1" % port, "allow_anonymous true",
                                 "use_username_as_clientid true", "password_file " + pw]
                                + list(extra) + workers(4)) + "\n")
    return b.start()


@pytest.mark.parametrize("proto", [4, 5])
def test_one_user_has_one_session_whatever_client_id_it_gives(broker, tmp_path, proto):
    b = start_named(broker, tmp_path)
    first, ack = raw_connect(b.port, "dev-1", proto, username="alice", password="pw")
    assert ack.rc == 0
    second, ack = raw_connect(b.port, "dev-2", proto, username="alice", password="pw")
    assert ack.rc == 0
    # Both are client "alice": the second takes the first one's session over.
    got = first.wait_closed()
    if proto == 5 and not IS_MOSQUITTO:  # Mosquitto 2.0.11 sends none (docs/compatibility.md)
        assert [p.type for p in got] == [m.DISCONNECT] and got[0].rc == 0x8E  # session taken over
    second.close()


@pytest.mark.parametrize("proto", [4, 5])
def test_a_user_cannot_take_over_another_users_session(broker, tmp_path, proto):
    b = start_named(broker, tmp_path)
    alice, ack = raw_connect(b.port, "sensor", proto, username="alice", password="pw")
    assert ack.rc == 0
    assert alice.subscribe([("t/1", 1)]).codes == [1]
    # bob names alice's client id and her user name: he gets his own session, "bob".
    for cid in ("sensor", "alice"):
        bob, ack = raw_connect(b.port, cid, proto, username="bob", password="pw")
        assert ack.rc == 0
        bob.publish_acked("t/1", b"from bob as " + cid.encode(), qos=1)
        got = alice.recv_type(m.PUBLISH)  # alice is still connected, and gets it
        assert got.payload == b"from bob as " + cid.encode()
        alice.send(m.puback(got.mid, proto))
        bob.close()
    alice.close()


@pytest.mark.parametrize("proto", [3, 4, 5])
def test_a_client_without_user_name_is_refused(broker, tmp_path, proto):
    """Even with allow_anonymous true: there is no user name to use (handle_connect.c)."""
    b = start_named(broker, tmp_path)
    c, ack = raw_connect(b.port, "anon", proto)
    assert ack.rc == (0x87 if proto == 5 else 5)  # not authorised
    assert c.is_closed_within(5)


def test_wrong_password_is_still_refused(broker, tmp_path):
    b = start_named(broker, tmp_path)
    c, ack = raw_connect(b.port, "x", 4, username="alice", password="wrong")
    assert ack.rc == 5
    c.close()


def test_v5_empty_client_id_is_assigned_the_user_name(broker, tmp_path):
    b = start_named(broker, tmp_path)
    c, ack = raw_connect(b.port, "", 5, username="bob", password="pw")
    assert ack.rc == 0
    assert ack.prop(m.P_ASSIGNED_CLIENT_ID) == "bob"
    c.close()


def test_v311_empty_client_id_with_clean_session_false_is_still_rejected(broker, tmp_path):
    """[MQTT-3.1.3-8]: identifier rejected (2), checked before the user name replaces the id."""
    b = start_named(broker, tmp_path)
    c, ack = raw_connect(b.port, "", 4, clean=False, username="bob", password="pw")
    assert ack.rc == 2
    c.close()


def test_only_the_listener_that_sets_it(broker, tmp_path):
    pw = password_file(tmp_path / "pw", {"alice": "pw"})
    b = broker(start=False)
    other = free_port()
    b.conf.write_text("\n".join(["listener %d 127.0.0.1" % b.port, "use_username_as_clientid true",
                                 "listener %d 127.0.0.1" % other, "password_file " + pw]
                                + workers(3)) + "\n")
    b.start()  # waits for the first listener only
    wait_until(lambda: port_open(other), what="the second listener")
    # On the other listener alice keeps two sessions under their own client ids...
    one, ack = raw_connect(other, "dev-1", 4, username="alice", password="pw")
    assert ack.rc == 0
    two, ack = raw_connect(other, "dev-2", 4, username="alice", password="pw")
    assert ack.rc == 0
    assert one.subscribe([("t/2", 0)]).codes == [0]
    two.publish("t/2", b"both alive")
    assert one.recv_type(m.PUBLISH).payload == b"both alive"
    # ...and on the first one she is client "alice", which takes over neither of them but
    # itself: a second connection there closes the first.
    three, ack = raw_connect(b.port, "dev-1", 4, username="alice", password="pw")
    assert ack.rc == 0
    two.publish("t/2", b"still alive")
    assert one.recv_type(m.PUBLISH).payload == b"still alive"
    four, ack = raw_connect(b.port, "dev-2", 4, username="alice", password="pw")
    assert ack.rc == 0
    assert three.is_closed_within(5)
    for c in (one, two, four):
        c.close()


# ------------------------------------------------------------------ max_inflight_bytes

def slow_consumer(b, proto=4):
    sub = m.RawClient(b.port, proto)
    assert sub.connect("slow").rc == 0
    assert sub.subscribe([("big", 1), ("marker", 0)]).codes == [1, 0]
    pub = m.RawClient(b.port, proto)
    assert pub.connect("fast").rc == 0
    return sub, pub


def marker(sub, pub, text):
    """A QoS 0 message is not held by the in-flight window: once it arrives, everything the
    broker sent before it has arrived too."""
    pub.publish("marker", text)
    got = []
    while True:
        p = sub.recv_type(m.PUBLISH)
        if p.topic == "marker":
            assert p.payload == text
            return got
        got.append(p)


# Mosquitto 2.0.11 sends past max_inflight_bytes; 2.0.20 applies it, and its own broker test
# 02-subpub-qos2-max-inflight-bytes.py expects the rule these tests check (docs/compatibility.md).
midge_only_inflight = pytest.mark.midge_only(reason="Mosquitto 2.0.11 does not hold messages back "
                                             "(fixed by 2.0.20, whose own test expects it)")


@pytest.mark.parametrize("limit", [None, pytest.param(1000, marks=midge_only_inflight)])
def test_max_inflight_bytes_holds_messages_back_until_acknowledged(broker, limit):
    """Five QoS 1 messages of 500 bytes to a client that acknowledges nothing. As Mosquitto
    (database.c, db__ready_for_flight): one more goes out while fewer payload bytes than the
    limit are in flight, so exactly two (1000 bytes) are in flight at 1000; without the limit
    all five are (max_inflight_messages is 20)."""
    b = broker([] if limit is None else ["max_inflight_bytes %d" % limit])
    sub, pub = slow_consumer(b)
    for i in range(5):
        pub.publish_acked("big", bytes([0x30 + i]) * 500, qos=1, mid=i + 1)
    first = marker(sub, pub, b"m1")
    if limit is None:
        assert [p.payload[:1] for p in first] == [b"0", b"1", b"2", b"3", b"4"]
        return
    assert [p.payload[:1] for p in first] == [b"0", b"1"]
    sub.send(m.puback(first[0].mid))  # 500 bytes in flight now: one more goes out
    second = marker(sub, pub, b"m2")
    assert [p.payload[:1] for p in second] == [b"2"]
    sub.send(m.puback(first[1].mid))
    sub.send(m.puback(second[0].mid))  # nothing in flight: two more
    third = marker(sub, pub, b"m3")
    assert [p.payload[:1] for p in third] == [b"3", b"4"]
    assert all(not p.dup for p in first + second + third)
    sub.close()
    pub.close()


@midge_only_inflight
def test_max_inflight_bytes_one_large_message_still_goes_out(broker):
    """A message larger than the limit is sent when nothing is in flight (not starved)."""
    b = broker(["max_inflight_bytes 100"])
    sub, pub = slow_consumer(b)
    pub.publish_acked("big", b"L" * 5000, qos=1, mid=1)
    pub.publish_acked("big", b"S", qos=1, mid=2)
    got = marker(sub, pub, b"m1")
    assert [p.payload[:1] for p in got] == [b"L"]
    sub.send(m.puback(got[0].mid))
    assert [p.payload for p in marker(sub, pub, b"m2")] == [b"S"]
    sub.close()
    pub.close()


@midge_only_inflight
def test_max_inflight_bytes_counts_qos2_until_pubcomp(broker):
    """A QoS 2 message stays in flight, and counted, until PUBCOMP, not PUBREC."""
    b = broker(["max_inflight_bytes 600"])
    sub = m.RawClient(b.port, 4)
    assert sub.connect("slow2").rc == 0
    assert sub.subscribe([("big", 2), ("marker", 0)]).codes == [2, 0]
    pub = m.RawClient(b.port, 4)
    assert pub.connect("fast2").rc == 0
    for i in range(2):
        pub.publish_acked("big", bytes([0x30 + i]) * 600, qos=2, mid=i + 1)
    got = marker(sub, pub, b"m1")
    assert [p.payload[:1] for p in got] == [b"0"]
    sub.send(m.pubrec(got[0].mid))
    assert sub.recv_type(m.PUBREL).mid == got[0].mid
    assert marker(sub, pub, b"m2") == []  # released, not complete: still counted
    sub.send(m.pubcomp(got[0].mid))
    assert [p.payload[:1] for p in marker(sub, pub, b"m3")] == [b"1"]
    sub.close()
    pub.close()


# ------------------------------------------------------------------ max_connections per listener

def connects(port, n, prefix):
    held, results = [], []
    for i in range(n):
        c = m.RawClient(port, 4, timeout=3)
        try:
            c.send(m.connect("%s-%d" % (prefix, i)))
            ok = c.recv_type(m.CONNACK, timeout=3).rc == 0
        except (m.Closed, ConnectionResetError, BrokenPipeError):
            ok = False
        held.append(c)
        results.append(ok)
    return held, results


def test_max_connections_is_per_listener(broker):
    b = broker(start=False)
    other = free_port()
    # The limit is on the listener the fixture does not probe (its probe takes a slot a moment).
    b.conf.write_text("\n".join(["listener %d 127.0.0.1" % b.port, "allow_anonymous true",
                                 "listener %d 127.0.0.1" % other, "max_connections 1"]) + "\n")
    b.start()
    held, limited = connects(other, 4, "a")
    more, free = connects(b.port, 4, "b")
    assert free == [True] * 4  # the other listener has no limit, and the first one's count is its own
    assert limited == [True, False, False, False]
    for c in held + more:
        c.close()


# ------------------------------------------------------------------ max_qos per listener

def two_listeners(broker, limited_lines):
    """The fixture's listener has no limit; `other` has `limited_lines`."""
    b = broker(start=False)
    other = free_port()
    b.conf.write_text("\n".join(["listener %d 127.0.0.1" % b.port, "allow_anonymous true",
                                 "listener %d 127.0.0.1" % other] + list(limited_lines)) + "\n")
    b.start()  # waits for the first listener only
    wait_until(lambda: port_open(other), what="the second listener")
    return b, other


def test_max_qos_is_per_listener(broker):
    b, limited = two_listeners(broker, ["max_qos 1"])
    # The limited listener: told in CONNACK (v5), subscriptions granted at most QoS 1.
    c5, ack = raw_connect(limited, "q5", 5)
    assert ack.rc == 0 and ack.prop(m.P_MAXIMUM_QOS) == 1
    assert c5.subscribe([("q/#", 2)]).codes == [1]
    c4, ack = raw_connect(limited, "q4", 4)
    assert ack.rc == 0
    assert c4.subscribe([("q/#", 2)]).codes == [1]
    # The other listener: QoS 2 as usual.
    free, ack = raw_connect(b.port, "free", 5)
    assert ack.rc == 0 and ack.prop(m.P_MAXIMUM_QOS) is None
    assert free.subscribe([("q/#", 2)]).codes == [2]
    pub, ack = raw_connect(b.port, "pub", 5)
    assert pub.publish_acked("q/x", b"two", qos=2).type == m.PUBREC
    for c in (c5, c4):  # delivered at the granted QoS 1
        got = c.recv_type(m.PUBLISH)
        assert (got.payload, got.qos) == (b"two", 1)
        c.send(m.puback(got.mid, c.proto))
    assert free.recv_type(m.PUBLISH).qos == 2
    pub.close()
    # A QoS 2 PUBLISH through the limited listener closes the connection (v5: 0x9B first).
    c5.publish("q/y", b"too high", qos=2, mid=7)
    got = c5.wait_closed()
    assert [(p.type, p.rc) for p in got] == [(m.DISCONNECT, 0x9B)]
    c4.publish("q/y", b"too high", qos=2, mid=7)
    assert c4.wait_closed() == []
    free.close()


def test_max_qos_refuses_a_will_above_it_on_that_listener_only(broker):
    b, limited = two_listeners(broker, ["maximum_qos 0"])  # Mosquitto's other name for max_qos
    will = dict(topic="w", payload=b"bye", qos=1)
    c, ack = raw_connect(limited, "w1", 5, will=will)
    assert ack.rc == 0x9B  # QoS not supported [MQTT-3.2.2-12]
    c.close()
    c, ack = raw_connect(b.port, "w2", 5, will=will)
    assert ack.rc == 0
    c.close()


# ------------------------------------------------------------------ set_tcp_nodelay

def start_log(b):
    return wait_until(lambda: " running\n" in b.log_text() and b.log_text(), what="the start-up lines")


@pytest.mark.midge_only(reason="Midge's log lines")
def test_set_tcp_nodelay_true_is_silent_false_warns(broker):
    quiet = broker(["set_tcp_nodelay true"])
    assert "option 'set_tcp_nodelay'" not in start_log(quiet)
    loud = broker(["set_tcp_nodelay false"])
    assert ("Warning: %s:3: option 'set_tcp_nodelay' is not applied by Midge yet (Midge always sets "
            "TCP_NODELAY" % loud.conf) in start_log(loud)
    c, ack = raw_connect(loud.port, "n", 4)
    assert ack.rc == 0
    c.close()


# ------------------------------------------------------------------ --test-config

def check_config(path):
    return subprocess.run([BROKER_BIN, "--test-config", "-c", str(path)], capture_output=True, text=True,
                          timeout=30)


midge_only_test_config = pytest.mark.midge_only(reason="--test-config checking the files is a Midge extension")


@midge_only_test_config
def test_test_config_ok_opens_no_listener(tmp_path):
    # The port is taken: a start would fail to bind, the check does not bind.
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen()
    port = held.getsockname()[1]
    pw = password_file(tmp_path / "pw", {"alice": "pw"})
    conf = tmp_path / "ok.conf"
    conf.write_text("listener %d 127.0.0.1\npassword_file %s\nmax_inflight_bytes 1000\n" % (port, pw))
    r = check_config(conf)
    held.close()
    assert r.returncode == 0, r.stderr
    assert r.stdout == "%s: configuration OK.\n" % conf
    assert r.stderr == ""


@midge_only_test_config
def test_test_config_names_file_and_line_of_each_error(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("listener 1883\n"
                    "password_file %s\n"
                    "listener 8883\n"
                    "certfile %s\n"
                    "keyfile %s\n"
                    "listener 9001\n"
                    "protocol websockets\n"
                    "http_dir %s\n" % (tmp_path / "no-pw", tmp_path / "no.crt", tmp_path / "no.key",
                                       tmp_path / "no-dir"))
    r = check_config(conf)
    assert r.returncode == 1
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert lines[0].startswith("%s:2: password_file: Unable to open pwfile" % conf), r.stderr
    assert lines[1].startswith("%s:3: listener on port 8883: certfile %s" % (conf, tmp_path / "no.crt")), r.stderr
    assert lines[2] == "%s:6: listener on port 9001: http_dir \"%s\" is not a directory" % (conf, tmp_path / "no-dir")
    assert len(lines) == 3


@midge_only_test_config
def test_test_config_syntax_error_in_an_included_file(tmp_path):
    d = tmp_path / "conf.d"
    d.mkdir()
    (d / "a.conf").write_text("# comment\nmax_qos 3\n")
    conf = tmp_path / "main.conf"
    conf.write_text("listener 1883\ninclude_dir %s\n" % d)
    r = check_config(conf)
    assert r.returncode == 1
    assert r.stderr.startswith("%s:2: option 'max_qos': value 3 out of range" % (d / "a.conf")), r.stderr


@midge_only_test_config
def test_test_config_checks_tls_files_as_start_up(tmp_path):
    (tmp_path / "certs").mkdir()
    c = certs.make_all(str(tmp_path / "certs"))
    conf = tmp_path / "tls.conf"
    conf.write_text("listener 8883\ncertfile %s\nkeyfile %s\n" % (c["server.crt"], c["server.key"]))
    r = check_config(conf)
    assert r.returncode == 0, r.stderr
    # A key that does not belong to the certificate: start-up refuses it, so does the check.
    conf.write_text("listener 8883\ncertfile %s\nkeyfile %s\n" % (c["server.crt"], c["server2.key"]))
    r = check_config(conf)
    assert r.returncode == 1
    assert r.stderr.startswith("%s:1: listener on port 8883: " % conf), r.stderr


@midge_only_test_config
def test_test_config_prints_warnings_and_still_passes(tmp_path):
    conf = tmp_path / "w.conf"
    conf.write_text("listener 1883\npersistence true\npersistence_location %s\nautosave_interval 60\n" % tmp_path)
    r = check_config(conf)
    assert r.returncode == 0
    assert r.stderr == ("Warning: %s:4: option 'autosave_interval' is not applied by Midge yet (Midge writes every "
                        "change as it is made, before acknowledging it: there is no periodic save)\n" % conf)


@midge_only_test_config
def test_test_config_needs_an_existing_persistence_location(tmp_path):
    conf = tmp_path / "p.conf"
    conf.write_text("listener 1883\npersistence true\npersistence_location %s/missing/\n" % tmp_path)
    r = check_config(conf)
    assert r.returncode == 1
    assert r.stderr == ("%s:3: persistence_location %s/missing/ is not an existing directory\n" % (conf, tmp_path))


@midge_only_test_config
def test_test_config_needs_a_file_and_is_in_help():
    r = subprocess.run([BROKER_BIN, "--test-config"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 1
    assert "-c" in r.stderr
    usage = subprocess.run([BROKER_BIN, "--help"], capture_output=True, text=True, timeout=10).stdout
    assert "--test-config" in usage


@midge_only_test_config
def test_test_config_parses_acl_files(tmp_path):
    acl = tmp_path / "acl"
    acl.write_text("user alice\ntopic readwrite a/#\ntopic maybe b\n")
    conf = tmp_path / "acl.conf"
    conf.write_text("listener 1883\nallow_anonymous true\nacl_file %s\n" % acl)
    r = check_config(conf)
    assert r.returncode == 1
    # The configuration line that names the file, then the ACL file's own line.
    assert r.stderr.startswith("%s:3: acl_file: %s:3: invalid access \"maybe\"" % (conf, acl)), r.stderr
    acl.write_text("user alice\ntopic readwrite a/#\n")
    assert check_config(conf).returncode == 0
