"""Account management with mailctl: through a running maild and offline
against the store, bulk import, live directory events."""
import subprocess
import time

import pytest

from conftest import MAILCTL


def sha512_crypt(password):
    return subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password + "\n",
                          capture_output=True, text=True, check=True).stdout.strip()


def setup_domain(n, domain="example.test"):
    n.ctl("domain", "add", domain)


def test_domains(node):
    node.ctl("domain", "add", "Example.TEST")
    node.ctl("domain", "add", "other.test")
    assert node.ctl("domain", "list").stdout.split() == ["example.test", "other.test"]
    r = node.ctl("domain", "add", "example.test", check=False)
    assert r.returncode == 1 and "example.test" in r.stderr
    r = node.ctl("domain", "add", "bad..domain", check=False)
    assert r.returncode == 1
    node.ctl("domain", "del", "other.test")
    assert node.ctl("domain", "list").stdout.split() == ["example.test"]


def test_user_lifecycle(node):
    setup_domain(node)
    node.ctl("user", "add", "Alice@Example.test", "--password-stdin", "--quota", "2G",
             "--name", "Alice Liddell", input="s3cret\n")
    show = node.ctl("user", "show", "alice@example.test").stdout
    assert "address:  alice@example.test" in show
    assert "name:     Alice Liddell" in show
    assert "quota:    2G" in show
    assert "password: yescrypt" in show
    assert "s3cret" not in show
    assert node.ctl("user", "auth-test", "alice@example.test", "--password-stdin",
                    input="s3cret\n").returncode == 0
    bad = node.ctl("user", "auth-test", "alice@example.test", "--password-stdin",
                   input="wrong\n", check=False)
    assert bad.returncode == 1 and "does not match" in bad.stderr

    node.ctl("user", "set-quota", "alice@example.test", "500M")
    assert "quota:    500M" in node.ctl("user", "show", "alice@example.test").stdout
    node.ctl("user", "disable", "alice@example.test")
    assert "state:    disabled" in node.ctl("user", "show", "alice@example.test").stdout
    r = node.ctl("user", "auth-test", "alice@example.test", "--password-stdin", input="s3cret\n",
                 check=False)
    assert r.returncode == 1 and "disabled" in r.stderr
    node.ctl("user", "enable", "alice@example.test")
    node.ctl("user", "passwd", "alice@example.test", "--password-stdin", input="n3w\n")
    assert node.ctl("user", "auth-test", "alice@example.test", "--password-stdin",
                    input="n3w\n").returncode == 0

    listing = node.ctl("user", "list").stdout.splitlines()
    assert listing == ["alice@example.test\t500M\tenabled\tAlice Liddell"]
    node.ctl("user", "del", "alice@example.test")
    assert node.ctl("user", "list").stdout == ""
    r = node.ctl("user", "show", "alice@example.test", check=False)
    assert r.returncode == 1


@pytest.mark.parametrize("args,needle", [
    (["user", "add", "bob@nowhere.test", "--password-hash", sha512_crypt("x")],
     "nowhere.test"),
    (["user", "add", "not-an-address", "--password-hash", sha512_crypt("x")],
     "not-an-address"),
    (["user", "add", "bob@example.test", "--password-hash", "plaintext"], "not a crypt(3) hash"),
    (["user", "set-quota", "ghost@example.test", "1G"], "ghost@example.test"),
    (["user", "set-quota", "bob@example.test", "lots"], "not a quota"),
])
def test_user_errors(node, args, needle):
    setup_domain(node)
    node.ctl("user", "add", "bob@example.test", "--password", "pw")
    r = node.ctl(*args, check=False)
    assert r.returncode != 0
    assert needle in r.stderr


def test_duplicate_user_and_name_clash(node):
    setup_domain(node)
    node.ctl("user", "add", "carol@example.test", "--password", "pw")
    r = node.ctl("user", "add", "CAROL@example.test", "--password", "pw", check=False)
    assert r.returncode == 1
    r = node.ctl("alias", "add", "carol@example.test", "x@remote.test", check=False)
    assert r.returncode == 1
    r = node.ctl("group", "add", "carol@example.test", check=False)
    assert r.returncode == 1


def test_random_password_is_shown_once_and_works(node):
    setup_domain(node)
    out = node.ctl("user", "add", "dan@example.test", "--random-password").stdout
    pw = out.split("password for dan@example.test: ")[1].split()[0]
    assert len(pw) == 16
    assert node.ctl("user", "auth-test", "dan@example.test", "--password", pw).returncode == 0


