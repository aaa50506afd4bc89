#!/bin/bash
# pykcs11.sh - PyKCS11 (python3-pykcs11) against the installed module: runs
# pykcs11_test.py (log in, a wrong PIN refused, RSA and EC pairs generated,
# signatures verified on the token and by openssl, AES-GCM round trip (also
# multi-part decryption through the binding's own calls) and a
# known answer, attributes read back) on a fresh store.
# Exit: 0 pass, 1 fail, 77 skip, 99 hard error.
T=pykcs11
. "$(dirname "$0")/common.sh"

need_cmd openssl openssl
# the python3 that has PyKCS11: the first on PATH, else the system's (a
# python3 from pyenv or a virtualenv does not see Debian's packages)
PY=
for py in python3 /usr/bin/python3; do
    if command -v "$py" >/dev/null 2>&1 &&
        "$py" -c 'import PyKCS11' >/dev/null 2>&1; then
        PY=$py
        break
    fi
done
[ -n "$PY" ] || skip "PyKCS11 is not installed (apt-get install python3-pykcs11)"
interop_setup
fresh_store "$tmp" alice "$ALICE_PW"

out=$(t 120 "$PY" "$srcdir/tests/interop/pykcs11_test.py" "$MODULE" alice \
    "$ALICE_PW" "$tmp" 2>&1)
rc=$?
printf '%s\n' "$out"
[ $rc -eq 0 ] || bad "pykcs11_test.py exited with status $rc"
check "pykcs11_test.py: all checks passed" "$out" \
    "^all PyKCS11 checks passed$"
finish
