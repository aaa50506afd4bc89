#!/bin/bash
# two-users.sh - two crypto users on one token. alice and bob each generate
# key pairs with pkcs11-tool; neither sees the other's private keys (each
# sees both users' public keys, which are not private objects), and bob
# cannot use alice's key by its id. alice shares her RSA key with bob with
# nimbus-mgmt (findAllKeys and getAttribute find its key handle, shareKey
# shares it); then bob sees it, signs with it through OpenSSL (libp11's
# pkcs11 engine, a pkcs11: URI with bob's PIN), the signature verifies
# with alice's public key, and bob still cannot delete it. alice's other
# key stays hidden from bob. After alice stops sharing, bob cannot sign.
# Exit: 0 pass, 1 fail, 77 skip, 99 hard error.
T=two-users
. "$(dirname "$0")/common.sh"

need_cmd pkcs11-tool opensc
need_engine
interop_setup
fresh_store "$tmp" alice "$ALICE_PW" bob "$BOB_PW"
cd "$tmp" || die "cd $tmp"
engine_conf "$tmp/openssl.cnf"
export OPENSSL_CONF=$tmp/openssl.cnf

as() { # as USER PASSWORD ARGS...: pkcs11-tool logged in as USER
    local u=$1 pw=$2
    shift 2
    t 60 pkcs11-tool --module "$MODULE" --login --pin "$u:$pw" "$@"
}
A() { as alice "$ALICE_PW" "$@"; }
B() { as bob "$BOB_PW" "$@"; }

expect_ok "alice generates RSA-2048 a-rsa" \
    A --keypairgen --key-type rsa:2048 --id a1 --label a-rsa
expect_ok "alice generates EC P-256 a-ec" \
    A --keypairgen --key-type EC:prime256v1 --id a2 --label a-ec
expect_ok "bob generates RSA-2048 b-rsa" \
    B --keypairgen --key-type rsa:2048 --id b1 --label b-rsa

# privkeys WHO: the labels of the private keys WHO sees
privkeys() {
    "$@" -O --type privkey 2>&1 | sed -n 's/^ *label: *//p' | sort | tr '\n' ' '
}
pubkeys() {
    "$@" -O --type pubkey 2>&1 | sed -n 's/^ *label: *//p' | sort | tr '\n' ' '
}
seen=$(privkeys A)
[ "$seen" = "a-ec a-rsa " ] && ok "alice sees only her private keys" ||
    bad "alice sees the private keys '$seen'"
seen=$(privkeys B)
[ "$seen" = "b-rsa " ] && ok "bob sees only his private key" ||
    bad "bob sees the private keys '$seen'"
seen=$(pubkeys B)
[ "$seen" = "a-ec a-rsa b-rsa " ] && ok "bob sees every CU's public keys" ||
    bad "bob sees the public keys '$seen'"

head -c 3000 /dev/urandom >data
expect_fail "bob cannot sign with alice's key by its id" \
    "[Pp]rivate key not found" \
    B --sign --id a1 -m SHA256-RSA-PKCS -i data -o x.sig
A --read-object --type pubkey --id a1 -o a-rsa.der >/dev/null 2>&1 &&
    openssl pkey -pubin -inform DER -in a-rsa.der -out a-rsa.pem ||
    die "cannot export alice's public key"
URI="pkcs11:token=interop;object=a-rsa;type=private;pin-value=bob:$BOB_PW"
bob_signs() {
    t 60 openssl dgst -sha256 -engine pkcs11 -keyform engine -sign "$URI" \
        -out "$1" data
}
if out=$(bob_signs before.sig 2>&1); then
    bad "bob signs with alice's key through OpenSSL before it is shared" "$out"
else
    ok "bob cannot load alice's key through OpenSSL before it is shared"
fi

# ------------------------------------------------------------ sharing
oid=$(key_oid alice "$ALICE_PW" 3 a-rsa)
bob_id=$(user_id bob)
[ -n "$oid" ] || die "nimbus-mgmt does not find alice's a-rsa private key"
[ -n "$bob_id" ] || die "nimbus-mgmt does not list bob"
out=$(mgmt "loginHSM CU bob $BOB_PW; shareKey $oid $bob_id 1")
check_not "bob cannot share alice's key with himself" "$out" \
    "shareKey success"
cmds="loginHSM CU alice $ALICE_PW; shareKey $oid $bob_id 1"
out=$(mgmt "$cmds; getKeyInfo -k $oid")
check "alice shares a-rsa (key $oid) with bob (user $bob_id)" "$out" \
    "shareKey success"
check "getKeyInfo shows the sharing" "$out" "Shared with 1 user\(s\): $bob_id"

seen=$(privkeys B)
[ "$seen" = "a-rsa b-rsa " ] && ok "bob now sees the shared key, not a-ec" ||
    bad "after sharing bob sees the private keys '$seen'"
if expect_ok "bob signs with the shared key through OpenSSL (engine)" \
    bob_signs shared.sig; then
    out=$(openssl dgst -sha256 -verify a-rsa.pem -signature shared.sig \
        data 2>&1)
    check "bob's signature verifies with alice's public key" "$out" \
        "Verified OK"
fi
# CKR_ACTION_PROHIBITED is 0x1b (PKCS#11 3.0); pkcs11-tool 0.23 has no name
# for it
expect_fail "bob cannot delete alice's shared key (CKR_ACTION_PROHIBITED)" \
    "CKR_ACTION_PROHIBITED|\(0x1b\)" B --delete-object --type privkey --id a1
expect_ok "bob signs with the shared key through pkcs11-tool too" \
    B --sign --id a1 -m SHA256-RSA-PKCS -i data -o p11.sig &&
    check "and it verifies" \
        "$(openssl dgst -sha256 -verify a-rsa.pem -signature p11.sig \
            data 2>&1)" \
        "Verified OK"

out=$(mgmt "loginHSM CU alice $ALICE_PW; shareKey $oid $bob_id 0")
check "alice stops sharing" "$out" "shareKey success"
if out=$(bob_signs after.sig 2>&1); then
    bad "bob still signs with alice's key after it is unshared" "$out"
else
    ok "bob can no longer use alice's key"
fi
seen=$(privkeys A)
[ "$seen" = "a-ec a-rsa " ] && ok "alice still has both keys" ||
    bad "alice sees the private keys '$seen'"

finish
