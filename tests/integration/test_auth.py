"""Authentication through the real maild and mailctl: per-domain
shared-secret storage, the secret following the password (add, passwd,
import), every mechanism proved by `mailctl user auth-test --mechanism`
(a real libsasl2 client in mailctl's request, run by the daemon's auth
layer), failure delays and counters, log lines, offline operation, and
the auth configuration keys."""
import signal
import socket
import statistics
import subprocess
import time

import pytest

from conftest import MAILD, MAILCTL

SHARED_MECHS = ["CRAM-MD5", "DIGEST-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256", "APOP"]
ALL_MECHS = ["PLAIN", "LOGIN"] + SHARED_MECHS


def sha512_crypt(password):
    return subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password + "\n",
                          capture_output=True, text=True, check=True).stdout.strip()


def auth_test(node, user, password, mech=None, check=False):
    args = ["user", "auth-test", user, "--password-stdin"]
    if mech:
        args += ["--mechanism", mech]
    return node.ctl(*args, input=password + "\n", check=check)


def shared_domain(node, domain="shared.test"):
    node.ctl("domain", "add", domain)
    out = node.ctl("domain", "set", domain, "shared-secret-auth", "on").stdout
    assert "shared-secret-auth on" in out
    assert "existing users have none yet" in out


def test_domain_settings(node):
    node.ctl("domain", "add", "example.test")
    show = node.ctl("domain", "show", "Example.TEST").stdout
    assert "domain:             example.test" in show
    assert "shared-secret-auth: off" in show
    assert "kerberos-realm:     none" in show
    node.ctl("domain", "set", "example.test", "shared-secret-auth", "on")
    node.ctl("domain", "set", "example.test", "kerberos-realm", "EXAMPLE.TEST")
    show = node.ctl("domain", "show", "example.test").stdout
    assert "shared-secret-auth: on" in show
    assert "kerberos-realm:     EXAMPLE.TEST" in show

    node.ctl("domain", "add", "other.test")
    r = node.ctl("domain", "set", "other.test", "kerberos-realm", "EXAMPLE.TEST", check=False)
    assert r.returncode == 1 and "already mapped to domain example.test" in r.stderr
    for args in (["set", "other.test", "shared-secret-auth", "maybe"],
                 ["set", "other.test", "colour", "blue"], ["show"]):
        r = node.ctl("domain", *args, check=False)
        assert r.returncode == 2 and "usage" in r.stderr
    r = node.ctl("domain", "set", "other.test", "kerberos-realm", "BAD REALM", check=False)
    assert r.returncode == 1 and "invalid Kerberos realm" in r.stderr
    r = node.ctl("domain", "show", "nowhere.test", check=False)
    assert r.returncode == 1 and "nowhere.test" in r.stderr
    node.ctl("domain", "set", "example.test", "kerberos-realm", "none")
    assert "kerberos-realm:     none" in node.ctl("domain", "show", "example.test").stdout


def test_every_mechanism_through_the_daemon(node):
    shared_domain(node)
    node.ctl("user", "add", "alice@shared.test", "--password-stdin", input="Alice-Pw1\n")
    show = node.ctl("user", "show", "alice@shared.test").stdout
    assert "secret:   stored" in show and "Alice-Pw1" not in show
    assert "password: yescrypt" in show
    # the plain auth-test still works as before
    assert "password ok" in auth_test(node, "alice@shared.test", "Alice-Pw1", check=True).stdout
    for mech in ALL_MECHS:
        r = auth_test(node, "Alice@Shared.test", "Alice-Pw1", mech)
        assert r.returncode == 0, f"{mech}: {r.stderr}"
        assert f"alice@shared.test: {mech} ok" in r.stdout
        r = auth_test(node, "alice@shared.test", "Wr0ng-Guess", mech)
        assert r.returncode == 1, mech
        assert "bad-credentials" in r.stderr or "gave up" in r.stderr, r.stderr
    r = auth_test(node, "alice@shared.test", "Alice-Pw1", "NTLM")
    assert r.returncode == 1 and "unknown-mechanism" in r.stderr
    # the daemon logged every attempt, never a password
    node.wait_log("[auth] login user=alice@shared.test peer=mailctl mech=SCRAM-SHA-256")
    node.wait_log("reason=bad-credentials")
    log = node.log_text()
    assert "Alice-Pw1" not in log
    assert "Wr0ng-Guess" not in log
    stats = node.ctl("auth", "stats").stdout
    assert "SCRAM-SHA-256" in stats and "ok=1 failed=1" in stats
    assert "delayed=" in stats
    status = node.ctl("status").stdout
    assert "auth:" in status and "CRAM-MD5" in status


