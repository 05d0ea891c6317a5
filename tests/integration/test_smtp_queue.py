"""The SMTP queue end to end: a message for another domain is accepted into
node A's spool, found through a test DNS server (MX, A), and delivered by
A's queue manager to node B, a second maild acting as the remote MX.
Covers delivery, retries with backoff while B is down, bounces (DSN
content), expiry, delay notices, the postmaster and archive copies,
relayhost and transport overrides, NXDOMAIN and null MX, sendmail's
maildrop picked up by the daemon, `mailctl queue` through the daemon,
and kill -9 of A during a load of 10 concurrent clients."""
import email
import re
import email.policy
import smtplib
import subprocess
import threading
import time

import pytest

from dns_server import DnsServer
from smtp_sink import SmtpSink

A_DOMAIN, B_DOMAIN = "a.test", "b.test"
ALICE, POSTMASTER, ARCHIVE = f"alice@{A_DOMAIN}", f"postmaster@{A_DOMAIN}", f"archive@{A_DOMAIN}"
BOB = f"bob@{B_DOMAIN}"


def message(subject, to=BOB, sender=ALICE, body="Hello from A.\r\n"):
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{time.monotonic_ns()}@a.test>\r\n\r\n{body}").encode()


def mailbox(node, address):
    local, domain = address.split("@")
    base = node.store / "mail" / domain
    box = f"*/{local}/box/INBOX/.box"
    files = list(base.glob(f"{box}/new/*")) + [
        p for p in base.glob(f"{box}/msg/*/*") if p.name.isdigit()]
    return [p.read_bytes() for p in sorted(files)]


