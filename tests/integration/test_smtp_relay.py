"""Relay control and per-client limits of maild's SMTP service, with real
clients (smtplib, swaks): an untrusted client (trusted_networks set to a
network without 127.0.0.1) is refused every classic open-relay trick with
the exact reply; relaying is permitted by authentication, by a trusted
network and by relay_domains (the RCPT gets 250; the whole message is
queued, and the queue delivers its local copy); the
message rate limit answers 450 at MAIL; the command and data timeouts
answer 421 and close."""
import base64
import smtplib
import socket
import subprocess
import time

import pytest

DOMAIN = "example.test"
ALICE = f"alice@{DOMAIN}"
PASSWORD = "Alice-Pw1"
HOST = f"mx.{DOMAIN}"


def make_mx(node_factory, smtp_settings):
    n = node_factory(extra=f'hostname = "{HOST}";\nsmtp = {{ {smtp_settings} }};\n')
    n.ctl("domain", "add", DOMAIN)
    n.ctl("user", "add", ALICE, "--password-stdin", input=PASSWORD + "\n")
    return n.start()


def inbox(node, address):
    local, domain = address.split("@")
    base = node.store / "mail" / domain
    box = f"*/{local}/box/INBOX/.box"
    return list(base.glob(f"{box}/new/*")) + [
        p for p in base.glob(f"{box}/msg/*/*") if p.name.isdigit()]


def rcpt(s, path):
    """RCPT with the path exactly as written (smtplib would rewrite it)."""
    code, text = s.docmd(f"RCPT TO:<{path}>")
    return code, text.decode()


def message():
    return f"From: {ALICE}\r\nTo: someone@elsewhere.test\r\nSubject: relay\r\n\r\nHello.\r\n"


UNTRUSTED = 'trusted_networks = ["192.0.2.0/24"]; relay_domains = ["relay.example", ".sub.relay.example"];'


@pytest.fixture
def untrusted_mx(node_factory):
    return make_mx(node_factory, UNTRUSTED)


# (forward path, code, reply text after the enhanced code)
TRICKS = [
    ("someone@elsewhere.test", 554, "5.7.1 <someone@elsewhere.test>: Relay access denied"),
    ("SOMEONE@ELSEWHERE.TEST", 554, "5.7.1 <SOMEONE@ELSEWHERE.TEST>: Relay access denied"),
    # percent hack
    ("user%elsewhere.test@example.test", 554,
     "5.7.1 <user%elsewhere.test@example.test>: Relay access denied"),
    # quoted local part with an @
    ('"user@elsewhere.test"@example.test', 554,
     '5.7.1 <"user@elsewhere.test"@example.test>: Relay access denied'),
    # bang path
    ("elsewhere.test!user@example.test", 554,
     "5.7.1 <elsewhere.test!user@example.test>: Relay access denied"),
    # source routes: stripped, the mailbox after them is judged
    ("@example.test:user@elsewhere.test", 554, "5.7.1 <user@elsewhere.test>: Relay access denied"),
    ("@example.test,@mx.example.test:user@elsewhere.test", 554,
     "5.7.1 <user@elsewhere.test>: Relay access denied"),
    # user@host@host
    ("user@elsewhere.test@example.test", 501, "5.1.3 malformed domain"),
    # address literals
    ("user@[192.0.2.1]", 554, "5.7.1 <user@[192.0.2.1]>: Relay access denied"),
    ("user@[127.0.0.1]", 554, "5.7.1 <user@[127.0.0.1]>: Relay access denied"),
    ("user@[IPv6:2001:db8::1]", 554, "5.7.1 <user@[IPv6:2001:db8::1]>: Relay access denied"),
    # routing through a relay domain is not honoured for strangers either
    ("user%elsewhere.test@relay.example", 554,
     "5.7.1 <user%elsewhere.test@relay.example>: Relay access denied"),
    # a relay domain's parent is not a relay domain
    ("user@sub.relay.example", 554, "5.7.1 <user@sub.relay.example>: Relay access denied"),
]


