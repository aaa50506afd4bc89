# lib.sh - a cluster of nimbusd on loopback for the shell tests (bash,
# sourced). Each node N has DIR/nN/ (store, raft dir, config, log, a unix
# socket for clients) and a cluster port below 32768. Nothing here
# installs a trap: the caller runs cl_stop_all in its own.

CL_B=${NIMBUS_TOP_BUILDDIR:-$(pwd)}
CL_S=${NIMBUS_TOP_SRCDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
CL_NIMBUSD=${NIMBUSD:-$CL_B/nimbusd}
CL_MGMT=$CL_B/nimbus-mgmt
CL_ID=${CL_ID:-nimbus-test-cluster}
# A clone of $CL_ID (cl_clone_init, cl_start_clone): its nodes are named
# c1, c2, ... (CL_PID[c1], dir $CL_DIR/nc1), so cl_launch, cl_wait_ready,
# cl_mgmt, cl_stop and cl_sock take "c1" as they take "1".
CL_CLONE_ID=${CL_CLONE_ID:-$CL_ID-clone}
# CL_CONF_EXTRA: lines (one per line) added to the config of every node
# of $CL_ID (not of the clone), e.g. "cluster_clones = $CL_CLONE_ID".
CL_CONF_EXTRA=${CL_CONF_EXTRA:-}
declare -A CL_PID CL_PORT

# cl_init DIR N: PKI for nodes 1..N of cluster $CL_ID under DIR/pki, and a
# cluster port for each (free now; a busy one at start is retried).
cl_init() {
    local i ids=()
    CL_DIR=$1
    CL_N=$2
    for ((i = 1; i <= CL_N; i++)); do
        ids+=("$i")
        CL_PORT[$i]=$(python3 "$CL_S/scripts/free-port.py") || return 1
    done
    sh "$CL_S/tests/cluster/mkpki.sh" "$CL_DIR/pki" "$CL_ID" "${ids[@]}" \
        >/dev/null 2>&1
}

cl_sock() { echo "$CL_DIR/n$1/sock/nimbusd.sock"; }

# cl_conf N [LINE...]: node N's nimbusd.conf (N = cK: the clone's node K).
cl_conf() {
    local n=$1 d=$CL_DIR/n$1 id=$1 cid=$CL_ID pki=$CL_DIR/pki
    shift
    if [ "${n#c}" != "$n" ]; then
        id=${n#c}
        cid=$CL_CLONE_ID
        pki=$CL_DIR/pki-clone
    fi
    mkdir -p "$d/sock"
    chmod 0750 "$d/sock"
    {
        echo "store = $d/store"
        echo "kdf_iterations = 1000"
        echo "listen = unix:$(cl_sock "$n")"
        echo "log_level = info"
        echo "log_file = $d/nimbusd.log"
        echo "cluster_id = $cid"
        echo "cluster_node_id = $id"
        echo "cluster_listen = 127.0.0.1:${CL_PORT[$n]}"
        echo "cluster_ca = $pki/ca.crt"
        echo "cluster_cert = $pki/node$id.crt"
        echo "cluster_key = $pki/node$id.key"
        [ "$cid" = "$CL_ID" ] && [ -n "$CL_CONF_EXTRA" ] && printf '%s\n' "$CL_CONF_EXTRA"
        [ $# -gt 0 ] && printf '%s\n' "$@"
    } >"$d/nimbusd.conf"
    echo "servers = unix:$(cl_sock "$n")" >"$d/client.conf"
}

# cl_launch N: starts node N (foreground, in the background) with its
# config as it is; does not wait.
declare -A CL_READY
cl_launch() {
    local d=$CL_DIR/n$1
    # the log is kept across restarts: count the ready lines before
    CL_READY[$1]=$(grep -c 'ready: listening' "$d/nimbusd.log" 2>/dev/null || true)
    "$CL_NIMBUSD" -c "$d/nimbusd.conf" --foreground >>"$d/nimbusd.out" 2>&1 &
    CL_PID[$1]=$!
}

# cl_wait_ready N [SECONDS]: 0 once node N serves clients.
cl_wait_ready() {
    local n=$1 t=${2:-30} i c
    for ((i = 0; i < t * 10; i++)); do
        c=$(grep -c 'ready: listening' "$CL_DIR/n$n/nimbusd.log" 2>/dev/null)
        [ "${c:-0}" -gt "${CL_READY[$n]:-0}" ] && return 0
        kill -0 "${CL_PID[$n]}" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# cl_mgmt N COMMANDS: nimbus-mgmt against node N.
cl_mgmt() {
    local n=$1
    shift
    NIMBUS_CONF=$CL_DIR/n$n/client.conf "$CL_MGMT" -y -c "$*" 2>&1
}

# cl_stop N: SIGTERM, then wait (60 s) or kill -9.
cl_stop() {
    local pid=${CL_PID[$1]:-} i
    [ -n "$pid" ] || return 0
    CL_PID[$1]=
    kill -TERM "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 1; }
    for ((i = 0; i < 600; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        return 1
    fi
    wait "$pid"
}

# cl_kill N: kill -9 node N.
cl_kill() {
    local pid=${CL_PID[$1]:-}
    [ -n "$pid" ] || return 0
    CL_PID[$1]=
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
    return 0
}

cl_stop_all() {
    local n
    for n in "${!CL_PID[@]}"; do
        [ -n "${CL_PID[$n]}" ] && kill -CONT "${CL_PID[$n]}" 2>/dev/null
        cl_stop "$n"
    done
}

CL_CO_PW=${CL_CO_PW:-copass123}

# cl_add_node VIA ID ADDRESS: the CO adds node ID through node VIA. An
# election under load can end a pending change with "no leader
# reachable" (the operator's answer is to ask again, and a repeated
# addNode is harmless: the engine goes on with the promotion, and a
# voter already there is success), so up to 4 tries a second apart.
cl_add_node() {
    local try out
    for try in 1 2 3 4; do
        out=$(cl_mgmt "$1" "loginHSM CO admin $CL_CO_PW; addNode $2 $3") && return 0
        echo "addNode $2 through $1, try $try: $out" >&2
        sleep 1
    done
    return 1
}

# cl_form FIRST PREFIX N [CONF...]: node FIRST (named PREFIX1) bootstraps
# with the extra config lines CONF and is activated (PRECO admin -> CO
# admin, password $CL_CO_PW); PREFIX2..PREFIXN start unjoined and the CO
# adds them through it (addNode), each catching up.
cl_form() {
    local first=$1 pfx=$2 n=$3 i out
    shift 3
    cl_conf "$first" "cluster_bootstrap = yes" "$@" || return 1
    cl_launch "$first"
    cl_wait_ready "$first" || return 1
    out=$(cl_mgmt "$first" "loginHSM PRECO admin password; changePswd PRECO admin $CL_CO_PW") || {
        echo "activation of $first: $out" >&2
        return 1
    }
    for ((i = 2; i <= n; i++)); do
        cl_conf "$pfx$i" "cluster_join = 127.0.0.1:${CL_PORT[$first]}"
        cl_launch "$pfx$i"
    done
    for ((i = 2; i <= n; i++)); do
        cl_add_node "$first" "$i" "127.0.0.1:${CL_PORT[$pfx$i]}" || return 1
        cl_wait_ready "$pfx$i" || return 1
    done
}

# cl_start_cluster: node 1 bootstraps and is activated; the others join
# through it (cl_form).
cl_start_cluster() {
    cl_form 1 "" "$CL_N"
}

# cl_clone_init N: PKI for the clone's nodes c1..cN (cluster
# $CL_CLONE_ID) under the CA of $CL_DIR/pki (cl_init first), in
# $CL_DIR/pki-clone, and a cluster port for each.
cl_clone_init() {
    local i ids=()
    CL_CLONE_N=$1
    for ((i = 1; i <= CL_CLONE_N; i++)); do
        ids+=("$i")
        CL_PORT[c$i]=$(python3 "$CL_S/scripts/free-port.py") || return 1
    done
    MKPKI_CA=$CL_DIR/pki sh "$CL_S/tests/cluster/mkpki.sh" \
        "$CL_DIR/pki-clone" "$CL_CLONE_ID" "${ids[@]}" >/dev/null 2>&1
}

# cl_start_clone [SRC [N]]: the clone's node c1 bootstraps a new cluster
# with the cluster key of $CL_ID, fetched from node SRC (default 1: its
# config must list $CL_CLONE_ID in cluster_clones), and is activated like
# any new cluster; c2..cN (N default: all that cl_clone_init made) join
# it (cl_form).
cl_start_clone() {
    local src=${1:-1}
    cl_form c1 c "${2:-$CL_CLONE_N}" \
        "cluster_clone_of = $CL_ID@127.0.0.1:${CL_PORT[$src]}"
}

# What the tests' bodies share (they run after cl_test, which defines
# fail): has/hasnt WHAT TEXT check $out; app N LINES... runs the
# scriptable application (rclient) on node N with those lines; all
# "N..." COMMANDS runs nimbus-mgmt against the nodes listed; leader
# prints the leader's id as node 1 sees it.
has() { grep -qF -- "$2" <<<"$out" || fail "$1: no '$2' in: $out"; }
hasnt() { ! grep -qF -- "$2" <<<"$out" || fail "$1: '$2' in: $out"; }

# all NODES... COMMANDS: nimbus-mgmt speaking to the nodes listed.
all() {
    local nodes=$1 s="" n
    shift
    for n in $nodes; do s="$s${s:+, }unix:$(cl_sock "$n")"; done
    echo "servers = $s" >"$T/all.conf"
    NIMBUS_CONF=$T/all.conf "$CL_MGMT" -y -c "$*" 2>&1
}
app() {
    local n=$1
    shift
    printf '%s\n' init "$@" quit |
        NIMBUS_CONF=$CL_DIR/n$n/client.conf "$RCLIENT" 2>>"$T/rclient.log"
}
leader() {
    cl_mgmt 1 "loginHSM CO admin $CL_CO_PW; listNodes" |
        sed -n 's/^Leader: node \([0-9]*\)(.*/\1/p' | head -n 1
}

# cl_test NAME: the common start of a tests/cluster script: skips (77)
# without the programs it needs, makes $T (kept when CL_KEEP is set) and
# a trap that stops every node, and defines fail (with the nodes' log
# tails) and ok; RCLIENT and NIMBUS_MODULE for the scriptable application.
cl_test() {
    RCLIENT=$CL_B/tests/remote/rclient
    export NIMBUS_MODULE=${NIMBUS_MODULE:-$CL_B/.libs/libnimbus-pkcs11.so}
    [ -x "$RCLIENT" ] || { echo "SKIP: $RCLIENT not built"; exit 77; }
    [ -x "$CL_NIMBUSD" ] || { echo "SKIP: nimbusd not built"; exit 77; }
    T=$(mktemp -d "/tmp/nimbus-$1-XXXXXX")
    trap cl_test_cleanup EXIT
}
cl_test_cleanup() {
    cl_stop_all
    [ -n "${CL_KEEP:-}" ] && echo "kept $T" || rm -rf "$T"
}
fail() {
    echo "FAIL: $*" >&2
    for f in "$T"/n*/nimbusd.log; do
        [ -f "$f" ] && { echo "--- $f"; tail -n 40 "$f"; } >&2
    done
    exit 1
}
ok() { echo "ok: $*"; }