def wait_for(predicate, timeout=30, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def with_subject(node, address, subject):
    return [m for m in mailbox(node, address) if f"Subject: {subject}".encode() in m]


def setup_domain(node, domain, *users):
    node.ctl("domain", "add", domain)
    for u in users:
        node.ctl("user", "add", f"{u}@{domain}", "--random-password")


class Pair:
    """Node A (a.test, sends) and node B (b.test, the MX), with a DNS
    server that names B as b.test's exchanger."""

    def __init__(self, node_factory, workdir, a_queue="", b_start=True, records=None):
        self.b = node_factory(node_id=2, name="b", store=workdir / "store-b")
        setup_domain(self.b, B_DOMAIN, "bob")
        recs = {f"{B_DOMAIN}.": [("MX", 10, f"mx.{B_DOMAIN}.")],
                f"mx.{B_DOMAIN}.": [("A", "127.0.0.1")]}
        recs.update(records or {})
        self.dns = DnsServer(recs)
        self.dns.start()
        self.a = node_factory(node_id=1, name="a", store=workdir / "store-a", extra=(
            f'smtp = {{ resolver = "127.0.0.1:{self.dns.port}"; }};\n'
            f"queue = {{ port = {self.b.ports['smtp']}; min_backoff = 1; max_backoff = 2; "
            f"connect_timeout = 5; command_timeout = 10; {a_queue} }};\n"))
        setup_domain(self.a, A_DOMAIN, "alice", "postmaster", "archive")
        self.a.start()
        if b_start:
            self.b.start()

    def send(self, subject, to=BOB, sender=ALICE, **kw):
        with smtplib.SMTP("127.0.0.1", self.a.ports["smtp"], timeout=30) as s:
            s.sendmail(sender, [to] if isinstance(to, str) else to,
                       message(subject, to=to if isinstance(to, str) else ", ".join(to),
                               sender=sender), **kw)

    def spool_empty(self):
        return self.a.ctl("queue", "list").stdout.find("Mail queue is empty") >= 0

    def close(self):
        self.dns.stop()


@pytest.fixture
def pair(node_factory, workdir):
    made = []

    def make(**kw):
        p = Pair(node_factory, workdir, **kw)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def dsn_parts(raw):
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    return msg, msg.get_payload()


def test_relay_through_mx_to_the_remote_node(pair):
    p = pair()
    p.send("relayed")
    got = wait_for(lambda: with_subject(p.b, BOB, "relayed"), what="delivery at B")
    assert len(got) == 1
    # two hops, newest first: B's Received: on top of A's, both above the header
    text = got[0].decode()
    a_id = re.search(r"\[smtp\] id=(\w+) .*status=queued", p.a.log_text()).group(1)
    hops = re.findall(r"with E?SMTPS?A? id (\w+)", text)
    assert len(hops) == 2 and hops[1] == a_id and hops[0] != a_id, (hops, a_id)
    assert text.index(f"id {a_id}") < text.index("Subject: relayed")
    p.a.wait_log(f"to=<{BOB}> relay=mx.{B_DOMAIN}[127.0.0.1]")
    p.a.wait_log("status=sent")
    wait_for(p.spool_empty, what="empty spool")
    assert p.dns.count(f"{B_DOMAIN}.", "MX") >= 1, p.dns.queries


def test_local_and_remote_recipients_of_one_message(pair):
    p = pair()
    p.send("mixed", to=[ALICE, BOB])
    wait_for(lambda: with_subject(p.b, BOB, "mixed"), what="remote copy")
    wait_for(lambda: with_subject(p.a, ALICE, "mixed"), what="local copy")
    assert len(with_subject(p.a, ALICE, "mixed")) == 1


def test_unknown_remote_user_bounces_to_the_sender(pair):
    p = pair()
    p.send("to nobody", to=f"nobody@{B_DOMAIN}")
    bounce = wait_for(lambda: with_subject(p.a, ALICE, "Undelivered Mail Returned to Sender"),
                      what="bounce")[0]
    msg, parts = dsn_parts(bounce)
    assert len(parts) == 3
    assert msg["From"].startswith("\"Mail Delivery System\"") or "MAILER-DAEMON" in msg["From"]
    status = parts[1].as_string()
    assert f"Final-Recipient: rfc822; nobody@{B_DOMAIN}" in status
    assert "Action: failed" in status
    assert "Status: 5.1.1" in status
    assert re.search(r"Remote-MTA: dns; mx\.b\.test\r?\n", status), status
    port = p.b.ports["smtp"]
    assert f"host mx.b.test[127.0.0.1]:{port} said: 550" in parts[0].as_string()
    assert "Subject: to nobody" in parts[2].as_string()
    assert bounce.startswith(b"Return-Path: <>")
    wait_for(p.spool_empty, what="empty spool")


def test_retry_while_the_mx_is_down_then_delivery(pair):
    p = pair(b_start=False)
    p.send("retried")
    p.a.wait_log("status=deferred", timeout=20)
    listing = p.a.ctl("queue", "list").stdout
    assert BOB in listing and "1 Request" in listing, listing
    p.b.start()
    wait_for(lambda: with_subject(p.b, BOB, "retried"), what="delivery after retry")
    wait_for(p.spool_empty, what="empty spool")


def test_expiry_bounces_with_4_4_7(pair):
    p = pair(b_start=False, a_queue="max_lifetime = 3;")
    p.send("expires")
    bounce = wait_for(lambda: with_subject(p.a, ALICE, "Undelivered Mail Returned to Sender"),
                      timeout=30, what="expiry bounce")[0]
    assert b"Status: 4.4.7" in bounce
    assert b"Action: failed" in bounce
    wait_for(p.spool_empty, what="empty spool")


def test_delay_notice_once(pair):
    p = pair(b_start=False, a_queue="delay_warning = 1;")
    p.send("slow")
    notice = wait_for(lambda: with_subject(p.a, ALICE, "Delayed Mail"), timeout=30,
                      what="delay notice")[0]
    assert b"Action: delayed" in notice
    time.sleep(4)
    assert len(with_subject(p.a, ALICE, "Delayed Mail")) == 1
    p.b.start()
    wait_for(lambda: with_subject(p.b, BOB, "slow"), what="late delivery")


def test_dsn_notify_never_and_success(pair):
    p = pair()
    with smtplib.SMTP("127.0.0.1", p.a.ports["smtp"], timeout=30) as s:
        s.ehlo()
        assert s.has_extn("dsn")
        s.sendmail(ALICE, [f"nobody@{B_DOMAIN}"], message("never"), rcpt_options=["NOTIFY=NEVER"])
        s.sendmail(ALICE, [BOB], message("success"), rcpt_options=["NOTIFY=SUCCESS"])
    # B took NOTIFY=SUCCESS (it offers DSN): the report is B's, from the
    # final delivery (this test's B cannot route it back to a.test, so it
    # stays in B's queue); A, which only relayed, sends none (RFC 3461)
    wait_for(lambda: "sender notice kind=success to=<alice@a.test>" in p.b.log_text(),
             what="B's success notice")
    wait_for(p.spool_empty, what="empty spool at A")
    assert not with_subject(p.a, ALICE, "Undelivered Mail Returned to Sender")
    assert "sender notice kind=success" not in p.a.log_text()


def test_success_notice_says_relayed_for_a_server_without_dsn(pair):
    """Handed to a server that does not offer DSN, NOTIFY=SUCCESS gets our
    report with Action: relayed, and Remote-MTA is the host's name."""
    with SmtpSink() as sink:
        p = pair(a_queue=f'transport = ["seven.test [127.0.0.1]:{sink.port}"];')
        with smtplib.SMTP("127.0.0.1", p.a.ports["smtp"], timeout=30) as s:
            s.sendmail(ALICE, ["x@seven.test"], message("relayed on", to="x@seven.test"),
                       rcpt_options=["NOTIFY=SUCCESS"])
        [notice] = wait_for(lambda: with_subject(p.a, ALICE, "Successful Mail Delivery Report"),
                            what="success notice")
        assert b"Action: relayed" in notice
        assert re.search(rb"Remote-MTA: dns; [^\[\]:\r\n]+\r\n", notice), notice


def test_repeated_remote_recipient_takes_both_notifys(pair):
    """A RCPT that repeats an earlier remote recipient (case aside) is one
    recipient, with the union of both NOTIFYs: NEVER and then SUCCESS
    asks for the success notice."""
    with SmtpSink() as sink:
        p = pair(a_queue=f'transport = ["seven.test [127.0.0.1]:{sink.port}"];')
        with smtplib.SMTP("127.0.0.1", p.a.ports["smtp"], timeout=30) as s:
            s.ehlo()
            assert s.mail(ALICE)[0] == 250
            assert s.rcpt("x@seven.test", ["NOTIFY=NEVER"])[0] == 250
            assert s.rcpt("X@seven.test", ["NOTIFY=SUCCESS"])[0] == 250
            assert s.data(message("named twice", to="x@seven.test"))[0] == 250
        wait_for(lambda: with_subject(p.a, ALICE, "Successful Mail Delivery Report"),
                 timeout=15, what="success notice")
        assert [c for c in sink.commands if c.upper().startswith("RCPT")] == [
            "RCPT TO:<x@seven.test>"]


def test_null_sender_bounce_goes_to_postmaster(pair):
    p = pair(a_queue=f"notify_postmaster = true; postmaster = \"{POSTMASTER}\";")
    p.send("double", to=f"nobody@{B_DOMAIN}", sender="")
    copy = wait_for(lambda: with_subject(p.a, POSTMASTER, "Undelivered Mail Returned to Sender"),
                    what="postmaster copy")
    assert len(copy) == 1
    assert not with_subject(p.a, ALICE, "Undelivered")


def test_failed_bounce_is_a_double_bounce_to_postmaster(pair):
    """A bounce that cannot be delivered either (its sender is refused at
    the remote end too) goes to the postmaster, once: nobody else would
    hear of it."""
    p = pair(a_queue=f"notify_postmaster = true; postmaster = \"{POSTMASTER}\";")
    p.send("twice refused", to=f"nobody@{B_DOMAIN}", sender=f"ghost@{B_DOMAIN}")
    copies = wait_for(lambda: len(with_subject(p.a, POSTMASTER, "Undelivered Mail")) >= 2 and
                      with_subject(p.a, POSTMASTER, "Undelivered Mail"),
                      what="the postmaster's copy and the double bounce")
    wait_for(p.spool_empty, what="empty spool")
    assert any(b"Final-Recipient: rfc822; ghost@b.test" in m for m in copies)
    assert len(with_subject(p.a, POSTMASTER, "Undelivered Mail")) == 2


def test_postmaster_copy_has_headers_only(pair):
    p = pair(a_queue=f"notify_postmaster = true; postmaster = \"{POSTMASTER}\";")
    p.send("pm copy", to=f"nobody@{B_DOMAIN}")
    wait_for(lambda: with_subject(p.a, ALICE, "Undelivered Mail Returned to Sender"),
             what="bounce")
    copy = wait_for(lambda: with_subject(p.a, POSTMASTER, "Undelivered Mail Returned to Sender"),
                    what="postmaster copy")[0]
    assert b"text/rfc822-headers" in copy
    assert b"Hello from A." not in copy


def test_archive_copy_of_incoming_and_outgoing(pair):
    p = pair(a_queue=f'archive = "{ARCHIVE}";')
    p.send("outgoing")
    p.send("incoming", to=ALICE, sender=BOB)
    wait_for(lambda: with_subject(p.a, ARCHIVE, "outgoing"), what="archive of outgoing")
    wait_for(lambda: with_subject(p.a, ARCHIVE, "incoming"), what="archive of incoming")
    wait_for(lambda: with_subject(p.b, BOB, "outgoing"), what="delivery")


def test_nxdomain_and_null_mx_bounce_at_once(pair):
    p = pair(records={"nullmx.test.": [("MX", 0, ".")]})
    p.send("nx", to="someone@nowhere.test")
    p.send("null", to="someone@nullmx.test")
    bounces = wait_for(lambda: (lambda b: b if len(b) == 2 else None)(
        with_subject(p.a, ALICE, "Undelivered Mail Returned to Sender")), what="two bounces")
    text = b"".join(bounces)
    assert b"Status: 5.1.2" in text
    assert b"Status: 5.1.10" in text


def test_relayhost_skips_dns(pair, node_factory):
    p = pair()
    # a third domain with no DNS at all, sent through a relayhost
    p.a.stop()
    conf = p.a.config.read_text().replace(
        "queue = {", f'queue = {{ relayhost = "[127.0.0.1]:{p.b.ports["smtp"]}";', 1)
    p.a.config.write_text(conf)
    p.a.start()
    p.b.ctl("domain", "add", "c.test")
    p.b.ctl("user", "add", "carol@c.test", "--random-password")
    p.send("via relayhost", to="carol@c.test")
    wait_for(lambda: with_subject(p.b, "carol@c.test", "via relayhost"), what="relayhost delivery")


def test_queue_control_through_the_daemon(pair):
    p = pair(b_start=False)
    p.send("held")
    p.a.wait_log("status=deferred", timeout=20)
    listing = p.a.ctl("queue", "list").stdout
    qid = next(line.split()[0] for line in listing.splitlines() if line[:1].isalnum()
               and "Request" not in line and line.split()[0].isalnum())
    p.a.ctl("queue", "hold", qid)
    assert "held" in p.a.ctl("queue", "show", qid).stdout.lower()
    p.b.start()
    time.sleep(3)
    assert not with_subject(p.b, BOB, "held")
    p.a.ctl("queue", "release", qid)
    p.a.ctl("queue", "flush")
    wait_for(lambda: with_subject(p.b, BOB, "held"), what="delivery after release")
    wait_for(p.spool_empty, what="spool empty")
    # a held message deleted by the operator: gone, never delivered, no bounce
    p.b.stop()
    deferred = p.a.log_text().count("status=deferred")
    p.send("deleted")
    # the first part's line is in the log already: wait for a new one
    wait_for(lambda: p.a.log_text().count("status=deferred") > deferred, what="deferral")
    listing = p.a.ctl("queue", "list").stdout
    qid = next(line.split()[0].rstrip("!*") for line in listing.splitlines()
               if line[:1].isalnum() and "Request" not in line)
    p.a.ctl("queue", "hold", qid)
    assert p.a.ctl("queue", "delete", qid).returncode == 0
    assert p.spool_empty()
    p.a.wait_log(f"id={qid} removed by the operator")
    p.b.start()
    time.sleep(3)
    assert not with_subject(p.b, BOB, "deleted")
    assert not with_subject(p.a, ALICE, "Undelivered")
    r = p.a.ctl("queue", "delete", "NOSUCHID", check=False)
    assert r.returncode != 0


def test_sendmail_maildrop_is_picked_up(pair, workdir):
    from conftest import MAILCTL
    sendmail = str(__import__("pathlib").Path(MAILCTL).parent / "sendmail")
    p = pair()
    r = subprocess.run([sendmail, "-C", str(p.a.config), "-f", ALICE, BOB],
                       input=b"Subject: from sendmail\n\nbody\n", capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: with_subject(p.b, BOB, "from sendmail"), what="sendmail delivery")
    p.a.wait_log("picked up from the maildrop")


def test_kill_9_during_load_loses_nothing(pair):
    """10 clients send 2,000 messages (half local, half remote) while A is
    SIGKILLed once; every message that got 250 arrives: local ones exactly
    once, remote ones at least once (a message in flight to B at the kill
    may arrive twice: SMTP's known duplicate window, RFC 1047)."""
    p = pair()
    acked, lock = [], threading.Lock()
    stop = time.monotonic() + 120
    per_client = 200

    def client(n):
        i = 0
        while i < per_client and time.monotonic() < stop:
            to = ALICE if i % 2 == 0 else BOB
            subject = f"load-{n}-{i}"
            try:
                with smtplib.SMTP("127.0.0.1", p.a.ports["smtp"], timeout=10) as s:
                    s.sendmail(ALICE, [to], message(subject, to=to))
                with lock:
                    acked.append((to, subject))
                i += 1
            except (OSError, smtplib.SMTPException):
                time.sleep(0.05)
                i += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(10)]
    for t in threads:
        t.start()
    wait_for(lambda: len(acked) >= 500, timeout=60, what="500 acknowledged messages")
    p.a.proc.kill()
    p.a.proc.wait()
    p.a.logf.close()
    time.sleep(0.5)
    p.a.start()
    for t in threads:
        t.join()
    assert len(acked) >= 1000, len(acked)

    def count(node, addr):
        out = {}
        for m in mailbox(node, addr):
            for line in m.split(b"\r\n"):
                if line.startswith(b"Subject: load-"):
                    out[line[9:].decode()] = out.get(line[9:].decode(), 0) + 1
        return out

    wait_for(p.spool_empty, timeout=120, what="the spool to drain")
    local, remote = count(p.a, ALICE), count(p.b, BOB)
    for to, subject in acked:
        got = (local if to == ALICE else remote).get(subject, 0)
        assert got >= 1, f"{subject} to {to} acknowledged but lost"
        if to == ALICE:
            assert got == 1, f"{subject} delivered {got} times"
    dups = sum(v - 1 for v in remote.values() if v > 1)
    assert dups <= 20, f"{dups} duplicates at B"