def test_open_relay_tricks_refused(untrusted_mx):
    mx = untrusted_mx
    with smtplib.SMTP("127.0.0.1", mx.ports["smtp"], timeout=20) as s:
        s.ehlo("client.example.org")
        assert s.mail("sender@example.org")[0] == 250
        for path, code, text in TRICKS:
            assert rcpt(s, path) == (code, text), path
        # the transaction is still usable: a local recipient is delivered
        assert rcpt(s, ALICE)[0] == 250
        assert s.data(message())[0] == 250
    assert len(inbox(mx, ALICE)) == 1
    mx.wait_log("Relay access denied")
    assert "reject conn=" in mx.log_text()
    assert "to=<user@elsewhere.test>" in mx.log_text()


def test_bad_sender_syntax(untrusted_mx):
    with smtplib.SMTP("127.0.0.1", untrusted_mx.ports["smtp"], timeout=20) as s:
        s.ehlo("client.example.org")
        for path in ("user@@example.org", "user@example..org", "@example.org", "a b@example.org"):
            code, text = s.docmd(f"MAIL FROM:<{path}>")
            assert code == 501 and text.startswith(b"5.1.7 "), (path, code, text)
        assert s.mail("sender@example.org")[0] == 250


def test_relay_domains_permitted_for_anyone(untrusted_mx):
    with smtplib.SMTP("127.0.0.1", untrusted_mx.ports["smtp"], timeout=20) as s:
        s.ehlo("client.example.org")
        assert s.mail("sender@example.org")[0] == 250
        assert rcpt(s, "someone@relay.example") == (250, "2.1.5 Ok")
        assert rcpt(s, "someone@a.sub.relay.example") == (250, "2.1.5 Ok")
        assert rcpt(s, "someone@Relay.Example")[0] == 250
        assert s.rset()[0] == 250
    untrusted_mx.wait_log("relay permitted to=<someone@relay.example> (relay domain)")


def test_relay_permitted_by_authentication(untrusted_mx):
    mx = untrusted_mx
    auth = base64.b64encode(f"\0{ALICE}\0{PASSWORD}".encode()).decode()
    with smtplib.SMTP("127.0.0.1", mx.ports["smtp"], timeout=20) as s:
        s.ehlo("client.example.org")
        assert s.mail("sender@example.org")[0] == 250
        assert rcpt(s, "someone@elsewhere.test")[0] == 554  # not yet
        assert s.rset()[0] == 250
        assert s.docmd("AUTH", f"PLAIN {auth}")[0] == 235
        assert s.mail(ALICE)[0] == 250
        assert rcpt(s, "someone@elsewhere.test") == (250, "2.1.5 Ok")
        assert rcpt(s, "user@[192.0.2.1]") == (250, "2.1.5 Ok")
        # routing in a local domain is never delivered, not even to a catch-all
        assert rcpt(s, "user%elsewhere.test@example.test") == (
            550, "5.1.1 <user%elsewhere.test@example.test>: Recipient address rejected: "
                 "User unknown (sender-specified routing is not supported)")
        assert rcpt(s, ALICE)[0] == 250
        code, text = s.data(message())
        # the whole message is queued; the queue delivers the local copy
        assert code == 250 and text.startswith(b"2.0.0 Ok: queued as "), text
        assert s.noop()[0] == 250
    mx.wait_log("relay permitted to=<someone@elsewhere.test> (authenticated)")
    mx.wait_log(f"to=<{ALICE}> relay=local")
    assert len(inbox(mx, ALICE)) == 1
    # the same with swaks on submission, over STARTTLS-less loopback
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(mx.ports["submission"]),
                        "--timeout", "30", "--to", "someone@elsewhere.test", "--from", ALICE,
                        "-a", "PLAIN", "-au", ALICE, "-ap", PASSWORD],
                       capture_output=True, text=True, timeout=60)
    assert "<-  250 2.1.5 Ok" in r.stdout, r.stdout
    assert "<-  250 2.0.0 Ok: queued as" in r.stdout, r.stdout


