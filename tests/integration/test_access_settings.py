"""The access settings of issue 11 beside ACL files: use_username_as_clientid, max_inflight_bytes,
max_connections per listener, set_tcp_nodelay, and `midge --test-config`.

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
from conftest import BROKER_BIN, IS_MOSQUITTO, free_port, wait_until

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
