"""password_file and allow_anonymous, against Mosquitto 2.0.11's behaviour, and midge_passwd
against mosquitto_passwd.

Facts found by experiment with Debian 12's /usr/sbin/mosquitto 2.0.11:
- every authentication refusal is "not authorised": 3.1.1 return code 5, 5.0 reason 0x87 (never
  4 / 0x86 "bad user name or password");
- an absent or empty user name is anonymous: allowed iff allow_anonymous, whatever the file says;
- with a password file, a named client needs its user in the file and the right password, even
  with allow_anonymous true; a user name without a password is refused;
- allow_anonymous false without any password file refuses every client, named or not;
- a password file that cannot be opened stops the start-up (exit code 13); bad lines in it only
  drop those entries; SIGHUP re-reads it.
"""
import base64
import hashlib
import os
import signal
import subprocess
import time

import pytest

from conftest import tools_dir, IS_MOSQUITTO, REPO, free_port, port_open, wait_until, V311, V5
import mqttraw

MOSQUITTO = "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = "/usr/bin/mosquitto_passwd"


TOOLS = tools_dir("midge_passwd")
needs_midge_passwd = pytest.mark.skipif(TOOLS is None, reason="midge_passwd not built")


def midge_passwd():
    return os.path.join(TOOLS, "midge_passwd")


def run(argv, input=None):
    return subprocess.run(argv, input=input, capture_output=True, timeout=30)


def make_file(path, users, tool=MOSQUITTO_PASSWD):
    """users: list of (name, password); the first creates the file."""
    for i, (name, password) in enumerate(users):
        argv = [tool] + (["-c"] if i == 0 else []) + ["-b", str(path), name, password]
        res = run(argv)
        assert res.returncode == 0, res.stderr
    return str(path)


def check_line(line, user, password):
    """Verifies one password file line independently of both tools (hashlib)."""
    name, _, h = line.strip().partition(":")
    assert name == user
    fields = h.split("$")
    if fields[1] == "6":
        salt, digest = base64.b64decode(fields[2]), base64.b64decode(fields[3])
        return hashlib.sha512(password.encode() + salt).digest() == digest
    assert fields[1] == "7", h
    iterations, salt, digest = int(fields[2]), base64.b64decode(fields[3]), base64.b64decode(fields[4])
    return hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64) == digest


def connack(port, proto, **kw):
    r = mqttraw.RawClient(port, proto)
    try:
        return r.connect("auth-test", **kw).rc
    finally:
        r.close()


REFUSED = {3: 5, 4: 5, 5: 0x87}


def auth_conf(*lines):
    """Broker config lines; Mosquitto started as root drops to user 'mosquitto', which cannot
    read tmp_path, unless told to stay root."""
    return list(lines) + (["user root"] if IS_MOSQUITTO and os.getuid() == 0 else [])


@pytest.fixture
def pwfile(tmp_path):
    return make_file(tmp_path / "passwd", [("sondes", "mot2passe"), ("autre", "secret")])


# ------------------------------------------------------------------ broker

def test_tutorial_flow(broker, mosq, tmp_path):
    # mosquitto_passwd -c asks the password twice (read from stdin when it is not a terminal).
    path = str(tmp_path / "passwd")
    res = run([MOSQUITTO_PASSWD, "-c", path, "sondes"], input=b"mot2passe\nmot2passe\n")
    assert res.returncode == 0, res.stderr
    b = broker(auth_conf("allow_anonymous false", "password_file " + path))
    sub = mosq.sub(b.port, "-t", "capteurs/#", "-u", "sondes", "-P", "mot2passe", "-v")
    deadline = time.monotonic() + 5
    while True:  # until the subscription is in place
        mosq.pub(b.port, "-t", "capteurs/t", "-m", "21.5", "-u", "sondes", "-P", "mot2passe")
        if sub.wait_lines(1, timeout=0.3, fail=False) or time.monotonic() > deadline:
            break
    assert sub.wait_lines(1)[0] == "capteurs/t 21.5"
    # mosquitto_pub exits with the CONNACK code.
    for version, code in (("mqttv311", 5), ("mqttv5", 135)):
        for creds in (["-u", "sondes", "-P", "faux"], ["-u", "intrus", "-P", "x"], []):
            res = mosq.pub(b.port, "-V", version, "-t", "t", "-m", "m", *creds, check=False)
            assert res.returncode == code, (version, creds, res.stderr)


