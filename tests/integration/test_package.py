"""The Debian package ($MIDGE_DEB, built by scripts/test with `cmake --build build --target
package`), installed and run the way the service runs.

Two ways to install it:
- MIDGE_PACKAGE_INSTALL=1 as root (scripts/test sets it; CI runs as root on a machine of its
  own): `dpkg -i` into this machine's root, so the maintainer scripts run (the midge user, its
  directories); the module ends with `dpkg --purge` and removes the midge user if it created it.
- otherwise `dpkg-deb -x` into a scratch root: the installed files are used with the paths of
  midge.conf moved into that root; what only dpkg's maintainer scripts make (the user, the
  upgrade, the purge) is skipped, with the reason.

The broker is started as systemd would start the unit: from /, as root, with the unit's
CapabilityBoundingSet, NoNewPrivileges (setpriv) and UMask, after making its RuntimeDirectory,
on a free port given by a conf.d file. What needs systemd itself (Type=notify, ProtectSystem=)
is not run here: `systemd-analyze verify` checks the unit.
"""
import fcntl
import grp
import os
import pwd
import re
import resource
import shutil
import signal
import subprocess
import time

import pytest

from conftest import IS_MOSQUITTO, free_port, port_open, wait_until

DEB = os.environ.get("MIDGE_DEB", "")
WANT_INSTALL = os.environ.get("MIDGE_PACKAGE_INSTALL") == "1"
IS_ROOT = os.geteuid() == 0

pytestmark = [
    # dpkg -i and --purge run man-db's trigger: tens of seconds on a loaded machine.
    pytest.mark.timeout(300),
    # dpkg mode creates and removes the midge user, which test_service.py's privilege tests look
    # up: both run in the serial pass, one test at a time.
    pytest.mark.serial,
    pytest.mark.skipif(IS_MOSQUITTO, reason="Midge's own package"),
    pytest.mark.skipif(not DEB, reason="MIDGE_DEB is unset: build the package with `cmake --build build "
                       "--target package` and set MIDGE_DEB=build/midge_VERSION_ARCH.deb (scripts/test "
                       "does both, for the release build)"),
]

NEEDS_DPKG = "needs the package installed by dpkg (MIDGE_PACKAGE_INSTALL=1 as root; scripts/test sets it): " \
             "only dpkg runs the maintainer scripts"
CONFFILES = ["/etc/midge/midge.conf", "/etc/midge/conf.d/README", "/etc/logrotate.d/midge"]
PACKAGED_PATHS = ["/etc/midge", "/var/lib/midge", "/var/log/midge", "/run/midge"]
LOCK = "/tmp/midge-package-test.lock"  # one install at a time, whatever runs the tests
MARK = "/var/tmp/midge-package-test.installed"  # this test installed the package (and made the user?)


