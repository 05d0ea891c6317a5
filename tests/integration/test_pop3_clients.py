"""Real POP3 clients against maild: fetchmail (plaintext USER/PASS,
STLS, implicit TLS, APOP, SASL CRAM-MD5), delivering through an MDA into
files that must hold the messages, and curl (pop3:// LIST and RETR,
STLS with --ssl-reqd, pop3s://). Helpers and the store setup come from
test_pop3.py."""
import os
import shutil
import subprocess

import pytest

from test_pop3 import (PASSWORD, SHARED_PASSWORD, SHARED_USER, USER, cert_path, deliver, message,
                       pop, setup_store)

FETCHMAIL = shutil.which("fetchmail")
CURL = shutil.which("curl")


@pytest.fixture
def cnode(node_factory):
    n = node_factory()
    setup_store(n, shared=True)
    return n.start()


def fetchmail(node, workdir, user, password, service="pop3", proto="POP3", tls="none",
              auth="password", keep=True):
    """Runs fetchmail once; returns (exit code, output, delivered mailbox text)."""
    out = workdir / f"mda-{proto}-{tls}-{auth}.mbox"
    out.unlink(missing_ok=True)
    tls_opts = {
        "none": "sslproto '' no sslcertck",
        "stls": f"sslproto 'TLS1.2+' sslcertck sslcertfile '{cert_path(node)}'",
        "implicit": f"ssl sslcertck sslcertfile '{cert_path(node)}'",
    }[tls]
    rc = workdir / f"fetchmailrc-{proto}-{tls}-{auth}"
    rc.write_text(
        "set no syslog\n"
        f"poll localhost with proto {proto} service {node.ports[service]} auth {auth}\n"
        f'  user "{user}" there with password "{password}"\n'
        f"  {tls_opts} {'keep' if keep else 'no keep'} fetchall\n"
        f"  mda \"/bin/sh -c 'cat >> {out}'\"\n")
    os.chmod(rc, 0o600)
    env = dict(os.environ, HOME=str(workdir), FETCHMAILHOME=str(workdir))
    r = subprocess.run([FETCHMAIL, "-f", str(rc), "--nodetach", "-v"], capture_output=True,
                       text=True, timeout=120, env=env)
    return r.returncode, r.stdout + r.stderr, out.read_bytes() if out.exists() else b""


needs_fetchmail = pytest.mark.skipif(FETCHMAIL is None, reason="fetchmail not installed")
needs_curl = pytest.mark.skipif(CURL is None, reason="curl not installed")


@needs_fetchmail
@pytest.mark.parametrize("service,tls", [("pop3", "none"), ("pop3", "stls"), ("pop3s", "implicit")])
def test_fetchmail_user_pass(cnode, workdir, service, tls):
    msgs = [message(i, f"fetchmail body {i}\r\n.dot line\r\n") for i in range(1, 3)]
    for m in msgs:
        deliver(cnode, USER, m)
    code, log, mbox = fetchmail(cnode, workdir, USER, PASSWORD, service=service, tls=tls)
    assert code == 0, log
    assert "2 messages for" in log, log
    for m in msgs:
        # fetchmail adds its own Received: line; the message follows unchanged
        assert m.replace(b"\r\n", b"\n") in mbox.replace(b"\r\n", b"\n"), (mbox, log)
    # keep: nothing was deleted
    p = pop(cnode)
    assert p.stat()[0] == 2
    p.quit()


@needs_fetchmail
def test_fetchmail_deletes_what_it_fetched(cnode, workdir):
    for i in range(1, 4):
        deliver(cnode, USER, message(i))
    code, log, mbox = fetchmail(cnode, workdir, USER, PASSWORD, tls="stls", keep=False)
    assert code == 0, log
    assert mbox.count(b"Subject: test ") == 3
    p = pop(cnode)
    assert p.stat()[0] == 0
    p.quit()
    cnode.wait_log(f"[pop3] quit user={USER}")
    assert "retr=3 top=0 dele=3 deleted=3" in cnode.log_text()
    # nothing new: fetchmail says so with exit code 1
    code, log, _ = fetchmail(cnode, workdir, USER, PASSWORD, tls="stls", keep=False)
    assert code == 1, log


