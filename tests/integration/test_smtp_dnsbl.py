"""DNSBL checks of maild's smtp service against tests/integration/dns_server.py:
a listed client gets 554 with the zone's name instead of the greeting; a
client not listed is greeted (and STARTTLS works after the wait); the
exception list skips the lookups; a list that does not answer delays the
greeting by dnsbl_timeout and counts as not listed, as does SERVFAIL;
verdicts are cached (a second connection asks nothing); submission is
never checked. The test client is 127.0.0.1, so the query name is
1.0.0.127.<zone>."""
import signal
import smtplib
import socket
import ssl
import time

import pytest

from dns_server import DnsServer

LISTED = "listed.example"
CLEAN = "clean.example"
SLOW = "slow.example"
BROKEN = "broken.example"
QUERY = "1.0.0.127.{}."
BLOCKED = f"554 5.7.1 Service unavailable; client [127.0.0.1] blocked using {LISTED}\r\n"


@pytest.fixture
def dns():
    with DnsServer({QUERY.format(LISTED): [("A", "127.0.0.2", 3600),
                                           ("TXT", "https://listed.example/why")]}) as d:
        d.drop.add(QUERY.format(SLOW))
        d.servfail.add(QUERY.format(BROKEN))
        yield d


def make_mx(node_factory, dns, settings):
    n = node_factory(extra=f'hostname = "mx.example.test";\n'
                           f'smtp = {{ resolver = "{dns.resolver}"; {settings} }};\n')
    return n.start()


def greeting(node, service="smtp", timeout=20):
    """The first reply line of a new connection, and how long it took."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", node.ports[service]), timeout=timeout) as sock:
        data = b""
        while not data.endswith(b"\r\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        elapsed = time.monotonic() - started
        closed = False
        if data.startswith(b"554"):
            sock.settimeout(5)
            closed = sock.recv(100) == b""
    return data.decode(), elapsed, closed


def test_listed_client_refused_and_cached(node_factory, dns):
    mx = make_mx(node_factory, dns, f'dnsbl = ["{CLEAN}", "{LISTED}"];')
    line, _, closed = greeting(mx)
    assert line == BLOCKED and closed
    assert dns.count(QUERY.format(LISTED), "A") == 1
    assert dns.count(QUERY.format(CLEAN), "A") == 1
    mx.wait_log(f"554 5.7.1 client [127.0.0.1] blocked using {LISTED}")
    assert "[smtp] reject conn=" in mx.log_text()
    # the verdict is cached for the record's TTL: no second query
    line, _, closed = greeting(mx)
    assert line == BLOCKED and closed
    assert dns.count(QUERY.format(LISTED)) == 1
    mx.wait_log(f"blocked using {LISTED} (cached)")
    # submission is for authenticated users: never checked
    line, _, _ = greeting(mx, "submission")
    assert line.startswith("220 mx.example.test ESMTP")


def test_client_not_listed_is_greeted_and_cached(node_factory, dns):
    n = node_factory(extra=f'hostname = "mx.example.test";\n'
                           f'smtp = {{ resolver = "{dns.resolver}"; dnsbl = ["{CLEAN}"]; }};\n')
    n.ctl("cert", "generate", "main", "--names", "localhost")
    n.ctl("cert", "assign", "main", "--default")
    mx = n.start()
    line, _, _ = greeting(mx)
    assert line.startswith("220 mx.example.test ESMTP")
    assert dns.count(QUERY.format(CLEAN), "A") == 1
    # STARTTLS after the pre-greeting wait, and a second connection
    # answered from the cache (the negative TTL)
    with smtplib.SMTP("127.0.0.1", mx.ports["smtp"], timeout=20) as s:
        s.ehlo("client.example.org")
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        assert s.starttls(context=ctx)[0] == 220
        assert s.ehlo("client.example.org")[0] == 250
        assert s.noop()[0] == 250
    assert dns.count(QUERY.format(CLEAN)) == 1


def test_exceptions_are_not_looked_up(node_factory, dns):
    mx = make_mx(node_factory, dns,
                 f'dnsbl = ["{LISTED}"]; dnsbl_exceptions = ["10.0.0.0/8", "127.0.0.0/30"];')
    line, _, _ = greeting(mx)
    assert line.startswith("220 ")
    assert dns.queries == []


def test_unanswered_lookup_delays_greeting_by_the_timeout(node_factory, dns):
    mx = make_mx(node_factory, dns, f'dnsbl = ["{SLOW}"]; dnsbl_timeout = 2;')
    line, elapsed, _ = greeting(mx)
    assert line.startswith("220 ")
    assert 1.8 < elapsed < 6, elapsed
    assert dns.count(QUERY.format(SLOW)) >= 1
    mx.wait_log("dnsbl lookups of 127.0.0.1 timed out after 2 s (0 of 1 zones answered): "
                "taken as not listed")
    # a timeout is not cached: the next client waits and asks again
    before = dns.count(QUERY.format(SLOW))
    line, elapsed, _ = greeting(mx)
    assert line.startswith("220 ") and elapsed > 1.8
    assert dns.count(QUERY.format(SLOW)) > before


def test_servfail_counts_as_not_listed(node_factory, dns):
    mx = make_mx(node_factory, dns, f'dnsbl = ["{BROKEN}", "{CLEAN}"];')
    line, elapsed, _ = greeting(mx)
    assert line.startswith("220 ") and elapsed < 2
    mx.wait_log(f"dnsbl lookup 1.0.0.127.{BROKEN} failed")
    # not cached either
    greeting(mx)
    assert dns.count(QUERY.format(BROKEN)) >= 2


def test_pipelined_input_before_greeting_waits_for_the_verdict(node_factory, dns):
    mx = make_mx(node_factory, dns, f'dnsbl = ["{SLOW}"]; dnsbl_timeout = 1;')
    with socket.create_connection(("127.0.0.1", mx.ports["smtp"]), timeout=20) as sock:
        sock.sendall(b"EHLO early.example.org\r\nQUIT\r\n")
        data = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    lines = data.decode().split("\r\n")
    assert lines[0].startswith("220 ")
    assert lines[-2].startswith("221 ")


def test_drain_while_waiting_for_the_verdict(node_factory, dns):
    mx = make_mx(node_factory, dns, f'dnsbl = ["{SLOW}"]; dnsbl_timeout = 30;')
    with socket.create_connection(("127.0.0.1", mx.ports["smtp"]), timeout=20) as sock:
        mx.wait_log("connect id=1 service=smtp")
        deadline = time.monotonic() + 10
        while dns.count(QUERY.format(SLOW)) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert mx.stop() == 0
        data = sock.recv(4096)
    # no greeting was sent: the goodbye is the first line
    assert data == b"421 4.3.2 Service shutting down\r\n"
    text = mx.log_text()
    assert "Sanitizer" not in text and "runtime error" not in text


def test_reload_changes_zones_for_new_connections(node_factory, dns):
    mx = make_mx(node_factory, dns, f'dnsbl = ["{CLEAN}"];')
    assert greeting(mx)[0].startswith("220 ")
    mx.config.write_text(mx.config.read_text().replace(f'dnsbl = ["{CLEAN}"];',
                                                       f'dnsbl = ["{LISTED}"];'))
    mx.signal(signal.SIGHUP)
    mx.wait_log("[config] reloaded")
    assert greeting(mx)[0] == BLOCKED
