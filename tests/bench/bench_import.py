#!/usr/bin/python3
"""End-to-end import benchmark: `mailctl user import` of N users with
pre-hashed passwords, offline against a fresh store and through a running
maild, three runs each; prints the median rate. Also imports a plaintext
file (hashing in parallel on all cores) and prints its rate."""
import argparse
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def sha512_crypt(pw):
    return run(["openssl", "passwd", "-6", "-stdin"], input=pw + "\n").stdout.strip()


def one_run(args, csv, n, through_daemon):
    base = tempfile.mkdtemp(prefix="cm-bench-", dir="/tmp")
    os.chmod(base, 0o755)
    conf = os.path.join(base, "maild.conf")
    with open(conf, "w") as f:
        f.write(f'store = "{base}/store";\nrun_dir = "{base}/run";\n'
                'services = { smtp = { enabled = false; }; submission = { enabled = false; };'
                ' smtps = { enabled = false; }; imap = { enabled = false; }; imaps = { enabled = false; };'
                ' pop3 = { enabled = false; }; pop3s = { enabled = false; }; http = { enabled = false; }; };\n')
    ctl = [args.mailctl, "-c", conf]
    daemon = None
    try:
        run(ctl + ["domain", "add", "bench.test"])
        if through_daemon:
            daemon = subprocess.Popen([args.maild, "-c", conf, "--foreground"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 20
            while subprocess.run(ctl + ["status"], capture_output=True).returncode != 0:
                if time.monotonic() > deadline:
                    raise SystemExit("maild did not start")
                time.sleep(0.1)
        t0 = time.monotonic()
        out = run(ctl + ["user", "import", csv], timeout=600).stdout
        elapsed = time.monotonic() - t0
        if f"{n} records, {n} imported, 0 skipped" not in out:
            raise SystemExit(f"import incomplete: {out}")
        return elapsed
    finally:
        if daemon:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(30)
        shutil.rmtree(base, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--maild", required=True)
    ap.add_argument("--mailctl", required=True)
    ap.add_argument("--users", type=int, default=100000)
    ap.add_argument("--plain-users", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="cm-bench-csv-", dir="/tmp")
    try:
        hashed = os.path.join(work, "hashed.csv")
        h = sha512_crypt("secret")
        with open(hashed, "w") as f:
            for i in range(args.users):
                f.write(f"user{i}@bench.test,{h},1G\n")
        plain = os.path.join(work, "plain.csv")
        with open(plain, "w") as f:
            for i in range(args.plain_users):
                f.write(f"plain{i}@bench.test,password-{i}\n")

        for label, daemon in (("offline", False), ("through maild", True)):
            times = [one_run(args, hashed, args.users, daemon) for _ in range(args.runs)]
            med = statistics.median(times)
            print(f"import {args.users} pre-hashed users {label}: median {med:.2f} s "
                  f"({args.users / med:,.0f} users/s) over {args.runs} runs "
                  f"[{', '.join(f'{t:.2f}' for t in times)}]")
        times = [one_run(args, plain, args.plain_users, False) for _ in range(args.runs)]
        med = statistics.median(times)
        print(f"import {args.plain_users} plaintext users (yescrypt cost 2, all cores): "
              f"median {med:.2f} s ({args.plain_users / med:,.0f} users/s)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
