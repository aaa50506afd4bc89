#!/bin/bash
# nimbus-mgmt in remote mode: a line per server named by its endpoint,
# "info server" listing the connected clients (peer, sessions, channels,
# logged-in user) to a CO only, the cluster commands of a nimbusd outside
# a cluster, two servers answered one by one, and a server that cannot be
# reached named.
. "$(dirname "$0")/common.sh"

[ -x "$RCLIENT" ] || { echo "SKIP: $RCLIENT not built"; exit 77; }
MGMT=$B/nimbus-mgmt
start_fg "$T/d.conf" || fail "nimbusd did not start"

# An application logged in as the CU, with one session open.
rc_token a

out=$("$MGMT" -c "loginHSM CO admin sopin123; info server 0") ||
    fail "info server as CO: $out"
echo "$out"
has() { grep -qF -- "$1" <<<"$out" || fail "no line with '$1' in: $out"; }
has "loginHSM success on server 0($S)"
# the application's connection, its connection for calls without a session
# (mechanism list, token info), the shell
has "Connected clients on server 0($S): 3"
me="uid=$(id -u) gid=$(id -g)"
# the application: its peer, one session, logged in as the CU
grep -E "^  $me pid=${RC_PID[a]} +1 +1 +CU user\(3\) +nimbus .*\(rclient\)$" \
    <<<"$out" >/dev/null || fail "the application's line is missing: $out"
grep -E "^  $me pid=${RC_PID[a]} +0 +1 +- +nimbus .*\(rclient, token calls\)$" \
    <<<"$out" >/dev/null || fail "the token-calls line is missing: $out"
# the shell itself, marked
grep -E "^\* $me pid=[0-9]+ +1 +1 +CO admin\(1\) +nimbus .*\(nimbus-mgmt\)$" \
    <<<"$out" >/dev/null || fail "the shell's own line is missing: $out"
ok "info server: the connected clients, their sessions and users (CO)"

# The audit log names the peer of the connection that acted: the
# application's CU login carries its uid and pid.
out=$("$MGMT" -c "loginHSM CO admin sopin123; getAuditLog") ||
    fail "getAuditLog: $out"
grep -E " login .* $me pid=${RC_PID[a]}\$" <<<"$out" >/dev/null ||
    fail "no login record naming the application's peer: $out"
ok "getAuditLog: records name the peer that acted"

out=$("$MGMT" -c "loginHSM CU user userpin1; info server 0") ||
    fail "info server as CU: $out"
has "Connected clients on server 0($S): a CO may list them (CKR_USER_NOT_LOGGED_IN)"
grep -q "uid=" <<<"$out" && fail "a CU saw the client list: $out"
out=$("$MGMT" -c "info server 0") || fail "info server logged out: $out"
grep -q "uid=" <<<"$out" && fail "nobody logged in saw the client list: $out"
ok "info server: other users see no client list"

# The application logs out: the list shows it without a user.
rc a logout CKR_OK
out=$("$MGMT" -c "loginHSM CO admin sopin123; info server 0")
grep -E "^  $me pid=${RC_PID[a]} +1 +1 +- " <<<"$out" >/dev/null ||
    fail "logged-out application: $out"
ok "info server: a logged-out application has no user"

# A nimbusd outside a cluster: the cluster commands say so (a CO), and
# ask for a login first (nobody logged in).
out=$("$MGMT" -c "loginHSM CO admin sopin123; listNodes; getClusterDigest; addNode 2 127.0.0.1:21002")
[ $? = 1 ] || fail "cluster commands on a lone nimbusd succeeded: $out"
for c in listNodes getClusterDigest addNode; do
    has "$c failed: HSM Error: not in a cluster (CKR_FUNCTION_NOT_SUPPORTED) on server 0($S)"
done
out=$("$MGMT" -c "listNodes")
has "listNodes failed: HSM Error: not logged in as a user who may do this (CKR_USER_NOT_LOGGED_IN) on server 0($S)"
ok "cluster commands: not in a cluster (CO), a login first (nobody)"

# --- two servers: each answers for itself
S2=$T/run2/nimbusd.sock
{
    echo "store = $T/store2"
    echo "kdf_iterations = 1000"
    echo "log_level = info"
    echo "log_file = $T/nimbusd2.log"
    echo "listen = unix:$S2"
} >"$T/d2.conf"
"$NIMBUSD" -c "$T/d2.conf" --foreground 2>>"$T/stderr.log" &
D2=$!
PIDS+=("$D2")
for _ in $(seq 100); do
    grep -q 'ready: listening' "$T/nimbusd2.log" 2>/dev/null && break
    sleep 0.1
done
printf 'servers = unix:%s, unix:%s\n' "$S" "$S2" >"$T/two.conf"
out=$(NIMBUS_CONF=$T/two.conf "$MGMT" -c "listUsers; loginHSM CO admin sopin123")
rc=$?
echo "$out"
[ "$rc" = 1 ] || fail "a failed login on one server: exit $rc"
has "Users on server 0($S):"
has "Users on server 1($S2):"
has "loginHSM success on server 0($S)"
# the second HSM is not activated: its admin is still the PRECO, no CO
has "loginHSM failed: HSM Error: invalid user type (CKR_USER_TYPE_INVALID) on server 1($S2)"
ok "two servers: one line per server, each with its own answer"

# --- a server that cannot be reached is named; the shell does not start
kill -TERM "$D2"
wait "$D2"
rc=0
err=$(NIMBUS_CONF=$T/two.conf "$MGMT" -c "listUsers" 2>&1 >/dev/null) || rc=$?
[ "$rc" = 2 ] || fail "unreachable server: exit $rc"
grep -qF "nimbus-mgmt: server 1($S2): nimbusd cannot be reached (CKR_DEVICE_REMOVED)" <<<"$err" ||
    fail "not named: $err"
ok "an unreachable server is named and the shell exits 2"

rc_stop a