def test_8bit_message_is_downgraded_for_a_7bit_server(pair):
    with SmtpSink() as sink:
        p = pair(a_queue=f'transport = ["seven.test [127.0.0.1]:{sink.port}"];')
        body = "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
        msg = (f"From: {ALICE}\r\nTo: x@seven.test\r\nSubject: eight\r\nMIME-Version: 1.0\r\n{body}"
               "\r\nGr\u00fc\u00dfe aus A.\r\n").encode()
        with smtplib.SMTP("127.0.0.1", p.a.ports["smtp"], timeout=30) as s:
            s.sendmail(ALICE, ["x@seven.test"], msg, mail_options=["BODY=8BITMIME"])
        got = wait_for(lambda: sink.messages, what="delivery to the 7-bit sink")[0]
        assert all(b < 0x80 for b in got), got
        assert b"Content-Transfer-Encoding: quoted-printable" in got
        assert b"Gr=C3=BC=C3=9Fe aus A." in got
        p.a.wait_log("8BITMIME downgrade")


def test_slow_server_gets_a_body_longer_than_the_command_timeout(pair):
    """The command timeout bounds each wait, not the session: a body the
    server takes longer than that to read (but steadily) is delivered.
    (It timed out once the server had been silent that long after 354,
    while still reading.)"""
    with SmtpSink(slow_data=True) as sink:
        p = pair(a_queue=f'transport = ["slow.test [127.0.0.1]:{sink.port}"];')
        p.a.stop()
        p.a.config.write_text(p.a.config.read_text().replace(
            "command_timeout = 10;", "command_timeout = 2;", 1))
        p.a.start()
        body = ("y" * 76 + "\r\n") * 40000  # 3.1 MB: about 5 s for this server
        start = time.monotonic()
        with smtplib.SMTP("127.0.0.1", p.a.ports["smtp"], timeout=30) as s:
            s.sendmail(ALICE, ["x@slow.test"], message("slow link", to="x@slow.test", body=body))
        wait_for(lambda: sink.messages, timeout=60, what="the body through a slow server")
        assert time.monotonic() - start > 2  # it did outlast the command timeout
        assert len(sink.messages[0]) > 3_000_000
        wait_for(p.spool_empty, what="empty spool")
        assert "timed out" not in p.a.log_text()


