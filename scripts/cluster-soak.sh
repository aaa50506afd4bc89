#!/bin/bash
# cluster-soak.sh [ROUNDS] - the failure rounds of tests/cluster/chaos.sh
# (kill -9 of the leader, of a follower, SIGSTOP/SIGCONT of a node, under
# three clients; then no acknowledged change lost, nothing unattempted,
# equal digests) ROUNDS times (default 50) on one 3-node cluster, then a
# catch-up measurement (tests/cluster/catchup.sh's). Not in make check.
# Run from the build directory; prints one line per round and a summary.
set -u
ROUNDS=${1:-50}
B=$(pwd)
S=$(cd "$(dirname "$0")/.." && pwd)
export NIMBUS_TOP_BUILDDIR=$B NIMBUS_TOP_SRCDIR=$S
. "$S/tests/cluster/lib.sh"
. "$S/tests/cluster/chaoslib.sh"
CHAOS=$B/tests/cluster/chaosclient
export NIMBUS_MODULE=${NIMBUS_MODULE:-$B/.libs/libnimbus-pkcs11.so}
[ -x "$CHAOS" ] || { echo "build tests/cluster/chaosclient first (make check)"; exit 2; }

T=$(mktemp -d /tmp/nimbus-soak-XXXXXX)
cleanup() {
    ch_clients_stop 2>/dev/null
    cl_stop_all
    [ -n "${CL_KEEP:-}" ] && echo "kept $T" || rm -rf "$T"
}
trap cleanup EXIT
# a failed round ends the soak (the state is kept for a look with CL_KEEP)
fail() {
    echo "FAIL: $*" >&2
    CL_KEEP=1 # the dirs and logs of a failed soak are worth a look
    echo "soak: $((r - 1)) of $ROUNDS rounds passed before the failure"
    exit 1
}

r=0
ch_setup
start=$(date +%s)
for ((r = 1; r <= ROUNDS; r++)); do
    # not in a pipe: a round restarts nodes (CL_PID) and moves bob's
    # password (CH_BOB) for the next one
    ch_round "$r"
done
echo "soak: $ROUNDS of $ROUNDS rounds passed in $(($(date +%s) - start)) s"
ch_clients_stop 2>/dev/null
cl_stop_all
# the catch-up figure: a node that missed CATCHUP_N (10,000) entries, on a
# fresh cluster (the test prints the time from its restart to equal
# digests, the node's start included)
bash "$S/tests/cluster/catchup.sh" | grep '^ok\|^FAIL'
