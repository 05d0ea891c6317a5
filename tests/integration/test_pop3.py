"""POP3 and POP3S served by maild, end to end, with Python's poplib and raw
sockets: USER/PASS, APOP, SASL PLAIN, STLS and implicit TLS; the snapshot
(UIDL stable across sessions and nodes, deletions only at QUIT, two
sessions on one maildrop); sizes and bytes exactly as stored; STLS
injection, overlong lines, require_tls, drain, the session log line; a
10,000-message maildrop. Mail gets into the store by SMTP when this build
serves it, otherwise through store_deliver in the test_pop3_maildrop
helper (the same call SMTP makes). fetchmail and curl are in
test_pop3_clients.py."""
import base64
import hashlib
import pathlib
import poplib
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import time

import pytest

from conftest import MAILCTL, MAILD, vm_hwm

HELPER = pathlib.Path(MAILD).resolve().parents[1] / "tests" / "test_pop3_maildrop"
USER = "alice@example.test"
PASSWORD = "Alice-Pw1"
SHARED_USER = "sam@shared.test"
SHARED_PASSWORD = "Sam-Secret9"


# ---- helpers shared with test_pop3_clients.py ----

def setup_store(node, shared=False):
    """A certificate for localhost, example.test with alice, and optionally a
    shared-secret domain (APOP, CRAM-MD5) with sam. Works offline."""
    node.ctl("cert", "generate", "main", "--names", "localhost,mail.example.test")
    node.ctl("cert", "assign", "main", "--default")
    node.ctl("domain", "add", "example.test")
    node.ctl("user", "add", USER, "--password-stdin", input=PASSWORD + "\n")
    if shared:
        node.ctl("domain", "add", "shared.test")
        node.ctl("domain", "set", "shared.test", "shared-secret-auth", "on")
        node.ctl("user", "add", SHARED_USER, "--password-stdin", input=SHARED_PASSWORD + "\n")


def cert_path(node):
    return node.store / "tls" / "certs" / "main.crt"


def smtp_served(node):
    if getattr(node, "_smtp_served", None) is None:
        status = node.ctl("status").stdout
        line = next((l for l in status.splitlines() if l.split()[:1] == ["smtp"]), "")
        node._smtp_served = bool(line) and "not served" not in line
    return node._smtp_served


