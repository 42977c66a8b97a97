"""Fixtures for the black-box integration tests.

MIDGE_TEST_BROKER=mosquitto runs the suite against /usr/sbin/mosquitto (to validate the tests
themselves); otherwise the Midge binary at $MIDGE_BIN (default <repo>/build/src/midge) is used.
"""
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import paho.mqtt.client as mqtt  # noqa: E402  (Debian python3-paho-mqtt 1.6.1)
from paho.mqtt.properties import Properties  # noqa: E402,F401
from paho.mqtt.packettypes import PacketTypes  # noqa: E402,F401

import mqttraw  # noqa: E402,F401

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BROKER_KIND = os.environ.get("MIDGE_TEST_BROKER", "midge")
IS_MOSQUITTO = BROKER_KIND == "mosquitto"
if IS_MOSQUITTO:
    BROKER_BIN = os.environ.get("MOSQUITTO_BIN", "/usr/sbin/mosquitto")
else:
    BROKER_BIN = os.environ.get("MIDGE_BIN", os.path.join(REPO, "build", "src", "midge"))

# MIDGE_TEST_THREADS=N adds `thread_count N` to every Midge config a Broker writes (unless
# the test sets its own), so the whole suite can run with several workers (scripts/test).
TEST_THREADS = os.environ.get("MIDGE_TEST_THREADS", "")

V31, V311, V5 = mqtt.MQTTv31, mqtt.MQTTv311, mqtt.MQTTv5
ALL_VERSIONS = [V31, V311, V5]


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "midge_only: behaviour Mosquitto 2.0.11 lacks or does differently on purpose; "
        "skipped when MIDGE_TEST_BROKER=mosquitto")


def pytest_collection_modifyitems(config, items):
    # MIDGE_TEST_NO_SKIP=1 runs midge_only tests against mosquitto too (to see them fail).
    if not IS_MOSQUITTO or os.environ.get("MIDGE_TEST_NO_SKIP"):
        return
    for item in items:
        mark = item.get_closest_marker("midge_only")
        if mark:  # @pytest.mark.midge_only(reason="...") says why in the skip line
            why = mark.kwargs.get("reason", "not Mosquitto 2.0.11 behaviour")
            item.add_marker(pytest.mark.skip(reason="midge_only: " + why))


# ------------------------------------------------------------------ waiting

