"""SMTP, submission and SMTPS served by maild, end to end, with real
clients (swaks, Python's smtplib, openssl s_client) and raw sockets where
byte-exact control matters: capabilities, local delivery into the store
(checked in the user's mailbox files, per docs/storage-format.md),
recipients refused at RCPT (unknown, relay, over quota), aliases and
groups, size limits, AUTH and its TLS policy, STARTTLS injection, implicit
TLS, SMTP smuggling, BDAT, pipelining, the durability contract, drain, and
reading the delivered message back over POP3."""
import base64
import os
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

from conftest import MAILCTL

DOMAIN = "example.test"
ALICE, BOB, CAROL, DAVE = (f"{u}@{DOMAIN}" for u in ("alice", "bob", "carol", "dave"))
PASSWORD = "Alice-Pw1"
MAX_SIZE = 100 * 1024


def message(subject="test", body="Hello.\r\n", extra=""):
    return (f"From: sender@example.org\r\nTo: {ALICE}\r\nSubject: {subject}\r\n{extra}"
            f"Message-ID: <{time.monotonic_ns()}@example.org>\r\n\r\n{body}").encode()


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def mailbox_files(node, address):
    """The message files of address's INBOX: delivered ones wait in new/,
    absorbed ones are in msg/<bucket>/ (docs/storage-format.md)."""
    local, domain = address.split("@")
    box = f"*/{local}/box/INBOX/.box"
    base = node.store / "mail" / domain
    absorbed = [p for p in base.glob(f"{box}/msg/*/*") if p.name.isdigit()]  # not *.cache
    return sorted(list(base.glob(f"{box}/new/*")) + absorbed)


def mailbox_texts(node, address):
    return [p.read_bytes() for p in mailbox_files(node, address)]


def tmp_leftovers(node):
    """Message files left in the nodes' temporary areas."""
    tmp = node.store / "mail" / ".tmp"
    return [p for p in tmp.rglob("*") if p.is_file()] if tmp.exists() else []


def swaks(node, *args, port="smtp", check=True):
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(node.ports[port]),
                        "--timeout", "30", *args], capture_output=True, text=True, timeout=60)
    if check:
        assert r.returncode == 0, r.stdout + r.stderr
    return r


class Raw:
    """A byte-exact SMTP client."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"connection closed; unread: {self.buf!r}")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode()

    def reply(self):
        """One (possibly multi-line) reply: its last line's text, all lines."""
        lines = [self.line()]
        while lines[-1][3:4] == "-":
            lines.append(self.line())
        return lines[-1], lines

    def command(self, text):
        self.send(text.encode() + b"\r\n")
        return self.reply()[0]

    def starttls(self):
        assert self.buf == b"", f"plaintext left over before TLS: {self.buf!r}"
        self.sock = tls_context().wrap_socket(self.sock, server_hostname="localhost")

    def nothing_pending(self, wait=0.3):
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, ssl.SSLError):
            data = b""
        finally:
            self.sock.settimeout(20)
        self.buf += data
        return self.buf == b""

    def close(self):
        self.sock.close()


@pytest.fixture
def mx(node_factory):
    """A node with a certificate, example.test (alice with a password, bob,
    carol, dave with a 4K quota, an alias, a group, an alias to a remote
    address), a 100K message size limit, and submission requiring TLS for
    passwords as on a public address."""
    n = node_factory(service_options={"submission": "require_tls = true;"},
                     extra=f'hostname = "mx.{DOMAIN}";\n'
                           # 127.0.0.1 untrusted: clients relay only once authenticated
                           f"smtp = {{ max_message_size = {MAX_SIZE}; "
                           f'trusted_networks = ["192.0.2.0/24"]; }};\n')
    n.ctl("cert", "generate", "main", "--names", "localhost")
    n.ctl("cert", "assign", "main", "--default")
    n.ctl("domain", "add", DOMAIN)
    n.ctl("user", "add", ALICE, "--password-stdin", input=PASSWORD + "\n")
    n.ctl("user", "add", BOB, "--random-password")
    n.ctl("user", "add", CAROL, "--random-password")
    n.ctl("user", "add", DAVE, "--random-password", "--quota", "4K")
    n.ctl("alias", "add", f"team@{DOMAIN}", ALICE, BOB)
    n.ctl("group", "add", f"staff@{DOMAIN}")
    n.ctl("group", "add-member", f"staff@{DOMAIN}", ALICE, CAROL)
    n.ctl("alias", "add", f"fwd@{DOMAIN}", "someone@elsewhere.test")
    n.ctl("alias", "add", f"postmaster@{DOMAIN}", ALICE)
    return n.start()


def test_ehlo_capabilities(mx):
    with smtplib.SMTP("127.0.0.1", mx.ports["smtp"], timeout=20) as s:
        code, banner = s.ehlo("client.example.org")
        assert code == 250
        caps = banner.decode().splitlines()[1:]
        # loopback smtp: no require_tls, so plaintext mechanisms are offered
        assert caps == ["PIPELINING", f"SIZE {MAX_SIZE}", "8BITMIME", "ENHANCEDSTATUSCODES",
                        "STARTTLS", "AUTH PLAIN LOGIN", "DSN", "CHUNKING"], caps
        assert s.noop()[0] == 250
        assert s.verify(ALICE)[0] == 502
    with smtplib.SMTP("127.0.0.1", mx.ports["submission"], timeout=20) as s:
        s.ehlo("client.example.org")
        assert s.has_extn("starttls") and not s.has_extn("auth") and s.has_extn("dsn")
        s.starttls(context=tls_context())
        s.ehlo("client.example.org")
        assert not s.has_extn("starttls")
        assert s.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
    # the greeting and every reply carry the node's name and enhanced codes
    r = Raw(mx.ports["smtp"])
    assert re.fullmatch(r"220 \S+ ESMTP clustermail", r.reply()[0])
    assert r.command("MAIL FROM:<a@b.test>") == "503 5.5.1 Error: send HELO/EHLO first"
    assert r.command("FROB") == "500 5.5.2 Error: command not recognized"
    assert r.command("QUIT") == "221 2.0.0 Bye"


