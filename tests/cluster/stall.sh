#!/bin/bash
# No node stalls while a write waits for the majority: with two of three
# nodes stopped (SIGSTOP), a write through node 3 waits; meanwhile another
# application on node 3 signs, opens sessions and reads attributes, each
# call within QUICK_MS, while the write is still waiting. After SIGCONT
# the write completes, once (one audit record, the same digest on every
# node).
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/chaoslib.sh"
cl_test stall

QUICK_MS=1000
KEYHEX=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff
declare -A RC_IN RC_OUT RC_PID

ms() { echo $(($(date +%s%N) / 1000000)); }

# rc_start NAME N: rclient against node N, driven through two fifos.
rc_start() {
    local fi fo
    mkfifo "$T/$1.in" "$T/$1.out"
    NIMBUS_CONF=$CL_DIR/n$2/client.conf "$RCLIENT" <"$T/$1.in" \
        >"$T/$1.out" 2>>"$T/rclient.log" &
    RC_PID[$1]=$!
    exec {fi}>"$T/$1.in"
    exec {fo}<"$T/$1.out"
    RC_IN[$1]=$fi
    RC_OUT[$1]=$fo
}

# rc NAME CMD WANT: sends CMD, reads the answer into LINE, checks its
# second word and sets MS to the wall time of the call.
rc() {
    local t0 got
    t0=$(ms)
    echo "$2" >&"${RC_IN[$1]}"
    IFS= read -r -t 60 LINE <&"${RC_OUT[$1]}" || fail "$1: no answer to '$2'"
    MS=$(($(ms) - t0))
    got=$(awk '{ print $2 }' <<<"$LINE")
    [ "$got" = "$3" ] || fail "$1: '$2' -> '$LINE', wanted $3"
}

rc_stop() {
    echo quit >&"${RC_IN[$1]}"
    wait "${RC_PID[$1]}" || fail "$1 exited $?"
    exec {RC_IN[$1]}>&- {RC_OUT[$1]}<&-
}

resume() {
    for n in 1 2; do
        [ -n "${CL_PID[$n]:-}" ] && kill -CONT "${CL_PID[$n]}" 2>/dev/null
    done
}

cl_init "$T" 3 || fail "PKI"
cl_start_cluster || fail "the cluster did not form"
out=$(cl_mgmt 1 "loginHSM CO admin $CL_CO_PW; createUser CU alice alicepw1; createUser CU bob bobpw123") ||
    fail "createUser: $out"
ok "3 nodes, alice and bob"

# w (alice) will write; o (bob) is the other application; both on node 3
rc_start w 3
rc w init CKR_OK
rc w open CKR_OK
rc w "loginuser alice alicepw1" CKR_OK
rc w "aes kd $KEYHEX" CKR_OK
rc_start o 3
rc o init CKR_OK
rc o open CKR_OK
rc o "loginuser bob bobpw123" CKR_OK
rc o "genec kb" CKR_OK
rc o "sign kb" CKR_OK
# node 3 has applied the key (both were made through it): nothing to wait
ok "alice's key kd and bob's key pair kb made through node 3"

trap 'resume; cl_test_cleanup' EXIT
kill -STOP "${CL_PID[1]}" "${CL_PID[2]}"
t0=$(ms)
echo "destroy kd" >&"${RC_IN[w]}"
sleep 0.5
IFS= read -r -t 0 _ <&"${RC_OUT[w]}" &&
    fail "the destroy answered without a majority"
worst=0
for cmd in "sign kb" open "count kb" "sign kb" "sobj s1" "count s1"; do
    want=CKR_OK
    rc o "$cmd" "$want"
    [ "$MS" -lt "$QUICK_MS" ] ||
        fail "'$cmd' on node 3 took $MS ms while a write waited for the majority"
    [ "$MS" -gt "$worst" ] && worst=$MS
done
# the count of kb is its two halves: attributes read while the write waits
grep -q "^count CKR_OK 1$" <<<"$LINE" || fail "session object count: $LINE"
IFS= read -r -t 0 _ <&"${RC_OUT[w]}" &&
    fail "the destroy answered without a majority"
ok "while the destroy waits, bob signs, opens a session, finds and reads objects on node 3 (slowest $worst ms)"

resume
IFS= read -r -t 60 LINE <&"${RC_OUT[w]}" || fail "the destroy never answered"
[ "$LINE" = "destroy CKR_OK" ] || fail "the destroy after SIGCONT: $LINE"
ok "after SIGCONT the destroy completes ($(($(ms) - t0)) ms after it began)"
trap cl_test_cleanup EXIT

rc w "count kd" CKR_OK
[ "$LINE" = "count CKR_OK 0" ] || fail "kd is still there on node 3: $LINE"
rc_stop w
rc_stop o
for n in 1 2; do
    out=$(app "$n" open "loginuser alice alicepw1" "count kd")
    has "kd on node $n" "count CKR_OK 0"
done
out=$(cl_mgmt 1 "loginHSM CO admin $CL_CO_PW; getAuditLog") ||
    fail "getAuditLog: $out"
c=$(grep -c " destroy " <<<"$out")
[ "$c" = 1 ] || fail "$c destroy records in the audit log: $out"
ch_digests >/dev/null # the same digest at one applied index, or fail
ok "kd is gone on every node, one destroy record, equal digests"

for n in 1 2 3; do
    cl_stop "$n" || fail "node $n did not stop cleanly"
done
ok "the three nodes stop on SIGTERM"
