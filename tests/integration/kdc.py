"""A throwaway MIT Kerberos KDC for the GSSAPI tests (test_kerberos.py,
test_sasl_clients.py).

Kdc(base).start() creates a realm (SHARED.REALM) in base/krb5 with its own
krb5.conf and kdc.conf, a KDC on a free loopback port, the users alice
(password alice-pw) and stranger (stranger-pw), the service principals
imap/, smtp/, pop/ and ftp/localhost, and a keytab holding imap/, smtp/ and
pop/ only (ftp/ is "a service missing from the keytab"). Nothing outside
the directory is touched: every process is pointed at it with KRB5_CONFIG,
KRB5_KDC_PROFILE and KRB5CCNAME (Kdc.env). stop() ends the KDC by its pid.
The `kdc` fixture (conftest.py) starts one per test.
"""
import os
import pathlib
import shutil
import signal
import subprocess
import time

from conftest import free_port

REALM = "SHARED.REALM"
# Leaks inside MIT Kerberos and the SASL GSSAPI plugin (see the file): for
# a maild or test binary that runs GSSAPI under ASan.
LSAN_OPTIONS = ("suppressions=" + str(pathlib.Path(__file__).with_name("test_kerberos.lsan.supp")) +
                ":print_suppressions=0")
KDC_INSTALLED = shutil.which("krb5kdc") is not None or os.path.exists("/usr/sbin/krb5kdc")


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
