# common.sh - helpers for the nimbusd process tests (sourced).
# Every test makes a temp dir, starts nimbusd itself and stops it on exit.
set -u

B=${NIMBUS_TOP_BUILDDIR:-$(pwd)}
NIMBUSD=${NIMBUSD:-$B/nimbusd}
DCLIENT=$B/tests/daemon/dclient

T=$(mktemp -d /tmp/nimbusd-test-XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null
    done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$p" 2>/dev/null
    done
    rm -rf "$T"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    for f in "$T"/*.log; do
        [ -f "$f" ] && { echo "--- $f"; tail -n 30 "$f"; } >&2
    done
    exit 1
}
ok() { echo "ok: $*"; }

# write_conf FILE LINES...: a nimbus.conf with a fast KDF and an info log.
write_conf() {
    local f=$1
    shift
    {
        echo "store = $T/store"
        echo "kdf_iterations = 1000"
        echo "log_level = info"
        echo "log_file = $T/nimbusd.log"
        printf '%s\n' "$@"
    } >"$f"
}

# start_fg CONF: nimbusd --foreground in the background; DPID its pid.
# Waits for the log's "ready" line (or its death).
start_fg() {
    : >"$T/nimbusd.log"
    "$NIMBUSD" -c "$1" --foreground 2>>"$T/stderr.log" &
    DPID=$!
    PIDS+=("$DPID")
    wait_ready "$DPID"
}

# (30 s: a loaded machine runs the first KDF slowly)
wait_ready() {
    local i
    for i in $(seq 300); do
        grep -q 'ready: listening' "$T/nimbusd.log" 2>/dev/null && return 0
        kill -0 "$1" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# stop PID: SIGTERM; returns nimbusd's exit status.
stop() {
    kill -TERM "$1"
    wait "$1"
}

# free_port: a TCP port on 127.0.0.1 in 20000-32767 nobody listens on.
_free_port_py=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../scripts" && pwd)/free-port.py
free_port() {
    python3 "$_free_port_py"
}
