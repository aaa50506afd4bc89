#!/bin/bash
# quickstart.sh - build Nimbus HSM and walk through its user model with the
# real pkcs11-tool (OpenSC) on a throwaway store.
#
# On a bare Debian/Ubuntu machine it first installs what is missing (with
# apt-get; through sudo when not root). Then it builds the source tree
# (autoreconf if there is no configure, configure if there is no Makefile,
# make), makes a store in a temporary directory (removed at exit) and shows:
#   - the fresh, uninitialized token;
#   - activation (C_InitToken): the CO "admin" gets its password;
#   - the CO creates the crypto user alice (C_InitPIN "alice:<pw>");
#   - alice writes a private data object "hello" and lists it;
#   - the CO sees no object and is refused when it tries to create one.
# It fails if the CO can create an object or alice cannot see hers.
#
# Usage: scripts/quickstart.sh   (from anywhere; builds where it lives)
set -euo pipefail

srcdir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SO_PIN=co-secret1   # the crypto officer's password (7..32 bytes)
ALICE_PW=alice-pw1  # alice's password

step() { printf '\n==> %s\n' "$*"; }
say() { printf '    %s\n' "$*"; }
indent() { sed 's/^/    | /'; }
die() {
    printf '\nquickstart: FAILED: %s\n' "$*" >&2
    exit 1
}

# --------------------------------------------------------------- deps
step "Checking build dependencies"
missing=()
for cmd in cc make autoreconf automake libtoolize pkg-config pkcs11-tool \
    sqlite3; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
if command -v pkg-config >/dev/null 2>&1; then
    for pc in libcrypto sqlite3 p11-kit-1 cmocka; do
        pkg-config --exists "$pc" || missing+=("$pc.pc")
    done
fi
if [ "${#missing[@]}" -eq 0 ]; then
    say "all present"
else
    say "missing: ${missing[*]}"
    command -v apt-get >/dev/null 2>&1 ||
        die "no apt-get here: install the equivalents of build-essential autoconf automake libtool pkg-config libssl-dev libsqlite3-dev libp11-kit-dev libcmocka-dev opensc sqlite3 yourself"
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 ||
            die "not root and no sudo: cannot install ${missing[*]}"
        sudo=(sudo)
    fi
    step "Installing build dependencies with apt-get"
    ${sudo[@]+"${sudo[@]}"} apt-get update
    ${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get install -y \
        build-essential autoconf automake libtool pkg-config libssl-dev \
        libsqlite3-dev libp11-kit-dev libcmocka-dev opensc sqlite3
fi

# --------------------------------------------------------------- build
step "Building Nimbus in $srcdir"
cd "$srcdir"
if [ ! -x configure ]; then
    say "no configure script: running autoreconf -fi"
    autoreconf -fi
fi
if [ ! -f Makefile ]; then
    say "running ./configure"
    ./configure
else
    say "already configured (make reruns configure if it changed)"
fi
make -j"$(nproc)"
module=$srcdir/.libs/libnimbus-pkcs11.so
[ -f "$module" ] || die "the build did not produce $module"
say "module: $module"

# --------------------------------------------------------------- store
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nimbus-quickstart.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/nimbus.conf" <<CONF
# quickstart: a throwaway store. kdf_iterations is left at its default
# (the real password-verifier cost), so each login takes a moment.
store = $tmp/store
CONF
export NIMBUS_CONF=$tmp/nimbus.conf
step "Fresh store in $tmp/store (NIMBUS_CONF=$NIMBUS_CONF)"

# p11 ARGS...: runs pkcs11-tool on the module. The command line goes to
# fd 3 (the terminal's stdout), so that $(p11 ...) captures only the tool.
exec 3>&1
p11() {
    say "\$ pkcs11-tool --module libnimbus-pkcs11.so $*" >&3
    pkcs11-tool --module "$module" "$@"
}

step "1. The token before activation (pkcs11-tool -L)"
out=$(p11 -L 2>&1) || die "pkcs11-tool -L failed: $out"
indent <<<"$out"

step "2. Activation: C_InitToken sets the crypto officer's password"
out=$(p11 --init-token --label demo --so-pin "$SO_PIN" 2>&1) ||
    die "--init-token failed: $out"
indent <<<"$out"

step "3. The crypto officer (admin) creates crypto user alice"
out=$(p11 --init-pin --login --login-type so --so-pin "$SO_PIN" \
    --pin "alice:$ALICE_PW" 2>&1) || die "--init-pin failed: $out"
indent <<<"$out"

step "4. alice writes a private data object labelled 'hello'"
printf 'hello from alice\n' >"$tmp/hello.txt"
out=$(p11 --login --pin "alice:$ALICE_PW" --write-object "$tmp/hello.txt" \
    --type data --label hello --private 2>&1) ||
    die "alice could not write her object: $out"
indent <<<"$out"

step "5. alice lists her objects"
out=$(p11 --login --pin "alice:$ALICE_PW" -O 2>&1) ||
    die "alice could not list her objects: $out"
indent <<<"$out"
grep -q "label:.*hello" <<<"$out" || die "alice's listing does not show 'hello'"
say "alice sees 'hello'"

step "6. The crypto officer lists objects: it sees none"
# An SO login needs a read-write session (C_Login(CKU_SO) refuses while a
# read-only session is open), hence --session-rw.
out=$(p11 --session-rw --login --login-type so --so-pin "$SO_PIN" -O 2>&1) ||
    die "the CO's listing failed: $out"
indent <<<"$out"
if grep -q "hello" <<<"$out"; then
    die "the crypto officer can see alice's object"
fi
say "the CO sees no object"

step "7. The crypto officer tries to create an object: refused"
if out=$(p11 --login --login-type so --so-pin "$SO_PIN" \
    --write-object "$tmp/hello.txt" --type data --label co-object 2>&1); then
    indent <<<"$out"
    die "the crypto officer created an object"
fi
indent <<<"$out"
grep -q "C_CreateObject" <<<"$out" ||
    die "the CO's attempt failed before C_CreateObject (not the policy): $out"
ckr=$(grep -o 'CKR_[A-Z_]*' <<<"$out" | head -n 1 || true)
[ -n "$ckr" ] || die "no CKR_ code in pkcs11-tool's error: $out"
say "refused as expected: $ckr"

printf '\nquickstart: OK\n'
