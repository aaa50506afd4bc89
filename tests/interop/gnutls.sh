#!/bin/bash
# gnutls.sh - GnuTLS and p11-kit against the installed module.
#
# GnuTLS (the module given with --provider, the PIN in GNUTLS_PIN):
# p11tool --list-tokens shows the token, --login --list-all its objects;
# p11tool --generate-privkey makes an RSA-2048 and an ECDSA P-256 key on
# the token; certtool makes a self-signed certificate with the RSA key
# (certtool and openssl verify it; its key is the token's); gnutls-cli
# authenticates to a TLS server that requires a client certificate (openssl
# s_server -Verify, TLS 1.2 and 1.3), signing the handshake with the token
# key (once with the RSA key, once with an ECDSA certificate).
#
# p11-kit: the installed share/p11-kit/modules/nimbus.module is put where
# p11-kit reads module configurations (its module: line pointed at the
# installed prefix, which is not where `make install` put it). p11-kit
# ignores user configuration for root, so as root the test bind-mounts a
# copy of the system module directory plus nimbus.module over the real one
# in a private mount namespace (unshare -m; nothing on the system changes);
# as another user it uses ~/.config/pkcs11/modules with HOME in the test's
# directory. Then `p11-kit list-modules` shows Nimbus and its token,
# p11tool without --provider finds the token, and p11-kit-proxy.so exposes
# it to pkcs11-tool, which signs through it. Finally `p11-kit server`
# serves the token on a unix socket and pkcs11-tool, through
# p11-kit-client.so, signs over it (p11-kit 0.24's RPC carries only the
# mechanisms on its own list: CKM_ECDSA and CKM_SHA256_RSA_PKCS are, not
# CKM_ECDSA_SHA256). Every signature is verified by openssl.
# Exit: 0 pass, 1 fail, 77 skip, 99 hard error.
T=gnutls
. "$(dirname "$0")/common.sh"

need_cmd p11tool gnutls-bin
need_cmd certtool gnutls-bin
need_cmd gnutls-cli gnutls-bin
need_cmd p11-kit p11-kit
need_cmd pkcs11-tool opensc
need_cmd openssl openssl
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null ||
    gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
libdirs="/usr/lib/$arch /usr/lib64 /usr/lib"
find_lib() {
    local d
    for d in $libdirs; do
        for f in "$d/$1" "$d/pkcs11/$1"; do
            [ -f "$f" ] && echo "$f" && return 0
        done
    done
    return 1
}
PROXY=$(find_lib p11-kit-proxy.so) ||
    skip "p11-kit-proxy.so not found (apt-get install p11-kit)"
CLIENT=$(find_lib p11-kit-client.so) ||
    skip "p11-kit-client.so not found (apt-get install p11-kit)"
interop_setup
fresh_store "$tmp" alice "$ALICE_PW"
cd "$tmp" || die "cd $tmp"
export GNUTLS_PIN=alice:$ALICE_PW
TOK="pkcs11:token=interop"

p11t() { t 60 p11tool --provider "$MODULE" "$@"; }

# ------------------------------------------------------------ p11tool
if expect_ok "p11tool --list-tokens" p11t --list-tokens; then
    check "the token is listed" "$out" "Label: interop"
    check "made by Nimbus" "$out" "Manufacturer: Nimbus"
fi
expect_ok "p11tool --generate-privkey RSA --bits 2048" \
    p11t --login --generate-privkey RSA --bits 2048 --label gt-rsa \
    --id 21 --outfile gt-rsa.gen "$TOK"
expect_ok "p11tool --generate-privkey ECDSA --curve secp256r1" \
    p11t --login --generate-privkey ECDSA --curve secp256r1 --label gt-ec \
    --id 22 --outfile gt-ec.gen "$TOK"
if expect_ok "p11tool --login --list-all" p11t --login --list-all "$TOK"; then
    check "the RSA private key is listed" "$out" \
        "object=gt-rsa;type=private"
    check "as RSA-2048" "$out" "Private key \(RSA-2048\)"
    check "the ECDSA private key is listed" "$out" "object=gt-ec;type=private"
    check "on P-256" "$out" "Private key \(EC/ECDSA-SECP256R1\)"
