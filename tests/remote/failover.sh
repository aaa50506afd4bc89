#!/bin/bash
# failover.sh - one application, two servers: two nimbusd on one store
# (what a client sees of a healthy cluster: the same users, keys and
# master key on both). The module, configured with both, spreads its
# sessions over them and logs in once; the second server's sessions are
# logged in with a login ticket. kill -9 of one server: at most the call
# in flight fails (CKR_DEVICE_ERROR), every session signs again without a
# new C_Login, a multi-part operation caught on the dead server answers
# CKR_OPERATION_NOT_INITIALIZED and the session stays usable. A password
# change made through the other server makes the ticket refused: moved
# sessions are then not logged in, and a new C_Login works. With
# login_ticket_lifetime = 0 the second server's sessions stay logged out.
# server_spread = application keeps an application's sessions together.
# SIGSTOP of a server: the call caught on it fails after call_timeout, the
# other sessions go on.
. "$(dirname "$0")/common.sh"

SA=$T/run/a.sock
SB=$T/run/b.sock
mkdir -p "$T/run"

# conf NAME SOCKET [LINES...]
conf() {
    local n=$1 s=$2
    shift 2
    {
        echo "store = $T/store"
        echo "kdf_iterations = 1000"
        echo "log_level = info"
        echo "log_file = $T/$n.log"
        echo "listen = unix:$s"
        printf '%s\n' "$@"
    } >"$T/$n.conf"
}

declare -A NPID
# up NAME: nimbusd NAME in the background, waiting for its ready line.
up() {
    local n=$1 i
    : >"$T/$n.log"
    "$NIMBUSD" -c "$T/$n.conf" --foreground 2>>"$T/stderr.log" &
    NPID[$n]=$!
    PIDS+=("$!")
    for i in $(seq 300); do
        grep -q 'ready: listening' "$T/$n.log" 2>/dev/null && return 0
        kill -0 "${NPID[$n]}" 2>/dev/null || fail "nimbusd $n died at start"
        sleep 0.1
    done
    fail "nimbusd $n is not ready"
}
down9() {
    kill -KILL "${NPID[$1]}"
    wait "${NPID[$1]}" 2>/dev/null
    return 0
}

# rcany NAME CMD: as rc, whatever the answer.
rcany() {
    echo "$2" >&"${RC_IN[$1]}"
    IFS= read -r -t 120 LINE <&"${RC_OUT[$1]}" || fail "$1: no answer to '$2'"
}

# field NAME: the value of NAME=... in LINE (0 when absent)
field() {
    local v
    v=$(grep -oE "(^| )$1=[0-9]+" <<<"$LINE" | cut -d= -f2)
    echo "${v:-0}"
}

conf a "$SA"
conf b "$SB"
printf 'servers = unix:%s, unix:%s\nserver_spread = sessions\nlog_level = info\nlog_file = %s/client.log\ncall_timeout = 5\n' \
    "$SA" "$SB" "$T" >"$T/client.conf"
# a second application that only knows server a (the password change
# "through the other node")
printf 'servers = unix:%s\nlog_level = warn\nlog_file = %s/client.log\n' \
    "$SA" "$T" >"$T/onlya.conf"
up a
up b

# ---- spreading, one login, the ticket on the second server.
# The round robin: initpin's session on a, cur on b, the set b a b a b a
# after the first call that lands on a ... (which server each gets does
# not matter below, only that both get some).
rc_token app
rc app "genec k1" CKR_OK
rc app "opens 6" CKR_OK
rc app "signall k1" CKR_OK
[ "$(field ok)" = 6 ] || fail "signall before the kill: $LINE"
rc app "stateall" CKR_OK
[ "$(field st3)" = 6 ] || fail "the 6 sessions are not all logged in RW: $LINE"
grep -q 'logged in with a ticket' "$T/b.log" ||
    fail "no session landed on b logged in with a ticket"
grep -q 'logged in$' "$T/a.log" || fail "no password login on a"
grep -q 'logged in with a ticket' "$T/a.log" &&
    fail "a (the password login's server) redeemed a ticket"
