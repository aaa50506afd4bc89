# common.sh - sourced by every tests/interop/*.sh (bash).
#
# The scenarios run real clients against the module INSTALLED into a prefix,
# never against the build tree: the first test to get here runs
# `make install` into $NIMBUS_TOP_BUILDDIR/interop-prefix (every install
# directory overridden on the command line, so nothing is written outside
# the build directory), under a lock because `make check` runs the tests in
# parallel; a stamp newer than the built module skips the install for the
# others. `make clean` removes the prefix.
#
# Each test then makes its own store in its own temporary directory, with
# its own nimbus.conf (NIMBUS_CONF for the clients), activates it and
# creates its crypto users with the installed nimbus-mgmt. kdf_iterations
# is 1000 in these configs: every client logs in many times (pkcs11-tool
# runs once per step, Java and libp11 log in per session or per process)
# and the default 600000 PBKDF2 iterations would cost a fraction of a
# second each time; the verifier's cost is not what these tests are about.
#
# A client that is not installed makes its test SKIP (exit 77) with the
# reason, never PASS. Every client and server step runs under timeout(1);
# servers listen on 127.0.0.1 only, on ports found free; everything a test
# starts is killed at exit and its temporary directory removed.
#
# Remote mode (NIMBUS_TEST_REMOTE=unix or tls, tests/remote/run.sh):
# fresh_store starts a nimbusd of the test's own on the store
# (tests/remote/lib.sh) and the clients' nimbus.conf names it instead of
# the store; finish stops it, and a daemon that does not exit 0 fails the
# test.
#
# Exit codes: 0 pass, 1 fail, 77 skip, 99 hard error.
#
# The sourcing script sets T (its name, for messages) before sourcing.
set -u

