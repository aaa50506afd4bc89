#!/bin/bash
# The PKCS#11 module in remote mode against a nimbusd started here on a
# unix socket: the token set up, keys made and used through the daemon,
# every mechanism of the embedded module offered, the message API, calls
# from many threads at once, fork children, two processes kept apart,
# CKR_DEVICE_REMOVED while the daemon is down and new sessions and logins
# without C_Finalize once it is back (old sessions invalid).
. "$(dirname "$0")/common.sh"

[ -x "$RCLIENT" ] || { echo "SKIP: $RCLIENT not built"; exit 77; }
start_fg "$T/d.conf" || fail "nimbusd did not start"

# --- set-up and keys, through the daemon
rc_start a
rc a init CKR_OK
rc a "inittoken sopin123" CKR_OK
rc a "initpin sopin123 userpin1" CKR_OK
rc a "initpin sopin123 bob:bobpass1" CKR_OK
rc a open CKR_OK
rc a "login userpin1" CKR_OK
rc a "genec k1" CKR_OK
rc a "sign k1" CKR_OK
[ ! -e "$XDG_DATA_HOME" ] || fail "the module made a local store in remote mode"
ok "token set up, EC key made and used through nimbusd"

# --- the mechanism list is the server's, all of it: the same as an
# embedded module's (a local store made for the comparison only)
rc a mechs CKR_OK
remote_mechs=$LINE
printf 'store = %s/emb\n' "$T" >"$T/emb.conf"
emb=$(printf 'init\nmechs\nquit\n' | NIMBUS_CONF=$T/emb.conf "$RCLIENT" | grep "^mechs ")
[ "${emb#mechs CKR_OK }" != "$emb" ] || fail "embedded mechanism list: $emb"
[ "$emb" = "$remote_mechs" ] ||
    fail "mechanism lists differ: remote '$remote_mechs' embedded '$emb'"
n=$(awk '{ print $3 }' <<<"$remote_mechs")
[ "$n" -gt 40 ] || fail "only $n mechanisms"
ok "C_GetMechanismList: the embedded module's $n mechanisms, from the server"

# --- message API and many threads on one connection (a pool of channels)
rc a msg CKR_OK
ok "AES-GCM through C_EncryptMessage/C_DecryptMessage (forged tag refused)"
rc a "bulk 1048000" CKR_OK
grep -q "memfd:nimbus-bulk" "/proc/$DPID/maps" ||
    fail "1 MiB through nimbusd did not use the shared bulk region"
rc a "bulk 5000" CKR_OK
ok "AES-256-GCM C_Encrypt/C_Decrypt of 1 MiB (shared region) and 5000 bytes (frames), a forged tag releases nothing"
rc a "threads 12 k1" CKR_OK
ok "12 threads signing in parallel over one connection"

# --- fork: the child is not initialized until its own C_Initialize,
# which opens its own connection; the parent carries on
rc a "fork k1 userpin1" CKR_OK
rc a "sign k1" CKR_OK
ok "forked child: CKR_CRYPTOKI_NOT_INITIALIZED, then its own connection"

# --- two processes: another application's session objects, another
# user's private keys stay out of sight
rc a "sobj mine" CKR_OK
rc_start b
rc b init CKR_OK
rc b open CKR_OK
rc b "count k1" CKR_OK
[ "$(awk '{ print $3 }' <<<"$LINE")" = 1 ] ||
    fail "public session sees $LINE (only the public key is public)"
rc b "loginuser bob bobpass1" CKR_OK
rc b "count k1" CKR_OK
[ "$(awk '{ print $3 }' <<<"$LINE")" = 1 ] || fail "bob sees $LINE"
rc b "sign k1" CKR_OBJECT_HANDLE_INVALID
rc b "count mine" CKR_OK
[ "$(awk '{ print $3 }' <<<"$LINE")" = 0 ] ||
    fail "another process sees a session object: $LINE"
rc a "count mine" CKR_OK
[ "$(awk '{ print $3 }' <<<"$LINE")" = 1 ] || fail "own session object: $LINE"
rc_stop b
ok "two processes: session objects and another CU's private key kept apart"

# --- the daemon goes away: CKR_DEVICE_REMOVED, for old sessions and new
rc a save CKR_OK
kill9
rc a "sign k1" CKR_DEVICE_REMOVED
rc a state CKR_DEVICE_REMOVED
rc a open CKR_DEVICE_REMOVED
rc a restore CKR_OK
rc a "sign k1" CKR_DEVICE_REMOVED
# a new application cannot start while no server answers
rc_start c
rc c init CKR_GENERAL_ERROR
grep -q "cannot reach the servers of $T/client.conf: CKR_DEVICE_REMOVED" \
    "$T/rclient.log" || fail "C_Initialize did not say why"
ok "nimbusd killed: CKR_DEVICE_REMOVED for old sessions and new ones"

# --- back: new sessions and a new login without C_Finalize; the old
# session is invalid, even though the new connection's first session has
# the server id the old one had
start_fg "$T/d.conf" || fail "nimbusd did not restart"
rc a open CKR_OK
rc a state CKR_OK
[ "$(awk '{ print $3 }' <<<"$LINE")" = 2 ] || fail "new session: $LINE (not public RW)"
rc a "login userpin1" CKR_OK
rc a "sign k1" CKR_OK
rc a "count mine" CKR_OK
[ "$(awk '{ print $3 }' <<<"$LINE")" = 0 ] || fail "a session object outlived the daemon"
rc a restore CKR_OK
rc a "sign k1" CKR_SESSION_HANDLE_INVALID
rc a state CKR_SESSION_HANDLE_INVALID
rc c init CKR_OK
rc_stop c
ok "after the restart: new sessions and login without C_Finalize; old handle invalid"

# --- a clean stop (SIGTERM) and back, twice in a row
rc a open CKR_OK
rc a "sign k1" CKR_OK
for i in 1 2; do
    stop "$DPID" || fail "nimbusd exit status $?"
    rc a "sign k1" CKR_DEVICE_REMOVED
    start_fg "$T/d.conf" || fail "nimbusd did not restart"
    rc a open CKR_OK
    rc a "login userpin1" CKR_OK
    rc a "sign k1" CKR_OK
done
ok "SIGTERM and restart, twice: the application recovers each time"

# --- a restart while the application is idle: its next C_OpenSession
# already works (the dead connection is seen before the call is made)
rc a save CKR_OK
stop "$DPID" || fail "nimbusd exit status $?"
start_fg "$T/d.conf" || fail "nimbusd did not restart"
rc a open CKR_OK
rc a "login userpin1" CKR_OK
rc a "sign k1" CKR_OK
rc a restore CKR_OK
rc a "sign k1" CKR_SESSION_HANDLE_INVALID
ok "restart while idle: the next C_OpenSession works at once"

rc a finalize CKR_OK
rc_stop a
