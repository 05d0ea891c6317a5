"""How one delivery attempt records and schedules its verdicts, against
scripted SMTP servers on loopback: verdicts written as they come (a kill
mid-attempt delivers nothing twice), the retry schedule when a
destination's connection slots are taken, the bound on connections in all, a server that refuses to talk
(5xx greeting), the status of a delay report for a recipient not tried
yet, transactions of at most 50 recipients and 452 answers, a stop
mid-session, the per-recipient log lines (DNS failures, delay= since
arrival), and `mailctl queue release` through the daemon."""
import pathlib
import re
import signal
import smtplib
import subprocess
import time

from dns_server import DnsServer
from smtp_sink import SmtpSink
from test_smtp_queue import message, setup_domain, wait_for, with_subject

ALICE = "alice@a.test"


def sender_node(node_factory, queue, extra=""):
    n = node_factory(extra=f"{extra}queue = {{ {queue} }};\n")
    setup_domain(n, "a.test", "alice", "postmaster")
    return n.start()


def send(node, to, subject):
    with smtplib.SMTP("127.0.0.1", node.ports["smtp"], timeout=30) as s:
        s.sendmail(ALICE, to, message(subject, to=", ".join(to)))


def hold_the_only_slot(node, stalling_sink):
    """A message that takes the one connection slot of the stalling
    sink's destination (y.test) and keeps it."""
    send(node, ["carol@y.test"], "holds y")
    wait_for(lambda: stalling_sink.sessions == 1, what="y's slot taken")


def kill_in_session_and_restart(node, stalling_sink, settle):
    """kill -9 while the node's remote session to the sink is open, then
    start it again and wait for its retry."""
    wait_for(lambda: stalling_sink.sessions > 0, what="the remote session")
    time.sleep(settle)
    node.proc.send_signal(signal.SIGKILL)
    node.proc.wait()
    node.start()
    wait_for(lambda: stalling_sink.sessions > 1, what="the retry after the restart")


def queue_id(node, line_pattern):
    m = wait_for(lambda: re.search(line_pattern, node.log_text()), what=line_pattern)
    return m.group(1)


def test_kill_during_a_remote_session_keeps_the_local_copy_single(node_factory):
    """The local copy is recorded before the remote session that follows,
    which here never ends: a kill -9 then a restart must not deliver it
    again."""
    with SmtpSink("stall") as sink:
        a = sender_node(node_factory, f'relayhost = "[127.0.0.1]:{sink.port}"; min_backoff = 1; '
                        "max_backoff = 2; connect_timeout = 5; command_timeout = 60;")
        send(a, [ALICE, "bob@b.test"], "local and stalled")
        a.wait_log("relay=local")
        kill_in_session_and_restart(a, sink, 0.5)
        assert len(with_subject(a, ALICE, "local and stalled")) == 1
        assert a.log_text().count(f"to=<{ALICE}> relay=local") == 1


def test_kill_during_a_remote_session_after_alias_expansion_keeps_one_copy(node_factory):
    """fwd@a.test expands to alice (local) and ext@b.test (remote): the
    number of pending recipients stays 1, yet the expansion and alice's
    copy must be recorded before the remote session, or a kill -9 during
    it expands fwd again at the restart and alice gets a second copy."""
    from conftest import MAILCTL
    sendmail = str(pathlib.Path(MAILCTL).parent / "sendmail")
    with SmtpSink("stall") as sink:
        a = sender_node(node_factory, f'relayhost = "[127.0.0.1]:{sink.port}"; min_backoff = 1; '
                        "max_backoff = 2; connect_timeout = 5; command_timeout = 60;")
        a.ctl("alias", "add", "fwd@a.test", ALICE, "ext@b.test")
        r = subprocess.run([sendmail, "-C", str(a.config), "-f", ALICE, "fwd@a.test"],
                           input=b"Subject: keep and forward\n\nbody\n", capture_output=True,
                           timeout=30)
        assert r.returncode == 0, r.stderr
        a.wait_log(f"to=<{ALICE}> relay=local", timeout=20)
        kill_in_session_and_restart(a, sink, 1)
        time.sleep(1)
        assert len(with_subject(a, ALICE, "keep and forward")) == 1
        assert a.log_text().count(f"to=<{ALICE}> relay=local") == 1


