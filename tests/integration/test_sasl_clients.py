"""Every SASL mechanism, success and failure, through a real client for
each protocol maild serves: cyrus-clients' smtptest (SMTP on the smtp,
submission and smtps ports) and pop3test (POP3 on the pop3 and pop3s
ports), run as separate processes against a real maild.

Mechanisms: PLAIN, LOGIN, CRAM-MD5, DIGEST-MD5, SCRAM-SHA-1, SCRAM-SHA-256
(alice's domain has shared-secret-auth on before her password is set, so
a recoverable secret is stored), and GSSAPI with tickets from a real MIT
KDC (tests/integration/kdc.py, the `kdc` fixture).

Transports, for every mechanism:
  smtp-plain        smtptest, plaintext on loopback (require_tls is off there)
  smtp-starttls     smtptest -t ""  (STARTTLS)
  submission        smtptest -t ""  (STARTTLS; require_tls = true, as on a public address)
  smtps             smtptest -s     (implicit TLS)
  pop3-plain        pop3test, plaintext on loopback
  pop3-stls         pop3test -t ""  (STLS)
  pop3s             pop3test -s     (implicit TLS)

A right password must give the protocol's success reply (235 2.7.0 /
+OK), the tool's "Authenticated." and one server log line
`[auth] login user=... mech=M service=S`; a wrong one the protocol's
failure reply (535 5.7.8 / -ERR [AUTH]), the tool's "Authentication
failed." and a `login failed ... mech=M reason=bad-credentials` line. The
security strength factor the tool prints proves TLS was (128 and up) or
was not (0) in place. The tools exit 0 either way (they go on to their
interactive part, here an immediate EOF, then QUIT), so the verdict is
read from their output and the server's log, and the exit code is only
required to be 0.

GSSAPI: alice's ticket (alice@SHARED.REALM, mapped to alice@shared.test)
succeeds; stranger's ticket (a valid principal that maps to no directory
user) is GSSAPI's "wrong credentials" and gets the failure reply. The
tools take the ticket from KRB5CCNAME and ask for smtp/localhost and
pop/localhost.

Not here, on purpose: APOP (proven by poplib and fetchmail in
test_pop3.py and test_pop3_clients.py; pop3test -m apop would duplicate
it), POP3 USER/PASS (same files), and IMAP (maild does not serve it yet:
imtest is for then). Under require_tls, the plaintext refusal is checked
with smtptest too: before STARTTLS on submission PLAIN and LOGIN are not
offered, and sending them anyway earns 538 5.7.11. No mechanism is skipped: both tools
do all seven.

Failure delays are shortened in this file's config (20..100 ms) so that
the whole file stays well under a minute.
"""
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from conftest import Node
from kdc import LSAN_OPTIONS, REALM

CYRUS = "/usr/lib/cyrus/bin"  # where Debian's cyrus-clients puts them (not on PATH)
SMTPTEST = os.path.join(CYRUS, "smtptest")
POP3TEST = os.path.join(CYRUS, "pop3test")

DOMAIN = "example.test"
USER = f"alice@{DOMAIN}"
PASSWORD = "Alice-Pw1"
KRB_DOMAIN = "shared.test"

MECHS = ["PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"]


class Transport:
    def __init__(self, name, tool, port, tls, sasl_service, ok, fail):
        self.name, self.tool, self.port, self.tls = name, tool, port, tls
        self.sasl_service, self.ok, self.fail = sasl_service, ok, fail


SMTP_OK, SMTP_FAIL = "S: 235 2.7.0 ", "S: 535 5.7.8 "
POP_OK, POP_FAIL = "S: +OK ", "S: -ERR [AUTH] "
TRANSPORTS = {t.name: t for t in [
    Transport("smtp-plain", SMTPTEST, "smtp", "none", "smtp", SMTP_OK, SMTP_FAIL),
    Transport("smtp-starttls", SMTPTEST, "smtp", "starttls", "smtp", SMTP_OK, SMTP_FAIL),
    Transport("submission", SMTPTEST, "submission", "starttls", "smtp", SMTP_OK, SMTP_FAIL),
    Transport("smtps", SMTPTEST, "smtps", "implicit", "smtp", SMTP_OK, SMTP_FAIL),
    Transport("pop3-plain", POP3TEST, "pop3", "none", "pop", POP_OK, POP_FAIL),
    Transport("pop3-stls", POP3TEST, "pop3", "starttls", "pop", POP_OK, POP_FAIL),
    Transport("pop3s", POP3TEST, "pop3s", "implicit", "pop", POP_OK, POP_FAIL),
]}


def test_tools_installed():
    for tool in (SMTPTEST, POP3TEST):
        assert os.access(tool, os.X_OK), f"{tool} missing: cyrus-clients (deploy/deps.sh)"


def run_tool(node, t, mech, user=None, password=None, env=None):
    """One run of smtptest/pop3test: authenticate, then EOF on stdin makes
    it send QUIT. Returns its output."""
    args = [t.tool, "-p", str(node.ports[t.port]), "-m", mech]
    args += {"none": [], "starttls": ["-t", ""], "implicit": ["-s"]}[t.tls]
    if user is not None:
        args += ["-a", user]
    if password is not None:
        args += ["-w", password]
    args.append("localhost")
    r = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=30, env=env)
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"{args} -> {r.returncode}\n{out}"
    ssf = re.search(r"Security strength factor: (\d+)", out)
    assert ssf, out
    if t.tls == "none":
        assert int(ssf.group(1)) == 0, out
    else:
        assert int(ssf.group(1)) >= 128, f"no TLS on {t.name}:\n{out}"
    return out


