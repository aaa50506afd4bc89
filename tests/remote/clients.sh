#!/bin/bash
# clients.sh - 256 client processes (the module in remote mode, each its
# own connection) logged in to one nimbusd at the same time: each creates
# an object, then waits until all 256 have, then reads its object back.
# All must succeed, and the daemon must log 256 distinct client pids.
# NIMBUS_CLIENTS (default 256) sets the number.
. "$(dirname "$0")/proc.sh"

[ -x "$WRITER" ] || die "$WRITER is not built"
n=${NIMBUS_CLIENTS:-256}
setup_store
start_daemon
mkdir "$D/arrived"
pids=()
for i in $(seq "$n"); do
    "$WRITER" together "alice:$ALICE_PW" "c$i" "$D/arrived" "$n" \
        >"$D/c$i.out" 2>&1 &
    pids+=($!)
    _pids+=($!)
done
failed=0
for p in "${pids[@]}"; do
    wait "$p" || failed=$((failed + 1))
done
done=$(cat "$D"/c*.out | grep -c '^done ')
[ "$failed" -eq 0 ] && [ "$done" -eq "$n" ] &&
    ok "$n clients connected at once, each read back its own object" ||
    bad "$failed of $n clients failed" "$(grep -hv '^done ' "$D"/c*.out | sort | uniq -c)"
peers=$(grep -o 'connected: unix:.* pid=[0-9]*' "$D/nimbusd.log" |
    sed 's/.*pid=//' | sort -u | wc -l)
[ "$peers" -ge "$n" ] && ok "the daemon saw $peers client processes" ||
    bad "the daemon saw $peers client processes, expected $n"
finish
