#!/bin/bash
# The module and nimbus-mgmt in remote mode over mutual TLS 1.3, with a
# throw-away CA made here: keys made and used, threads, a forked child's
# own TLS connection, a daemon restart on the same port, and info server
# naming the application by its certificate subject.
. "$(dirname "$0")/common.sh"

[ -x "$RCLIENT" ] || { echo "SKIP: $RCLIENT not built"; exit 77; }
command -v openssl >/dev/null || { echo "SKIP: openssl CLI missing"; exit 77; }

. "$(dirname "$0")/lib.sh"
P=$T/pki
mkdir -p "$P"
# mkca NAME CN, mkcert NAME CN [SAN] (under ca): in $P (lib.sh)
mkca() { pki_ca "$P" "$@" || fail "CA $1"; }
mkcert() { pki_cert "$P" "$1" "$2" ca ${3:+"$3"} || fail "cert $1"; }
mkca ca "Nimbus Test CA"
mkcert server nimbusd "IP:127.0.0.1"
mkcert app app-1
mkcert admin mgmt-1

start_tls() {
    PORT=$(free_port) || fail "no free port"
    write_conf "$T/t.conf" "listen = tls:127.0.0.1:$PORT" \
        "tls_cert = $P/server.pem" "tls_key = $P/server.key" \
        "tls_ca = $P/ca.pem"
    start_fg "$T/t.conf" && return 0
    grep -qi 'address already in use' "$T/nimbusd.log" && return 2
    return 1
}
for _ in 1 2 3; do
    rc=0; start_tls || rc=$?
    [ "$rc" = 2 ] || break
done
[ "$rc" = 0 ] || fail "nimbusd did not start on TLS"

# client_conf FILE NAME: servers over TLS with NAME's certificate
client_conf() {
    printf '%s\n' "servers = tls:127.0.0.1:$PORT" "tls_cert = $P/$2.pem" \
        "tls_key = $P/$2.key" "tls_ca = $P/ca.pem" "log_level = warn" \
        "log_file = $T/client.log" >"$1"
}
client_conf "$T/app.conf" app
client_conf "$T/admin.conf" admin
export NIMBUS_CONF=$T/app.conf

rc_signer a
rc a msg CKR_OK
rc a "threads 6 k1" CKR_OK
ok "over TLS: token set up, keys made and used, 6 threads in parallel"

rc a "fork k1 userpin1" CKR_OK
rc a "sign k1" CKR_OK
ok "over TLS: a forked child makes its own TLS connection"

out=$(NIMBUS_CONF=$T/admin.conf "$B/nimbus-mgmt" \
    -c "loginHSM CO admin sopin123; info server 0") || fail "mgmt: $out"
grep -qF "loginHSM success on server 0(127.0.0.1)" <<<"$out" ||
    fail "per-server line: $out"
grep -E "^  tls /?CN ?= ?app-1 +1 +[0-9]+ +CU user\(3\)" <<<"$out" >/dev/null ||
    fail "the application by its certificate: $out"
grep -E "^\* tls /?CN ?= ?mgmt-1 " <<<"$out" >/dev/null || fail "the shell: $out"
ok "info server over TLS: clients named by their certificate subject"

rc a save CKR_OK
kill9
rc a "sign k1" CKR_DEVICE_REMOVED
rc a open CKR_DEVICE_REMOVED
start_fg "$T/t.conf" || fail "nimbusd did not restart on port $PORT"
rc a open CKR_OK
rc a "login userpin1" CKR_OK
rc a "sign k1" CKR_OK
rc a restore CKR_OK
rc a "sign k1" CKR_SESSION_HANDLE_INVALID
ok "over TLS: CKR_DEVICE_REMOVED while down; new sessions after the restart"

rc a finalize CKR_OK
rc_stop a