@pytest.mark.parametrize("proto", [3, 4, 5])
def test_refusals_with_password_file(broker, pwfile, proto):
    b = broker(auth_conf("allow_anonymous false", "password_file " + pwfile))
    no = REFUSED[proto]
    assert connack(b.port, proto, username="sondes", password="mot2passe") == 0
    assert connack(b.port, proto, username="autre", password="secret") == 0
    assert connack(b.port, proto, username="sondes", password="secret") == no  # other's password
    assert connack(b.port, proto, username="sondes", password="") == no
    assert connack(b.port, proto, username="sondes") == no  # no password at all
    assert connack(b.port, proto, username="nobody", password="x") == no
    assert connack(b.port, proto) == no  # anonymous
    assert connack(b.port, proto, username="", password="mot2passe") == no
    if proto == 5:  # a password without user name is legal in 5.0 only
        assert connack(b.port, proto, password="mot2passe") == no


@pytest.mark.parametrize("proto", [4, 5])
def test_allow_anonymous_true_with_password_file(broker, pwfile, proto):
    b = broker(auth_conf("allow_anonymous true", "password_file " + pwfile))
    no = REFUSED[proto]
    assert connack(b.port, proto) == 0  # anonymous accepted
    assert connack(b.port, proto, username="") == 0  # empty user name counts as anonymous
    assert connack(b.port, proto, username="", password="anything") == 0
    assert connack(b.port, proto, username="sondes", password="mot2passe") == 0
    assert connack(b.port, proto, username="sondes", password="faux") == no  # file still checked
    assert connack(b.port, proto, username="nobody", password="x") == no
    assert connack(b.port, proto, username="sondes") == no


@pytest.mark.parametrize("proto", [4, 5])
def test_empty_password_never_matches(broker, tmp_path, proto):
    # Mosquitto reads a zero-length password as none: even a user whose hash is that of the empty
    # password cannot log in with it (Mosquitto's 09-pwfile-parse-invalid.py).
    path = make_file(tmp_path / "passwd", [("vide", ""), ("sondes", "mot2passe")])
    b = broker(auth_conf("allow_anonymous false", "password_file " + path))
    no = REFUSED[proto]
    assert connack(b.port, proto, username="vide", password="") == no
    assert connack(b.port, proto, username="vide") == no
    assert connack(b.port, proto, username="sondes", password="mot2passe") == 0


@pytest.mark.parametrize("proto", [4, 5])
def test_allow_anonymous_false_without_password_file(broker, proto):
    b = broker(auth_conf("allow_anonymous false"))
    no = REFUSED[proto]
    assert connack(b.port, proto) == no
    assert connack(b.port, proto, username="sondes", password="mot2passe") == no
    assert connack(b.port, proto, username="sondes") == no


@pytest.mark.parametrize("proto", [4, 5])
def test_per_listener_settings_keep_each_listener_its_own(broker, pwfile, proto):
    # One listener open to anonymous clients, the other only to the password file's users:
    # neither setting leaks to the other listener (per_listener_settings true).
    open_port, closed_port = free_port(), free_port()
    b = broker(auth_conf("per_listener_settings true",
                         "listener %d 127.0.0.1" % open_port, "allow_anonymous true",
                         "listener %d 127.0.0.1" % closed_port, "password_file " + pwfile),
               port=closed_port, listener=False)
    wait_until(lambda: port_open(open_port), what="the second listener")
    no = REFUSED[proto]
    assert connack(open_port, proto) == 0
    assert connack(open_port, proto, username="intrus", password="x") == 0  # no file to check it
    assert connack(closed_port, proto) == no  # allow_anonymous unset there: false
    assert connack(closed_port, proto, username="sondes", password="mot2passe") == 0
    assert connack(closed_port, proto, username="sondes", password="faux") == no
    assert connack(closed_port, proto, username="intrus", password="x") == no
    assert b.alive()


def test_no_password_file_allow_anonymous_true_accepts_any_name(broker):
    b = broker([])
    assert connack(b.port, 4, username="sondes", password="whatever") == 0
    assert connack(b.port, 5, username="sondes") == 0


