#!/bin/bash
# engine.sh - the module's crypto is its own in a process whose OpenSSL has
# a default ENGINE: tests/p11/engine_client loads an OPENSSL_CONF that
# loads libp11's pkcs11 engine with default_algorithms = ALL, makes it the
# default for everything as Apache's SSLCryptoDevice does, adds a hostile
# engine for the Ed/X key types, and then runs PSS, OAEP, PKCS#1, ECDSA,
# EdDSA, ECDH, HMAC, AES and SHA-256 through the module (see the client).
# The engine's own PKCS#11 module is SoftHSM (never loaded: no key of the
# test goes through the engine).
# Exit: 0 pass, 1 fail, 77 skip, 99 hard error.
set -u
top=${NIMBUS_TOP_BUILDDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export NIMBUS_MODULE=${NIMBUS_MODULE:-$top/.libs/libnimbus-pkcs11.so}
client=$top/tests/p11/engine_client
[ -x "$client" ] || { echo "ERROR: engine: $client not built"; exit 99; }

dir=$(openssl version -e 2>/dev/null | sed -n 's/^ENGINESDIR: "\(.*\)"$/\1/p')
engine=$dir/pkcs11.so
if [ -z "$dir" ] || [ ! -f "$engine" ]; then
    echo "SKIP: engine: libp11's pkcs11 engine is not installed in '$dir'" \
        "(apt-get install libengine-pkcs11-openssl)"
    exit 77
fi
softhsm=
for f in /usr/lib/softhsm/libsofthsm2.so \
    /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so; do
    [ -f "$f" ] && softhsm=$f && break
done
[ -n "$softhsm" ] || softhsm=/nonexistent/libsofthsm2.so

tmp=$(mktemp -d "${TMPDIR:-/tmp}/nimbus-engine.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/openssl.cnf" <<CNF
openssl_conf = openssl_init

[openssl_init]
engines = engine_section

[engine_section]
pkcs11 = pkcs11_section

[pkcs11_section]
engine_id = pkcs11
dynamic_path = $engine
MODULE_PATH = $softhsm
default_algorithms = ALL
init = 1
CNF
mkdir -p "$tmp/softhsm"
printf 'directories.tokendir = %s/softhsm\n' "$tmp" >"$tmp/softhsm2.conf"
printf 'store = %s/store\nkdf_iterations = 1000\n' "$tmp" >"$tmp/nimbus.conf"

unset NIMBUS_DEBUG
OPENSSL_CONF=$tmp/openssl.cnf SOFTHSM2_CONF=$tmp/softhsm2.conf \
    NIMBUS_CONF=$tmp/nimbus.conf timeout -k 5 120 "$client"
rc=$?
case $rc in
0) echo "PASS: engine" ;;
77 | 99) ;;
[1-9] | [1-7][0-9]) echo "FAIL: engine: $rc check(s) failed"; rc=1 ;;
*) echo "FAIL: engine: the client ended with status $rc"; rc=1 ;;
esac
exit $rc
