"""Clients spread over several workers (thread_count 4, a Midge extension): routing, retained
messages, $share groups, takeover and wills must cross workers.

A session lives on the worker that owns its client id (broker::Broker::worker_for). Rather than
copying that hash here, the tests look where each connection really is: every worker has its
own epoll instance, and /proc/<pid>/fdinfo of an epoll fd lists the sockets it watches. Client
ids are then chosen by probing, so the tests hold whatever the placement function becomes.
"""
import os
import threading

import pytest

import mqttraw as m
from conftest import V311, V5, wait_until

pytestmark = pytest.mark.midge_only  # thread_count and /proc placement are Midge's own

WORKERS = 4


def _tcp_peer_ports():
    """inode -> remote port of every TCP socket of this machine (IPv4 and IPv6)."""
    out = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(name) as f:
            next(f)
            for line in f:
                cols = line.split()
                out[int(cols[9])] = int(cols[2].rsplit(":", 1)[1], 16)
    return out


def placement(pid):
    """{client port: epoll fd of the worker watching that client's socket} for broker pid."""
    fd_dir = "/proc/%d/fd" % pid
    inode_of_fd, epolls = {}, []
    for name in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, name))
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inode_of_fd[int(name)] = int(target[8:-1])
        elif target == "anon_inode:[eventpoll]":
            epolls.append(int(name))
    peer = _tcp_peer_ports()
    out = {}
    for ep in epolls:
        try:
            with open("/proc/%d/fdinfo/%d" % (pid, ep)) as f:
                for line in f:
                    if line.startswith("tfd:"):
                        inode = inode_of_fd.get(int(line.split()[1]))
                        if inode in peer:
                            out[peer[inode]] = ep
        except OSError:
            continue
    return out


def worker_of(b, local_port):
    """The worker (its epoll fd) serving the client whose socket has `local_port`."""
    return wait_until(lambda: placement(b.pid).get(local_port), 5,
                      what="connection from port %d in a worker's epoll set" % local_port)


def paho_port(c):
    return c.paho.socket().getsockname()[1]


def ids_by_worker(b, raw, per_worker=1, prefix="w"):
    """Probes client ids until `per_worker` ids are known for each of the WORKERS workers.
    Returns [[ids of worker 0], [ids of worker 1], ...] (workers in no particular order)."""
    found = {}
    for i in range(200):
        cid = "%s-%d" % (prefix, i)
        r = raw(b.port)
        assert r.connect(cid).rc == 0
        ids = found.setdefault(worker_of(b, r.sock.getsockname()[1]), [])
        r.send(m.disconnect())
        r.wait_closed(5)
        if len(ids) < per_worker:
            ids.append(cid)
        if len(found) == WORKERS and all(len(v) == per_worker for v in found.values()):
            return list(found.values())
    pytest.fail("200 client ids landed on only %d worker(s): %r" % (len(found), found))


def spread_clients(b, connected, ids, version=V311, **kw):
    """Connects one client per id and checks that they sit on WORKERS different workers."""
    clients = [connected(b.port, version, cid, **kw) for cid in ids]
    assert len({worker_of(b, paho_port(c)) for c in clients}) == WORKERS
    return clients


@pytest.fixture
def b(broker):
    return broker(["thread_count %d" % WORKERS])


def test_routing_between_all_workers(b, raw, connected):
    """Every publisher reaches every subscriber, whatever worker either lives on, at every QoS,
    in order per publisher and QoS [MQTT-4.6.0-6] (paho hands a QoS 2 message over only at
    PUBREL, so the order across QoS levels is the client's, not the broker's)."""
    groups = ids_by_worker(b, raw, per_worker=2)
    subs = spread_clients(b, connected, [g[0] for g in groups])
    pubs = spread_clients(b, connected, [g[1] for g in groups])
    for s in subs:
        s.subscribe("route/#", 2)
    for i, p in enumerate(pubs):
        for n in range(6):
            p.publish("route/%d" % i, b"%d" % n, qos=n % 3)
    for s in subs:
        msgs = s.wait_messages(6 * WORKERS)
        s.expect_nothing(0.2)
        for i in range(WORKERS):
            for qos in range(3):
                got = [x.payload for x in s.messages("route/%d" % i) if x.qos == qos]
                assert got == [b"%d" % n for n in range(qos, 6, 3)], (i, qos, got)


