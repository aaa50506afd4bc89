#!/bin/bash
# cluster-mgmt.sh - nimbus-mgmt's cluster commands end to end (the shell,
# the remote backend, the wire, nimbusd's server and its permission
# checks, the ops table) against nimbusd_fakecluster: nimbusd built with
# a cluster in memory (tests/remote/fakecluster.c) in place of the raft
# engine. Checks the per-server output of listNodes and getClusterDigest,
# each role's rights (a CU or AU reads, only a CO changes, nobody logged
# in does neither), that a change reaches the cluster once however many
# servers the shell has, and the cluster's refusals as the shell words
# them. The lead's 3-node harness (tests/cluster/) runs the real engine.
B=${NIMBUS_TOP_BUILDDIR:-$(pwd)}
export NIMBUSD=$B/tests/remote/nimbusd_fakecluster
. "$(dirname "$0")/common.sh"

[ -x "$NIMBUSD" ] || { echo "ERROR: $NIMBUSD not built"; exit 99; }
[ -x "$RCLIENT" ] || { echo "ERROR: $RCLIENT not built"; exit 99; }
MGMT=$B/nimbus-mgmt
start_fg "$T/d.conf" || fail "nimbusd did not start"

# The token: SO PIN sopin123, the default CU "user" with userpin1.
rc_token a
rc_stop a
CO="loginHSM CO admin sopin123"
CU="loginHSM CU user userpin1"
AU="loginHSM AU app_user appuser1"
"$MGMT" -y -c "$CO; changePswd AU app_user appuser1" >/dev/null ||
    fail "the CO could not give the AU a password"

# run CMDS: nimbus-mgmt -y -c CMDS; output in $out, status in $rc.
run() {
    out=$("$MGMT" -y -c "$1" 2>"$T/err")
    rc=$?
}
has() { grep -qxF -- "$1" <<<"$out" || fail "no line '$1' in: $out"; }
hasnt() { grep -qF -- "$1" <<<"$out" && fail "a line with '$1' in: $out"; }
# row MARK ID ADDRESS ROLE MEMBER TERM APPLIED LAG: a listNodes row
row() {
    printf '%s %-10s %-32s %-10s %-8s %-10s %-14s %s\n' "$@"
}
# digest_hex INDEX: the fake's digest at an applied index
digest_hex() {
    local i h=
    for i in $(seq 0 31); do
        h=$h$(printf %02x $(((i * 7 + $1) & 255)))
    done
    echo "$h"
}
NLI="HSM Error: not logged in as a user who may do this (CKR_USER_NOT_LOGGED_IN) on server 0($S)"

# --- the leader's view, to each reader
for login in "$CO" "$CU" "$AU"; do
    who=${login#loginHSM }
    who=${who%% *}
    run "$login; listNodes; getClusterDigest"
    [ $rc -eq 0 ] || fail "$who: listNodes (exit $rc): $out"
    has "Nodes on server 0($S):"
    has "This node 1: leader, term 3, commit index 40, applied index 40"
    has "Leader: node 1(127.0.0.1:21001)"
    has "Number of nodes found 3"
    has "$(row '*' 1 127.0.0.1:21001 leader voter 3 40 0)"
    has "$(row ' ' 2 127.0.0.1:21002 follower voter - - 0)"
    has "$(row ' ' 3 127.0.0.1:21003 follower voter - - 5)"
    has "Peers refused by this node since it started: 7"
    has "digest on server 0($S): $(digest_hex 40) applied 40"
    ok "$who: listNodes and getClusterDigest"
done

# --- nobody logged in reads nothing; a CU, an AU and nobody change nothing
run "listNodes"
[ $rc -eq 1 ] || fail "listNodes logged out: exit $rc"
has "listNodes failed: $NLI"
run "getClusterDigest"
has "getClusterDigest failed: $NLI"
hasnt "digest on server"
for who in unauth CU AU; do
    case $who in
    unauth) login= ;;
    CU) login="$CU;" ;;
    AU) login="$AU;" ;;
    esac
    for cmd in "addNode 4 127.0.0.1:21004" "removeNode 3" "transferLeader 2"; do
        run "$login $cmd"
        [ $rc -eq 1 ] || fail "$who: $cmd: exit $rc"
        has "${cmd%% *} failed: $NLI"
    done
done
run "$CO; listNodes"
has "This node 1: leader, term 3, commit index 40, applied index 40"
has "Number of nodes found 3"
grep -q 'cluster: ' "$T/nimbusd.log" && fail "a refused change reached the cluster"
ok "refused: reading logged out, changes by CU, AU, nobody (nothing changed)"

