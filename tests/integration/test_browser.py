"""The tutorial's web page in a real browser (issue 10).

The broker serves the page itself (`http_dir` on a `protocol websockets` listener, plain and
with certfile/keyfile); headless Chromium (Debian's, driven by tests/browser/drive.js with
playwright-core) opens it; the page connects back over ws:// or wss:// with Paho JavaScript or
MQTT.js, subscribes, shows what a Python client publishes and publishes what is typed into it.

The certificate is made here with the openssl command; Chromium trusts that server key only
(--ignore-certificate-errors-spki-list), which test_untrusted_certificate_is_refused checks.
The server's key, not the CA's: Chromium matches the keys of the chain the server sends, and
a certfile holding only the server certificate does not send the CA.
Without Chromium or tests/browser/node_modules (scripts/deps installs both) the module is
skipped, unless MIDGE_REQUIRE_BROWSER is set (scripts/test sets it): then it fails.
"""
import base64
import hashlib
import json
import os
import queue
import shutil
import subprocess
import threading
import uuid

import pytest

from conftest import IS_MOSQUITTO, REPO, free_port, port_open, wait_until

# Under pytest-xdist (--dist loadgroup) one worker runs them all: one Chromium, not one each.
pytestmark = pytest.mark.xdist_group("browser")

BROWSER_DIR = os.path.join(REPO, "tests", "browser")
NODE_MODULES = os.path.join(BROWSER_DIR, "node_modules")
CHROMIUM = os.environ.get("MIDGE_CHROMIUM", "/usr/bin/chromium")
# Where each client library's browser build lies in node_modules, and its name beside the page.
LIBRARIES = {"paho-mqtt/paho-mqtt.js": "paho-mqtt.js", "mqtt/dist/mqtt.min.js": "mqtt.min.js"}
WAIT_MS = 10000


def _missing():
    if shutil.which("node") is None:
        return "the node command"
    if not os.access(CHROMIUM, os.X_OK):
        return CHROMIUM + " (Debian package chromium)"
    for path in ["playwright-core"] + list(LIBRARIES):
        if not os.path.exists(os.path.join(NODE_MODULES, path)):
            return os.path.join(NODE_MODULES, path) + " (run scripts/deps)"
    return None


@pytest.fixture(scope="module", autouse=True)
def _browser_available():
    missing = _missing()
    if missing is None:
        return
    if os.environ.get("MIDGE_REQUIRE_BROWSER"):
        pytest.fail("MIDGE_REQUIRE_BROWSER is set but %s is missing" % missing)
    pytest.skip("browser test needs %s" % missing)


# ------------------------------------------------------------------ certificate and page

