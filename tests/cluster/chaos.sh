#!/bin/bash
# The cluster under failures (issue 14): three nodes; a client per node
# (its own node first in its servers list) makes token keys and signs as
# alice, as bob (who also changes his password), and creates users as the
# CO, while the leader is killed with -9 and restarted, then a follower,
# then a node is stopped (SIGSTOP) for 3 s and continued. After recovery
# every acknowledged key, user and password change is on every node,
# every key and user there was attempted by a client (and is there once),
# and the three nodes report the same digest at the same applied index.
# scripts/cluster-soak.sh runs many such rounds.
set -u
B=${NIMBUS_TOP_BUILDDIR:-$(pwd)}
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/chaoslib.sh"

CHAOS=$B/tests/cluster/chaosclient
export NIMBUS_MODULE=${NIMBUS_MODULE:-$B/.libs/libnimbus-pkcs11.so}
[ -x "$CHAOS" ] || { echo "SKIP: $CHAOS not built"; exit 77; }
[ -x "$CL_NIMBUSD" ] || { echo "SKIP: nimbusd not built"; exit 77; }

T=$(mktemp -d /tmp/nimbus-chaos-XXXXXX)
cleanup() {
    ch_clients_stop 2>/dev/null
    cl_test_cleanup
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*" >&2
    for f in "$T"/n*/nimbusd.log; do
        [ -f "$f" ] && { echo "--- $f"; tail -n 30 "$f"; } >&2
    done
    for f in "$T"/c?.log; do
        [ -f "$f" ] && { echo "--- $f"; tail -n 10 "$f"; } >&2
    done
    exit 1
}

ch_setup
echo "ok: 3 nodes, alice and bob"

# A login carried to the other nodes by a ticket: the ticket key is the
# same on every node of a cluster (each node's store master key is its
# own; tickets sealed under it were refused on the other nodes, and every
# session the module moved there was logged out).
RCLIENT=$B/tests/remote/rclient
printf 'servers = unix:%s, unix:%s, unix:%s\nserver_spread = sessions\n' \
    "$(cl_sock 1)" "$(cl_sock 2)" "$(cl_sock 3)" >"$T/spread.conf"
out=$(printf '%s\n' init open "loginuser alice $CH_ALICE" "opens 6" stateall quit |
    NIMBUS_CONF=$T/spread.conf "$RCLIENT" 2>&1)
grep -q "^stateall CKR_OK 6 st3=6$" <<<"$out" ||
    fail "sessions on the other nodes are not logged in by the ticket: $out"
echo "ok: a login made on node 1 holds on sessions of nodes 2 and 3 (ticket)"
ch_round 1
echo "ok: no acknowledged change lost, nothing unattempted, digests equal"
