#!/bin/bash
# A forked child keeps none of its parent's connection: a parent logged in
# through nimbusd forks a child that never calls C_Initialize; the child
# holds no socket of the parent's, the parent's calls go on, and once the
# parent exits nimbusd drops its connection (info server) while the child
# still lives. Then the child's own C_Initialize and login work.
. "$(dirname "$0")/common.sh"

[ -x "$RCLIENT" ] || { echo "SKIP: $RCLIENT not built"; exit 77; }
MGMT=$B/nimbus-mgmt
start_fg "$T/d.conf" || fail "nimbusd did not start"

rc_signer a
parent=${RC_PID[a]}

socks() { ls -l "/proc/$1/fd" 2>/dev/null | grep -o 'socket:\[[0-9]*\]' | sort -u; }
# the lines of info server for pid $1
clients_of() {
    "$MGMT" -c "loginHSM CO admin sopin123; info server 0" 2>&1 |
        grep -E "^  uid=[0-9]+ gid=[0-9]+ pid=$1 "
}
ps=$(socks "$parent")
[ -n "$ps" ] || fail "the application holds no socket"
clients_of "$parent" | grep -q "CU user" || fail "the parent is not listed logged in"

rc a "forkidle $T/child.status k1 userpin1" CKR_OK
child=$(awk '{ print $3 }' <<<"$LINE")
PIDS+=("$child")
kill -0 "$child" || fail "no child"
cs=$(socks "$child")
shared=$(comm -12 <(echo "$ps") <(echo "$cs"))
[ -z "$shared" ] || fail "the child holds the parent's sockets: $shared"
[ -z "$cs" ] || fail "the child holds sockets: $cs"
ok "the child holds none of the parent's sockets"

rc a "sign k1" CKR_OK
rc a "threads 4 k1" CKR_OK
ok "the parent's calls go on after the fork"

# the parent exits without C_Finalize; the child lives on
rc_stop a
gone=
for _ in $(seq 50); do
    if [ -z "$(clients_of "$parent")" ]; then
        gone=1
        break
    fi
    sleep 0.1
done
[ -n "$gone" ] || fail "nimbusd still holds the exited parent's connection: $(clients_of "$parent")"
kill -0 "$child" || fail "the child died"
ok "the parent exited: nimbusd dropped its connection while the child lives"

kill -USR1 "$child"
for _ in $(seq 300); do
    [ -s "$T/child.status" ] && break
    sleep 0.1
done
[ "$(cat "$T/child.status" 2>/dev/null)" = 0 ] ||
    fail "the child's own C_Initialize, login and sign: status $(cat "$T/child.status" 2>/dev/null)"
ok "then the child's own C_Initialize, login and sign work"
stop "$DPID" || fail "nimbusd exit status $?"
echo "PASS: forkexit"
