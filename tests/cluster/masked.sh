#!/bin/bash
# The issue's "Sync status" and "Operating it" items on 3 real nodes:
#  1. createUser, deleteUser and changePswd through a shell that speaks to
#     the nodes of one cluster write once and report "on N nodes" with the
#     number of nodes that applied the change (3; 2 with one node down).
set -u
B=${NIMBUS_TOP_BUILDDIR:-$(pwd)}
. "$(dirname "$0")/lib.sh"

RCLIENT=$B/tests/remote/rclient
export NIMBUS_MODULE=${NIMBUS_MODULE:-$B/.libs/libnimbus-pkcs11.so}
[ -x "$RCLIENT" ] || { echo "SKIP: $RCLIENT not built"; exit 77; }
[ -x "$CL_NIMBUSD" ] || { echo "SKIP: nimbusd not built"; exit 77; }

T=$(mktemp -d /tmp/nimbus-masked-XXXXXX)
cleanup() {
    cl_stop_all
    [ -n "${CL_KEEP:-}" ] && echo "kept $T" || rm -rf "$T"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*" >&2
    for f in "$T"/n*/nimbusd.log; do
        [ -f "$f" ] && { echo "--- $f"; tail -n 30 "$f"; } >&2
    done
    exit 1
}
ok() { echo "ok: $*"; }
has() { grep -qF -- "$2" <<<"$out" || fail "$1: no '$2' in: $out"; }
hasnt() { ! grep -qF -- "$2" <<<"$out" || fail "$1: '$2' in: $out"; }

# all NODES... COMMANDS: nimbus-mgmt speaking to the nodes listed.
all() {
    local nodes=$1 s="" n
    shift
    for n in $nodes; do s="$s${s:+, }unix:$(cl_sock "$n")"; done
    echo "servers = $s" >"$T/all.conf"
    NIMBUS_CONF=$T/all.conf "$CL_MGMT" -y -c "$*" 2>&1
}
app() {
    local n=$1
    shift
    printf '%s\n' init "$@" quit |
        NIMBUS_CONF=$CL_DIR/n$n/client.conf "$RCLIENT" 2>>"$T/rclient.log"
}
leader() {
    cl_mgmt 1 "loginHSM CO admin $CL_CO_PW; listNodes" |
        sed -n 's/^Leader: node \([0-9]*\)(.*/\1/p' | head -n 1
}

cl_init "$T" 3 || fail "PKI"
cl_start_cluster || fail "the cluster did not form"
CO="loginHSM CO admin $CL_CO_PW"

# --- 1. "on N nodes"
out=$(all "1 2 3" "$CO; createUser CU carol carolpw1") || fail "createUser: $out"
has "createUser through 3 servers" "Creating User carol(CU) on 3 nodes"
hasnt "createUser is made once for the cluster" "failed:"
out=$(all "1 2 3" "$CO; changePswd CU carol carolpw2") || fail "changePswd: $out"
has "changePswd through 3 servers" "Changing password for carol(CU) on 3 nodes"
out=$(app 3 open "loginuser carol carolpw2")
grep -q "^loginuser CKR_OK" <<<"$out" || fail "carol's new password on node 3: $out"
out=$(all "1 2 3" "$CO; deleteUser CU carol") || fail "deleteUser: $out"
has "deleteUser through 3 servers" "Deleting user carol(CU) on 3 nodes"
[ "$(grep -c "deleteUser success" <<<"$out")" = 1 ] ||
    fail "deleteUser made more than once: $out"
ok "createUser, changePswd, deleteUser through 3 servers of one cluster: made once, on 3 nodes"

L=$(leader)
[ -n "$L" ] || fail "no leader in listNodes"
out=$(all "$L" "$CO; createUser CU dave davepw12") || fail "createUser via leader: $out"
has "createUser through the leader alone" "Creating User dave(CU) on 3 nodes"
ok "a shell speaking to the leader alone counts the followers that have the entry (3)"

F=1
[ "$L" = 1 ] && F=2
out=$(all "$F" "$CO; createUser CU erin erinpw12") || fail "createUser via follower: $out"
has "createUser through a follower alone" "Creating User erin(CU) on 1 nodes"
ok "a shell speaking to one follower alone counts that node (1)"

D=3
[ "$L" = 3 ] && D=2
cl_stop "$D"
rest=""
for n in 1 2 3; do [ "$n" != "$D" ] && rest="$rest $n"; done
out=$(all "$rest" "$CO; createUser CU frank frankpw1")
has "createUser with node $D down" "Creating User frank(CU) on 2 nodes"
ok "with node $D down: on 2 nodes"
cl_launch "$D"
cl_wait_ready "$D" || fail "node $D did not come back"