def test_secret_follows_the_domain_setting(node):
    node.ctl("domain", "add", "plain.test")
    node.ctl("user", "add", "bob@plain.test", "--password", "Bob-Pw1")
    assert "secret:   none" in node.ctl("user", "show", "bob@plain.test").stdout
    assert auth_test(node, "bob@plain.test", "Bob-Pw1", "PLAIN").returncode == 0
    # no domain stores secrets: shared-secret mechanisms are not offered at all
    r = auth_test(node, "bob@plain.test", "Bob-Pw1", "CRAM-MD5")
    assert r.returncode == 1 and "unknown-mechanism" in r.stderr

    # turned on: existing users have no secret until their password is set again
    node.ctl("domain", "set", "plain.test", "shared-secret-auth", "on")
    r = auth_test(node, "bob@plain.test", "Bob-Pw1", "CRAM-MD5")
    assert r.returncode == 1 and "no stored secret" in r.stderr
    node.ctl("user", "passwd", "bob@plain.test", "--password-stdin", input="Bob-Pw2\n")
    assert "secret:   stored" in node.ctl("user", "show", "bob@plain.test").stdout
    for mech in SHARED_MECHS:
        assert auth_test(node, "bob@plain.test", "Bob-Pw2", mech).returncode == 0, mech

    # a password given only as a hash cannot carry a secret: the old one goes
    node.ctl("user", "passwd", "bob@plain.test", "--password-hash", sha512_crypt("Bob-Pw3"))
    assert "secret:   none" in node.ctl("user", "show", "bob@plain.test").stdout
    assert auth_test(node, "bob@plain.test", "Bob-Pw2", "CRAM-MD5").returncode == 1
    assert auth_test(node, "bob@plain.test", "Bob-Pw3", "PLAIN").returncode == 0

    # a secret is refused for a domain that does not store them
    node.ctl("domain", "add", "nosecret.test")
    r = node.ctl("user", "add", "eve@nosecret.test", "--password-hash", sha512_crypt("x"),
                 "--password-secret", "x", check=False)
    assert r.returncode == 1 and "does not store secrets" in r.stderr

    # turned off: every secret of the domain is deleted at once
    node.ctl("user", "passwd", "bob@plain.test", "--password", "Bob-Pw4")
    node.ctl("user", "add", "carl@plain.test", "--password", "Carl-Pw1")
    out = node.ctl("domain", "set", "plain.test", "shared-secret-auth", "off").stdout
    assert "every stored secret of the domain was deleted" in out
    for user in ("bob@plain.test", "carl@plain.test"):
        assert "secret:   none" in node.ctl("user", "show", user).stdout
    assert auth_test(node, "bob@plain.test", "Bob-Pw4", "PLAIN").returncode == 0