@needs_fetchmail
def test_fetchmail_apop(cnode, workdir):
    deliver(cnode, SHARED_USER, message(1, "for apop\r\n"))
    code, log, mbox = fetchmail(cnode, workdir, SHARED_USER, SHARED_PASSWORD, proto="APOP")
    assert code == 0, log
    assert b"for apop" in mbox
    assert "mech=APOP" in cnode.log_text()
    code, log, _ = fetchmail(cnode, workdir, SHARED_USER, "wrong secret", proto="APOP")
    assert code == 3, log  # authentication failed


@needs_fetchmail
@pytest.mark.parametrize("tls", ["none", "stls"])
def test_fetchmail_sasl_cram_md5(cnode, workdir, tls):
    deliver(cnode, SHARED_USER, message(1, "for cram\r\n"))
    code, log, mbox = fetchmail(cnode, workdir, SHARED_USER, SHARED_PASSWORD, tls=tls,
                                auth="cram-md5")
    assert code == 0, log
    assert b"for cram" in mbox
    assert "AUTH CRAM-MD5" in log
    assert f"[auth] login user={SHARED_USER}" in cnode.log_text()
    assert "mech=CRAM-MD5 service=pop" in cnode.log_text()


def curl(*args, check=True):
    r = subprocess.run([CURL, "-sS", "--max-time", "60", *args], capture_output=True,
                       timeout=90)
    if check:
        assert r.returncode == 0, r.stderr.decode()
    return r


@needs_curl
def test_curl_list_and_retr(cnode):
    msgs = [message(i, f"curl body {i}\r\n") for i in range(1, 3)]
    for m in msgs:
        deliver(cnode, USER, m)
    url = f"pop3://127.0.0.1:{cnode.ports['pop3']}/"
    # curl picks the strongest SASL mechanism offered; alice's domain stores
    # no shared secrets, so she says which one
    cred = ["-u", f"{USER}:{PASSWORD}", "--login-options", "AUTH=PLAIN"]
    listing = curl(*cred, url).stdout.decode().split("\r\n")
    sizes = {int(l.split()[0]): int(l.split()[1]) for l in listing if l}
    got = {n: curl(*cred, url + str(n)).stdout for n in (1, 2)}
    # as stored: what was sent, after any trace fields SMTP added
    assert sorted(m for g in got.values() for m in msgs if g.endswith(m)) == sorted(msgs)
    assert {n: len(g) for n, g in got.items()} == sizes
    # STLS required by the client; then pop3s://
    assert curl("--ssl-reqd", "--cacert", str(cert_path(cnode)), *cred,
                f"pop3://localhost:{cnode.ports['pop3']}/1").stdout == got[1]
    assert curl("--cacert", str(cert_path(cnode)), *cred,
                f"pop3s://localhost:{cnode.ports['pop3s']}/2").stdout == got[2]
    # a custom command: DELE, then the maildrop has one message left
    curl(*cred, "-X", "DELE", "-I", url + "1")
    assert len([l for l in curl(*cred, url).stdout.decode().split("\r\n") if l]) == 1
    r = curl("-u", f"{USER}:wrong", "--login-options", "AUTH=PLAIN", url, check=False)
    assert r.returncode == 67  # CURLE_LOGIN_DENIED


@needs_curl
def test_curl_with_its_own_choice_of_mechanism(cnode):
    m = message(1, "curl sasl\r\n")
    deliver(cnode, SHARED_USER, m)
    r = curl("-v", "-u", f"{SHARED_USER}:{SHARED_PASSWORD}",
             f"pop3://127.0.0.1:{cnode.ports['pop3']}/1")
    assert r.stdout.endswith(m)
    mech = next(l.split()[2] for l in r.stderr.decode().splitlines() if l.startswith("> AUTH "))
    assert f"mech={mech} service=pop" in cnode.log_text()
    r = curl("-v", "--login-options", "AUTH=+APOP", "-u", f"{SHARED_USER}:{SHARED_PASSWORD}",
             f"pop3://127.0.0.1:{cnode.ports['pop3']}/1")
    assert r.stdout.endswith(m)
    assert f"> APOP {SHARED_USER} " in r.stderr.decode()
