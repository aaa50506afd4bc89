#!/bin/bash
# nginx.sh - nginx serves TLS 1.2 and 1.3 with two private keys on the
# token, through libp11's pkcs11 engine: ssl_certificate_key
# "engine:pkcs11:pkcs11:...;object=tls-rsa;..." (RSA-2048) on one server
# and an EC P-256 key on another, each with a certificate a software test
# CA issued for the token's public key. The master loads both keys, then
# forks two workers that do the handshakes.
#
# Checked: curl --cacert succeeds on both servers with TLS 1.2 and with
# TLS 1.3; the certificate each server sends holds the token's public key;
# 40 handshakes at once all succeed and both workers served some (their
# pids in the access log, `listen ... reuseport` spreads the connections);
# the workers are the same processes afterwards and the error log has no
# alert, crit or emerg line and no worker exit.
#
# The environment: nginx empties its workers' environment (no `env`
# directive here), and the master is started with env -i too (only PATH and
# OPENSSL_CONF, for the engine). So neither finds a configuration through
# NIMBUS_CONF, XDG or HOME: the module finds etc/nimbus/nimbus.conf of the
# prefix it is installed in, from its own path. Because every test has its
# own store and the tests run in parallel, this test copies the installed
# prefix to its temporary directory and writes that copy's
# etc/nimbus/nimbus.conf.
#
# The user: as root, nginx would run its workers as an unprivileged user
# that cannot open the store (a 0700 directory, a 0600 master key, owned by
# root: the owner of the store must be the user of the keys); `user root;`
# keeps the workers as the store's owner. Not as root, the workers are the
# invoking user anyway.
# Exit: 0 pass, 1 fail, 77 skip, 99 hard error.
T=nginx
. "$(dirname "$0")/common.sh"

need_cmd nginx nginx
need_cmd curl curl
need_cmd pkcs11-tool opensc
need_engine
interop_setup

# The compiled-in $(sysconfdir)/nimbus/nimbus.conf would come before the
# file beside the module: a machine that has one cannot run this test.
prefix_mk=$(sed -n 's/^prefix = //p' "$top/Makefile")
sysconf_mk=$(sed -n 's/^sysconfdir = //p' "$top/Makefile")
sysconf=$(prefix=$prefix_mk eval "echo $sysconf_mk")
[ -e "$sysconf/nimbus/nimbus.conf" ] &&
    skip "$sysconf/nimbus/nimbus.conf exists on this machine and would" \
        "take precedence over the installed prefix's configuration"

# a private copy of the installed prefix, with its own configuration
PP=$tmp/prefix
cp -a "$P" "$PP" || die "cannot copy $P"
MODULE=$PP/lib/pkcs11/libnimbus-pkcs11.so
MGMT=$PP/bin/nimbus-mgmt
fresh_store "$tmp" alice "$ALICE_PW"
mkdir -p "$PP/etc/nimbus"
# with a trace log: it shows which processes initialised the module with
# which configuration file, and which signed
{
    cat "$tmp/nimbus.conf"
    printf 'log_level = trace\nlog_file = %s\n' "$tmp/nimbus.log"
} >"$PP/etc/nimbus/nimbus.conf"
export NIMBUS_CONF=$PP/etc/nimbus/nimbus.conf
PIN=alice:$ALICE_PW
cd "$tmp" || die "cd $tmp"

# the keys, on the token
token_keypairs "rsa:2048 11 tls-rsa" "EC:prime256v1 12 tls-ec"
# a software test CA issues a server certificate for each token key
engine_conf "$tmp/openssl.cnf" 1
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout ca.key -out ca.pem -subj /CN=nimbus-test-ca -days 2 \
    -config openssl.cnf -extensions v3_self >/dev/null 2>&1 || die "test CA"
for n in tls-rsa tls-ec; do
    openssl x509 -new -force_pubkey "$n.pub" -subj /CN=localhost \
        -CA ca.pem -CAkey ca.key -days 2 -extfile openssl.cnf \
        -extensions v3_server -out "$n.pem" 2>/dev/null ||
        die "cannot issue the $n certificate"
done