def test_relay_permitted_by_trusted_network(node_factory):
    # the default trusted_networks: 127.0.0.0/8 and ::1
    mx = make_mx(node_factory, "")
    with smtplib.SMTP("127.0.0.1", mx.ports["smtp"], timeout=20) as s:
        s.ehlo("client.example.org")
        assert s.mail("sender@example.org")[0] == 250
        assert rcpt(s, "someone@elsewhere.test") == (250, "2.1.5 Ok")
        assert rcpt(s, "user@[IPv6:2001:db8::1]") == (250, "2.1.5 Ok")
        assert rcpt(s, "@example.test:user@elsewhere.test") == (250, "2.1.5 Ok")
        assert rcpt(s, "user@elsewhere.test@example.test")[0] == 501
        assert rcpt(s, ALICE)[0] == 250
        assert s.data(message())[0] == 250
        # a purely local message is delivered as before
        assert s.mail("sender@example.org")[0] == 250
        assert rcpt(s, ALICE)[0] == 250
        assert s.data(message())[0] == 250
    mx.wait_log("relay permitted to=<someone@elsewhere.test> (trusted network)")
    mx.wait_log(f"to=<{ALICE}> relay=local")
    assert len(inbox(mx, ALICE)) == 2


def test_message_rate_limit(node_factory):
    mx = make_mx(node_factory, 'trusted_networks = []; max_messages_per_minute = 3;')
    with smtplib.SMTP("127.0.0.1", mx.ports["smtp"], timeout=20) as s:
        s.ehlo("client.example.org")
        for _ in range(3):
            assert s.mail("sender@example.org")[0] == 250
            assert s.rset()[0] == 250
        assert s.mail("sender@example.org") == (
            450, b"4.7.1 Error: too many messages from [127.0.0.1]")
    # per address, not per connection
    with smtplib.SMTP("127.0.0.1", mx.ports["smtp"], timeout=20) as s:
        s.ehlo("client.example.org")
        assert s.mail("sender@example.org")[0] == 450
    mx.wait_log("450 4.7.1 Error: too many messages from [127.0.0.1] (limit 3 per minute)")


def read_reply(sock, timeout):
    sock.settimeout(timeout)
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_command_timeout(node_factory):
    mx = make_mx(node_factory, "command_timeout = 2;")
    with socket.create_connection(("127.0.0.1", mx.ports["smtp"])) as sock:
        assert read_reply(sock, 10).startswith(b"220 ")
        sock.sendall(b"EHLO client.example.org\r\n")
        read_reply(sock, 10)
        started = time.monotonic()
        assert read_reply(sock, 15) == f"421 4.4.2 {HOST} Error: timeout exceeded\r\n".encode()
        assert 1.5 < time.monotonic() - started < 10
        assert sock.recv(100) == b""  # closed
    mx.wait_log("command timeout exceeded: closing")


def test_data_timeout_for_a_trickling_client(node_factory):
    mx = make_mx(node_factory, "command_timeout = 30; data_timeout = 2;")
    with socket.create_connection(("127.0.0.1", mx.ports["smtp"])) as sock:
        assert read_reply(sock, 10).startswith(b"220 ")
        for line in (b"HELO client.example.org", f"MAIL FROM:<{ALICE}>".encode(),
                     f"RCPT TO:<{ALICE}>".encode(), b"DATA"):
            sock.sendall(line + b"\r\n")
            assert read_reply(sock, 10)[:1] in (b"2", b"3")
        started = time.monotonic()
        sock.settimeout(0.5)
        reply = b""
        while time.monotonic() - started < 15 and not reply:
            try:
                sock.sendall(b"x")  # one byte every half second: never idle
                reply = sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                break
        assert reply == f"421 4.4.2 {HOST} Error: timeout exceeded\r\n".encode()
        assert 1.5 < time.monotonic() - started < 10
    mx.wait_log("data timeout exceeded: closing")
    assert inbox(mx, ALICE) == []
