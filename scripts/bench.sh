#!/usr/bin/env bash
# The standard nimbus-speed run: Nimbus, SoftHSMv2 and raw OpenSSL 3 in the
# same process and the same run, 1 and 2 threads, then a compact ratio
# table. Builds nothing (`make bench` builds first).
# Usage: scripts/bench.sh BUILDDIR
#   NIMBUS_BENCH_BIG=1      also find among 100,000 objects (Nimbus only)
#   NIMBUS_BENCH_SECONDS    seconds per measurement (default 2)
#   NIMBUS_BENCH_THREADS    thread counts (default 1,2)
#   NIMBUS_BENCH_OPS        operations (default all)
# Writes BUILDDIR/bench.json (and BUILDDIR/bench-big.json with BIG).
set -euo pipefail
b=$(cd "${1:-.}" && pwd)
speed=$b/nimbus-speed
mod=$b/.libs/libnimbus-pkcs11.so
seconds=${NIMBUS_BENCH_SECONDS:-2}
threads=${NIMBUS_BENCH_THREADS:-1,2}
ops=${NIMBUS_BENCH_OPS:-all}
objects=1000,10000
for f in "$speed" "$mod"; do
    [ -e "$f" ] || { echo "bench: $f is not built (run make bench)"; exit 1; }
done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nimbus-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Nimbus: a fresh store at the default kdf_iterations.
printf 'store = %s/nimbus\n' "$tmp" >"$tmp/nimbus.conf"
export NIMBUS_CONF=$tmp/nimbus.conf

# SoftHSMv2 from Debian's softhsm2: a fresh token in the temp dir.
shsm=/usr/lib/softhsm/libsofthsm2.so
if [ ! -e "$shsm" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bench: installing softhsm2 for the reference"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q softhsm2 >/dev/null ||
        true
fi
vs=()
if [ -e "$shsm" ]; then
    mkdir -p "$tmp/softhsm"
    printf 'directories.tokendir = %s/softhsm\nobjectstore.backend = file\n' \
        "$tmp" >"$tmp/softhsm2.conf"
    export SOFTHSM2_CONF=$tmp/softhsm2.conf
    vs=(--vs "$shsm:bench-user-pw")
else
    echo "bench: SoftHSMv2 ($shsm) is not installed: SoftHSM is skipped"
fi

echo "bench: $(nproc) CPUs, $seconds s per measurement and backend, threads" \
    "$threads; the backends alternate in 1/3 s rounds"
echo "bench: login is timed at Nimbus's DEFAULT kdf_iterations (the password"
echo "       verifier cost is the point of it); SoftHSMv2 pays its own fixed"
echo "       PIN KDF"
"$speed" --module "$mod" --init co-bench-pw --pin bench:bench-user-pw \
    "${vs[@]}" --openssl --threads "$threads" --seconds "$seconds" \
    --ops "$ops" --objects "$objects" --json "$b/bench.json" |
    tee "$tmp/table"

if [ "${NIMBUS_BENCH_BIG:-0}" = 1 ]; then
    echo "bench: find among 100,000 token objects (Nimbus only)"
    "$speed" --module "$mod" --pin bench:bench-user-pw --threads "$threads" \
        --seconds "$seconds" --ops find-label --objects 1000,10000,100000 \
        --json "$b/bench-big.json" | tee -a "$tmp/table"
fi

# The ratio table: each module against raw OpenSSL, and its 2-thread scaling.
echo
echo "== ratios (module ops/s / OpenSSL ops/s, same run; scaling = T / 1 thread)"
awk '
$1 == "operation" || $1 ~ /:$/ { next }
NF >= 9 && $3 == "openssl" && $4 ~ /^[0-9.]+$/ {
    oscale[$1 " " $2] = $9
    next
}
NF >= 9 && $4 ~ /^[0-9.]+$/ {
    key = $1 " " $2
    if (!(key in seen)) { seen[key] = 1; order[n++] = key }
    if (!($3 in isbe)) { isbe[$3] = 1; be[nb++] = $3 }
    ratio[key, $3] = $8; scale[key, $3] = $9
}
NF >= 4 && $4 == "unsupported" {
    key = $1 " " $2
    if (!(key in seen)) { seen[key] = 1; order[n++] = key }
    if (!($3 in isbe)) { isbe[$3] = 1; be[nb++] = $3 }
    ratio[key, $3] = "unsup"; scale[key, $3] = "-"
}
END {
    printf "%-22s %3s", "operation", "T"
    for (j = 0; j < nb; j++)
        printf " %12s %8s", be[j] "/ossl", "scale"
    printf " %11s\n", "ossl scale"
    for (i = 0; i < n; i++) {
        split(order[i], k, " ")
        printf "%-22s %3s", k[1], k[2]
        for (j = 0; j < nb; j++) {
            r = ((order[i], be[j]) in ratio) ? ratio[order[i], be[j]] : "-"
            s = ((order[i], be[j]) in scale) ? scale[order[i], be[j]] : "-"
            printf " %12s %8s", r, s
        }
        printf " %11s\n", (order[i] in oscale) ? oscale[order[i]] : "-"
    }
}' "$tmp/table"
echo "bench: every figure is in $b/bench.json"