def test_swaks_delivers_to_local_user(mx):
    events = subprocess.Popen([MAILCTL, "-c", str(mx.config), "events", "--count", "1",
                               "--timeout", "20", "delivery"], stdout=subprocess.PIPE, text=True)
    time.sleep(1)  # subscribed before the delivery (ZeroMQ drops what precedes it)
    r = swaks(mx, "--to", ALICE, "--from", "sender@example.org", "--ehlo", "client.example.org",
              "--header", "Subject: swaks delivery", "--body", "Body line one.\nBody line two.")
    qid = re.search(r"250 2\.0\.0 Ok: queued as ([0-9A-Z]{15})", r.stdout).group(1)
    [text] = mailbox_texts(mx, ALICE)
    head, body = text.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    assert lines[0] == "Return-Path: <sender@example.org>"
    assert lines[1] == "Received: from client.example.org (unknown [127.0.0.1])"
    assert lines[2] == f"\tby mx.{DOMAIN} (clustermail) with ESMTP id {qid}"
    assert re.fullmatch(r"\tfor <alice@example\.test>; \w{3}, \d{1,2} \w{3} \d{4} "
                        r"\d\d:\d\d:\d\d [+-]\d{4}", lines[3]), lines[3]
    assert "Subject: swaks delivery" in lines
    # swaks sends the body with CRLF line ends (and blank lines after it)
    assert body.startswith(b"Body line one.\r\nBody line two.\r\n")
    mx.wait_log(f"[smtp] id={qid} to=<{ALICE}> status=delivered")
    mx.wait_log(f"[smtp] id={qid} conn=")
    log = mx.log_text()
    assert re.search(rf"id={qid} conn=\d+ from=<sender@example\.org> size={len(text)} nrcpt=1 "
                     rf"mailboxes=1 delivered=1 proto=ESMTP user=- status=sent delay=\d", log)
    assert tmp_leftovers(mx) == []
    out = events.communicate(timeout=30)[0]
    assert f"id={qid} to=<{ALICE}> from=<sender@example.org> size={len(text)}" in out, out


def test_smtplib_null_sender_8bit_and_postmaster(mx):
    body = "Grüße aus Köln.\r\n".encode()
    with smtplib.SMTP("127.0.0.1", mx.ports["smtp"], timeout=20) as s:
        s.ehlo("client.example.org")
        assert s.mail("", ["BODY=8BITMIME"])[0] == 250
        assert s.rcpt("Postmaster")[0] == 250  # RFC 5321 4.5.1, no domain
        assert s.rcpt(BOB)[0] == 250
        code, text = s.data(message(body=body.decode()))
        assert code == 250, text
    [a] = mailbox_texts(mx, ALICE)
    [b] = mailbox_texts(mx, BOB)
    assert a == b and a.startswith(b"Return-Path: <>\r\nReceived: ")
    assert body in a
    # two recipients: no "for" clause names them
    assert b"\tfor <" not in a


def test_rcpt_refusals(mx):
    with smtplib.SMTP("127.0.0.1", mx.ports["smtp"], timeout=20) as s:
        s.ehlo("client.example.org")
        assert s.mail("sender@example.org")[0] == 250
        code, text = s.rcpt(f"nobody@{DOMAIN}")
        assert (code, text.decode()) == (
            550, "5.1.1 <nobody@example.test>: Recipient address rejected: User unknown")
        code, text = s.rcpt("someone@elsewhere.test")
        assert (code, text.decode()) == (
            554, "5.7.1 <someone@elsewhere.test>: Relay access denied")
        # an alias to a remote address forwards (the queue sends it on)
        assert s.rcpt(f"fwd@{DOMAIN}")[0] == 250
        assert s.rcpt("user%elsewhere.test@example.test")[0] == 554  # percent hack
        assert s.rcpt("@elsewhere.test:alice@example.test")[0] == 250  # route ignored
        assert s.rcpt(ALICE)[0] == 250
        assert s.data(message())[0] == 250
    # with a remote recipient the message went through the queue, which
    # delivers the local copy right away
    mx.wait_log(f"to=<{ALICE}> relay=local")
    assert len(mailbox_files(mx, ALICE)) == 1
    mx.wait_log("reject conn=")
    assert re.search(r"\[smtp\] reject conn=\d+ id=[0-9A-Z]{15} peer=127\.0\.0\.1:\d+: 550 5\.1\.1 "
                     r"<nobody@example\.test>: Recipient address rejected: User unknown; "
                     r"from=<sender@example\.org> to=<nobody@example\.test> proto=ESMTP "
                     r"helo=<client\.example\.org>", mx.log_text())
    # an authenticated client may relay: the message is queued (this test
    # node's relayhost is a closed loopback port, so it stays queued)
    r = swaks(mx, "--to", "someone@elsewhere.test", "--from", ALICE, "-a", "PLAIN", "-au", ALICE,
              "-ap", PASSWORD, check=False)
    assert "250 2.1.5" in r.stdout and "250 2.0.0 Ok: queued as" in r.stdout, r.stdout
    mx.wait_log("to=<someone@elsewhere.test> relay=127.0.0.1[127.0.0.1]:9")


