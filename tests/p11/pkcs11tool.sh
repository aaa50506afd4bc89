#!/bin/bash
# pkcs11tool.sh - the pkcs11-tool route to activation that single-user tools
# take: --init-token on a fresh token (C_InitToken activates), --init-pin in
# an SO session (C_InitPIN creates CU alice), a login as alice:<pw>, a wrong
# PIN refused, and the CO listing no object; a key made with --always-auth
# (CKA_ALWAYS_AUTHENTICATE) signs, pkcs11-tool giving the context-specific
# login itself, and the signature verifies.
# Exit: 0 pass, 1 fail, 77 skip.
set -u
top=${NIMBUS_TOP_BUILDDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
module=${NIMBUS_MODULE:-$top/.libs/libnimbus-pkcs11.so}
if ! command -v pkcs11-tool >/dev/null 2>&1; then
    echo "SKIP: pkcs11tool: pkcs11-tool is not installed (apt-get install opensc)"
    exit 77
fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/nimbus-p11tool.XXXXXX") || exit 99
trap 'rm -rf "$dir"' EXIT
printf 'store = %s/store\nkdf_iterations = 1000\n' "$dir" >"$dir/nimbus.conf"
export NIMBUS_CONF=$dir/nimbus.conf
fail=0
p11() { pkcs11-tool --module "$module" "$@" 2>&1; }
check() { # check WHAT OUTPUT PATTERN
    if grep -q -- "$3" <<<"$2"; then
        echo "ok: $1"
    else
        echo "FAIL: pkcs11tool: $1"
        printf '%s\n' "$2" | sed 's/^/    | /'
        fail=1
    fi
}

out=$(p11 -L); check "fresh token is uninitialized" "$out" "token state: *uninitialized"
out=$(p11 --init-token --label route --so-pin co-secret1)
check "--init-token activates" "$out" "successfully initialized"
out=$(p11 -T); check "token initialized, label set" "$out" "token label *: route"
out=$(p11 --init-pin --login --login-type so --so-pin co-secret1 --pin alice:alice-pw1)
check "--init-pin creates alice" "$out" "User PIN successfully initialized"
out=$(p11 -T); check "user PIN initialized flag" "$out" "PIN initialized"
printf 'x\n' >"$dir/x"
out=$(p11 --login --pin alice:alice-pw1 --write-object "$dir/x" --type data \
    --label route-obj --private)
check "alice writes an object" "$out" "Created Data Object"
out=$(p11 --login --pin alice:wrong-pw1 -O)
check "a wrong PIN is refused" "$out" "CKR_PIN_INCORRECT"
out=$(p11 --login --pin alice:alice-pw1 -O)
check "alice lists her object" "$out" "route-obj"
out=$(p11 --session-rw --login --login-type so --so-pin co-secret1 -O)
if grep -q route-obj <<<"$out"; then
    echo "FAIL: pkcs11tool: the CO sees alice's object"
    fail=1
else
    echo "ok: the CO sees no object"
fi
out=$(p11 --login --pin alice:alice-pw1 --keypairgen --key-type EC:prime256v1 \
    --id 07 --label always --usage-sign --always-auth)
check "an always-authenticate key pair" "$out" "Private Key Object"
printf 'doc\n' >"$dir/doc"
out=$(NIMBUS_DEBUG=1 p11 --login --pin alice:alice-pw1 --sign --id 07 \
    -m ECDSA-SHA256 -i "$dir/doc" -o "$dir/sig")
check "the context-specific login is asked for and accepted" "$out" \
    "C_Login -> CKR_OK.*"
n=$(grep -c "C_Login -> CKR_OK" <<<"$out")
if [ "$n" -eq 2 ] && grep -q "C_Sign -> CKR_OK" <<<"$out"; then
    echo "ok: pkcs11-tool logs in again for the signature"
else
    echo "FAIL: pkcs11tool: want two logins and a signature"
    printf '%s\n' "$out" | grep -E "C_Login|C_Sign" | sed 's/^/    | /'
    fail=1
fi
out=$(p11 --login --pin alice:alice-pw1 --verify --id 07 -m ECDSA-SHA256 \
    -i "$dir/doc" --signature-file "$dir/sig")
check "the signature verifies" "$out" "Signature is valid"
exit $fail
