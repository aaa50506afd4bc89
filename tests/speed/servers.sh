#!/bin/sh
# servers.sh - nimbus-speed --servers: one short run of
# scripts/speed-servers.sh (embedded, nimbusd over unix and TLS, p11-kit's
# RPC) prints a row per backend and the issue 13 bounds table. No timing
# is asserted.
# Exit: 0 pass, 1 fail, 77 skip, 99 hard error.
set -u
top=${NIMBUS_TOP_BUILDDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
src=${NIMBUS_TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
out=$(mktemp "${TMPDIR:-/tmp}/nimbus-speed-servers.XXXXXX") || exit 99
trap 'rm -f "$out"' EXIT

NIMBUS_TOP_BUILDDIR=$top SPEED_KDF_ITERATIONS=1000 \
    "$src/scripts/speed-servers.sh" --seconds 0.05 --threads 1,2 \
    --ops ecdsa-p256-sign,ecdsa-p256-sign-login-load,random-32 >"$out" 2>&1
rc=$?
[ $rc -eq 77 ] && { cat "$out"; exit 77; }
# Until the remote backend is in the build, the module refuses `servers`.
if [ $rc -ne 0 ] && grep -q "remote mode is not available" "$out"; then
    echo "SKIP: speed-servers: this build has no remote backend"
    exit 77
fi
if [ $rc -ne 0 ]; then
    echo "FAIL: speed-servers: exited $rc"
    cat "$out"
    exit 1
fi
fail=0
for be in embedded unix tls p11-kit; do
    for row in "ecdsa-p256-sign  *1" "ecdsa-p256-sign  *2" \
        "ecdsa-p256-sign-login-load  *1" "random-32  *1"; do
        if ! grep -q "^$row $be  *[0-9]" "$out"; then
            echo "FAIL: speed-servers: no figure for $row on $be"
            fail=1
        fi
    done
done
for bound in "unix C_GenerateRandom(32) p50 us" \
    "unix ECDSA sign p99 login-load/none"; do
    if ! grep -F "$bound" "$out" | grep -Eq ' (ok|MISSED) '; then
        echo "FAIL: speed-servers: no verdict for $bound"
        fail=1
    fi
done
# Bounds on rows this run did not measure (8 threads) are left out.
if grep -qF "T8" "$out"; then
    echo "FAIL: speed-servers: a bound on 8-thread rows that were not run"
    fail=1
fi
if ! grep -q "^issue 13 bound" "$out"; then
    echo "FAIL: speed-servers: no bounds table"
    fail=1
fi
[ $fail -ne 0 ] && cat "$out"
[ $fail -eq 0 ] && echo "speed-servers: $(grep -c . "$out") lines, 4 backends"
exit $fail