def test_retained_set_and_cleared_from_other_workers(b, raw, connected):
    groups = ids_by_worker(b, raw)
    owner, reader1, clearer, reader2 = (g[0] for g in groups)
    p = connected(b.port, V311, owner)
    p.publish("ret/x", b"kept", qos=1, retain=True)
    r1 = connected(b.port, V311, reader1)
    r1.subscribe("ret/#", 1)
    (msg,) = r1.wait_messages(1)
    assert (msg.topic, msg.payload, msg.retain) == ("ret/x", b"kept", True)
    c = connected(b.port, V311, clearer)
    c.publish("ret/x", b"", qos=1, retain=True)  # an empty retained message clears [MQTT-3.3.1-6]
    r2 = connected(b.port, V311, reader2)
    r2.subscribe("ret/#", 1)
    r2.expect_nothing(0.3)
    assert len({worker_of(b, paho_port(x)) for x in (p, r1, c, r2)}) == WORKERS


def test_shared_group_members_on_every_worker(b, raw, connected):
    """Each message goes to exactly one member of the group [MQTT-4.8.2], members on 4 workers;
    when a member leaves, the others get everything."""
    groups = ids_by_worker(b, raw, per_worker=2)
    members = spread_clients(b, connected, [g[0] for g in groups], V5)
    for s in members:
        s.subscribe("$share/g/shared/#", 1)
    pub = connected(b.port, V311, groups[0][1])
    for n in range(40):
        pub.publish("shared/t", b"%d" % n, qos=1)
    wait_until(lambda: sum(len(s.messages()) for s in members) >= 40, 5, what="40 deliveries")
    for s in members:
        s.expect_nothing(0.1)
    got = [x.payload for s in members for x in s.messages()]
    assert sorted(got) == sorted(b"%d" % n for n in range(40))
    assert all(s.messages() for s in members), [len(s.messages()) for s in members]
    members[1].disconnect()
    before = [len(s.messages()) for s in members]
    for n in range(40, 60):
        pub.publish("shared/t", b"%d" % n, qos=1)
    wait_until(lambda: sum(len(s.messages()) for s in members) - sum(before) >= 20, 5,
               what="20 deliveries after a member left")
    for s in members:
        s.expect_nothing(0.1)
    assert len(members[1].messages()) == before[1]
    later = [x.payload for s in members for x in s.messages()[before[members.index(s)]:]]
    assert sorted(later) == sorted(b"%d" % n for n in range(40, 60))


def test_takeover_from_every_accepting_worker(b, raw, connected, client):
    """Sockets are accepted by the workers in turn; a CONNECT for a session is handed to the
    worker owning it, wherever it was accepted. Four takeovers in a row, so each of the four
    accepting workers hands one over: the old connection is closed [MQTT-3.1.4-3], the session
    and its subscription are kept and serve the new connection only."""
    (cid,), (pub_id,) = ids_by_worker(b, raw)[:2]
    pub = connected(b.port, V311, pub_id)
    old = connected(b.port, V311, cid, clean=False)
    old.subscribe("take/#", 1)
    home = worker_of(b, paho_port(old))
    for n in range(WORKERS):
        new = client(b.port, V311, cid, clean=False)
        flags, _, _ = new.connect()
        assert flags["session present"] == 1
        old.wait_disconnected()
        assert worker_of(b, paho_port(new)) == home
        pub.publish("take/t", b"%d" % n, qos=1)
        want = b"%d" % n
        new.ev.wait_for(lambda: want in [x.payload for x in new.ev.messages], 5.0, what=want)
        got = [x.payload for x in new.messages()]
        # The previous message comes again when its PUBACK had not reached the
        # broker before the takeover: QoS 1 resumes what is unacknowledged
        # [MQTT-4.4.0-1]. Nothing else may arrive, and the new one only once.
        assert got.count(want) == 1 and set(got) <= {b"%d" % i for i in range(n + 1)}, got
        old.stop()
        old = new
    old.expect_nothing(0.2)


