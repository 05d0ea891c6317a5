#!/bin/sh
# Long forms of the mail store's stress tests (the short forms run in
# `make test` as ordinary unit tests):
#   test_store_concurrency --seconds 30   3 processes x 2 threads on shared mailboxes
#   test_store_crash --kills 200          writers killed with SIGKILL, fsck after each
# Usage: O=build/san tests/stress/run.sh   (after building those two tests)
set -eu
cd "$(dirname "$0")/../.."
O=${O:-build/san}
SECONDS_LONG=${STRESS_SECONDS:-30}
KILLS_LONG=${STRESS_KILLS:-200}

for t in test_store_concurrency test_store_crash; do
  if [ ! -x "$O/tests/$t" ]; then
    echo "stress: $O/tests/$t is not built (make O=$O $O/tests/$t)" >&2
    exit 1
  fi
done

echo "== concurrency: ${SECONDS_LONG} s"
"$O/tests/test_store_concurrency" --seconds "$SECONDS_LONG"
echo "== crash: ${KILLS_LONG} kills"
"$O/tests/test_store_crash" --kills "$KILLS_LONG"
