"""GSSAPI (Kerberos single sign-on) against a real MIT KDC.

Each test starts its own KDC (tests/integration/kdc.py, the `kdc` fixture
of conftest.py) in a temporary directory on a free loopback
port with its own realm (SHARED.REALM), creates the users alice and stranger
and the service principals imap/, smtp/, pop/ and ftp/localhost, writes a
keytab holding imap/, smtp/ and pop/ only, and gets tickets with kinit
(alice is a directory user, stranger is not).
Nothing outside the temporary directory is touched: every process is
pointed at it with KRB5_CONFIG, KRB5_KDC_PROFILE and KRB5CCNAME. The KDC
is stopped by its pid.

Two clients prove the server side: the in-process libsasl2 GSSAPI client
of tests/unit/test_sasl_gssapi.c (success for each service, unknown
principal, no ticket, another service's ticket, a service missing from
the keytab, a disabled
account, an unmapped realm), and `mailctl user auth-test --mechanism
GSSAPI` against a maild configured with the keytab (the client runs in
maild with alice's ticket cache, the server side is maild's own auth
layer).
"""
import pathlib
import subprocess

import pytest

from conftest import MAILD
from kdc import KDC_INSTALLED, LSAN_OPTIONS, REALM

GSSAPI_TEST = pathlib.Path(MAILD).resolve().parents[1] / "tests" / "test_sasl_gssapi"

pytestmark = pytest.mark.skipif(not KDC_INSTALLED,
                                reason="krb5-kdc is not installed (deploy/deps.sh installs it)")


def test_gssapi_in_process(kdc):
    assert GSSAPI_TEST.exists(), f"{GSSAPI_TEST} was not built"
    env = dict(kdc.env, LSAN_OPTIONS=LSAN_OPTIONS, CM_KRB5_KEYTAB=str(kdc.keytab),
               CM_KRB5_CC_ALICE=kdc.ticket_cache("alice", "alice-pw"),
               CM_KRB5_CC_STRANGER=kdc.ticket_cache("stranger", "stranger-pw"),
               CM_KRB5_CC_EMPTY=f"FILE:{kdc.dir}/cc_nobody")
    r = subprocess.run([str(GSSAPI_TEST)], env=env, capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "[  PASSED  ] 2 test(s)" in out, out
    assert "SKIPPED" not in out, out
    assert "Sanitizer" not in out and "runtime error:" not in out, out
    assert "login user=alice@shared.test" in out and "mech=GSSAPI" in out


def test_gssapi_through_maild(kdc, node_factory, monkeypatch):
    # maild runs the client side of auth-test itself: give it alice's tickets.
    for key in ("KRB5_CONFIG", "KRB5_KDC_PROFILE"):
        monkeypatch.setenv(key, kdc.env[key])
    monkeypatch.setenv("KRB5CCNAME", kdc.ticket_cache("alice", "alice-pw"))
    monkeypatch.setenv("LSAN_OPTIONS", LSAN_OPTIONS)
    n = node_factory(extra=f'auth = {{ kerberos_keytab = "{kdc.keytab}"; '
                           f'kerberos_default_realm = "{REALM}"; hostname = "localhost"; }};\n')
    n.start()
    n.ctl("domain", "add", "shared.test")
    n.ctl("domain", "set", "shared.test", "kerberos-realm", REALM)
    n.ctl("user", "add", "alice@shared.test", "--password", "unused-here")
    r = n.ctl("user", "auth-test", "alice@shared.test", "--password", "x", "--mechanism", "GSSAPI",
              check=False)
    assert r.returncode == 0, r.stderr + n.log_text()
    assert "alice@shared.test: GSSAPI ok" in r.stdout
    assert "mechanisms (with TLS): PLAIN LOGIN GSSAPI" in n.ctl("auth", "stats").stdout
    n.wait_log("[auth] login user=alice@shared.test peer=mailctl mech=GSSAPI")
    # without the realm mapping the same ticket maps to nobody
    n.ctl("domain", "set", "shared.test", "kerberos-realm", "none")
    r = n.ctl("user", "auth-test", "alice@shared.test", "--password", "x", "--mechanism", "GSSAPI",
              check=False)
    assert r.returncode == 1 and "no domain maps" in r.stderr
