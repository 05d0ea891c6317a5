"""GSSAPI (Kerberos single sign-on) against a real MIT KDC.

Each test starts its own KDC in a temporary directory on a free loopback
port with its own realm (SHARED.REALM), creates the users alice and stranger
and the service principals imap/, smtp/, pop/ and ftp/localhost, writes a
keytab holding imap/, smtp/ and pop/ only, and gets tickets with kinit
(alice is a directory user, stranger is not).
Nothing outside the temporary directory is touched: every process is
pointed at it with KRB5_CONFIG, KRB5_KDC_PROFILE and KRB5CCNAME. The KDC
is stopped by its pid.

Two clients prove the server side: the in-process libsasl2 GSSAPI client
of tests/unit/test_sasl_gssapi.c (success for each service, unknown
principal, no ticket, another service's ticket, a service missing from
the keytab, a disabled
account, an unmapped realm), and `mailctl user auth-test --mechanism
GSSAPI` against a maild configured with the keytab (the client runs in
maild with alice's ticket cache, the server side is maild's own auth
layer).
"""
import os
import pathlib
import shutil
import signal
import subprocess
import time

import pytest

from conftest import MAILD, free_port

REALM = "SHARED.REALM"
# Leaks inside MIT Kerberos and the SASL GSSAPI plugin (see the file).
LSAN_OPTIONS = ("suppressions=" + str(pathlib.Path(__file__).with_name("test_kerberos.lsan.supp")) +
                ":print_suppressions=0")
GSSAPI_TEST = pathlib.Path(MAILD).resolve().parents[1] / "tests" / "test_sasl_gssapi"

pytestmark = pytest.mark.skipif(shutil.which("krb5kdc") is None and
                                not os.path.exists("/usr/sbin/krb5kdc"),
                                reason="krb5-kdc is not installed (deploy/deps.sh installs it)")