# --- a CO's changes
run "$CO; addNode 4 127.0.0.1:21004; listNodes; getClusterDigest"
[ $rc -eq 0 ] || fail "addNode (exit $rc): $out"
has "addNode success on server 0($S)"
has "This node 1: leader, term 3, commit index 41, applied index 41"
has "$(row ' ' 4 127.0.0.1:21004 follower voter - - 0)"
has "digest on server 0($S): $(digest_hex 41) applied 41"
grep -qE "wire: uid=$(id -u) gid=$(id -g) pid=[0-9]+, user 1: cluster: add node 4 at 127.0.0.1:21004: 0x0\$" \
    "$T/nimbusd.log" || fail "nimbusd did not log the change and who made it"
ok "addNode: the node is listed, the digest and index moved, the change logged"

# the cluster's refusals, worded for the operator
refused() {
    run "$CO; $1"
    [ $rc -eq 1 ] || fail "$1: exit $rc"
    has "${1%% *} failed: HSM Error: $2 on server 0($S)"
}
refused "addNode 4 127.0.0.1:21004" "invalid node id or address (CKR_ARGUMENTS_BAD)"
refused "addNode 13 127.0.0.1:21013" \
    "no answer in time: the change may still take effect (CKR_FUNCTION_FAILED)"
refused "addNode 14 127.0.0.1:21014" \
    "no leader reachable, or the server failed (see its log) (CKR_DEVICE_ERROR)"
refused "removeNode 9" "no such node (CKR_SLOT_ID_INVALID)"
refused "transferLeader 9" "no such node (CKR_SLOT_ID_INVALID)"
ok "the cluster's refusals name their reason"

# bad arguments never leave the shell
before=$(grep -c 'cluster: ' "$T/nimbusd.log")
for cmd in "addNode 0 h:1" "addNode 5 h:70000" "addNode 5 h" "removeNode 4294967296"; do
    run "$CO; $cmd"
    [ $rc -eq 1 ] && grep -q "^usage: ${cmd%% *}" "$T/err" ||
        fail "$cmd: not a usage error (exit $rc)"
done
[ "$(grep -c 'cluster: ' "$T/nimbusd.log")" = "$before" ] ||
    fail "a bad argument reached nimbusd"
ok "usage errors are not sent"

run "$CO; removeNode 4; listNodes"
has "removeNode success on server 0($S)"
has "Number of nodes found 3"
hasnt "127.0.0.1:21004"
ok "removeNode"

# --- two servers (the same nimbusd twice): one table and one digest per
# server, and one change for the cluster (a second add of node 5 would
# be refused: the fake takes an id once)
printf 'servers = unix:%s, unix:%s\nlog_level = warn\n' "$S" "$S" \
    >"$T/client2.conf"
NIMBUS_CONF=$T/client2.conf run "$CO; addNode 5 127.0.0.1:21005"
[ $rc -eq 0 ] || fail "addNode with two servers (exit $rc): $out"
[ "$(grep -c '^addNode ' <<<"$out")" = 1 ] || fail "not one addNode line: $out"
[ "$(grep -c 'cluster: add node 5 ' "$T/nimbusd.log")" = 1 ] ||
    fail "the change did not reach the cluster once"
NIMBUS_CONF=$T/client2.conf run "$CO; listNodes; getClusterDigest"
has "Nodes on server 0($S):"
has "Nodes on server 1($S):"
has "digest on server 0($S): $(digest_hex 43) applied 43"
has "digest on server 1($S): $(digest_hex 43) applied 43"
ok "two servers: one table and digest each, one change"

# --- the leadership handed over: this node's view as a follower
run "$CO; transferLeader 2; listNodes"
[ $rc -eq 0 ] || fail "transferLeader (exit $rc): $out"
has "transferLeader success on server 0($S)"
has "This node 1: follower, term 4, commit index 43, applied index 43"
has "Leader: node 2(127.0.0.1:21002)"
has "$(row '*' 1 127.0.0.1:21001 follower voter 4 43 0)"
has "$(row ' ' 2 127.0.0.1:21002 leader voter 4 - -)"
has "$(row ' ' 3 127.0.0.1:21003 - voter - - -)"
ok "transferLeader: a follower's view (its own lag only)"

stop "$DPID" || fail "nimbusd exited $?"
echo "PASS: cluster-mgmt"
