#!/bin/bash
# nimbusd on a unix socket: modes, peer checks (SO_PEERCRED against
# allowed_uids / allowed_groups, with clients run as another uid through
# setpriv), limits, hostile frames, 256 connections, SIGTERM with a call in
# flight, SIGHUP, a second daemon on the same socket, daemon mode.
. "$(dirname "$0")/common.sh"

command -v setpriv >/dev/null || { echo "SKIP: setpriv missing"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: peer checks need root (setpriv)"; exit 77; }

S=$T/run/nimbusd.sock
# Group 0 may traverse $T: the refused peers below reach the socket through
# the file system and are stopped by the peer check alone.
chmod 0750 "$T"
as_nobody() { setpriv --reuid=65534 --regid=0 --clear-groups "$@"; }

# A slow KDF: the wrong login below is still running when SIGTERM comes.
write_conf "$T/a.conf" "listen = unix:$S" "kdf_iterations = 1500000"
start_fg "$T/a.conf" || fail "nimbusd did not start"

# --- modes: the socket 0660 in a 0750 directory, no temporary left
[ "$(stat -c %a "$T/run")" = 750 ] || fail "dir mode $(stat -c %a "$T/run")"
[ "$(stat -c %a "$S")" = 660 ] || fail "socket mode $(stat -c %a "$S")"
[ -S "$S" ] || fail "not a socket"
[ -z "$(ls -A "$T/run" | grep -v '^nimbusd.sock$')" ] || fail "leftovers: $(ls -A "$T/run")"
ok "socket 0660 in a 0750 directory"

"$DCLIENT" "unix:$S" hello || fail "own uid refused"
ok "own uid accepted"

# --- default allow list: own uid and root only; uid 65534 reaches the
# socket (group 0) and is refused by the peer check
rc=0; as_nobody "$DCLIENT" "unix:$S" hello 2>/dev/null || rc=$?
[ "$rc" = 3 ] || fail "uid 65534 not refused (rc $rc)"
grep -q 'refused unix:.* uid=65534 .*not in allowed_uids' "$T/nimbusd.log" ||
    fail "refusal not logged"
ok "peer not in allowed_uids refused and logged"

# --- hostile frames: each closes its own link, the daemon serves on
"$DCLIENT" "unix:$S" bigheader || fail "4 GiB header: link not closed"
grep -q 'frame over max_frame' "$T/nimbusd.log" || fail "big header not logged"
ok "oversized frame header refused on the header (link closed at once)"
"$DCLIENT" "unix:$S" garbage || fail "junk frame: link not closed"
"$DCLIENT" "unix:$S" nohello || fail "a call before the handshake was served"
"$DCLIENT" "unix:$S" hello || fail "daemon gone after hostile frames"
ok "junk frame and call before handshake end the link; daemon serves on"

# --- a storm of random requests from 4 clients at once (bogus call kinds,
# session ids, handles and counts, junk, truncation, no handshake): every
# one is answered or ends its own link, and the daemon serves on
SP=()
for seed in 1 2 3 4; do
    "$DCLIENT" "unix:$S" storm 1000 "$seed" >"$T/storm$seed.out" 2>&1 &
    SP+=("$!")
done
for p in "${SP[@]}"; do
    wait "$p" || fail "storm client: $(cat "$T"/storm*.out)"
done
kill -0 "$DPID" || fail "daemon died in the storm"
"$DCLIENT" "unix:$S" hello || fail "daemon does not serve after the storm"
ok "random request storm: $(cat "$T/storm1.out" | tr '\n' ' ')daemon serves on"

# --- 256 connections at once
out=$("$DCLIENT" "unix:$S" conns 256) || fail "256 connections: $out"
ok "256 concurrent connections ($out)"

# --- a second daemon on the same socket is refused, the first serves on
rc=0; "$NIMBUSD" -c "$T/a.conf" --foreground 2>"$T/second.err" || rc=$?
[ "$rc" = 1 ] || fail "second daemon rc $rc"
grep -q 'another process listens' "$T/second.err" || fail "second daemon: $(cat "$T/second.err")"
"$DCLIENT" "unix:$S" hello || fail "first daemon lost its socket"
ok "a second nimbusd does not steal the socket"

# --- SIGHUP reopens the log
mv "$T/nimbusd.log" "$T/old.log"
kill -HUP "$DPID"
for _ in $(seq 50); do [ -s "$T/nimbusd.log" ] && break; sleep 0.1; done
grep -q 'log reopened' "$T/nimbusd.log" || fail "SIGHUP: no new log"
ok "SIGHUP reopens the log"

# --- SIGTERM: a call in flight finishes and is answered, an idle link is
# ended, exit 0, the socket is gone
"$DCLIENT" "unix:$S" hold 20 >"$T/hold.out" 2>&1 &
HOLD=$!
"$DCLIENT" "unix:$S" login wrong-password >"$T/login.out" 2>&1 &
LOGIN=$!
sleep 0.3
rc=0; stop "$DPID" || rc=$?
[ "$rc" = 0 ] || fail "SIGTERM exit status $rc"
wait "$LOGIN" || fail "in-flight call not answered: $(cat "$T/login.out")"
grep -q 'rv=0xa0' "$T/login.out" || fail "login reply: $(cat "$T/login.out")"
wait "$HOLD" || fail "idle link not ended: $(cat "$T/hold.out")"
[ ! -e "$S" ] || fail "socket left after exit"
ok "SIGTERM: in-flight call answered, idle link ended, exit 0, socket removed"

# --- allowed_uids names uid 65534: it gets in, root no longer does
write_conf "$T/b.conf" "listen = unix:$S" "allowed_uids = 65534"
start_fg "$T/b.conf" || fail "nimbusd (b) did not start"
as_nobody "$DCLIENT" "unix:$S" hello || fail "allowed uid 65534 refused"
rc=0; "$DCLIENT" "unix:$S" hello 2>/dev/null || rc=$?
[ "$rc" = 3 ] || fail "root accepted though not listed (rc $rc)"
stop "$DPID" || fail "exit status"
ok "allowed_uids: listed uid accepted, unlisted root refused"

# --- allowed_groups: a supplementary group of the peer counts
write_conf "$T/c.conf" "listen = unix:$S" "allowed_groups = 4242"
start_fg "$T/c.conf" || fail "nimbusd (c) did not start"
setpriv --reuid=65534 --regid=0 --groups=4242 "$DCLIENT" "unix:$S" hello ||
    fail "peer in allowed group 4242 refused"
rc=0; as_nobody "$DCLIENT" "unix:$S" hello 2>/dev/null || rc=$?
[ "$rc" = 3 ] || fail "peer outside the groups accepted (rc $rc)"
stop "$DPID" || fail "exit status"
ok "allowed_groups: supplementary group accepted, others refused"

# --- max_connections
write_conf "$T/d.conf" "listen = unix:$S" "max_connections = 4"
start_fg "$T/d.conf" || fail "nimbusd (d) did not start"
"$DCLIENT" "unix:$S" conns 4 >/dev/null || fail "4 of max 4 refused"
rc=0; "$DCLIENT" "unix:$S" conns 5 >/dev/null 2>&1 || rc=$?
[ "$rc" != 0 ] || fail "a fifth connection was served"
grep -q 'max_connections (4) reached' "$T/nimbusd.log" || fail "not logged"
stop "$DPID" || fail "exit status"
ok "max_connections: the fifth is refused"

# --- daemon mode: nimbusd returns once the socket accepts
"$NIMBUSD" -c "$T/a.conf" || fail "daemon mode start"
"$DCLIENT" "unix:$S" hello || fail "socket not ready when nimbusd returned"
DPID=$(sed -n 's/^nimbus\[\([0-9]*\)\].*ready: listening.*/\1/p' "$T/nimbusd.log" | tail -n 1)
[ -n "$DPID" ] || fail "no pid in the log"
PIDS+=("$DPID")
kill -TERM "$DPID"
for _ in $(seq 50); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$DPID" 2>/dev/null && fail "daemon did not stop"
ok "daemon mode: ready when the parent returns"
exit 0
