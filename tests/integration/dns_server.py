"""A tiny authoritative DNS server for tests, in pure Python.

It answers over UDP and TCP on 127.0.0.1 (one free port for both), from a
thread inside the test process, with the records the test gives it:

    from dns_server import DnsServer

    with DnsServer({
        "mx.example.": [("MX", 10, "mail.example.")],
        "mail.example.": [("A", "127.0.0.1"), ("AAAA", "::1", 60)],
        "2.0.0.127.zen.example.": [("A", "127.0.0.2", 600), ("TXT", "listed")],
    }) as dns:
        dns.port            # the port, UDP and TCP
        dns.resolver        # "127.0.0.1:PORT", for maild's smtp.resolver
        dns.count("2.0.0.127.zen.example.")   # queries seen for a name
        dns.set("new.example.", [("A", "192.0.2.1")])
        dns.servfail.add("broken.example.")   # answer SERVFAIL
        dns.drop.add("slow.example.")         # never answer (a timeout)

Records: a name (case-insensitive, trailing dot optional) maps to a list
of tuples (TYPE, data..., [ttl]): ("A", "192.0.2.1"), ("AAAA", "2001:db8::1"),
("MX", preference, "exchange."), ("TXT", "text"), ("NS", "host."),
("PTR", "host."); the TTL is the default_ttl (300) unless given last.
A name with no records of the asked type answers NOERROR with no data
(NODATA); an unknown name answers NXDOMAIN; both carry an SOA whose
minimum is negative_ttl, as RFC 2308 asks. No CNAMEs, no recursion, no
compression in questions (no real resolver sends it). Every query is
recorded in `queries` as (name lowercased without the dot, type name,
"udp" or "tcp"). A name in `servfail` gets SERVFAIL, one in `drop` no
answer at all; `truncate` names get TC over UDP (the full answer over TCP).
"""
import ipaddress
import socket
import socketserver
import struct
import threading

TYPES = {"A": 1, "NS": 2, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28, "SOA": 6, "ANY": 255}
TYPE_NAMES = {v: k for k, v in TYPES.items()}
DATA_ARITY = {"A": 1, "AAAA": 1, "MX": 2, "TXT": 1, "NS": 1, "PTR": 1}
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP = 0, 1, 2, 3, 4


def _norm(name):
    return name.lower().rstrip(".")


def _encode_name(name):
    out = b""
    for label in _norm(name).split("."):
        if label:
            raw = label.encode("ascii")
            if len(raw) > 63:
                raise ValueError(f"label too long in {name!r}")
            out += bytes([len(raw)]) + raw
    return out + b"\0"


def _rdata(rtype, data):
    if rtype == "A":
        return ipaddress.IPv4Address(data[0]).packed
    if rtype == "AAAA":
        return ipaddress.IPv6Address(data[0]).packed
    if rtype == "MX":
        return struct.pack("!H", data[0]) + _encode_name(data[1])
    if rtype in ("NS", "PTR"):
        return _encode_name(data[0])
    if rtype == "TXT":
        raw = data[0].encode() if isinstance(data[0], str) else bytes(data[0])
        return b"".join(bytes([len(raw[i:i + 255])]) + raw[i:i + 255]
                        for i in range(0, max(len(raw), 1), 255))
    raise ValueError(f"unsupported record type {rtype}")


class _NameSet(set):
    """A set of names compared as DNS compares them (case, trailing dot)."""

    def add(self, name):
        super().add(_norm(name))

    def discard(self, name):
        super().discard(_norm(name))

    def __contains__(self, name):
        return super().__contains__(_norm(name))