def test_remote_targets_queued_once(mx):
    """Aliases and groups that reach the same remote address put it in the
    queued message once (the queue would send each copy on)."""
    mx.ctl("alias", "add", f"fwd2@{DOMAIN}", "Someone@Elsewhere.test")
    mx.ctl("group", "add", f"far@{DOMAIN}")
    mx.ctl("group", "add-member", f"far@{DOMAIN}", "someone@elsewhere.test")
    with smtplib.SMTP("127.0.0.1", mx.ports["smtp"], timeout=20) as s:
        refused = s.sendmail("sender@example.org",
                             [f"fwd@{DOMAIN}", f"fwd2@{DOMAIN}", f"far@{DOMAIN}", f"FWD@{DOMAIN}"],
                             message(subject="one remote copy"))
        assert refused == {}
    mx.wait_log("relay=127.0.0.1[127.0.0.1]:9")
    [nrcpt] = re.findall(r"id=[0-9A-Z]{15} conn=\d+ from=<sender@example\.org> size=\d+ "
                         r"nrcpt=(\d+) proto=ESMTP user=- status=queued", mx.log_text())
    assert nrcpt == "1", mx.log_text()


def test_recipient_limit_counts_remote_targets(mx):
    """Remote targets count toward the recipients one message may have:
    past it the RCPT gets 452 4.5.3 (next transaction), not a 250 whose
    message could never be queued, nor unbounded memory."""
    members = [f"m{i}@far.test" for i in range(5000)]
    mx.ctl("group", "add", f"crowd@{DOMAIN}")
    for i in range(0, len(members), 250):  # a control request is bounded
        mx.ctl("group", "add-member", f"crowd@{DOMAIN}", *members[i:i + 250])
    with smtplib.SMTP("127.0.0.1", mx.ports["smtp"], timeout=60) as s:
        s.ehlo("client.example.org")
        assert s.mail("sender@example.org")[0] == 250
        assert s.rcpt(f"crowd@{DOMAIN}")[0] == 250
        code, text = s.rcpt(f"CROWD@{DOMAIN}")
        assert (code, text.decode()[:5]) == (452, "4.5.3"), text
        assert s.rcpt(ALICE)[0] == 250
        code, text = s.data(message(subject="crowd"))
        assert code == 250, text
    mx.wait_log("nrcpt=5001 proto=ESMTP")


def success_reports(node, sender):
    """The success reports in sender's mailbox, once there are any (30 s)."""
    deadline = time.monotonic() + 30
    reports = []
    while time.monotonic() < deadline and not reports:
        reports = [m for m in mailbox_texts(node, sender)
                   if b"Successful Mail Delivery Report" in m]
        time.sleep(0.1)
    return reports


def test_notify_success_for_a_local_recipient(mx):
    """NOTIFY=SUCCESS for a local mailbox: the final delivery reports it
    (RFC 3461), to the sender, once, with Action: delivered."""
    with smtplib.SMTP("127.0.0.1", mx.ports["smtp"], timeout=20) as s:
        s.ehlo("client.example.org")
        s.sendmail(ALICE, [BOB, CAROL], message(subject="report it"),
                   rcpt_options=["NOTIFY=SUCCESS"])
    reports = success_reports(mx, ALICE)
    assert len(reports) == 1
    assert reports[0].count(b"Action: delivered") == 2
    assert len(mailbox_files(mx, BOB)) == 1 and len(mailbox_files(mx, CAROL)) == 1


def test_success_report_names_the_original_recipient(mx):
    """A local recipient reached through the queue for its success report
    keeps the client's ORCPT, and an alias's mailbox the alias's address:
    the report's Original-Recipient (RFC 3461 4.2, RFC 3464 2.3.1) is what
    the sender can match it with."""
    with smtplib.SMTP("127.0.0.1", mx.ports["smtp"], timeout=20) as s:
        s.ehlo("client.example.org")
        assert s.mail(ALICE)[0] == 250
        assert s.rcpt(BOB, ["NOTIFY=SUCCESS", f"ORCPT=rfc822;old-bob@{DOMAIN}"])[0] == 250
        assert s.rcpt(f"team@{DOMAIN}", ["NOTIFY=SUCCESS"])[0] == 250
        assert s.data(message(subject="whose report"))[0] == 250
    reports = success_reports(mx, ALICE)
    assert len(reports) == 1
    text = reports[0].decode()
    assert f"Original-Recipient: rfc822; old-bob@{DOMAIN}" in text, text
    assert f"Original-Recipient: rfc822; team@{DOMAIN}" in text, text


def test_alias_and_group_deliver_once_each(mx):
    with smtplib.SMTP("127.0.0.1", mx.ports["smtp"], timeout=20) as s:
        refused = s.sendmail("sender@example.org",
                             [ALICE, f"team@{DOMAIN}", f"staff@{DOMAIN}", ALICE.upper()],
                             message(subject="fan-out"))
        assert refused == {}
    # alice is named directly, by the alias and by the group: one copy
    for user, count in ((ALICE, 1), (BOB, 1), (CAROL, 1), (DAVE, 0)):
        assert len(mailbox_files(mx, user)) == count, user
    texts = {u: mailbox_texts(mx, u)[0] for u in (ALICE, BOB, CAROL)}
    assert texts[ALICE] == texts[BOB] == texts[CAROL]
    mx.wait_log("mailboxes=3 delivered=3")
    assert re.search(r"nrcpt=4 mailboxes=3 delivered=3 proto=ESMTP user=- status=sent",
                     mx.log_text())


