#!/bin/bash
# nimbusd under a service manager: sd_notify READY=1 (a NOTIFY_SOCKET made
# here), socket activation (systemd-socket-activate hands over the
# listening socket), and hardening when started as root with `user`: runs
# as that account, not dumpable, no core files, socket and directory
# owned by it.
. "$(dirname "$0")/common.sh"

[ "$(id -u)" = 0 ] || { echo "SKIP: the privilege drop needs root"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }
grep -q '^#define HAVE_LIBSYSTEMD 1' "$B/config.h" ||
    { echo "SKIP: built without libsystemd"; exit 77; }

# ASan's mlock and mlockall do nothing (and say they succeeded).
asan=false
case "${NIMBUS_SANITIZE:-}" in *address*) asan=true ;; esac

# --- sd_notify: READY=1 arrives once the socket accepts
S=$T/run/nimbusd.sock
write_conf "$T/a.conf" "listen = unix:$S"
python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(20)
out = open(sys.argv[2], "w")
while True:
    try:
        m = s.recv(4096).decode()
    except socket.timeout:
        break
    out.write(m + "\n")
    out.flush()
    if "STOPPING=1" in m:
        break' "$T/notify.sock" "$T/notify.out" &
PIDS+=("$!")
for _ in $(seq 50); do [ -S "$T/notify.sock" ] && break; sleep 0.1; done
NOTIFY_SOCKET=$T/notify.sock start_fg "$T/a.conf" || fail "nimbusd did not start"
for _ in $(seq 50); do grep -q READY=1 "$T/notify.out" 2>/dev/null && break; sleep 0.1; done
grep -q '^READY=1' "$T/notify.out" || fail "no READY=1"
"$DCLIENT" "unix:$S" hello || fail "not serving after READY=1"
stop "$DPID" || fail "exit status"
for _ in $(seq 50); do grep -q STOPPING=1 "$T/notify.out" && break; sleep 0.1; done
grep -q '^STOPPING=1' "$T/notify.out" || fail "no STOPPING=1"
ok "sd_notify READY=1 and STOPPING=1"

# --- socket activation: no listen line, the socket comes from the manager
if command -v systemd-socket-activate >/dev/null; then
    A=$T/act.sock
    write_conf "$T/b.conf"
    : >"$T/nimbusd.log"
    systemd-socket-activate -l "$A" "$NIMBUSD" -c "$T/b.conf" --foreground \
        2>>"$T/stderr.log" &
    DPID=$!
    PIDS+=("$DPID")
    # It starts nimbusd on the first connection, which nimbusd serves.
    # (its socket file appears at bind, before it listens: retry)
    served=no
    for _ in $(seq 50); do
        "$DCLIENT" "unix:$A" hello 2>/dev/null && { served=yes; break; }
        sleep 0.1
    done
    [ "$served" = yes ] || fail "activated socket does not serve"
    wait_ready "$DPID" || fail "activated nimbusd did not start"
    grep -q "listening on unix:$A (systemd)" "$T/nimbusd.log" ||
        fail "the activated socket was not used"
    "$DCLIENT" "unix:$A" hello || fail "second client on the activated socket"
    stop "$DPID" || fail "exit status"
    ok "socket activation (sd_listen_fds)"
else
    echo "skip: systemd-socket-activate missing"
fi

# --- root with `user = nobody`: privileges dropped, not dumpable
chmod 0711 "$T"
mkdir -p "$T/nb"
chown nobody "$T/nb"
S=$T/nb/run/nimbusd.sock
write_conf "$T/c.conf" "listen = unix:$S" "user = nobody"
sed -i "s|^store = .*|store = $T/nb/store|" "$T/c.conf"
start_fg "$T/c.conf" || fail "nimbusd as nobody did not start"
"$DCLIENT" "unix:$S" hello || fail "root refused by default"
grep -q "^Uid:[[:space:]]*65534[[:space:]]*65534[[:space:]]*65534[[:space:]]*65534" \
    "/proc/$DPID/status" || fail "not running as nobody: $(grep ^Uid "/proc/$DPID/status")"
grep -q "^Gid:[[:space:]]*65534" "/proc/$DPID/status" || fail "gid not dropped"
# A process that is not dumpable has its /proc files owned by root.
[ "$(stat -c %u "/proc/$DPID/status")" = 0 ] || fail "process is dumpable"
grep -q '^Max core file size[[:space:]]*0[[:space:]]*0' "/proc/$DPID/limits" ||
    fail "core files not off"
[ "$(stat -c %U:%a "$S")" = nobody:660 ] || fail "socket $(stat -c %U:%a "$S")"
[ "$(stat -c %U:%a "$T/nb/run")" = nobody:750 ] || fail "dir $(stat -c %U:%a "$T/nb/run")"
[ "$(stat -c %U "$T/nb/store")" = nobody ] || fail "store not nobody's"
# The master key's secret memory at least is locked (all of it where
# RLIMIT_MEMLOCK allows).
lck=$(sed -n 's/^VmLck:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$DPID/status")
[ "${lck:-0}" -gt 0 ] || $asan || fail "no memory locked (VmLck ${lck:-?})"
# The log opened as root is nobody's: SIGHUP reopens it after the drop.
mv "$T/nimbusd.log" "$T/old.log"
touch "$T/nimbusd.log"
chown nobody "$T/nimbusd.log"
kill -HUP "$DPID"
for _ in $(seq 50); do grep -q 'log reopened' "$T/nimbusd.log" && break; sleep 0.1; done
grep -q 'log reopened' "$T/nimbusd.log" || fail "SIGHUP as nobody: log not reopened"
[ "$(stat -c %U "$T/old.log")" = nobody ] ||
    fail "log file owned by $(stat -c %U "$T/old.log")"
stop "$DPID" || fail "exit status"
[ ! -e "$S" ] || fail "socket left after exit"
ok "root drops to user: uid/gid 65534, not dumpable, core 0, memory locked (${lck} kB), socket nobody:0660 in nobody:0750"

# --- started unprivileged: still not dumpable (nothing but our prctl
# makes it so: no uid change happens here)
mkdir -p "$T/nb2"
chown nobody "$T/nb2"
S=$T/nb2/run/nimbusd.sock
write_conf "$T/d.conf" "listen = unix:$S"
sed -i -e "s|^store = .*|store = $T/nb2/store|" \
    -e "s|^log_file = .*|log_file = $T/nb2/nimbusd.log|" "$T/d.conf"
setpriv --reuid=65534 --regid=65534 --clear-groups "$NIMBUSD" -c "$T/d.conf" \
    --foreground 2>>"$T/stderr.log" &
DPID=$!
PIDS+=("$DPID")
for _ in $(seq 100); do [ -S "$S" ] && break; sleep 0.1; done
[ -S "$S" ] || fail "unprivileged nimbusd did not start"
[ "$(stat -c %u "/proc/$DPID/status")" = 0 ] ||
    fail "unprivileged nimbusd is dumpable"
grep -q '^Max core file size[[:space:]]*0[[:space:]]*0' "/proc/$DPID/limits" ||
    fail "core files not off"
lck=$(sed -n 's/^VmLck:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$DPID/status")
[ "${lck:-0}" -gt 0 ] || $asan || fail "unprivileged: secret memory not locked"
stop "$DPID" || fail "exit status"
ok "started as nobody: not dumpable, core 0, secret memory locked (${lck} kB)"
exit 0
