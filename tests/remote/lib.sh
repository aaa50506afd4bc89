# lib.sh - nimbusd for the shell tests (bash, sourced): a throw-away CA
# made with the openssl CLI, and a daemon per store. Used by the remote
# runs of the suites (tests/remote/run.sh), by tests/interop/common.sh in
# remote mode and by the process tests in tests/remote/.
#
# Nothing here installs a trap: the caller stops what it started
# (nimbusd_stop, or its own cleanup killing $NIMBUSD_PID).

NIMBUSD=${NIMBUSD:-${NIMBUS_TOP_BUILDDIR:-$(pwd)}/nimbusd}

# pki_ca DIR NAME CN: a self-signed P-256 CA, DIR/NAME.pem and DIR/NAME.key,
# valid for a day.
pki_ca() {
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -nodes -keyout "$1/$2.key" -out "$1/$2.pem" -days 1 -subj "/CN=$3" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign" >/dev/null 2>&1
}

# pki_cert DIR NAME CN ISSUER [SAN]: a P-256 key and certificate
# (DIR/NAME.key, DIR/NAME.pem) issued by the CA DIR/ISSUER.pem, with the
# subjectAltName SAN when given.
pki_cert() {
    if [ $# -ge 5 ]; then
        printf 'subjectAltName=%s\n' "$5" >"$1/$2.ext"
    else
        : >"$1/$2.ext"
    fi
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$1/$2.key" -out "$1/$2.csr" -subj "/CN=$3" \
        >/dev/null 2>&1 &&
        openssl x509 -req -in "$1/$2.csr" -CA "$1/$4.pem" \
            -CAkey "$1/$4.key" -CAcreateserial -days 1 \
            -extfile "$1/$2.ext" -out "$1/$2.pem" >/dev/null 2>&1
}

# make_pki DIR: in DIR, a CA (ca.pem), a server certificate for 127.0.0.1
# and localhost (server.pem/.key), a client certificate under the CA
# (client.pem/.key), and a client certificate under another CA
# (rogue.pem/.key, its CA other.pem).
make_pki() {
    mkdir -p "$1" &&
        pki_ca "$1" ca "Nimbus Test CA" &&
        pki_ca "$1" other "Other CA" &&
        pki_cert "$1" server nimbusd ca "IP:127.0.0.1,DNS:localhost" &&
        pki_cert "$1" client app-1 ca &&
        pki_cert "$1" rogue rogue other
}

# _nimbusd_port: a free TCP port on 127.0.0.1 in 20000-32767
_free_port_py=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../scripts" && pwd)/free-port.py
_nimbusd_port() {
    python3 "$_free_port_py"
}

# nimbusd_start DIR [LINE...]: nimbusd --foreground on DIR/store (config
# DIR/nimbusd.conf: kdf_iterations 1000, the LINEs, an info log in
# DIR/nimbusd.log). The transport is NIMBUS_TEST_REMOTE's: unix (the
# default; socket DIR/sock/nimbusd.sock) or tls (127.0.0.1, a free port,
# the certificates of NIMBUS_TEST_PKI). Sets NIMBUSD_PID and NIMBUSD_EP, and
# writes the lines a client's nimbus.conf needs to DIR/client.conf.
# 0 once it accepts; 1 when it failed (see DIR/nimbusd.log).
nimbusd_start() {
    local dir=$1 i try port
    shift
    NIMBUSD_DIR=$dir
    NIMBUSD_LINES=("$@")
    [ -x "$NIMBUSD" ] || {
        echo "nimbusd_start: $NIMBUSD is not built" >&2
        return 1
    }
    mkdir -p "$dir/sock" || return 1
    chmod 0750 "$dir/sock"
    if [ "$(id -u)" -eq 0 ] && getent group nogroup >/dev/null; then
        # As root some clients run as nobody (httpd): the socket gets the
        # group nogroup through the setgid directory, as a deployment
        # gives its clients a group.
        chgrp nogroup "$dir/sock" && chmod 2750 "$dir/sock"
    fi
    for try in 1 2 3; do
        {
            echo "# the test daemon of $dir"
            echo "store = $dir/store"
            echo "kdf_iterations = 1000"
            [ "$(id -u)" -eq 0 ] && echo "allowed_uids = 0, nobody"
            [ $# -gt 0 ] && printf '%s\n' "$@"
            echo "log_level = info"
            echo "log_file = $dir/nimbusd.log"
        } >"$dir/nimbusd.conf"
        case ${NIMBUS_TEST_REMOTE:-unix} in
        unix)
            NIMBUSD_EP=unix:$dir/sock/nimbusd.sock
            echo "listen = $NIMBUSD_EP" >>"$dir/nimbusd.conf"
            echo "servers = $NIMBUSD_EP" >"$dir/client.conf"
            ;;
        tls)
            [ -f "${NIMBUS_TEST_PKI:-}/ca.pem" ] || {
                echo "nimbusd_start: NIMBUS_TEST_PKI has no CA" >&2
                return 1
            }
            port=$(_nimbusd_port) || return 1
            NIMBUSD_EP=tls:127.0.0.1:$port
            printf '%s\n' "listen = $NIMBUSD_EP" \
                "tls_cert = $NIMBUS_TEST_PKI/server.pem" \
                "tls_key = $NIMBUS_TEST_PKI/server.key" \
                "tls_ca = $NIMBUS_TEST_PKI/ca.pem" >>"$dir/nimbusd.conf"
            printf '%s\n' "servers = $NIMBUSD_EP" \
                "tls_cert = $NIMBUS_TEST_PKI/client.pem" \
                "tls_key = $NIMBUS_TEST_PKI/client.key" \
                "tls_ca = $NIMBUS_TEST_PKI/ca.pem" >"$dir/client.conf"
            ;;
        *)
            echo "nimbusd_start: NIMBUS_TEST_REMOTE=$NIMBUS_TEST_REMOTE" >&2
            return 1
            ;;
        esac
        : >"$dir/nimbusd.log"
        "$NIMBUSD" -c "$dir/nimbusd.conf" --foreground >>"$dir/nimbusd.out" 2>&1 &
        NIMBUSD_PID=$!
        for ((i = 0; i < 600; i++)); do
            grep -q 'ready: listening' "$dir/nimbusd.log" 2>/dev/null &&
                return 0
            kill -0 "$NIMBUSD_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$NIMBUSD_PID" 2>/dev/null
        wait "$NIMBUSD_PID" 2>/dev/null
        NIMBUSD_PID=
        grep -qi 'in use' "$dir/nimbusd.log" || break
    done
    return 1
}

# nimbusd_restart: the same daemon again (same store, lines and endpoint
# for unix; a new port for tls, client.conf rewritten), after the last one
# ended (nimbusd_stop or kill -9 and wait).
nimbusd_restart() {
    nimbusd_start "$NIMBUSD_DIR" ${NIMBUSD_LINES[@]+"${NIMBUSD_LINES[@]}"}
}

# nimbusd_stop: SIGTERM to $NIMBUSD_PID; 0 when it exits 0 within 60 s,
# else 1 (it crashed before, or hung: then killed).
nimbusd_stop() {
    local pid=${NIMBUSD_PID:-} i rc=0
    [ -n "$pid" ] || return 0
    NIMBUSD_PID=
    if ! kill -TERM "$pid" 2>/dev/null; then
        wait "$pid" 2>/dev/null
        echo "nimbusd_stop: nimbusd $pid had died (status $?)" >&2
        return 1
    fi
    for ((i = 0; i < 600; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        echo "nimbusd_stop: nimbusd $pid hung after SIGTERM" >&2
        return 1
    fi
    wait "$pid" || rc=$?
    [ "$rc" -eq 0 ] || echo "nimbusd_stop: nimbusd $pid exited $rc" >&2
    return "$rc"
}
