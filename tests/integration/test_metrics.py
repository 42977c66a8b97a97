"""The Prometheus endpoint (`protocol http` listener, GET /metrics): the exposition format
parsed strictly, and the counters checked against traffic sent by raw MQTT clients whose bytes
are known exactly. Run with MIDGE_TEST_THREADS=2 too: a scrape sums every worker's counters."""
import concurrent.futures
import os
import re
import socket
import subprocess
import urllib.error
import urllib.request

import pytest

import mqttraw
from conftest import free_port, port_open, wait_until

pytestmark = pytest.mark.midge_only(reason="`protocol http` (the metrics endpoint) is Midge's")

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


# ------------------------------------------------------------------ a strict parser

def parse_value(text):
    if text in ("+Inf", "-Inf", "NaN"):
        return float(text.replace("Inf", "inf").replace("NaN", "nan"))
    assert re.fullmatch(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?", text), "bad value %r" % text
    return float(text)


def parse_labels(line, pos):
    """Parses {a="x",b="y"} at line[pos] ('{'); returns (dict, position after '}')."""
    labels = {}
    pos += 1
    while line[pos] != "}":
        m = LABEL_NAME.match(line, pos)
        assert m, "bad label name in %r" % line
        name = m.group(0)
        pos = m.end()
        assert line[pos:pos + 2] == '="', "bad label syntax in %r" % line
        pos += 2
        value = []
        while line[pos] != '"':
            if line[pos] == "\\":
                esc = line[pos + 1]
                assert esc in '\\"n', "bad escape in %r" % line
                value.append("\n" if esc == "n" else esc)
                pos += 2
            else:
                value.append(line[pos])
                pos += 1
        pos += 1
        assert name not in labels, "label %s twice in %r" % (name, line)
        labels[name] = "".join(value)
        if line[pos] == ",":
            pos += 1
    return labels, pos + 1


def sample_family(name, current, typ):
    if typ == "histogram":
        return any(name == current + s for s in ("_bucket", "_sum", "_count"))
    return name == current


def parse(text):
    """Returns (families: name -> type, samples: {(name, frozenset(labels)): value}). Fails on
    anything the 0.0.4 text format does not allow or that Midge should not send."""
    assert text.endswith("\n")
    families, samples, helped = {}, {}, set()
    current = None
    for line in text[:-1].split("\n"):
        assert line, "empty line"
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert NAME.fullmatch(name) and name not in helped and help_text, line
            helped.add(name)
            current = name
            continue
        if line.startswith("# TYPE "):
            name, _, typ = line[7:].partition(" ")
            assert name == current and typ in TYPES and name not in families, line
            families[name] = typ
            continue
        assert not line.startswith("#"), "unexpected comment %r" % line
        m = NAME.match(line)
        assert m, "bad metric name in %r" % line
        name, pos = m.group(0), m.end()
        labels = {}
        if line[pos] == "{":
            labels, pos = parse_labels(line, pos)
        assert line[pos] == " ", "no space before the value in %r" % line
        value = parse_value(line[pos + 1:])
        assert current in families and sample_family(name, current, families[current]), \
            "sample %r outside its family (current %s)" % (line, current)
        key = (name, frozenset(labels.items()))
        assert key not in samples, "series twice: %r" % line
        samples[key] = value
    for name, typ in families.items():
        if typ == "counter":
            assert name.endswith("_total"), name
    check_histograms(families, samples)
    return families, samples


def check_histograms(families, samples):
    for name, typ in families.items():
        if typ != "histogram":
            continue
        series = {}
        for (n, labels), v in samples.items():
            if n == name + "_bucket":
                rest = frozenset((k, x) for k, x in labels if k != "le")
                series.setdefault(rest, []).append((parse_value(dict(labels)["le"]), v))
        assert series, "histogram %s without buckets" % name
        for rest, buckets in series.items():
            buckets.sort()
            assert buckets[-1][0] == float("inf")
            counts = [c for _, c in buckets]
            assert counts == sorted(counts), "buckets of %s not cumulative" % name
            assert samples[(name + "_count", rest)] == counts[-1]
            assert (name + "_sum", rest) in samples


def value(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]


# ------------------------------------------------------------------ helpers

def metrics_broker(broker, extra=()):
    """A broker with a second MQTT listener and the metrics listener."""
    second, http = free_port(), free_port()
    b = broker(["listener %d 127.0.0.1" % second, "listener %d 127.0.0.1" % http, "protocol http"]
               + list(extra))
    b.second, b.http = second, http
    # The fixture waited for the first listener only.
    wait_until(lambda: port_open(second) and port_open(http), what="every listener open")
    return b


def scrape(b):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % b.http, timeout=5) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        return parse(r.read().decode("utf-8"))[1]