def test_sha512_and_iterations_entries(broker, tmp_path):
    path = str(tmp_path / "passwd")
    make_file(path, [("a", "pa")])
    assert run([MOSQUITTO_PASSWD, "-H", "sha512", "-b", path, "b", "pb"]).returncode == 0
    assert run([MOSQUITTO_PASSWD, "-I", "20000", "-b", path, "c", "pc"]).returncode == 0
    b = broker(auth_conf("allow_anonymous false", "password_file " + path))
    for user in "abc":
        assert connack(b.port, 4, username=user, password="p" + user) == 0
        assert connack(b.port, 4, username=user, password="p" + user) == 0  # again (cached)
        assert connack(b.port, 4, username=user, password="x" + user) == 5


def test_missing_password_file_refuses_to_start(broker, tmp_path):
    missing = str(tmp_path / "nope")
    b = broker(auth_conf("allow_anonymous false", "password_file " + missing), start=False)
    b.start(wait=False)
    assert b.proc.wait(10) == 13
    b.proc = None
    b.logf.close()
    assert 'Unable to open pwfile "%s"' % missing in b.log_text()


def test_malformed_lines_are_skipped(broker, tmp_path, pwfile):
    lines = open(pwfile).read().splitlines()
    path = tmp_path / "mixed"
    path.write_text("# comment\n\nnocolon\nplain:text\n" + lines[0] + "\r\nbad:$7$0$abc$def\n"
                    + lines[1] + "\n")
    b = broker(auth_conf("allow_anonymous false", "password_file " + str(path)))
    assert connack(b.port, 4, username="sondes", password="mot2passe") == 0
    assert connack(b.port, 4, username="autre", password="secret") == 0
    assert connack(b.port, 4, username="plain", password="text") == 5
    if not IS_MOSQUITTO:
        log = b.log_text()
        assert "%s:4: Invalid password hash type for user plain" % path in log
        assert "%s:6: Invalid hash iterations for user bad" % path in log


def test_sighup_reloads_password_file(broker, tmp_path):
    path = make_file(tmp_path / "passwd", [("sondes", "mot2passe")])
    b = broker(auth_conf("allow_anonymous false", "password_file " + path))
    assert connack(b.port, 4, username="nouveau", password="pw") == 5
    assert run([MOSQUITTO_PASSWD, "-b", path, "nouveau", "pw"]).returncode == 0
    assert run([MOSQUITTO_PASSWD, "-D", path, "sondes"]).returncode == 0
    b.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: connack(b.port, 4, username="nouveau", password="pw") == 0,
               what="new user accepted after SIGHUP")
    assert connack(b.port, 5, username="sondes", password="mot2passe") == 0x87


@pytest.mark.midge_only
def test_sighup_with_unreadable_file_keeps_old_users(broker, tmp_path):
    """A SIGHUP whose password file cannot be read keeps the users loaded before (a Midge
    choice, see the README; Mosquitto 2.0.11 drops them) and logs Midge's own messages."""
    path = make_file(tmp_path / "passwd", [("sondes", "mot2passe")])
    b = broker(auth_conf("allow_anonymous false", "password_file " + path))
    os.rename(path, path + ".moved")
    b.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "not reloaded" in b.log_text(), what="reload error logged")
    assert connack(b.port, 4, username="sondes", password="mot2passe") == 0
    os.rename(path + ".moved", path)
    assert run([MOSQUITTO_PASSWD, "-b", path, "nouveau", "pw"]).returncode == 0
    b.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "Reloaded password file" in b.log_text(), what="reload logged")
    assert connack(b.port, 4, username="nouveau", password="pw") == 0


@pytest.mark.midge_only
def test_sighup_storm_with_password_file(broker, tmp_path):
    # Every SIGHUP must reach the main thread, even one arriving while it reloads: none may take
    # its default action (ending the process) on another thread, such as a password hashing one.
    path = make_file(tmp_path / "passwd", [("sondes", "mot2passe")])
    with open(path, "a") as f:  # a long file: each reload takes a while
        for i in range(5000):
            salt = os.urandom(12)
            digest = hashlib.sha512(b"pw" + salt).digest()
            f.write("u%d:$6$%s$%s\n" % (i, base64.b64encode(salt).decode(), base64.b64encode(digest).decode()))
    b = broker(auth_conf("allow_anonymous false", "password_file " + path))
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and b.alive():
        b.proc.send_signal(signal.SIGHUP)
        time.sleep(0.0005)
    assert b.alive(), b.log_tail()
    wait_until(lambda: "Reloaded password file" in b.log_text(), what="a reload logged")
    assert connack(b.port, 4, username="sondes", password="mot2passe") == 0


