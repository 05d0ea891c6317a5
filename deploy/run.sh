#!/bin/sh
# `make run`: first-run setup on the embedded defaults, then maild in the
# foreground. Idempotent: an existing store, password and certificate are
# kept. Everything lives under ./var (store in var/store, run dir var/run).
set -eu
cd "$(dirname "$0")/.."

BIN=build/bin
VAR=var
STORE=$VAR/store
PASSFILE=$VAR/demo-password
USER_OPT=""

mkdir -p "$VAR"
if [ "$(id -u)" -eq 0 ]; then
  # As root, maild drops to the service user, which must reach ./var.
  if ! runuser -u clustermail -- test -x "$PWD" 2>/dev/null; then
    echo "run: the service user 'clustermail' cannot reach $PWD; running as root for this demo" >&2
    USER_OPT="--user root"
  else
    chown clustermail:clustermail "$VAR"
  fi
fi
# shellcheck disable=SC2086
MAILCTL="$BIN/mailctl --store $STORE $USER_OPT"

if ! $MAILCTL domain list 2>/dev/null | grep -qx example.test; then
  $MAILCTL domain add example.test
fi
if ! $MAILCTL user show demo@example.test >/dev/null 2>&1; then
  pw=$($MAILCTL user add demo@example.test --name "Demo User" --random-password |
       sed -n 's/^password for demo@example.test: //p')
  (umask 077 && printf '%s\n' "$pw" > "$PASSFILE")
  echo "run: created demo@example.test with password: $pw  (saved in $PASSFILE)"
fi

# Self-signed certificate for the TLS services, on the store so that every
# node of a cluster serves the same one (mailctl keeps the key 0600 and,
# as root, owned by the service user).
if ! $MAILCTL cert list 2>/dev/null | grep -qx default; then
  $MAILCTL cert generate default --names mail.example.test,localhost,127.0.0.1
  $MAILCTL cert assign default --default
  echo "run: generated a self-signed certificate in $STORE/tls (mailctl cert list)"
fi

echo "run: starting maild (Ctrl-C stops it). In another terminal: $BIN/mailctl status"
# shellcheck disable=SC2086
exec "$BIN/maild" --foreground --store "$STORE" $USER_OPT