def deliver(node, rcpt, msg, via="auto"):
    """Puts msg (bytes, CRLF) into rcpt's INBOX; returns the path taken."""
    if via == "smtp" or (via == "auto" and smtp_served(node)):
        with smtplib.SMTP("127.0.0.1", node.ports["smtp"], timeout=30) as s:
            s.sendmail("sender@example.org", [rcpt], msg)
        return "smtp"
    r = subprocess.run([str(HELPER), "--deliver", str(node.store), rcpt], input=msg,
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    return "store"


def fill(node, rcpt, count, size):
    r = subprocess.run([str(HELPER), "--fill", str(node.store), rcpt, str(count), str(size)],
                       capture_output=True, timeout=600)
    assert r.returncode == 0, r.stderr.decode()


def message(n, body=None):
    body = body if body is not None else f"Message number {n}.\r\n"
    return (f"From: sender@example.org\r\nTo: {USER}\r\nSubject: test {n}\r\n"
            f"Message-ID: <{n}.{time.monotonic_ns()}@example.org>\r\n\r\n{body}").encode()


def tls_client_context(node=None):
    if node is None:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    return ssl.create_default_context(cafile=str(cert_path(node)))


def pop(node, user=USER, password=PASSWORD):
    p = poplib.POP3("127.0.0.1", node.ports["pop3"], timeout=30)
    p.user(user)
    p.pass_(password)
    return p


def pops(node, user=USER, password=PASSWORD):
    p = poplib.POP3_SSL("localhost", node.ports["pop3s"], timeout=30,
                        context=tls_client_context(node))
    p.user(user)
    p.pass_(password)
    return p


class Raw:
    """A byte-exact POP3 client for what poplib hides."""

    def __init__(self, port, tls_context=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        if tls_context is not None:
            self.sock = tls_context.wrap_socket(self.sock, server_hostname="localhost")
        self.buf = b""

    def starttls(self, ctx):
        assert self.buf == b"", f"plaintext left over before TLS: {self.buf!r}"
        self.sock = ctx.wrap_socket(self.sock, server_hostname="localhost")

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError(f"connection closed; left: {self.buf!r}")
        self.buf += chunk

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def cmd(self, text):
        self.send(text.encode() + b"\r\n")
        return self.line()

    def multi(self):
        """The body of a multi-line answer, exactly as sent (dot-stuffed)."""
        while b"\r\n.\r\n" not in self.buf and not self.buf.startswith(b".\r\n"):
            self._fill()
        if self.buf.startswith(b".\r\n"):
            body, self.buf = b"", self.buf[3:]
        else:
            body, self.buf = self.buf.split(b"\r\n.\r\n", 1)
            body += b"\r\n"
        return body

    def closed(self, timeout=10):
        """True once the server has closed the connection."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, ssl.SSLError):
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()


def unstuff(body):
    return b"".join(l[1:] if l.startswith(b".") else l for l in body.splitlines(keepends=True))


def login(r, user=USER, password=PASSWORD):
    assert r.line().startswith(b"+OK")
    assert r.cmd(f"USER {user}") == b"+OK"
    resp = r.cmd(f"PASS {password}")
    assert resp.startswith(b"+OK Logged in"), resp
    return resp


def uidl_map(p):
    return dict(l.decode().split() for l in p.uidl()[1])


def subjects(p):
    """message number -> Subject, through TOP n 0."""
    out = {}
    for entry in p.list()[1]:
        n = int(entry.split()[0])
        head = p.top(n, 0)[1]
        out[n] = next(l.decode()[9:] for l in head if l.startswith(b"Subject: "))
    return out


# ---- fixtures ----

@pytest.fixture
def pnode(node_factory):
    n = node_factory()
    setup_store(n, shared=True)
    return n.start()


# ---- tests ----

def test_user_pass_capa_stat_list_retr_top(pnode):
    msgs = {f"test {i}": message(i, f"Line one of {i}.\r\n.starts with a dot\r\nlast\r\n")
            for i in range(1, 4)}
    for m in msgs.values():
        deliver(pnode, USER, m)
    p = poplib.POP3("127.0.0.1", pnode.ports["pop3"], timeout=30)
    assert re.match(rb"\+OK \S+ POP3 server ready <[^>]+@[^>]+>$", p.getwelcome())
    capa = p.capa()
    for c in ("TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "USER", "STLS",
              "SASL", "IMPLEMENTATION"):
        assert c in capa, capa
    assert "PLAIN" in capa["SASL"]
    p.user(USER)
    assert p.pass_(PASSWORD) == b"+OK Logged in, 3 messages"
    count, octets = p.stat()
    sizes = {int(n): int(size) for n, size in (l.split() for l in p.list()[1])}
    assert count == 3 and octets == sum(sizes.values())
    subj = subjects(p)
    for n, s in subj.items():
        resp, lines, _ = p.retr(n)
        got = b"\r\n".join(lines) + b"\r\n"
        # as stored: what was sent, after any trace fields SMTP added
        assert got.endswith(msgs[s]) and len(got) == sizes[n]
        assert resp == f"+OK {sizes[n]} octets".encode()
        assert p.list(n) == f"+OK {n} {sizes[n]}".encode()
        top = p.top(n, 1)[1]
        assert top[-2:] == [b"", f"Line one of {s[5:]}.".encode()]
    assert p.noop() == b"+OK"
    with pytest.raises(poplib.error_proto, match="No such message"):
        p.retr(4)
    assert p.quit().startswith(b"+OK")
    pnode.wait_log(f"[pop3] quit user={USER} peer=127.0.0.1:")
    assert re.search(r"\[pop3\] quit user=alice@example.test peer=\S+ retr=3 top=6 dele=0 deleted=0 "
                     rf"size={octets} messages=3 ", pnode.log_text())



def test_fsync_rounds_and_reader_locks(node_factory):
    """The store's other commit and read modes (storage.sync = fsync, for
    filesystems where syncfs() is no barrier; reader_locks, for NFS) serve
    the same mail."""
    n = node_factory(extra='storage = { sync = "fsync"; reader_locks = true; };\n')
    setup_store(n)
    n.start()
    n.wait_log("[store] opened ")
    assert "sync=fsync reader_locks=yes" in n.log_text()
    for i in range(1, 4):
        assert deliver(n, USER, message(i)) == "smtp"
    p = pop(n)
    assert p.stat()[0] == 3
    subj = subjects(p)
    assert sorted(subj.values()) == ["test 1", "test 2", "test 3"]
    p.dele(next(n for n, s in subj.items() if s == "test 2"))
    assert p.quit().startswith(b"+OK")
    p = pop(n)
    assert sorted(subjects(p).values()) == ["test 1", "test 3"]
    p.quit()

def test_retr_is_byte_exact_with_dot_stuffing(pnode):
    body = (b"." * 3 + b"\r\n.\r\n..\r\nx\r\n" + b"a" * 998 + b"\r\n" + b".\r\n" * 5 +
            b"end without dots\r\n")
    m = message(1, body.decode())
    deliver(pnode, USER, m, via="store")  # no trace fields: the stored bytes are m
    r = Raw(pnode.ports["pop3"])
    login(r)
    assert r.cmd("LIST 1") == f"+OK 1 {len(m)}".encode()
    assert r.cmd("RETR 1") == f"+OK {len(m)} octets".encode()
    sent = r.multi()
    assert b"\r\n.\r\n" not in sent
    assert unstuff(sent) == m
    # TOP 1 2: the header, the blank line, two body lines
    assert r.cmd("TOP 1 2") == b"+OK"
    head, _, rest = m.partition(b"\r\n\r\n")
    assert unstuff(r.multi()) == head + b"\r\n\r\n" + b"\r\n".join(rest.split(b"\r\n")[:2]) + b"\r\n"
    assert r.cmd("QUIT").startswith(b"+OK")
    r.close()


def test_large_message_streams_over_tls_to_a_slow_reader(pnode):
    """8 MiB, far over the 256 KiB output limit: RETR streams as the client
    reads, and the bytes are exactly the stored ones."""
    line = b"0123456789" * 7 + b"\r\n"
    m = message(1, (line * (8 * 1024 * 1024 // len(line))).decode())
    deliver(pnode, USER, m, via="store")
    r = Raw(pnode.ports["pop3s"], tls_client_context(pnode))
    login(r)
    r.send(b"RETR 1\r\nNOOP\r\n")  # pipelined behind the stream
    assert r.line() == f"+OK {len(m)} octets".encode()
    time.sleep(1)  # the server waits for us meanwhile, holding at most its output limit
    got = hashlib.sha256(unstuff(r.multi())).hexdigest()
    assert got == hashlib.sha256(m).hexdigest()
    assert r.line() == b"+OK"
    assert r.cmd("QUIT").startswith(b"+OK")
    r.close()
    assert "output limit" not in pnode.log_text()


def test_uidl_stable_across_sessions_and_nodes(node_factory):
    n1 = node_factory()
    setup_store(n1)
    n1.start()
    for i in range(1, 6):
        deliver(n1, USER, message(i))
    p = pop(n1)
    first = uidl_map(p)
    p.quit()
    assert len(set(first.values())) == 5
    assert all(re.fullmatch(r"[0-9a-f]{16}", u) for u in first.values())
    # a new session sees the same UIDLs, also after another message arrives
    deliver(n1, USER, message(6))
    p = pop(n1)
    again = uidl_map(p)
    assert {k: again[k] for k in first} == first and len(again) == 6
    # deleting one renumbers the others but keeps their UIDLs
    p.dele(1)
    p.quit()
    p = pop(n1)
    after = uidl_map(p)
    assert sorted(after.values()) == sorted(set(again.values()) - {again["1"]})
    subj = subjects(p)
    by_uidl = {u: subj[int(n)] for n, u in after.items()}
    p.quit()
    assert n1.stop() == 0
    # another node on the same store: the same UIDLs for the same messages
    n2 = node_factory(node_id=2, store=n1.store)
    n2.start()
    p = pop(n2)
    on_n2 = uidl_map(p)
    subj = subjects(p)
    assert {u: subj[int(n)] for n, u in on_n2.items()} == by_uidl
    p.quit()


def test_deletions_only_at_quit(pnode):
    for i in range(1, 5):
        deliver(pnode, USER, message(i))
    # DELE then RSET keeps
    p = pop(pnode)
    p.dele(1)
    p.dele(2)
    assert p.stat()[0] == 2
    with pytest.raises(poplib.error_proto, match="deleted"):
        p.retr(1)
    assert p.rset() == b"+OK 4 messages"
    assert p.stat()[0] == 4
    p.quit()
    # DELE then a dropped connection keeps
    r = Raw(pnode.ports["pop3"])
    login(r)
    assert r.cmd("DELE 1").startswith(b"+OK")
    assert r.cmd("DELE 2").startswith(b"+OK")
    r.close()
    pnode.wait_log("reason=\"connection closed without QUIT, nothing deleted\"")
    p = pop(pnode)
    assert p.stat()[0] == 4
    uids = uidl_map(p)
    events = subprocess.Popen([MAILCTL, "-c", str(pnode.config), "events", "--count", "1",
                               "--timeout", "20", "pop3"], stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)  # subscribed before the session ends
    # DELE then QUIT removes, and says how many
    p.dele(1)
    p.dele(3)
    assert p.quit() == b"+OK " + p.welcome.split()[1] + b" POP3 server signing off (2 messages deleted)"
    out = events.communicate(timeout=30)[0]
    assert re.search(rf"pop3 node=1 quit user={USER} peer=\S+ retr=0 top=0 dele=2 deleted=2 ", out), out
    p = pop(pnode)
    assert sorted(uidl_map(p).values()) == sorted([uids["2"], uids["4"]])
    p.quit()
    pnode.wait_log("dele=2 deleted=2")


def test_two_sessions_snapshot_policy(pnode):
    for i in range(1, 4):
        deliver(pnode, USER, message(i))
    a, b = pop(pnode), pop(pnode)  # both open: no [IN-USE]
    ua, ub = uidl_map(a), uidl_map(b)
    assert ua == ub
    a.dele(1)
    a.dele(2)
    assert a.quit().endswith(b"(2 messages deleted)")
    # b keeps its snapshot: numbering and sizes as at its login
    assert b.stat()[0] == 3 and uidl_map(b) == ub
    with pytest.raises(poplib.error_proto, match="Message was removed by another session"):
        b.retr(1)
    assert b.retr(3)[0].startswith(b"+OK")
    # deleting what a already deleted is not an error
    b.dele(2)
    b.dele(3)
    assert b.quit().endswith(b"(2 messages deleted)")
    c = pop(pnode)
    assert c.stat()[0] == 0
    c.quit()
    pnode.wait_log("dele=2 deleted=1")
    assert "removed by another session user=alice@example.test" in pnode.log_text()


def test_new_mail_during_a_session_waits_for_the_next(pnode):
    deliver(pnode, USER, message(1))
    p = pop(pnode)
    deliver(pnode, USER, message(2))
    assert p.stat()[0] == 1
    p.dele(1)
    p.quit()
    p = pop(pnode)
    assert p.stat()[0] == 1 and subjects(p) == {1: "test 2"}
    p.quit()


def test_pop3s_and_stls(pnode):
    deliver(pnode, USER, message(1))
    p = pops(pnode)
    assert p.stat()[0] == 1
    assert "STLS" not in p.capa()
    p.quit()
    p = poplib.POP3("localhost", pnode.ports["pop3"], timeout=30)
    assert p.stls(tls_client_context(pnode)).startswith(b"+OK")
    capa = p.capa()
    assert "STLS" not in capa and "USER" in capa
    p.user(USER)
    p.pass_(PASSWORD)
    assert p.retr(1)[0].startswith(b"+OK")
    p.quit()
    text = pnode.log_text()
    assert re.search(r"\[tls\] handshake id=\d+ service=pop3s ", text)
    assert re.search(r"\[tls\] handshake id=\d+ service=pop3 ", text)


def test_stls_injection_is_discarded(pnode):
    r = Raw(pnode.ports["pop3"])
    assert r.line().startswith(b"+OK")
    r.send(f"STLS\r\nUSER {USER}\r\n".encode())
    assert r.line() == b"+OK Begin TLS negotiation"
    r.starttls(tls_client_context(pnode))
    # had USER been kept, this PASS would log in
    assert r.cmd(f"PASS {PASSWORD}") == b"-ERR USER first"
    assert r.cmd("STLS") == b"-ERR STLS not available"
    login_resp = r.cmd(f"USER {USER}"), r.cmd(f"PASS {PASSWORD}")
    assert login_resp[1].startswith(b"+OK Logged in")
    assert r.cmd("QUIT").startswith(b"+OK")
    r.close()


def test_require_tls_refuses_plaintext_passwords(node_factory):
    n = node_factory(service_options={"pop3": "require_tls = true;"})
    setup_store(n)
    n.start()
    r = Raw(n.ports["pop3"])
    assert r.line().startswith(b"+OK")
    assert r.cmd("CAPA") == b"+OK Capability list follows"
    capa = r.multi().decode()
    assert "STLS" in capa and "USER" not in capa and "PLAIN" not in capa
    assert r.cmd(f"USER {USER}").startswith(b"-ERR [AUTH] Plaintext authentication disallowed")
    assert r.cmd("AUTH PLAIN " + base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()) \
        == b"-ERR Unsupported authentication mechanism"
    assert r.cmd("STLS").startswith(b"+OK")
    r.starttls(tls_client_context(n))
    assert r.cmd("CAPA").startswith(b"+OK")
    capa = r.multi().decode()
    assert "USER" in capa and "PLAIN" in capa and "STLS" not in capa
    assert r.cmd(f"USER {USER}") == b"+OK"
    assert r.cmd(f"PASS {PASSWORD}").startswith(b"+OK Logged in")
    assert r.cmd("QUIT").startswith(b"+OK")
    r.close()


def test_reload_keeps_require_tls_of_the_running_address(node_factory):
    """require_tls left to its default follows the address actually bound:
    a file edited from 0.0.0.0 to 127.0.0.1 (an address change waits for a
    restart) must not turn plaintext logins on for the wildcard listener.
    An explicit require_tls is still taken at once."""
    n = node_factory()
    n.config.write_text(n.config.read_text().replace(
        f'pop3 = {{ address = "127.0.0.1"; port = {n.ports["pop3"]};',
        f'pop3 = {{ address = "0.0.0.0"; port = {n.ports["pop3"]};'))
    setup_store(n)
    n.start()

    def user_reply():
        r = Raw(n.ports["pop3"])
        assert r.line().startswith(b"+OK")
        reply = r.cmd(f"USER {USER}")
        r.close()
        return reply

    refused = b"-ERR [AUTH] Plaintext authentication disallowed"
    assert user_reply().startswith(refused)
    n.config.write_text(n.config.read_text().replace('address = "0.0.0.0"', 'address = "127.0.0.1"'))
    n.signal(signal.SIGHUP)
    n.wait_log("service=pop3: listening address changes only on restart")
    n.wait_log("[config] reloaded")
    status = n.ctl("status").stdout
    pop3_line = next(l for l in status.splitlines() if l.split()[:1] == ["pop3"])
    assert "0.0.0.0:" in pop3_line and "require_tls" in pop3_line, pop3_line
    assert user_reply().startswith(refused)
    # said in so many words, it is what the operator wants, and at once
    n.config.write_text(n.config.read_text().replace(
        f'port = {n.ports["pop3"]};', f'port = {n.ports["pop3"]}; require_tls = false;'))
    n.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while user_reply() != b"+OK" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert user_reply() == b"+OK"


def test_apop(pnode):
    deliver(pnode, SHARED_USER, message(1))
    p = poplib.POP3("127.0.0.1", pnode.ports["pop3"], timeout=30)
    assert p.apop(SHARED_USER, SHARED_PASSWORD) == b"+OK Logged in, 1 messages"
    assert p.stat()[0] == 1
    p.quit()
    # a wrong digest: [AUTH], and the session goes on
    r = Raw(pnode.ports["pop3"])
    greeting = r.line()
    ts = re.search(rb"<[^>]+>", greeting).group(0)
    bad = hashlib.md5(ts + b"not-the-secret").hexdigest()
    assert r.cmd(f"APOP {SHARED_USER} {bad}") == b"-ERR [AUTH] Authentication failed"
    assert r.cmd(f"APOP {SHARED_USER} xyz") == b"-ERR APOP digest must be 32 hex digits"
    good = hashlib.md5(ts + SHARED_PASSWORD.encode()).hexdigest()
    assert r.cmd(f"APOP {SHARED_USER} {good}").startswith(b"+OK Logged in")
    r.cmd("QUIT")
    r.close()
    # alice's domain stores no secret: APOP fails like a wrong digest
    r = Raw(pnode.ports["pop3"])
    ts = re.search(rb"<[^>]+>", r.line()).group(0)
    digest = hashlib.md5(ts + PASSWORD.encode()).hexdigest()
    assert r.cmd(f"APOP {USER} {digest}") == b"-ERR [AUTH] Authentication failed"
    r.close()
    assert re.search(r"\[auth\] login failed user=sam@shared.test peer=\S+ mech=APOP", pnode.log_text())


def test_sasl_plain_and_malformed_responses(pnode):
    cred = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    r = Raw(pnode.ports["pop3"])
    r.line()
    assert r.cmd("AUTH") == b"+OK"
    mechs = r.multi().decode().split()
    assert "PLAIN" in mechs
    assert r.cmd("AUTH PLAIN !!notbase64") == b"-ERR [AUTH] Authentication failed"
    assert r.cmd("AUTH PLAIN") == b"+ "
    assert r.cmd("*").startswith(b"-ERR")
    assert r.cmd("AUTH NOSUCH") == b"-ERR Unsupported authentication mechanism"
    assert r.cmd("AUTH PLAIN") == b"+ "
    assert r.cmd(cred).startswith(b"+OK Logged in")
    assert r.cmd("QUIT").startswith(b"+OK")
    r.close()
    # initial response, poplib style
    p = poplib.POP3("127.0.0.1", pnode.ports["pop3"], timeout=30)
    assert p._shortcmd("AUTH PLAIN " + cred).startswith(b"+OK Logged in")
    p.quit()
    assert re.search(r"\[auth\] login user=alice@example.test peer=\S+ mech=PLAIN service=pop",
                     pnode.log_text())


def test_overlong_lines_and_bad_commands(pnode):
    r = Raw(pnode.ports["pop3"])
    r.line()
    assert r.cmd("CAPA " + "x" * 300) == b"-ERR Line too long"
    assert r.cmd("CAPA").startswith(b"+OK")
    r.multi()
    assert r.cmd("X" * 20000) == b"-ERR Line too long"  # over the SASL line limit too
    assert r.cmd("RETR 1") == b"-ERR Unknown command in AUTHORIZATION state"
    assert r.cmd("USER " + "u" * 400) == b"-ERR Line too long"
    for _ in range(5):
        r.cmd("BOGUS")
    r.send(b"BOGUS\r\n")
    assert r.line() == b"-ERR Unknown command"
    assert r.line() == b"-ERR Too many bad commands, closing"
    assert r.closed()
    r.close()
    # the same limits after login, and the session survives them
    r = Raw(pnode.ports["pop3"])
    login(r)
    assert r.cmd("LIST " + "9" * 300) == b"-ERR Line too long"
    assert r.cmd("LIST 99999999999") == b"-ERR Invalid message number"
    assert r.cmd("STAT") == b"+OK 0 0"
    assert r.cmd("QUIT").startswith(b"+OK")
    r.close()


def test_pipelining(pnode):
    for i in range(1, 4):
        deliver(pnode, USER, message(i))
    r = Raw(pnode.ports["pop3"])
    r.line()
    # everything in one packet, including the login
    r.send(f"USER {USER}\r\nPASS {PASSWORD}\r\nSTAT\r\nRETR 1\r\nRETR 2\r\nUIDL\r\nNOOP\r\n"
           f"QUIT\r\n".encode())
    assert r.line() == b"+OK"
    assert r.line().startswith(b"+OK Logged in, 3 messages")
    assert r.line().startswith(b"+OK 3 ")
    for _ in range(2):
        assert r.line().endswith(b" octets")
        r.multi()
    assert r.line() == b"+OK"
    assert len(r.multi().splitlines()) == 3
    assert r.line() == b"+OK"
    assert r.line().startswith(b"+OK")
    assert r.closed()
    r.close()


def test_wrong_password_and_unknown_user(pnode):
    p = poplib.POP3("127.0.0.1", pnode.ports["pop3"], timeout=30)
    p.user(USER)
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\] Authentication failed"):
        p.pass_("wrong")
    p.user("nobody@example.test")
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\] Authentication failed"):
        p.pass_(PASSWORD)
    p.user(USER)
    assert p.pass_(PASSWORD).startswith(b"+OK")
    p.quit()
    assert "login failed user=nobody@example.test" in pnode.log_text()


def test_drain_says_goodbye_and_deletes_nothing(pnode):
    deliver(pnode, USER, message(1))
    r = Raw(pnode.ports["pop3"])
    login(r)
    assert r.cmd("DELE 1").startswith(b"+OK")
    pnode.signal(signal.SIGTERM)
    assert r.line() == b"-ERR [SYS/TEMP] Server shutting down"
    assert r.closed()
    r.close()
    assert pnode.proc.wait(20) == 0
    assert 'reason="server shutting down"' in pnode.log_text()
    pnode.start()
    p = pop(pnode)
    assert p.stat()[0] == 1
    p.quit()


def test_maildrop_unavailable(pnode):
    deliver(pnode, USER, message(1))
    [home] = pnode.store.glob("mail/example.test/*/alice")
    mode = home.stat().st_mode
    home.chmod(0)
    try:
        r = Raw(pnode.ports["pop3"])
        r.line()
        assert r.cmd(f"USER {USER}") == b"+OK"
        assert r.cmd(f"PASS {PASSWORD}") == b"-ERR [SYS/TEMP] Mailbox is temporarily unavailable"
        assert r.closed()
        r.close()
    finally:
        home.chmod(mode)
    pnode.wait_log(f"[pop3] maildrop open failed user={USER} peer=")
    p = pop(pnode)
    assert p.stat()[0] == 1
    p.quit()


def test_ten_thousand_messages(pnode, capsys):
    fill(pnode, USER, 10000, 300)
    t0 = time.monotonic()
    p = pop(pnode)
    t_login = time.monotonic() - t0
    t0 = time.monotonic()
    count, octets = p.stat()
    t_stat = time.monotonic() - t0
    t0 = time.monotonic()
    listing = p.list()[1]
    t_list = time.monotonic() - t0
    t0 = time.monotonic()
    uidls = p.uidl()[1]
    t_uidl = time.monotonic() - t0
    assert count == 10000 and len(listing) == 10000 and len(uidls) == 10000
    assert octets == sum(int(l.split()[1]) for l in listing)
    assert len({l.split()[1] for l in uidls}) == 10000
    assert p.retr(10000)[0].startswith(b"+OK")
    p.quit()
    with capsys.disabled():
        print(f"\n    10,000-message maildrop: login+open {t_login * 1000:.0f} ms, "
              f"STAT {t_stat * 1000:.1f} ms, LIST {t_list * 1000:.0f} ms, "
              f"UIDL {t_uidl * 1000:.0f} ms")


def test_message_delivered_by_smtp_is_retrieved_byte_for_byte(pnode):
    if not smtp_served(pnode):
        pytest.skip("this build does not serve SMTP yet")
    m = message(1, "Body line\r\n.leading dot\r\n\r\nend\r\n")
    deliver(pnode, USER, m, via="smtp")
    r = Raw(pnode.ports["pop3"])
    login(r)
    size = int(r.cmd("LIST 1").split()[2])
    assert r.cmd("RETR 1") == f"+OK {size} octets".encode()
    got = unstuff(r.multi())
    assert len(got) == size
    # the stored message is what was sent, after the trace headers SMTP added
    assert got.endswith(m)
    added = got[:-len(m)]
    assert added.startswith(b"Return-Path: ") or added.startswith(b"Received: ")
    for field in re.split(rb"\r\n(?![ \t])", added.rstrip(b"\r\n")):
        assert re.match(rb"(Received|Return-Path|Delivered-To|X-[A-Za-z-]+): ", field), field
    r.cmd("QUIT")
    r.close()


def test_a_client_that_never_reads_holds_one_reply(node_factory, small_quarantine):
    """A logged-in client pipelines 682 UIDLs (4 KiB) and reads nothing:
    the replies wait in the connection's buffers only as far as the one
    command being answered; the rest of the input waits unread (every
    UIDL's listing was made and kept: about 13 MiB here, 33 under ASan)."""
    n = node_factory()
    setup_store(n)
    fill(n, USER, 1000, 100)
    n.start()
    s = socket.create_connection(("127.0.0.1", n.ports["pop3"]), timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.recv(1000)
    s.sendall(f"USER {USER}\r\nPASS {PASSWORD}\r\n".encode())
    replies = b""
    while replies.count(b"\r\n") < 2:
        replies += s.recv(1000)
    assert replies.splitlines()[1].startswith(b"+OK"), replies  # logged in
    before = vm_hwm(n.proc.pid)
    s.sendall(b"UIDL\r\n" * 682)
    # the first listing fills the socket buffers; what would follow is made
    # at once, while the client reads nothing
    time.sleep(2)
    grown = vm_hwm(n.proc.pid) - before
    s.close()
    # one listing is about 30 KiB; the sanitizer build's allocator adds
    # about 4 MiB of its own
    assert grown < 6 * 2**20, f"VmHWM grew {grown} bytes"
