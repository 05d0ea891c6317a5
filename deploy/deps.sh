#!/bin/sh
# Installs every Debian 12 package that building, testing and running
# clustermail needs, and creates its service user. Idempotent: packages already present are skipped, and
# nothing is fetched when everything is installed. One list, one place.
set -eu

PACKAGES="
  build-essential pkg-config
  clang libclang-rt-14-dev
  libevent-dev
  libldns-dev
  libzmq3-dev
  libqb-dev
  libconfig-dev
  librocksdb-dev
  libcrypt-dev
  libssl-dev openssl
  libsasl2-dev libsasl2-modules libsasl2-modules-gssapi-mit
  krb5-kdc krb5-admin-server krb5-user
  libcmocka-dev
  testssl.sh
  python3 python3-pytest
  swaks libnet-ssleay-perl libio-socket-ssl-perl
  fetchmail curl
  cyrus-clients
  procps iproute2
"
# build-essential pkg-config : compiler, make, and library flags
# clang libclang-rt-14-dev   : libFuzzer harnesses (make fuzz) with ASan/UBSan
# libevent-dev               : event loop and listeners (node/)
# libldns-dev                : DNS wire format: MX/A/AAAA lookups for outbound SMTP
# libzmq3-dev                : control plane and live event stream
# libqb-dev                  : logging (stderr/syslog/file) and blackbox
# libconfig-dev              : the configuration file parser
# librocksdb-dev             : the account directory
# libcrypt-dev               : password hashing (yescrypt, SHA-512-crypt)
# libssl-dev openssl         : TLS, digests, certificates
# libsasl2-dev libsasl2-modules libsasl2-modules-gssapi-mit
#                            : Cyrus SASL server and its mechanisms (PLAIN, LOGIN,
#                              CRAM-MD5, DIGEST-MD5, SCRAM, GSSAPI)
# krb5-kdc krb5-admin-server krb5-user
#                            : a throwaway Kerberos realm for the GSSAPI tests
# libcmocka-dev              : unit tests
# testssl.sh                 : make audit (TLS configuration scan; not part of make test)
# python3 python3-pytest     : integration tests (run with /usr/bin/python3)
# swaks libnet-ssleay-perl libio-socket-ssl-perl
#                            : SMTP test client (integration tests, README); the Perl
#                              TLS modules give it --tls and implicit TLS
# fetchmail curl             : POP3/POP3S test clients (integration tests: fetchmail with
#                              USER/PASS, APOP and CRAM-MD5 over plaintext, STLS and
#                              implicit TLS; curl pop3:// and pop3s://), curl also in README
# cyrus-clients              : smtptest/pop3test, real SASL clients proving every mechanism
#                              (PLAIN ... SCRAM, GSSAPI) over SMTP and POP3 (test_sasl_clients.py)
# procps iproute2            : process and socket inspection in tests

missing=""
for p in $PACKAGES; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if [ -n "$missing" ]; then
  echo "deps.sh: installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

# The service user maild and mailctl switch to when started as root.
if ! getent passwd clustermail >/dev/null; then
  echo "deps.sh: creating system user clustermail"
  $SUDO useradd --system --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin clustermail
fi