def test_quota_at_rcpt_and_after_data(mx):
    first = message(subject="fills", body="x" * 2500 + "\r\n")
    with smtplib.SMTP("127.0.0.1", mx.ports["smtp"], timeout=20) as s:
        assert s.sendmail("sender@example.org", [DAVE], first) == {}
    [f] = mailbox_files(mx, DAVE)
    used = f.stat().st_size
    assert 2500 < used < 4096
    with smtplib.SMTP("127.0.0.1", mx.ports["smtp"], timeout=20) as s:
        s.ehlo("client.example.org")
        # declared size that no longer fits: 452 at RCPT
        assert s.mail("sender@example.org", [f"SIZE={4096 - used + 1}"])[0] == 250
        code, text = s.rcpt(DAVE)
        assert (code, text.decode()) == (
            452, "4.2.2 <dave@example.test>: Recipient address rejected: Mailbox full")
        s.rset()
        # larger than the whole quota: 552 5.2.2
        assert s.mail("sender@example.org", ["SIZE=5000"])[0] == 250
        code, text = s.rcpt(DAVE)
        assert code == 552 and text.startswith(b"5.2.2 ")
        s.rset()
        # no SIZE: accepted at RCPT, the store refuses it after DATA
        assert s.mail("sender@example.org")[0] == 250
        assert s.rcpt(DAVE)[0] == 250
        code, text = s.data(first)
        assert (code, text.decode()) == (452, "4.2.2 <dave@example.test>: Mailbox full, try "
                                              "again later")
        # several mailboxes, one without room: nobody gets it (no partial delivery)
        assert s.mail("sender@example.org")[0] == 250
        assert s.rcpt(ALICE)[0] == 250
        assert s.rcpt(DAVE)[0] == 250
        code, text = s.data(first)
        assert code == 452 and b"<dave@example.test>: Mailbox full" in text
    assert len(mailbox_files(mx, DAVE)) == 1
    assert mailbox_files(mx, ALICE) == []
    assert tmp_leftovers(mx) == []
    # at the quota: refused at RCPT whatever the size
    mx.ctl("user", "set-quota", DAVE, "1K")
    with smtplib.SMTP("127.0.0.1", mx.ports["smtp"], timeout=20) as s:
        s.ehlo("client.example.org")
        s.mail("sender@example.org")
        assert s.rcpt(DAVE)[0] == 452
        # a disabled user still receives mail
        mx.ctl("user", "disable", BOB)
        assert s.rcpt(BOB)[0] == 250
        assert s.data(message())[0] == 250
    assert len(mailbox_files(mx, BOB)) == 1


def queued_orcpts(node):
    return [f for p in (node.store / "spool").glob("*/env/*")
            for f in p.read_text(errors="replace").split() if f.startswith("orcpt=")]


def test_forward_keeps_a_long_orcpt(mx):
    """An alias whose address, as ORCPT (rfc822; and xtext), is longer than
    any path (320) but within RFC 3461's 500: the forward keeps it."""
    domain = ".".join(["l" * 60] * 4)  # 243 characters
    alias = "+" * 60 + "@" + domain      # xtext: 180 + 244 = 424
    mx.ctl("domain", "add", domain)
    mx.ctl("alias", "add", alias, "someone@elsewhere.test")
    with smtplib.SMTP("127.0.0.1", mx.ports["smtp"], timeout=20) as s:
        assert s.sendmail("sender@example.org", [alias], message(subject="long orcpt")) == {}
    mx.wait_log("to=<someone@elsewhere.test>")
    [orcpt] = queued_orcpts(mx)
    assert len(orcpt) > len("orcpt=rfc822;") + 320 and orcpt.endswith(domain), orcpt


def test_rcpt_orcpt_up_to_500(mx):
    """RFC 3461 allows ORCPT= values of 500 characters: accepted and kept
    with the queued recipient (an alias's remote target); one more is
    refused."""
    value = "rfc822;" + "o" * (500 - len("rfc822;") - len("@x.test")) + "@x.test"
    with smtplib.SMTP("127.0.0.1", mx.ports["smtp"], timeout=20) as s:
        s.ehlo()
        assert s.mail("sender@example.org")[0] == 250
        assert s.rcpt(f"fwd@{DOMAIN}", [f"ORCPT={value}"])[0] == 250
        assert s.rcpt(f"fwd@{DOMAIN}", [f"ORCPT=o{value}"])[0] == 555
        assert s.data(message(subject="orcpt 500"))[0] == 250
    mx.wait_log("to=<someone@elsewhere.test>")
    assert queued_orcpts(mx) == [f"orcpt={value}"]


