#!/bin/bash
# openssl.sh - OpenSSL 3 with libp11's pkcs11 engine (openssl.cnf names the
# engine and MODULE_PATH = the installed module): keys named by pkcs11:
# URIs with pin-value=alice:<password>. `openssl dgst` signs with RSA
# (PKCS#1 v1.5 and PSS) and ECDSA, `openssl pkeyutl` signs a hash and
# decrypts (PKCS#1 v1.5 and OAEP), `openssl req` makes a self-signed
# certificate with the RSA key and a CSR with the EC key. Every result is
# checked outside the token, by openssl with the public keys exported by
# pkcs11-tool; a wrong PIN in the URI is refused.
#
# Note: the openssl command line makes the engine the default for every
# algorithm (ENGINE_set_default(e, ENGINE_METHOD_ALL)), so the module's own
# OpenSSL calls, in its private library context, must not be routed to the
# engine's legacy RSA/EC methods.
# Exit: 0 pass, 1 fail, 77 skip, 99 hard error.
T=openssl
. "$(dirname "$0")/common.sh"

need_engine
need_cmd pkcs11-tool opensc
interop_setup
fresh_store "$tmp" alice "$ALICE_PW"
cd "$tmp" || die "cd $tmp"
PIN=alice:$ALICE_PW
engine_conf "$tmp/openssl.cnf"
export OPENSSL_CONF=$tmp/openssl.cnf

u() { t 60 pkcs11-tool --module "$MODULE" --login --pin "$PIN" "$@"; }
for k in "rsa:2048 01 rsa" "EC:prime256v1 02 ec"; do
    set -- $k
    u --keypairgen --key-type "$1" --id "$2" --label "$3" >/dev/null 2>&1 ||
        die "pkcs11-tool could not generate the $3 key"
    u --read-object --type pubkey --id "$2" -o "$3.der" >/dev/null 2>&1 &&
        openssl pkey -pubin -inform DER -in "$3.der" -out "$3.pem" ||
        die "cannot export the $3 public key"
done
RSA="pkcs11:token=interop;object=rsa;type=private;pin-value=$PIN"
EC="pkcs11:token=interop;object=ec;type=private;pin-value=$PIN"
# e CMD ARGS...: an openssl command with the engine and a token key
e() {
    local cmd=$1
    shift
    t 60 openssl "$cmd" -engine pkcs11 -keyform engine "$@"
}
# verified WHAT CMD...: CMD (an openssl verification) says it verified
verified() {
    local what=$1
    shift
    if out=$("$@" 2>&1) &&
        grep -Eq "Verified OK|Verified Successfully|: OK$|verify OK" \
            <<<"$out"; then
        ok "$what"
    else
        bad "$what" "$out"
    fi
}

head -c 5000 /dev/urandom >data
openssl dgst -sha256 -binary data >data.sha256

# ------------------------------------------------------------ dgst
if expect_ok "openssl dgst -sign (RSA, SHA-256, PKCS#1 v1.5)" \
    e dgst -sha256 -sign "$RSA" -out s.rsa data; then
    verified "the RSA signature verifies with the exported key" \
        openssl dgst -sha256 -verify rsa.pem -signature s.rsa data
fi
PSS=(-sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32)
if expect_ok "openssl dgst -sign (RSA-PSS, SHA-256, salt 32)" \
    e dgst -sha256 "${PSS[@]}" -sign "$RSA" -out s.pss data; then
    verified "the RSA-PSS signature verifies" \
        openssl dgst -sha256 "${PSS[@]}" -verify rsa.pem -signature s.pss data
    if openssl dgst -sha256 -verify rsa.pem -signature s.pss data \
        >/dev/null 2>&1; then
        bad "the PSS signature also verifies as PKCS#1 v1.5"
    fi
fi
if expect_ok "openssl dgst -sign (ECDSA P-256, SHA-256)" \
    e dgst -sha256 -sign "$EC" -out s.ec data; then
    verified "the ECDSA signature verifies" \
        openssl dgst -sha256 -verify ec.pem -signature s.ec data