def test_disabled_and_unknown_users(node):
    shared_domain(node)
    node.ctl("user", "add", "dan@shared.test", "--password", "Dan-Pw1")
    node.ctl("user", "disable", "dan@shared.test")
    for mech in ("PLAIN", "SCRAM-SHA-256", "APOP"):
        r = auth_test(node, "dan@shared.test", "Dan-Pw1", mech)
        assert r.returncode == 1 and "disabled" in r.stderr, (mech, r.stderr)
        r = auth_test(node, "dan@shared.test", "wrong", mech)
        assert r.returncode == 1 and "bad-credentials" in r.stderr or "gave up" in r.stderr
    r = auth_test(node, "ghost@shared.test", "x", "CRAM-MD5")
    assert r.returncode == 1 and "unknown user" in r.stderr
    r = node.ctl("user", "auth-test", "dan@shared.test", "--password", "x", "--mechanism",
                 check=False)
    assert r.returncode != 0


def test_failure_delays_grow(node_factory):
    n = node_factory(extra="auth = { failure_delay_initial_ms = 200; failure_delay_max_ms = 800; };\n")
    n.start()
    n.ctl("domain", "add", "d.test")
    n.ctl("user", "add", "u@d.test", "--password", "Right-1")
    for _ in range(4):
        auth_test(n, "u@d.test", "wrong", "PLAIN")
    log = n.log_text()
    delays = [int(l.split("delay_ms=")[1].split()[0]) for l in log.splitlines()
              if "login failed user=u@d.test" in l]
    assert delays == [200, 400, 800, 800], delays
    # the right password is never delayed
    assert auth_test(n, "u@d.test", "Right-1", "PLAIN").returncode == 0


def pop3_wrong_password_ms(node, user):
    """How long POP3 takes to refuse a wrong password for user: the hash
    time (no failure delay configured)."""
    with socket.create_connection(("127.0.0.1", node.ports["pop3"]), timeout=30) as s:
        f = s.makefile("rb")
        assert f.readline().startswith(b"+OK")
        s.sendall(f"USER {user}\r\n".encode())
        assert f.readline().startswith(b"+OK")
        t0 = time.monotonic()
        s.sendall(b"PASS not-the-password\r\n")
        assert f.readline().startswith(b"-ERR")
        return (time.monotonic() - t0) * 1000


def test_reload_password_cost_reaches_unknown_users(node_factory):
    """Unknown users are checked against a hash of the site's cost, also
    after a reload changed it: answered at the old cost, they would stand
    out by their timing (user enumeration)."""
    n = node_factory(extra="auth = { failure_delay_initial_ms = 0; failure_delay_max_ms = 0; };\n")
    n.start()
    n.ctl("domain", "add", "t.test")
    n.config.write_text(n.config.read_text().replace("password = { cost = 1; };",
                                                     "password = { cost = 6; };"))
    n.signal(signal.SIGHUP)
    n.wait_log("[config] reloaded")
    # the new dummy hash is computed off the loop
    n.wait_log("unknown users are now checked at password scheme yescrypt cost 6")
    n.ctl("user", "add", "known@t.test", "--password", "Known-1")  # hashed at cost 6
    known, unknown = [], []
    for _ in range(5):
        known.append(pop3_wrong_password_ms(n, "known@t.test"))
        unknown.append(pop3_wrong_password_ms(n, "nobody@t.test"))
    # cost 1 is ~30 times faster than cost 6; the same cost is about even
    assert statistics.median(unknown) > statistics.median(known) / 3, (known, unknown)


def test_stop_does_not_wait_for_a_dummy_hash_in_progress(node_factory):
    """A reload to a high bcrypt cost makes a new dummy hash for seconds
    (cost 18: about 15 s here); SIGTERM meanwhile stops maild within its
    drain, not once the hash is done (the node's lock was held that long)."""
    n = node_factory()
    n.config.write_text(n.config.read_text().replace(
        "password = { cost = 1; };", 'password = { scheme = "bcrypt"; cost = 4; };'))
    n.start()
    n.config.write_text(n.config.read_text().replace("cost = 4;", "cost = 18;"))
    n.signal(signal.SIGHUP)
    n.wait_log("[config] reloaded")
    start = time.monotonic()
    n.signal(signal.SIGTERM)
    assert n.proc.wait(30) == 0
    assert time.monotonic() - start < 5, "stop waited for the hash"
    assert "now checked at password scheme bcrypt cost 18" not in n.log_text()


