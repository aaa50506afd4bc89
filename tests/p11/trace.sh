#!/bin/bash
# trace.sh - NIMBUS_DEBUG traces calls and return codes, never a secret;
# without it the module is silent; a bad configuration fails C_Initialize
# with one clear line on stderr.
# Exit: 0 pass, 1 fail, 77 skip, 99 hard error.
set -u
top=${NIMBUS_TOP_BUILDDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export NIMBUS_MODULE=${NIMBUS_MODULE:-$top/.libs/libnimbus-pkcs11.so}
writer=$top/tests/p11/p11_writer
[ -x "$writer" ] || { echo "ERROR: trace: $writer not built"; exit 99; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/nimbus-trace.XXXXXX") || exit 99
trap 'rm -rf "$dir"' EXIT
printf 'store = %s/store\nkdf_iterations = 1000\n' "$dir" >"$dir/nimbus.conf"
export NIMBUS_CONF=$dir/nimbus.conf
fail=0

unset NIMBUS_DEBUG
"$writer" init trace so-Secret-77 >"$dir/out" 2>"$dir/quiet" || {
    echo "FAIL: trace: init failed"; cat "$dir/out" "$dir/quiet"; exit 1; }
if [ -s "$dir/quiet" ]; then
    echo "FAIL: trace: the module wrote to stderr without NIMBUS_DEBUG:"
    cat "$dir/quiet"
    fail=1
fi

export NIMBUS_DEBUG=trace
"$writer" mkuser so-Secret-77 alice alice-Secret-88 >/dev/null 2>"$dir/trace"
"$writer" create alice:alice-Secret-88 secret-label-xyz >/dev/null \
    2>>"$dir/trace"
"$writer" login user alice:wrong-Secret-99 >/dev/null 2>>"$dir/trace"
unset NIMBUS_DEBUG
for call in C_Initialize C_Login C_InitPIN C_CreateObject CKR_PIN_INCORRECT; do
    if ! grep -q "$call" "$dir/trace"; then
        echo "FAIL: trace: $call does not appear in the trace"
        fail=1
    fi
done
for secret in so-Secret-77 alice-Secret-88 wrong-Secret-99 Secret; do
    if grep -q -- "$secret" "$dir/trace"; then
        echo "FAIL: trace: the trace contains a password ($secret)"
        fail=1
    fi
done
echo "trace: $(wc -l <"$dir/trace") lines, no password in them"

printf 'kdf_iterations = lots\n' >"$dir/bad.conf"
NIMBUS_CONF=$dir/bad.conf "$writer" info >/dev/null 2>"$dir/bad"
if ! grep -q "^nimbus: $dir/bad.conf:1: kdf_iterations" "$dir/bad"; then
    echo "FAIL: trace: a bad config does not give the one-line reason:"
    cat "$dir/bad"
    fail=1
fi
exit $fail