def test_aliases_groups_and_resolution(node):
    setup_domain(node)
    for u in ("ann", "ben", "cat"):
        node.ctl("user", "add", f"{u}@example.test", "--password", "pw")
    node.ctl("alias", "add", "sales@example.test", "ann@example.test", "partner@remote.test")
    node.ctl("group", "add", "team@example.test", "--name", "The Team")
    node.ctl("group", "add-member", "team@example.test", "ben@example.test", "sales@example.test")
    assert node.ctl("alias", "list", "sales@example.test").stdout.splitlines() == [
        "sales@example.test\tann@example.test", "sales@example.test\tpartner@remote.test"]
    assert node.ctl("group", "list").stdout.splitlines() == ["team@example.test\tThe Team"]
    assert sorted(node.ctl("group", "list", "team@example.test").stdout.split()) == [
        "ben@example.test", "sales@example.test"]

    got = sorted(node.ctl("resolve", "team@example.test").stdout.splitlines())
    assert got == ["ann@example.test\tlocal", "ben@example.test\tlocal", "partner@remote.test\tremote"]
    r = node.ctl("resolve", "nobody@example.test", check=False)
    assert r.returncode == 1 and "no such recipient" in r.stderr
    assert "remote (not a local domain)" in node.ctl("resolve", "x@elsewhere.test").stdout

    node.ctl("alias", "add", "@example.test", "cat@example.test")
    assert node.ctl("resolve", "nobody@example.test").stdout == "cat@example.test\tlocal\n"
    node.ctl("alias", "del", "@example.test")
    node.ctl("group", "del-member", "team@example.test", "sales@example.test")
    assert node.ctl("resolve", "team@example.test").stdout == "ben@example.test\tlocal\n"
    node.ctl("alias", "del", "sales@example.test", "partner@remote.test")
    assert node.ctl("resolve", "sales@example.test").stdout == "ann@example.test\tlocal\n"

    r = node.ctl("domain", "del", "example.test", check=False)
    assert r.returncode == 1 and "--force" in r.stderr
    node.ctl("domain", "del", "example.test", "--force")
    assert node.ctl("user", "list").stdout == ""
    assert node.ctl("group", "list").stdout == ""


def test_offline_management_then_daemon_sees_it(node_factory):
    n = node_factory()
    n.ctl("domain", "add", "offline.test")
    n.ctl("user", "add", "eve@offline.test", "--password", "pw")
    assert not (n.run_dir / "control.sock").exists()
    r = n.ctl("status", check=False)
    assert r.returncode == 1 and "no maild is running" in r.stderr
    n.start()
    assert n.ctl("user", "list").stdout.startswith("eve@offline.test\t")
    assert n.ctl("user", "auth-test", "eve@offline.test", "--password", "pw").returncode == 0


def test_offline_refused_while_a_daemon_holds_the_directory(node, workdir):
    # Same store, but a run dir where no daemon answers: the directory lock wins.
    r = subprocess.run([MAILCTL, "--store", str(node.store), "--user", "clustermail",
                        "domain", "list"], capture_output=True, text=True, cwd=workdir)
    assert r.returncode == 1
    assert "held by a maild" in r.stderr


def write_csv(path, rows):
    path.write_text("\n".join(rows) + "\n")


def test_import_prehashed_and_plaintext(node, workdir):
    setup_domain(node)
    sha = sha512_crypt("old-sha")
    rows = ["# migrated accounts", "address,password,quota", "# the rows"]
    rows += [f"u{i}@example.test,{sha},1G" for i in range(2500)]
    rows += [f"cut@example.test,{sha[:-20]}"]  # cut off: no password could match it
    rows += [f"p{i}@example.test,plain-{i}" for i in range(20)]
    rows += ['"q@example.test","pa,ss""word",10M']
    csv = workdir / "users.csv"
    write_csv(csv, rows)
    r = node.ctl("user", "import", str(csv), check=False)
    assert "2522 records, 2521 imported, 1 skipped" in r.stdout, r.stdout + r.stderr
    assert node.ctl("user", "auth-test", "u7@example.test", "--password", "old-sha").returncode == 0
    assert node.ctl("user", "auth-test", "p3@example.test", "--password", "plain-3").returncode == 0
    assert node.ctl("user", "auth-test", "q@example.test", "--password", 'pa,ss"word').returncode == 0
    assert "quota:    10M" in node.ctl("user", "show", "q@example.test").stdout
    assert "password: sha512-crypt" in node.ctl("user", "show", "u1@example.test").stdout
    assert len(node.ctl("user", "list", "example.test").stdout.splitlines()) == 2521


def test_import_reports_bad_lines_and_keeps_the_rest(node, workdir):
    setup_domain(node)
    csv = workdir / "mixed.csv"
    write_csv(csv, ["ok1@example.test,pw1", "nobody@unknown.test,pw", "broken line",
                    "ok1@example.test,dup", '"unbalanced,pw', "ok2@example.test,pw2,bogus-quota",
                    "ok3@example.test,pw3"])
    r = node.ctl("user", "import", str(csv), check=False)
    assert r.returncode == 1
    assert "7 records, 2 imported, 5 skipped" in r.stdout, r.stdout + r.stderr
    assert "line 3:" in r.stderr and "line 5:" in r.stderr
    assert sorted(l.split("\t")[0] for l in node.ctl("user", "list").stdout.splitlines()) == [
        "ok1@example.test", "ok3@example.test"]


def test_import_offline(node_factory, workdir):
    n = node_factory()
    n.ctl("domain", "add", "bulk.test")
    csv = workdir / "bulk.csv"
    sha = sha512_crypt("pw")
    write_csv(csv, [f"x{i}@bulk.test,{sha}" for i in range(3000)])
    r = n.ctl("user", "import", str(csv))
    assert "3000 imported" in r.stdout


def test_directory_events_are_published(node):
    sub = subprocess.Popen([MAILCTL, "-c", str(node.config), "events", "--count", "2",
                            "--timeout", "20", "directory"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)  # ZeroMQ subscriptions take a moment to propagate
    deadline = time.monotonic() + 20
    i = 0
    while sub.poll() is None and time.monotonic() < deadline:
        node.ctl("domain", "add", f"ev{i}.test")
        i += 1
        time.sleep(0.2)
    out, err = sub.communicate(timeout=20)
    lines = out.splitlines()
    assert sub.returncode == 0, err
    assert len(lines) == 2
    assert all(l.startswith("directory node=1 op=domain-add domain=ev") for l in lines)
