#!/bin/bash
# A node stopped while CATCHUP_N (default 10,000) entries are written
# through the others catches up when restarted from its dirs (from the
# log or a snapshot): the same digest at the same applied index on the
# three nodes, and it serves the last object written. The catch-up time
# is printed (a figure, not an assertion: scripts/cluster-soak.sh).
set -u
B=${NIMBUS_TOP_BUILDDIR:-$(pwd)}
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/chaoslib.sh"

CHAOS=$B/tests/cluster/chaosclient
export NIMBUS_MODULE=${NIMBUS_MODULE:-$B/.libs/libnimbus-pkcs11.so}
[ -x "$CHAOS" ] || { echo "SKIP: $CHAOS not built"; exit 77; }
[ -x "$CL_NIMBUSD" ] || { echo "SKIP: nimbusd not built"; exit 77; }
N=${CATCHUP_N:-10000}
W=4 # writers in parallel

T=$(mktemp -d /tmp/nimbus-catchup-XXXXXX)
trap cl_test_cleanup EXIT # lib.sh: stops the nodes; fail, ok

ch_setup
before=$(ch_digests) || exit 1
cl_stop 3 || fail "node 3 did not stop"
t0=$(date +%s%N)
wp=()
for ((w = 1; w <= W; w++)); do
    NIMBUS_CONF=$CL_DIR/n$((w % 2 + 1))/client.conf "$CHAOS" write alice \
        "$CH_ALICE" "w$w" $((N / W)) >"$T/w$w.log" 2>&1 &
    wp+=($!)
done
wait "${wp[@]}" # (a bare wait would wait for the nodes too)
for ((w = 1; w <= W; w++)); do
    grep -q "^write CKR_OK $((N / W)) " "$T/w$w.log" ||
        fail "writer $w: $(cat "$T/w$w.log")"
done
echo "ok: $N objects written through nodes 1 and 2 in $((($(date +%s%N) - t0) / 1000000)) ms while node 3 was down"

t0=$(date +%s%N)
ch_restart 3
ready=$((($(date +%s%N) - t0) / 1000000))
after=$(ch_digests) || exit 1
ms=$((($(date +%s%N) - t0) / 1000000))
[ "${after#* }" -ge $((${before#* } + N)) ] ||
    fail "applied index ${after#* } is not $N entries past ${before#* }"
out=$(NIMBUS_CONF=$CL_DIR/n3/client.conf "$CHAOS" list alice "$CH_ALICE")
grep -q "^label w$W-$((N / W - 1))$" <<<"$out" ||
    fail "node 3 does not serve the last object written"
n=$(grep -c '^label w' <<<"$out")
[ "$n" = "$N" ] || fail "node 3 has $n of the $N objects"
echo "ok: node 3 caught up ${after#* } (from ${before#* }): equal digests and all $N objects, $ms ms after its restart (start included; serving clients after $ready ms)"