def test_quota_warning_logged_once_when_crossed(mx):
    """queue.quota_warning (90% by default): the delivery that takes a
    user's usage across it says so in its log line; the ones before and
    after it do not. The crossing one goes through the queue (a remote
    recipient beside the local one), the others straight to the store."""
    erin = f"erin@{DOMAIN}"
    mx.ctl("user", "add", erin, "--random-password", "--quota", "10K")
    for n, size in enumerate((5000, 3800, 10)):
        rcpts = [erin, f"fwd@{DOMAIN}"] if n == 1 else [erin]
        with smtplib.SMTP("127.0.0.1", mx.ports["smtp"], timeout=20) as s:
            assert s.sendmail("sender@example.org", rcpts,
                              message(subject=f"q{n}", body="x" * size + "\r\n")) == {}
        mx.wait_log(f"to=<{erin}> relay=local" if n == 1 else f"to=<{erin}> status=delivered")
    used = sum(f.stat().st_size for f in mailbox_files(mx, erin))
    assert 9216 <= used < 10240  # across 90% of 10K
    log = mx.log_text().splitlines()
    direct = [ln for ln in log if f"to=<{erin}> status=delivered" in ln]
    queued = [ln for ln in log if f"to=<{erin}> relay=local" in ln]
    assert len(direct) == 2 and len(queued) == 1, log
    assert not any(ln.endswith("quota_warning=yes") for ln in direct), direct
    assert "status=sent" in queued[0] and queued[0].endswith(" quota_warning=yes"), queued


def test_size_limits(mx):
    with smtplib.SMTP("127.0.0.1", mx.ports["smtp"], timeout=20) as s:
        s.ehlo("client.example.org")
        code, text = s.mail("sender@example.org", [f"SIZE={MAX_SIZE + 1}"])
        assert (code, text.decode()) == (552, "5.3.4 Message size exceeds fixed maximum "
                                              "message size")
        assert s.mail("sender@example.org")[0] == 250
        assert s.rcpt(ALICE)[0] == 250
        code, text = s.data(message(body="y" * 1000 + "\r\n") * 110)
        assert (code, text.decode()) == (552, "5.3.4 Message size exceeds fixed maximum "
                                              "message size")
        # the session goes on
        assert s.sendmail("sender@example.org", [ALICE], message(subject="small")) == {}
    [text] = mailbox_texts(mx, ALICE)
    assert b"Subject: small" in text
    assert tmp_leftovers(mx) == []
    mx.wait_log("END-OF-MESSAGE 552 5.3.4 Message size exceeds fixed maximum message size; "
                f"from=<sender@example.org> to=<{ALICE}>")


def test_submission_requires_auth(mx):
    with smtplib.SMTP("127.0.0.1", mx.ports["submission"], timeout=20) as s:
        s.ehlo("client.example.org")
        code, text = s.mail(ALICE)
        assert (code, text.decode()) == (530, "5.7.0 Authentication required")
        s.starttls(context=tls_context())
        s.ehlo("client.example.org")
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.login(ALICE, "wrong")
        assert e.value.smtp_code == 535
        s.login(ALICE, PASSWORD)
        assert s.sendmail(ALICE, [BOB], message(subject="submitted")) == {}
    r = swaks(mx, "--to", CAROL, "--from", ALICE, "--tls", "-a", "PLAIN", "-au", ALICE, "-ap",
              PASSWORD, "--ehlo", "laptop.example.org", port="submission")
    assert "235 2.7.0 Authentication successful" in r.stdout
    [text] = mailbox_texts(mx, CAROL)
    assert re.search(rb"\tby \S+ \(clustermail\) with ESMTPSA id [0-9A-Z]{15}\r\n", text)
    assert b"(using TLSv1.3 with cipher TLS_" in text
    # the login name is not disclosed in the header, only in the log
    assert b"alice" not in text.split(b"\r\n\r\n")[0].split(b"Received:")[1].split(b"\r\nDate")[0]
    mx.wait_log(f"proto=ESMTPSA user={ALICE} status=sent")


def test_auth_refused_in_plaintext_when_require_tls(mx):
    r = Raw(mx.ports["submission"])
    r.reply()
    r.send(b"EHLO client.example.org\r\n")
    text, lines = r.reply()
    assert not any("AUTH" in l for l in lines), lines
    plain = base64.b64encode(f"\0{ALICE}\0{PASSWORD}".encode()).decode()
    assert r.command(f"AUTH PLAIN {plain}") == \
        "538 5.7.11 Encryption required for requested authentication mechanism"
    assert r.command("MAIL FROM:<alice@example.test>") == "530 5.7.0 Authentication required"
    r.close()
    res = swaks(mx, "--to", BOB, "--from", ALICE, "-a", "PLAIN", "-au", ALICE, "-ap", PASSWORD,
                port="submission", check=False)
    assert res.returncode != 0
    assert mailbox_files(mx, BOB) == []
    assert "login user=" not in mx.log_text()


def test_auth_exchanges(mx):
    """LOGIN step by step, a cancelled exchange, responses that are not
    base64, an unknown mechanism (loopback smtp allows plaintext AUTH)."""
    b64 = lambda t: base64.b64encode(t.encode()).decode()
    r = Raw(mx.ports["smtp"])
    r.reply()
    r.send(b"EHLO client.example.org\r\n")
    r.reply()
    assert r.command("AUTH FOO") == "504 5.5.4 Unrecognized authentication type"
    assert r.command("AUTH PLAIN") == "334 "
    assert r.command("*") == "501 5.0.0 Authentication cancelled"
    assert r.command("AUTH PLAIN !!not-base64!!") == "501 5.5.2 Error: malformed authentication response"
    assert r.command("AUTH LOGIN") == "334 VXNlcm5hbWU6"
    assert r.command("%%%") == "501 5.5.2 Error: malformed authentication response"
    assert r.command("AUTH LOGIN") == "334 VXNlcm5hbWU6"
    assert r.command(b64(ALICE)) == "334 UGFzc3dvcmQ6"
    assert r.command(b64(PASSWORD)) == "235 2.7.0 Authentication successful"
    assert r.command("AUTH PLAIN") == "503 5.5.1 Error: already authenticated"
    assert r.command("MAIL FROM:<alice@example.test>") == "250 2.1.0 Ok"
    assert r.command("QUIT") == "221 2.0.0 Bye"
    mx.wait_log(f"[auth] login user={ALICE} peer=127.0.0.1:")


