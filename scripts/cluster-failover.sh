#!/usr/bin/env bash
# cluster-failover.sh BUILDDIR [ROUNDS]: failover as a signing application
# sees it (issue 14, docs/performance.md). Three nimbusd on loopback
# (tests/cluster/lib.sh, the shipped timeouts); an application (rclient
# through the module, servers = the three nodes) signs in a loop with a
# token key for 6 s; 2 s in, kill -9 of (a) the node it is on, then, in
# the next round, (b) the leader when that is another node. GAP is the
# longest time between two good signatures; FAILS the calls that failed
# (the call caught on the dead node). The killed node is restarted from
# its directories and catches up before the next round.
set -euo pipefail
b=$(cd "${1:-.}" && pwd)
rounds=${2:-5}
src=$(cd "$(dirname "$0")/.." && pwd)
export NIMBUS_TOP_BUILDDIR=$b NIMBUS_TOP_SRCDIR=$src
export NIMBUS_MODULE=$b/.libs/libnimbus-pkcs11.so
. "$src/tests/cluster/lib.sh"
RCLIENT=$b/tests/remote/rclient

T=$(mktemp -d /tmp/nimbus-cluster-failover-XXXXXX)
trap 'cl_stop_all; [ -n "${KEEP:-}" ] && echo "kept $T" || rm -rf "$T"' EXIT
cl_init "$T" 3
cl_start_cluster
cl_mgmt 1 "loginHSM CO admin $CL_CO_PW; createUser CU app apppw123" >/dev/null
printf 'servers = unix:%s, unix:%s, unix:%s\nlog_level = info\nlog_file = %s\n' \
    "$(cl_sock 1)" "$(cl_sock 2)" "$(cl_sock 3)" "$T/app.log" >"$T/app.conf"
export NIMBUS_CONF=$T/app.conf
printf '%s\n' init open "loginuser app apppw123" "genec fk" quit |
    "$RCLIENT" | grep -q "^genec CKR_OK" || { echo "genec failed"; exit 1; }

leader_of() {
    local n
    for n in 1 2 3; do
        [ -n "${CL_PID[$n]:-}" ] || continue
        cl_mgmt "$n" "loginHSM CO admin $CL_CO_PW; listNodes" 2>/dev/null |
            sed -n 's/^Leader: node \([0-9]*\).*/\1/p' | head -1 && return 0
    done
}

echo "round target      killed  gap_ms  fails  signatures  last failure"
for ((r = 1; r <= rounds; r++)); do
    for what in its-node leader; do
        mkfifo "$T/in"
        "$RCLIENT" <"$T/in" >"$T/out" 2>>"$T/rclient.log" &
        app=$!
        exec {fd}>"$T/in"
        printf '%s\n' init open "loginuser app apppw123" "signwatch 6 fk" \
            quit >&$fd
        # the module's primary is the server at (pid % 3) of the list
        node=$((app % 3 + 1))
        sleep 2
        victim=$node
        if [ "$what" = leader ]; then
            victim=$(leader_of)
            if [ -z "$victim" ] || [ "$victim" = "$node" ]; then
                # the leader is the app's own node: case (a) again
                victim=$node
            fi
        fi
        cl_kill "$victim"
        wait "$app" || true
        exec {fd}>&-
        rm -f "$T/in"
        line=$(grep '^signwatch' "$T/out" || echo "signwatch none 0 0 -")
        read -r _ rv n fails gap <<<"$line"
        printf '%5d %-10s node %d %7s %6s %11s  %s\n' "$r" "$what" "$victim" \
            "$gap" "$fails" "$n" "$rv"
        cl_launch "$victim"
        cl_wait_ready "$victim" 60 || { echo "node $victim did not restart"; exit 1; }
        sleep 1
    done
done
