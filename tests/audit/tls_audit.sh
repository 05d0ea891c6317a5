#!/bin/sh
# `make audit`: testssl.sh (Debian package testssl.sh) against clustermail's
# TLS, failing on any HIGH or CRITICAL finding. Not part of `make test`: it
# takes minutes and judges configuration rather than code paths.
#
# What it scans: maild serves no TLS port until the protocol engines land
# (a service without an engine is never listened on), so the target is the
# test-only TLS server built from tests/unit/test_tls_listener.c
# (`--serve`): the listener framework, node/tls*.c and maild's default TLS
# settings, on an implicit-TLS loopback port, with certificates managed by
# the real mailctl. Once SMTP/IMAP/POP3 exist this script should also scan
# maild's implicit ports and, with testssl's -t smtp|imap|pop3, its
# STARTTLS ports.
#
# The certificate is signed by a throwaway CA made here (the CSR comes from
# `mailctl cert csr`, the result goes back with `mailctl cert import
# --stored-key`), and testssl is told to trust that CA, so that the chain
# of trust is judged as it would be with a real CA rather than reported as
# self-signed.
#
# Environment: O (build directory, default build), TESTSSL (default testssl),
# AUDIT_KEEP=1 keeps the work directory. Output: the JSON report and a
# summary of every finding above INFO; exit 0 when none is HIGH/CRITICAL.
set -eu
cd "$(dirname "$0")/../.."

O=${O:-build}
TESTSSL=${TESTSSL:-testssl}
MAILCTL="$O/bin/mailctl"
SERVER="$O/tests/test_tls_listener"

for f in "$MAILCTL" "$SERVER"; do
  [ -x "$f" ] || { echo "audit: $f is missing (make all $SERVER)" >&2; exit 2; }
done
command -v "$TESTSSL" >/dev/null || { echo "audit: $TESTSSL not installed (deploy/deps.sh)" >&2; exit 2; }

WORK=$(mktemp -d /tmp/cm-audit-XXXXXX)
chmod 755 "$WORK"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  if [ "${AUDIT_KEEP:-0}" = 1 ]; then echo "audit: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT INT TERM

STORE="$WORK/store"
USER_OPT=""
if [ "$(id -u)" -eq 0 ]; then USER_OPT="--user root"; fi
# shellcheck disable=SC2086
CTL="$MAILCTL --store $STORE $USER_OPT"

echo "== audit: a throwaway CA and a certificate for localhost"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
  -subj "/CN=clustermail audit CA" -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
$CTL cert csr audit --names localhost,127.0.0.1 > "$WORK/audit.csr"
# What a public CA puts in a server certificate, revocation pointer included
# (never fetched: testssl does not phone out unless told to).
cat > "$WORK/ext.cnf" <<'EXT'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1
crlDistributionPoints=URI:http://ca.invalid/audit.crl
EXT
openssl x509 -req -in "$WORK/audit.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" \
  -CAcreateserial -days 90 -sha256 -extfile "$WORK/ext.cnf" -out "$WORK/audit.crt" 2>/dev/null
$CTL cert import audit "$WORK/audit.crt" --stored-key
$CTL cert assign audit --default
$CTL cert list

echo "== audit: starting the test-only TLS server"
"$SERVER" --serve "$STORE" "$WORK/ports" 2> "$WORK/server.log" &
SERVER_PID=$!
i=0
while [ ! -s "$WORK/ports" ]; do
  i=$((i + 1))
  if [ $i -gt 100 ] || ! kill -0 "$SERVER_PID" 2>/dev/null; then
    cat "$WORK/server.log" >&2; echo "audit: the server did not start" >&2; exit 2
  fi
  sleep 0.1
done
PORT=$(sed -n 's/^implicit=//p' "$WORK/ports")
echo "audit: implicit TLS on localhost:$PORT"

echo "== audit: $TESTSSL (a few minutes)"
# --ip: only loopback, never a DNS lookup of our own name; --add-ca: trust
# the throwaway CA; --openssl: Debian's, so what is tested is what clients
# of this OS see.
rc=0
"$TESTSSL" --quiet --color 0 --warnings off --ip 127.0.0.1 --add-ca "$WORK/ca.pem" \
  --openssl "$(command -v openssl)" --jsonfile "$WORK/testssl.json" \
  "localhost:$PORT" > "$WORK/testssl.txt" 2>&1 || rc=$?
if [ ! -s "$WORK/testssl.json" ]; then
  cat "$WORK/testssl.txt" >&2
  echo "audit: testssl produced no report (exit $rc)" >&2
  exit 2
fi

status=0
/usr/bin/python3 - "$WORK/testssl.json" <<'EOF' || status=$?
import json, sys
findings = json.load(open(sys.argv[1]))
order = {"LOW": 1, "MEDIUM": 2, "HIGH": 3, "CRITICAL": 4}
shown = [f for f in findings if f.get("severity") in order]
shown.sort(key=lambda f: -order[f["severity"]])
for f in shown:
    print(f"{f['severity']:8} {f['id']}: {f['finding']}")
bad = [f for f in shown if order[f["severity"]] >= 3]
print(f"audit: {len(findings)} checks, {len(shown)} findings above INFO, "
      f"{len(bad)} HIGH or CRITICAL")
sys.exit(1 if bad else 0)
EOF
cp "$WORK/testssl.json" "$O/tls-audit.json" 2>/dev/null && echo "audit: report in $O/tls-audit.json"
exit $status
