#!/bin/bash
# java.sh - Java 17 SunPKCS11 against the installed module. The provider
# configuration names the module (name, library, slot). keytool, through
# the PKCS11 key store, generates an RSA-2048 and an EC P-256 key pair on
# the token with a self-signed certificate each (signed on the token and
# stored beside the keys) and an AES-256 key; `keytool -list` shows the two
# PrivateKeyEntry (key pairs with their certificates) and the
# SecretKeyEntry; pkcs11-tool shows that each certificate is stored under
# its private key's CKA_ID; openssl verifies the self-signed certificates
# (made by the token key). Then NimbusTest.java (compiled with javac into
# the test's directory) signs and verifies with SHA256withRSA, RSASSA-PSS
# and SHA256withECDSA, encrypts with AES/GCM/NoPadding, signs from 8
# threads at once, and is refused with a wrong PIN. (-XX:-UsePerfData: no
# hsperfdata files in /tmp.)
# Exit: 0 pass, 1 fail, 77 skip, 99 hard error.
T=java
. "$(dirname "$0")/common.sh"

need_cmd java openjdk-17-jdk-headless
need_cmd javac openjdk-17-jdk-headless
need_cmd keytool openjdk-17-jdk-headless
need_cmd pkcs11-tool opensc
need_cmd openssl openssl
jv=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1)
[ -n "$jv" ] && [ "$jv" -ge 17 ] ||
    skip "Java 17 or later is needed (java -version says '$jv')"
interop_setup
fresh_store "$tmp" alice "$ALICE_PW"
cd "$tmp" || die "cd $tmp"
PIN=alice:$ALICE_PW

cat >nimbus-java.cfg <<EOF
name = Nimbus
library = $MODULE
slot = 0
EOF
kt() {
    t 120 keytool -J-XX:-UsePerfData -keystore NONE -storetype PKCS11 \
        -addprovider SunPKCS11 \
        -providerArg "$tmp/nimbus-java.cfg" -storepass "$PIN" "$@"
}

# ------------------------------------------------------------ keytool
expect_ok "keytool -genkeypair RSA 2048 on the token" \
    kt -genkeypair -alias jrsa -keyalg RSA -keysize 2048 \
    -sigalg SHA256withRSA -dname CN=jrsa -validity 2
expect_ok "keytool -genkeypair EC P-256 on the token" \
    kt -genkeypair -alias jec -keyalg EC -groupname secp256r1 \
    -sigalg SHA256withECDSA -dname CN=jec -validity 2
expect_ok "keytool -genseckey AES 256 on the token" \
    kt -genseckey -alias jaes -keyalg AES -keysize 256
if expect_ok "keytool -list" kt -list; then
    check "keytool lists the RSA key pair" "$out" "^jrsa, PrivateKeyEntry"
    check "keytool lists the EC key pair" "$out" "^jec, PrivateKeyEntry"
    check "keytool lists the AES key" "$out" "^jaes, SecretKeyEntry"
    check "three entries" "$out" "contains 3 entries"
fi

# the certificates: stored under their private keys' CKA_ID, and verified
listing=$(t 60 pkcs11-tool --module "$MODULE" --login --pin "$PIN" -O 2>&1)
# ids KIND: "label id" of each such object pkcs11-tool shows
ids() {
    awk -v kind="$1" '
        /Object;/ { k = (index($0, kind) == 1); lab = "" }
        k && /^  label:/ { lab = $2 }
        k && /^  ID:/ { print lab, $2 }
    ' <<<"$listing"
}
for a in jrsa jec; do
    cid=$(ids "Certificate Object" | awk -v a="$a" '$1 == a { print $2 }')
    if [ -n "$cid" ] && ids "Private Key Object" | awk '{ print $NF }' |
        grep -qx "$cid"; then
        ok "$a: the certificate has its private key's CKA_ID ($cid)"
    else
        bad "$a: no private key has the certificate's ID '$cid'" "$listing"
    fi
    if kt -exportcert -rfc -alias "$a" -file "$a.pem" >/dev/null 2>&1; then
        out=$(openssl verify -CAfile "$a.pem" "$a.pem" 2>&1)
        check "openssl verifies $a's certificate (self-signed on the token)" \
            "$out" ": OK$"
    else
        bad "keytool -exportcert $a failed"
    fi
done

# ------------------------------------------------------------ NimbusTest
mkdir -p classes
if ! out=$(t 120 javac -J-XX:-UsePerfData -d classes \
    "$srcdir/tests/interop/NimbusTest.java" 2>&1); then
    die "javac NimbusTest.java failed: $out"
fi
out=$(t 180 java -XX:-UsePerfData -cp classes NimbusTest \
    "$tmp/nimbus-java.cfg" "$PIN" jrsa jec jaes 2>&1)
rc=$?
printf '%s\n' "$out"
if [ $rc -ne 0 ]; then
    bad "NimbusTest exited with status $rc"
fi
check "NimbusTest: all checks passed" "$out" "^all Java checks passed$"

finish
