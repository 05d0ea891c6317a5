"""TLS on the listener framework with real clients: openssl s_client and
Python's ssl module against the test-only TLS server
(tests/unit/test_tls_listener.c --serve), with certificates made by the
real mailctl on a temporary store. maild serves no TLS port until the
protocol engines land; these tests then move to maild's own ports."""
import os
import pathlib
import signal
import socket
import ssl
import subprocess
import time

import pytest

from conftest import MAILCTL, MAILD

SERVER = pathlib.Path(MAILD).resolve().parents[1] / "tests" / "test_tls_listener"


def mailctl(store, *args):
    r = subprocess.run([MAILCTL, "--store", str(store), *args], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    for marker in ("Sanitizer", "runtime error:"):
        assert marker not in r.stderr
    return r


class Server:
    def __init__(self, workdir):
        self.store = workdir / "store"
        self.log = workdir / "server.log"
        self.ports_file = workdir / "ports"
        mailctl(self.store, "cert", "generate", "main", "--names", "mail.example.test,localhost")
        mailctl(self.store, "cert", "generate", "other", "--names", "mail.other.test",
                "--key", "p256")
        mailctl(self.store, "cert", "assign", "main", "--default")
        mailctl(self.store, "cert", "assign", "other", "other.test")
        self.logf = open(self.log, "wb")
        self.proc = subprocess.Popen([str(SERVER), "--serve", str(self.store),
                                      str(self.ports_file)], stderr=self.logf)
        deadline = time.monotonic() + 20
        while not self.ports_file.exists():
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        ports = dict(l.split("=") for l in self.ports_file.read_text().split())
        self.implicit, self.starttls = int(ports["implicit"]), int(ports["starttls"])

    def cert(self, name):
        return self.store / "tls" / "certs" / f"{name}.crt"

    def log_text(self):
        return self.log.read_text(errors="replace")

    def wait_log(self, needle, timeout=10):
        deadline = time.monotonic() + timeout
        while needle not in self.log_text():
            assert time.monotonic() < deadline, f"{needle!r} not in:\n{self.log_text()}"
            time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(20)
        self.logf.close()
        return self.proc.returncode


@pytest.fixture
def server(workdir):
    if not SERVER.exists():
        pytest.skip(f"{SERVER} is not built (make {SERVER})")
    s = Server(workdir)
    yield s
    assert s.stop() == 0
    text = s.log_text()
    for marker in ("Sanitizer", "runtime error:"):
        assert marker not in text, text


def s_client(port, *args, send="INFO\nQUIT\n"):
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-crlf",
                        "-ign_eof", *args], input=send, capture_output=True, text=True,
                       timeout=30)
    return r


def test_s_client_implicit_tls_verifies_and_uses_sni(server):
    r = s_client(server.implicit, "-servername", "mail.example.test", "-CAfile",
                 str(server.cert("main")), "-verify_return_error", "-verify_hostname",
                 "mail.example.test")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Verify return code: 0 (ok)" in r.stdout
    assert "INFO tls=1 protocol=TLSv1.3" in r.stdout
    assert "sni=mail.example.test cert=main" in r.stdout
    assert "BYE" in r.stdout
    # SNI of a domain with its own certificate, subdomain included
    for sni in ("mail.other.test", "imap.other.test"):
        r = s_client(server.implicit, "-servername", sni, "-CAfile", str(server.cert("other")),
                     "-verify_return_error")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "subject=CN = mail.other.test" in r.stdout
        assert f"sni={sni} cert=other" in r.stdout
    server.wait_log("[tls] handshake id=")
    line = next(l for l in server.log_text().splitlines() if "sni=imap.other.test" in l)
    assert "protocol=TLSv1.3 cipher=TLS_" in line and "cert=other resumed=no" in line


def test_s_client_tls12_cipher_is_forward_secret(server):
    r = s_client(server.implicit, "-tls1_2")
    assert r.returncode == 0, r.stderr
    cipher = next(l for l in r.stdout.splitlines() if "Cipher is" in l)
    assert "ECDHE-" in cipher and ("GCM" in cipher or "CHACHA20" in cipher), cipher


@pytest.mark.parametrize("flag", ["-tls1", "-tls1_1"])
def test_s_client_old_protocols_refused(server, flag):
    r = s_client(server.implicit, flag, "-cipher", "DEFAULT@SECLEVEL=0")
    assert r.returncode != 0
    assert "INFO tls=" not in r.stdout
    server.wait_log("handshake failed id=")


@pytest.mark.parametrize("flag", ["-tls1_2", "-tls1_3"])
def test_s_client_session_resumption(server, workdir, flag):
    sess = workdir / f"sess{flag}"
    r = s_client(server.implicit, flag, "-sess_out", str(sess), send="QUIT\n")
    assert r.returncode == 0 and "New, " in r.stdout, r.stdout
    r = s_client(server.implicit, flag, "-sess_in", str(sess))
    assert "Reused, " in r.stdout, r.stdout
    assert "resumed=1" in r.stdout
    server.wait_log("resumed=yes")


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_session_is_not_resumed_under_another_certificate(server, version):
    """A session made with one certificate (SNI mail.example.test: main) is
    not resumed by a client asking for a name another certificate serves
    (other.test): that would skip the authentication of that name."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ctx.maximum_version = version

    def connect(sni, session=None):
        t = ctx.wrap_socket(socket.create_connection(("127.0.0.1", server.implicit), timeout=20),
                            server_hostname=sni, session=session)
        t.sendall(b"INFO\r\n")
        info = read_line(t)
        return t, info

    t, info = connect("mail.example.test")
    assert "cert=main" in info, info
    session = t.session
    t.close()
    t, info = connect("mail.other.test", session)
    assert "cert=other" in info and not t.session_reused, info
    t.close()
    t, info = connect("mail.example.test", session)
    assert t.session_reused and "cert=main" in info, info
    t.close()

def read_line(sock):
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        data += chunk
    return data.decode().rstrip("\r\n")


def test_starttls_injection_and_require_tls(server):
    ctx = ssl.create_default_context(cafile=str(server.cert("main")))
    with socket.create_connection(("127.0.0.1", server.starttls), timeout=10) as raw:
        raw.sendall(b"CAPA\r\n")
        assert read_line(raw) == "CAPA STARTTLS"  # no AUTH before TLS
        raw.sendall(b"AUTH\r\n")
        assert read_line(raw) == "NO plaintext authentication requires TLS"
        raw.sendall(b"STARTTLS\r\nINJECTED\r\n")  # one segment
        assert read_line(raw) == "OK"
        with ctx.wrap_socket(raw, server_hostname="mail.example.test") as tls:
            tls.sendall(b"PING\r\n")
            assert read_line(tls) == "PING"  # not INJECTED
            tls.sendall(b"CAPA\r\n")
            assert read_line(tls) == "CAPA AUTH"
            tls.sendall(b"AUTH\r\n")
            assert read_line(tls) == "OK authenticated"
            tls.sendall(b"INFO\r\n")
            assert "tls=1" in read_line(tls)
    server.wait_log("discarded=10 bytes sent after STARTTLS in plaintext")


def test_sighup_reloads_certificates(server):
    r = s_client(server.implicit)
    assert "subject=CN = mail.example.test" in r.stdout
    mailctl(server.store, "cert", "generate", "main", "--names", "renewed.example.test",
            "--force")
    server.proc.send_signal(signal.SIGHUP)
    server.wait_log("reloaded: certificates=2")
    r = s_client(server.implicit)
    assert "subject=CN = renewed.example.test" in r.stdout, r.stdout
