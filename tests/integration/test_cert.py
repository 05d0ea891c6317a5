"""`mailctl cert` end to end: generate, list, csr, import, assign, reload,
offline against the store and through a running maild, with the real
openssl command as the independent judge of what mailctl writes."""
import fcntl
import os
import pathlib
import re
import signal
import stat
import subprocess
import time

import pytest

from conftest import MAILD


def openssl(*args, input=None, check=True):
    r = subprocess.run(["openssl", *args], input=input, capture_output=True, text=True,
                       timeout=60)
    if check and r.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)}: {r.stderr}")
    return r


def make_ca(d, name="Test CA"):
    key, crt = d / f"{name.replace(' ', '_')}.key", d / f"{name.replace(' ', '_')}.pem"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-days", "30", "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(crt))
    return key, crt


def sign(d, csr, ca_key, ca_crt, out, names, ca=False, days=90):
    ext = d / f"{out.name}.ext"
    lines = ["basicConstraints=critical,CA:TRUE" if ca else "basicConstraints=CA:FALSE"]
    if names:
        lines.append("subjectAltName=" + ",".join(f"DNS:{n}" for n in names))
    ext.write_text("\n".join(lines) + "\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
            "-CAcreateserial", "-days", str(days), "-sha256", "-extfile", str(ext), "-out", str(out))
    return out


def self_signed(d, name, cn):
    key, crt = d / f"{name}.key", d / f"{name}.crt"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "60", "-subj", f"/CN={cn}",
            "-addext", f"subjectAltName=DNS:{cn}", "-keyout", str(key), "-out", str(crt))
    return crt, key


def certs_dir(node):
    return node.store / "tls" / "certs"


def service_uid():
    import pwd
    return pwd.getpwnam("clustermail").pw_uid if os.geteuid() == 0 else os.geteuid()


def test_generate_and_list_offline(node_factory):
    n = node_factory()
    r = n.ctl("cert", "generate", "default", "--names", "Mail.Example.TEST,localhost")
    assert "certificate default generated: self-signed, RSA 2048" in r.stdout
    n.ctl("cert", "generate", "short", "--names", "soon.example.test", "--days", "10",
          "--key", "p256")
    out = n.ctl("cert", "list").stdout
    block = out.split("\nshort\n")[0]
    assert block.startswith("default\n")
    assert "  subject:    CN=mail.example.test" in block
    assert "  names:      mail.example.test, localhost" in block
    assert "(self-signed)" in block
    assert re.search(r"  days left:  36[45]\n", block), block
    assert "WARNING" not in block
    assert "  used by:    nothing" in block
    short = out.split("\nshort\n")[1]
    assert re.search(r"  days left:  (9|10)  WARNING: expires in under 30 days", short), short
    assert "  key:        EC prime256v1" in short
    # the files: key 0600, certificate 0640, owned by the service user
    key = certs_dir(n) / "default.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((certs_dir(n) / "default.crt").stat().st_mode) == 0o640
    assert key.stat().st_uid == service_uid()
    # openssl agrees about what was written
    text = openssl("x509", "-in", str(certs_dir(n) / "default.crt"), "-noout", "-text").stdout
    assert "DNS:mail.example.test, DNS:localhost" in text
    openssl("pkey", "-in", str(key), "-noout")
    # no silent replacement
    r = n.ctl("cert", "generate", "default", "--names", "x.test", check=False)
    assert r.returncode == 1 and "--force" in r.stderr
    n.ctl("cert", "generate", "default", "--names", "x.test", "--force")


@pytest.mark.parametrize("args,message", [
    (["generate", "../evil", "--names", "a.test"], "not a certificate name"),
    (["generate", "x", "--names", "bad_name.test"], "not a DNS name or IP address"),
    (["generate", "x", "--names", "a.test", "--days", "0"], "--days must be 1..3650"),
    (["generate", "x", "--names", "a.test", "--key", "dsa"], "--key must be rsa2048 or p256"),
    (["generate", "x"], "usage: mailctl cert generate"),
    (["assign", "nosuch", "--default"], "no such certificate"),
    (["unassign", "--default"], "has no certificate"),
    (["frobnicate"], "usage: mailctl cert"),
])
def test_usage_and_input_errors(node_factory, args, message):
    n = node_factory()
    r = n.ctl("cert", *args, check=False)
    assert r.returncode in (1, 2)
    assert message in r.stderr, r.stderr