def log_count(node, pattern):
    return len(re.findall(pattern, node.log_text()))


def checked(node, t, mech, success, user=None, password=None, env=None):
    """Runs the tool; requires its verdict, the protocol's reply, and
    exactly one new server log line for this mechanism with that outcome
    (written before the reply, so it is there when the tool is done)."""
    m = re.escape(mech)
    if success:
        line = rf"\[auth\] login user=(\S+) peer=\S+ mech={m} service={t.sasl_service} "
    else:
        line = rf"\[auth\] login failed user=\S* peer=\S+ mech={m} reason=bad-credentials "
    before = log_count(node, line)
    out = run_tool(node, t, mech, user=user, password=password, env=env)
    if success:
        assert "\nAuthenticated.\n" in out and t.ok in out, out
    else:
        assert "Authentication failed." in out and t.fail in out, out
        assert "\nAuthenticated.\n" not in out, out
    assert log_count(node, line) == before + 1, f"{line}\n{node.log_text()[-3000:]}"
    if success and user:
        assert re.findall(line, node.log_text())[-1] == user.lower()
    return out


AUTH_FAST = ("failure_delay_initial_ms = 20; failure_delay_max_ms = 100; "
             'hostname = "localhost";')


@pytest.fixture(scope="module")
def snode():
    """One maild for the password mechanisms: a default certificate for
    localhost, example.test with shared-secret-auth on (set before alice's
    password, so her secret is stored), submission requiring TLS."""
    # module-scoped (one maild for every parametrised run); like conftest's
    # workdir: under /tmp, mode 0755, for the service user
    base = tempfile.mkdtemp(prefix="cm-sasl-", dir="/tmp")
    os.chmod(base, 0o755)
    n = Node(base, service_options={"submission": "require_tls = true;"},
             extra=f"auth = {{ {AUTH_FAST} }};\n")
    n.ctl("cert", "generate", "main", "--names", "localhost")
    n.ctl("cert", "assign", "main", "--default")
    n.ctl("domain", "add", DOMAIN)
    n.ctl("domain", "set", DOMAIN, "shared-secret-auth", "on")
    n.ctl("user", "add", USER, "--password-stdin", input=PASSWORD + "\n")
    n.start()
    yield n
    try:
        assert n.stop() == 0, n.log_text()
        text = n.log_text()
        for marker in ("Sanitizer", "runtime error:"):
            assert marker not in text, f"{marker} in {n.log}:\n{text}"
    finally:
        if n.proc.poll() is None:
            n.proc.kill()
            n.proc.wait()
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("transport", list(TRANSPORTS))
@pytest.mark.parametrize("mech", MECHS)
def test_password_mechanisms(snode, transport, mech):
    t = TRANSPORTS[transport]
    checked(snode, t, mech, True, user=USER, password=PASSWORD)
    checked(snode, t, mech, False, user=USER, password="Wrong-Pw2")


def test_plaintext_mechanisms_need_tls_on_submission(snode):
    """submission has require_tls: before STARTTLS, PLAIN and LOGIN are not
    offered, and smtptest, which sends AUTH PLAIN/LOGIN anyway when told
    to, gets RFC 4954's 538 5.7.11 and is not authenticated; shared-secret
    mechanisms carry no password and stay available without TLS."""
    t = Transport("submission-plain", SMTPTEST, "submission", "none", "smtp", SMTP_OK, SMTP_FAIL)
    for mech in ("PLAIN", "LOGIN"):
        out = run_tool(snode, t, mech, user=USER, password=PASSWORD)
        offered = [l for l in out.splitlines() if l.startswith("S: 250-AUTH ")]
        assert offered and mech not in offered[0].split()[2:], out
        assert "S: 538 5.7.11 " in out and "Authentication failed." in out, out
        assert "\nAuthenticated.\n" not in out, out
    checked(snode, t, "CRAM-MD5", True, user=USER, password=PASSWORD)


@pytest.fixture
def gnode(kdc, node_factory, monkeypatch):
    """A maild with the KDC's keytab; shared.test maps SHARED.REALM and has
    alice (stranger has a principal but no account)."""
    for key in ("KRB5_CONFIG", "KRB5_KDC_PROFILE"):
        monkeypatch.setenv(key, kdc.env[key])
    monkeypatch.setenv("LSAN_OPTIONS", LSAN_OPTIONS)
    n = node_factory(service_options={"submission": "require_tls = true;"},
                     extra=f'auth = {{ {AUTH_FAST} kerberos_keytab = "{kdc.keytab}"; '
                           f'kerberos_default_realm = "{REALM}"; }};\n')
    n.ctl("cert", "generate", "main", "--names", "localhost")
    n.ctl("cert", "assign", "main", "--default")
    n.ctl("domain", "add", KRB_DOMAIN)
    n.ctl("domain", "set", KRB_DOMAIN, "kerberos-realm", REALM)
    n.ctl("user", "add", f"alice@{KRB_DOMAIN}", "--random-password")
    return n.start()


def test_gssapi(kdc, gnode):
    alice = dict(kdc.env, KRB5CCNAME=kdc.ticket_cache("alice", "alice-pw"))
    stranger = dict(kdc.env, KRB5CCNAME=kdc.ticket_cache("stranger", "stranger-pw"))
    for t in TRANSPORTS.values():
        out = checked(gnode, t, "GSSAPI", True, env=alice)
        assert "C: AUTH GSSAPI" in out, out
        found = re.findall(r"\[auth\] login user=(\S+) peer=\S+ mech=GSSAPI ", gnode.log_text())
        assert found[-1] == f"alice@{KRB_DOMAIN}", found
        checked(gnode, t, "GSSAPI", False, env=stranger)
