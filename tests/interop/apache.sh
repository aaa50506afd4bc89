#!/bin/bash
# apache.sh - Apache httpd (mod_ssl, prefork, three worker processes) serves
# TLS 1.2 and 1.3 with an RSA-2048 and an EC P-256 key on the token through
# `SSLCryptoDevice pkcs11`: mod_ssl makes libp11's engine the default for
# every algorithm (ENGINE_set_default(e, ENGINE_METHOD_ALL)) in the very
# processes that load the module, and loads each key by its pkcs11: URI in
# SSLCertificateKeyFile; the engine gets the PIN (alice:<password>) from
# its section of openssl.cnf. Each key has a certificate a software test CA
# issued for the token's public key.
#
# Checked: curl --cacert succeeds on both servers with TLS 1.2 and 1.3 (the
# access log shows the protocols and ECDHE-RSA / ECDHE-ECDSA); 30
# handshakes at once all succeed and reach at least two workers; the
# module's trace shows, in the workers, C_SignInit with CKM_RSA_PKCS_PSS
# (0x0000000d) answered CKR_OK and followed by C_Sign -> CKR_OK (TLS 1.3
# and curl's TLS 1.2 both sign RSA with PSS: libp11's pkey method maps that
# to CKM_RSA_PKCS_PSS), CKM_ECDSA likewise, and no raw RSA (CKM_RSA_X_509)
# signature and no CKR_MECHANISM_PARAM_INVALID at all. Before Nimbus made
# its keys with its own provider, that engine took over the module's own
# OpenSSL calls and every PSS C_SignInit failed.
#
# The user: httpd will not serve as root, and the store must belong to the
# user of its keys (a 0600 master key owned by that user); as root the
# test makes the store, then gives it and the test directory to nobody and
# runs httpd as nobody, which then never changes user. Not as root, httpd
# and the store are the invoking user's.
# Exit: 0 pass, 1 fail, 77 skip, 99 hard error.
T=apache
. "$(dirname "$0")/common.sh"

HTTPD=$(command -v apache2 || command -v httpd ||
    ls /usr/sbin/apache2 /usr/sbin/httpd 2>/dev/null | head -n 1)
[ -n "$HTTPD" ] && [ -x "$HTTPD" ] || skip "apache2 is not installed" \
    "(apt-get install apache2)"
MODS=
for d in /usr/lib/apache2/modules /usr/lib64/httpd/modules \
    /usr/lib/httpd/modules; do
    [ -f "$d/mod_ssl.so" ] && MODS=$d && break
done
[ -n "$MODS" ] || skip "mod_ssl is not installed (apt-get install apache2)"
[ -f "$MODS/mod_mpm_prefork.so" ] || skip "mod_mpm_prefork is not installed"
need_cmd curl curl
need_cmd pkcs11-tool opensc
need_cmd setpriv util-linux
need_engine
interop_setup

PP=$tmp/prefix
cp -a "$P" "$PP" || die "cannot copy $P"
MODULE=$PP/lib/pkcs11/libnimbus-pkcs11.so
MGMT=$PP/bin/nimbus-mgmt
fresh_store "$tmp" alice "$ALICE_PW"
{
    cat "$tmp/nimbus.conf"
    printf 'log_level = trace\nlog_file = %s\n' "$tmp/nimbus.log"
} >"$tmp/nimbus-trace.conf"
PIN=alice:$ALICE_PW
cd "$tmp" || die "cd $tmp"

token_keypairs "rsa:2048 21 tls-rsa" "EC:prime256v1 22 tls-ec"
engine_conf "$tmp/openssl.cnf"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout ca.key -out ca.pem -subj /CN=nimbus-test-ca -days 2 \
    -config openssl.cnf -extensions v3_self >/dev/null 2>&1 || die "test CA"
for n in tls-rsa tls-ec; do
    openssl x509 -new -force_pubkey "$n.pub" -subj /CN=localhost \
        -CA ca.pem -CAkey ca.key -days 2 -extfile openssl.cnf \
        -extensions v3_server -out "$n.pem" 2>/dev/null ||
        die "cannot issue the $n certificate"