def test_csr_is_valid_and_import_with_stored_key(node_factory, workdir):
    n = node_factory()
    r = n.ctl("cert", "csr", "mail", "--names", "mail.example.test,imap.example.test")
    assert r.stdout.startswith("-----BEGIN CERTIFICATE REQUEST-----")
    assert "--stored-key" in r.stderr
    csr = workdir / "mail.csr"
    csr.write_text(r.stdout)
    v = openssl("req", "-verify", "-noout", "-text", "-in", str(csr))
    assert "verify OK" in v.stdout + v.stderr
    assert "DNS:mail.example.test, DNS:imap.example.test" in v.stdout
    pending = n.store / "tls" / "pending" / "mail.key"
    assert stat.S_IMODE(pending.stat().st_mode) == 0o600
    assert "mail (pending" in n.ctl("cert", "list").stdout

    ca_key, ca_crt = make_ca(workdir)
    signed = sign(workdir, csr, ca_key, ca_crt, workdir / "mail.crt",
                  ["mail.example.test", "imap.example.test"])
    r = n.ctl("cert", "import", "mail", str(signed), "--stored-key", str(ca_crt))
    assert "certificate mail imported: CN=mail.example.test" in r.stdout
    assert "self-signed root" in r.stderr  # a root in the chain is noted
    assert not pending.exists()
    assert stat.S_IMODE((certs_dir(n) / "mail.key").stat().st_mode) == 0o600
    out = n.ctl("cert", "list").stdout
    assert "  issuer:     CN=Test CA\n" in out
    assert "  chain:      1 intermediate\n" in out
    assert "pending" not in out
    # the stored key really is the one the CA certified
    openssl("x509", "-in", str(signed), "-noout")
    r = openssl("x509", "-noout", "-pubkey", "-in", str(certs_dir(n) / "mail.crt"))
    k = openssl("pkey", "-pubout", "-in", str(certs_dir(n) / "mail.key"))
    assert r.stdout == k.stdout


def test_import_checks(node_factory, workdir):
    n = node_factory()
    crt_a, key_a = self_signed(workdir, "a", "a.example.test")
    crt_b, key_b = self_signed(workdir, "b", "b.example.test")
    r = n.ctl("cert", "import", "a", str(crt_a), str(key_b), check=False)
    assert r.returncode == 1
    assert "the private key does not match the certificate" in r.stderr
    assert not (certs_dir(n) / "a.crt").exists()

    # chain order: root, intermediate, leaf made with openssl
    root_key, root = make_ca(workdir, "Root")
    inter_key = workdir / "inter.key"
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-subj", "/CN=Intermediate", "-keyout", str(inter_key), "-out", str(workdir / "inter.csr"))
    inter = sign(workdir, workdir / "inter.csr", root_key, root, workdir / "inter.pem", [], ca=True)
    leaf_key = workdir / "leaf.key"
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=leaf.example.test",
            "-keyout", str(leaf_key), "-out", str(workdir / "leaf.csr"))
    leaf = sign(workdir, workdir / "leaf.csr", inter_key, inter, workdir / "leaf.pem",
                ["leaf.example.test"])
    wrong = workdir / "wrong-chain.pem"
    wrong.write_text(root.read_text() + inter.read_text())
    r = n.ctl("cert", "import", "leaf", str(leaf), str(leaf_key), str(wrong), check=False)
    assert r.returncode == 1 and "chain out of order" in r.stderr, r.stderr
    r = n.ctl("cert", "import", "leaf", str(leaf), str(leaf_key), str(root), check=False)
    assert r.returncode == 1 and "was not issued by" in r.stderr
    n.ctl("cert", "import", "leaf", str(leaf), str(leaf_key), str(inter))
    assert openssl("verify", "-CAfile", str(root), "-untrusted", str(certs_dir(n) / "leaf.chain"),
                   str(certs_dir(n) / "leaf.crt")).returncode == 0
    # a full chain in the certificate file works as well
    full = workdir / "full.pem"
    full.write_text(leaf.read_text() + inter.read_text())
    n.ctl("cert", "import", "leaf2", str(full), str(leaf_key))
    assert "  chain:      1 intermediate\n" in n.ctl("cert", "list").stdout

    # a leaf signed with SHA-1: maild's contexts (security level 2) would
    # refuse to load it, and with it every certificate, so the import does
    (workdir / "sha1.ext").write_text("subjectAltName=DNS:leaf.example.test\n")
    openssl("x509", "-req", "-in", str(workdir / "leaf.csr"), "-CA", str(root), "-CAkey",
            str(root_key), "-CAcreateserial", "-days", "30", "-sha1", "-extfile",
            str(workdir / "sha1.ext"), "-out", str(workdir / "sha1.pem"))
    r = n.ctl("cert", "import", "weak", str(workdir / "sha1.pem"), str(leaf_key), check=False)
    assert r.returncode == 1 and "maild could not serve this certificate" in r.stderr, r.stderr
    assert not (certs_dir(n) / "weak.crt").exists()

    # (expired certificates: tests/unit/test_tls.c, openssl 3.0 cannot backdate)

    # unreadable, missing and encrypted input, read on the client side
    r = n.ctl("cert", "import", "x", str(workdir / "missing.pem"), str(key_a), check=False)
    assert r.returncode == 1 and "missing.pem" in r.stderr
    enc = workdir / "enc.key"
    openssl("pkey", "-in", str(key_a), "-aes256", "-passout", "pass:secret", "-out", str(enc))
    r = n.ctl("cert", "import", "a", str(crt_a), str(enc), check=False)
    assert r.returncode == 1 and "encrypted" in r.stderr
    r = n.ctl("cert", "import", "a", str(crt_a), check=False)
    assert r.returncode == 2
    # a good pair, then no silent replacement
    n.ctl("cert", "import", "a", str(crt_a), str(key_a))
    r = n.ctl("cert", "import", "a", str(crt_b), str(key_b), check=False)
    assert r.returncode == 1 and "--force" in r.stderr
    n.ctl("cert", "import", "a", str(crt_b), str(key_b), "--force")
    assert "CN=b.example.test" in n.ctl("cert", "list").stdout