def test_failed_starttls_is_retried_in_plaintext(pair):
    """Opportunistic TLS (RFC 3207 section 4.1 leaves the choice to the
    client): a handshake that fails is not a reason to keep the mail; the
    next session to the same host goes without STARTTLS."""
    with SmtpSink(broken_tls=True) as sink:
        p = pair(a_queue=f'transport = ["broken.test [127.0.0.1]:{sink.port}"];')
        with smtplib.SMTP("127.0.0.1", p.a.ports["smtp"], timeout=30) as s:
            s.sendmail(ALICE, ["x@broken.test"], f"From: {ALICE}\r\nSubject: tls retry\r\n\r\nhi\r\n")
        got = wait_for(lambda: sink.messages, what="delivery after the failed handshake")[0]
        assert b"Subject: tls retry" in got
        p.a.wait_log("trying again without TLS")
        p.a.wait_log("tls=no dsn=2.0.0 status=sent")
        starttls = [c for c in sink.commands if c.upper() == "STARTTLS"]
        assert len(starttls) == 1, sink.commands
        assert len(sink.ehlo) == 2, sink.ehlo


def test_shutdown_mid_session_keeps_the_message_queued(pair):
    """SIGTERM while the remote server holds the message without an
    answer: maild stops within its drain time, the message stays in the
    spool and is sent after the restart, once."""
    with SmtpSink(stall_data=True) as sink:
        p = pair(a_queue=f'transport = ["hang.test [127.0.0.1]:{sink.port}"];')
        with smtplib.SMTP("127.0.0.1", p.a.ports["smtp"], timeout=30) as s:
            s.sendmail(ALICE, ["x@hang.test"], f"From: {ALICE}\r\nSubject: cut\r\n\r\nhi\r\n")
        assert sink.stalled.wait(20), "the message never reached the sink"
        assert p.a.stop() == 0
        assert not sink.messages
        assert "Mail queue is empty" not in p.a.ctl("queue", "list").stdout
        p.a.start()
        got = wait_for(lambda: sink.messages, what="delivery after the restart")
        assert len(got) == 1 and b"Subject: cut" in got[0]
        p.a.wait_log("status=sent")
        wait_for(p.spool_empty, what="empty spool")