def wait_until(pred, timeout=5.0, interval=0.01, what="condition"):
    """Polls pred() until truthy; returns its value or fails the test after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        val = pred()
        if val:
            return val
        if time.monotonic() >= deadline:
            pytest.fail("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


# Ports come from 20000 up to the kernel's ephemeral range (where bind(0) and every client's
# source port come from), each pytest-xdist worker from its own slice, in turn from a random
# start: a port asked of the kernel could be handed to another worker, or taken as a client's
# source port, between our close() and the broker's bind().
def _port_slice():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            top = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        top = 32768
    lo, hi = 20000, max(top, 21000)
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    index = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:])
    size = (hi - lo) // workers
    first = lo + index * size
    return first, size


_PORT_FIRST, _PORT_COUNT = _port_slice()
_port_next = random.randrange(_PORT_COUNT)


def free_port():
    """A port nothing listens on, not handed out before by this worker (until its slice of
    a few thousand ports wraps around)."""
    global _port_next
    for _ in range(_PORT_COUNT):
        port = _PORT_FIRST + _port_next
        _port_next = (_port_next + 1) % _PORT_COUNT
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue  # in use (another program, or a test run beside this one)
        finally:
            s.close()
    pytest.fail("no free port in %d-%d" % (_PORT_FIRST, _PORT_FIRST + _PORT_COUNT - 1))


def keep_root(text):
    """A Midge config's text with `user root` added when the tests run as root and the text does
    not choose a user: see Broker (test_service.py tests the privilege drop itself)."""
    if IS_MOSQUITTO or os.geteuid() != 0 or any(line.split()[:1] == ["user"] for line in text.splitlines()):
        return text
    return text.rstrip("\n") + "\nuser root\n"


def tools_dir(program):
    """The folder of Midge's command-line tools holding `program` (e.g. "midge_sub"):
    $MIDGE_TOOLS_DIR, where a missing program is an error (scripts/test names it), else the
    build folders; None when the tools are not built."""
    given = os.environ.get("MIDGE_TOOLS_DIR")
    if given and not os.path.exists(os.path.join(given, program)):
        raise pytest.UsageError("MIDGE_TOOLS_DIR=%s has no %s" % (given, program))
    for d in (given, os.path.join(REPO, "build", "tools"), os.path.join(REPO, "build-tools", "tools")):
        if d and os.path.exists(os.path.join(d, program)):
            return d
    return None


def port_open(port, host="127.0.0.1"):
    try:
        socket.create_connection((host, port), timeout=0.2).close()
        return True
    except OSError:
        return False


# ------------------------------------------------------------------ broker

class Broker:
    """One broker process with its own config file in a temp dir."""

    def __init__(self, tmp_path, extra_conf_lines=(), port=None, listener=True, args=(),
                 binary=None, env=None, verbose=False):
        self.bin = binary or BROKER_BIN  # binary=/usr/sbin/mosquitto: a side-by-side comparison
        self.dir = tmp_path
        self.port = port or free_port()
        self.conf = tmp_path / ("broker-%d.conf" % self.port)
        self.log = tmp_path / ("broker-%d.log" % self.port)
        lines = []
        if listener:
            lines += ["listener %d 127.0.0.1" % self.port, "allow_anonymous true"]
        lines += list(extra_conf_lines)
        midge = not IS_MOSQUITTO if binary is None else "mosquitto" not in binary
        # Mosquitto runs with -v, as in its own tests. Midge's -v adds a debug line per packet
        # received and sent, which would make every flood and load test a test of the logger:
        # Midge gets every other log type, and -v only where a test asks (verbose=True).
        self.verbose = verbose or not midge
        if not self.verbose and not any(str(line).split()[:1] == ["log_type"] for line in lines):
            lines += ["log_type " + t for t in ("error", "warning", "notice", "information", "subscribe",
                                                "unsubscribe", "websockets")]
        if TEST_THREADS and midge and not any(
                str(line).split()[:1] == ["thread_count"] for line in lines):
            lines.append("thread_count " + TEST_THREADS)
        # Started as root, Midge drops to user midge (or nobody), who cannot enter the test's
        # temporary folders (mode 0700): the tests of other things keep root; test_service.py
        # tests the drop itself.
        if midge and os.geteuid() == 0 and not any(str(line).split()[:1] == ["user"] for line in lines):
            lines.append("user root")
        self.conf.write_text("\n".join(lines) + "\n")
        self.args = list(args)
        self.env = env  # extra environment variables (test hooks such as MIDGE_STORE_FAULT_FILE)
        self.proc = None
        self.logf = None
        self.failures = []

    @property
    def pid(self):
        return self.proc.pid

    def start(self, wait=True):
        if not os.access(self.bin, os.X_OK):
            pytest.fail("broker binary %s not found: build Midge, set MIDGE_BIN, or set "
                        "MIDGE_TEST_BROKER=mosquitto" % self.bin)
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen(self.command(),
                                     stdout=self.logf, stderr=subprocess.STDOUT,
                                     cwd=str(self.dir),
                                     env=dict(os.environ, **self.env) if self.env else None)
        if wait:
            deadline = time.monotonic() + 10
            while not port_open(self.port):
                if self.proc.poll() is not None:
                    pytest.fail("broker exited with %s at start-up\n%s"
                                % (self.proc.returncode, self.log_tail()))
                if time.monotonic() > deadline:
                    pytest.fail("broker not accepting on port %d after 10s\n%s"
                                % (self.port, self.log_tail()))
                time.sleep(0.02)
        return self

    def command(self):
        return [self.bin, "-c", str(self.conf)] + (["-v"] if self.verbose else []) + self.args

    def log_tail(self, n=40):
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "---- broker log tail ----\n" + "\n".join(lines[-n:])

    def log_text(self):
        return self.log.read_text(errors="replace")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Stops the broker; records a failure if it had crashed or exits badly."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            self.failures.append("broker died during the test with code %s"
                                 % self.proc.returncode)
        else:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.failures.append("broker did not exit within %ds of signal %d"
                                     % (timeout, sig))
            if sig == signal.SIGTERM and self.proc.returncode != 0:
                self.failures.append("broker exited with code %s after SIGTERM"
                                     % self.proc.returncode)
        rc = self.proc.returncode
        self.proc = None
        self.logf.close()
        return rc

    def kill9(self):
        """SIGKILL (no failure recorded): for persistence tests."""
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        self.logf.close()

    def wait_exit(self, timeout=10):
        """For a start that must fail: waits for the exit and returns the exit code (None if
        still running: stop() then reports it)."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self.proc = None
        self.logf.close()
        return rc

    def restart(self):
        """Same config, same port."""
        self.stop()
        return self.start()


