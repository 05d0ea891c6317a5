#!/bin/sh
# `make audit`: testssl.sh (Debian package testssl.sh) against a real maild,
# failing on any HIGH or CRITICAL finding. Not part of `make test`: it takes
# minutes and judges configuration rather than code paths.
#
# What it scans: a maild started here with its default TLS settings, a
# temporary store and config, on free loopback ports, and every TLS port it
# serves: the implicit-TLS ones (smtps, pop3s) directly, the STARTTLS ones
# with testssl's `--starttls smtp` (smtp, submission) and `--starttls pop3`
# (pop3). IMAP is not served yet; when it is, add imaps and `--starttls
# imap` to TARGETS below. The scans run side by side, one report each.
#
# The certificate is signed by a throwaway CA made here (the key and CSR
# come from `mailctl cert csr`, the result goes back with `mailctl cert
# import --stored-key`), and testssl is told to trust that CA, so that the
# chain of trust is judged as it would be with a real CA rather than
# reported as self-signed.
#
# Environment: O (build directory, default build), TESTSSL (default testssl),
# AUDIT_KEEP=1 keeps the work directory (maild's log, testssl's text
# output). Output: per port, every finding above INFO; the JSON reports in
# $O/tls-audit/. Exit 0 when none is HIGH/CRITICAL, 1 when one is, 2 when
# the audit could not run.
set -eu
cd "$(dirname "$0")/../.."

O=${O:-build}
TESTSSL=${TESTSSL:-testssl}
MAILCTL="$O/bin/mailctl"
MAILD="$O/bin/maild"

for f in "$MAILCTL" "$MAILD"; do
  [ -x "$f" ] || { echo "audit: $f is missing (make all)" >&2; exit 2; }
done
command -v "$TESTSSL" >/dev/null || { echo "audit: $TESTSSL not installed (deploy/deps.sh)" >&2; exit 2; }

# Under /tmp, mode 0755: maild started as root runs as the service user.
WORK=$(mktemp -d /tmp/cm-audit-XXXXXX)
chmod 755 "$WORK"
MAILD_PID=""
SCAN_PIDS=""
cleanup() {
  for pid in $SCAN_PIDS; do kill "$pid" 2>/dev/null || true; done
  if [ -n "$MAILD_PID" ]; then kill "$MAILD_PID" 2>/dev/null || true; wait "$MAILD_PID" 2>/dev/null || true; fi
  if [ "${AUDIT_KEEP:-0}" = 1 ]; then echo "audit: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT INT TERM

# Free loopback ports for the five TLS services.
# shellcheck disable=SC2046
set -- $(/usr/bin/python3 -c '
import socket
socks = [socket.socket() for _ in range(5)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))')
P_SMTP=$1 P_SUBMISSION=$2 P_SMTPS=$3 P_POP3=$4 P_POP3S=$5

# Nothing about TLS is set: what is audited is maild's defaults.
CONF="$WORK/maild.conf"
cat > "$CONF" <<CONF
node_id = 1;
store = "$WORK/store";
run_dir = "$WORK/run";
user = "clustermail";
services = {
  smtp = { address = "127.0.0.1"; port = $P_SMTP; };
  submission = { address = "127.0.0.1"; port = $P_SUBMISSION; };
  smtps = { address = "127.0.0.1"; port = $P_SMTPS; };
  pop3 = { address = "127.0.0.1"; port = $P_POP3; };
  pop3s = { address = "127.0.0.1"; port = $P_POP3S; };
  imap = { enabled = false; };
  imaps = { enabled = false; };
  http = { enabled = false; };
};
CONF
CTL="$MAILCTL -c $CONF"

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

echo "== audit: starting maild"
"$MAILD" -c "$CONF" --foreground > "$WORK/maild.log" 2>&1 &
MAILD_PID=$!
i=0
until $CTL status >/dev/null 2>&1; do
  i=$((i + 1))
  if [ $i -gt 200 ] || ! kill -0 "$MAILD_PID" 2>/dev/null; then
    cat "$WORK/maild.log" >&2; echo "audit: maild did not start" >&2; exit 2
  fi
  sleep 0.1
done

# name:port:testssl's --starttls protocol ("-": implicit TLS)
TARGETS="smtps:$P_SMTPS:- pop3s:$P_POP3S:- smtp:$P_SMTP:smtp submission:$P_SUBMISSION:smtp pop3:$P_POP3:pop3"
NAMES=""

echo "== audit: $TESTSSL on every TLS port, side by side (a few minutes)"
# --ip: only loopback, never a DNS lookup of our own name; --add-ca: trust
# the throwaway CA; --openssl: Debian's, so what is tested is what clients
# of this OS see.
for t in $TARGETS; do
  name=${t%%:*} rest=${t#*:}
  port=${rest%%:*} starttls=${rest#*:}
  NAMES="$NAMES $name"
  if [ "$starttls" = - ]; then
    echo "audit: $name, implicit TLS on localhost:$port"
    set --
  else
    echo "audit: $name, STARTTLS ($starttls) on localhost:$port"
    set -- --starttls "$starttls"
  fi
  "$TESTSSL" --quiet --color 0 --warnings off --ip 127.0.0.1 --add-ca "$WORK/ca.pem" \
    --openssl "$(command -v openssl)" --jsonfile "$WORK/testssl-$name.json" "$@" \
    "localhost:$port" > "$WORK/testssl-$name.txt" 2>&1 &
  SCAN_PIDS="$SCAN_PIDS $!"
done
for pid in $SCAN_PIDS; do wait "$pid" || true; done
SCAN_PIDS=""

for name in $NAMES; do
  if [ ! -s "$WORK/testssl-$name.json" ]; then
    cat "$WORK/testssl-$name.txt" >&2
    echo "audit: testssl produced no report for $name" >&2
    exit 2
  fi
done

status=0
# shellcheck disable=SC2086
/usr/bin/python3 - "$WORK" $NAMES <<'EOF' || status=$?
import json, sys
work, names = sys.argv[1], sys.argv[2:]
order = {"LOW": 1, "MEDIUM": 2, "HIGH": 3, "CRITICAL": 4}
bad_total = 0
for name in names:
    findings = json.load(open(f"{work}/testssl-{name}.json"))
    shown = [f for f in findings if f.get("severity") in order]
    shown.sort(key=lambda f: -order[f["severity"]])
    print(f"-- {name}")
    for f in shown:
        print(f"{f['severity']:8} {f['id']}: {f['finding']}")
    bad = [f for f in shown if order[f["severity"]] >= 3]
    bad_total += len(bad)
    print(f"audit: {name}: {len(findings)} checks, {len(shown)} findings above INFO, "
          f"{len(bad)} HIGH or CRITICAL")
sys.exit(1 if bad_total else 0)
EOF
if grep -q "Sanitizer\|runtime error:" "$WORK/maild.log"; then
  cat "$WORK/maild.log" >&2; echo "audit: sanitizer report in maild's log" >&2; status=2
fi
mkdir -p "$O/tls-audit"
cp "$WORK"/testssl-*.json "$O/tls-audit/" && echo "audit: reports in $O/tls-audit/"
exit $status