def test_next_mx_after_a_connection_failure(pair):
    """The preferred exchanger refuses connections (127.0.0.2: nothing
    listens there); the message goes to the next one."""
    p = pair(records={f"{B_DOMAIN}.": [("MX", 10, f"down.{B_DOMAIN}."),
                                        ("MX", 20, f"mx.{B_DOMAIN}.")],
                      f"down.{B_DOMAIN}.": [("A", "127.0.0.2")]})
    p.send("second mx")
    wait_for(lambda: with_subject(p.b, BOB, "second mx"), what="delivery by the second MX")
    p.a.wait_log(f"relay=mx.{B_DOMAIN}[127.0.0.1]")
    assert p.dns.count(f"down.{B_DOMAIN}.", "A") >= 1
    # the host moved past is logged, Postfix's "connect to ...: Connection refused"
    down = f"down.{B_DOMAIN}[127.0.0.2]:{p.b.ports['smtp']}"
    needle = f"relay={down} skipped: 421 4.4.1 connect to {down}: Connection refused"
    p.a.wait_log(needle)
    [line] = [l for l in p.a.log_text().splitlines() if needle in l]
    assert re.search(r"\[queue\] id=\w+ relay=", line), line


def test_a_host_that_refuses_to_talk_is_logged_when_skipped(pair):
    """The preferred exchanger greets 554: the next one gets the message,
    and the one moved past has its line with the reason."""
    p = pair(records={f"{B_DOMAIN}.": [("MX", 10, f"refuse.{B_DOMAIN}."),
                                        ("MX", 20, f"mx.{B_DOMAIN}.")],
                      f"refuse.{B_DOMAIN}.": [("A", "127.0.0.3")]})
    with SmtpSink("refuse", address="127.0.0.3", port=p.b.ports["smtp"]) as sink:
        p.send("past a refusal")
        wait_for(lambda: with_subject(p.b, BOB, "past a refusal"), what="delivery by the second MX")
        assert sink.sessions == 1
    refuse = f"refuse.{B_DOMAIN}[127.0.0.3]:{p.b.ports['smtp']}"
    p.a.wait_log(f"relay={refuse} skipped: 454")
    line = [l for l in p.a.log_text().splitlines() if f"relay={refuse} skipped" in l]
    assert len(line) == 1 and "host refused to talk to me: 554" in line[0], line