@pytest.fixture
def broker(tmp_path):
    """Factory: broker(extra_conf_lines=[...], start=True, args=[]) -> started Broker.
    Every broker is stopped at teardown; a crash or bad exit fails the test."""
    made = []

    def make(extra_conf_lines=(), start=True, **kw):
        sub = tmp_path / ("b%d" % len(made))
        sub.mkdir()
        b = Broker(sub, extra_conf_lines, **kw)
        made.append(b)
        if start:
            b.start()
        return b

    yield make
    problems = []
    for b in made:
        b.stop()
        if b.failures:
            problems.append("; ".join(b.failures) + "\n" + b.log_tail())
    if problems:
        pytest.fail("\n".join(problems))


# ------------------------------------------------------------------ paho clients

class Events:
    """Thread-safe event lists filled by paho callbacks."""

    def __init__(self):
        self.cond = threading.Condition()
        self.messages = []
        self.connacks = []
        self.disconnects = []
        self.subacks = {}
        self.unsubacks = {}
        self.published = set()

    def add(self, attr, item, key=None):
        with self.cond:
            target = getattr(self, attr)
            if isinstance(target, list):
                target.append(item)
            elif isinstance(target, dict):
                target[key] = item
            else:
                target.add(item)
            self.cond.notify_all()

    def wait_for(self, pred, timeout=5.0, what="event"):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                val = pred()
                if val:
                    return val
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail("timed out after %.1fs waiting for %s" % (timeout, what))
                self.cond.wait(left)


class Client:
    """A paho client running its network loop in a thread; every event is recorded."""

    def __init__(self, port, version=V311, client_id="", clean=True, userdata=None):
        self.port = port
        self.version = version
        kw = {} if version == V5 else {"clean_session": clean}
        self.clean = clean
        self.paho = mqtt.Client(client_id=client_id, protocol=version,
                                reconnect_on_failure=False, **kw)
        self.ev = Events()
        p = self.paho
        p.on_connect = self._on_connect
        p.on_disconnect = self._on_disconnect
        p.on_message = self._on_message
        p.on_subscribe = self._on_subscribe
        p.on_unsubscribe = self._on_unsubscribe
        p.on_publish = lambda c, u, mid: self.ev.add("published", mid)
        self.started = False

    # paho callbacks -----------------------------------------------------
    def _on_connect(self, c, u, flags, rc, properties=None):
        self.ev.add("connacks", (flags, rc, properties))

    def _on_disconnect(self, c, u, rc, properties=None):
        self.ev.add("disconnects", (rc, properties))

    def _on_message(self, c, u, msg):
        self.ev.add("messages", msg)

    def _on_subscribe(self, c, u, mid, granted, properties=None):
        self.ev.add("subacks", granted, mid)

    def _on_unsubscribe(self, c, u, mid, properties=None, rcs=None):
        self.ev.add("unsubacks", rcs, mid)

    # actions ------------------------------------------------------------
    def connect(self, keepalive=60, clean_start=True, properties=None, will=None, expect_rc=0):
        """Connects and waits for CONNACK; returns (flags, rc, properties)."""
        if will:
            self.paho.will_set(will["topic"], will.get("payload"), will.get("qos", 0),
                               will.get("retain", False), will.get("properties"))
        n = len(self.ev.connacks)
        kw = {}
        if self.version == V5:
            kw = {"clean_start": clean_start, "properties": properties}
        self.paho.connect("127.0.0.1", self.port, keepalive, **kw)
        if not self.started:
            self.paho.loop_start()
            self.started = True
        ack = self.ev.wait_for(lambda: len(self.ev.connacks) > n and self.ev.connacks[n],
                               what="CONNACK")
        if expect_rc is not None:
            assert ack[1] == expect_rc, "CONNACK rc %r" % (ack[1],)
        return ack

    def subscribe(self, topic, qos=0, options=None, properties=None):
        """Subscribes (topic may be a list of (filter, qos|SubscribeOptions)); returns granted."""
        if options is not None:
            rc, mid = self.paho.subscribe(topic, options=options, properties=properties)
        elif properties is not None:
            rc, mid = self.paho.subscribe(topic, qos, properties=properties)
        else:
            rc, mid = self.paho.subscribe(topic, qos)
        assert rc == mqtt.MQTT_ERR_SUCCESS
        return self.ev.wait_for(lambda: self.ev.subacks.get(mid), what="SUBACK")

    def unsubscribe(self, topic):
        rc, mid = self.paho.unsubscribe(topic)
        assert rc == mqtt.MQTT_ERR_SUCCESS
        self.ev.wait_for(lambda: mid in self.ev.unsubacks, what="UNSUBACK")

    def publish(self, topic, payload=b"", qos=0, retain=False, properties=None, wait=True):
        info = self.paho.publish(topic, payload, qos, retain, properties)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS, info.rc
        if wait and qos > 0:
            self.ev.wait_for(lambda: info.mid in self.ev.published, what="publish ack")
        return info

    def messages(self, topic=None):
        with self.ev.cond:
            return [m for m in self.ev.messages if topic is None or m.topic == topic]

    def wait_messages(self, n, timeout=5.0, topic=None):
        """Waits until at least n messages (on topic, if given) arrived; returns them all."""
        self.ev.wait_for(lambda: len([m for m in self.ev.messages
                                      if topic is None or m.topic == topic]) >= n,
                         timeout, what="%d message(s)%s" % (n, " on " + topic if topic else ""))
        return self.messages(topic)

    def expect_nothing(self, duration=0.3, topic=None):
        """Proves a negative: no (more) message arrives within duration. Keep it short,
        except when it watches past a timer (it must then outlast that timer)."""
        before = len(self.messages(topic))
        time.sleep(duration)
        after = self.messages(topic)
        assert len(after) == before, "unexpected message(s): %r" % [
            (m.topic, m.payload) for m in after[before:]]

    def wait_disconnected(self, timeout=5.0):
        return self.ev.wait_for(lambda: self.ev.disconnects and self.ev.disconnects[-1],
                                timeout, what="disconnect")

    def disconnect(self, reasoncode=None, properties=None):
        n = len(self.ev.disconnects)
        if self.version == V5 and (reasoncode is not None or properties is not None):
            from paho.mqtt.reasoncodes import ReasonCodes
            rcobj = ReasonCodes(PacketTypes.DISCONNECT, identifier=reasoncode or 0)
            self.paho.disconnect(reasoncode=rcobj, properties=properties)
        else:
            self.paho.disconnect()
        self.ev.wait_for(lambda: len(self.ev.disconnects) > n, what="disconnect callback")

    def stop(self):
        if self.started:
            try:
                self.paho.disconnect()
            except Exception:
                pass
            self.paho.loop_stop()
            self.started = False