def test_client_gone_during_commit(mx):
    """A client that closes right after its end of data: the commit goes on
    or is cancelled, never half done; each message is in the mailbox at
    most once, and exactly when its log line says it was sent."""
    for i in range(8):
        r = Raw(mx.ports["smtp"])
        r.reply()
        r.send(b"EHLO c\r\nMAIL FROM:<gone@example.org>\r\nRCPT TO:<alice@example.test>\r\n"
               b"DATA\r\n")
        assert [r.reply()[0][:3] for _ in range(4)] == ["250", "250", "250", "354"]
        r.send(b"Subject: gone %d\r\n\r\nbody\r\n.\r\n" % i)
        r.close()
    pattern = re.compile(r"conn=\d+ from=<gone@example\.org> .* status=(sent|cancelled) ")
    deadline = time.monotonic() + 20
    while len(pattern.findall(mx.log_text())) < 8:
        assert time.monotonic() < deadline, mx.log_text()
        time.sleep(0.05)
    statuses = pattern.findall(mx.log_text())
    texts = mailbox_texts(mx, ALICE)
    assert len(texts) == statuses.count("sent")
    assert len({t.split(b"Subject: ")[1][:8] for t in texts}) == len(texts)
    # the node is still serving
    with smtplib.SMTP("127.0.0.1", mx.ports["smtp"], timeout=20) as s:
        assert s.sendmail("after@example.org", [BOB], message()) == {}
    assert tmp_leftovers(mx) == []


def test_starttls_injection(mx):
    r = Raw(mx.ports["smtp"])
    r.reply()
    r.send(b"EHLO client.example.org\r\n")
    r.reply()
    # the classic injection: a command pipelined behind STARTTLS in plaintext
    r.send(b"STARTTLS\r\nMAIL FROM:<injected@evil.test>\r\n")
    assert r.line() == "220 2.0.0 Ready to start TLS"
    assert r.nothing_pending(), r.buf
    r.starttls()
    # under TLS: had the MAIL run, RCPT would be accepted and EHLO refused
    assert r.command("RCPT TO:<alice@example.test>") == "503 5.5.1 Error: need MAIL command"
    assert r.command("MAIL FROM:<a@example.org>") == "503 5.5.1 Error: send HELO/EHLO first"
    r.send(b"EHLO client.example.org\r\n")
    text, lines = r.reply()
    assert "250-STARTTLS" not in lines and text.startswith("250 ")
    assert r.command("MAIL FROM:<a@example.org>") == "250 2.1.0 Ok"
    assert r.command("STARTTLS") == "554 5.5.1 Error: TLS already active"
    assert r.command("QUIT") == "221 2.0.0 Bye"
    assert "injected" not in mx.log_text()


def test_smtps_implicit_tls(mx):
    with smtplib.SMTP_SSL("127.0.0.1", mx.ports["smtps"], timeout=20,
                          context=tls_context()) as s:
        s.ehlo("client.example.org")
        assert not s.has_extn("starttls")
        assert s.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
        assert s.mail(ALICE)[0] == 530  # RFC 8314 submissions: AUTH first
        s.login(ALICE, PASSWORD)
        assert s.sendmail(ALICE, [BOB], message(subject="over smtps")) == {}
    [text] = mailbox_texts(mx, BOB)
    assert b" with ESMTPSA id " in text and b"(using TLSv1." in text
    # openssl s_client sees the greeting only after its handshake
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{mx.ports['smtps']}",
                        "-servername", "localhost", "-quiet"], input="QUIT\r\n",
                       capture_output=True, text=True, timeout=30)
    assert re.search(r"^220 \S+ ESMTP clustermail\r?$", r.stdout, re.M), r.stdout + r.stderr
    assert "221 2.0.0 Bye" in r.stdout


@pytest.mark.parametrize("fake_end", [b"\n.\r\n", b"\r\n.\n", b"\r.\r\n"])
def test_smuggling_is_rejected(mx, fake_end):
    r = Raw(mx.ports["smtp"])
    r.reply()
    r.send(b"EHLO client.example.org\r\n")
    r.reply()
    assert r.command("MAIL FROM:<sender@example.org>").startswith("250")
    assert r.command(f"RCPT TO:<{ALICE}>").startswith("250")
    assert r.command("DATA").startswith("354")
    r.send(b"Subject: carrier\r\n\r\nfirst" + fake_end +
           b"MAIL FROM:<ceo@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
           b"Subject: smuggled\r\n\r\nsecond\r\n.\r\n")
    assert r.reply()[0] == "550 5.6.11 Message contains a bare CR or LF; use CRLF line endings"
    # exactly one reply: nothing after the fake end ran as commands
    assert r.command("NOOP") == "250 2.0.0 Ok"
    assert r.command("RCPT TO:<bob@example.test>") == "503 5.5.1 Error: need MAIL command"
    r.close()
    assert mailbox_files(mx, ALICE) == [] and mailbox_files(mx, BOB) == []
    # the refusal is logged with its envelope, as a refused RCPT is
    mx.wait_log("END-OF-MESSAGE 550 5.6.11 Message contains a bare CR or LF; use CRLF line "
                f"endings; from=<sender@example.org> to=<{ALICE}> proto=ESMTP "
                "helo=<client.example.org>")


