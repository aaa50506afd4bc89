# common.sh - helpers for the remote-mode process tests (sourced): nimbusd
# started by the test on a unix socket in a temp dir (tests/daemon's
# helpers), the module pointed at it by a client nimbus.conf, and
# PKCS#11 applications (rclient) driven command by command through fifos
# so that the daemon can be killed and restarted between two calls.
. "$(dirname "$0")/../daemon/common.sh"

RCLIENT=$B/tests/remote/rclient
export NIMBUS_MODULE=${NIMBUS_MODULE:-$B/.libs/libnimbus-pkcs11.so}
S=$T/run/nimbusd.sock

# The daemon's config (fast KDF, info log) and the client's.
write_conf "$T/d.conf" "listen = unix:$S"
printf 'servers = unix:%s\nlog_level = warn\nlog_file = %s/client.log\n' \
    "$S" "$T" >"$T/client.conf"
export NIMBUS_CONF=$T/client.conf
# where an embedded module would make its default store (none must appear)
export XDG_DATA_HOME=$T/xdg

declare -A RC_IN RC_OUT RC_PID

# rc_start NAME: a new application process.
rc_start() {
    local n=$1 fi fo
    mkfifo "$T/$n.in" "$T/$n.out"
    "$RCLIENT" <"$T/$n.in" >"$T/$n.out" 2>>"$T/rclient.log" &
    RC_PID[$n]=$!
    PIDS+=("$!")
    exec {fi}>"$T/$n.in"
    exec {fo}<"$T/$n.out"
    RC_IN[$n]=$fi
    RC_OUT[$n]=$fo
}

# rc NAME CMD WANT: sends CMD, reads the answer line into LINE and checks
# that its second word is WANT.
rc() {
    local n=$1 cmd=$2 want=$3 got
    echo "$cmd" >&"${RC_IN[$n]}"
    IFS= read -r -t 120 LINE <&"${RC_OUT[$n]}" ||
        fail "$n: no answer to '$cmd'"
    got=$(awk '{ print $2 }' <<<"$LINE")
    [ "$got" = "$want" ] || fail "$n: '$cmd' -> '$LINE', wanted $want"
}

# rc_token NAME: a new application that initializes the token (SO PIN
# sopin123, user PIN userpin1), opens a session and logs in.
rc_token() {
    rc_start "$1"
    rc "$1" init CKR_OK
    rc "$1" "inittoken sopin123" CKR_OK
    rc "$1" "initpin sopin123 userpin1" CKR_OK
    rc "$1" open CKR_OK
    rc "$1" "login userpin1" CKR_OK
}

# rc_signer NAME: rc_token, then an EC key k1 made and used once.
rc_signer() {
    rc_token "$1"
    rc "$1" "genec k1" CKR_OK
    rc "$1" "sign k1" CKR_OK
}

# rc_stop NAME: quit and wait.
rc_stop() {
    local n=$1
    echo quit >&"${RC_IN[$n]}"
    wait "${RC_PID[$n]}" || fail "$n exited $?"
    exec {RC_IN[$n]}>&- {RC_OUT[$n]}<&-
}

# kill9: nimbusd dies at once; the socket file stays behind.
kill9() {
    kill -KILL "$DPID"
    wait "$DPID" 2>/dev/null
    return 0
}