def test_import_stores_secrets_for_shared_domains(node, workdir):
    shared_domain(node)
    node.ctl("domain", "add", "plain.test")
    sha = sha512_crypt("hashed-pw")
    csv = workdir / "users.csv"
    csv.write_text("\n".join([
        "s1@shared.test,Plain-1",
        f"s2@shared.test,{sha}",
        "p1@plain.test,Plain-2",
        '"s3@shared.test","pa,ss""word",10M',
    ]) + "\n")
    r = node.ctl("user", "import", str(csv))
    assert "4 records, 4 imported, 0 skipped" in r.stdout, r.stdout + r.stderr
    assert "secret:   stored" in node.ctl("user", "show", "s1@shared.test").stdout
    assert "secret:   none" in node.ctl("user", "show", "s2@shared.test").stdout
    assert "secret:   none" in node.ctl("user", "show", "p1@plain.test").stdout
    assert auth_test(node, "s1@shared.test", "Plain-1", "DIGEST-MD5").returncode == 0
    assert auth_test(node, "s3@shared.test", 'pa,ss"word', "SCRAM-SHA-1").returncode == 0
    assert auth_test(node, "s2@shared.test", "hashed-pw", "PLAIN").returncode == 0
    assert auth_test(node, "s2@shared.test", "hashed-pw", "CRAM-MD5").returncode == 1


def test_offline(node_factory):
    n = node_factory()  # never started: mailctl works on the store itself
    n.ctl("domain", "add", "off.test")
    n.ctl("domain", "set", "off.test", "shared-secret-auth", "on")
    n.ctl("user", "add", "o@off.test", "--password", "Off-Pw1")
    assert "secret:   stored" in n.ctl("user", "show", "o@off.test").stdout
    for mech in ("SCRAM-SHA-256", "APOP", "LOGIN"):
        r = auth_test(n, "o@off.test", "Off-Pw1", mech)
        assert r.returncode == 0, r.stderr
    r = n.ctl("auth", "stats", check=False)
    assert r.returncode == 1 and "no maild" in r.stderr


@pytest.mark.parametrize("text,message", [
    ('auth = { mechanisms = "PLAIN FOO"; };\n', "'FOO' is not one of"),
    ("auth = { failure_delay_initial_ms = 900; failure_delay_max_ms = 100; };\n",
     "below failure_delay_initial_ms"),
    ("auth = { failure_forget_sec = 0; };\n", "out of range"),
    ("auth = { colour = 1; };\n", "unknown key 'colour' in auth"),
])
def test_auth_config_errors(workdir, text, message):
    conf = workdir / "bad.conf"
    conf.write_text(text)
    r = subprocess.run([MAILD, "-c", str(conf), "--check-config"], capture_output=True, text=True)
    assert r.returncode == 1 and message in r.stderr, r.stderr


def test_auth_config_mechanisms(node_factory):
    n = node_factory(extra='auth = { mechanisms = "SCRAM-SHA-256 PLAIN"; threads = 1; '
                     'hostname = "mail.example.test"; };\n')
    n.start()
    n.ctl("domain", "add", "m.test")
    n.ctl("domain", "set", "m.test", "shared-secret-auth", "on")
    n.ctl("user", "add", "m@m.test", "--password", "Mm-1")
    assert auth_test(n, "m@m.test", "Mm-1", "SCRAM-SHA-256").returncode == 0
    assert auth_test(n, "m@m.test", "Mm-1", "DIGEST-MD5").returncode == 1
    assert "mechanisms (with TLS): PLAIN SCRAM-SHA-256 (+APOP)" in n.ctl("auth", "stats").stdout