def test_kill_while_another_destination_stalls_delivers_once(node_factory):
    """x.test took the message, y.test hangs: x's verdict is recorded at
    once, so after a kill -9 only y is tried again."""
    with SmtpSink("ok") as sx, SmtpSink("stall") as sy:
        a = sender_node(node_factory, f'transport = ["x.test [127.0.0.1]:{sx.port}", '
                        f'"y.test [127.0.0.1]:{sy.port}"]; min_backoff = 1; max_backoff = 2; '
                        "connect_timeout = 5; command_timeout = 60;")
        send(a, ["u@x.test", "w@y.test"], "two destinations")
        qid = queue_id(a, r"id=(\w+) to=<u@x.test>")
        # the checkpoint is written on a job thread: wait for it on disk
        wait_for(lambda: "<u@x.test> delivered" in a.ctl("queue", "show", qid).stdout,
                 timeout=10, what="x's verdict in the envelope")
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait()
        sy.mode = "ok"
        a.start()
        wait_for(lambda: sy.messages, what="y's copy after the restart")
        wait_for(lambda: "Mail queue is empty" in a.ctl("queue", "list").stdout,
                 what="an empty queue")
        assert len(sx.messages) == 1


def test_a_stop_mid_session_leaves_the_message_due_at_the_next_start(node_factory):
    """A session cut by stopping maild is no try: the message does not
    count an attempt and is tried again as soon as maild starts, not a
    (doubled) backoff later."""
    with SmtpSink(stall_data=True) as sink:
        a = sender_node(node_factory, f'relayhost = "[127.0.0.1]:{sink.port}"; min_backoff = 300; '
                        "max_backoff = 4000; connect_timeout = 5; command_timeout = 30;")
        send(a, ["x@b.test"], "cut")
        assert sink.stalled.wait(20)
        assert a.stop() == 0
        listing = a.ctl("queue", "list").stdout
        qid = re.search(r"^(\w+)", listing, re.M).group(1)
        assert "attempts: 0" in a.ctl("queue", "show", qid).stdout
        a.start()
        wait_for(lambda: sink.messages, timeout=10, what="the delivery after the restart")
        assert sink.sessions == 2


def transactions(sink):
    """The RCPT addresses of each transaction the sink saw, in order."""
    out = []
    for line in sink.commands:
        if line.upper().startswith("MAIL"):
            out.append([])
        elif line.upper().startswith("RCPT") and out:
            out[-1].append(re.search(r"<([^>]*)>", line).group(1))
    return out


def test_a_destination_gets_at_most_50_recipients_per_transaction(node_factory):
    with SmtpSink("ok") as sink:
        a = sender_node(node_factory, f'relayhost = "[127.0.0.1]:{sink.port}"; min_backoff = 300; '
                        "connect_timeout = 5; command_timeout = 10;")
        rcpts = [f"r{i}@b.test" for i in range(120)]
        send(a, rcpts, "many")
        wait_for(lambda: "Mail queue is empty" in a.ctl("queue", "list").stdout, what="delivery")
        assert [len(t) for t in transactions(sink)] == [50, 50, 20]
        assert sorted(sum(transactions(sink), [])) == sorted(rcpts)
        assert len(sink.messages) == 3


def test_recipients_a_server_refused_with_452_go_in_the_next_transaction(node_factory):
    """452 4.5.3 (too many recipients) for some RCPTs of a transaction the
    server otherwise took: those recipients are sent again at once in a
    new transaction, not a full backoff later."""
    with SmtpSink("ok", rcpt_limit=2) as sink:
        a = sender_node(node_factory, f'relayhost = "[127.0.0.1]:{sink.port}"; min_backoff = 300; '
                        "max_backoff = 4000; connect_timeout = 5; command_timeout = 10;")
        send(a, [f"r{i}@b.test" for i in range(1, 6)], "five")
        wait_for(lambda: "Mail queue is empty" in a.ctl("queue", "list").stdout, timeout=15,
                 what="every recipient delivered")
        assert len(sink.messages) == 3
        # the put-off ones go again, as many per transaction as the server took
        assert transactions(sink) == [[f"r{i}@b.test" for i in range(1, 6)],
                                      ["r3@b.test", "r4@b.test"], ["r5@b.test"]]
        assert sink.sessions == 3
        assert "dsn=4.5.3 status=deferred" in a.log_text()


