#!/bin/sh
# smoke.sh - nimbus-speed runs every operation for a fraction of a second
# against the built module on a fresh store (and OpenSSL beside it), and
# every correctness check passes. No timing is asserted.
# Exit: 0 pass, 1 fail, 77 skip, 99 hard error.
set -u
top=${NIMBUS_TOP_BUILDDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
speed=$top/nimbus-speed
mod=${NIMBUS_MODULE:-$top/.libs/libnimbus-pkcs11.so}
[ -x "$speed" ] || { echo "SKIP: speed: $speed is not built"; exit 77; }
[ -f "$mod" ] || { echo "SKIP: speed: $mod is not built"; exit 77; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/nimbus-speed.XXXXXX") || exit 99
trap 'rm -rf "$dir"' EXIT
printf 'store = %s/store\nkdf_iterations = 1000\n' "$dir" >"$dir/nimbus.conf"
export NIMBUS_CONF="$dir/nimbus.conf"
fail=0

"$speed" --module "$mod" --init so-Smoke-11 --pin alice:alice-Smoke-22 \
    --seconds 0.05 --threads 1 --ops all --openssl --objects 50 \
    --json "$dir/out.json" >"$dir/out" 2>"$dir/err"
rc=$?
if [ $rc -ne 0 ]; then
    echo "FAIL: speed: nimbus-speed exited $rc"
    cat "$dir/out" "$dir/err"
    exit 1
fi
ops=$("$speed" --list | sed 's/^find-label-N$/find-label-50/')
for op in $ops; do
    if ! grep -q "^$op  *1 " "$dir/out"; then
        echo "FAIL: speed: no line for $op"
        fail=1
    fi
done
n=$(grep -c '^[a-z0-9-]*  *1 openssl  *[0-9]' "$dir/out")
if [ "$n" -lt 15 ]; then
    echo "FAIL: speed: only $n OpenSSL reference lines"
    fail=1
fi
if [ ! -s "$dir/out.json" ]; then
    echo "FAIL: speed: no JSON written"
    fail=1
elif command -v python3 >/dev/null &&
    ! python3 -c 'import json,sys; json.load(open(sys.argv[1]))' \
        "$dir/out.json"; then
    echo "FAIL: speed: the JSON does not parse"
    fail=1
fi

# Again on the same store, two threads: the find objects are reused.
"$speed" --module "$mod" --pin alice:alice-Smoke-22 --seconds 0.02 \
    --threads 1,2 --ops sha256-4k,ecdsa-p256-sign,find-label --objects 50 \
    >"$dir/out2" 2>"$dir/err2"
rc=$?
if [ $rc -ne 0 ]; then
    echo "FAIL: speed: the two-thread run exited $rc"
    cat "$dir/out2" "$dir/err2"
    fail=1
fi
if grep -q "creating" "$dir/err2"; then
    echo "FAIL: speed: the find objects were made again"
    fail=1
fi
if ! grep -q "^find-label-50  *2 " "$dir/out2"; then
    echo "FAIL: speed: no two-thread find line"
    fail=1
fi

# A wrong PIN is a clear failure, not a crash.
"$speed" --module "$mod" --pin alice:wrong-Smoke-33 --seconds 0.01 \
    --ops random-32 >/dev/null 2>"$dir/err3"
rc=$?
if [ $rc -ne 1 ] || ! grep -q "C_Login" "$dir/err3"; then
    echo "FAIL: speed: a wrong PIN gives exit $rc:"
    cat "$dir/err3"
    fail=1
fi
[ $fail -eq 0 ] && echo "speed: $(grep -c . "$dir/out") lines, checks passed"
exit $fail
