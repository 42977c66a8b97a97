"""`http_dir` on a `protocol websockets` listener: static files over plain HTTP, beside
MQTT over WebSockets on the same port.

Checked against mosquitto 2.0.11 where it behaves alike (files, 404, traversal refused, HEAD,
POST 405, a directory redirected, one request per connection, a missing http_dir stopping the
broker). Mosquitto differs in: no Content-Type header at all, a body after HEAD, PUT and DELETE served like GET,
".." removed from the path before lookup (404 where Midge says 403), and no size cap.
"""
import http.client
import os
import socket

import pytest

from conftest import IS_MOSQUITTO, Client, free_port, mqtt, port_open, wait_until
from test_websockets import WsClient

FILES = {
    "index.html": b"<!doctype html><title>midge</title><h1>hello</h1>\n",
    "app.js": b"console.log('hello');\n",
    "style.css": b"h1 { color: red }\n",
    "data.json": b'{"a": 1}\n',
    "sub/page.html": b"<p>sub page</p>\n",
    "sub/deeper/index.html": b"<p>deeper index</p>\n",
    "notes.unknownext": b"opaque\n",
}
SECRET = b"top secret outside http_dir\n"


@pytest.fixture
def www(tmp_path):
    """tmp/www with FILES, tmp/secret beside it, and links from www to outside."""
    root = tmp_path / "www"
    for name, data in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    (tmp_path / "secret").write_bytes(SECRET)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_bytes(SECRET)
    os.symlink(tmp_path / "secret", root / "escape")
    os.symlink(tmp_path / "outside", root / "outdir")
    os.symlink(root / "app.js", root / "alias.js")  # stays inside: served
    return root


@pytest.fixture
def http_broker(broker, www):
    """A broker with a TCP listener (Mosquitto needs one) and a websockets listener serving www:
    (broker, ws_port)."""
    def make(extra=()):
        ws_port = free_port()
        lines = list(extra) + ["listener %d 127.0.0.1" % ws_port, "protocol websockets",
                               "http_dir %s" % www]
        if IS_MOSQUITTO:
            lines.append("user root")  # pytest's tmp dirs are root-only
        b = broker(lines)
        wait_until(lambda: port_open(ws_port), what="websockets port")
        return b, ws_port

    return make


def fetch(port, path, method="GET", body=None, headers=None):
    """One request with http.client: (status, headers dict with lower-case names, body)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


def raw(port, request):
    """Sends raw bytes; returns everything received until the server closes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(request)
        got = b""
        while True:
            d = s.recv(65536)
            if not d:
                return got
            got += d
    finally:
        s.close()


def test_files_are_served(http_broker):
    b, port = http_broker()
    for path, name in [("/", "index.html"), ("/index.html", "index.html"), ("/app.js", "app.js"),
                       ("/sub/page.html", "sub/page.html"), ("/sub/deeper/", "sub/deeper/index.html"),
                       ("/%69ndex.html", "index.html"), ("/app.js?v=42", "app.js"),
                       ("/alias.js", "app.js"), ("/notes.unknownext", "notes.unknownext")]:
        status, headers, body = fetch(port, path)
        assert (status, body) == (200, FILES[name]), path
        assert int(headers["content-length"]) == len(FILES[name]), path
    assert b.alive()


@pytest.mark.midge_only
def test_content_types(http_broker):
    """Mosquitto 2.0.11 sends no Content-Type header at all."""
    b, port = http_broker()
    for path, ctype in [("/", "text/html"), ("/app.js", "text/javascript"), ("/style.css", "text/css"),
                        ("/data.json", "application/json"),
                        ("/notes.unknownext", "application/octet-stream")]:
        status, headers, _ = fetch(port, path)
        assert status == 200 and headers["content-type"] == ctype, path


def test_missing_files_get_404(http_broker):
    b, port = http_broker()
    for path in ["/nothere.html", "/sub/nothere", "/nodir/x.js", "/sub/page.html/x"]:
        status, _, body = fetch(port, path)
        assert status == 404, path
        assert FILES["index.html"] not in body