def test_opportunistic_starttls_to_the_mx(pair):
    p = pair(b_start=False)
    p.b.ctl("cert", "generate", "mx", "--names", f"mx.{B_DOMAIN}")
    p.b.ctl("cert", "assign", "mx", "--default")
    p.b.start()
    p.send("over tls")
    got = wait_for(lambda: with_subject(p.b, BOB, "over tls"), what="delivery over TLS")[0]
    p.a.wait_log("tls=yes dsn=2.0.0 status=sent")
    # B's Received: field says the hop was encrypted
    assert b"with ESMTPS" in got, got[:600]


def test_a_dead_nodes_spool_is_adopted(pair, node_factory, workdir):
    """Node A queues mail while the MX is down and is killed (kill -9);
    node C, another node id on the same store, takes A's spool over with
    `mailctl queue adopt 1` and delivers it. (That the spool's lock
    refuses the takeover while its node runs is shown in test_queue.c.)"""
    p = pair(b_start=False)
    p.send("orphan")
    p.a.wait_log("status=deferred", timeout=20)
    c = node_factory(node_id=3, name="c", store=workdir / "store-a", extra=(
        f'smtp = {{ resolver = "127.0.0.1:{p.dns.port}"; }};\n'
        f"queue = {{ port = {p.b.ports['smtp']}; min_backoff = 1; max_backoff = 2; }};\n"))
    # one directory writer per store: C waits for A's directory lock, so
    # the refusal is shown on the storage side in test_queue.c; here A dies
    p.a.proc.kill()
    p.a.proc.wait()
    p.a.logf.close()
    c.start()
    p.b.start()
    r = c.ctl("queue", "adopt", "1")
    assert "1 message moved from spool 1" in r.stdout, r.stdout + r.stderr
    wait_for(lambda: with_subject(p.b, BOB, "orphan"), what="delivery by the adopting node")
    c.wait_log("adopted spool 1: moved=1 failed=0 into spool 3")
    assert c.ctl("queue", "adopt", "3", check=False).returncode != 0


