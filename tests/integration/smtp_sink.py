"""A scripted SMTP server on loopback, for the queue's outbound tests.

    from smtp_sink import SmtpSink
    with SmtpSink("tempfail") as sink:
        ...  # sink.port, sink.sessions, sink.messages, sink.commands

It offers neither 8BITMIME nor PIPELINING nor DSN (the peer an 8-bit
message must be downgraded for, RFC 6152), runs each session on a thread
of its own, and keeps what it received. Leaving the `with` block (or
close()) stops it: the listening socket and every session are closed."""
import socket
import threading
import time


class SmtpSink:
    """mode: "ok" (250 to everything), "tempfail" (451 after DATA),
    "stall" (accepts the connection, never greets), "refuse" (greets
    554); the mode may change while it runs. With broken_tls it also
    offers STARTTLS, says 220 to it and then answers the handshake with
    plain text, as a misconfigured server does. With stall_data its first
    session never answers the end of DATA (a server that hangs with the
    message). With slow_data it takes the body at about 640 KB/s, never
    pausing long: a slow link, not a stuck one. With rcpt_limit it takes
    that many RCPTs per transaction and answers the others 452 4.5.3 (too
    many recipients, RFC 5321 4.5.3.1.10). rcpt_replies maps a recipient
    address to the reply its RCPT gets instead of 250."""

    def __init__(self, mode="ok", address="127.0.0.1", port=0, broken_tls=False,
                 stall_data=False, slow_data=False, rcpt_limit=None, rcpt_replies=None):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if slow_data:  # small buffers, so that the sender waits on us
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.bind((address, port))
        self.sock.listen(20)
        self.port = self.sock.getsockname()[1]
        self.mode = mode
        self.broken_tls = broken_tls
        self.stall_data = stall_data
        self.slow_data = slow_data
        self.rcpt_limit = rcpt_limit
        self.rcpt_replies = rcpt_replies or {}
        self.stalled = threading.Event()  # stall_data: the message arrived, unanswered
        self.closed = threading.Event()
        self.sessions = 0
        self.messages = []
        self.ehlo = []
        self.commands = []
        self.conns = []
        threading.Thread(target=self.serve, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.sessions += 1
            self.conns.append(c)
            threading.Thread(target=self.session, args=(c,), daemon=True).start()

    def session(self, c):
        try:
            if self.mode == "stall":
                self.closed.wait(120)
                return
            c.settimeout(30)
            say = lambda t: c.sendall(t.encode() + b"\r\n")  # noqa: E731
            say("554 5.3.2 go away" if self.mode == "refuse" else "220 sink ESMTP")
            data = None
            rcpts = 0
            for raw in c.makefile("rb"):
                line = raw.decode("latin-1").rstrip("\r\n")
                if data is not None:
                    if line == "." and self.stall_data and not self.stalled.is_set():
                        self.stalled.set()  # no reply: read on until the client leaves
                        data = None
                    elif line == ".":
                        self.messages.append(b"".join(data))
                        data = None
                        say("451 4.3.0 later" if self.mode == "tempfail" else "250 2.0.0 kept")
                    else:
                        data.append(raw)
                        if self.slow_data and len(data) % 400 == 0:
                            time.sleep(0.05)
                    continue
                verb = line[:4].upper()
                self.commands.append(line)
                if verb == "EHLO":
                    self.ehlo.append(line)
                    say("250-sink\r\n" + ("250-STARTTLS\r\n" if self.broken_tls else "")
                        + "250 SIZE 10000000")
                elif verb == "STAR" and self.broken_tls:
                    say("220 2.0.0 go ahead")
                    say("this is not a TLS server hello")
                    return
                elif verb == "RCPT" and line[8:].strip("<>") in self.rcpt_replies:
                    say(self.rcpt_replies[line[8:].strip("<>")])
                elif verb == "RCPT" and self.rcpt_limit is not None:
                    rcpts += 1
                    say("250 2.1.5 ok" if rcpts <= self.rcpt_limit
                        else "452 4.5.3 Error: too many recipients")
                elif verb in ("HELO", "MAIL", "RCPT", "RSET", "NOOP"):
                    rcpts = 0 if verb in ("MAIL", "RSET") else rcpts
                    say("250 2.0.0 ok")
                elif verb == "DATA":
                    say("354 go on")
                    data = []
                elif verb == "QUIT":
                    say("221 bye")
                    return
                else:
                    say("502 5.5.2 no")
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.closed.set()
        try:  # wakes the accepting thread; close() alone leaves it listening
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass
