"""Keepalive: disconnect after 1.5 x keepalive; PINGREQ keeps alive; max_keepalive."""
import threading
import time

import pytest

import mqttraw as m


def close_times(port, specs):
    """specs: list of (proto, keepalive, connect properties). Connects all at once, sends
    nothing more, and returns for each (seconds until the broker closed, packets before)."""
    out = [None] * len(specs)

    def one(i, proto, ka, props):
        c = m.RawClient(port, proto)
        c.connect("ka%d" % i, keepalive=ka, properties=props)
        t0 = time.monotonic()
        try:
            pkts = c.wait_closed(9)
            out[i] = (time.monotonic() - t0, pkts)
        except TimeoutError:
            out[i] = (None, [])
        c.close()

    threads = [threading.Thread(target=one, args=(i,) + s) for i, s in enumerate(specs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_keepalive_timeout_closes_connection(broker):
    """[MQTT-3.1.2-24]: no packet within 1.5 x Keep Alive -> the server closes the connection.
    Mosquitto only checks periodically, so the upper bound here is loose."""
    b = broker()
    res = close_times(b.port, [(4, 1, None), (5, 1, None), (3, 2, None)])
    for (elapsed, pkts), ka in zip(res, (1, 1, 2)):
        assert elapsed is not None, "connection never closed"
        assert elapsed >= 1.5 * ka - 0.1, elapsed
    # v5 may say why first: DISCONNECT 0x8D Keep Alive timeout
    for p in res[1][1]:
        assert p.type == m.DISCONNECT and p.rc == 0x8D


@pytest.mark.serial  # an upper bound on the close time
@pytest.mark.midge_only
def test_keepalive_timeout_punctual(broker):
    """Midge closes within 1.5 x keepalive + 0.5 s (Mosquitto 2.0.11 takes up to ~6 s)."""
    b = broker()
    res = close_times(b.port, [(4, 1, None), (5, 2, None), (5, 1, None)])
    for (elapsed, _), ka in zip(res, (1, 2, 1)):
        assert elapsed is not None
        assert 1.5 * ka - 0.1 <= elapsed <= 1.5 * ka + 0.5, (ka, elapsed)
    assert [(p.type, p.rc) for p in res[1][1]] == [(m.DISCONNECT, 0x8D)]


def test_pingreq_keeps_connection_alive(broker, raw):
    b = broker()
    c = raw(b.port, 4)
    c.connect("pinger", keepalive=1)
    for _ in range(5):  # 2.5 s > 1.5 x keepalive
        time.sleep(0.5)
        c.send(m.PINGREQ_BYTES)
        assert c.recv_raw(2) == b"\xd0\x00"  # PINGRESP


def test_max_keepalive_server_keep_alive(broker, raw):
    b = broker(["max_keepalive 10"])
    for ka, expect in ((60, 10), (0, 10), (5, (None, 5))):
        c = raw(b.port, 5)
        ack = c.connect("mk%d" % ka, keepalive=ka)
        assert ack.rc == 0
        got = ack.prop(m.P_SERVER_KEEP_ALIVE)
        if isinstance(expect, tuple):
            assert got in expect, (ka, got)
        else:
            assert got == expect, (ka, got)  # [MQTT-3.2.2-21]
        c.close()
