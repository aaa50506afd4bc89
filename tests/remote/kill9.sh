#!/bin/bash
# kill9.sh - kill -9 nimbusd while a client writes, again and again.
#
# Each round a p11_writer (the module in remote mode) creates token data
# objects in a loop, printing "ack LABEL" once each C_CreateObject has
# returned CKR_OK; once it has some, nimbusd is killed with SIGKILL at a
# random instant; the writer must then fail with CKR_DEVICE_REMOVED. With
# the daemon down sqlite3 checks the store (integrity_check), then the
# daemon is started again on it. At the end: every acknowledged object is
# there with exactly the value written, at most one object per kill is
# there without an acknowledgement (the create in flight), nothing is
# torn; and a client logs in and reads.
# NIMBUS_KILL9_ROUNDS (default 8) sets the rounds.
. "$(dirname "$0")/proc.sh"

[ -x "$WRITER" ] || die "$WRITER is not built"
rounds=${NIMBUS_KILL9_ROUNDS:-8}
setup_store
start_daemon
: >"$D/acked"
kills=0
for r in $(seq "$rounds"); do
    "$WRITER" write "alice:$ALICE_PW" "r$r" 1000000 >"$D/w.out" 2>"$D/w.err" &
    wpid=$!
    for _ in $(seq 200); do
        [ "$(grep -c '^ack ' "$D/w.out")" -ge 3 ] && break
        kill -0 "$wpid" 2>/dev/null || break
        sleep 0.05
    done
    sleep "0.$((RANDOM % 400 + 100))"
    kill -9 "$NIMBUSD_PID"
    wait "$NIMBUSD_PID" 2>/dev/null
    NIMBUSD_PID=
    kills=$((kills + 1))
    rc=0
    timeout 60 tail --pid="$wpid" -f /dev/null || kill -9 "$wpid"
    wait "$wpid" || rc=$?
    n=$(grep -c '^ack ' "$D/w.out")
    if [ "$rc" -ne 0 ] && grep -q CKR_DEVICE_REMOVED "$D/w.err"; then
        ok "round $r: $n acknowledged, then CKR_DEVICE_REMOVED"
    else
        bad "round $r: the writer after kill -9 (exit $rc)" "$(cat "$D/w.err")"
    fi
    sed -n 's/^ack //p' "$D/w.out" >>"$D/acked"
    integrity "round $r, daemon killed"
    nimbusd_restart || die "nimbusd did not start again (round $r)"
done

"$WRITER" list "alice:$ALICE_PW" >"$D/present" 2>"$D/list.err" ||
    bad "listing the objects after $kills kills" "$(cat "$D/list.err" "$D/present")"
grep '^bad ' "$D/present" && bad "torn objects" "$(grep '^bad ' "$D/present")"
sort -u "$D/acked" >"$D/acked.s"
grep -v '^bad ' "$D/present" | sort -u >"$D/present.s"
lost=$(comm -23 "$D/acked.s" "$D/present.s")
extra=$(comm -13 "$D/acked.s" "$D/present.s" | wc -l)
total=$(wc -l <"$D/acked.s")
[ "$total" -gt 0 ] || bad "no object was acknowledged at all"
[ -z "$lost" ] && ok "all $total acknowledged objects are there, whole" ||
    bad "acknowledged objects lost" "$lost"
[ "$extra" -le "$kills" ] &&
    ok "$extra unacknowledged object(s) for $kills kills (in flight)" ||
    bad "$extra unacknowledged objects for $kills kills"
finish
