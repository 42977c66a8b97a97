"""The broker process's memory at rest (issue 14 cause T, docs/compatibility.md).

Mosquitto's 01-bad-initial-packets.py sends first packets announcing 256 MB and then wants the
broker's virtual size under 25 MB. Midge's threads share one malloc arena and have 1 MiB stacks
(server/heap.h, util/thread.h): glibc's default of a 64 MiB arena reservation and an 8 MiB
stack per thread made it 175 MB with 2 workers. The store (RocksDB, 11 MB of address space with
the libraries it needs) is a module loaded only with `persistence true` (server/store_module.h):
without it Midge is under Mosquitto's bound.
"""
import os
import socket

import pytest

from conftest import IS_MOSQUITTO, wait_until
import mqttraw

# Mosquitto's limit in 01-bad-initial-packets.py (bytes, as psutil reports the virtual size).
VSZ_LIMIT = 25_000_000
SANITIZED = os.environ.get("MIDGE_SANITIZED") == "1"


def vm_size(pid):
    """Virtual size of the process in bytes (VmSize, what psutil calls vms)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmSize for %d" % pid)


def mapped_bytes(pid, library):
    """Address space of the mappings of files whose name contains `library`."""
    total = 0
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            fields = line.split()
            if len(fields) > 5 and library in fields[5]:
                start, end = (int(x, 16) for x in fields[0].split("-"))
                total += end - start
    return total


def thread_count(pid):
    return len(os.listdir("/proc/%d/task" % pid))


@pytest.mark.skipif(SANITIZED, reason="the sanitizers reserve terabytes of shadow memory")
def test_virtual_size_at_rest_after_bogus_first_packets(broker):
    """As 01-bad-initial-packets.py: a first packet of every type but CONNECT, each announcing
    a remaining length of 256 MB followed by 1 MB of it, on 14 connections, with the default
    thread count; the virtual size stays under 25 MB, and without persistence librocksdb.so is
    not mapped at all (the store module is loaded only with `persistence true`). The
    connections go round the workers, so that each has allocated (and, with glibc's default,
    reserved an arena of its own). Up to about 6 workers (one per core by default)."""
    b = broker(["sys_interval 1"])
    socks = []
    try:
        for kind in range(0x20, 0x100, 0x10):
            s = socket.create_connection(("127.0.0.1", b.port), timeout=10)
            socks.append(s)
            try:
                s.sendall(bytes([kind]) + b"\x80\x80\x80t" + b"\x01" * 1_000_000)
            except (ConnectionResetError, BrokenPipeError):
                pass  # the broker closed it at once: what it should do
        size = vm_size(b.pid)
        rocksdb = mapped_bytes(b.pid, "librocksdb")
        threads = thread_count(b.pid)
    finally:
        for s in socks:
            s.close()
    print("VmSize %.1f MB with %d threads" % (size / 1e6, threads))
    if not IS_MOSQUITTO:
        assert threads >= 2, "the broker's workers did not start"
    assert rocksdb == 0, "librocksdb is mapped (%.1f MB) without persistence" % (rocksdb / 1e6)
    assert size < VSZ_LIMIT, "virtual size %.1f MB (%d threads)" % (size / 1e6, threads)


@pytest.mark.midge_only(reason="Mosquitto keeps its store itself; Midge's is RocksDB in a module")
def test_store_module_is_mapped_with_persistence(broker, tmp_path):
    """The check above can fail: with `persistence true` the store module and librocksdb.so
    are mapped (test_persistence.py shows the store they make works)."""
    store = tmp_path / "store"
    store.mkdir()
    b = broker(["persistence true", "persistence_location %s/" % store])
    assert mapped_bytes(b.pid, "midge_store.so") > 0
    assert mapped_bytes(b.pid, "librocksdb") > 0


def unread_bytes(port, client_ports):
    """Bytes that the broker's end of each of these TCP connections has not yet read, from
    /proc/net/tcp (rx_queue of an established socket), summed; and how many were found."""
    want = {("%04X" % port, "%04X" % p) for p in client_ports}
    unread, found = 0, 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, remote = fields[1].split(":")[1], fields[2].split(":")[1]
            if (local, remote) in want:
                unread += int(fields[4].split(":")[1], 16)
                found += 1
    return unread, found


HAVE = 60_000  # bytes of each packet sent
BUDGET = 256 * 1024  # src/net/connection.cc kReadBudget


@pytest.mark.skipif(SANITIZED, reason="the sanitizers reserve terabytes of shadow memory")
@pytest.mark.midge_only(reason="Mosquitto allocates the whole remaining length as the header "
                               "arrives (40 x 200 MB of address space here)")
@pytest.mark.parametrize("announced", [200_000_000, HAVE + 4 * BUDGET, HAVE + BUDGET - 100,
                                       HAVE + 100_000])
def test_a_packet_announced_but_not_sent_reserves_at_most_one_read_budget(broker, raw, announced):
    """README "Memory limits": the rest of a packet split by a read waits in a buffer that grows
    with the bytes that come, or in a block of its own allocated for the whole packet when at most
    one read budget (256 KiB) of it is missing. So 40 clients that each announce a PUBLISH of
    `announced` bytes and send 60 KB of it make the broker reserve at most 40 x (60 KB + 256 KiB)
    of address space (VmSize, which counts untouched pages too), not 40 x the announced size."""
    b = broker()
    clients = []
    for i in range(40):
        r = raw(b.port)
        r.connect("reserve-%d" % i)
        clients.append(r)
    before = vm_size(b.pid)
    head = mqttraw.publish("t", b"")
    topic = head[2:]  # topic length and topic, no payload
    start = bytes([0x30]) + mqttraw.varint(announced) + topic
    for r in clients:
        r.send(start + b"p" * (HAVE - len(start)))
    ports = [r.sock.getsockname()[1] for r in clients]
    wait_until(lambda: unread_bytes(b.port, ports) == (0, len(ports)), timeout=10,
               what="the broker to read every client's bytes")
    grown = vm_size(b.pid) - before
    print("announced %d: VmSize grew %.1f MB" % (announced, grown / 1e6))
    assert grown <= 40 * (HAVE + BUDGET) + 16 * 1024 * 1024, grown
    assert b.alive()
