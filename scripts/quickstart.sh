#!/bin/bash
# quickstart.sh - build Nimbus HSM and walk through its user model with the
# real pkcs11-tool (OpenSC) on a throwaway store.
#
# On a bare Debian/Ubuntu machine it first installs what is missing (with
# apt-get; through sudo when not root). Then it builds out of tree, in
# build-quickstart/ beside the sources (autoreconf if there is no
# configure, configure if build-quickstart/ has no Makefile, make), so that
# it and scripts/test.sh (build-strict/, build-sanitize/) run in any order
# in one clone; an in-place configuration of the sources (./configure run
# there) stops out-of-tree builds and is removed first with make distclean.
# Then it makes a store in a temporary directory (removed at exit) and shows:
#   - the fresh, uninitialized token;
#   - activation and the crypto user alice, in one scripted run of the
#     management shell nimbus-mgmt (loginHSM PRECO, changePswd, createUser);
#   - alice writes a private data object "hello" and lists it;
#   - the CO sees no object and is refused when it tries to create one;
#   - alice generates an EC P-256 key pair, signs a file on the token, and
#     openssl verifies the signature with the exported public key.
# It fails if any of that does not happen as described.
#
# Usage: scripts/quickstart.sh   (from anywhere; builds beside where it lives)
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
    sqlite3 openssl; do
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
        die "no apt-get here: install the equivalents of build-essential autoconf automake libtool pkg-config libssl-dev libsqlite3-dev libp11-kit-dev libcmocka-dev opensc sqlite3 openssl yourself"
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
        libsqlite3-dev libp11-kit-dev libcmocka-dev opensc sqlite3 openssl
fi

# --------------------------------------------------------------- build
build=$srcdir/build-quickstart
step "Building Nimbus in $build"
cd "$srcdir"
if [ -f config.status ]; then
    say "the sources are configured in place: make distclean there first"
    make distclean >/dev/null 2>&1 || rm -f config.status
fi
if [ ! -x configure ]; then
    say "no configure script: running autoreconf -fi"
    autoreconf -fi
fi
mkdir -p "$build"
cd "$build"
if [ ! -f Makefile ]; then
    say "running ../configure"
    "$srcdir/configure"
else
    say "already configured (make reruns configure if it changed)"
fi
make -j"$(nproc)"
module=$build/.libs/libnimbus-pkcs11.so
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

step "2. Activation and crypto user alice, in one nimbus-mgmt run"
mgmt=$build/nimbus-mgmt
[ -x "$mgmt" ] || die "the build did not produce $mgmt"
say "\$ nimbus-mgmt -y -c 'loginHSM PRECO admin password; changePswd PRECO admin ...; createUser CU alice ...; listUsers; logoutHSM'"
out=$("$mgmt" -y -c "loginHSM PRECO admin password; changePswd PRECO admin $SO_PIN; createUser CU alice $ALICE_PW; listUsers; logoutHSM" 2>&1) ||
    die "nimbus-mgmt failed: $out"
indent <<<"$out"
grep -q "PCO *admin" <<<"$out" || die "admin did not become the primary CO"
grep -q "CU *alice" <<<"$out" || die "alice was not created"

step "3. alice writes a private data object labelled 'hello'"
printf 'hello from alice\n' >"$tmp/hello.txt"
out=$(p11 --login --pin "alice:$ALICE_PW" --write-object "$tmp/hello.txt" \
    --type data --label hello --private 2>&1) ||
    die "alice could not write her object: $out"
indent <<<"$out"

step "4. alice lists her objects"
out=$(p11 --login --pin "alice:$ALICE_PW" -O 2>&1) ||
    die "alice could not list her objects: $out"
indent <<<"$out"
grep -q "label:.*hello" <<<"$out" || die "alice's listing does not show 'hello'"
say "alice sees 'hello'"

step "5. The crypto officer lists objects: it sees none"
# An SO login needs a read-write session (C_Login(CKU_SO) refuses while a
# read-only session is open), hence --session-rw.
out=$(p11 --session-rw --login --login-type so --so-pin "$SO_PIN" -O 2>&1) ||
    die "the CO's listing failed: $out"
indent <<<"$out"
if grep -q "hello" <<<"$out"; then
    die "the crypto officer can see alice's object"
fi
say "the CO sees no object"

step "6. The crypto officer tries to create an object: refused"
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

step "7. alice generates an EC P-256 key pair on the token"
out=$(p11 --login --pin "alice:$ALICE_PW" --keypairgen --key-type EC:prime256v1 \
    --id 01 --label alice-ec 2>&1) || die "key generation failed: $out"
indent <<<"$out"

step "8. alice signs a file on the token (ECDSA with SHA-256)"
printf 'a document alice signs\n' >"$tmp/doc.txt"
out=$(p11 --login --pin "alice:$ALICE_PW" --sign --id 01 \
    --mechanism ECDSA-SHA256 --signature-format openssl \
    --input-file "$tmp/doc.txt" --output-file "$tmp/doc.sig" 2>&1) ||
    die "signing failed: $out"
indent <<<"$out"

step "9. openssl verifies the signature with the exported public key"
out=$(p11 --login --pin "alice:$ALICE_PW" --read-object --type pubkey --id 01 \
    --output-file "$tmp/alice-ec.der" 2>&1) || die "export failed: $out"
openssl pkey -pubin -inform DER -in "$tmp/alice-ec.der" -out "$tmp/alice-ec.pem" ||
    die "openssl cannot read the exported public key"
say "\$ openssl dgst -sha256 -verify alice-ec.pem -signature doc.sig doc.txt"
out=$(openssl dgst -sha256 -verify "$tmp/alice-ec.pem" \
    -signature "$tmp/doc.sig" "$tmp/doc.txt" 2>&1) ||
    die "openssl does not verify the token's signature: $out"
indent <<<"$out"

printf '\nquickstart: OK\n'