def test_traversal_is_refused(http_broker):
    """Nothing outside http_dir is sent, through "..", encoded "..", or a symbolic link.
    Midge answers 403; Mosquitto removes ".." before the lookup, so it answers 404 there."""
    b, port = http_broker()
    for path in ["/../secret", "/%2e%2e/secret", "/%2E%2E/secret", "/sub/../../secret",
                 "/..%2fsecret", "/escape", "/outdir/secret"]:
        got = raw(port, b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        status = int(got.split(b" ", 2)[1])
        assert SECRET not in got, path
        assert status in (403, 404), (path, got)
        if not IS_MOSQUITTO or path in ("/escape", "/outdir/secret"):
            assert status == 403, (path, got)
    assert b.alive()


def test_head_has_length_and_no_body(http_broker):
    """Mosquitto 2.0.11 sends the file after its HEAD answer too (RFC 9110 9.3.2: it must not)."""
    b, port = http_broker()
    got = raw(port, b"HEAD /app.js HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, rest = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.") and b" 200 " in head.split(b"\r\n")[0]
    assert b"\r\ncontent-length: %d" % len(FILES["app.js"]) in head.lower()
    if not IS_MOSQUITTO:
        assert rest == b""


def test_post_gets_405(http_broker):
    b, port = http_broker()
    status, _, body = fetch(port, "/index.html", "POST", body=b"a=1&b=2",
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 405
    assert FILES["index.html"] not in body


@pytest.mark.midge_only
def test_other_methods_get_405(http_broker):
    """Mosquitto 2.0.11 answers PUT and DELETE like GET (200 and the file)."""
    b, port = http_broker()
    for method in ["PUT", "DELETE", "OPTIONS", "PATCH"]:
        status, headers, _ = fetch(port, "/index.html", method, body=b"x")
        assert status == 405, method
        assert headers["allow"] == "GET, HEAD"


def test_directory_is_redirected_to_its_slash(http_broker):
    b, port = http_broker()
    status, headers, _ = fetch(port, "/sub")
    assert status == 302
    assert headers["location"] == "/sub/"


def test_one_request_per_connection(http_broker):
    """The connection closes after the answer; a pipelined second request is not answered."""
    b, port = http_broker()
    got = raw(port, b"GET /app.js HTTP/1.1\r\nHost: x\r\n\r\nGET /style.css HTTP/1.1\r\nHost: x\r\n\r\n")
    assert got.count(b"HTTP/1.") == 1
    assert got.endswith(FILES["app.js"])


def test_mqtt_over_websockets_on_the_same_port(http_broker):
    b, port = http_broker()
    assert fetch(port, "/")[0] == 200
    ws = WsClient(port, client_id="ws-http")
    tcp = Client(b.port, client_id="tcp-http")
    try:
        ws.connect()
        tcp.connect()
        ws.subscribe("page/in", 1)
        tcp.subscribe("page/out", 1)
        tcp.publish("page/in", b"to the page", 1)
        ws.publish("page/out", b"from the page", 1)
        assert ws.wait_messages(1)[0].payload == b"to the page"
        assert tcp.wait_messages(1)[0].payload == b"from the page"
        assert fetch(port, "/app.js")[2] == FILES["app.js"]  # files still served meanwhile
    finally:
        ws.stop()
        tcp.stop()


def test_no_descriptor_leaks(http_broker):
    b, port = http_broker()
    fd_dir = "/proc/%d/fd" % b.pid
    fetch(port, "/")  # warm up whatever the first request opens once
    before = len(os.listdir(fd_dir))
    for path in ["/", "/nothere", "/escape", "/sub", "/../secret"] * 4:
        fetch(port, path)
    fetch(port, "/index.html", "POST", body=b"x")
    wait_until(lambda: len(os.listdir(fd_dir)) <= before, what="descriptors back to %d" % before)


def test_missing_http_dir_stops_the_broker(broker, tmp_path):
    missing = str(tmp_path / "nope")
    lines = ["listener %d 127.0.0.1" % free_port(), "protocol websockets", "http_dir " + missing]
    b = broker(lines, start=False)
    b.start(wait=False)
    assert b.proc.wait(10) == 1
    b.proc = None
    b.logf.close()
    assert 'Error: Unable to open http dir "%s".' % missing in b.log_text()


@pytest.mark.midge_only
def test_files_over_the_cap_get_500_and_a_log_line(http_broker, www):
    """Midge reads a file whole into the connection's output: at most 16 MiB (Mosquitto streams
    files of any size)."""
    cap = 16 * 1024 * 1024
    with open(www / "big.bin", "wb") as f:
        f.truncate(cap + 1)
    with open(www / "cap.bin", "wb") as f:
        f.write(os.urandom(cap))
    b, port = http_broker()
    status, headers, body = fetch(port, "/big.bin")
    assert status == 500 and body == b""
    wait_until(lambda: "HTTP 500 for GET /big.bin: file too large" in b.log_text(), what="log line")
    status, headers, body = fetch(port, "/cap.bin")
    assert status == 200 and body == (www / "cap.bin").read_bytes()
    assert headers["content-type"] == "application/octet-stream"


@pytest.mark.midge_only
def test_refusals_are_logged_with_the_peer(http_broker):
    b, port = http_broker()
    assert fetch(port, "/nothere.html")[0] == 404
    assert fetch(port, "/escape")[0] == 403
    wait_until(lambda: "HTTP 404 for GET /nothere.html: not found" in b.log_text(), what="404 log line")
    wait_until(lambda: "HTTP 403 for GET /escape" in b.log_text(), what="403 log line")
    line = [l for l in b.log_text().splitlines() if "HTTP 403 for GET /escape" in l]
    assert line and "127.0.0.1:" in line[0]