def _openssl(*args, cwd, stdin=None):
    return subprocess.run(["openssl"] + list(args), cwd=cwd, input=stdin, check=True,
                          capture_output=True).stdout


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A CA and a server certificate for 127.0.0.1; another self-signed one (never trusted).
    Returns the paths and the base64 SHA-256 of the server's public key (Chromium's form)."""
    d = tmp_path_factory.mktemp("browser-certs")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
             "ca.crt", "-days", "2", "-subj", "/CN=Midge Browser Test CA", cwd=d)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
             "server.csr", "-subj", "/CN=127.0.0.1", cwd=d)
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "server.ext",
             cwd=d)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key", "-out",
             "other.crt", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
             "subjectAltName=IP:127.0.0.1", cwd=d)
    pem = _openssl("x509", "-in", "server.crt", "-noout", "-pubkey", cwd=d)
    der = _openssl("pkey", "-pubin", "-outform", "DER", cwd=d, stdin=pem)
    spki = base64.b64encode(hashlib.sha256(der).digest()).decode()
    paths = {n: str(d / n) for n in os.listdir(d)}
    return dict(paths, spki=spki)


@pytest.fixture(scope="module")
def www(tmp_path_factory):
    """The served directory: tests/browser/page plus the libraries out of node_modules."""
    d = tmp_path_factory.mktemp("browser-www") / "www"
    shutil.copytree(os.path.join(BROWSER_DIR, "page"), d)
    (d / "lib").mkdir()
    for src, name in LIBRARIES.items():
        shutil.copyfile(os.path.join(NODE_MODULES, src), d / "lib" / name)
    return d


# ------------------------------------------------------------------ the browser

class Driver:
    """tests/browser/drive.js: one JSON command per line; a failure fails the test with what
    the page showed and logged."""

    def __init__(self, spki, log_path):
        self.log = open(log_path, "wb")
        argv = ["node", os.path.join(BROWSER_DIR, "drive.js"), "--chromium", CHROMIUM,
                "--trust-spki", spki]
        if IS_MOSQUITTO:
            # Debian's mosquitto 2.0.11 (libwebsockets) accepts h2 in ALPN on a TLS websockets
            # listener, then fails the page's GET (ERR_HTTP2_PROTOCOL_ERROR); Midge is
            # tested with Chromium's defaults.
            argv += ["--disable-http2", "1"]
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.lines = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.version = self._answer(30, "Chromium start")["version"]

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _answer(self, timeout, what, expect_ok=True):
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail("no answer from drive.js within %ds to %s" % (timeout, what))
        if line is None:
            pytest.fail("drive.js exited (%s) during %s; stderr in %s"
                        % (self.proc.wait(), what, self.log.name))
        ans = json.loads(line)
        if expect_ok and not ans.get("ok"):
            pytest.fail("%s: %s\n---- page text ----\n%s\n---- console ----\n%s" % (
                what, ans.get("error"), ans.get("body"), "\n".join(ans.get("console", []))))
        return ans

    def call(self, cmd, expect_ok=True, **args):
        self.proc.stdin.write(json.dumps(dict(args, cmd=cmd)) + "\n")
        self.proc.stdin.flush()
        return self._answer(args.get("timeout", WAIT_MS) / 1000 + 15, "%s %r" % (cmd, args),
                            expect_ok)

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.write('{"cmd": "quit"}\n')
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def browser(_browser_available, certs, tmp_path_factory):
    d = Driver(certs["spki"], tmp_path_factory.mktemp("browser-log") / "drive.stderr")
    yield d
    d.close()


# ------------------------------------------------------------------ broker

@pytest.fixture
def serve(broker, www):
    """Factory: serve(cert=None, key=None) -> (broker, websockets port): a broker with its MQTT
    listener and a websockets listener serving the page, with TLS when given a certificate.
    One broker per scheme, so that ws:// needs http_dir only."""
    def make(cert=None, key=None):
        port = free_port()
        lines = ["listener %d 127.0.0.1" % port, "protocol websockets", "http_dir " + str(www)]
        if cert:
            lines += ["certfile " + cert, "keyfile " + key]
        # As root, mosquitto drops to user 'mosquitto', which cannot read tmp_path.
        if IS_MOSQUITTO and os.geteuid() == 0:
            lines.append("user root")
        b = broker(lines)
        wait_until(lambda: port_open(port), 10, what="websockets listener %d" % port)
        return b, port
    return make


def _page_url(scheme, port, lib, sub, pub):
    return "%s://127.0.0.1:%d/?lib=%s&sub=%s&pub=%s" % (scheme, port, lib, sub, pub)


# ------------------------------------------------------------------ tests

@pytest.mark.parametrize("scheme", ["ws", "wss"])
@pytest.mark.parametrize("lib", ["paho", "mqttjs"])
def test_page_receives_and_publishes(lib, scheme, serve, certs, browser, connected):
    """The served page subscribes over ws:// or wss://, shows a message a Python client
    publishes, and what is typed into it reaches the Python client."""
    tag = "%s-%s-%s" % (lib, scheme, uuid.uuid4().hex[:8])
    to_page, from_page = "maison/salon/%s" % tag, "maison/consigne/%s" % tag
    if scheme == "wss":
        b, port = serve(certs["server.crt"], certs["server.key"])
    else:
        b, port = serve()
    python = connected(b.port)
    python.subscribe(from_page)
    opened = browser.call("open", url=_page_url("https" if scheme == "wss" else "http", port,
                                                lib, to_page, from_page))
    assert opened["status"] == 200
    browser.call("wait_text", selector="#status", text="abonné", exact=True)

    python.publish(to_page, "22,5 °C")
    browser.call("wait_text", selector="#messages", text="%s : 22,5 °C" % to_page)

    browser.call("fill", selector="#outgoing", value="chauffage 19 °C")
    browser.call("click", selector="#send")
    got = python.wait_messages(1, timeout=WAIT_MS / 1000, topic=from_page)
    assert [m.payload for m in got] == ["chauffage 19 °C".encode()]


def test_untrusted_certificate_is_refused(serve, certs, browser):
    """Chromium trusts only the test's server key: a wss listener with another certificate
    does not load, so the wss tests above ran over a verified TLS connection."""
    _, port = serve(certs["other.crt"], certs["other.key"])
    url = _page_url("https", port, "paho", "a", "b")
    ans = browser.call("open", expect_ok=False, url=url)
    assert not ans["ok"] and "ERR_CERT" in ans["error"], ans
