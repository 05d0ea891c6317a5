"""mailctl's store commands (mailbox, quota, fsck), through maild and
offline."""
import fcntl
import subprocess

import pytest


def user(n, quota="1M"):
    n.ctl("domain", "add", "ex.test")
    n.ctl("user", "add", "a@ex.test", "--password", "pw", "--quota", quota)


@pytest.mark.parametrize("online", [True, False])
def test_mailbox_commands(node_factory, online):
    n = node_factory()
    if online:
        n.start()
    user(n)
    assert n.ctl("mailbox", "list", "a@ex.test").stdout.splitlines() == ["INBOX\t0\t0\t0\t"]
    n.ctl("mailbox", "create", "a@ex.test", "Sent", "--special-use", "\\Sent")
    # the name as stored is the one echoed and logged
    r = n.ctl("mailbox", "create", "a@ex.test", "inbox/Drafts 2")
    assert r.stdout == "mailbox INBOX/Drafts 2 created for a@ex.test\n"
    r = n.ctl("mailbox", "delete", "a@ex.test", "Inbox/Drafts 2")
    assert r.stdout == "mailbox INBOX/Drafts 2 deleted for a@ex.test\n"
    n.ctl("mailbox", "create", "a@ex.test", "Work/Projects")
    lines = n.ctl("mailbox", "list", "a@ex.test").stdout.splitlines()
    assert "Sent\t0\t0\t0\t \\Sent" in lines
    assert "Work\t-\t-\t-\t\\Noselect" in lines
    assert "Work/Projects\t0\t0\t0\t" in lines
    r = n.ctl("mailbox", "create", "a@ex.test", "Sent", check=False)
    assert r.returncode == 1
    r = n.ctl("mailbox", "create", "a@ex.test", "../escape", check=False)
    assert r.returncode == 1
    r = n.ctl("mailbox", "delete", "a@ex.test", "INBOX", check=False)
    assert r.returncode == 1
    n.ctl("mailbox", "delete", "a@ex.test", "Work/Projects")
    assert "Work/Projects\t0\t0\t0\t" not in n.ctl("mailbox", "list", "a@ex.test").stdout
    r = n.ctl("mailbox", "list", "nobody@ex.test", check=False)
    assert r.returncode == 1 and "nobody@ex.test" in r.stderr


def test_quota_report_and_fsck(node):
    user(node)
    node.ctl("user", "add", "b@ex.test", "--password", "pw")
    out = node.ctl("quota", "report").stdout.splitlines()
    assert "a@ex.test\t0\t1M\t0%\t0 messages" in out
    assert "b@ex.test\t0\tunlimited\t-\t0 messages" in out
    assert out[-1] == "# 2 users, 2 listed, 0 unavailable"
    # a report reads usage; it makes no mail directory for b (no mail yet)
    assert not (node.store / "mail" / "ex.test").exists()
    assert node.ctl("quota", "report", "--over", "50").stdout.splitlines() == [
        "# 2 users, 0 listed, 0 unavailable"]
    r = node.ctl("fsck")
    assert r.stdout.strip().endswith("0 problems")
    r = node.ctl("fsck", "a@ex.test", "--repair")
    assert "0 problems (a@ex.test has no mail yet)" in r.stdout
    r = node.ctl("fsck", "typo@ex.test", check=False)
    assert r.returncode == 1 and "typo@ex.test" in r.stderr


def test_fsck_exit_code_when_left_for_the_operator(node):
    """--repair exits 1 when a problem is one fsck does not change by
    itself (an entry it does not know), and says so."""
    user(node)
    node.ctl("mailbox", "create", "a@ex.test", "Work")
    boxes = list((node.store / "mail" / "ex.test").glob("*/a/box/Work/.box"))
    assert len(boxes) == 1
    (boxes[0] / "stray").write_text("x")
    r = node.ctl("fsck", "a@ex.test", "--repair", check=False)
    assert r.returncode == 1, r.stdout
    assert "unexpected entry\tfound" in r.stdout
    assert r.stdout.strip().endswith("1 problem: 0 repaired, 1 left for the operator")
    (boxes[0] / "stray").unlink()
    r = node.ctl("fsck", "a@ex.test", "--repair")
    assert r.stdout.strip().endswith("0 problems")


def test_fsck_beside_maild_does_not_hold_its_control_socket(node):
    """fsck runs in mailctl even when maild is up: a slow one (here it
    waits for a user's lock another process holds) leaves every other
    mailctl command answered, and finishes once the lock is free."""
    user(node)
    node.ctl("mailbox", "create", "a@ex.test", "Work")
    locks = list((node.store / "mail" / "ex.test").glob("*/a/lock"))
    assert len(locks) == 1
    with open(locks[0], "r+b") as held:
        fcntl.lockf(held, fcntl.LOCK_EX)
        fsck = subprocess.Popen(node.ctl_argv("fsck", "a@ex.test"), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            r = subprocess.run(node.ctl_argv("domain", "list"), capture_output=True, text=True,
                               timeout=10)
            assert r.returncode == 0 and "ex.test" in r.stdout
            assert fsck.poll() is None  # still waiting for the lock
        finally:
            fcntl.lockf(held, fcntl.LOCK_UN)
        out, err = fsck.communicate(timeout=30)
    assert fsck.returncode == 0, err
    assert out.strip().endswith("0 problems")
    assert not list(node.run_dir.glob("mailctl-*"))  # its directory reader's folder
