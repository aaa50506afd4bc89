#!/bin/bash
# hostile.sh - a hostile client over the raw transport (tests/remote/
# hostile.c: another client's session and object ids, forged and stolen
# attach tokens, bad frames, huge lengths and counts, calls after close,
# hostile quorum frames)
# never crashes nimbusd nor reaches the victim's objects; afterwards the
# same daemon process serves a well-behaved client, its store is sound,
# and SIGTERM ends it with 0.
. "$(dirname "$0")/proc.sh"

setup_store
# tickets expire quickly: hostile.c waits one out
start_daemon "login_ticket_lifetime = 3"
pid=$NIMBUSD_PID
out=$(timeout 300 "$top/tests/remote/hostile" "$NIMBUSD_EP" "$ALICE_PW" \
    "$BOB_PW" "$CO_PW" 2>&1)
rc=$?
echo "$out" | grep -v '^ok: random payload$'
[ "$rc" -eq 0 ] || bad "the hostile client's checks (exit $rc)" \
    "$(grep -E 'FAIL|hostile:' <<<"$out")"
if kill -0 "$pid" 2>/dev/null; then
    ok "nimbusd $pid is still running"
else
    bad "nimbusd died under the hostile client" "$(tail -n 30 "$D/nimbusd.log" "$D/nimbusd.out")"
fi
"$top/tests/daemon/dclient" "$NIMBUSD_EP" hello >/dev/null 2>&1 &&
    ok "a well-behaved client is served after the attacks" ||
    bad "a well-behaved client is not served after the attacks"
n=$(grep -c 'connected: ' "$D/nimbusd.log")
ok "the daemon logged $n connections"
nimbusd_stop || bad "nimbusd did not exit 0 on SIGTERM" "$(tail -n 30 "$D/nimbusd.log" "$D/nimbusd.out")"
integrity "after the attacks"
finish