def test_mail_loop_stops_at_the_hop_limit(pair):
    """loop.test is routed from A to B and from B back to A, a loop that no
    node can see in its own routes: each pass adds a Received: field, and
    past 50 the message is bounced (5.4.6) instead of looping."""
    p = pair()
    a_port, b_port = p.a.ports["smtp"], p.b.ports["smtp"]
    for node, conf in ((p.a, f'transport = ["loop.test [127.0.0.1]:{b_port}"];'),
                       (p.b, f'transport = ["loop.test [127.0.0.1]:{a_port}", '
                             f'"{A_DOMAIN} [127.0.0.1]:{a_port}"];')):
        node.stop()
        node.config.write_text(node.config.read_text().replace(
            "queue = {", f"queue = {{ {conf}", 1))
        node.start()
    p.send("loops", to="someone@loop.test")
    bounce = wait_for(lambda: with_subject(p.a, ALICE, "Undelivered Mail Returned to Sender"),
                      timeout=60, what="the loop's bounce")[0]
    assert b"Status: 5.4.6" in bounce
    wait_for(lambda: re.search(r"to=<someone@loop\.test> relay=none delay=[\d.]+ attempt_time=[\d.]+ "
                               r"dsn=5\.4\.6 status=bounced \(mail forwarding loop", p.a.log_text()),
             what="the loop's log line")