def test_will_reaches_watchers_on_every_worker(b, raw, connected):
    groups = ids_by_worker(b, raw, per_worker=2)
    watchers = spread_clients(b, connected, [g[0] for g in groups])
    for w in watchers:
        w.subscribe("will/#", 1)
    for g in groups:  # a will from each worker
        c = raw(b.port)
        assert c.connect(g[1], will={"topic": "will/" + g[1], "payload": b"gone", "qos": 1,
                                     "retain": False, "properties": []}).rc == 0
        c.abort()
    for w in watchers:
        msgs = w.wait_messages(WORKERS)
        assert sorted(x.topic for x in msgs) == sorted("will/" + g[1] for g in groups)


# ------------------------------------------------------------------ mailbox back-pressure

_SYS_EPOLL_WAIT = {232, 281, 441}  # x86_64 epoll_wait, epoll_pwait, epoll_pwait2
_PTRACE_DETACH, _PTRACE_SEIZE, _PTRACE_INTERRUPT = 17, 0x4206, 0x4207
_WALL = 0x40000000


def thread_waiting_on(pid, epfd):
    """The thread of `pid` blocked in epoll_wait on `epfd` (an idle worker), or None."""
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/syscall" % (pid, tid)) as f:
                fields = f.read().split()
        except OSError:
            continue
        if len(fields) > 1 and fields[0].isdigit() and int(fields[0]) in _SYS_EPOLL_WAIT \
                and int(fields[1], 16) == epfd:
            return int(tid)
    return None


class StoppedThread:
    """Stops one thread of a child process (ptrace seize + interrupt) until resume()."""

    def __init__(self, tid):
        import ctypes
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.tid = tid
        if self.libc.ptrace(_PTRACE_SEIZE, tid, None, None) != 0:
            pytest.skip("ptrace refused (errno %d): cannot stop one worker" % ctypes.get_errno())
        assert self.libc.ptrace(_PTRACE_INTERRUPT, tid, None, None) == 0
        os.waitpid(tid, _WALL)

    def resume(self):
        if self.tid is not None:
            assert self.libc.ptrace(_PTRACE_DETACH, self.tid, None, None) == 0
            self.tid = None


def test_mailbox_back_pressure_pauses_publishers(b, raw):
    """src/net/worker.cc kInboxLimit: while worker B has more than 50,000 messages from worker A
    still to run, A stops reading its sockets. B is frozen (ptrace) so that its mailbox can only
    grow: after 150,000 QoS 0 PUBLISH for B's subscriber, A must stop reading the publisher, so
    its PINGREQ, sent after them, is not answered until B runs again."""
    (sub_id,), (pub_id,) = ids_by_worker(b, raw)[:2]
    sub = raw(b.port)
    sub.connect(sub_id)
    assert sub.subscribe([("bp/t", 0)]).codes == [0]
    pub = raw(b.port, timeout=30)
    pub.connect(pub_id)
    home = worker_of(b, sub.sock.getsockname()[1])
    tid = wait_until(lambda: thread_waiting_on(b.pid, home), 5, what="the subscriber's worker idle")
    frozen = StoppedThread(tid)
    try:
        burst = m.publish("bp/t", b"x") * 150000 + m.PINGREQ_BYTES
        out = pub.sock.dup()  # its own timeout: sendall blocks while the broker does not read
        out.settimeout(60)
        sender = threading.Thread(target=out.sendall, args=(burst,), daemon=True)
        sender.start()
        assert pub.try_recv(1.0) is None, "PINGREQ answered: the publisher's worker kept reading"
    finally:
        frozen.resume()
    assert pub.recv(30).type == m.PINGRESP
    sender.join(30)
    assert not sender.is_alive()
    out.close()
    assert sub.recv(30).type == m.PUBLISH  # B runs its mailbox again