@pytest.fixture
def client():
    """Factory: client(port, version=V311, client_id='', clean=True) -> Client (not connected).
    Use .connect() afterwards. All are stopped at teardown."""
    made = []

    def make(port, version=V311, client_id="", clean=True):
        c = Client(port, version, client_id, clean)
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()


@pytest.fixture
def connected(client):
    """Factory: connected(port, version=V311, client_id='', **connect_kw) -> connected Client."""
    def make(port, version=V311, client_id="", clean=True, **kw):
        c = client(port, version, client_id, clean)
        c.connect(**kw)
        return c
    return make


def props(packet_type, **values):
    """Builds paho Properties: props(PacketTypes.PUBLISH, MessageExpiryInterval=5)."""
    p = Properties(packet_type)
    for k, v in values.items():
        setattr(p, k, v)
    return p


# ------------------------------------------------------------------ raw sockets

@pytest.fixture
def raw():
    """Factory: raw(port, proto=4) -> mqttraw.RawClient; all closed at teardown."""
    made = []

    def make(port, proto=4, timeout=5.0):
        r = mqttraw.RawClient(port, proto, timeout=timeout)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


# ------------------------------------------------------------------ mosquitto-clients

class LineReader:
    """Collects the stdout lines of a long-running process (mosquitto_sub)."""

    def __init__(self, argv):
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.decode("utf-8", "replace").rstrip("\n"))
                self.cond.notify_all()

    def wait_lines(self, n, timeout=5.0, fail=True):
        """Waits until n lines were printed; returns them (or None if fail=False)."""
        return self.wait_for(lambda lines: len(lines) >= n, timeout, fail,
                             "%d lines" % n)

    def wait_for(self, pred, timeout=5.0, fail=True, what="line"):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not pred(self.lines):
                left = deadline - time.monotonic()
                if left <= 0:
                    if fail:
                        pytest.fail("mosquitto_sub printed %r, waited for %s"
                                    % (self.lines, what))
                    return None
                self.cond.wait(left)
            return list(self.lines)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.thread.join(2)


@pytest.fixture
def mosq():
    """mosquitto_sub/mosquitto_pub helpers bound to a port."""
    readers = []

    class Mosq:
        @staticmethod
        def sub(port, *args):
            r = LineReader(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port)] + list(args))
            readers.append(r)
            return r

        @staticmethod
        def pub(port, *args, check=True):
            res = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port)]
                                 + list(args), capture_output=True, timeout=10)
            if check:
                assert res.returncode == 0, res.stderr
            return res

        @staticmethod
        def sub_once(port, *args, timeout=10):
            res = subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port)]
                                 + list(args), capture_output=True, timeout=timeout)
            return res

    yield Mosq
    for r in readers:
        r.stop()


def proc_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