def test_a_full_mailbox_452_waits_for_the_next_attempt(node_factory):
    """452 4.2.2 (a full mailbox) is not "too many recipients": that
    recipient waits for the normal retry, once, and the transactions do
    not shrink; a recipient sent again at once for 4.5.3 counts one try."""
    full = {"r2@b.test": "452 4.2.2 mailbox full", "r3@b.test": "452 4.5.3 too many recipients"}
    with SmtpSink("ok", rcpt_replies=full) as sink:
        a = sender_node(node_factory, f'relayhost = "[127.0.0.1]:{sink.port}"; min_backoff = 300; '
                        "max_backoff = 4000; connect_timeout = 5; command_timeout = 10;")
        send(a, ["r1@b.test", "r2@b.test", "r3@b.test", "r4@b.test"], "one full")
        qid = queue_id(a, r"id=(\w+) deferred: pending=2")
        time.sleep(1)
        # r3 went again once at once (and got 4.5.3 again), r2 did not
        assert transactions(sink) == [["r1@b.test", "r2@b.test", "r3@b.test", "r4@b.test"],
                                      ["r3@b.test"]]
        show = a.ctl("queue", "show", qid).stdout
        assert "recipient: <r2@b.test> pending attempts=1 status=4.2.2" in show, show
        assert "recipient: <r3@b.test> pending attempts=1 status=4.5.3" in show, show


def test_a_server_that_452s_every_recipient_is_not_asked_again_at_once(node_factory):
    with SmtpSink("ok", rcpt_limit=0) as sink:
        a = sender_node(node_factory, f'relayhost = "[127.0.0.1]:{sink.port}"; min_backoff = 300; '
                        "max_backoff = 4000; connect_timeout = 5; command_timeout = 10;")
        send(a, ["r1@b.test", "r2@b.test"], "none taken")
        a.wait_log("deferred: pending=2", timeout=20)
        time.sleep(2)
        assert sink.sessions == 1 and not sink.messages


def test_dns_failures_log_a_line_per_recipient(node_factory):
    dns = DnsServer({"ok.test.": [("A", "127.0.0.1")]})
    dns.servfail.add("broken.test.")
    dns.start()
    try:
        a = sender_node(node_factory, "min_backoff = 300; connect_timeout = 5; command_timeout = 10;",
                        extra=f'smtp = {{ resolver = "127.0.0.1:{dns.port}"; }};\n')
        send(a, ["x@nowhere.test", "w@nowhere.test"], "nx")
        send(a, ["y@broken.test"], "sf")
        wait_for(lambda: with_subject(a, ALICE, "Undelivered"), what="bounce")
        a.wait_log("deferred: pending=1", timeout=20)
        log = a.log_text()
        for rcpt, verdict in (("x@nowhere.test", r"dsn=5\.1\.2 status=bounced \(.+\)"),
                              ("w@nowhere.test", r"dsn=5\.1\.2 status=bounced \(.+\)"),
                              ("y@broken.test", r"dsn=4\.4\.3 status=deferred \(.+\)")):
            assert re.search(rf"id=\w+ to=<{rcpt}> relay=none delay=[\d.]+ attempt_time=[\d.]+ "
                             + verdict, log), rcpt
    finally:
        dns.stop()


def test_delay_counts_from_the_arrival_not_from_the_attempt(node_factory):
    """Postfix's delay=: the time since the message arrived; attempt_time=
    is this attempt's own."""
    with SmtpSink("tempfail") as sink:
        a = sender_node(node_factory, f'relayhost = "[127.0.0.1]:{sink.port}"; min_backoff = 2; '
                        "max_backoff = 2; connect_timeout = 5; command_timeout = 10;")
        send(a, ["bob@b.test"], "twice")
        wait_for(lambda: a.log_text().count("to=<bob@b.test> relay=") >= 2, timeout=20,
                 what="a second attempt")
        lines = [l for l in a.log_text().splitlines() if "to=<bob@b.test> relay=" in l]
        delay, took = re.search(r"delay=([\d.]+) attempt_time=([\d.]+)", lines[1]).groups()
        assert float(delay) >= 1.5 > float(took)


def test_busy_destination_does_not_make_a_deferral_hot(node_factory):
    """y.test's only connection slot is taken; a message to x.test (451)
    and y.test must not ask x again every second while it waits for y."""
    with SmtpSink("tempfail") as sx, SmtpSink("stall") as sy:
        a = sender_node(node_factory, f'transport = ["x.test [127.0.0.1]:{sx.port}", '
                        f'"y.test [127.0.0.1]:{sy.port}"]; destination_concurrency = 1; '
                        "min_backoff = 300; max_backoff = 4000; connect_timeout = 5; "
                        "command_timeout = 120;")
        hold_the_only_slot(a, sy)
        send(a, ["dave@x.test", "erin@y.test"], "x and y")
        wait_for(lambda: sx.sessions == 1, what="the first try of x")
        time.sleep(6)
        assert sx.sessions == 1
        assert a.log_text().count("to=<dave@x.test> relay=") == 1