@needs_midge_passwd
def test_midge_passwd_file_works_with_both_brokers(broker, tmp_path):
    path = str(tmp_path / "passwd")
    make_file(path, [("sondes", "mot2passe"), ("autre", "secret")], tool=midge_passwd())
    assert run([midge_passwd(), "-H", "sha512", "-b", path, "vieux", "v"]).returncode == 0
    b = broker(auth_conf("allow_anonymous false", "password_file " + path))
    port = free_port()
    conf = tmp_path / "real-mosquitto.conf"
    conf.write_text("listener %d 127.0.0.1\nallow_anonymous false\npassword_file %s\nuser root\n" % (port, path))
    real = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: port_open(port), what="mosquitto listening")
        for p in (b.port, port):
            for proto in (4, 5):
                assert connack(p, proto, username="sondes", password="mot2passe") == 0
                assert connack(p, proto, username="autre", password="secret") == 0
                assert connack(p, proto, username="vieux", password="v") == 0
                assert connack(p, proto, username="sondes", password="secret") == REFUSED[proto]
    finally:
        real.terminate()
        real.wait(10)


# ------------------------------------------------------------------ midge_passwd vs mosquitto_passwd

def both(argv_tail, tmp_path, setup=None, input=None):
    """Runs mosquitto_passwd and midge_passwd with the same arguments, each in its own copy of
    the directory (FILE in argv_tail stands for the password file). Returns both results and
    the file contents afterwards."""
    out = []
    for name, tool in (("mosq", MOSQUITTO_PASSWD), ("midge", midge_passwd())):
        d = tmp_path / name
        d.mkdir(parents=True)
        f = d / "passwd"
        if setup:
            f.write_text(setup)
        argv = [tool] + [str(f) if a == "FILE" else a for a in argv_tail]
        res = run(argv, input=input)
        text = f.read_text() if f.exists() else None
        out.append((res.returncode, res.stdout, res.stderr.replace(str(f).encode(), b"FILE"), text))
    return out


@needs_midge_passwd
@pytest.mark.parametrize("argv", [
    ["-b", "FILE", "a", "b"],            # file missing
    ["-D", "FILE", "zz"],
    ["-c", "-D", "FILE", "zz"],
    ["-c", "FILE"],
    ["-c", "-b", "FILE", "a"],
    ["-b", "FILE", "a:b", "c"],
    ["-b", "FILE", "a\tb", "c"],
    ["-I", "0", "-b", "FILE", "h", "i"],
    ["-I", "abc", "FILE", "h"],
    ["-H", "foo", "-b", "FILE", "h", "i"],
    ["-H"], ["-I"],
    ["-c", "-U", "FILE"], ["-D", "-b", "FILE", "a"], ["-D", "FILE"], ["-U"], ["-U", "FILE", "a"],
])
def test_passwd_argument_errors_match(tmp_path, argv):
    mosq, midge = both(argv, tmp_path)
    assert midge[0] == mosq[0]
    assert midge[2] == mosq[2]
    assert midge[3] == mosq[3]


@needs_midge_passwd
def test_passwd_usage(tmp_path):
    for argv in ([], ["FILE"], ["-b", "FILE", "a", "b", "c"]):
        mosq, midge = both(argv, tmp_path / str(len(argv)))
        assert midge[0] == mosq[0] == 1
        assert b"Usage: midge_passwd [-H sha512 | -H sha512-pbkdf2] [-c | -D] passwordfile" in midge[1]


