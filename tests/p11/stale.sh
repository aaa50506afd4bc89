#!/bin/bash
# stale.sh - a login that outlives its user record, across processes.
#
# Process A (p11_writer hold) stays logged in while other processes act on
# the same store:
#  1. nimbus-mgmt's deleteUser of the user A is logged in as is refused;
#     once A has logged out, and once A was killed with -9, it succeeds.
#  2. A CO in another process resets the password of A's user: A's next
#     token-key generation gets CKR_USER_NOT_LOGGED_IN, A's session is
#     public again, and nothing was stored.
#  3. Another process re-initializes the token (C_InitToken): the same.
#
# Environment (set by make check): NIMBUS_MODULE, NIMBUS_TOP_BUILDDIR.
# Exit: 0 pass, 1 fail, 77 skip (a needed tool is missing), 99 hard error.
set -u

top=${NIMBUS_TOP_BUILDDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export NIMBUS_MODULE=${NIMBUS_MODULE:-$top/.libs/libnimbus-pkcs11.so}
writer=$top/tests/p11/p11_writer
mgmt_bin=$top/nimbus-mgmt

for tool in mktemp mkfifo grep sqlite3 timeout; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "SKIP: stale: $tool not found"
        exit 77
    fi
done
for f in "$writer" "$mgmt_bin" "$NIMBUS_MODULE"; do
    if [ ! -e "$f" ]; then
        echo "ERROR: stale: $f not built"
        exit 99
    fi
done

W() { timeout 120 "$writer" "$@"; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/nimbus-stale.XXXXXX") || exit 99
apid=
cleanup() {
    if [ -n "$apid" ]; then
        kill "$apid" 2>/dev/null
        wait "$apid" 2>/dev/null
    fi
    rm -rf "$dir"
}
trap cleanup EXIT
cat >"$dir/nimbus.conf" <<CONF
# stale.sh: a fresh store
store = $dir/store
kdf_iterations = 1000
CONF
export NIMBUS_CONF=$dir/nimbus.conf
db=$dir/store/token0.db

SO=sopass123
PW=userpw12
CO="loginHSM CO admin $SO"
failures=0

ok() { echo "ok - $*"; }
not_ok() {
    echo "not ok - $*"
    failures=$((failures + 1))
}

# A: a holding process on fd 3 (to it) and 4 (from it).
a_start() {
    rm -f "$dir/a.in" "$dir/a.out"
    mkfifo "$dir/a.in" "$dir/a.out" || exit 99
    timeout 120 "$writer" hold "$1" <"$dir/a.in" >"$dir/a.out" 2>"$dir/a.err" &
    apid=$!
    exec 3>"$dir/a.in" 4<"$dir/a.out"
    a_ask_line=
    read -r -t 30 a_ask_line <&4
    if [ "$a_ask_line" != ready ]; then
        echo "ERROR: stale: process A did not log in: $(cat "$dir/a.err")"
        exit 99
    fi
}
# a_ask CMD: one command to A; its answer in $reply.
a_ask() {
    reply=
    echo "$1" >&3
    read -r -t 30 reply <&4
}
a_stop() {
    echo quit >&3 2>/dev/null
    exec 3>&- 4<&-
    wait "$apid" 2>/dev/null
    apid=
}
a_kill() {
    kill -9 "$apid"
    exec 3>&- 4<&-
    wait "$apid" 2>/dev/null
    apid=
}
# M CMDS: nimbus-mgmt -y -c CMDS; output in $out.
M() { out=$(timeout 120 "$mgmt_bin" -y -c "$1" 2>&1); }
stored() { sqlite3 "$db" "SELECT count(*) FROM objects"; }
expect() { # DESC GOT WANT
    if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1: got '$2', want '$3'"; fi
}

W init stale "$SO" >/dev/null || exit 99
for u in dave erin fred; do
    W mkuser "$SO" "$u" "$PW" >/dev/null || exit 99
done

echo "# 1. deleting a user logged in elsewhere"
a_start "dave:$PW"
M "$CO; deleteUser CU dave"
case "$out" in
*"deleteUser failed"*CKR_ACTION_PROHIBITED*) ok "deleteUser of a user logged in in another process is refused" ;;
*) not_ok "deleteUser while logged in elsewhere: $out" ;;
esac
a_ask state
expect "A is still logged in" "$reply" "state user"
a_ask logout
M "$CO; deleteUser CU dave"
case "$out" in
*"deleteUser success"*) ok "after A's logout the delete succeeds" ;;
*) not_ok "deleteUser after logout: $out" ;;
esac
a_stop

a_start "erin:$PW"
a_kill
M "$CO; deleteUser CU erin"
case "$out" in
*"deleteUser success"*) ok "a login of a killed process does not hold the user" ;;
*) not_ok "deleteUser after kill -9: $out" ;;
esac

echo "# 2. password reset in another process"
a_start "fred:$PW"
a_ask "keygen before"
expect "A generates a token key" "$reply" "keygen CKR_OK"
n0=$(stored)
W mkuser "$SO" fred newpass12 >/dev/null || not_ok "the CO resets fred's password"
a_ask "keygen after-reset"
expect "A's next generation after the reset" "$reply" "keygen CKR_USER_NOT_LOGGED_IN"
expect "nothing was stored" "$(stored)" "$n0"
a_ask state
expect "A's session is public again" "$reply" "state public"
a_stop

echo "# 3. re-initialization in another process"
W mkuser "$SO" gina "$PW" >/dev/null || exit 99
a_start "gina:$PW"
a_ask "keygen before"
expect "A generates a token key" "$reply" "keygen CKR_OK"
W init stale2 "$SO" >/dev/null || not_ok "C_InitToken re-initializes"
expect "the re-initialization removed every key" "$(stored)" 0
W mkuser "$SO" gina "$PW" >/dev/null || not_ok "a new gina is made"
a_ask "keygen after-reinit"
expect "A's next generation after re-initialization" "$reply" "keygen CKR_USER_NOT_LOGGED_IN"
expect "nothing was stored" "$(stored)" 0
a_ask state
expect "A's session is public again" "$reply" "state public"
a_stop

if [ "$failures" -gt 0 ]; then
    echo "stale: $failures failure(s)"
    exit 1
fi
exit 0