done
# the engine's PIN, in its section of the configuration
sed -i "s|^init = .*|&\nPIN = $PIN|" openssl.cnf
grep -q "^PIN = alice:" openssl.cnf || die "cannot put the PIN in openssl.cnf"

# ------------------------------------------------------------ httpd
H=$tmp/httpd
mkdir -p "$H/logs" "$H/run" "$H/htdocs"
echo hello >"$H/htdocs/index.html"
as_httpd=()
if [ "$(id -u)" -eq 0 ]; then
    chmod 711 "$tmp"
    chown -R nobody: "$tmp" || die "cannot give $tmp to nobody"
    as_httpd=(setpriv --reuid=nobody --regid=nogroup --clear-groups --)
fi
uri() { echo "pkcs11:token=interop;object=$1;type=private"; }
# start_httpd: on two new ports; 2 when one of them was taken meanwhile
start_httpd() {
    P1=$(free_port)
    P2=$(free_port)
    [ "$P1" != "$P2" ] || P2=$(free_port)
    rm -f "$H/logs/error.log" "$H/run/httpd.pid"
    cat >"$H/httpd.conf" <<EOF
ServerRoot "$H"
ServerName localhost
PidFile "$H/run/httpd.pid"
DefaultRuntimeDir "$H/run"
Mutex file:$H/run default
ErrorLog "$H/logs/error.log"
LogLevel info
LoadModule mpm_prefork_module $MODS/mod_mpm_prefork.so
LoadModule authz_core_module $MODS/mod_authz_core.so
LoadModule ssl_module $MODS/mod_ssl.so
StartServers 3
MinSpareServers 3
MaxSpareServers 6
ServerLimit 8
MaxRequestWorkers 8
KeepAlive Off
Listen 127.0.0.1:$P1
Listen 127.0.0.1:$P2
DocumentRoot "$H/htdocs"
LogFormat "%P %p %{SSL_PROTOCOL}x %{SSL_CIPHER}x %>s" w
CustomLog "$H/logs/access.log" w
SSLCryptoDevice pkcs11
SSLPassPhraseDialog builtin
SSLSessionCache none
SSLSessionTickets off
SSLProtocol -all +TLSv1.2 +TLSv1.3
<VirtualHost 127.0.0.1:$P1>
    SSLEngine on
    SSLCertificateFile "$tmp/tls-rsa.pem"
    SSLCertificateKeyFile "$(uri tls-rsa)"
</VirtualHost>
<VirtualHost 127.0.0.1:$P2>
    SSLEngine on
    SSLCertificateFile "$tmp/tls-ec.pem"
    SSLCertificateKeyFile "$(uri tls-ec)"
</VirtualHost>
EOF
    [ ${#as_httpd[@]} -eq 0 ] || chown -R nobody: "$H"
    bg_start "${as_httpd[@]}" env -i PATH="$PATH" \
        OPENSSL_CONF="$tmp/openssl.cnf" NIMBUS_CONF="$tmp/nimbus-trace.conf" \
        "$HTTPD" -d "$H" -f "$H/httpd.conf" -DFOREGROUND
    master=$bg_pid
    server_up "$master" "$H/logs/error.log" "$P1" "$P2"
}
unset NIMBUS_CONF
if ! with_free_ports start_httpd; then
    bad "httpd did not start" "$(cat "$H/logs/error.log" 2>/dev/null)"
    finish
fi
ok "httpd started with both token keys (SSLCryptoDevice pkcs11)"
sleep 1
workers=$(pgrep -P "$master" | sort | tr '\n' ' ')
set -- $workers
[ $# -ge 2 ] && ok "$# worker processes: $workers" || bad "workers: '$workers'"

get() {
    t 30 curl -sS --cacert "$tmp/ca.pem" "--tlsv$2" --tls-max "$2" \
        "https://127.0.0.1:$1/index.html"
}
for v in 1.2 1.3; do
    out=$(get "$P1" $v 2>&1)
    check "RSA server, TLS $v: curl --cacert succeeds" "$out" "^hello$"
    out=$(get "$P2" $v 2>&1)
    check "EC server, TLS $v: curl --cacert succeeds" "$out" "^hello$"
done
out=$(cat "$H/logs/access.log" 2>/dev/null)
check "TLS 1.2 with the RSA key: ECDHE-RSA" "$out" " $P1 TLSv1.2 ECDHE-RSA-"
check "TLS 1.3 with the RSA key" "$out" " $P1 TLSv1.3 TLS_"
check "TLS 1.2 with the EC key: ECDHE-ECDSA" "$out" " $P2 TLSv1.2 ECDHE-ECDSA-"
check "TLS 1.3 with the EC key" "$out" " $P2 TLSv1.3 TLS_"

# the served certificates hold the token's keys
check_served_keys "$P1 tls-rsa" "$P2 tls-ec"

# 30 handshakes at once, over both servers and both versions
parallel_gets 15 "$P1" "$P2"
served=$(awk '{ print $1 }' "$H/logs/access.log" | sort -u)
n=$(wc -w <<<"$served")
[ "$n" -ge 2 ] && ok "requests reached $n different workers" ||
    bad "all requests reached one worker ($served)"

# The trace: per process, the line after "C_SignInit: mechanism M" is
# "C_SignInit -> RV", and the next C_Sign's result follows. Prints
# "pid mechanism init-rv sign-rv" per signature.
sigs=$(awk '
    match($0, /^nimbus\[[0-9]+\]/) {
        pid = substr($0, 8, RLENGTH - 8)
        if ($0 ~ /C_SignInit: mechanism /) {
            mech[pid] = $NF; init[pid] = ""; next
        }
        if (mech[pid] != "" && $0 ~ /C_SignInit -> /) {
            init[pid] = $NF; next
        }
        if (mech[pid] != "" && $0 ~ /C_Sign -> /) {
            print pid, mech[pid], init[pid], $NF; mech[pid] = ""
        }
    }' "$tmp/nimbus.log" 2>/dev/null)
pss=$(awk '$2 == "0x0000000d" && $3 == "CKR_OK" && $4 == "CKR_OK"' <<<"$sigs")
ecdsa=$(awk '$2 == "0x00001041" && $3 == "CKR_OK" && $4 == "CKR_OK"' <<<"$sigs")
pss_workers=0
for w in $workers; do
    grep -q "^$w " <<<"$pss" && pss_workers=$((pss_workers + 1))
done
[ "$pss_workers" -ge 2 ] &&
    ok "$pss_workers workers signed with C_Sign(CKM_RSA_PKCS_PSS) -> CKR_OK" \
        "($(wc -l <<<"$pss") signatures)" ||
    bad "PSS signatures (CKM_RSA_PKCS_PSS, CKR_OK) in $pss_workers workers" \
        "$sigs"
[ -n "$ecdsa" ] && ok "C_Sign(CKM_ECDSA) -> CKR_OK ($(wc -l <<<"$ecdsa"))" ||
    bad "no CKM_ECDSA signature in the trace" "$sigs"
raw=$(awk '$2 == "0x00000003"' <<<"$sigs")
[ -z "$raw" ] && ok "no raw RSA (CKM_RSA_X_509) signature" ||
    bad "raw RSA signatures" "$raw"
check_not "no CKR_MECHANISM_PARAM_INVALID in the trace" \
    "$(cat "$tmp/nimbus.log" 2>/dev/null)" "CKR_MECHANISM_PARAM_INVALID"

now=$(pgrep -P "$master" | sort | tr '\n' ' ')
check_not "no child crashed" "$(cat "$H/logs/error.log")" \
    "exit signal|seg fault|Segmentation"
check_not "no SSL library error in the error log" \
    "$(cat "$H/logs/error.log")" "SSL Library Error|AH0223[0-9]|engine"
[ -n "$now" ] && ok "workers still running: $now" || bad "no worker left"

finish