fi

# ------------------------------------------------------------ pkeyutl
if expect_ok "openssl pkeyutl -sign (ECDSA on a hash)" \
    e pkeyutl -sign -inkey "$EC" -in data.sha256 -out s.ec2; then
    verified "pkeyutl's ECDSA signature verifies" openssl pkeyutl -verify \
        -pubin -inkey ec.pem -in data.sha256 -sigfile s.ec2
fi
if expect_ok "openssl pkeyutl -sign (RSA, digest sha256)" \
    e pkeyutl -sign -inkey "$RSA" -pkeyopt digest:sha256 \
    -in data.sha256 -out s.rsa2; then
    verified "pkeyutl's RSA signature verifies" \
        openssl dgst -sha256 -verify rsa.pem -signature s.rsa2 data
fi
if expect_ok "openssl pkeyutl -sign (RSA-PSS on a hash)" \
    e pkeyutl -sign -inkey "$RSA" -pkeyopt digest:sha256 \
    -pkeyopt rsa_padding_mode:pss -pkeyopt rsa_pss_saltlen:-1 \
    -in data.sha256 -out s.pss2; then
    verified "pkeyutl's RSA-PSS signature verifies" \
        openssl dgst -sha256 -sigopt rsa_padding_mode:pss \
        -sigopt rsa_pss_saltlen:-1 -verify rsa.pem -signature s.pss2 data
fi
printf 'for the token only\n' >msg
openssl pkeyutl -encrypt -pubin -inkey rsa.pem -in msg -out msg.v15 ||
    die "openssl pkeyutl -encrypt"
if expect_ok "openssl pkeyutl -decrypt (RSA PKCS#1 v1.5)" \
    e pkeyutl -decrypt -inkey "$RSA" -in msg.v15 -out msg.1; then
    cmp -s msg msg.1 && ok "the plaintext is back" ||
        bad "pkeyutl -decrypt gave other bytes"
fi
OAEP=(-pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256
    -pkeyopt rsa_mgf1_md:sha256)
openssl pkeyutl -encrypt -pubin -inkey rsa.pem "${OAEP[@]}" -in msg \
    -out msg.oaep || die "openssl pkeyutl -encrypt (OAEP)"
if expect_ok "openssl pkeyutl -decrypt (RSA-OAEP SHA-256)" \
    e pkeyutl -decrypt -inkey "$RSA" "${OAEP[@]}" -in msg.oaep -out msg.2; then
    cmp -s msg msg.2 && ok "the OAEP plaintext is back" ||
        bad "pkeyutl -decrypt (OAEP) gave other bytes"
fi

# ------------------------------------------------------------ req
if expect_ok "openssl req -x509: self-signed certificate with the RSA key" \
    e req -new -x509 -key "$RSA" -sha256 -days 2 -subj /CN=nimbus-rsa \
    -out cert.pem; then
    verified "openssl verify accepts the self-signed certificate" \
        openssl verify -CAfile cert.pem cert.pem
    if [ "$(openssl x509 -in cert.pem -noout -pubkey)" = "$(cat rsa.pem)" ]
    then
        ok "the certificate's key is the token's RSA key"
    else
        bad "the certificate holds another key"
    fi
fi
if expect_ok "openssl req: CSR with the EC key" \
    e req -new -key "$EC" -sha256 -subj /CN=nimbus-ec -out req.pem; then
    verified "the CSR's self-signature verifies" \
        openssl req -verify -noout -in req.pem
    if [ "$(openssl req -in req.pem -noout -pubkey)" = "$(cat ec.pem)" ]; then
        ok "the CSR's key is the token's EC key"
    else
        bad "the CSR holds another key"
    fi
fi

# ------------------------------------------------------------ wrong PIN
if out=$(e dgst -sha256 -sign "${RSA%pin-value=*}pin-value=alice:wrong-pw1" \
    -out s.bad data 2>&1); then
    bad "a wrong pin-value signs" "$out"
else
    check "a wrong pin-value is refused" "$out" \
        "PIN incorrect"
fi

finish
