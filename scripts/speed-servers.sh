#!/bin/bash
# speed-servers.sh - one nimbus-speed run that measures, with the same
# threads and in alternating rounds, the embedded module, the module as a
# client of nimbusd over a unix socket and over mutual TLS 1.3, and p11-kit's
# RPC (p11-kit server serving the embedded module, loaded through
# p11-kit-client.so), then prints issue 13's ratios.
#
#   scripts/speed-servers.sh [nimbus-speed options...]
#
# Run from the build directory (or set NIMBUS_TOP_BUILDDIR). Each of the
# three tokens (embedded, nimbusd, p11-kit's) has its own fresh store in a
# temporary directory, at the default KDF cost unless
# SPEED_KDF_ITERATIONS is set. The options given are passed on; the
# default is the issue's list: --seconds 3 --threads 1,8 --ops
# rsa2048-sign-pkcs1,ecdsa-p256-sign,ecdsa-p256-sign-login-load,
# aes256-gcm-enc-16,aes256-gcm-enc-4k,aes256-gcm-enc-1m,random-32.
# Exit: nimbus-speed's status; 77 when nimbusd, p11-kit or openssl is
# missing.
set -u
B=${NIMBUS_TOP_BUILDDIR:-$(pwd)}
SPEED=$B/nimbus-speed
NIMBUSD=${NIMBUSD:-$B/nimbusd}
MOD=${NIMBUS_MODULE:-$B/.libs/libnimbus-pkcs11.so}
CLIENT=${P11KIT_CLIENT:-}
if [ -z "$CLIENT" ]; then
    dir=$(pkg-config --variable=p11_module_path p11-kit-1 2>/dev/null)
    CLIENT=${dir:-/usr/lib/x86_64-linux-gnu/pkcs11}/p11-kit-client.so
fi

for f in "$SPEED" "$NIMBUSD" "$MOD"; do
    [ -x "$f" ] || [ -f "$f" ] || { echo "SKIP: $f is not built"; exit 77; }
done
command -v p11-kit >/dev/null || { echo "SKIP: p11-kit missing"; exit 77; }
[ -f "$CLIENT" ] || { echo "SKIP: $CLIENT missing"; exit 77; }
command -v openssl >/dev/null || { echo "SKIP: openssl CLI missing"; exit 77; }

T=$(mktemp -d "${TMPDIR:-/tmp}/nimbus-speed-servers.XXXXXX") || exit 99
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
        wait "$p" 2>/dev/null
    done
    rm -rf "$T"
}
trap cleanup EXIT
die() {
    echo "speed-servers: $*" >&2
    for f in "$T"/*.log; do
        [ -s "$f" ] && { echo "--- $f"; tail -n 20 "$f"; } >&2
    done
    exit 1
}

# A free loopback port below 32768.
_free_port_py=$(cd "$(dirname "${BASH_SOURCE[0]}")/." && pwd)/free-port.py
free_port() {
    python3 "$_free_port_py"
}

# conf FILE STORE [LINES...]: a nimbus.conf.
conf() {
    local f=$1 store=$2
    shift 2
    {
        echo "store = $store"
        [ -n "${SPEED_KDF_ITERATIONS:-}" ] &&
            echo "kdf_iterations = $SPEED_KDF_ITERATIONS"
        echo "log_level = warn"
        printf '%s\n' "$@"
    } >"$f"
}

# A throw-away CA, nimbusd's certificate for 127.0.0.1, the client's.
P=$T/pki
mkdir -p "$P"
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$P/ca.key" -out "$P/ca.pem" -days 1 -subj "/CN=speed CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign" 2>/dev/null || die "CA"
cert() {
    printf 'subjectAltName=%s\n' "$2" >"$P/$1.ext"
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$P/$1.key" -out "$P/$1.csr" -subj "/CN=$1" 2>/dev/null &&
        openssl x509 -req -in "$P/$1.csr" -CA "$P/ca.pem" -CAkey "$P/ca.key" \
            -CAcreateserial -days 1 -out "$P/$1.pem" \
            -extfile "$P/$1.ext" 2>/dev/null || die "certificate $1"
}
cert server "IP:127.0.0.1,DNS:localhost"
cert client "DNS:speed-client"

# nimbusd on a unix socket and on TLS, its own store.
mkdir -m 0750 "$T/run"
SOCK=$T/run/nimbusd.sock
started=0
for _ in 1 2 3; do
    PORT=$(free_port) || die "no free port"
    conf "$T/nimbusd.conf" "$T/d-store" "listen = unix:$SOCK" \
        "listen = tls:127.0.0.1:$PORT" "tls_cert = $P/server.pem" \
        "tls_key = $P/server.key" "tls_ca = $P/ca.pem" \
        "log_file = $T/nimbusd.log"
    "$NIMBUSD" -c "$T/nimbusd.conf" --foreground 2>>"$T/nimbusd-stderr.log" &
    DPID=$!
    for _ in $(seq 300); do
        [ -S "$SOCK" ] && { started=1; break; }
        kill -0 "$DPID" 2>/dev/null || break
        sleep 0.1
    done
    [ $started -eq 1 ] && break
    wait "$DPID" 2>/dev/null
done
[ $started -eq 1 ] || die "nimbusd did not start"
PIDS+=("$DPID")

# p11-kit server serving the embedded module on its own store.
conf "$T/p11kit.conf" "$T/k-store" "log_file = $T/p11kit-module.log"
NIMBUS_CONF=$T/p11kit.conf p11-kit server --foreground \
    --provider "$MOD" --name "$T/p11kit.sock" "pkcs11:" \
    >"$T/p11kit.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 300); do
    [ -S "$T/p11kit.sock" ] && break
    sleep 0.1
done
[ -S "$T/p11kit.sock" ] || die "p11-kit server did not start"
export P11_KIT_SERVER_ADDRESS="unix:path=$T/p11kit.sock"

# The embedded module's own store.
conf "$T/embedded.conf" "$T/e-store" "log_file = $T/embedded.log"
export NIMBUS_CONF=$T/embedded.conf

if [ $# -eq 0 ]; then
    set -- --seconds 3 --threads 1,8 --ops rsa2048-sign-pkcs1,ecdsa-p256-sign,ecdsa-p256-sign-login-load,aes256-gcm-enc-16,aes256-gcm-enc-4k,aes256-gcm-enc-1m,random-32
fi
PIN=speed:speed-Passw0rd-1
"$SPEED" --module "$MOD" --init so-Speed-Passw0rd-2 --pin "$PIN" \
    --servers "unix:$SOCK,tls:127.0.0.1:$PORT" --tls-cert "$P/client.pem" \
    --tls-key "$P/client.key" --tls-ca "$P/ca.pem" \
    --vs "$CLIENT:$PIN" "$@"
rc=$?
[ $rc -eq 0 ] || die "nimbus-speed exited $rc"
exit 0
