#!/bin/bash
# nimbusd's io_timeout against slowloris clients (2 s here): a client that
# connects and says nothing, one that sends half a handshake, half a frame
# or a frame a byte at a time, and one that never reads its replies are
# each cut off after about io_timeout and their slots freed (with
# max_connections = 2, two stallers lock everybody out until they are
# dropped); an idle PKCS#11 application with a logged-in session survives
# three times io_timeout and still signs; a logged-in client cut off
# mid-frame leaves no login or session behind.
. "$(dirname "$0")/common.sh"

[ -x "$RCLIENT" ] || { echo "SKIP: $RCLIENT not built"; exit 77; }

# closed_ms OUT: the "closed after N ms" of a dclient's output
closed_ms() { sed -n 's/^closed after \([0-9]*\) ms$/\1/p' "$1"; }
# io_timeout: long enough for a loaded machine to start the next client
# while two stallers hold their slots
IO=2
# in_bound OUT WHAT: closed after io_timeout, within 5 s of slack
in_bound() {
    local ms
    ms=$(closed_ms "$1")
    [ -n "$ms" ] || fail "$2: no close time: $(cat "$1")"
    [ "$ms" -ge $((IO * 1000 - 100)) ] && [ "$ms" -le $((IO * 1000 + 5000)) ] ||
        fail "$2: closed after $ms ms, io_timeout is $((IO * 1000))"
}
# wait_log PATTERN N: the daemon's log holds N lines matching PATTERN
wait_log() {
    local i
    for i in $(seq 100); do
        [ "$(grep -c -- "$1" "$T/nimbusd.log")" -ge "$2" ] && return 0
        sleep 0.1
    done
    return 1
}

# --- two silent clients take both slots: a third is refused until
# io_timeout drops them, then it is served
write_conf "$T/a.conf" "listen = unix:$S" "io_timeout = $IO" \
    "max_connections = 2"
start_fg "$T/a.conf" || fail "nimbusd did not start"
"$DCLIENT" "unix:$S" silent 10 >"$T/s1.out" 2>&1 &
S1=$!
"$DCLIENT" "unix:$S" silent 10 >"$T/s2.out" 2>&1 &
S2=$!
PIDS+=("$S1" "$S2")
wait_log "connected: " 2 || fail "the silent clients did not connect"
rc=0; "$DCLIENT" "unix:$S" hello 2>/dev/null || rc=$?
[ "$rc" = 3 ] || fail "a third client got in while two slots were held (rc $rc)"
wait "$S1" || fail "silent client 1 not dropped: $(cat "$T/s1.out")"
wait "$S2" || fail "silent client 2 not dropped: $(cat "$T/s2.out")"
in_bound "$T/s1.out" "silent client"
in_bound "$T/s2.out" "silent client"
wait_log "no handshake within io_timeout ($IO s): closing" 2 ||
    fail "the drops were not logged"
grep -q 'unix:.* uid=[0-9]* .*no handshake within io_timeout' \
    "$T/nimbusd.log" || fail "the log does not name the peer"
"$DCLIENT" "unix:$S" hello || fail "no slot after the silent clients were dropped"
ok "two silent clients dropped after $(closed_ms "$T/s1.out") and $(closed_ms "$T/s2.out") ms; their slots serve a good client"

# --- half a handshake, half a frame, a frame trickled a byte every
# 200 ms (40 s for all of it): each cut off after about io_timeout
"$DCLIENT" "unix:$S" halfhello 10 >"$T/hh.out" 2>&1 ||
    fail "half a handshake not dropped: $(cat "$T/hh.out")"
in_bound "$T/hh.out" "half a handshake"
"$DCLIENT" "unix:$S" half 10 >"$T/hf.out" 2>&1 ||
    fail "half a frame not dropped: $(cat "$T/hf.out")"
in_bound "$T/hf.out" "half a frame"
wait_log "frame not complete within io_timeout ($IO s): closing" 1 ||
    fail "half a frame: not logged"
"$DCLIENT" "unix:$S" trickle 10 >"$T/tr.out" 2>&1 ||
    fail "a trickled frame not dropped: $(cat "$T/tr.out")"
