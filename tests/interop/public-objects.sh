#!/bin/bash
# public-objects.sh - real clients read public objects before any login:
# alice stores an EC key pair (id 01), its certificate and a private data
# object; then, with no PIN anywhere, pkcs11-tool --read-object --type
# pubkey and --list-objects, libp11's engine (openssl pkey -pubin -in
# 'pkcs11:...') and p11tool --list-all-certs / --list-all see the
# certificate and the public key (the same key alice exported) and nothing
# private, and C_GenerateRandom works (pkcs11-tool --generate-random).
# With `public_objects = hidden` in nimbus.conf the same commands see
# nothing, and a login still sees everything.
# Exit: 0 pass, 1 fail, 77 skip, 99 hard error.
T=public-objects
. "$(dirname "$0")/common.sh"

need_cmd pkcs11-tool opensc
need_cmd openssl openssl
need_cmd p11tool gnutls-bin
need_engine
interop_setup
fresh_store "$tmp" alice "$ALICE_PW"
PIN=alice:$ALICE_PW
cd "$tmp" || die "cd $tmp"

p11() { t 60 pkcs11-tool --module "$MODULE" "$@"; }
u() { p11 --login --pin "$PIN" "$@"; }
URI_PUB="pkcs11:token=interop;object=web;type=public"
engine_conf "$tmp/engine.cnf"
# the engine with no PIN configured: OPENSSL_CONF names none, and stdin is
# empty so that a PIN prompt could not be answered
eng() {
    OPENSSL_CONF=$tmp/engine.cnf t 60 openssl "$@" </dev/null
}
# p11tool on this module only, never asking for a PIN
pt() {
    t 60 p11tool --provider "$MODULE" "$@" </dev/null
}

# ------------------------------------------------------------ alice's objects
expect_ok "alice generates an EC P-256 pair" \
    u --keypairgen --key-type EC:prime256v1 --id 01 --label web ||
    die "cannot make the key pair"
expect_ok "alice exports her public key" \
    u --read-object --type pubkey --id 01 -o alice-pub.der &&
    expect_ok "openssl reads it" \
        openssl pkey -pubin -inform DER -in alice-pub.der -out alice-pub.pem
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout ca.key -subj /CN=public-objects -days 2 -outform DER \
    -out cert.der >/dev/null 2>&1 || die "openssl cannot make a certificate"
expect_ok "alice stores a certificate" \
    u --write-object cert.der --type cert --id 01 --label webcert
printf 'secret notes' >notes.bin
expect_ok "alice stores a private data object" \
    u --write-object notes.bin --type data --label notes --private
expect_ok "alice sees her objects" u -O
check "alice lists her private key" "$out" "Private Key Object"
check "alice lists her data object" "$out" "Data object"

# ------------------------------------------------------------ public view
# visible (the default): certificate and public key, nothing private
expect_ok "pkcs11-tool reads the public key without --login" \
    p11 --read-object --type pubkey --id 01 -o pub.der &&
    if cmp -s pub.der alice-pub.der; then
        ok "it is the key alice exported"
    else
        bad "the public key read without login differs from alice's"
    fi
expect_ok "pkcs11-tool reads the certificate without --login" \
    p11 --read-object --type cert --id 01 -o cert-read.der &&
    if cmp -s cert-read.der cert.der; then
        ok "it is the certificate alice stored"
    else
        bad "the certificate read without login differs"
    fi
expect_ok "pkcs11-tool lists objects without --login" p11 -O
check "the public key is listed" "$out" "Public Key Object; EC"
check "the certificate is listed" "$out" "Certificate Object"
check_not "no private key without login" "$out" "Private Key Object"
check_not "no private data object without login" "$out" "notes"
expect_fail "the private data object is not readable" "." \
    p11 --read-object --type data --label notes
expect_ok "random bytes without --login" \
    p11 --generate-random 32 -o rand.bin
if [ "$(stat -c %s rand.bin 2>/dev/null)" = 32 ]; then
    ok "32 random bytes"
else
    bad "--generate-random wrote $(stat -c %s rand.bin 2>/dev/null) bytes"
fi

expect_ok "openssl's engine loads the public key with no PIN" \
    eng pkey -engine pkcs11 -inform engine -pubin -in "$URI_PUB" -pubout \
    -out engine-pub.pem
if cmp -s engine-pub.pem alice-pub.pem; then
    ok "the engine's key is alice's"
else
    bad "the engine's public key differs from alice's" \
        "$(cat engine-pub.pem 2>/dev/null)"
fi

expect_ok "p11tool --list-all-certs without login" \
    pt --list-all-certs "pkcs11:token=interop"
check "p11tool lists the certificate" "$out" "Label: webcert"
expect_ok "p11tool --list-all without login" \
    pt --list-all "pkcs11:token=interop"
check "p11tool lists the public key" "$out" "Type: Public key"
check "p11tool lists the certificate among all" "$out" "Type: X.509 Certificate"
check_not "p11tool lists no private key" "$out" "Type: Private key"
check_not "p11tool lists no data object" "$out" "Label: notes"

# ------------------------------------------------------------ hidden
store_conf_add "public_objects = hidden"
expect_fail "hidden: pkcs11-tool finds no public key" "." \
    p11 --read-object --type pubkey --id 01 -o hidden.der
expect_ok "hidden: pkcs11-tool lists objects" p11 -O
check_not "hidden: no public key listed" "$out" "Public Key Object"
check_not "hidden: no certificate listed" "$out" "Certificate Object"
expect_fail "hidden: no random bytes without a login" \
    "Could not generate random" p11 --generate-random 32 -o hidden-rand.bin
expect_fail "hidden: the engine finds no public key" "." \
    eng pkey -engine pkcs11 -inform engine -pubin -in "$URI_PUB" -pubout
pt --list-all-certs "pkcs11:token=interop" >pt.out 2>&1
check_not "hidden: p11tool lists no certificate" "$(cat pt.out)" "webcert"
pt --list-all "pkcs11:token=interop" >pt.out 2>&1
check_not "hidden: p11tool lists no public key" "$(cat pt.out)" "Public key"
expect_ok "hidden: alice still sees her objects" u -O
check "hidden: alice lists the public key" "$out" "Public Key Object; EC"
check "hidden: alice lists the certificate" "$out" "Certificate Object"

finish