def test_import_refuses_a_small_ca_key(node_factory, workdir):
    """A CA whose key is below security level 2 (RSA 1024) in the chain:
    maild's contexts would refuse to send that chain, and with it stop
    every reload and start, so the import refuses it and stores nothing."""
    n = node_factory()
    ca_key, ca = workdir / "small-ca.key", workdir / "small-ca.pem"
    openssl("req", "-x509", "-newkey", "rsa:1024", "-nodes", "-days", "30", "-subj",
            "/CN=Small CA", "-keyout", str(ca_key), "-out", str(ca))
    assert "Public-Key: (1024 bit)" in openssl("x509", "-in", str(ca), "-noout", "-text").stdout
    leaf_key = workdir / "small-leaf.key"
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=leaf.example.test",
            "-keyout", str(leaf_key), "-out", str(workdir / "small-leaf.csr"))
    leaf = sign(workdir, workdir / "small-leaf.csr", ca_key, ca, workdir / "small-leaf.pem",
                ["leaf.example.test"])
    r = n.ctl("cert", "import", "small", str(leaf), str(leaf_key), str(ca), check=False)
    assert r.returncode == 1 and "maild could not send its chain" in r.stderr, r.stderr
    full = workdir / "small-full.pem"
    full.write_text(leaf.read_text() + ca.read_text())
    r = n.ctl("cert", "import", "small", str(full), str(leaf_key), check=False)
    assert r.returncode == 1 and "maild could not send its chain" in r.stderr, r.stderr
    certs = certs_dir(n)
    assert not certs.exists() or not list(certs.iterdir())


