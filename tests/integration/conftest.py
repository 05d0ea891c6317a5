"""Integration harness: real maild processes on free loopback ports, each
with a temporary store, driven by the real mailctl. A test stops only the
processes it started, by pid."""
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
MAILD = os.environ.get("MAILD", str(ROOT / "build/bin/maild"))
MAILCTL = os.environ.get("MAILCTL", str(ROOT / "build/bin/mailctl"))
SERVICES = ["smtp", "submission", "smtps", "imap", "imaps", "pop3", "pop3s", "http"]


_handed_out = set()


def free_port():
    """A loopback port free now and not handed out before in this run: a
    node that is configured but not started yet holds no socket, so the
    kernel could give its port to the next node (a test's second node then
    delivered to the first instead of to the MX it stood for)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


class Node:
    """One maild with its own config, store and run directory."""

    def __init__(self, base, node_id=1, store=None, name=None, extra="", service_options=None):
        self.base = pathlib.Path(base)
        # per-service settings, e.g. {"pop3": "require_tls = true;"}
        self.service_options = service_options or {}
        self.node_id = node_id
        self.store = pathlib.Path(store) if store else self.base / "store"
        name = name or f"n{node_id}"
        self.run_dir = self.base / f"run-{name}"
        self.config = self.base / f"{name}.conf"
        self.log = self.base / f"{name}.log"
        self.ports = {s: free_port() for s in SERVICES}
        self.proc = None
        self.write_config(extra)

    def write_config(self, extra="", **server):
        svc = "\n".join(
            f'  {s} = {{ address = "127.0.0.1"; port = {p}; {self.service_options.get(s, "")}}};'
            for s, p in self.ports.items())
        srv = "".join(f"  {k} = {v};\n" for k, v in server.items())
        if "queue = {" not in extra:
            # Mail a test relays must never leave the machine: everything
            # not local goes to a closed loopback port unless the test
            # routes it itself (and then names its own DNS server).
            extra += '\nqueue = { relayhost = "[127.0.0.1]:9"; };\n'
        self.config.write_text(
            f'node_id = {self.node_id};\nstore = "{self.store}";\nrun_dir = "{self.run_dir}";\n'
            f'user = "clustermail";\npassword = {{ cost = 1; }};\n'
            f"server = {{\n  drain_timeout = 5;\n{srv}}};\n"
            f"services = {{\n{svc}\n}};\n{extra}")

    def start(self, wait=True, args=()):
        self.tls_only_services_need_certificate()
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen([MAILD, "-c", str(self.config), "--foreground", *args],
                                     stdout=self.logf, stderr=subprocess.STDOUT)
        if wait:
            self.wait_ready()
        return self

    def tls_only_services_need_certificate(self):
        """maild refuses to start a TLS-only service (smtps, imaps, pop3s)
        that no certificate serves: until a test assigns one, they are off."""
        path = self.store / "tls" / "assignments"
        lines = path.read_text().splitlines() if path.exists() else []
        conf = self.config.read_text()
        for s in ("smtps", "imaps", "pop3s"):
            on, off = f"  {s} = {{ ", f"  {s} = {{ enabled = false; "
            if any(l.startswith(("default ", f"service {s} ")) for l in lines):
                conf = conf.replace(off, on)
            elif off not in conf:
                conf = conf.replace(on, off, 1)
        self.config.write_text(conf)

    def wait_ready(self, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"maild exited {self.proc.returncode}:\n{self.log_text()}")
            r = self.ctl("status", check=False)
            if r.returncode == 0:
                return
            time.sleep(0.1)
        raise AssertionError(f"maild not ready in {timeout}s:\n{self.log_text()}")

    def ctl_argv(self, *args):
        return [MAILCTL, "-c", str(self.config), *args]

    def ctl(self, *args, input=None, check=True, timeout=120):
        r = subprocess.run(self.ctl_argv(*args), input=input,
                           capture_output=True, text=True, timeout=timeout)
        for marker in ("Sanitizer", "runtime error:"):
            assert marker not in r.stderr, r.stderr
        if check and r.returncode != 0:
            raise AssertionError(f"mailctl {' '.join(args)} -> {r.returncode}\n"
                                 f"stdout: {r.stdout}\nstderr: {r.stderr}")
        return r

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=20):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("maild did not stop on SIGTERM")
        finally:
            self.logf.close()

    def log_text(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_log(self, needle, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.log_text():
                return
            time.sleep(0.05)
        raise AssertionError(f"{needle!r} not in log:\n{self.log_text()}")


@pytest.fixture
def workdir():
    # Under /tmp with mode 0755 so that the service user can reach the store
    # when the tests run as root.
    d = tempfile.mkdtemp(prefix="cm-", dir="/tmp")
    os.chmod(d, 0o755)
    yield pathlib.Path(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def node_factory(workdir):
    nodes = []

    def make(**kw):
        n = Node(workdir, **kw)
        nodes.append(n)
        return n

    yield make
    for n in nodes:
        if n.proc is not None and n.proc.poll() is None:
            n.proc.kill()
            n.proc.wait()
    # A sanitizer report in any daemon's log fails the test that ran it.
    for n in nodes:
        text = n.log_text()
        for marker in ("Sanitizer", "runtime error:"):
            assert marker not in text, f"{marker} in {n.log}:\n{text}"


def vm_hwm(pid):
    """A process's peak resident memory, in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.fixture
def small_quarantine(monkeypatch):
    """Under ASan (make test) freed memory sits in a quarantine that
    counts in VmHWM; keep it small so that a memory bound measures maild."""
    opts = os.environ.get("ASAN_OPTIONS", "")
    monkeypatch.setenv("ASAN_OPTIONS", (opts + ":" if opts else "") + "quarantine_size_mb=4")


@pytest.fixture
def node(node_factory):
    return node_factory().start()


@pytest.fixture
def kdc(workdir):
    """A throwaway MIT KDC and realm (tests/integration/kdc.py)."""
    from kdc import Kdc  # kdc.py imports this module: import it late
    k = Kdc(workdir).start()
    yield k
    k.stop()