ok "6 sessions spread over 2 servers, one C_Login, b logged in by ticket"
# Two sessions on two servers, a session object each (both servers'
# first: the same id on each server): the first one's handle through the
# second session names nothing, not the other server's object.
rc app xsobj CKR_OBJECT_HANDLE_INVALID
ok "a session object of another server: CKR_OBJECT_HANDLE_INVALID"

# ---- a multi-part operation left open on every session
rc app "updall k1" CKR_OK
# ---- and a session object on cur's server
rc app "sobj s1" CKR_OK
rc app "count s1" CKR_OK
[ "$(awk '{ print $3 }' <<<"$LINE")" = 1 ] || fail "the session object: $LINE"

# ---- kill -9 of b (cur's server) while cur signs in a loop
echo "signfor 30 k1" >&"${RC_IN[app]}"
sleep 1
down9 b
IFS= read -r -t 120 LINE <&"${RC_OUT[app]}" || fail "no answer to signfor"
n=$(awk '{ print $3 }' <<<"$LINE")
case "$(awk '{ print $2 }' <<<"$LINE")" in
CKR_DEVICE_ERROR | CKR_FUNCTION_FAILED) ;;
*) fail "the sign in flight on the killed server: $LINE" ;;
esac
[ "$n" -gt 0 ] || fail "no signature before the kill: $LINE"
ok "kill -9 of b: the call in flight answered $(awk '{ print $2 }' <<<"$LINE") after $n signatures"

rc app "sign k1" CKR_OK
ok "cur (moved to a) signs again without a new C_Login"
rc app "count s1" CKR_OK
[ "$(awk '{ print $3 }' <<<"$LINE")" = 0 ] ||
    fail "a session object of the dead server is still found: $LINE"
ok "the session object made on b went with it"
rcany app "updall2"
# the sessions that were on b lost their operation; those on a finish it
lost=$(field CKR_OPERATION_NOT_INITIALIZED)
done_=$(field ok)
[ "$lost" -ge 1 ] && [ "$done_" -ge 1 ] && [ $((lost + done_)) = 6 ] ||
    fail "multi-part operations after the kill: $LINE"
ok "operations caught on b: $lost CKR_OPERATION_NOT_INITIALIZED; $done_ finished on a"
rc app "signall k1" CKR_OK
[ "$(field ok)" = 6 ] || fail "signall after the kill: $LINE"
rc app "stateall" CKR_OK
[ "$(field st3)" = 6 ] || fail "sessions after the kill: $LINE"
ok "all 6 sessions sign again after kill -9, still logged in"
grep -q 'failover: session .* moved to server 1' "$T/client.log" ||
    fail "the client log does not say a session moved"

# ---- b back; a killed: the sessions move to b with the ticket
up b
rc app "opens 2" CKR_OK # land anywhere: the round robin goes on
down9 a
rc app "signall k1" CKR_OK
[ "$(field ok)" = 8 ] || fail "signall after a's kill: $LINE"
ok "a killed: all 8 sessions move to b and sign"

# ---- a password change through a; b dies: the ticket is refused
up a
export NIMBUS_CONF=$T/onlya.conf
rc_start chpw
export NIMBUS_CONF=$T/client.conf
rc chpw init CKR_OK
rc chpw "initpin sopin123 userpin2" CKR_OK
rc_stop chpw
down9 b
rcany app "signall k1"
[ "$(field ok)" = 0 ] || fail "a session still signs after the password change: $LINE"
rc app "stateall" CKR_OK
[ "$(field st2)" = 8 ] || fail "sessions after the password change: $LINE"
grep -q 'refused the login ticket' "$T/client.log" ||
    fail "the client log does not show the ticket refused"
ok "after a password change through a the moved sessions are not logged in"
rc app "login userpin2" CKR_OK
rc app "signall k1" CKR_OK
[ "$(field ok)" = 8 ] || fail "signall after the new login: $LINE"
ok "a new C_Login with the new password: all sessions sign"