def test_assign_unassign_del(node_factory):
    n = node_factory()
    n.ctl("cert", "generate", "main", "--names", "mail.example.test")
    n.ctl("cert", "generate", "other", "--names", "mail.other.test")
    assert "the default is served certificate main" in n.ctl("cert", "assign", "main",
                                                             "--default").stdout
    r = n.ctl("cert", "assign", "other", "Other.TEST")
    assert "domain other.test is served certificate other" in r.stdout
    assert r.stderr == ""
    r = n.ctl("cert", "assign", "main", "unrelated.test")
    assert "warning: none of main's names is unrelated.test" in r.stderr
    n.ctl("cert", "assign", "other", "--service", "imaps")
    r = n.ctl("cert", "assign", "other", "--service", "gopher", check=False)
    assert r.returncode == 1 and "not a service" in r.stderr
    text = (n.store / "tls" / "assignments").read_text()
    assert "default main\n" in text and "domain other.test other\n" in text
    assert "service imaps other\n" in text
    out = n.ctl("cert", "list").stdout
    assert "  used by:    default, domain unrelated.test\n" in out
    assert "  used by:    domain other.test, service imaps\n" in out
    r = n.ctl("cert", "del", "other", check=False)
    assert r.returncode == 1 and "still assigned" in r.stderr
    n.ctl("cert", "unassign", "other.test")
    n.ctl("cert", "unassign", "--service", "imaps")
    assert "certificate other deleted" in n.ctl("cert", "del", "other").stdout
    assert not (certs_dir(n) / "other.key").exists()


def test_reload_through_the_daemon(node_factory):
    n = node_factory().start()
    n.wait_log("[tls] reloaded (startup): certificates=0 default=none")
    r = n.ctl("cert", "generate", "default", "--names", "mail.example.test,localhost")
    assert "run 'mailctl cert reload'" in r.stdout  # the daemon did it
    assert (certs_dir(n) / "default.key").stat().st_uid == service_uid()
    n.ctl("cert", "assign", "default", "--default")
    n.ctl("cert", "generate", "other", "--names", "mail.other.test", "--key", "p256")
    n.ctl("cert", "assign", "other", "other.test")
    r = n.ctl("cert", "reload")
    assert "certificates reloaded: certificates=2 default=default services=0 domains=1" in r.stdout
    n.wait_log("[tls] reloaded (mailctl): certificates=2 default=default")
    n.wait_log("[control] tls op=cert-assign name=other target=other.test")
    # SIGHUP reloads the certificates too
    n.signal(signal.SIGHUP)
    n.wait_log("[tls] reloaded (SIGHUP): certificates=2")
    # a broken store is refused and the running set kept
    (certs_dir(n) / "other.key").unlink()
    r = n.ctl("cert", "reload", check=False)
    assert r.returncode == 1
    assert "other.crt or other.key is missing" in r.stderr
    n.wait_log("reload (mailctl) refused, still serving the previous certificates")
    assert n.ctl("status").returncode == 0
    # listed as broken, and fixed by unassigning
    n.ctl("cert", "unassign", "other.test")
    assert "certificates=1" in n.ctl("cert", "reload").stdout
    # the log never carries key material
    assert "PRIVATE KEY" not in n.log_text()


def test_reload_needs_a_daemon(node_factory):
    n = node_factory()
    r = n.ctl("cert", "reload", check=False)
    assert r.returncode == 1 and "no maild is running" in r.stderr


def test_start_refuses_broken_certificates(node_factory):
    n = node_factory()
    n.ctl("cert", "generate", "main", "--names", "mail.example.test")
    n.ctl("cert", "assign", "main", "--default")
    (certs_dir(n) / "main.crt").write_text("not a certificate\n")
    n.start(wait=False)
    assert n.proc.wait(20) == 1
    assert "cannot load the TLS certificates" in n.log_text()


