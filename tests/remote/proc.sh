# proc.sh - the process tests of tests/remote/ (bash, sourced): a temp
# dir, a store made by nimbus-mgmt, nimbusd on it (lib.sh), cleanup.
# Exit codes: 0 pass, 1 fail, 77 skip, 99 hard error.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
top=${NIMBUS_TOP_BUILDDIR:-$(pwd)}
T=$(basename "$0" .sh)
export NIMBUS_MODULE=${NIMBUS_MODULE:-$top/.libs/libnimbus-pkcs11.so}
WRITER=$top/tests/p11/p11_writer
CO_PW=co-secret1
ALICE_PW=alice-pw1
BOB_PW=bob-secret1

fail=0
D=$(mktemp -d "${TMPDIR:-/tmp}/nimbus-$T.XXXXXX") || exit 99
# clients dropped to nobody reach the socket below (its directory is 2750,
# group nogroup: lib.sh)
chmod 0711 "$D"
_pids=()
cleanup() {
    local p
    for p in ${_pids[@]+"${_pids[@]}"} ${NIMBUSD_PID:-}; do
        kill -9 "$p" 2>/dev/null
    done
    wait 2>/dev/null
    rm -rf "$D"
}
trap cleanup EXIT
trap 'exit 99' INT TERM

ok() { echo "ok: $*"; }
bad() {
    echo "FAIL: $T: $1"
    [ $# -gt 1 ] && printf '%s\n' "$2" | head -n 40 | sed 's/^/    | /'
    fail=1
}
die() {
    echo "ERROR: $T: $*"
    for f in "$D"/nimbusd.log "$D"/nimbusd.out; do
        [ -s "$f" ] && { echo "--- $f"; tail -n 30 "$f"; }
    done
    exit 99
}
skip() {
    echo "SKIP: $T: $*"
    exit 77
}
# finish: stops the daemon (it must exit 0) and exits with the verdict
finish() {
    if [ -n "${NIMBUSD_PID:-}" ] && ! nimbusd_stop; then
        bad "nimbusd did not end cleanly" \
            "$(tail -n 30 "$D/nimbusd.log" "$D/nimbusd.out")"
    fi
    [ "$fail" -eq 0 ] && echo "PASS: $T"
    exit "$fail"
}

[ -x "$NIMBUSD" ] || die "$NIMBUSD is not built"

# setup_store: activates D/store with nimbus-mgmt (embedded, before the
# daemon owns the store), CUs alice and bob; D/embedded.conf names it.
setup_store() {
    local o
    printf 'store = %s/store\nkdf_iterations = 1000\n' "$D" >"$D/embedded.conf"
    o=$(NIMBUS_CONF=$D/embedded.conf timeout 60 "$top/nimbus-mgmt" -y -c \
        "loginHSM PRECO admin password; changePswd PRECO admin $CO_PW; createUser CU alice $ALICE_PW; createUser CU bob $BOB_PW; logoutHSM" 2>&1) ||
        die "nimbus-mgmt could not set up the store: $o"
}

# start_daemon: nimbusd on D (lib.sh); the clients' conf is D/nimbus.conf,
# exported as NIMBUS_CONF. Its store is a plain file: a module that stayed
# embedded fails instead of passing on a store of its own.
start_daemon() {
    nimbusd_start "$D" "$@" || die "nimbusd did not start"
    echo "remote mode: must not be opened" >"$D/not-a-store"
    { echo "store = $D/not-a-store"; cat "$D/client.conf"; } >"$D/nimbus.conf"
    export NIMBUS_CONF=$D/nimbus.conf
}

# integrity: sqlite3's check of the daemon's store (a stopped daemon's)
integrity() {
    local r
    command -v sqlite3 >/dev/null || return 0
    r=$(sqlite3 "$D/store/token0.db" 'PRAGMA integrity_check;' 2>&1)
    [ "$r" = ok ] && ok "store integrity: $1" || bad "store integrity: $1" "$r"
}
