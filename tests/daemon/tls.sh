#!/bin/bash
# nimbusd on tls:127.0.0.1:PORT with a throw-away CA made here (openssl
# CLI): a client under the CA is served; a client certificate from another
# CA, no client certificate, and TLS 1.2 are refused and logged.
. "$(dirname "$0")/common.sh"

command -v openssl >/dev/null || { echo "SKIP: openssl CLI missing"; exit 77; }

P=$T/pki
mkdir -p "$P"
. "$(dirname "$0")/../remote/lib.sh"
# mkca NAME CN, mkcert NAME CN ISSUER [SAN]: in $P (tests/remote/lib.sh)
mkca() { pki_ca "$P" "$@" || fail "CA $1"; }
mkcert() { pki_cert "$P" "$@" || fail "cert $1"; }
mkca ca "Nimbus Test CA"
mkca other "Other CA"
mkcert server nimbusd ca "IP:127.0.0.1"
mkcert client app-1 ca
mkcert rogue rogue other

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
EP=tls:127.0.0.1:$PORT

"$DCLIENT" --cert "$P/client.pem" --key "$P/client.key" --ca "$P/ca.pem" \
    "$EP" hello || fail "client under the CA refused"
grep -q 'connected: tls:127.0.0.1:[0-9]* cert ".*CN=app-1" sha256=[0-9a-f]\{64\}' \
    "$T/nimbusd.log" || fail "peer certificate not logged"
ok "mutual TLS 1.3: client under the CA served, its subject logged"

rc=0
"$DCLIENT" --cert "$P/rogue.pem" --key "$P/rogue.key" --ca "$P/ca.pem" \
    "$EP" hello 2>/dev/null || rc=$?
[ "$rc" = 3 ] || fail "client cert from another CA served (rc $rc)"
grep -q 'refused a TLS peer from 127.0.0.1:[0-9]*: TLS handshake: certificate' \
    "$T/nimbusd.log" ||
    fail "other CA refusal not logged"
ok "client certificate from another CA refused"

n=$(grep -c 'refused a TLS peer' "$T/nimbusd.log")
printf '\0\0\0\0' | timeout 10 openssl s_client -connect "127.0.0.1:$PORT" \
    -tls1_3 -CAfile "$P/ca.pem" -quiet >/dev/null 2>&1
for _ in $(seq 50); do
    [ "$(grep -c 'refused a TLS peer' "$T/nimbusd.log")" -gt "$n" ] && break
    sleep 0.1
done
[ "$(grep -c 'refused a TLS peer' "$T/nimbusd.log")" -gt "$n" ] ||
    fail "client without a certificate not refused"
grep -c 'serve: connected: tls' "$T/nimbusd.log" | grep -qx 1 ||
    fail "a client without a certificate was served"
ok "no client certificate refused"

n=$(grep -c 'refused a TLS peer' "$T/nimbusd.log")
rc=0
timeout 10 openssl s_client -connect "127.0.0.1:$PORT" -tls1_2 \
    -cert "$P/client.pem" -key "$P/client.key" -CAfile "$P/ca.pem" \
    </dev/null >"$T/s_client12.out" 2>&1 || rc=$?
[ "$rc" != 0 ] || fail "TLS 1.2 handshake succeeded"
for _ in $(seq 50); do
    [ "$(grep -c 'refused a TLS peer' "$T/nimbusd.log")" -gt "$n" ] && break
    sleep 0.1
done
[ "$(grep -c 'refused a TLS peer' "$T/nimbusd.log")" -gt "$n" ] ||
    fail "TLS 1.2 refusal not logged"
ok "TLS 1.2 refused, even with a good certificate"

"$DCLIENT" --cert "$P/client.pem" --key "$P/client.key" --ca "$P/ca.pem" \
    "$EP" conns 256 >/dev/null || fail "256 TLS connections"
ok "256 concurrent TLS connections"

rc=0; stop "$DPID" || rc=$?
[ "$rc" = 0 ] || fail "SIGTERM exit status $rc"
ok "SIGTERM exits 0"

# --- io_timeout over TLS: a client through the TLS handshake that sends
# no handshake frame is dropped after io_timeout (1 s), and logged
write_conf "$T/u.conf" "listen = tls:127.0.0.1:$PORT" \
    "tls_cert = $P/server.pem" "tls_key = $P/server.key" \
    "tls_ca = $P/ca.pem" "io_timeout = 1"
start_fg "$T/u.conf" || fail "nimbusd (io_timeout 1) did not start"
"$DCLIENT" --cert "$P/client.pem" --key "$P/client.key" --ca "$P/ca.pem" \
    "$EP" silent 10 >"$T/silent.out" 2>&1 ||
    fail "silent TLS client not dropped: $(cat "$T/silent.out")"
ms=$(sed -n 's/^closed after \([0-9]*\) ms$/\1/p' "$T/silent.out")
[ -n "$ms" ] && [ "$ms" -ge 900 ] && [ "$ms" -le 5000 ] ||
    fail "silent TLS client closed after '$ms' ms, io_timeout is 1000"
grep -q 'tls:127.0.0.1:[0-9]* cert ".*CN=app-1" .*no handshake within io_timeout (1 s)' \
    "$T/nimbusd.log" || fail "the drop is not logged with the peer"
"$DCLIENT" --cert "$P/client.pem" --key "$P/client.key" --ca "$P/ca.pem" \
    "$EP" hello || fail "a good TLS client after the drop"
ok "TLS: no handshake frame within io_timeout: dropped after $ms ms, logged"

# --- the TLS handshake has 10 s in all: a peer trickling a ClientHello a
# byte a second (each read well within any per-read timeout) is dropped
# after about 10 s, not when it stops
out=$(timeout 60 python3 - "$PORT" <<'PY' 2>&1
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
t0 = time.monotonic()
# a handshake record header announcing 512 bytes, then its body, slowly
data = b"\x16\x03\x01\x02\x00" + b"\x01" * 40
s.settimeout(1.0)
for b in data:
    try:
        s.sendall(bytes([b]))
        d = s.recv(1)
        print("closed after %d ms" % ((time.monotonic() - t0) * 1000))
        sys.exit(0)
    except socket.timeout:
        pass
    except (BrokenPipeError, ConnectionResetError):
        print("closed after %d ms" % ((time.monotonic() - t0) * 1000))
        sys.exit(0)
print("still open after %d ms" % ((time.monotonic() - t0) * 1000))
PY
)
ms=$(sed -n 's/^closed after \([0-9]*\) ms$/\1/p' <<<"$out")
[ -n "$ms" ] && [ "$ms" -ge 9000 ] && [ "$ms" -le 20000 ] ||
    fail "a trickled TLS handshake: $out (the bound is 10 s)"
grep -q 'refused a TLS peer from 127.0.0.1:[0-9]*: TLS handshake' \
    "$T/nimbusd.log" || fail "the trickled handshake's drop is not logged"
ok "a TLS handshake trickled a byte a second: dropped after $ms ms"
rc=0; stop "$DPID" || rc=$?
[ "$rc" = 0 ] || fail "SIGTERM exit status $rc"
exit 0