@needs_midge_passwd
def test_passwd_create_update_delete(tmp_path):
    tool = midge_passwd()
    path = str(tmp_path / "passwd")
    assert run([tool, "-c", "-b", path, "a", "pa"]).returncode == 0
    assert run([tool, "-b", path, "b", "pb"]).returncode == 0
    assert run([tool, "-H", "sha512", "-b", path, "c", "pc"]).returncode == 0
    assert run([tool, "-I", "500", "-b", path, "a", "new"]).returncode == 0  # update in place
    lines = open(path).read().splitlines()
    assert [l.split(":")[0] for l in lines] == ["a", "b", "c"]
    assert lines[0].split("$")[1:3] == ["7", "500"]
    assert lines[1].split("$")[1:3] == ["7", "210000"]  # Mosquitto 2.1's default, not 2.0.11's 101
    assert lines[2].split("$")[1] == "6"
    assert len(base64.b64decode(lines[1].split("$")[3])) == 12
    assert check_line(lines[0], "a", "new") and check_line(lines[1], "b", "pb")
    assert check_line(lines[2], "c", "pc")
    # mosquitto_passwd edits the file midge_passwd wrote, and the other way round.
    assert run([MOSQUITTO_PASSWD, "-D", path, "b"]).returncode == 0
    res = run([tool, "-D", path, "b"])
    assert res.returncode == 1 and res.stderr == b"Warning: User b not found in password file.\n"
    assert run([tool, "-D", path, "c"]).returncode == 0
    assert [l.split(":")[0] for l in open(path).read().splitlines()] == ["a"]
    assert not [f for f in os.listdir(tmp_path) if ".backup." in f]
    assert run([tool, "-c", "-b", path, "z", "pz"]).returncode == 0  # -c overwrites
    assert [l.split(":")[0] for l in open(path).read().splitlines()] == ["z"]


@needs_midge_passwd
def test_passwd_create_is_private(tmp_path):
    # L12: mosquitto_passwd -c leaves the hashes readable by every user (umask 022); ours are
    # the owner's only, like the backup file. An existing file keeps the mode it was given.
    path = str(tmp_path / "passwd")
    old = os.umask(0o022)
    try:
        assert run([midge_passwd(), "-c", "-b", path, "a", "pa"]).returncode == 0
        assert os.stat(path).st_mode & 0o777 == 0o600
        os.chmod(path, 0o640)  # e.g. root:mosquitto
        assert run([midge_passwd(), "-c", "-b", path, "b", "pb"]).returncode == 0
        assert os.stat(path).st_mode & 0o777 == 0o640
    finally:
        os.umask(old)


@needs_midge_passwd
def test_passwd_upgrade_plain_file(tmp_path):
    mosq, midge = both(["-U", "FILE"], tmp_path, setup="u1:p1\nu2 : p 2 \nu3:p3")
    assert midge[0] == mosq[0] == 0
    for result in (mosq, midge):
        lines = result[3].splitlines()
        assert check_line(lines[0], "u1", "p1") and check_line(lines[1], "u2", "p 2")
        assert check_line(lines[2], "u3", "p3")
    # A comment or a blank line is "corrupt" for both; the file is left alone.
    mosq, midge = both(["-U", "FILE"], tmp_path / "c", setup="u1:p1\n# c\nu2:p2\n")
    assert midge[0] == mosq[0] == 1
    assert midge[2] == mosq[2] == b"Error: Corrupt password file at line 2.\n"
    assert midge[3] == mosq[3] == "u1:p1\n# c\nu2:p2\n"


@needs_midge_passwd
def test_passwd_upgrade_keeps_hashed_entries(tmp_path):
    """midge_passwd -U leaves an already hashed entry alone. (mosquitto_passwd -U hashes it
    again, so that user can no longer log in; only midge_passwd is run here, no broker.)"""
    path = make_file(tmp_path / "passwd", [("a", "pa")])
    with open(path, "a") as f:
        f.write("b:pb\n")
    assert run([midge_passwd(), "-U", path]).returncode == 0
    lines = open(path).read().splitlines()
    assert check_line(lines[0], "a", "pa") and check_line(lines[1], "b", "pb")


@needs_midge_passwd
@pytest.mark.parametrize("answers", [b"x\nx\n", b"x\ny\n", b"x\n", b"", b"\n\n", b"x\nx"])
def test_passwd_prompt_from_stdin(tmp_path, answers):
    mosq, midge = both(["-c", "FILE", "u"], tmp_path, input=answers)
    assert midge[:3] == mosq[:3]
    assert (midge[3] is None) == (mosq[3] is None)
    if midge[3] is not None:
        assert check_line(midge[3], "u", "x")