fi
out=$(p11t --list-all "$TOK" 2>&1)
check_not "without login no private key is listed" "$out" "type=private"
for n in gt-rsa gt-ec; do
    p11t --login --export-pubkey "$TOK;object=$n;type=public" \
        --outfile "$n.pub" >/dev/null 2>&1 ||
        bad "p11tool cannot export the $n public key"
    if [ -s "$n.pub" ] && cmp -s "$n.pub" "$n.gen"; then
        ok "the exported $n public key is the generated one"
    else
        bad "the exported $n public key differs from the generated one"
    fi
done

# ------------------------------------------------------------ certtool
printf '%s\n' 'cn = "nimbus gnutls client"' 'serial = 7' \
    'expiration_days = 2' ca cert_signing_key signing_key tls_www_client \
    >client.tmpl
for n in gt-rsa gt-ec; do
    if expect_ok "certtool --generate-self-signed with the $n token key" \
        t 60 certtool --provider "$MODULE" --generate-self-signed \
        --load-privkey "$TOK;object=$n;type=private" \
        --template client.tmpl --outfile "$n.pem"; then
        out=$(certtool --verify --load-ca-certificate "$n.pem" \
            --infile "$n.pem" 2>&1)
        check "certtool verifies the $n certificate" "$out" \
            "Chain verification output: Verified"
        out=$(openssl verify -CAfile "$n.pem" "$n.pem" 2>&1)
        check "openssl verifies the $n certificate" "$out" ": OK$"
        if [ "$(openssl x509 -in "$n.pem" -noout -pubkey)" = \
            "$(openssl pkey -pubin -in "$n.pub" 2>/dev/null)" ]; then
            ok "the $n certificate holds the token key"
        else
            bad "the $n certificate holds another key"
        fi
    fi
done

# ------------------------------------------------------------ client auth
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout srv.key -out srv.pem -subj /CN=localhost -days 2 \
    -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1 || die "server cert"
cat gt-rsa.pem gt-ec.pem >clients.pem
start_s_server() {
    port=$(free_port)
    bg_start t 120 openssl s_server -accept "127.0.0.1:$port" -cert srv.pem \
        -key srv.key -Verify 1 -verify_return_error -CAfile clients.pem -www \
        >s_server.log 2>&1
    server_up "$bg_pid" s_server.log "$port"
}
with_free_ports start_s_server || die "openssl s_server did not start"
for c in "gt-rsa 1.2" "gt-rsa 1.3" "gt-ec 1.2" "gt-ec 1.3"; do
    set -- $c
    out=$(printf 'GET / HTTP/1.0\r\n\r\n' | t 30 gnutls-cli \
        --provider "$MODULE" --x509cafile srv.pem --x509certfile "$1.pem" \
        --x509keyfile "$TOK;object=$1;type=private" \
        --priority "NORMAL:-VERS-ALL:+VERS-TLS$2" -p "$port" 127.0.0.1 2>&1)
    check "gnutls-cli, TLS $2, client authentication with $1" "$out" \
        "Handshake was completed"
    # the -www page shows the certificate the server verified
    sent=$(sed -n '/^Client certificate/,/END CERTIFICATE/p' <<<"$out" |
        sed 1d | openssl x509 -noout -fingerprint -sha256 2>/dev/null)
    want=$(openssl x509 -in "$1.pem" -noout -fingerprint -sha256)
    [ -n "$sent" ] && [ "$sent" = "$want" ] &&
        ok "the server verified the $1 client certificate (TLS $2)" ||
        bad "the server did not get the $1 client certificate (TLS $2)" "$out"
done
# and without the token key the server refuses
out=$(printf 'GET / HTTP/1.0\r\n\r\n' | t 30 gnutls-cli --x509cafile srv.pem \
    -p "$port" 127.0.0.1 2>&1)
check_not "without a client certificate no page is served" "$out" \
    "^Client certificate"

# ------------------------------------------------------------ p11-kit
installed_so=$(sed -n 's/^module: *//p' "$P11KIT_CONF" 2>/dev/null)
case $installed_so in
*/pkcs11/libnimbus-pkcs11.so)
    ok "the installed nimbus.module names $installed_so"
    ;;
*) bad "the installed nimbus.module ($P11KIT_CONF) names '$installed_so'" ;;
esac
sed "s|^module:.*|module: $MODULE|" "$P11KIT_CONF" >nimbus.module
# pk CMD...: CMD where p11-kit reads nimbus.module among its module configs
p11kit_ready=
if [ "$(id -u)" -ne 0 ]; then
    mkdir -p home/.config/pkcs11/modules
    cp nimbus.module home/.config/pkcs11/modules/
    pk() { HOME=$tmp/home "$@"; }
    p11kit_ready=1
