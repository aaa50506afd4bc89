#!/bin/bash
# pkcs11-tool.sh - OpenSC's pkcs11-tool against the installed module: the
# slot, token and mechanism lists; RSA-2048 and EC P-256 pairs generated on
# the token; RSA-PKCS (over a DigestInfo), SHA256-RSA-PKCS, RSA-PSS (hash
# and sign, and on a hash) and ECDSA (on a hash, and ECDSA-SHA256)
# signatures, each verified by openssl with the public key exported from
# the token; RSA-PKCS and RSA-OAEP decryption of what openssl encrypted;
# an AES-256 key written to the token, AES-CBC-PAD both ways against
# `openssl enc`; the tool's own --test (with --allow-sw: Nimbus is a
# software token, so no mechanism has CKF_HW, and pkcs11-tool skips the
# signature tests without it), --test-ec, --test-fork and --test-threads;
# a wrong PIN refused.
# Exit: 0 pass, 1 fail, 77 skip, 99 hard error.
T=pkcs11-tool
. "$(dirname "$0")/common.sh"

need_cmd pkcs11-tool opensc
need_cmd openssl openssl
interop_setup
fresh_store "$tmp" alice "$ALICE_PW"
PIN=alice:$ALICE_PW
cd "$tmp" || die "cd $tmp"

p11() { t 60 pkcs11-tool --module "$MODULE" "$@"; }
# u ARGS...: as alice
u() { p11 --login --pin "$PIN" "$@"; }

# ------------------------------------------------------------ listings
expect_ok "-L lists the slot" p11 -L &&
    check "the slot is Nimbus's" "$out" "Nimbus HSM slot 0"
check "the slot shows the activated token" "$out" "token label +: interop"
check "token flags" "$out" "token initialized, PIN initialized"
expect_ok "-T lists the token" p11 -T &&
    check "-T shows the token" "$out" "token label +: interop"
expect_ok "-M lists mechanisms" p11 -M
for m in RSA-PKCS-KEY-PAIR-GEN RSA-PKCS RSA-PKCS-PSS SHA256-RSA-PKCS \
    SHA256-RSA-PKCS-PSS RSA-PKCS-OAEP ECDSA-KEY-PAIR-GEN ECDSA ECDSA-SHA256 \
    AES-KEY-GEN AES-CBC-PAD AES-GCM SHA256; do
    check "mechanism $m listed" "$out" "^  $m, "
done

# ------------------------------------------------------------ key pairs
expect_ok "generate RSA-2048 on the token" \
    u --keypairgen --key-type rsa:2048 --id 01 --label rsa &&
    check "the RSA pair is 2048 bits" "$out" "RSA 2048 bits"
expect_ok "generate EC P-256 on the token" \
    u --keypairgen --key-type EC:prime256v1 --id 02 --label ec &&
    check "the EC pair is on P-256" "$out" "EC_PARAMS: +06082a8648ce3d030107"
expect_ok "alice lists her keys" u -O
check "RSA private key listed" "$out" "Private Key Object; RSA"
check "EC private key listed" "$out" "Private Key Object; EC"
check "private keys are sensitive" "$out" "Access: +sensitive"

for k in rsa:01 ec:02; do
    n=${k%%:*}
    expect_ok "export the $n public key" \
        u --read-object --type pubkey --id "${k#*:}" -o "$n.der" &&
        expect_ok "openssl reads the $n public key" \
            openssl pkey -pubin -inform DER -in "$n.der" -out "$n.pem"
done
check "the exported RSA key is 2048 bits" \
    "$(openssl pkey -pubin -in rsa.pem -text -noout 2>&1)" "2048 bit"
check "the exported EC key is P-256" \
    "$(openssl pkey -pubin -in ec.pem -text -noout 2>&1)" "prime256v1"