in_bound "$T/tr.out" "a trickled frame"
wait_log "frame not complete within io_timeout ($IO s): closing" 2 ||
    fail "the trickle: not logged"
ok "half a handshake, half a frame, a trickle: dropped after $(closed_ms "$T/hh.out"), $(closed_ms "$T/hf.out"), $(closed_ms "$T/tr.out") ms"

# --- two clients that never read their replies: the daemon's writes to
# them end after io_timeout and their slots are free while they still
# hold their sockets open
"$DCLIENT" "unix:$S" noread $((3 * IO + 2)) >"$T/n1.out" 2>&1 &
N1=$!
"$DCLIENT" "unix:$S" noread $((3 * IO + 2)) >"$T/n2.out" 2>&1 &
N2=$!
PIDS+=("$N1" "$N2")
wait_log "reply not taken within io_timeout ($IO s): closing" 2 ||
    fail "the daemon's writes to clients that do not read were not cut"
kill -0 "$N1" && kill -0 "$N2" || fail "the non-reading clients ended early"
"$DCLIENT" "unix:$S" hello || fail "no slot while the non-readers hold their sockets"
wait "$N1" || fail "non-reader 1: $(cat "$T/n1.out")"
wait "$N2" || fail "non-reader 2: $(cat "$T/n2.out")"
ok "clients that never read: the daemon's writes cut after io_timeout, slots free while they hold their sockets"
kill -0 "$DPID" || fail "nimbusd died"
stop "$DPID" || fail "nimbusd exit status"

# --- an idle PKCS#11 application (logged in, a key) outlives 3 x
# io_timeout and signs again; nothing of it is cut
write_conf "$T/b.conf" "listen = unix:$S" "io_timeout = $IO"
start_fg "$T/b.conf" || fail "nimbusd (b) did not start"
rc_signer a
sleep $((3 * IO)).5
rc a state CKR_OK
# CKS_RW_USER_FUNCTIONS
[ "$(awk '{ print $3 }' <<<"$LINE")" = 3 ] ||
    fail "the session is no longer logged in: $LINE"
rc a "sign k1" CKR_OK
! grep -q 'within io_timeout' "$T/nimbusd.log" ||
    fail "an idle application was cut: $(grep 'within io_timeout' "$T/nimbusd.log")"
rc_stop a
ok "an idle, logged-in application survives $((3 * IO)).5 s (io_timeout $IO s) and signs"

# --- a logged-in connection cut off mid-frame ends as at any disconnect:
# its login and sessions are gone (the shell, a CO, sees only itself)
"$DCLIENT" "unix:$S" loginhalf sopin123 10 >"$T/lh.out" 2>&1 ||
    fail "a logged-in client's half frame not dropped: $(cat "$T/lh.out")"
in_bound "$T/lh.out" "a logged-in client's half frame"
grep -q "login_common: user 1 logged in" "$T/nimbusd.log" || fail "no CO login"
out=$("$B/nimbus-mgmt" -c "loginHSM CO admin sopin123; info server 0") ||
    fail "info server: $out"
grep -qF "Connected clients on server 0($S): 1" <<<"$out" ||
    fail "the dropped connection is still listed: $out"
[ "$(grep -c ' CO admin(1) ' <<<"$out")" = 1 ] ||
    fail "a CO login other than the shell's is listed: $out"
echo "$out" | sed -n "/Connected clients/,\$p"
ok "a logged-in client cut off mid-frame: its login and sessions are gone"
# ... and the audit log says so: the end of a login that ended with its
# connection is a logout record (CKR_SESSION_CLOSED) naming the client
cut=$(grep 'frame not complete within io_timeout' "$T/nimbusd.log" |
    grep -o 'pid=[0-9]*' | tail -n 1)
[ -n "$cut" ] || fail "the cut-off is not logged with the client's pid"
out=$("$B/nimbus-mgmt" -c "loginHSM CO admin sopin123; getAuditLog") ||
    fail "getAuditLog: $out"
grep -E " 1 +logout +0 +CKR_SESSION_CLOSED .* $cut\$" <<<"$out" ||
    fail "the end of the cut-off client's login ($cut) is not audited: $out"
ok "the audit log records the end of the cut-off client's login"
stop "$DPID" || fail "nimbusd (b) exit status"
exit 0