def http_raw(port, request, timeout=5.0):
    """Sends raw bytes, returns everything the server sends until it closes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(request)
        data, how = mqttraw.read_to_end(s, timeout)
        assert how != "timeout", "the endpoint did not close the connection"
        return data
    finally:
        s.close()


def status_of(response):
    return int(response.split(b" ", 2)[1])


def wait_metric(b, name, want, **labels):
    """Scrapes until the sample reaches `want` (counters of other workers land a moment after
    the clients saw their effect); then it must be exactly `want`."""
    wait_until(lambda: value(scrape(b), name, **labels) >= want, what="%s%r >= %s" % (name, labels, want))
    got = value(scrape(b), name, **labels)
    assert got == want, "%s%r = %s, expected %s" % (name, labels, got, want)


# ------------------------------------------------------------------ tests

def test_format_types_and_the_sys_families(broker):
    b = metrics_broker(broker)
    families, samples = parse(urllib.request.urlopen("http://127.0.0.1:%d/metrics" % b.http,
                                                     timeout=5).read().decode())
    for name, typ in [("midge_clients_connected", "gauge"), ("midge_clients_maximum", "gauge"),
                      ("midge_connections_total", "counter"), ("midge_packets_received_total", "counter"),
                      ("midge_publish_received_total", "counter"), ("midge_publish_dropped_total", "counter"),
                      ("midge_received_bytes_total", "counter"), ("midge_sent_bytes_total", "counter"),
                      ("midge_retained_messages", "gauge"), ("midge_subscriptions", "gauge"),
                      ("midge_queued_messages", "gauge"), ("midge_inflight_messages", "gauge"),
                      ("midge_uptime_seconds", "gauge"), ("midge_heap_bytes", "gauge"),
                      ("midge_listener_connections", "gauge"), ("midge_listener_received_bytes_total", "counter"),
                      ("midge_listener_publish_sent_total", "counter"),
                      ("midge_worker_loop_turn_seconds", "histogram"), ("process_resident_memory_bytes", "gauge")]:
        assert families.get(name) == typ, name
    # No store configured: no store family.
    assert "midge_store_commit_seconds" not in families
    assert value(samples, "midge_clients_connected") == 0
    if not os.environ.get("MIDGE_SANITIZED"):  # a sanitizer's allocator tells mallinfo2 nothing
        assert value(samples, "midge_heap_bytes") > 0
    assert value(samples, "process_resident_memory_bytes") > 0
    for listener in (str(b.port), str(b.second), str(b.http)):
        assert ("midge_listener_connections", frozenset({("listener", listener)})) in samples
    # This scrape only, once the readiness probe's socket is closed.
    wait_until(lambda: value(scrape(b), "midge_listener_connections", listener=str(b.http)) == 1,
               what="the probe's socket closed")
    workers = {dict(labels)["worker"] for (n, labels) in samples if n == "midge_worker_loop_turn_seconds_count"}
    assert workers and all(w.isdigit() for w in workers)
    # HEAD: the same head, no body.
    req = urllib.request.Request("http://127.0.0.1:%d/metrics" % b.http, method="HEAD")
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status == 200 and int(r.headers["Content-Length"]) > 1000 and r.read() == b""


def test_curl_scrape(broker):
    b = metrics_broker(broker)
    out = subprocess.run(["curl", "-sS", "-i", "http://127.0.0.1:%d/metrics" % b.http],
                         capture_output=True, timeout=10, check=True).stdout.decode()
    head, _, body = out.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200 OK")
    assert "Content-Type: text/plain; version=0.0.4; charset=utf-8" in head
    parse(body)


def exchange(pub, sub, qos, mid, payload):
    """One message from pub to sub at `qos`, every acknowledgement done; returns
    (bytes pub sent, bytes sub sent)."""
    packet = mqttraw.publish("m/x", payload, qos=qos, mid=mid)
    pub.publish_acked("m/x", payload, qos=qos, mid=mid)
    got = sub.recv_type(mqttraw.PUBLISH)
    assert got.payload == payload and got.qos == qos
    sub_sent = 0
    if qos == 1:
        sub.send(mqttraw.puback(got.mid))
        sub_sent = 4
    elif qos == 2:
        sub.send(mqttraw.pubrec(got.mid))
        sub.recv_type(mqttraw.PUBREL)
        sub.send(mqttraw.pubcomp(got.mid))
        sub_sent = 8
    pub_sent = len(packet) + (4 if qos == 2 else 0)  # + PUBREL
    return pub_sent, sub_sent


def test_counters_match_the_traffic_per_listener_and_qos(broker):
    b = metrics_broker(broker)
    sub = mqttraw.RawClient(b.port)
    connect_sub = mqttraw.connect("metrics-sub")
    sub.connect("metrics-sub")
    suback = sub.subscribe([("m/#", 2)])
    assert suback.codes == [2]
    pub = mqttraw.RawClient(b.second)
    connect_pub = mqttraw.connect("metrics-pub")
    pub.connect("metrics-pub")
    counts = {0: 3, 1: 4, 2: 5}
    pub_bytes, sub_bytes = len(connect_pub), len(connect_sub) + len(mqttraw.subscribe(1, [("m/#", 2)]))
    mid = 0
    for qos, n in counts.items():
        for i in range(n):
            mid += 1
            p, s = exchange(pub, sub, qos, mid, b"payload-%d-%d" % (qos, i))
            pub_bytes += p
            sub_bytes += s
    # Pinging proves the subscriber's last acknowledgement was read.
    sub.send(b"\xc0\x00")
    sub.recv_type(mqttraw.PINGRESP)
    sub_bytes += 2
    total = sum(counts.values())
    for qos, n in counts.items():
        wait_metric(b, "midge_listener_publish_received_total", n, listener=str(b.second), qos=str(qos))
        wait_metric(b, "midge_listener_publish_sent_total", n, listener=str(b.port), qos=str(qos))
    s = scrape(b)
    for qos, n in counts.items():
        assert value(s, "midge_listener_publish_received_total", listener=str(b.port), qos=str(qos)) == 0
        assert value(s, "midge_listener_publish_sent_total", listener=str(b.second), qos=str(qos)) == 0
        assert value(s, "midge_publish_received_total", qos=str(qos)) == n
        assert value(s, "midge_publish_sent_total", qos=str(qos)) == n
    # Bytes the broker read from each listener: exactly what each raw client wrote.
    assert value(s, "midge_listener_received_bytes_total", listener=str(b.second)) == pub_bytes
    assert value(s, "midge_listener_received_bytes_total", listener=str(b.port)) == sub_bytes
    # What it wrote: CONNACK 4, PUBACK 4 per QoS 1, PUBREC + PUBCOMP 8 per QoS 2 to the publisher.
    assert value(s, "midge_listener_sent_bytes_total", listener=str(b.second)) == 4 + 4 * counts[1] + 8 * counts[2]
    payload_bytes = sum(len(b"payload-%d-%d" % (q, i)) for q, n in counts.items() for i in range(n))
    assert value(s, "midge_publish_received_bytes_total") == payload_bytes
    assert value(s, "midge_publish_sent_bytes_total") == payload_bytes
    for name in ("midge_received_bytes_total", "midge_sent_bytes_total"):
        per_listener = name.replace("midge_", "midge_listener_")
        assert value(s, name) == sum(v for (n, _), v in s.items() if n == per_listener)
    # Each listener also had a readiness probe (a connection that sent nothing).
    assert value(s, "midge_listener_connections_total", listener=str(b.port)) == 2
    assert value(s, "midge_listener_connections_total", listener=str(b.second)) == 2
    wait_until(lambda: value(scrape(b), "midge_listener_connections", listener=str(b.port)) == 1,
               what="the probe's socket closed")
    assert value(s, "midge_connections_total") == 2
    assert value(s, "midge_clients_connected") == 2
    assert value(s, "midge_subscriptions") == 1
    assert value(s, "midge_inflight_messages") == 0
    assert value(s, "midge_queued_messages") == 0
    # Packets: 2 CONNECT, SUBSCRIBE, PINGREQ, the PUBLISHes, a PUBACK per QoS 1, a PUBREL,
    # PUBREC and PUBCOMP per QoS 2.
    assert value(s, "midge_packets_received_total") == 4 + total + counts[1] + 3 * counts[2]
    pub.close()
    sub.close()
    wait_metric(b, "midge_listener_connections", 0, listener=str(b.port))
    wait_metric(b, "midge_clients_connected", 0)


def test_queue_depth_and_drops_by_reason(broker):
    b = metrics_broker(broker, ["max_queued_messages 2"])
    sub = mqttraw.RawClient(b.port)
    sub.connect("metrics-offline", clean=False)
    sub.subscribe([("q", 1)])
    sub.send(mqttraw.disconnect())
    assert sub.is_closed_within(5)
    wait_metric(b, "midge_clients_disconnected", 1)
    pub = mqttraw.RawClient(b.second)
    pub.connect("metrics-queue-pub")
    for mid in range(1, 6):
        pub.publish_acked("q", b"m%d" % mid, qos=1, mid=mid)
    wait_metric(b, "midge_publish_dropped_total", 3, reason="queue_full")
    s = scrape(b)
    assert value(s, "midge_queued_messages") == 2
    # Stored: retained messages ($SYS ones, once published) and the queued ones.
    assert value(s, "midge_stored_messages") == 2 + value(s, "midge_retained_messages")
    for reason in ("output_full", "too_large", "replay_limit", "store_unavailable"):
        assert value(s, "midge_publish_dropped_total", reason=reason) == 0
    # The session comes back: its queue drains into the in-flight window.
    back = mqttraw.RawClient(b.port)
    assert back.connect("metrics-offline", clean=False).session_present
    first = back.recv_type(mqttraw.PUBLISH)
    back.recv_type(mqttraw.PUBLISH)
    wait_metric(b, "midge_inflight_messages", 2)
    assert value(scrape(b), "midge_queued_messages") == 0
    back.send(mqttraw.puback(first.mid))
    wait_metric(b, "midge_inflight_messages", 1)
    back.close()
    pub.close()


def test_disconnect_reasons(broker):
    b = metrics_broker(broker)
    c = mqttraw.RawClient(b.port)
    c.send(mqttraw.publish("t", b"x"))  # before CONNECT: a protocol error [MQTT-3.1.0-1]
    assert c.is_closed_within(5)
    wait_metric(b, "midge_disconnects_total", 1, reason="protocol_error")


def test_store_commit_latency(broker, tmp_path):
    b = metrics_broker(broker, ["persistence true", "persistence_location %s/" % tmp_path])
    sub = mqttraw.RawClient(b.port)
    sub.connect("metrics-durable", clean=False)
    sub.subscribe([("d", 1)])
    pub = mqttraw.RawClient(b.second)
    pub.connect("metrics-durable-pub")
    pub.publish_acked("d", b"kept", qos=1)
    sub.recv_type(mqttraw.PUBLISH)
    families, samples = parse(urllib.request.urlopen("http://127.0.0.1:%d/metrics" % b.http,
                                                     timeout=5).read().decode())
    assert families["midge_store_commit_seconds"] == "histogram"
    commits = sum(v for (n, _), v in samples.items() if n == "midge_store_commit_seconds_count")
    assert commits >= 1
    assert sum(v for (n, _), v in samples.items() if n == "midge_store_commit_failures_total") == 0
    sub.close()
    pub.close()


@pytest.mark.parametrize("request_bytes,status", [
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    (b"GET /metricsx HTTP/1.1\r\n\r\n", 404),
    (b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405),
    (b"DELETE /metrics HTTP/1.1\r\n\r\n", 405),
    (b"GET /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 400),
    (b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00\r\n\r\n", 400),  # an MQTT CONNECT
    (b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", 400),
], ids=["root", "other-path", "post", "delete", "body", "mqtt-connect", "oversized"])
def test_refusals_leave_mqtt_clients_alone(broker, request_bytes, status):
    b = metrics_broker(broker)
    sub = mqttraw.RawClient(b.port)
    sub.connect("bystander")
    sub.subscribe([("b", 0)])
    response = http_raw(b.http, request_bytes)
    assert status_of(response) == status, response[:200]
    if status == 405:
        assert b"Allow: GET, HEAD\r\n" in response
    pub = mqttraw.RawClient(b.second)
    pub.connect("bystander-pub")
    pub.publish("b", b"still here")
    assert sub.recv_type(mqttraw.PUBLISH).payload == b"still here"
    wait_until(lambda: "HTTP %d" % status in b.log_text(), what="the refusal in the log")
    scrape(b)  # the endpoint still answers
    sub.close()
    pub.close()


def test_a_silent_or_truncated_request_is_closed_by_the_connect_timeout(broker):
    b = metrics_broker(broker)
    s = socket.create_connection(("127.0.0.1", b.http), timeout=15)
    s.sendall(b"GET /metr")
    # The 10 s CONNECT deadline covers HTTP connections too: the socket is closed, unanswered.
    data, how = mqttraw.read_to_end(s, 15)
    assert data == b"" and how != "timeout"
    s.close()


def test_many_scrapes_in_parallel_during_traffic(broker):
    b = metrics_broker(broker)
    sub = mqttraw.RawClient(b.port)
    sub.connect("parallel-sub")
    sub.subscribe([("p", 0)])
    pub = mqttraw.RawClient(b.second)
    pub.connect("parallel-pub")

    def one(_):
        return scrape(b)

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(one, i) for i in range(64)]
        for i in range(200):
            pub.publish("p", b"%d" % i)
        results = [f.result(timeout=30) for f in futures]
    assert len(results) == 64
    for i in range(200):
        assert sub.recv_type(mqttraw.PUBLISH).payload == b"%d" % i
    wait_metric(b, "midge_publish_received_total", 200, qos="0")
    # Counters only grow from one scrape to the next.
    first, second = scrape(b), scrape(b)
    for (name, labels), v in first.items():
        if name.endswith("_total") and (name, labels) in second:
            assert second[(name, labels)] >= v, name
    assert value(second, "midge_listener_connections_total", listener=str(b.http)) >= 66
    sub.close()
    pub.close()


def test_test_config_and_help_know_protocol_http(tmp_path):
    from conftest import BROKER_BIN
    conf = tmp_path / "m.conf"
    conf.write_text("listener %d 127.0.0.1\nprotocol http\nlistener %d\nallow_anonymous true\n"
                    % (free_port(), free_port()))
    r = subprocess.run([BROKER_BIN, "--test-config", "-c", str(conf)], capture_output=True, timeout=10)
    assert r.returncode == 0, r.stdout + r.stderr
    help_text = subprocess.run([BROKER_BIN, "--help-config"], capture_output=True, timeout=10).stdout.decode()
    assert "mqtt|websockets|http" in help_text
    bad = tmp_path / "bad.conf"
    bad.write_text("listener %d\nprotocol gopher\n" % free_port())
    r = subprocess.run([BROKER_BIN, "--test-config", "-c", str(bad)], capture_output=True, timeout=10)
    assert r.returncode != 0


def test_https_with_certfile_and_keyfile(broker, tmp_path):
    import ssl
    import certs as certs_mod
    (tmp_path / "certs").mkdir()
    certs = certs_mod.make_all(tmp_path / "certs")
    http = free_port()
    b = broker(["listener %d 127.0.0.1" % http, "protocol http", "certfile " + certs["server.crt"],
                "keyfile " + certs["server.key"]])
    wait_until(lambda: port_open(http), what="the https listener open")
    context = ssl.create_default_context(cafile=certs["ca.crt"])
    with urllib.request.urlopen("https://localhost:%d/metrics" % http, context=context, timeout=5) as r:
        assert r.status == 200
        samples = parse(r.read().decode())[1]
    assert value(samples, "midge_listener_connections_total", listener=str(http)) == 2  # probe, scrape
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen("https://localhost:%d/other" % http, context=context, timeout=5)
    assert refused.value.code == 404
    assert b.alive()
