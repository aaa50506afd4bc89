#!/bin/bash
# call_timeout: a stopped nimbusd (SIGSTOP) never hangs the application.
# A sign under way when the daemon stops answers CKR_DEVICE_ERROR within
# call_timeout (2 s here) and some slack; while it stays stopped, calls
# answer CKR_DEVICE_REMOVED, each within the handshake bound (call_timeout
# too), and so does nimbus-mgmt; after SIGCONT the application opens a
# new session, logs in and signs without C_Finalize, and the old session
# answers CKR_SESSION_HANDLE_INVALID. Over a unix socket, then over TLS.
. "$(dirname "$0")/common.sh"

[ -x "$RCLIENT" ] || { echo "SKIP: $RCLIENT not built"; exit 77; }
MGMT=$B/nimbus-mgmt
LIMIT=2
SLACK_MS=2500 # a loaded machine (make -j2 check beside six builds)

# resume the daemon before the common cleanup's SIGTERM
trap 'kill -CONT ${DPID:-0} 2>/dev/null; cleanup' EXIT

ms() { echo $(($(date +%s%N) / 1000000)); }

# timed NAME CMD WANT: rc, and the call's wall time in MS
timed() {
    local t0
    t0=$(ms)
    rc "$@"
    MS=$(($(ms) - t0))
}

# stall WHAT: the application a, logged in with the key k1, on the daemon
# DPID: stopped under a signing loop, then resumed.
stall() {
    local what=$1 n last t0 out
    rc a save CKR_OK
    echo "signfor 60 k1" >&"${RC_IN[a]}"
    sleep 1
    kill -STOP "$DPID"
    t0=$(ms)
    IFS= read -r -t 60 LINE <&"${RC_OUT[a]}" || fail "$what: signfor did not return"
    read -r _ rv n last <<<"$LINE"
    [ "$rv" = CKR_DEVICE_ERROR ] || fail "$what: sign on a stopped daemon: $LINE"
    [ "$n" -gt 0 ] || fail "$what: no sign worked before the stop: $LINE"
    [ "$last" -ge $((LIMIT * 1000 - 100)) ] && [ "$last" -le $((LIMIT * 1000 + SLACK_MS)) ] ||
        fail "$what: the stuck sign took $last ms (call_timeout $LIMIT s)"
    ok "$what: nimbusd stopped under $n signs: CKR_DEVICE_ERROR after $last ms"

    # still stopped: a reconnection is tried and given up within the bound
    timed a "sign k1" CKR_DEVICE_REMOVED
    [ "$MS" -le $((LIMIT * 1000 + SLACK_MS)) ] || fail "$what: old session: $MS ms"
    timed a open CKR_DEVICE_REMOVED
    [ "$MS" -le $((LIMIT * 1000 + SLACK_MS)) ] || fail "$what: open: $MS ms"
    t0=$(ms)
    out=$(timeout 60 "$MGMT" -c "loginHSM CO admin sopin123" 2>&1)
    MS=$(($(ms) - t0))
    # (a process of its own to start: twice the slack; without the bound
    # it would wait for ever)
    [ "$MS" -le $((LIMIT * 1000 + 2 * SLACK_MS)) ] || fail "$what: nimbus-mgmt: $MS ms"
    grep -q "success" <<<"$out" && fail "$what: nimbus-mgmt on a stopped daemon: $out"
    ok "$what: while stopped: CKR_DEVICE_REMOVED, nimbus-mgmt gives up, each within the bound"

    kill -CONT "$DPID"
    rc a open CKR_OK
    rc a "login userpin1" CKR_OK
    rc a "sign k1" CKR_OK
    rc a restore CKR_OK
    rc a "sign k1" CKR_SESSION_HANDLE_INVALID
    rc a state CKR_SESSION_HANDLE_INVALID
    ok "$what: resumed: new session, login and sign without C_Finalize; old session invalid"
}