T=${T:-$(basename "$0" .sh)}
top=${NIMBUS_TOP_BUILDDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
srcdir=${NIMBUS_TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
P=$top/interop-prefix
MODULE=$P/lib/pkcs11/libnimbus-pkcs11.so
MGMT=$P/bin/nimbus-mgmt
P11KIT_CONF=$P/share/p11-kit/modules/nimbus.module

CO_PW=co-secret1
ALICE_PW=alice-pw1
BOB_PW=bob-secret1

fail=0
tmp=
_pids=()
_cleanups=()

# ----------------------------------------------------------------- output
ok() { echo "ok: $*"; }
# bad WHAT [OUTPUT]: a failed assertion; the test goes on, and fails.
bad() {
    echo "FAIL: $T: $1"
    if [ $# -gt 1 ] && [ -n "$2" ]; then
        printf '%s\n' "$2" | head -n 40 | sed 's/^/    | /'
    fi
    fail=1
}
skip() {
    echo "SKIP: $T: $*"
    exit 77
}
# hard error: the test itself could not run (not a verdict on the module)
die() {
    echo "ERROR: $T: $*"
    exit 99
}
# check WHAT OUTPUT PATTERN: OUTPUT matches the extended regex PATTERN
check() {
    if grep -Eq -- "$3" <<<"$2"; then
        ok "$1"
    else
        bad "$1 (expected /$3/)" "$2"
    fi
}
# check_not WHAT OUTPUT PATTERN
check_not() {
    if grep -Eq -- "$3" <<<"$2"; then
        bad "$1 (unexpected /$3/)" "$2"
    else
        ok "$1"
    fi
}
# expect_ok WHAT CMD...: CMD exits 0 (its output is kept in $out)
expect_ok() {
    local what=$1 rc
    shift
    out=$("$@" 2>&1)
    rc=$?
    if [ "$rc" -eq 0 ]; then
        ok "$what"
        return 0
    fi
    bad "$what (exit status $rc)" "$out"
    return 1
}
# expect_fail WHAT PATTERN CMD...: CMD fails and says PATTERN
expect_fail() {
    local what=$1 pat=$2
    shift 2
    if out=$("$@" 2>&1); then
        bad "$what (it succeeded)" "$out"
        return 1
    fi
    check "$what" "$out" "$pat"
}
finish() {
    if [ -n "${NIMBUSD_PID:-}" ] && ! nimbusd_stop; then
        bad "nimbusd did not end cleanly" \
            "$(tail -n 30 "$NIMBUSD_DIR/nimbusd.log" "$NIMBUSD_DIR/nimbusd.out")"
    fi
    if [ "$fail" -eq 0 ]; then
        echo "PASS: $T"
    fi
    exit "$fail"
}

# ----------------------------------------------------------------- tools
# need_cmd CMD [PACKAGE]: SKIP unless CMD is installed
need_cmd() {
    command -v "$1" >/dev/null 2>&1 ||
        skip "$1 is not installed${2:+ (apt-get install $2)}"
}
# t SECONDS CMD...: CMD under a bounded time (killed 5 s after)
t() {
    local s=$1
    shift
    timeout -k 5 "$s" "$@"
}
# free_port: a TCP port on 127.0.0.1 nobody listens on, drawn at random
# from 20000-32767: test servers stay below the kernel's ephemeral range
# (32768 and up), where the clients' own outgoing ports come from. A port
# that is bound already is skipped. Another process can still take the port
# before the server binds it: start servers through with_free_ports.
_free_port_py=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../scripts" && pwd)/free-port.py
free_port() {
    python3 "$_free_port_py"
}
# with_free_ports START [TRIES]: runs START, a function of the caller that
# picks its ports with free_port, starts its server and waits for it, until
# it returns anything but 2; 2 means the server lost a port to another
# process (see port_taken) and gets new ports, at most TRIES (3) times.
with_free_ports() {
    local i rc=2
    for ((i = 0; i < ${2:-3} && rc == 2; i++)); do
        "$1"
        rc=$?
    done
    return "$rc"
}
# port_taken LOG...: a server's log says its bind found the address in use
port_taken() {
    cat "$@" 2>/dev/null | grep -qiE 'address already in use|EADDRINUSE'
}
# server_up PID LOG PORT...: 0 when server PID (logging to LOG) came up
# listening on every PORT; 2 (after killing it) when LOG says a port was
# taken, since then the listener found may be another process's; else 1.
server_up() {
    local pid=$1 log=$2 port
    shift 2
    for port in "$@"; do
        wait_port "$port" 30 "$pid" || break
    done
    # a server that lost the bind says so at once, even while it retries
    sleep 0.3
    if kill -0 "$pid" 2>/dev/null && ! port_taken "$log" &&
        wait_port "$port" 1 "$pid"; then
        return 0
    fi
    kill "$pid" 2>/dev/null
    port_taken "$log" && return 2
    return 1
}
# wait_port PORT [SECONDS [PID]]: until something listens on
# 127.0.0.1:PORT; fails at once when the server PID has exited
wait_port() {
    local i
    for ((i = 0; i < ${2:-20} * 10; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        if [ -n "${3:-}" ] && ! kill -0 "$3" 2>/dev/null; then
            return 1
        fi
        sleep 0.1
    done
    return 1
}
# bg_start CMD...: start a server in the background; killed at exit
bg_start() {
    "$@" &
    _pids+=($!)
    bg_pid=$!
}
on_exit() { _cleanups+=("$1"); }
_cleanup() {
    local p c
    for c in ${_cleanups[@]+"${_cleanups[@]}"}; do
        eval "$c" >/dev/null 2>&1
    done
    for p in ${_pids[@]+"${_pids[@]}"}; do
        kill "$p" 2>/dev/null
    done
    for p in ${_pids[@]+"${_pids[@]}"}; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.2
        done
        kill -9 "$p" 2>/dev/null
    done
    [ -n "$tmp" ] && rm -rf "$tmp"
}
trap _cleanup EXIT
trap 'exit 99' INT TERM

# ----------------------------------------------------------------- install
# install_prefix: make install into $P, once per build of the module
install_prefix() {
    local built=$top/.libs/libnimbus-pkcs11.so stamp=$P/.installed log
    [ -f "$built" ] || die "the module is not built ($built)"
    need_cmd flock util-linux
    mkdir -p "$P" || die "cannot create $P"
    log=$P/.install.log
    (
        flock -w 300 9 || exit 2
        if [ -f "$stamp" ] && [ "$stamp" -nt "$built" ] &&
            [ "$stamp" -nt "$top/nimbus-mgmt" ] && [ -f "$MODULE" ]; then
            exit 0
        fi
        # MAKEFLAGS of the running `make check` (jobserver, TESTS=...) are
        # not for this make.
        if ! env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
            make -s -C "$top" install DESTDIR= prefix="$P" \
            exec_prefix="$P" bindir="$P/bin" libdir="$P/lib" \
            includedir="$P/include" datarootdir="$P/share" \
            datadir="$P/share" mandir="$P/share/man" sysconfdir="$P/etc" \
            p11kit_module_dir="$P/share/p11-kit/modules" sbindir="$P/sbin" \
            systemdsystemunitdir="$P/lib/systemd/system" \
            tmpfilesdir="$P/lib/tmpfiles.d" >"$log" 2>&1; then
            exit 1
        fi
        touch "$stamp"
    ) 9>"$top/interop-prefix/.lock"
    case $? in
    0) ;;
    2) die "timed out waiting for another test's install into $P" ;;
    *)
        cat "$log"
        die "make install into $P failed"
        ;;
    esac
    [ -f "$MODULE" ] || die "make install did not put the module at $MODULE"
    [ -x "$MGMT" ] || die "make install did not put nimbus-mgmt at $MGMT"
}

# ----------------------------------------------------------------- store
# write_conf FILE STORE [LABEL]: a test configuration
write_conf() {
    mkdir -p "$(dirname "$1")"
    cat >"$1" <<EOF
# $T: a throwaway store. kdf_iterations = 1000 for speed only (the clients
# log in many times; the default 600000 is the production setting).
store = $2
label = ${3:-interop}
kdf_iterations = 1000
EOF
}
# remote_conf DIR: in remote mode, a nimbusd on the store DIR/store and the
# clients' DIR/nimbus.conf naming it. Its `store` is a plain file, so that
# a module that stayed embedded fails instead of passing on its own store.
remote_conf() {
    nimbusd_start "$1" "label = interop" ||
        die "nimbusd did not start: $(tail -n 20 "$1/nimbusd.log" "$1/nimbusd.out")"
    _pids+=("$NIMBUSD_PID")
    remote_conf_clients "$1"
}
remote_conf_clients() {
    echo "remote mode: must not be opened" >"$1/not-a-store"
    {
        echo "# $T: the clients of the test's nimbusd"
        echo "store = $1/not-a-store"
        cat "$1/client.conf"
    } >"$1/nimbus.conf"
}
# store_conf_add LINE: a setting of the store (the daemon's in remote mode,
# which is restarted with it); the clients started after see it.
store_conf_add() {
    if [ -z "${NIMBUS_TEST_REMOTE:-}" ]; then
        echo "$1" >>"$NIMBUS_CONF"
        return
    fi
    nimbusd_stop || bad "nimbusd did not stop cleanly before its restart"
    NIMBUSD_LINES+=("$1")
    nimbusd_restart || die "nimbusd did not restart with $1"
    _pids+=("$NIMBUSD_PID")
    remote_conf_clients "$NIMBUSD_DIR"
}
# mgmt COMMANDS: the installed nimbus-mgmt, scripted, confirmations on
mgmt() { t 60 "$MGMT" -y -c "$1" 2>&1; }
# fresh_store DIR [USER PASSWORD]...: a new store in DIR, nimbus.conf in
# DIR/nimbus.conf (exported as NIMBUS_CONF), activated (admin's password
# becomes $CO_PW) and with the given crypto users.
fresh_store() {
    local dir=$1 cmds o
    shift
    if [ -n "${NIMBUS_TEST_REMOTE:-}" ]; then
        remote_conf "$dir"
    else
        write_conf "$dir/nimbus.conf" "$dir/store"
    fi
    export NIMBUS_CONF=$dir/nimbus.conf
    cmds="loginHSM PRECO admin password; changePswd PRECO admin $CO_PW"
    while [ $# -ge 2 ]; do
        cmds="$cmds; createUser CU $1 $2"
        shift 2
    done
    cmds="$cmds; listUsers; logoutHSM"
    o=$(mgmt "$cmds") || die "nimbus-mgmt could not set up the store: $o"
    grep -q 'PCO' <<<"$o" || die "activation did not make a PCO: $o"
}
# user_id NAME: the numeric user id listUsers shows for NAME
user_id() {
    mgmt "listUsers" | awk -v n="$1" '$3 == n && $2 == "CU" { print $1 }'
}
# key_oid USER PASSWORD CLASS LABEL: the store object id (nimbus-mgmt key
# handle) of USER's own object of CKA_CLASS CLASS (3 = private key, 4 =
# secret key) labelled LABEL
key_oid() {
    local uid h out
    uid=$(user_id "$1")
    [ -n "$uid" ] || return 1
    out=$(mgmt "loginHSM CU $1 $2; findAllKeys $uid 0")
    for h in $(sed -n 's/([os])//g; s/,//g; /^[0-9]/p' <<<"$out"); do
        # getAttribute prints each attribute's name, then its value
        out=$(mgmt "loginHSM CU $1 $2; getAttribute $h 512" |
            awk '/^OBJ_ATTR_(CLASS|LABEL)$/ { n = $1; next }
                 n != "" { print n "=" $0; n = "" }')
        if grep -qx "OBJ_ATTR_CLASS=$(printf '0x%08x' "$3")" <<<"$out" &&
            grep -qxF "OBJ_ATTR_LABEL=$4" <<<"$out"; then
            echo "$h"
            return 0
        fi
    done
    return 1
}

# ----------------------------------------------------------------- openssl
# need_engine: SKIP unless libp11's pkcs11 engine for OpenSSL 3 is there;
# sets ENGINE_SO
need_engine() {
    local dir
    need_cmd openssl openssl
    dir=$(openssl version -e 2>/dev/null |
        sed -n 's/^ENGINESDIR: "\(.*\)"$/\1/p')
    ENGINE_SO=$dir/pkcs11.so
    [ -n "$dir" ] && [ -f "$ENGINE_SO" ] ||
        skip "libp11's pkcs11 engine is not installed in '$dir'" \
            "(apt-get install libengine-pkcs11-openssl)"
}
# engine_conf FILE [INIT]: an openssl.cnf that loads the pkcs11 engine with
# the installed module (MODULE_PATH) and has what `openssl req` needs. INIT
# 1 initialises the engine as the configuration loads (what nginx needs: it
# loads "engine:..." keys without ENGINE_init); the default 0 leaves that to
# `-engine pkcs11`, so that plain openssl commands do not load the module.
engine_conf() {
    cat >"$1" <<EOF
openssl_conf = openssl_init

[openssl_init]
engines = engine_section

[engine_section]
pkcs11 = pkcs11_section

[pkcs11_section]
engine_id = pkcs11
dynamic_path = $ENGINE_SO
MODULE_PATH = $MODULE
init = ${2:-0}

[req]
distinguished_name = req_dn
x509_extensions = v3_self
prompt = no

[req_dn]
CN = nimbus interop

[v3_self]
basicConstraints = critical, CA:true
keyUsage = critical, digitalSignature, keyCertSign
subjectKeyIdentifier = hash

[v3_server]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
EOF
}

# ------------------------------------------------------------ token keys
# token_keypairs "KEYTYPE ID LABEL"...: generates each key pair on the token
# with pkcs11-tool, logged in with $PIN, and exports its public key to
# LABEL.der and LABEL.pub (PEM) in the current directory.
token_keypairs() {
    local k
    for k in "$@"; do
        set -- $k
        t 60 pkcs11-tool --module "$MODULE" --login --pin "$PIN" \
            --keypairgen --key-type "$1" --id "$2" --label "$3" \
            >/dev/null 2>&1 || die "pkcs11-tool could not generate $3"
        t 60 pkcs11-tool --module "$MODULE" --login --pin "$PIN" \
            --read-object --type pubkey --id "$2" -o "$3.der" \
            >/dev/null 2>&1 &&
            openssl pkey -pubin -inform DER -in "$3.der" -out "$3.pub" ||
            die "cannot export the $3 public key"
    done
}

# ------------------------------------------------------------ TLS servers
# check_served_keys "PORT LABEL"...: the certificate the TLS server on PORT
# serves (verified against ca.pem in the current directory) holds the
# public key LABEL.pub.
check_served_keys() {
    local s got
    for s in "$@"; do
        set -- $s
        got=$(t 30 openssl s_client -connect "127.0.0.1:$1" -CAfile ca.pem \
            -verify_return_error </dev/null 2>/dev/null |
            openssl x509 -noout -pubkey 2>/dev/null)
        if [ -n "$got" ] && [ "$got" = "$(cat "$2.pub")" ]; then
            ok "the certificate served on $1 holds the token's $2 key"
        else
            bad "the certificate served on $1 is not the token's $2 key" "$got"
        fi
    done
}

# parallel_gets ROUNDS PORT...: ROUNDS times, one request to each PORT, all
# at once, through the caller's `get PORT TLSVERSION` (TLS 1.3 on odd
# rounds, 1.2 on even ones); every request must succeed.
parallel_gets() {
    local rounds=$1 i p v nok total pids=()
    shift
    total=$((rounds * $#))
    : >"$tmp/par.out"
    for i in $(seq 1 "$rounds"); do
        for p in "$@"; do
            v=1.3
            [ $((i % 2)) -eq 0 ] && v=1.2
            (get "$p" $v >"$tmp/par.$p.$i" 2>&1; echo "$? $p $v" >>"$tmp/par.out") &
            pids+=($!)
        done
    done
    wait "${pids[@]}"
    nok=$(grep -c '^0 ' "$tmp/par.out")
    [ "$nok" -eq "$total" ] && ok "$total parallel handshakes succeeded" ||
        bad "$nok of $total parallel handshakes succeeded" \
            "$(grep -v '^0 ' "$tmp/par.out"; cat "$tmp"/par.*.* | sort | uniq -c)"
}

# ----------------------------------------------------------------- setup
# The interop tests need the clients' view of a normal build: an ASan
# module cannot be loaded by uninstrumented clients (ASan must come first).
interop_setup() {
    need_cmd timeout coreutils
    need_cmd python3 python3
    if ldd "$top/.libs/libnimbus-pkcs11.so" 2>/dev/null | grep -q libasan; then
        skip "sanitizer build: uninstrumented clients cannot load an ASan" \
            "module (the interop suite runs in the normal build)"
    fi
    if [ -n "${NIMBUS_TEST_REMOTE:-}" ]; then
        . "$srcdir/tests/remote/lib.sh"
        [ -x "$NIMBUSD" ] || die "remote mode: $NIMBUSD is not built"
    fi
    install_prefix
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/nimbus-$T.XXXXXX") || die "mktemp"
    unset NIMBUS_DEBUG
}