def test_check_config_shows_tls(node_factory, workdir):
    n = node_factory(extra='tls = { min_protocol = "TLSv1.3"; };\n')
    r = subprocess.run([MAILD, "-c", str(n.config), "--check-config"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert re.search(r"service smtps\s+enabled\s+127\.0\.0\.1:\d+ tls=implicit require_tls=yes",
                     r.stdout), r.stdout
    assert re.search(r"service imap\s+enabled\s+127\.0\.0\.1:\d+ tls=starttls require_tls=no",
                     r.stdout), r.stdout
    bad = workdir / "bad.conf"
    bad.write_text('tls = { ciphers = "NOT-A-CIPHER"; };\n')
    r = subprocess.run([MAILD, "-c", str(bad), "--check-config"], capture_output=True, text=True)
    assert r.returncode == 1 and f"{bad}:1: tls: tls.ciphers" in r.stderr, r.stderr


def test_concurrent_cert_commands_lose_nothing(node_factory):
    """mailctl processes changing the certificates at once (offline, or on
    several nodes of one store) take the store's certificate lock: every
    assignment stays, and a key always matches its certificate."""
    n = node_factory()
    n.ctl("cert", "generate", "c1", "--names", "a.example.org", "--key", "p256")
    base = n.ctl_argv("cert")
    procs = [subprocess.Popen(base + ["assign", "c1", f"d{i}.example.org"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for i in range(16)]
    procs += [subprocess.Popen(base + ["generate", "c1", "--names", "a.example.org",
                                       "--key", "p256", "--force"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
              for _ in range(4)]
    assert [p.wait(60) for p in procs] == [0] * len(procs)
    lines = (n.store / "tls" / "assignments").read_text().splitlines()
    assert sorted(l for l in lines if l.startswith("domain ")) == sorted(
        f"domain d{i}.example.org c1" for i in range(16))
    certs = n.store / "tls" / "certs"
    pub = lambda args: subprocess.run(["openssl", *args], capture_output=True,  # noqa: E731
                                      check=True).stdout
    assert pub(["pkey", "-in", str(certs / "c1.key"), "-pubout"]) == pub(
        ["x509", "-in", str(certs / "c1.crt"), "-pubkey", "-noout"])
    assert not [p.name for p in certs.iterdir() if ".tmp." in p.name]


def hold_cert_lock(n):
    """The store's certificate lock, held by the test process (its POSIX
    record lock and mailctl's OFD lock on the same file exclude each
    other)."""
    f = open(n.store / "tls" / ".lock", "r+")
    fcntl.lockf(f, fcntl.LOCK_EX)
    return f


def test_changes_take_the_lock_only_to_install(node_factory):
    """maild's reload waits for the certificate lock on its main loop, so a
    change holds it only for its last step: a bad command fails without
    waiting for it, and a key is made and written (under a temporary name)
    while someone else holds it."""
    n = node_factory()
    n.ctl("cert", "generate", "base", "--names", "base.example.test", "--key", "p256")
    certs = certs_dir(n)
    lock = hold_cert_lock(n)
    try:
        for args in (["frobnicate"], ["generate", "x"], ["del"],
                     ["generate", "../evil", "--names", "a.test"],
                     ["generate", "base", "--names", "b.test"],
                     ["assign", "base", "--service", "gopher"], ["del", "../x"],
                     ["import-pem", "x", "--cert", "junk"],
                     ["import-pem", "x", "--cert", "junk", "--key", "junk"]):
            r = n.ctl("cert", *args, check=False, timeout=10)
            assert r.returncode in (1, 2), (args, r.stderr)
        p = subprocess.Popen(n.ctl_argv("cert", "generate", "late", "--names", "late.example.test"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while not [f for f in certs.iterdir() if f.name.startswith("late.crt.tmp.")]:
            assert p.poll() is None, p.communicate()
            assert time.monotonic() < deadline, "no certificate made while the lock was held"
            time.sleep(0.05)
        time.sleep(0.2)
        assert p.poll() is None  # waiting for the lock to install
        assert not (certs / "late.crt").exists() and not (certs / "late.key").exists()
    finally:
        lock.close()
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert "certificate late generated" in out
    assert openssl("pkey", "-in", str(certs / "late.key"), "-pubout").stdout == openssl(
        "x509", "-in", str(certs / "late.crt"), "-pubkey", "-noout").stdout
    assert stat.S_IMODE((certs / "late.key").stat().st_mode) == 0o600
    assert not [f.name for f in certs.iterdir() if ".tmp." in f.name]


def test_sighup_with_refused_certificates_says_tls_settings_wait(node_factory):
    """The TLS settings live in the certificate set: when a SIGHUP's
    certificate reload is refused, the running set keeps the old settings,
    and the log says so instead of only 'reloaded'."""
    import signal as sig
    n = node_factory()
    n.ctl("cert", "generate", "main", "--names", "mail.example.test")
    n.ctl("cert", "assign", "main", "--default")
    n.start()
    (certs_dir(n) / "main.crt").write_text("not a certificate\n")
    n.write_config('tls = { min_protocol = "TLSv1.3"; };\n')
    n.signal(sig.SIGHUP)
    n.wait_log("[config] reloaded")
    assert "tls settings not applied: the certificates were refused" in n.log_text()