# ---- C_SetPIN of the application itself carries the login on
up b
rc app "opens 2" CKR_OK
rc app "setpin userpin2 userpin3" CKR_OK
rc app "signall k1" CKR_OK
[ "$(field ok)" = 10 ] || fail "signall after the application's own C_SetPIN: $LINE"
down9 a
rc app "signall k1" CKR_OK
[ "$(field ok)" = 10 ] || fail "signall after C_SetPIN and a's kill: $LINE"
ok "the application's own C_SetPIN: a new ticket, sessions move logged in"
rc_stop app

# ---- SIGSTOP of a server: the call caught on it answers CKR_DEVICE_ERROR
# after call_timeout (5 s here), its other sessions move at once
up a
rc_start app3
rc app3 init CKR_OK
rc app3 open CKR_OK
rc app3 "login userpin3" CKR_OK
rc app3 "opens 4" CKR_OK
rc app3 "signall k1" CKR_OK
[ "$(field ok)" = 4 ] || fail "signall before SIGSTOP: $LINE"
kill -STOP "${NPID[b]}"
t0=$(date +%s)
rcany app3 "signall k1"
t1=$(date +%s)
kill -CONT "${NPID[b]}"
[ "$(field ok)" -ge 3 ] && [ "$(field CKR_DEVICE_ERROR)" -le 1 ] &&
    [ $(($(field ok) + $(field CKR_DEVICE_ERROR))) = 4 ] ||
    fail "signall with b stopped: $LINE"
[ $((t1 - t0)) -lt 20 ] || fail "signall with b stopped took $((t1 - t0)) s"
rc app3 "signall k1" CKR_OK
[ "$(field ok)" = 4 ] || fail "signall after SIGSTOP and SIGCONT: $LINE"
ok "b stopped: at most the call caught on it failed ($((t1 - t0)) s), all sign again"
rc_stop app3

# ---- server_spread = application (the default): every session of the
# application on one server, session objects shared, all move together
printf 'servers = unix:%s, unix:%s\nlog_level = info\nlog_file = %s/client.log\ncall_timeout = 5\n' \
    "$SA" "$SB" "$T" >"$T/app.conf"
na=$(grep -c 'logged in$' "$T/a.log")
nb=$(grep -c 'logged in$' "$T/b.log")
export NIMBUS_CONF=$T/app.conf
rc_start app4
export NIMBUS_CONF=$T/client.conf
rc app4 init CKR_OK
rc app4 open CKR_OK
rc app4 "login userpin3" CKR_OK
rc app4 "opens 4" CKR_OK
rc app4 xsobj CKR_OK
ok "server_spread = application: a session object is seen by the other sessions"
if [ "$(grep -c 'logged in$' "$T/a.log")" -gt "$na" ]; then
    home=a
elif [ "$(grep -c 'logged in$' "$T/b.log")" -gt "$nb" ]; then
    home=b
else
    fail "app4's password login is in neither server's log"
fi
down9 $home
rc app4 "signall k1" CKR_OK
[ "$(field ok)" = 4 ] || fail "signall after app4's server died: $LINE"
ok "server_spread = application: $home killed, all sessions move and sign"
rc_stop app4
up $home

# ---- tickets off on the server that takes the password (a, the first)
kill -TERM "${NPID[a]}"
wait "${NPID[a]}" 2>/dev/null
conf a "$SA" "login_ticket_lifetime = 0"
up a
rc_start app2
rc app2 init CKR_OK
rc app2 open CKR_OK
rc app2 "login userpin3" CKR_OK
rc app2 "opens 4" CKR_OK
# (C_GetSessionInfo shows the primary's login: the sessions on b are
# found out by what they cannot see, the private key)
rcany app2 "signall k1"
[ "$(field ok)" -ge 1 ] && [ "$(field ok)" -lt 4 ] ||
    fail "tickets off: wanted sessions that sign (on a) and sessions that cannot (on b): $LINE"
ok "login_ticket_lifetime = 0: sessions on the other server are not logged in"
rc_stop app2
ok "failover"