@pytest.fixture
def self_mx(node_factory):
    """One node whose queue sends to its own SMTP port (queue.port), with a
    DNS server whose records the test gives: an MX at 127.0.0.1 is this
    node."""
    servers = []

    def make(records, smtp=""):
        dns = DnsServer(records)
        dns.start()
        servers.append(dns)
        n = node_factory()
        n.write_config(f'smtp = {{ resolver = "127.0.0.1:{dns.port}"; {smtp} }};\n'
                       f"queue = {{ port = {n.ports['smtp']}; min_backoff = 300; "
                       "connect_timeout = 5; command_timeout = 10; };\n")
        setup_domain(n, A_DOMAIN, "alice")
        n.start()
        return n

    yield make
    for dns in servers:
        dns.stop()


def send_to(node, to, subject):
    with smtplib.SMTP("127.0.0.1", node.ports["smtp"], timeout=30) as s:
        s.sendmail(ALICE, [to], message(subject, to=to))


def test_backup_mx_waits_for_the_primary(self_mx):
    """RFC 5321 5.1: this node is far.test's backup MX (preference 20) and
    the primary (10) is down: the mail waits for the primary instead of
    going to this node again (it looped until the hop limit and bounced)."""
    n = self_mx({"far.test.": [("MX", 10, "mx1.far.test."), ("MX", 20, "mx2.far.test."),
                               ("MX", 30, "mx3.far.test.")],
                 "mx1.far.test.": [("A", "127.0.0.2")],
                 "mx2.far.test.": [("A", "127.0.0.1")],
                 "mx3.far.test.": [("A", "127.0.0.3")]},
                smtp='relay_domains = ["far.test"];')
    send_to(n, "bob@far.test", "backup mx")
    port = n.ports["smtp"]
    n.wait_log(f"to=<bob@far.test> relay=mx1.far.test[127.0.0.2]:{port}", timeout=30)
    n.wait_log("deferred: pending=1", timeout=10)
    time.sleep(1)
    log = n.log_text()
    assert "status=deferred" in log
    assert "mx2.far.test" not in log and "mx3.far.test" not in log, log
    assert "mail forwarding loop" not in log
    assert "bob@far.test" in n.ctl("queue", "list").stdout
    assert not with_subject(n, ALICE, "Undelivered")


def test_mail_for_which_we_are_the_best_mx_bounces_at_once(self_mx):
    """This node is far.test's best MX but far.test is not ours: Postfix's
    "mail for far.test loops back to myself" (5.4.6), at the first attempt
    instead of after 50 passes through this node."""
    n = self_mx({"far.test.": [("MX", 10, "mx.far.test."), ("MX", 20, "mx2.far.test.")],
                 "mx.far.test.": [("A", "127.0.0.1")],
                 "mx2.far.test.": [("A", "127.0.0.2")]})
    send_to(n, "bob@far.test", "best mx")
    bounce = wait_for(lambda: with_subject(n, ALICE, "Undelivered"), timeout=30,
                      what="the bounce")[0]
    assert b"Status: 5.4.6" in bounce
    assert b"mail for far.test loops back to myself" in bounce
    log = n.log_text()
    assert "mail forwarding loop" not in log
    assert "relay=mx" not in log, log
