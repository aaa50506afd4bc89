#!/usr/bin/env bash
# debs.sh - the Debian packages, built and used as a user would:
#
#   1. copies the tree (the files git tracks, as they are in the work tree;
#      without git, everything but build directories) into a temporary
#      directory, so that no build product of the tree leaks in;
#   2. runs `dpkg-buildpackage -us -uc -b` there (nocheck: scripts/test.sh
#      has run the suites already);
#   3. checks each .deb: its version is configure.ac's, its files are
#      where the packages promise them, apt would install it here;
#   4. unpacks every .deb into a scratch root (dpkg -x) and runs from it:
#      nimbus-mgmt activates a token, pkcs11-tool makes a key and signs
#      through the module, a program builds against the headers; once the
#      daemon is packaged, nimbusd starts from the root, opens its socket
#      with the promised modes and exits 0 on SIGTERM.
#
# Run by scripts/test.sh after make check (not by make check: it builds the
# whole project once more). Exit: 0 pass, 1 fail, 77 skip, 99 error.
set -u
T=debs
srcdir=${NIMBUS_TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
jobs=${NIMBUS_JOBS:-2}

fail=0
ok() { echo "ok: $*"; }
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
die() {
    echo "ERROR: $T: $*"
    exit 99
}
check() { # check WHAT OUTPUT PATTERN (extended regex)
    if grep -Eq -- "$3" <<<"$2"; then ok "$1"; else bad "$1 (expected /$3/)" "$2"; fi
}

for c in dpkg-buildpackage dpkg-deb fakeroot dh; do
    command -v "$c" >/dev/null 2>&1 ||
        skip "$c is not installed (apt-get install dpkg-dev debhelper fakeroot)"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/nimbus-debs.XXXXXX") || die "mktemp"
pids=()
cleanup() {
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

version=$(sed -nE 's/^AC_INIT\(\[[^]]*\], *\[([^]]*)\].*/\1/p' "$srcdir/configure.ac")
[ -n "$version" ] || die "no version in configure.ac"
daemon=no
grep -qx 'Package: nimbusd' "$srcdir/debian/control" && daemon=yes

# ------------------------------------------------------------ 1. the copy
src=$tmp/nimbus-hsm-$version
mkdir -p "$src"
if git -C "$srcdir" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$srcdir" && git ls-files -z | while IFS= read -r -d '' f; do
        [ -e "$f" ] && printf '%s\0' "$f"
    done | tar --null -T - -cf -) | tar -xf - -C "$src" ||
        die "copying the tracked files"
else
    tar -C "$srcdir" --exclude='./build*' --exclude=./interop-prefix \
        --exclude=./autom4te.cache -cf - . | tar -xf - -C "$src" ||
        die "copying the tree"
fi
[ -f "$src/debian/control" ] || die "the copy has no debian/control"

# ------------------------------------------------------------ 2. the build
chv=$(cd "$src" && dpkg-parsechangelog -S Version)
[ "$chv" = "$version" ] && ok "debian/changelog version $chv = configure.ac's" ||
    bad "debian/changelog says $chv, configure.ac $version"

echo "building the packages (log: dpkg-buildpackage.log)"
if ! (cd "$src" && DEB_BUILD_OPTIONS="nocheck parallel=$jobs" \
    timeout 1200 dpkg-buildpackage -us -uc -b >"$tmp/build.log" 2>&1); then
    tail -n 60 "$tmp/build.log"
    die "dpkg-buildpackage failed"
fi
ok "dpkg-buildpackage -us -uc -b"

arch=$(dpkg-architecture -qDEB_HOST_ARCH)
triplet=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
pkgs="nimbus-pkcs11 nimbus-tools nimbus-hsm-dev"
[ $daemon = yes ] && pkgs="$pkgs nimbusd"
debs=()
for p in $pkgs; do
    d=$tmp/${p}_${version}_$arch.deb
    if [ -f "$d" ]; then
        debs+=("$d")
    else
        bad "no $p package" "$(ls "$tmp")"
    fi
done
[ ${#debs[@]} -gt 0 ] || exit 1

# ------------------------------------------------------------ 3. the .debs
# contents P PATH...: the package P ships each PATH
contents() {
    local p=$1 list
    shift
    list=$(dpkg-deb -c "$tmp/${p}_${version}_$arch.deb" | awk '{print $6}' |
        sed 's|^\./|/|')
    for f in "$@"; do
        if grep -qxF -- "$f" <<<"$list"; then
            ok "$p ships $f"
        else
            bad "$p lacks $f" "$list"
        fi
    done
    if grep -qE '\.la$' <<<"$list"; then bad "$p ships a .la file" "$list"; fi
}
contents nimbus-pkcs11 /usr/lib/$triplet/pkcs11/libnimbus-pkcs11.so \
    /usr/share/p11-kit/modules/nimbus.module \
    /usr/share/man/man5/nimbus.conf.5.gz
contents nimbus-tools /usr/bin/nimbus-mgmt /usr/bin/nimbus-speed \
    /usr/share/man/man1/nimbus-mgmt.1.gz /usr/share/man/man1/nimbus-speed.1.gz
contents nimbus-hsm-dev /usr/include/nimbus/pkcs11-vendor.h \
    /usr/include/nimbus/pkcs11/pkcs11.h /usr/lib/$triplet/pkgconfig/nimbus.pc \
    /usr/share/nimbus/nimbus.proto

for d in "${debs[@]}"; do
    v=$(dpkg-deb -f "$d" Version)
    [ "$v" = "$version" ] || bad "$(basename "$d") has version $v"
done

# Installable here: apt resolves each package's dependencies against this
# machine (simulation only: nothing is installed).
if command -v apt-get >/dev/null 2>&1; then
    out=$(apt-get install -s -q "${debs[@]}" 2>&1)
    if [ $? -eq 0 ]; then
        ok "apt-get would install ${#debs[@]} packages"
    else
        bad "apt-get cannot install the packages" "$out"
    fi
fi

# ------------------------------------------------------------ 4. the root
root=$tmp/root
for d in "${debs[@]}"; do
    dpkg -x "$d" "$root" || die "dpkg -x $d"
done
module=$root/usr/lib/$triplet/pkcs11/libnimbus-pkcs11.so
mgmt=$root/usr/bin/nimbus-mgmt

# p11-kit's registration names the module where the package put it
out=$(cat "$root/usr/share/p11-kit/modules/nimbus.module")
check "nimbus.module names the packaged module" "$out" \
    "^module: /usr/lib/$triplet/pkcs11/libnimbus-pkcs11.so$"

# only system libraries (the internal layers are linked in)
for b in "$module" "$mgmt" "$root/usr/bin/nimbus-speed"; do
    out=$(ldd "$b" 2>&1)
    if grep -q 'not found' <<<"$out"; then bad "$(basename "$b") misses a library" "$out"; fi
done

conf=$tmp/nimbus.conf
printf 'store = %s/store\nkdf_iterations = 1000\nlabel = debs\n' "$tmp" >"$conf"
out=$(NIMBUS_CONF=$conf timeout 60 "$mgmt" -y -c "loginHSM PRECO admin password; \
    changePswd PRECO admin co-secret1; createUser CU alice alice-pw1; \
    listUsers" 2>&1)
rc=$?
[ $rc -eq 0 ] || bad "nimbus-mgmt exited $rc" "$out"
check "the packaged nimbus-mgmt activates a token, creates alice" "$out" \
    "CU +alice "
out=$("$mgmt" --version 2>&1)
check "nimbus-mgmt --version is the package's" "$out" "^nimbus-mgmt $version$"

if command -v pkcs11-tool >/dev/null 2>&1; then
    p11() { NIMBUS_CONF=$conf timeout 60 pkcs11-tool --module "$module" "$@" 2>&1; }
    out=$(p11 -T)
    check "pkcs11-tool sees the token through the packaged module" "$out" \
        "token label *: debs"
    out=$(p11 --login --pin alice:alice-pw1 --keypairgen --key-type EC:prime256v1 \
        --id 01 --label pkg)
    check "a P-256 key pair made through the packaged module" "$out" \
        "Key pair generated"
    printf 'packaged\n' >"$tmp/doc"
    out=$(p11 --login --pin alice:alice-pw1 --sign --id 01 -m ECDSA-SHA256 \
        -i "$tmp/doc" -o "$tmp/doc.sig")
    if [ -s "$tmp/doc.sig" ] && [ "$(stat -c %s "$tmp/doc.sig")" -eq 64 ]; then
        ok "ECDSA-SHA256 signature of 64 bytes"
    else
        bad "no signature" "$out"
    fi
    out=$(p11 --login --pin alice:wrong-pw9 -O)
    check "a wrong PIN is refused by the packaged module" "$out" \
        "CKR_PIN_INCORRECT"
else
    echo "pkcs11-tool is not installed (opensc): the module is not run"
fi

# a client builds against the packaged headers, found by pkg-config
if command -v cc >/dev/null 2>&1 && command -v pkg-config >/dev/null 2>&1; then
    cat >"$tmp/hdr.c" <<'EOF'
#include <pkcs11/pkcs11.h>
#include <pkcs11-vendor.h>
#include <stdio.h>
int main(void) { printf("%lu\n", (unsigned long)CKA_NIMBUS_OBJECT_ID); return 0; }
EOF
    pcvars=(PKG_CONFIG_SYSROOT_DIR="$root"
        PKG_CONFIG_LIBDIR="$root/usr/lib/$triplet/pkgconfig")
    cflags=$(env "${pcvars[@]}" pkg-config --cflags nimbus 2>&1)
    mod=$(env "${pcvars[@]}" pkg-config --variable=pkcs11_module nimbus 2>&1)
    mod=${mod#"$root"}
    [ "$mod" = "/usr/lib/$triplet/pkcs11/libnimbus-pkcs11.so" ] &&
        ok "nimbus.pc names the module" || bad "nimbus.pc names $mod"
    # shellcheck disable=SC2086
    if out=$(cc $cflags -o "$tmp/hdr" "$tmp/hdr.c" 2>&1) && "$tmp/hdr" >/dev/null; then
        ok "a program builds with the packaged headers ($cflags)"
    else
        bad "the packaged headers do not build" "$out"
    fi
fi

# ------------------------------------------------------------ the daemon
if [ $daemon = yes ]; then
    contents nimbusd /usr/sbin/nimbusd /lib/systemd/system/nimbusd.service \
        /lib/systemd/system/nimbusd.socket /usr/lib/tmpfiles.d/nimbusd.conf \
        /etc/nimbus/nimbusd.conf /usr/share/man/man8/nimbusd.8.gz
    deb=$tmp/nimbusd_${version}_$arch.deb
    out=$(dpkg-deb -I "$deb" conffiles 2>&1)
    check "nimbusd.conf is a conffile (an upgrade keeps the admin's)" "$out" \
        "^/etc/nimbus/nimbusd.conf$"
    post=$(dpkg-deb -I "$deb" postinst 2>&1)
    check "postinst makes the nimbus system user" "$post" \
        "adduser --system .*nimbus"
    check "postinst makes /run/nimbus (tmpfiles)" "$post" \
        "systemd-tmpfiles .*--create.*nimbusd.conf"
    check "postinst enables the units" "$post" \
        "deb-systemd-helper .*nimbusd.(socket|service)"
    svc=$(cat "$root/lib/systemd/system/nimbusd.service")
    check "the service runs the packaged nimbusd on the packaged file" "$svc" \
        "^ExecStart=/usr/sbin/nimbusd -c /etc/nimbus/nimbusd.conf --foreground$"
    check "the service runs as nimbus" "$svc" "^User=nimbus$"
    check "the service waits for READY=1" "$svc" "^Type=notify$"
    check "the service has no core dumps" "$svc" "^LimitCORE=0$"
    sock=$(cat "$root/lib/systemd/system/nimbusd.socket")
    check "the socket unit makes /run/nimbus/nimbusd.sock" "$sock" \
        "^ListenStream=/run/nimbus/nimbusd.sock$"
    check "the socket is 0660" "$sock" "^SocketMode=0660$"
    out=$(cat "$root/usr/lib/tmpfiles.d/nimbusd.conf")
    check "tmpfiles makes /run/nimbus 0750 nimbus:nimbus" "$out" \
        "^d /run/nimbus 0750 nimbus nimbus"
    if command -v systemd-analyze >/dev/null 2>&1; then
        # The units as systemd reads them, the binary taken from the root
        # (a copy whose ExecStart names it there).
        mkdir -p "$tmp/units"
        sed "s|/usr/sbin/nimbusd|$root/usr/sbin/nimbusd|" \
            "$root/lib/systemd/system/nimbusd.service" >"$tmp/units/nimbusd.service"
        cp "$root/lib/systemd/system/nimbusd.socket" "$tmp/units/"
        # Nothing at all to report (a container's PID 1 is not the
        # units' business); man pages are checked on the installed tree
        # by tests/daemon/units.sh.
        vrc=0
        out=$(SYSTEMD_LOG_LEVEL=notice timeout 60 systemd-analyze verify \
            --man=no "$tmp/units/nimbusd.socket" "$tmp/units/nimbusd.service" 2>&1) ||
            vrc=$?
        out=$(grep -v -e 'of PID 1' -e 'container virtualization' <<<"$out")
        if [ "$vrc" = 0 ] && [ -z "$out" ]; then
            ok "systemd-analyze verify accepts the units"
        else
            bad "systemd-analyze verify (exit $vrc)" "$out"
        fi
    else
        echo "skip: systemd-analyze missing (Debian package systemd): units not verified"
    fi

    # nimbusd from the root, on the packaged sample with only the paths
    # (and the group, which this machine may not have) changed: the
    # sample itself must parse.
    run=$tmp/run
    dconf=$tmp/nimbusd.conf
    sed -e "s|^store = .*|store = $tmp/dstore|" \
        -e "s|^listen = unix:.*|listen = unix:$run/nimbusd.sock|" \
        -e "s|^allowed_groups = nimbus$|allowed_groups = $(id -g)|" \
        -e "s|^log_level = .*|log_level = info|" \
        "$root/etc/nimbus/nimbusd.conf" >"$dconf"
    for k in store listen allowed_groups log_level; do
        grep -q "^$k = " "$dconf" || bad "the sample has no active '$k' line"
    done
    "$root/usr/sbin/nimbusd" -c "$dconf" --foreground >"$tmp/nimbusd.log" 2>&1 &
    dpid=$!
    pids+=("$dpid")
    for _ in $(seq 1 100); do
        [ -S "$run/nimbusd.sock" ] && break
        kill -0 "$dpid" 2>/dev/null || break
        sleep 0.1
    done
    if [ -S "$run/nimbusd.sock" ]; then
        ok "the packaged nimbusd listens on $run/nimbusd.sock"
        [ "$(stat -c %a "$run/nimbusd.sock")" = 660 ] && ok "socket 0660" ||
            bad "socket mode $(stat -c %a "$run/nimbusd.sock")"
        [ "$(stat -c %a "$run")" = 750 ] && ok "socket directory 0750" ||
            bad "socket directory mode $(stat -c %a "$run")"
        # An allowed peer stays connected (the daemon waits for its
        # handshake); a frame header announcing 4 GiB ends it at once.
        out=$(timeout 20 python3 - "$run/nimbusd.sock" <<'PY' 2>&1
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.settimeout(0.5)
try:
    d = s.recv(1)
    print("closed at once" if d == b"" else "unexpected data")
except socket.timeout:
    print("held open")
s.sendall(b"\xff\xff\xff\xff")
s.settimeout(5)
try:
    d = s.recv(64)
    print("huge header: closed" if d == b"" else "huge header: answered")
except (socket.timeout, ConnectionResetError) as e:
    print("huge header: " + type(e).__name__)
PY
)
        check "an allowed peer is held open for its handshake" "$out" "^held open$"
        check "a 4 GiB frame header closes the connection" "$out" \
            "^huge header: (closed|ConnectionResetError)$"
        if [ -f "$src/src/backend/remote.c" ]; then
            # Remote mode: the packaged shell and module as its clients.
            printf 'servers = unix:%s/nimbusd.sock\n' "$run" >"$tmp/client.conf"
            out=$(NIMBUS_CONF=$tmp/client.conf timeout 120 "$mgmt" -y -c \
                "loginHSM PRECO admin password; changePswd PRECO admin co-secret1; \
                createUser CU alice alice-pw1; listUsers" 2>&1)
            check "the packaged nimbus-mgmt activates the daemon's token" "$out" \
                "loginHSM success on server 0\\($run/nimbusd.sock\\)"
            check "... and creates alice there" "$out" "CU +alice "
            if command -v pkcs11-tool >/dev/null 2>&1; then
                rp11() { NIMBUS_CONF=$tmp/client.conf timeout 120 pkcs11-tool \
                    --module "$module" "$@" 2>&1; }
                out=$(rp11 -T)
                check "the packaged module reaches the packaged nimbusd" "$out" \
                    "token label *: nimbus"
                out=$(rp11 --login --pin alice:alice-pw1 --keypairgen \
                    --key-type EC:prime256v1 --id 02 --label remote)
                check "a key pair made in nimbusd through the module" "$out" \
                    "Key pair generated"
                rm -f "$tmp/doc.sig"
                out=$(rp11 --login --pin alice:alice-pw1 --sign --id 02 \
                    -m ECDSA-SHA256 -i "$tmp/doc" -o "$tmp/doc.sig")
                if [ -s "$tmp/doc.sig" ] && [ "$(stat -c %s "$tmp/doc.sig")" -eq 64 ]; then
                    ok "ECDSA-SHA256 signature by nimbusd"
                else
                    bad "no signature from nimbusd" "$out"
                fi
            fi
        fi
        kill -TERM "$dpid"
        rc=0
        wait "$dpid" || rc=$?
        pids=()
        [ $rc -eq 0 ] && ok "SIGTERM: nimbusd exits 0" ||
            bad "SIGTERM: nimbusd exited $rc" "$(cat "$tmp/nimbusd.log")"
        [ ! -e "$run/nimbusd.sock" ] && ok "the socket is gone after SIGTERM" ||
            bad "the socket outlived nimbusd"
    else
        bad "the packaged nimbusd did not listen" "$(cat "$tmp/nimbusd.log")"
    fi

    # Hostile: the same sample letting in only uid 65534 refuses us.
    if [ "$(id -u)" != 65534 ]; then
        sed -e "s|^allowed_groups = .*|allowed_uids = 65534|" \
            -e "s|^listen = unix:.*|listen = unix:$tmp/run2/nimbusd.sock|" \
            "$dconf" >"$tmp/refuse.conf"
        "$root/usr/sbin/nimbusd" -c "$tmp/refuse.conf" --foreground \
            >"$tmp/refuse.log" 2>&1 &
        dpid=$!
        pids+=("$dpid")
        for _ in $(seq 1 100); do
            [ -S "$tmp/run2/nimbusd.sock" ] && break
            kill -0 "$dpid" 2>/dev/null || break
            sleep 0.1
        done
        out=$(timeout 20 python3 - "$tmp/run2/nimbusd.sock" <<'PY' 2>&1
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.settimeout(5)
try:
    print("closed at once" if s.recv(1) == b"" else "answered")
except socket.timeout:
    print("held open")
except ConnectionResetError:
    print("closed at once")
PY
)
        check "a peer outside allowed_uids is refused" "$out" "^closed at once$"
        kill -TERM "$dpid" 2>/dev/null
        wait "$dpid" 2>/dev/null
        pids=()
        check "the refusal is logged" "$(cat "$tmp/refuse.log")" \
            "refused .*not in allowed_uids or allowed_groups"
    fi
fi

[ $fail -eq 0 ] && echo "PASS: $T" || echo "FAIL: $T"
exit $fail