def test_bdat_chunks(mx):
    r = Raw(mx.ports["smtp"])
    r.reply()
    r.send(b"EHLO client.example.org\r\n")
    assert "250 CHUNKING" in r.reply()[1]
    assert r.command("MAIL FROM:<sender@example.org>").startswith("250")
    assert r.command(f"RCPT TO:<{ALICE}>").startswith("250")
    part1 = b"Subject: chunked\r\n\r\nline one\r\n"
    part2 = b".leading dot kept as is\r\nbare\nLF ends a line, stored as CRLF\r\nno end"
    r.send(b"BDAT %d\r\n" % len(part1) + part1)
    assert r.reply()[0] == f"250 2.0.0 Ok: {len(part1)} octets received"
    r.send(b"BDAT %d LAST\r\n" % len(part2) + part2)
    text = r.reply()[0]
    qid = re.fullmatch(r"250 2\.0\.0 Ok: queued as ([0-9A-Z]{15})", text).group(1)
    # BDAT 0 LAST after a refused transaction start is answered in order
    r.send(b"BDAT 4 LAST\r\nabcd")
    assert r.reply()[0] == "503 5.5.1 Error: need MAIL command"
    assert r.command("QUIT") == "221 2.0.0 Bye"
    [stored] = mailbox_texts(mx, ALICE)
    # a bare LF becomes CRLF, and the last line gets its end, as with DATA
    assert stored.endswith(b"\r\n\r\n" + part1.split(b"\r\n\r\n")[1] +
                           part2.replace(b"bare\n", b"bare\r\n") + b"\r\n")
    assert f"id {qid}".encode() in stored