def test_connections_in_all_are_bounded(node_factory):
    """queue.max_connections bounds the sessions over all destinations
    (each has its own destination_concurrency): with 1, a message to
    x.test and y.test, whose servers both stall, opens one session; the
    other destination waits for the slot."""
    with SmtpSink("stall") as sx, SmtpSink("stall") as sy:
        a = sender_node(node_factory, f'transport = ["x.test [127.0.0.1]:{sx.port}", '
                        f'"y.test [127.0.0.1]:{sy.port}"]; max_connections = 1; '
                        "min_backoff = 300; connect_timeout = 5; command_timeout = 120;")
        send(a, ["dave@x.test", "erin@y.test"], "x and y")
        wait_for(lambda: sx.sessions + sy.sessions == 1, what="the first session")
        time.sleep(3)
        assert sx.sessions + sy.sessions == 1


def test_delay_report_for_a_recipient_never_tried_is_transient(node_factory):
    with SmtpSink("stall") as sy:
        a = sender_node(node_factory, f'transport = ["y.test [127.0.0.1]:{sy.port}"]; '
                        "destination_concurrency = 1; delay_warning = 2; min_backoff = 300; "
                        "connect_timeout = 5; command_timeout = 120;")
        hold_the_only_slot(a, sy)
        send(a, ["erin@y.test"], "waits for y")
        notice = wait_for(lambda: with_subject(a, ALICE, "Delayed Mail"), timeout=20,
                          what="the delay notice")[0].decode()
        assert "Final-Recipient: rfc822; erin@y.test" in notice
        assert "Action: delayed" in notice and "Status: 4.0.0" in notice
        assert "Status: 5." not in notice


def test_a_server_that_refuses_to_talk_is_skipped(node_factory):
    """Postfix's smtp_skip_5xx_greeting: a 554 greeting from the first MX
    sends the mail to the next one; from the only one, it waits (4xx)
    instead of bouncing."""
    with SmtpSink("refuse") as mx1, SmtpSink("ok", address="127.0.0.2", port=mx1.port) as mx2:
        dns = DnsServer({"b.test.": [("MX", 10, "mx1.b.test."), ("MX", 20, "mx2.b.test.")],
                         "c.test.": [("MX", 10, "mx1.b.test.")],
                         "mx1.b.test.": [("A", "127.0.0.1")], "mx2.b.test.": [("A", "127.0.0.2")]})
        dns.start()
        try:
            a = sender_node(node_factory, f"port = {mx1.port}; min_backoff = 300; "
                            "connect_timeout = 5; command_timeout = 10;",
                            extra=f'smtp = {{ resolver = "127.0.0.1:{dns.port}"; }};\n')
            send(a, ["bob@b.test"], "to b")
            wait_for(lambda: mx2.messages, what="delivery by the second MX")
            send(a, ["carl@c.test"], "to c")
            a.wait_log("to=<carl@c.test> relay=mx1.b.test[127.0.0.1]")
            line = next(l for l in a.log_text().splitlines() if "to=<carl@c.test> relay=" in l)
            assert "dsn=4.3.2 status=deferred (454 host refused to talk to me: 554 go away)" in line
            assert not with_subject(a, ALICE, "Undelivered")
        finally:
            dns.stop()


def test_release_through_the_daemon_makes_the_message_due(node_factory):
    with SmtpSink("tempfail") as sink:
        a = sender_node(node_factory, f'relayhost = "[127.0.0.1]:{sink.port}"; '
                        "min_backoff = 300; max_backoff = 4000; connect_timeout = 5; "
                        "command_timeout = 30;")
        send(a, ["bob@b.test"], "held and released")
        qid = queue_id(a, r"id=(\w+) deferred: pending=1")
        a.ctl("queue", "hold", qid)
        a.ctl("queue", "release", qid)
        wait_for(lambda: sink.sessions >= 2, timeout=10, what="a new attempt after release")
        assert "hold: no" in a.ctl("queue", "show", qid).stdout