else
    sysdir=$(pkg-config --variable=p11_module_configs p11-kit-1 2>/dev/null)
    [ -n "$sysdir" ] || sysdir=/usr/share/p11-kit/modules
    if [ -d "$sysdir" ] && command -v unshare >/dev/null 2>&1 &&
        unshare -m true 2>/dev/null; then
        mkdir -p modules
        cp "$sysdir"/*.module modules/ 2>/dev/null
        cp nimbus.module modules/
        pk() {
            unshare -m /bin/sh -c 'mount --bind "$1" "$2" || exit 99
                shift 2; exec "$@"' sh "$tmp/modules" "$sysdir" "$@"
        }
        p11kit_ready=1
    fi
fi
if [ -n "$p11kit_ready" ]; then
    out=$(pk timeout -k 5 60 p11-kit list-modules 2>&1)
    check "p11-kit list-modules shows nimbus" "$out" "^nimbus: $MODULE"
    check "and its token" "$out" "token: interop"
    out=$(pk timeout -k 5 60 p11tool --list-tokens 2>&1)
    check "p11tool finds the token through p11-kit" "$out" "Label: interop"
    out=$(pk timeout -k 5 60 pkcs11-tool --module "$PROXY" -L 2>&1)
    check "p11-kit-proxy.so exposes the token" "$out" \
        "token label +: interop"
    head -c 2000 /dev/urandom >data
    if pk timeout -k 5 60 pkcs11-tool --module "$PROXY" \
        --token-label interop --login --pin "$GNUTLS_PIN" --sign --id 21 \
        -m SHA256-RSA-PKCS \
        -i data -o proxy.sig >proxy.out 2>&1; then
        out=$(openssl dgst -sha256 -verify gt-rsa.pub -signature proxy.sig \
            data 2>&1)
        check "a signature through p11-kit-proxy.so verifies" "$out" \
            "Verified OK"
    else
        bad "pkcs11-tool cannot sign through p11-kit-proxy.so" \
            "$(cat proxy.out)"
    fi
fi

# ------------------------------------------------------------ p11-kit server
sock=$tmp/p11kit.sock
bg_start t 120 p11-kit server -f --provider "$MODULE" -n "$sock" "$TOK" \
    >server.out 2>&1
for _ in $(seq 1 100); do
    [ -S "$sock" ] && break
    kill -0 "$bg_pid" 2>/dev/null || break
    sleep 0.1
done
if [ -S "$sock" ]; then
    ok "p11-kit server listens on $sock"
    export P11_KIT_SERVER_ADDRESS=unix:path=$sock
    c() {
        t 60 pkcs11-tool --module "$CLIENT" --token-label interop "$@"
    }
    out=$(c -L 2>&1)
    check "p11-kit-client.so shows the served token" "$out" \
        "token label +: interop"
    openssl dgst -sha256 -binary data >data.sha256
    if out=$(c --login --pin "$GNUTLS_PIN" --sign --id 22 -m ECDSA \
        --signature-format openssl -i data.sha256 -o srv-ec.sig 2>&1); then
        out=$(openssl dgst -sha256 -verify gt-ec.pub -signature srv-ec.sig \
            data 2>&1)
        check "ECDSA over the p11-kit socket verifies" "$out" "Verified OK"
    else
        bad "pkcs11-tool cannot sign (ECDSA) over the p11-kit socket" "$out"
    fi
    if out=$(c --login --pin "$GNUTLS_PIN" --sign --id 21 \
        -m SHA256-RSA-PKCS -i data -o srv-rsa.sig 2>&1); then
        out=$(openssl dgst -sha256 -verify gt-rsa.pub -signature srv-rsa.sig \
            data 2>&1)
        check "SHA256-RSA-PKCS over the p11-kit socket verifies" "$out" \
            "Verified OK"
    else
        bad "pkcs11-tool cannot sign (RSA) over the p11-kit socket" "$out"
    fi
    out=$(c --login --pin alice:wrong-pw1 -O 2>&1)
    check "a wrong PIN over the socket is refused" "$out" "CKR_PIN_INCORRECT"
    unset P11_KIT_SERVER_ADDRESS
else
    bad "p11-kit server did not start" "$(cat server.out)"
fi

if [ -z "$p11kit_ready" ] && [ "$fail" -eq 0 ]; then
    skip "the rest passed, but p11-kit's module registration was not" \
        "checked: as root that needs a private mount namespace (unshare -m)"
fi
finish
