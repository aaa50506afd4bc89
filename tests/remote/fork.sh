#!/bin/bash
# fork.sh - pkcs11-tool --test-fork against nimbusd: the forked child's own
# C_Initialize (which must open its own connection, never reuse the
# parent's) succeeds; then the parent still works.
. "$(dirname "$0")/proc.sh"

command -v pkcs11-tool >/dev/null || skip "pkcs11-tool is not installed (apt-get install opensc)"
setup_store
start_daemon
out=$(timeout 60 pkcs11-tool --module "$NIMBUS_MODULE" --login \
    --pin "alice:$ALICE_PW" --test-fork 2>&1)
rc=$?
[ "$rc" -eq 0 ] && grep -q 'forked child' <<<"$out" &&
    ok "pkcs11-tool --test-fork" || bad "pkcs11-tool --test-fork (exit $rc)" "$out"
timeout 60 pkcs11-tool --module "$NIMBUS_MODULE" --login \
    --pin "alice:$ALICE_PW" --generate-random 32 -o "$D/rand" >/dev/null 2>&1
n=$(stat -c %s "$D/rand" 2>/dev/null || echo 0)
[ "$n" -eq 32 ] && ok "then 32 random bytes through the daemon" ||
    bad "random after the fork test: $n bytes"
finish