class Kdc:
    """A throwaway MIT KDC and realm in one directory."""

    def __init__(self, base):
        self.dir = pathlib.Path(base) / "krb5"
        self.dir.mkdir()
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.keytab = self.dir / "service.keytab"
        (self.dir / "krb5.conf").write_text(
            "[libdefaults]\n"
            f"  default_realm = {REALM}\n"
            "  dns_lookup_kdc = false\n"
            "  dns_lookup_realm = false\n"
            "  rdns = false\n"
            "[realms]\n"
            f"  {REALM} = {{\n"
            f"    kdc = 127.0.0.1:{self.port}\n"
            "  }\n")
        (self.dir / "kdc.conf").write_text(
            "[kdcdefaults]\n"
            f"  kdc_ports = {self.port}\n"
            f"  kdc_tcp_ports = {self.port}\n"
            "[realms]\n"
            f"  {REALM} = {{\n"
            f"    database_name = {self.dir}/principal\n"
            f"    key_stash_file = {self.dir}/stash\n"
            f"    acl_file = {self.dir}/kadm5.acl\n"
            "  }\n"
            "[logging]\n"
            f"  kdc = FILE:{self.dir}/kdc.log\n")
        self.env = dict(os.environ, KRB5_CONFIG=str(self.dir / "krb5.conf"),
                        KRB5_KDC_PROFILE=str(self.dir / "kdc.conf"),
                        KRB5CCNAME=f"FILE:{self.dir}/cc_default")
        self.pid = None

    def run(self, *args, input=None):
        r = subprocess.run(list(args), env=self.env, input=input, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, f"{args}: {r.stdout}{r.stderr}"
        return r

    def kadmin(self, query):
        self.run("kadmin.local", "-q", query)

    def start(self):
        self.run("kdb5_util", "create", "-s", "-P", "master-pw", "-r", REALM)
        self.kadmin("addprinc -pw alice-pw alice")
        self.kadmin("addprinc -pw stranger-pw stranger")
        for service in ("imap", "smtp", "pop", "ftp"):
            self.kadmin(f"addprinc -randkey {service}/localhost")
        self.kadmin(f"ktadd -k {self.keytab} imap/localhost smtp/localhost pop/localhost")
        os.chmod(self.keytab, 0o644)  # the test's maild runs as the service user
        self.proc = subprocess.Popen(["krb5kdc", "-n", "-P", str(self.dir / "kdc.pid")],
                                     env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.pid = self.proc.pid
        deadline = time.monotonic() + 15
        while True:
            r = subprocess.run(["kinit", "alice"], env=self.env, input="alice-pw\n",
                               capture_output=True, text=True)
            if r.returncode == 0:
                break
            assert self.proc.poll() is None, "krb5kdc exited"
            assert time.monotonic() < deadline, f"KDC not answering: {r.stderr}"
            time.sleep(0.2)
        return self

    def ticket_cache(self, user, password):
        cc = self.dir / f"cc_{user}"
        env = dict(self.env, KRB5CCNAME=f"FILE:{cc}")
        r = subprocess.run(["kinit", user], env=env, input=password + "\n", capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        r = subprocess.run(["kvno", "imap/localhost"], env=env, capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0, r.stderr
        os.chmod(cc, 0o644)
        return f"FILE:{cc}"

    def stop(self):
        if self.pid is not None and self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture
def kdc(workdir):
    k = Kdc(workdir).start()
    yield k
    k.stop()


def test_gssapi_in_process(kdc):
    assert GSSAPI_TEST.exists(), f"{GSSAPI_TEST} was not built"
    env = dict(kdc.env, LSAN_OPTIONS=LSAN_OPTIONS, CM_KRB5_KEYTAB=str(kdc.keytab),
               CM_KRB5_CC_ALICE=kdc.ticket_cache("alice", "alice-pw"),
               CM_KRB5_CC_STRANGER=kdc.ticket_cache("stranger", "stranger-pw"),
               CM_KRB5_CC_EMPTY=f"FILE:{kdc.dir}/cc_nobody")
    r = subprocess.run([str(GSSAPI_TEST)], env=env, capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "[  PASSED  ] 2 test(s)" in out, out
    assert "SKIPPED" not in out, out
    assert "Sanitizer" not in out and "runtime error:" not in out, out
    assert "login user=alice@shared.test" in out and "mech=GSSAPI" in out


def test_gssapi_through_maild(kdc, node_factory, monkeypatch):
    # maild runs the client side of auth-test itself: give it alice's tickets.
    for key in ("KRB5_CONFIG", "KRB5_KDC_PROFILE"):
        monkeypatch.setenv(key, kdc.env[key])
    monkeypatch.setenv("KRB5CCNAME", kdc.ticket_cache("alice", "alice-pw"))
    monkeypatch.setenv("LSAN_OPTIONS", LSAN_OPTIONS)
    n = node_factory(extra=f'auth = {{ kerberos_keytab = "{kdc.keytab}"; '
                           f'kerberos_default_realm = "{REALM}"; hostname = "localhost"; }};\n')
    n.start()
    n.ctl("domain", "add", "shared.test")
    n.ctl("domain", "set", "shared.test", "kerberos-realm", REALM)
    n.ctl("user", "add", "alice@shared.test", "--password", "unused-here")
    r = n.ctl("user", "auth-test", "alice@shared.test", "--password", "x", "--mechanism", "GSSAPI",
              check=False)
    assert r.returncode == 0, r.stderr + n.log_text()
    assert "alice@shared.test: GSSAPI ok" in r.stdout
    assert "mechanisms (with TLS): PLAIN LOGIN GSSAPI" in n.ctl("auth", "stats").stdout
    n.wait_log("[auth] login user=alice@shared.test peer=mailctl mech=GSSAPI")
    # without the realm mapping the same ticket maps to nobody
    n.ctl("domain", "set", "shared.test", "kerberos-realm", "none")
    r = n.ctl("user", "auth-test", "alice@shared.test", "--password", "x", "--mechanism", "GSSAPI",
              check=False)
    assert r.returncode == 1 and "no domain maps" in r.stderr