# --- unix socket
echo "call_timeout = $LIMIT" >>"$T/client.conf"
start_fg "$T/d.conf" || fail "nimbusd did not start"
rc_signer a
stall unix
# the daemon is well after the stop: a second application works
rc_start b
rc b init CKR_OK
rc b open CKR_OK
rc b "login userpin1" CKR_OK
rc b "sign k1" CKR_OK
rc_stop b
# call_timeout = 0: no limit; a call outlives a 3 s stop and succeeds
sed -e "s/^call_timeout = .*/call_timeout = 0/" "$T/client.conf" >"$T/nolimit.conf"
NIMBUS_CONF=$T/nolimit.conf rc_start z
rc z init CKR_OK
rc z open CKR_OK
rc z "login userpin1" CKR_OK
kill -STOP "$DPID"
t0=$(ms)
echo "sign k1" >&"${RC_IN[z]}"
sleep 3
kill -CONT "$DPID"
IFS= read -r -t 60 LINE <&"${RC_OUT[z]}" || fail "no limit: no answer"
[ "$LINE" = "sign CKR_OK" ] && [ $(($(ms) - t0)) -ge 3000 ] ||
    fail "call_timeout = 0: '$LINE' after $(($(ms) - t0)) ms"
rc_stop z
ok "call_timeout = 0: a call waits out a 3 s stop and succeeds"
rc a finalize CKR_OK
rc_stop a
stop "$DPID" || fail "nimbusd exit status $? after the stop"

# --- TLS: the same, the reads waiting inside OpenSSL's records
command -v openssl >/dev/null || { echo "SKIP: TLS part: openssl CLI missing"; echo "PASS: stall (unix)"; exit 0; }
. "$(dirname "$0")/lib.sh"
P=$T/pki
make_pki "$P" || fail "test PKI"
for _ in 1 2 3; do
    PORT=$(free_port) || fail "no free port"
    write_conf "$T/t.conf" "listen = tls:127.0.0.1:$PORT" \
        "tls_cert = $P/server.pem" "tls_key = $P/server.key" "tls_ca = $P/ca.pem"
    start_fg "$T/t.conf" && break
    grep -qi 'address already in use' "$T/nimbusd.log" || fail "nimbusd did not start on TLS"
done
printf '%s\n' "servers = tls:127.0.0.1:$PORT" "tls_cert = $P/client.pem" \
    "tls_key = $P/client.key" "tls_ca = $P/ca.pem" "log_level = warn" \
    "log_file = $T/client.log" "call_timeout = $LIMIT" >"$T/tls.conf"
export NIMBUS_CONF=$T/tls.conf
rc_start a
rc a init CKR_OK
rc a open CKR_OK
rc a "login userpin1" CKR_OK
rc a "sign k1" CKR_OK
stall tls
rc a finalize CKR_OK
rc_stop a
stop "$DPID" || fail "nimbusd exit status $? after the stop"
grep -q "within call_timeout" "$T/client.log" || fail "the client log does not say why"

# --- a server slow in its TLS handshake, then silent: connect, TLS and the
# version handshake share one bound (call_timeout 4 s here), the
# handshake's time is not granted again to the version handshake
cat >"$T/slow.py" <<'PY'
import socket, ssl, sys, time
port, pki = int(sys.argv[1]), sys.argv[2]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
ctx.load_cert_chain(pki + "/server.pem", pki + "/server.key")
ctx.load_verify_locations(pki + "/ca.pem")
ctx.verify_mode = ssl.CERT_REQUIRED
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", port))
ls.listen(8)
print("listening", flush=True)
while True:
    c, _ = ls.accept()
    time.sleep(3)
    try:
        t = ctx.wrap_socket(c, server_side=True)
        t.recv(4096)  # the version handshake: never answered
        time.sleep(30)
    except Exception:
        pass
    c.close()
PY
SPORT=$(free_port) || fail "no free port"
python3 "$T/slow.py" "$SPORT" "$P" >"$T/slow.out" 2>&1 &
PIDS+=("$!")
for _ in $(seq 50); do
    grep -q listening "$T/slow.out" && break
    sleep 0.1
done
sed -e "s/^servers = .*/servers = tls:127.0.0.1:$SPORT/" \
    -e "s/^call_timeout = .*/call_timeout = 4/" "$T/tls.conf" >"$T/slow.conf"
export NIMBUS_CONF=$T/slow.conf
rc_start s
timed s init CKR_GENERAL_ERROR
# 3 s of TLS, then the rest of the 4 s; re-armed it would take 7 s
[ "$MS" -ge 3900 ] && [ "$MS" -le 5900 ] ||
    fail "C_Initialize against a slow, then silent server: $MS ms (bound 4 s)"
rc_stop s
ok "a slow TLS handshake and a silent version handshake share one bound ($MS ms)"
echo "PASS: stall"