# ------------------------------------------------------------ signatures
head -c 3000 /dev/urandom >data
openssl dgst -sha256 -binary data >data.sha256
# DigestInfo(SHA-256) || hash: what RSA-PKCS signs for an RSA signature
{
    printf '\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01'
    printf '\x05\x00\x04\x20'
    cat data.sha256
} >data.di
# sign_verify WHAT KEYID MECH INPUT PEM OPENSSL-OPTS... -- P11-OPTS...
sign_verify() {
    local what=$1 id=$2 mech=$3 in=$4 pem=$5 sig=sig.$RANDOM
    local -a vopts=() popts=()
    shift 5
    while [ $# -gt 0 ] && [ "$1" != -- ]; do
        vopts+=("$1")
        shift
    done
    [ $# -gt 0 ] && shift
    popts=("$@")
    if ! expect_ok "$what: sign on the token" u --sign --id "$id" -m "$mech" \
        ${popts[@]+"${popts[@]}"} -i "$in" -o "$sig"; then
        return
    fi
    expect_ok "$what: openssl verifies" openssl dgst -sha256 \
        ${vopts[@]+"${vopts[@]}"} -verify "$pem" -signature "$sig" data
    # and a signature over other data does not verify
    {
        cat data
        printf x
    } >"$sig.data"
    if openssl dgst -sha256 ${vopts[@]+"${vopts[@]}"} -verify "$pem" \
        -signature "$sig" "$sig.data" >/dev/null 2>&1; then
        bad "$what: the signature also verifies for other data"
    fi
}
sign_verify "RSA-PKCS" 01 RSA-PKCS data.di rsa.pem
sign_verify "SHA256-RSA-PKCS" 01 SHA256-RSA-PKCS data rsa.pem
sign_verify "SHA256-RSA-PKCS-PSS" 01 SHA256-RSA-PKCS-PSS data rsa.pem \
    -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest
sign_verify "RSA-PKCS-PSS on a SHA-256 hash" 01 RSA-PKCS-PSS data.sha256 \
    rsa.pem -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest \
    -- --hash-algorithm SHA256 --mgf MGF1-SHA256
sign_verify "ECDSA on a SHA-256 hash" 02 ECDSA data.sha256 ec.pem \
    -- --signature-format openssl
sign_verify "ECDSA-SHA256" 02 ECDSA-SHA256 data ec.pem \
    -- --signature-format openssl

# ------------------------------------------------------------ decryption
printf 'a secret for alice only\n' >msg
openssl pkeyutl -encrypt -pubin -inkey rsa.pem -in msg -out msg.pkcs1 ||
    die "openssl pkeyutl -encrypt"
if expect_ok "RSA-PKCS decrypt on the token" \
    u --decrypt --id 01 -m RSA-PKCS -i msg.pkcs1 -o msg.1; then
    cmp -s msg msg.1 && ok "RSA-PKCS: the plaintext is back" ||
        bad "RSA-PKCS decryption gave other bytes"
fi
openssl pkeyutl -encrypt -pubin -inkey rsa.pem -in msg -out msg.oaep \
    -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 \
    -pkeyopt rsa_mgf1_md:sha256 || die "openssl pkeyutl -encrypt (OAEP)"
if expect_ok "RSA-PKCS-OAEP (SHA-256) decrypt on the token" \
    u --decrypt --id 01 -m RSA-PKCS-OAEP --hash-algorithm SHA256 \
    --mgf MGF1-SHA256 -i msg.oaep -o msg.2; then
    cmp -s msg msg.2 && ok "RSA-OAEP: the plaintext is back" ||
        bad "RSA-OAEP decryption gave other bytes"
fi

# ------------------------------------------------------------ AES
openssl rand 32 >aes.key
K=$(od -An -v -tx1 aes.key | tr -d ' \n')
IV=$(openssl rand -hex 16)
expect_ok "write an AES-256 key to the token" \
    u --write-object aes.key --type secrkey --key-type AES:32 --id 03 \
    --label aes --usage-decrypt
head -c 1000 /dev/urandom >plain
if expect_ok "AES-CBC-PAD encrypt on the token" \
    u --encrypt --id 03 -m AES-CBC-PAD --iv "$IV" -i plain -o c.tok; then
    if openssl enc -d -aes-256-cbc -K "$K" -iv "$IV" -in c.tok -out p.ossl &&
        cmp -s plain p.ossl; then
        ok "openssl enc decrypts what the token encrypted"
    else
        bad "openssl enc cannot decrypt the token's AES-CBC-PAD"
    fi
fi
openssl enc -aes-256-cbc -K "$K" -iv "$IV" -in plain -out c.ossl ||
    die "openssl enc"
if expect_ok "AES-CBC-PAD decrypt on the token" \
    u --decrypt --id 03 -m AES-CBC-PAD --iv "$IV" -i c.ossl -o p.tok; then
    cmp -s plain p.tok && ok "the token decrypts what openssl enc encrypted" ||
        bad "the token's AES-CBC-PAD decryption gave other bytes"
fi

# ------------------------------------------------------------ key separation
# pkcs11-tool asks CKA_WRAP and CKA_DECRYPT together when told both usages:
# the token refuses such a key; a wrap-only key is made and says so.
expect_fail "an AES key that would wrap and decrypt is refused" \
    "CKR_TEMPLATE_INCONSISTENT" \
    u --keygen --key-type AES:32 --label kek-both --usage-wrap --usage-decrypt
if expect_ok "a wrap-only AES key is generated" \
    u --keygen --key-type AES:32 --label kek --usage-wrap; then
    check "it wraps and unwraps" "$out" "Usage:.*wrap, unwrap"
    check_not "it neither encrypts nor decrypts" "$out" "Usage:.*crypt"
fi
expect_ok "no key kek-both was left behind" u -O &&
    check_not "the listing has no kek-both" "$out" "kek-both"

# ------------------------------------------------------------ tool tests
if expect_ok "pkcs11-tool --test --allow-sw" u --test --allow-sw; then
    check "--test: no errors" "$out" "^No errors"
    check "--test ran the RSA signature tests" "$out" "SHA256-RSA-PKCS: OK"
    n=$(grep -c '^    RSA-PKCS: OK' <<<"$out")
    [ "$n" -ge 3 ] && ok "--test: RSA-PKCS sign, verify and decrypt OK" ||
        bad "--test: RSA-PKCS OK in $n of 3 sections" "$out"
fi
# --test-ec generates a token key pair (hence a read-write session),
# signs with ECDSA-SHA1 (length query, a too-short buffer, C_SignFinal,
# a new C_SignInit, C_Sign), changes attributes and destroys the pair.
if expect_ok "pkcs11-tool --test-ec" u --session-rw --test-ec --id 0e \
    --key-type EC:prime256v1; then
    check "--test-ec: OK" "$out" "^==> OK"
fi
if expect_ok "pkcs11-tool --test-fork" p11 --test-fork -L; then
    check "--test-fork: C_Initialize in the child" "$out" \
        "Calling C_Initialize in forked child"
fi
# three threads that each C_Initialize with CKF_OS_LOCKING_OK, C_GetInfo,
# C_GetSlotList and C_GetTokenInfo, while the main thread logs in and
# lists objects (pkcs11-tool waits a fixed 30 s when a thread is still
# running at its end: the time limit allows for that)
if expect_ok "pkcs11-tool --test-threads" t 120 pkcs11-tool \
    --module "$MODULE" --test-threads ILGISLT0 --test-threads ILGISLT0 \
    --test-threads ILGISLT0 --login --pin "$PIN" -O; then
    check "--test-threads: every thread ended with CKR_OK" "$out" \
        "all threads have ended with CKR_OK"
    n=$(grep -c 'returning rv = 0' <<<"$out")
    [ "$n" -eq 3 ] && ok "three threads returned 0" ||
        bad "$n threads of 3 returned 0" "$out"
fi

# ------------------------------------------------------------ wrong PIN
expect_fail "a wrong PIN is refused" "CKR_PIN_INCORRECT" \
    p11 --login --pin alice:wrong-pw1 -O
expect_fail "an unknown user is refused the same way" "CKR_PIN_INCORRECT" \
    p11 --login --pin mallory:"$ALICE_PW" -O
expect_ok "the right PIN still works" u -O &&
    check "and shows the keys" "$out" "label: +rsa"

finish
