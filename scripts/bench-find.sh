#!/usr/bin/env bash
# Find-by-label rate among N token objects, Nimbus and SoftHSMv2 in the same
# run, and the login cost. Usage: scripts/bench-find.sh BUILDDIR
#   NIMBUS_BENCH_COUNTS   object counts for Nimbus (default 1000,10000,100000)
#   SOFTHSM_BENCH_COUNTS  object counts for SoftHSM (default 1000,10000)
set -euo pipefail
b=${1:-.}
bench=$b/tests/bench/findbench
mod=$b/.libs/libnimbus-pkcs11.so
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
counts=${NIMBUS_BENCH_COUNTS:-1000,10000,100000}

echo "== Nimbus (kdf_iterations default)"
printf 'store = %s/nimbus\n' "$tmp" > "$tmp/nimbus.conf"
export NIMBUS_CONF=$tmp/nimbus.conf
pkcs11-tool --module "$mod" --init-token --label bench --so-pin co-secret >/dev/null
pkcs11-tool --module "$mod" --login --login-type so --so-pin co-secret \
    --init-pin --pin bench:bench-pw >/dev/null
"$bench" "$mod" bench:bench-pw "$counts"

shsm=$(ls /usr/lib/softhsm/libsofthsm2.so /usr/lib/*/softhsm/libsofthsm2.so 2>/dev/null | head -n 1 || true)
if [ -n "$shsm" ]; then
    echo "== SoftHSMv2 ($shsm)"
    mkdir -p "$tmp/softhsm"
    printf 'directories.tokendir = %s/softhsm\nobjectstore.backend = file\n' \
        "$tmp" > "$tmp/softhsm2.conf"
    export SOFTHSM2_CONF=$tmp/softhsm2.conf
    pkcs11-tool --module "$shsm" --init-token --label bench --so-pin co-secret \
        --slot-index 0 >/dev/null
    pkcs11-tool --module "$shsm" --login --login-type so --so-pin co-secret \
        --init-pin --pin bench-pw >/dev/null
    NIMBUS_BENCH_KDF_ITERATIONS=1 "$bench" "$shsm" bench-pw \
        "${SOFTHSM_BENCH_COUNTS:-1000,10000}" 200
else
    echo "SoftHSMv2 not installed: no reference (apt-get install softhsm2)"
fi