def sh(argv, check=True, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"), **kw)
    if check and r.returncode != 0:
        pytest.fail("%s exited with %d\n%s%s" % (" ".join(argv), r.returncode, r.stdout, r.stderr))
    return r


def installed_by_dpkg():
    r = sh(["dpkg-query", "-W", "-f=${db:Status-Status}", "midge"], check=False)
    return r.returncode == 0 and r.stdout == "installed"


class Install:
    """Where the package's files are: `root` is / after dpkg -i, the scratch root after -x."""

    def __init__(self, root, dpkg):
        self.root = root
        self.dpkg = dpkg

    def path(self, p):
        return p if self.dpkg else os.path.join(self.root, p.lstrip("/"))

    def relocated(self, text):
        """Text of an installed file with the package's paths moved into the scratch root."""
        if self.dpkg:
            return text
        for p in PACKAGED_PATHS:
            text = text.replace(p, self.path(p))
        return text


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """The package, installed once for the module (again after a test purged it)."""
    if not os.path.isfile(DEB):
        pytest.fail("MIDGE_DEB=%s: no such file" % DEB)
    if not WANT_INSTALL:
        root = str(tmp_path_factory.mktemp("root"))
        sh(["dpkg-deb", "-x", DEB, root])
        inst = Install(root, dpkg=False)
        # What postinst and systemd's RuntimeDirectory= would make.
        for p in ("/var/lib/midge", "/var/log/midge", "/run/midge"):
            os.makedirs(inst.path(p), exist_ok=True)
        yield lambda: inst
        return
    if not IS_ROOT:
        pytest.fail("MIDGE_PACKAGE_INSTALL=1 needs root: dpkg -i installs into /")
    with open(LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if installed_by_dpkg():
            if not os.path.exists(MARK):
                pytest.fail("the midge package is installed here, not by this test: the test would "
                            "replace and purge it (dpkg --purge midge first)")
            purge()  # left by a run of this test that was killed
        state = {"user_existed": user_exists()}
        if os.path.exists(MARK):
            with open(MARK) as f:
                state["user_existed"] = f.read() == "user existed"
        with open(MARK, "w") as f:
            f.write("user existed" if state["user_existed"] else "user made by the package")
        yield lambda: dpkg_install(state)
        if installed_by_dpkg():
            purge()
        if not state["user_existed"] and user_exists():
            # Debian leaves a purged package's user; this machine's other tests must not
            # find one (`user midge` falls back to nobody only when it is missing).
            sh(["deluser", "--system", "--quiet", "midge"])
            if group_exists("midge"):
                sh(["delgroup", "--system", "--quiet", "midge"])
        os.unlink(MARK)


def purge():
    stop_leftover_broker()
    sh(["dpkg", "--purge", "midge"])


def dpkg_install(state):
    if not installed_by_dpkg():
        sh(["dpkg", "-i", DEB])
    return Install("/", dpkg=True)


def user_exists(name="midge"):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def group_exists(name):
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def stop_leftover_broker():
    try:
        with open("/run/midge/midge.pid") as f:
            pid = int(f.read())
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        pass


@pytest.fixture
def inst(package):
    return package()


def unit_text(inst):
    with open(inst.path("/lib/systemd/system/midge.service")) as f:
        return f.read()


def unit_value(inst, key):
    m = re.search(r"^%s=(.*)$" % key, unit_text(inst), re.M)
    assert m, "midge.service has no %s=" % key
    return m.group(1).strip()


class Service:
    """The installed broker, started as the unit starts it, with a conf.d file of the test's."""

    def __init__(self, inst, tmp_path, extra=()):
        self.inst = inst
        self.port = free_port()
        self.output = tmp_path / "journal.txt"  # what systemd's journal would get
        self.dropin = inst.path("/etc/midge/conf.d/zz-test.conf")
        lines = ["listener %d 127.0.0.1" % self.port, "allow_anonymous true"] + list(extra)
        if not inst.dpkg and IS_ROOT:
            # No midge user without postinst: keep root, which owns the scratch root.
            lines.append("user root")
        with open(self.dropin, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.conf = inst.path("/etc/midge/midge.conf")
        if not inst.dpkg:
            self.conf = str(tmp_path / "midge.conf")
            with open(inst.path("/etc/midge/midge.conf")) as src, open(self.conf, "w") as dst:
                dst.write(inst.relocated(src.read()))
        self.proc = None

    def argv(self):
        exec_start = unit_value(self.inst, "ExecStart").split()
        assert exec_start[0] == "/usr/sbin/midge"
        argv = [self.inst.path(exec_start[0]), "-c", self.conf]
        if not IS_ROOT:
            return argv
        caps = unit_value(self.inst, "CapabilityBoundingSet").split()
        bounding = ",".join(["-all"] + ["+" + c[len("CAP_"):].lower() for c in caps])
        return ["setpriv", "--bounding-set", bounding, "--inh-caps", "-all", "--no-new-privs", "--"] + argv

    def nofile(self):
        """LimitNOFILE=, or this process's hard limit where it may not raise it (a container
        without CAP_SYS_RESOURCE; systemd, as PID 1, may)."""
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        with open("/proc/self/status") as f:
            caps = int(re.search(r"^CapEff:\s*(\w+)", f.read(), re.M).group(1), 16)
        may_raise = caps & (1 << 24)  # CAP_SYS_RESOURCE
        wanted = int(unit_value(self.inst, "LimitNOFILE"))
        return wanted if may_raise or wanted <= hard else hard

    def start(self):
        # What RuntimeDirectory= makes before ExecStart (the scratch root has its own).
        if self.inst.dpkg:
            assert unit_value(self.inst, "RuntimeDirectory") == "midge"
            os.makedirs("/run/midge", exist_ok=True)
            os.chmod("/run/midge", int(unit_value(self.inst, "RuntimeDirectoryMode"), 8))
        nofile = self.nofile()

        def limits():  # LimitNOFILE= sets both limits
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        with open(self.output, "ab") as out:
            self.proc = subprocess.Popen(self.argv(), stdout=out, stderr=subprocess.STDOUT, cwd="/",
                                         umask=int(unit_value(self.inst, "UMask"), 8), preexec_fn=limits)
        deadline = time.monotonic() + 10
        while not port_open(self.port):
            if self.proc.poll() is not None:
                pytest.fail("midge exited with %s at start-up\n%s\n%s"
                            % (self.proc.returncode, self.output.read_text(), self.log_text()))
            assert time.monotonic() < deadline, "midge not listening after 10 s\n" + self.log_text()
            time.sleep(0.02)
        # The socket listens before the broker switches user; clients are served after.
        r = sh(["mosquitto_sub", "-p", str(self.port), "-t", "pkg/ready", "-E", "-W", "10"], check=False)
        assert r.returncode == 0, "no SUBACK from midge: %s\n%s" % (r.stderr, self.log_text())
        return self

    def log_path(self):
        return self.inst.path("/var/log/midge/midge.log")

    def log_text(self):
        try:
            with open(self.log_path(), errors="replace") as f:
                return f.read()
        except OSError as e:
            return "(no log: %s)" % e

    def stop(self):
        """SIGTERM, as systemctl stop: the exit status must be 0."""
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(20)
        self.proc = None
        assert rc == 0, "midge exited with %d after SIGTERM\n%s" % (rc, self.log_text())

    def close(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        if os.path.exists(self.dropin):
            os.unlink(self.dropin)
        if self.inst.dpkg:
            shutil.rmtree("/run/midge", ignore_errors=True)  # as systemd does once stopped


@pytest.fixture
def service(inst, tmp_path):
    s = Service(inst, tmp_path)
    yield s
    s.close()


def pub(port, topic, message, *extra):
    sh(["mosquitto_pub", "-p", str(port), "-t", topic, "-m", message, "-q", "1"] + list(extra))


def retained(port, topic):
    """The retained message of `topic`, read by a new subscriber."""
    r = sh(["mosquitto_sub", "-p", str(port), "-t", topic, "-C", "1", "-W", "10"], check=False)
    assert r.returncode == 0, "no retained message on %s (%d): %s" % (topic, r.returncode, r.stderr)
    return r.stdout.strip()


def proc_status(pid):
    with open("/proc/%d/status" % pid) as f:
        return dict(line.split(":", 1) for line in f.read().splitlines())


# ------------------------------------------------------------------------------ the .deb itself

def test_package_holds_the_programs_pages_unit_and_config():
    listing = sh(["dpkg-deb", "-c", DEB]).stdout
    paths = {line.split()[-1].lstrip(".") for line in listing.splitlines()}
    for p in ["/usr/sbin/midge", "/usr/lib/midge/midge_store.so", "/usr/bin/midge_pub", "/usr/bin/midge_sub",
              "/usr/bin/midge_rr", "/usr/bin/midge_passwd", "/lib/systemd/system/midge.service", "/usr/share/man/man8/midge.8",
              "/usr/share/man/man5/midge.conf.5", "/usr/share/man/man1/midge_pub.1",
              "/usr/share/man/man1/midge_sub.1", "/usr/share/man/man1/midge_rr.1",
              "/usr/share/man/man1/midge_passwd.1", "/usr/share/doc/midge/README.md"] + CONFFILES:
        assert p in paths, "%s is not in the package:\n%s" % (p, listing)
    assert not any(p.startswith("/usr/local") for p in paths), listing


def test_package_control_conffiles_dependencies_and_scripts(tmp_path):
    sh(["dpkg-deb", "-e", DEB, str(tmp_path / "control")])
    control = tmp_path / "control"
    assert (control / "conffiles").read_text().split() == CONFFILES
    for script in ("postinst", "prerm", "postrm"):
        assert os.access(control / script, os.X_OK), script
    depends = sh(["dpkg-deb", "-f", DEB, "Depends"]).stdout
    # adduser for postinst; the rest from dpkg-shlibdeps.
    for lib in ("adduser", "libc6", "libstdc++6", "libssl3", "librocksdb"):
        assert lib in depends, "Depends lacks %s: %s" % (lib, depends)


# ------------------------------------------------------------------------ installed and running

def test_postinst_made_the_user_and_its_directories(inst):
    if not inst.dpkg:
        pytest.skip(NEEDS_DPKG)
    user = pwd.getpwnam("midge")
    assert user.pw_uid < 1000, "not a system user: %d" % user.pw_uid
    assert grp.getgrgid(user.pw_gid).gr_name == "midge"
    assert user.pw_dir == "/var/lib/midge"
    assert user.pw_shell in ("/usr/sbin/nologin", "/bin/false"), user.pw_shell
    for d in ("/var/lib/midge", "/var/log/midge"):
        st = os.stat(d)
        assert (st.st_uid, st.st_gid) == (user.pw_uid, user.pw_gid), d
        assert st.st_mode & 0o777 == 0o750, "%s: %o" % (d, st.st_mode)
    # Enabled for the next boot (deb-systemd-helper), even where systemd does not run now.
    assert os.path.islink("/etc/systemd/system/multi-user.target.wants/midge.service")


def test_installed_broker_runs_as_the_packaged_user(inst, service):
    service.start()
    pid = service.proc.pid
    # pid file: the installed midge.conf names /run/midge/midge.pid.
    with open(inst.path("/run/midge/midge.pid")) as f:
        assert f.read() == "%d\n" % pid
    status = proc_status(pid)
    if inst.dpkg:  # the lead's change: `user` defaults to midge
        user = pwd.getpwnam("midge")
        assert status["Uid"].split() == [str(user.pw_uid)] * 4, status["Uid"]
        assert status["Gid"].split() == [str(user.pw_gid)] * 4, status["Gid"]
        groups = {int(g) for g in status["Groups"].split()}
        assert groups <= {user.pw_gid} | {g.gr_gid for g in grp.getgrall() if "midge" in g.gr_mem}, groups
    with open("/proc/%d/limits" % pid) as f:  # Midge raised its soft limit to the hard one
        soft = re.search(r"^Max open files\s+(\d+)", f.read(), re.M).group(1)
    assert int(soft) == service.nofile()
    # No capability left after the switch (and never more than the unit's bounding set).
    if IS_ROOT and inst.dpkg:
        assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0, status["CapEff"]
    if IS_ROOT:
        assert status["NoNewPrivs"].strip() == "1"  # the unit's NoNewPrivileges=yes

    # Publish and subscribe with Mosquitto's clients: a retained message, then a live one.
    pub(service.port, "pkg/retained", "kept", "-r")
    sub = subprocess.Popen(["mosquitto_sub", "-p", str(service.port), "-t", "pkg/#", "-v", "-C", "2", "-W", "20"],
                           stdout=subprocess.PIPE, text=True)
    try:
        assert sub.stdout.readline() == "pkg/retained kept\n"  # subscribed: now the live one
        pub(service.port, "pkg/live", "hello")
        assert sub.stdout.readline() == "pkg/live hello\n"
        assert sub.wait(20) == 0
    finally:
        sub.kill()
        sub.wait()
    service.stop()

    # persistence true, persistence_location /var/lib/midge/: the store is there, the
    # packaged user's, and gives the retained message back after a restart.
    store = inst.path("/var/lib/midge/mosquitto.db.midge")
    assert os.path.isdir(store), os.listdir(inst.path("/var/lib/midge"))
    if inst.dpkg:
        uid = pwd.getpwnam("midge").pw_uid
        foreign = [n for n in os.listdir(store) if os.stat(os.path.join(store, n)).st_uid != uid]
        assert os.stat(store).st_uid == uid and not foreign, "not owned by midge: %s" % foreign
    service.start()
    assert retained(service.port, "pkg/retained") == "kept"
    sh(["mosquitto_pub", "-p", str(service.port), "-t", "pkg/retained", "-r", "-n"])  # cleared
    service.stop()
    log = service.log_text()
    assert "terminating" in log, log


def test_log_file_written_and_reopened_on_sighup(inst, service):
    service.start()
    log = service.log_path()
    wait_until(lambda: "running" in service.log_text(), what="the start-up lines in " + log)
    if inst.dpkg:
        # Owned by the packaged user, so that it can reopen it after logrotate or a reload.
        assert os.stat(log).st_uid == pwd.getpwnam("midge").pw_uid
    rotated = log + ".1"
    os.rename(log, rotated)
    service.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: os.path.exists(log), what="a new " + log + " after SIGHUP")
    # The next lines go to the new file: a client's connection is logged there.
    pub(service.port, "pkg/after-hup", "x", "-i", "pkg-after-hup")
    wait_until(lambda: "pkg-after-hup" in service.log_text(), what="the reopened log")
    service.stop()
    with open(rotated) as f:
        assert "running" in f.read()
    assert "terminating" in service.log_text()
    os.unlink(rotated)


def test_logrotate_file_rotates_the_log(inst, service, tmp_path):
    if shutil.which("logrotate") is None:
        pytest.skip("logrotate is not installed (scripts/deps installs it)")
    service.start()
    log = service.log_path()
    wait_until(lambda: "running" in service.log_text(), what="the start-up lines")
    with open(inst.path("/etc/logrotate.d/midge")) as f:
        rules = tmp_path / "midge.logrotate"
        rules.write_text(inst.relocated(f.read()))
    # -f: rotate now; the postrotate script sends SIGHUP to the pid of /run/midge/midge.pid.
    sh(["logrotate", "-f", "-s", str(tmp_path / "state"), str(rules)])
    assert os.path.exists(log + ".1")
    wait_until(lambda: os.path.exists(log), what="a new log after logrotate's SIGHUP")
    pub(service.port, "pkg/after-rotate", "x", "-i", "pkg-after-rotate")
    wait_until(lambda: "pkg-after-rotate" in service.log_text(), what="midge writing the new log")
    service.stop()
    for name in os.listdir(os.path.dirname(log)):
        if name != "midge.log":
            os.unlink(os.path.join(os.path.dirname(log), name))


def test_systemd_analyze_verify_accepts_the_unit(inst):
    """No error and no warning about the unit (an unknown key is only a warning: exit 0)."""
    unit = "/lib/systemd/system/midge.service"
    argv, env = ["systemd-analyze", "verify"], dict(os.environ)
    if not inst.dpkg:
        # Verified inside the scratch root, where ExecStart= must find /usr/sbin/midge. What the
        # package expects of the system it installs into comes from this one: ExecReload='s
        # /bin/kill and the targets of [Unit] and [Install]; Documentation='s man pages are the
        # package's.
        os.makedirs(inst.path("/bin"), exist_ok=True)
        shutil.copy("/bin/kill", inst.path("/bin/kill"))
        for target in ("sysinit", "basic", "network-online", "multi-user", "shutdown", "sockets",
                       "paths", "timers", "slices", "local-fs", "swap"):
            name = "/lib/systemd/system/%s.target" % target
            if os.path.exists(name):
                shutil.copy(name, inst.path(name))
        argv.append("--root=" + inst.root)
        env["MANPATH"] = inst.path("/usr/share/man")
    r = subprocess.run(argv + [unit], capture_output=True, text=True, timeout=60, env=env)
    output = r.stdout + r.stderr
    assert r.returncode == 0 and "midge" not in output, output


def test_upgrade_keeps_the_changed_config(inst):
    if not inst.dpkg:
        pytest.skip(NEEDS_DPKG)
    conf = "/etc/midge/midge.conf"
    with open(conf, "a") as f:
        f.write("# changed by test_package\n")
    uid = pwd.getpwnam("midge").pw_uid
    marker = "/var/lib/midge/kept-by-upgrade"
    open(marker, "w").close()
    # dpkg would ask (and, without a terminal, fail) if the packaged conffile had changed too.
    sh(["dpkg", "-i", DEB])
    with open(conf) as f:
        assert f.read().endswith("# changed by test_package\n")
    assert pwd.getpwnam("midge").pw_uid == uid
    assert os.path.exists(marker)
    os.unlink(marker)


def test_purge_removes_what_postinst_made(inst):
    if not inst.dpkg:
        pytest.skip(NEEDS_DPKG)
    sh(["dpkg", "--purge", "midge"])
    assert not installed_by_dpkg()
    for p in ["/usr/sbin/midge", "/usr/bin/midge_pub", "/lib/systemd/system/midge.service",
              "/etc/systemd/system/multi-user.target.wants/midge.service", "/etc/logrotate.d/midge",
              "/etc/midge", "/var/lib/midge", "/var/log/midge"]:
        assert not os.path.lexists(p), p + " left after purge"
