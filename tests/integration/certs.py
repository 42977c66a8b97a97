"""Test certificates made with the `openssl` command (OpenSSL 3), EC prime256v1 keys.

make_all(dir) writes, under dir:
  ca.crt/.key          "Midge Test CA", run as a small `openssl ca` (index, serials, CRL)
  server.crt/.key      CN localhost, subjectAltName DNS:localhost, IP:127.0.0.1
  server2.crt/.key     the same names, another key (to replace server.* on SIGHUP)
  alice.crt/.key       client, CN alice
  subject.crt/.key     client, subject O=Midge Tests, CN=carol
  expired.crt/.key     client, CN expired, valid 2020-01-01 to 2020-01-02 only
  revoked.crt/.key     client, CN revoked, revoked in crl.pem
  crl-empty.pem        the CA's CRL before it revoked revoked.crt
  crl.pem              the CA's CRL (revokes revoked.crt)
  other-ca.crt/.key    an unrelated CA
  other.crt/.key       client, CN alice, signed by the unrelated CA
  capath/              ca.crt under its subject-hash name (for `capath`)
and returns {name: path}: "ca.crt" -> "/dir/ca.crt", "capath" -> "/dir/capath".
"""
import os
import shutil
import subprocess

CA_CONF = """\
[ca]
default_ca = test_ca

[test_ca]
dir = {dir}
database = $dir/index.txt
serial = $dir/serial
crlnumber = $dir/crlnumber
new_certs_dir = $dir/issued
certificate = {cert}
private_key = {key}
default_md = sha256
default_days = 30
default_crl_days = 30
policy = anything
unique_subject = no
copy_extensions = none

[anything]
commonName = supplied
organizationName = optional

[req]
distinguished_name = dn
prompt = no

[dn]
CN = unused

[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[server_ext]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1

[client_ext]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
"""


def openssl(*args, cwd):
    """Runs `openssl args...` in cwd; raises with its stderr on failure."""
    r = subprocess.run(["openssl"] + list(args), cwd=cwd, capture_output=True)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (" ".join(args), r.stderr.decode()))
    return r.stdout


class Ca:
    """A CA driven by `openssl ca`, so that it can revoke and publish a CRL."""

    def __init__(self, d, name, subject):
        self.d, self.name = str(d), name
        self.conf = os.path.join(self.d, name + ".cnf")
        db = os.path.join(self.d, name + ".db")
        with open(self.conf, "w") as f:
            f.write(CA_CONF.format(dir=db, cert=os.path.join(self.d, name + ".crt"),
                                   key=os.path.join(self.d, name + ".key")))
        os.makedirs(os.path.join(db, "issued"))
        open(os.path.join(db, "index.txt"), "w").close()
        for counter in ("serial", "crlnumber"):
            with open(os.path.join(db, counter), "w") as f:
                f.write("1000\n")
        openssl("req", "-config", self.conf, "-x509", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", name + ".key",
                "-out", name + ".crt", "-days", "30", "-subj", subject,
                "-extensions", "ca_ext", cwd=self.d)

    def issue(self, name, subject, ext, start=None, end=None):
        """Key and certificate name.key/name.crt; start/end like 20200101000000Z."""
        openssl("req", "-config", self.conf, "-new", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", name + ".key",
                "-out", name + ".csr", "-subj", subject, cwd=self.d)
        dates = []
        if start:
            dates = ["-startdate", start, "-enddate", end]
        openssl("ca", "-batch", "-config", self.conf, "-notext", "-extensions", ext,
                "-in", name + ".csr", "-out", name + ".crt", *dates, cwd=self.d)

    def revoke(self, name):
        openssl("ca", "-batch", "-config", self.conf, "-revoke", name + ".crt", cwd=self.d)

    def crl(self, out):
        openssl("ca", "-batch", "-config", self.conf, "-gencrl", "-out", out, cwd=self.d)


def make_all(d):
    d = str(d)
    ca = Ca(d, "ca", "/CN=Midge Test CA")
    ca.issue("server", "/CN=localhost", "server_ext")
    ca.issue("server2", "/CN=localhost", "server_ext")
    ca.issue("alice", "/CN=alice", "client_ext")
    ca.issue("subject", "/O=Midge Tests/CN=carol", "client_ext")
    ca.issue("expired", "/CN=expired", "client_ext", "20200101000000Z", "20200102000000Z")
    ca.issue("revoked", "/CN=revoked", "client_ext")
    ca.crl("crl-empty.pem")
    ca.revoke("revoked")
    ca.crl("crl.pem")
    other = Ca(d, "other-ca", "/CN=Other Test CA")
    other.issue("other", "/CN=alice", "client_ext")
    capath = os.path.join(d, "capath")
    os.mkdir(capath)
    ca_hash = openssl("x509", "-in", "ca.crt", "-noout", "-subject_hash", cwd=d).decode().strip()
    shutil.copy(os.path.join(d, "ca.crt"), os.path.join(capath, ca_hash + ".0"))
    return {n: os.path.join(d, n) for n in os.listdir(d)}
