#!/bin/sh
# `make bench`: every tests/bench/bench_* program, then the end-to-end
# import benchmark through the real mailctl (offline and through maild).
# Bounded: each part stops by itself.
set -eu
cd "$(dirname "$0")/../.."
O=${O:-build}

for b in "$O"/bench/bench_*; do
  [ -x "$b" ] || continue
  echo "== $b"
  "$b"
done

echo "== mailctl user import: 100,000 users with pre-hashed passwords"
/usr/bin/python3 tests/bench/bench_import.py --maild "$O/bin/maild" --mailctl "$O/bin/mailctl"
