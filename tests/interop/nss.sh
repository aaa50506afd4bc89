#!/bin/bash
# nss.sh - NSS (certutil, modutil) uses the token: `modutil -add nimbus
# -libfile MODULE` registers the module in a fresh NSS database (sql:DIR);
# `certutil -K -h <token label> -f pwfile` lists the token's RSA and EC
# private keys by label, with the PIN (alice:<password>) from the file;
# `certutil -R -k <CKA_ID>` makes a certificate request for each token key,
# signed on the token (SHA-256; RSA PKCS#1 v1.5 and ECDSA). Each request's
# signature is verified by `openssl req -verify`, its public key must be the
# token's (exported by pkcs11-tool), and the token must hold no new key
# afterwards (certutil generated nothing). A wrong PIN lists nothing.
# Exit: 0 pass, 1 fail, 77 skip, 99 hard error.
T=nss
. "$(dirname "$0")/common.sh"

need_cmd certutil libnss3-tools
need_cmd modutil libnss3-tools
need_cmd pkcs11-tool opensc
need_cmd openssl openssl
interop_setup
fresh_store "$tmp" alice "$ALICE_PW"
PIN=alice:$ALICE_PW
cd "$tmp" || die "cd $tmp"

token_keypairs "rsa:2048 41 nss-rsa" "EC:prime256v1 42 nss-ec"

DB=sql:$tmp/nssdb
mkdir -p nssdb
t 60 certutil -N -d "$DB" --empty-password >/dev/null 2>&1 ||
    die "certutil -N could not make the NSS database"
echo "$PIN" >pwfile
echo "alice:wrong-pw-9" >pwfile-wrong
expect_ok "modutil -add nimbus -libfile MODULE" \
    t 60 modutil -dbdir "$DB" -add nimbus -libfile "$MODULE" -force
out=$(t 60 modutil -dbdir "$DB" -list nimbus 2>&1)
check "modutil lists the module and its token" "$out" "Token Name: interop +$"

keys() { t 60 certutil -K -d "$DB" -h interop -f "$1" 2>&1; }
out=$(keys pwfile)
check "certutil -K lists the token's RSA key" "$out" "^<.*> rsa .* nss-rsa$"
check "certutil -K lists the token's EC key" "$out" "^<.*> ec .* nss-ec$"
before=$(grep -c '^<' <<<"$out")
out=$(keys pwfile-wrong)
check_not "certutil -K with a wrong PIN lists no key" "$out" "nss-rsa|nss-ec"

for k in "41 nss-rsa" "42 nss-ec"; do
    set -- $k
    if ! out=$(t 60 certutil -R -d "$DB" -h interop -f pwfile -k "$1" \
        -s "CN=$2 on nimbus" -Z SHA256 -a -o "$2.csr" 2>&1); then
        bad "certutil -R -k $1 ($2) failed" "$out"
        continue
    fi
    ok "certutil -R made a request with the token key $2"
    out=$(openssl req -in "$2.csr" -verify -noout 2>&1)
    check "openssl req -verify: the $2 request's signature" "$out" \
        "verify OK"
    got=$(openssl req -in "$2.csr" -noout -pubkey 2>/dev/null)
    [ -n "$got" ] && [ "$got" = "$(cat "$2.pub")" ] &&
        ok "the $2 request holds the token's public key" ||
        bad "the $2 request holds another public key" "$got"
    out=$(openssl req -in "$2.csr" -noout -text 2>&1)
    check "the $2 request is signed with SHA-256" "$out" \
        "Signature Algorithm: (sha256WithRSAEncryption|ecdsa-with-SHA256)"
done
after=$(keys pwfile | grep -c '^<')
[ "$after" -eq "$before" ] && ok "the token holds the same $after keys" ||
    bad "the token's keys went from $before to $after"

finish