def test_pipelining(mx):
    r = Raw(mx.ports["smtp"])
    r.reply()
    r.send(b"EHLO client.example.org\r\n")
    r.reply()
    msg = b"Subject: pipelined one\r\n\r\none\r\n"
    msg2 = b"Subject: pipelined two\r\n\r\ntwo\r\n"
    # RFC 2920: the whole envelope in one write, DATA last
    r.send(b"MAIL FROM:<sender@example.org>\r\nRCPT TO:<alice@example.test>\r\n"
           b"RCPT TO:<nobody@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
    replies = [r.reply()[0][:3] for _ in range(5)]
    assert replies == ["250", "250", "550", "250", "354"]
    # the message, its end, and a whole BDAT transaction, in one write
    r.send(msg + b".\r\nMAIL FROM:<s2@example.org>\r\nRCPT TO:<carol@example.test>\r\n"
           b"BDAT %d LAST\r\n" % len(msg2) + msg2 + b"QUIT\r\n")
    replies = [r.reply()[0] for _ in range(5)]
    assert replies[0].startswith("250 2.0.0 Ok: queued as ")
    assert replies[1:3] == ["250 2.1.0 Ok", "250 2.1.5 Ok"]
    assert replies[3].startswith("250 2.0.0 Ok: queued as ")
    assert replies[0] != replies[3]
    assert replies[4] == "221 2.0.0 Bye"
    assert [b"pipelined one" in t for t in mailbox_texts(mx, ALICE)] == [True]
    assert [b"pipelined one" in t for t in mailbox_texts(mx, BOB)] == [True]
    assert [b"pipelined two" in t for t in mailbox_texts(mx, CAROL)] == [True]


def test_250_only_after_the_message_is_in_the_mailbox(mx):
    """The durability contract seen from outside: whenever a client reads
    the 250, the message file is already in the recipient's mailbox."""
    r = Raw(mx.ports["smtp"])
    r.reply()
    r.send(b"EHLO client.example.org\r\n")
    r.reply()
    for i in range(20):
        r.send(b"MAIL FROM:<s@example.org>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
        assert [r.reply()[0][:3] for _ in range(3)] == ["250", "250", "354"]
        r.send(b"Subject: durable %d\r\n\r\nbody\r\n.\r\n" % i)
        assert r.reply()[0].startswith("250 2.0.0 Ok: queued as ")
        # no waiting: the file must be there the moment the reply is read
        assert len(mailbox_files(mx, ALICE)) == i + 1
    r.close()


def test_client_gone_mid_data_delivers_nothing(mx):
    r = Raw(mx.ports["smtp"])
    r.reply()
    r.send(b"EHLO client.example.org\r\n")
    r.reply()
    r.send(b"MAIL FROM:<s@example.org>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
    assert [r.reply()[0][:3] for _ in range(3)] == ["250", "250", "354"]
    r.send(b"Subject: cut\r\n\r\n" + b"z" * 20000)
    r.close()
    mx.wait_log("message discarded")
    assert mailbox_files(mx, ALICE) == []
    deadline = time.monotonic() + 5
    while tmp_leftovers(mx) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tmp_leftovers(mx) == []


def test_drain_ends_cleanly_with_a_queued_message_in_its_commit(node_factory, workdir,
                                                                 monkeypatch):
    """SIGTERM while a message for a remote recipient is being committed to
    the spool, past the drain timeout: the connection is closed by force,
    the commit ends after the workers stopped, and its completion ran once
    the queue manager was freed (a use after free under ASan)."""
    shim = workdir / "slow_sync.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(shim),
                    str(pathlib.Path(__file__).with_name("slow_sync.c")), "-ldl"], check=True)
    sync_dir = workdir / "sync"  # maild, as the service user, writes the .hit file here
    sync_dir.mkdir()
    sync_dir.chmod(0o777)
    trigger = sync_dir / "slow-now"
    monkeypatch.setenv("LD_PRELOAD", str(shim))
    monkeypatch.setenv("CM_SLOW_SYNC", str(trigger))
    monkeypatch.setenv("ASAN_OPTIONS", os.environ.get("ASAN_OPTIONS", "") +
                       ":verify_asan_link_order=0")
    n = node_factory()
    n.config.write_text(n.config.read_text().replace("drain_timeout = 5;", "drain_timeout = 1;"))
    n.start()
    s = Raw(n.ports["smtp"])
    s.reply()
    s.send(b"EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<bob@remote.example>\r\nDATA\r\n")
    assert [s.reply()[0][:3] for _ in range(4)] == ["250", "250", "250", "354"]
    trigger.touch()
    s.send(b"Subject: slow\r\n\r\nhello\r\n.\r\n")
    hit = sync_dir / "slow-now.hit"
    deadline = time.monotonic() + 10  # the commit is inside its slowed fsync
    while not hit.exists():
        assert time.monotonic() < deadline, "the commit never reached its fsync"
        time.sleep(0.02)
    n.signal(signal.SIGTERM)
    assert n.proc.wait(30) == 0
    trigger.unlink()
    n.wait_log("drain done")
    # the message is in the spool for the next start
    assert list((n.store / "spool").glob("*/env/*"))


def test_drain_does_not_wait_for_a_silent_starttls_handshake(mx):
    """A client that sent STARTTLS and then nothing: on SIGTERM its
    connection closes at once (the 421 written into the unfinished TLS
    session could never be sent), not at the drain deadline."""
    s = Raw(mx.ports["smtp"])
    s.reply()
    s.send(b"EHLO c\r\n")
    s.reply()
    s.send(b"STARTTLS\r\n")
    assert s.reply()[0].startswith("220")
    start = time.monotonic()
    mx.signal(signal.SIGTERM)
    assert mx.proc.wait(20) == 0
    assert time.monotonic() - start < 3  # the harness's drain_timeout is 5 s
    assert "forced=0" in mx.log_text()


def test_drain_on_sigterm(mx):
    """Idle sessions get 421 at once; a message being transferred may end
    within the drain time (a SIGHUP meanwhile changes nothing), is stored
    and answered, then gets its 421; new connections are refused while the
    node drains (so that clients go to another node at once)."""
    idle = Raw(mx.ports["smtp"])
    idle.reply()
    idle.send(b"EHLO client.example.org\r\n")
    idle.reply()
    busy = Raw(mx.ports["submission"])
    busy.reply()
    in_data = Raw(mx.ports["smtp"])
    in_data.reply()
    in_data.send(b"EHLO c\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
    assert [in_data.reply()[0][:3] for _ in range(4)] == ["250", "250", "250", "354"]
    in_data.send(b"Subject: finished in the drain\r\n\r\npart")
    time.sleep(0.2)
    mx.signal(signal.SIGTERM)
    for c in (idle, busy):
        assert c.reply()[0] == "421 4.3.2 Service shutting down, closing connection"
    mx.wait_log("drain begin")
    # the workers close their listening sockets just after that line
    deadline = time.monotonic() + 5
    while True:
        try:
            socket.create_connection(("127.0.0.1", mx.ports["smtp"]), timeout=5).close()
        except ConnectionRefusedError:
            break
        assert time.monotonic() < deadline, "still accepting connections while draining"
        time.sleep(0.05)
    mx.signal(signal.SIGHUP)
    time.sleep(0.3)
    assert mx.proc.poll() is None
    in_data.send(b" two\r\n.\r\n")
    assert in_data.reply()[0].startswith("250 2.0.0 Ok: queued as ")
    assert in_data.reply()[0] == "421 4.3.2 Service shutting down, closing connection"
    assert mx.proc.wait(20) == 0
    [stored] = mailbox_texts(mx, ALICE)
    assert stored.endswith(b"Subject: finished in the drain\r\n\r\npart two\r\n")
    assert "drain done sessions=3 forced=0" in mx.log_text()


def test_pop3_reads_what_smtp_delivered(mx):
    body = b"Read me over POP3.\r\n"
    with smtplib.SMTP("127.0.0.1", mx.ports["smtp"], timeout=20) as s:
        assert s.sendmail("sender@example.org", [ALICE], message(body=body.decode())) == {}
    [stored] = mailbox_texts(mx, ALICE)
    p = poplib.POP3("127.0.0.1", mx.ports["pop3"], timeout=20)
    p.user(ALICE)
    p.pass_(PASSWORD)
    count, size = p.stat()
    assert (count, size) == (1, len(stored))
    resp, lines, octets = p.retr(1)
    assert b"\r\n".join(lines) + b"\r\n" == stored
    assert lines[0] == b"Return-Path: <sender@example.org>"
    p.quit()


def test_without_certificate_no_starttls(node_factory):
    n = node_factory().start()  # no certificate: smtps is off (conftest), smtp has no TLS
    n.ctl("domain", "add", DOMAIN)
    n.ctl("user", "add", ALICE, "--random-password")
    with smtplib.SMTP("127.0.0.1", n.ports["smtp"], timeout=20) as s:
        s.ehlo("client.example.org")
        assert not s.has_extn("starttls")
        assert s.docmd("STARTTLS") == (502, b"5.5.1 Error: STARTTLS not available")
        assert s.sendmail("sender@example.org", [ALICE], message()) == {}
    assert len(mailbox_files(n, ALICE)) == 1