# ------------------------------------------------------------ nginx
N=$tmp/nginx
mkdir -p "$N/logs" "$N/tmp"
user_line=
[ "$(id -u)" -eq 0 ] && user_line="user root;"
uri() { echo "pkcs11:token=interop;object=$1;type=private;pin-value=$PIN"; }
# start_nginx: on two new ports; 2 when one of them was taken meanwhile
start_nginx() {
    P1=$(free_port)
    P2=$(free_port)
    [ "$P1" != "$P2" ] || P2=$(free_port)
    : >"$N/logs/error.log"
    cat >"$N/nginx.conf" <<EOF
$user_line
worker_processes 2;
daemon off;
master_process on;
pid $N/nginx.pid;
error_log $N/logs/error.log info;
events { worker_connections 256; }
http {
    log_format w '\$pid \$server_port \$ssl_protocol \$ssl_cipher \$status';
    access_log $N/logs/access.log w;
    client_body_temp_path $N/tmp/body;
    proxy_temp_path $N/tmp/proxy;
    fastcgi_temp_path $N/tmp/fastcgi;
    uwsgi_temp_path $N/tmp/uwsgi;
    scgi_temp_path $N/tmp/scgi;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets off;
    server {
        listen 127.0.0.1:$P1 ssl reuseport;
        ssl_certificate $tmp/tls-rsa.pem;
        ssl_certificate_key "engine:pkcs11:$(uri tls-rsa)";
        location / { return 200 "rsa \$pid\n"; }
    }
    server {
        listen 127.0.0.1:$P2 ssl reuseport;
        ssl_certificate $tmp/tls-ec.pem;
        ssl_certificate_key "engine:pkcs11:$(uri tls-ec)";
        location / { return 200 "ec \$pid\n"; }
    }
}
EOF
    # no NIMBUS_CONF, no HOME, no XDG: only what the engine needs
    bg_start env -i PATH="$PATH" OPENSSL_CONF="$tmp/openssl.cnf" \
        nginx -p "$N/" -e "$N/logs/error.log" -c "$N/nginx.conf"
    master=$bg_pid
    server_up "$master" "$N/logs/error.log" "$P1" "$P2"
}
if ! with_free_ports start_nginx; then
    bad "nginx did not start" "$(cat "$N/logs/error.log" 2>/dev/null)"
    finish
fi
unset NIMBUS_CONF
ok "nginx started with both token keys"
sleep 0.5
workers=$(pgrep -P "$master" | sort | tr '\n' ' ')
set -- $workers
[ $# -eq 2 ] && ok "two workers: $workers" || bad "workers: '$workers'"

# no Nimbus variable reaches a worker
for w in $workers; do
    if tr '\0' '\n' <"/proc/$w/environ" | grep -q '^NIMBUS\|^HOME=\|^XDG'; then
        bad "worker $w has NIMBUS/HOME/XDG in its environment"
    fi
done

# get PORT TLSVERSION: one request, prints the body
get() {
    t 30 curl -sS --cacert "$tmp/ca.pem" "--tlsv$2" --tls-max "$2" \
        "https://127.0.0.1:$1/"
}
for v in 1.2 1.3; do
    out=$(get "$P1" $v 2>&1)
    check "RSA server, TLS $v: curl --cacert succeeds" "$out" "^rsa [0-9]+$"
    out=$(get "$P2" $v 2>&1)
    check "EC server, TLS $v: curl --cacert succeeds" "$out" "^ec [0-9]+$"
done
# the protocols really were 1.2 and 1.3
out=$(cat "$N/logs/access.log" 2>/dev/null)
check "the access log shows TLSv1.2" "$out" " TLSv1.2 "
check "the access log shows TLSv1.3" "$out" " TLSv1.3 "
check "TLS 1.2 with the RSA key: ECDHE-RSA" "$out" "$P1 TLSv1.2 ECDHE-RSA-"
check "TLS 1.2 with the EC key: ECDHE-ECDSA" "$out" "$P2 TLSv1.2 ECDHE-ECDSA-"

# the served certificates hold the token's keys
check_served_keys "$P1 tls-rsa" "$P2 tls-ec"

# 40 handshakes at once
parallel_gets 20 "$P1" "$P2"
served=$(awk '{ print $1 }' "$N/logs/access.log" | sort -u | tr '\n' ' ')
for w in $workers; do
    if grep -q "^$w " "$N/logs/access.log"; then
        ok "worker $w served requests"
    else
        bad "worker $w served nothing (pids in the access log: $served)"
    fi
done

# the module's log: the master and each worker initialised it with the
# configuration beside the module (the workers again after the fork, as
# libp11 does), and each worker signed on the token
log=$(cat "$tmp/nimbus.log" 2>/dev/null)
beside="config $PP/lib/pkcs11/../../etc/nimbus/nimbus.conf"
# (in remote mode the store is the daemon's: each worker connected to it)
store="store $tmp/store, "
[ -n "${NIMBUS_TEST_REMOTE:-}" ] && store=".*"
for w in "$master" $workers; do
    check "process $w found the configuration beside the module" "$log" \
        "^nimbus\[$w\] .*initialized: $store$beside\$"
done
if [ -n "${NIMBUS_TEST_REMOTE:-}" ]; then
    dlog=$(cat "$NIMBUSD_DIR/nimbusd.log")
    for w in $workers; do
        check "worker $w has its own connection to nimbusd" "$dlog" \
            "connected: unix:.* pid=$w\$"
    done
fi
for w in $workers; do
    check "worker $w signed on the token" "$log" \
        "^nimbus\[$w\] .*C_Sign -> CKR_OK"
done

# no crash, no alert
now=$(pgrep -P "$master" | sort | tr '\n' ' ')
[ "$now" = "$workers" ] && ok "the workers are still the same processes" ||
    bad "the workers changed: '$workers' -> '$now'"
log=$(cat "$N/logs/error.log")
check_not "no alert, crit or emerg in the error log" "$log" \
    "\[(alert|crit|emerg)\]"
check_not "no worker exited" "$log" "exited on signal|exited with code"
check_not "no engine or key error in the error log" "$log" \
    "PKCS11|pkcs11|ENGINE_|SSL_do_handshake\(\) failed"

finish