class DnsServer:
    """See the module's documentation."""

    def __init__(self, records=None, default_ttl=300, negative_ttl=300, soa_zone="."):
        self.default_ttl = default_ttl
        self.negative_ttl = negative_ttl
        self.soa_zone = soa_zone
        self.records = {}
        self.queries = []
        self.servfail = _NameSet()
        self.drop = _NameSet()
        self.truncate = _NameSet()
        self._lock = threading.Lock()
        for name, recs in (records or {}).items():
            self.set(name, recs)
        self.udp = None
        self.tcp = None
        self.port = None
        self._threads = []
        self._stop = threading.Event()

    # -- records and observations -------------------------------------
    def set(self, name, records):
        """Replaces the records of name (a list of tuples, see above)."""
        parsed = []
        for rec in records:
            rtype = rec[0].upper()
            if rtype not in DATA_ARITY:
                raise ValueError(f"unsupported record type {rtype}")
            n = DATA_ARITY[rtype]
            data = tuple(rec[1:1 + n])
            ttl = rec[1 + n] if len(rec) > 1 + n else self.default_ttl
            _rdata(rtype, data)  # fail now on bad data, not in the server thread
            parsed.append((rtype, data, int(ttl)))
        with self._lock:
            self.records[_norm(name)] = parsed

    def remove(self, name):
        with self._lock:
            self.records.pop(_norm(name), None)

    def count(self, name, qtype=None):
        """How many queries for name (and qtype, if given) were seen."""
        with self._lock:
            return sum(1 for n, t, _ in self.queries
                       if n == _norm(name) and (qtype is None or t == qtype.upper()))

    @property
    def resolver(self):
        return f"127.0.0.1:{self.port}"

    # -- lifecycle ----------------------------------------------------
    def start(self):
        for _ in range(20):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            try:
                tcp = _TcpServer(("127.0.0.1", port), _TcpHandler)
            except OSError:
                udp.close()
                continue
            break
        else:
            raise RuntimeError("no free port for UDP and TCP at once")
        tcp.dns = self
        udp.settimeout(0.2)
        self.udp, self.tcp, self.port = udp, tcp, port
        self._threads = [threading.Thread(target=self._serve_udp, daemon=True),
                         threading.Thread(target=tcp.serve_forever, kwargs={"poll_interval": 0.2},
                                          daemon=True)]
        for t in self._threads:
            t.start()
        return self

    def stop(self):
        self._stop.set()
        if self.tcp is not None:
            self.tcp.shutdown()
            self.tcp.server_close()
        for t in self._threads:
            t.join(timeout=5)
        if self.udp is not None:
            self.udp.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- the protocol -------------------------------------------------
    def _serve_udp(self):
        while not self._stop.is_set():
            try:
                data, peer = self.udp.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            reply = self.answer(data, "udp")
            if reply is not None:
                self.udp.sendto(reply, peer)

    def answer(self, query, proto):
        """The reply to one DNS message (None: stay silent)."""
        if len(query) < 12:
            return None
        qid, flags, qdcount = struct.unpack("!HHH", query[:6])
        if flags & 0x8000:
            return None  # a response, not a query
        rd = flags & 0x0100
        if qdcount != 1:
            return struct.pack("!HHHHHH", qid, 0x8000 | rd | FORMERR, 0, 0, 0, 0)
        labels, pos = [], 12
        while True:
            if pos >= len(query):
                return struct.pack("!HHHHHH", qid, 0x8000 | rd | FORMERR, 0, 0, 0, 0)
            n = query[pos]
            if n == 0 or n > 63:
                pos += 1
                break
            labels.append(query[pos + 1:pos + 1 + n])
            pos += 1 + n
        if n != 0 or pos + 4 > len(query):
            return struct.pack("!HHHHHH", qid, 0x8000 | rd | FORMERR, 0, 0, 0, 0)
        qtype, _qclass = struct.unpack("!HH", query[pos:pos + 4])
        question = query[12:pos + 4]  # echoed as sent (0x20 case randomisation)
        name = b".".join(labels).decode("ascii", "replace").lower()
        tname = TYPE_NAMES.get(qtype, str(qtype))
        with self._lock:
            self.queries.append((name, tname, proto))
            recs = self.records.get(name)
            drop, servfail = name in self.drop, name in self.servfail
            truncate = name in self.truncate and proto == "udp"
        if drop:
            return None
        base = 0x8000 | 0x0400 | rd  # QR, AA
        if servfail:
            return struct.pack("!HHHHHH", qid, base | SERVFAIL, 1, 0, 0, 0) + question
        if truncate:
            return struct.pack("!HHHHHH", qid, base | 0x0200, 1, 0, 0, 0) + question
        answers = [(t, d, ttl) for t, d, ttl in (recs or [])
                   if qtype == TYPES["ANY"] or TYPES[t] == qtype]
        if answers:
            body = b"".join(struct.pack("!HHHIH", 0xC00C, TYPES[t], 1, ttl, len(_rdata(t, d)))
                            + _rdata(t, d) for t, d, ttl in answers)
            return struct.pack("!HHHHHH", qid, base, 1, len(answers), 0, 0) + question + body
        rcode = NOERROR if recs is not None else NXDOMAIN
        soa = (_encode_name("ns." + self.soa_zone.strip(".")) +
               _encode_name("hostmaster." + self.soa_zone.strip(".")) +
               struct.pack("!IIIII", 1, 3600, 600, 86400, self.negative_ttl))
        auth = (_encode_name(self.soa_zone) + struct.pack("!HHIH", TYPES["SOA"], 1,
                                                          self.negative_ttl, len(soa)) + soa)
        return struct.pack("!HHHHHH", qid, base | rcode, 1, 0, 1, 0) + question + auth


class _TcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class _TcpHandler(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        sock.settimeout(5)
        while True:
            head = self._read(sock, 2)
            if head is None:
                return
            query = self._read(sock, struct.unpack("!H", head)[0])
            if query is None:
                return
            reply = self.server.dns.answer(query, "tcp")
            if reply is None:
                return
            sock.sendall(struct.pack("!H", len(reply)) + reply)

    @staticmethod
    def _read(sock, n):
        buf = b""
        while len(buf) < n:
            try:
                chunk = sock.recv(n - len(buf))
            except OSError:
                return None
            if not chunk:
                return None
            buf += chunk
        return buf
