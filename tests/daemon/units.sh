#!/bin/bash
# The systemd units as `make install` installs them (nimbusd.service,
# nimbusd.socket), checked by systemd-analyze verify: no error and no
# warning, their man pages (Documentation=) found among the installed
# ones, the binary of ExecStart executable (the build's, as installed
# elsewhere). A unit with an unknown directive fails the same check, so
# the check can fail; and the offline security audit keeps the service's
# exposure at most 2.0 ("OK").
. "$(dirname "$0")/common.sh"

command -v systemd-analyze >/dev/null ||
    { echo "SKIP: systemd-analyze missing (Debian package systemd)"; exit 77; }
command -v make >/dev/null || { echo "SKIP: make missing"; exit 77; }
command -v man >/dev/null ||
    { echo "SKIP: man missing (Debian package man-db): Documentation= cannot be checked"; exit 77; }

R=$T/root
# The install targets alone, outside the make that runs this test.
out=$(env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C "$B" \
    install-systemdsystemunitDATA install-man DESTDIR="$R" 2>&1) ||
    fail "make install of the units and man pages: $out"
svc=$(find "$R" -name nimbusd.service -type f)
sock=$(find "$R" -name nimbusd.socket -type f)
man8=$(find "$R" -name nimbusd.8 -type f)
[ -n "$svc" ] && [ -n "$sock" ] || fail "the units were not installed"
[ -n "$man8" ] || fail "nimbusd.8 was not installed"
MANPATH=$(dirname "$(dirname "$man8")")
export MANPATH

# systemd reads a unit by its name: a directory of their own, ExecStart
# pointing at the build's nimbusd (the installed path does not exist here).
U=$T/units
mkdir -p "$U"
exe=$(sed -n 's/^ExecStart=\([^ ]*\) .*/\1/p' "$svc")
[ "$(basename "$exe")" = nimbusd ] || fail "ExecStart runs '$exe'"
sed "s|^ExecStart=$exe |ExecStart=$NIMBUSD |" "$svc" >"$U/nimbusd.service"
cp "$sock" "$U/nimbusd.socket"

# verify UNIT...: systemd-analyze verify's output into $T/verify.out;
# returns its exit status. A container's own systemd state (no PID 1 of
# its kind) is not the units' business: those lines are left out.
verify() {
    local rc=0
    SYSTEMD_LOG_LEVEL=notice timeout 120 systemd-analyze verify "$@" \
        >"$T/verify.raw" 2>&1 || rc=$?
    grep -v -e 'of PID 1' -e 'container virtualization' "$T/verify.raw" \
        >"$T/verify.out"
    return $rc
}

verify "$U/nimbusd.socket" "$U/nimbusd.service" ||
    fail "systemd-analyze verify failed: $(cat "$T/verify.out")"
[ ! -s "$T/verify.out" ] ||
    fail "systemd-analyze verify reports: $(cat "$T/verify.out")"
ok "systemd-analyze verify: the installed socket and service, their man pages: nothing to report"

# The check bites: a misspelt directive and a missing man page are caught.
B2=$T/broken
mkdir -p "$B2"
sed 's/^KillMode=mixed$/KillMode=mixed\nProtectKernelTunnels=yes/' \
    "$U/nimbusd.service" >"$B2/nimbusd.service"
cp "$U/nimbusd.socket" "$B2/"
verify "$B2/nimbusd.socket" "$B2/nimbusd.service"
grep -q 'ProtectKernelTunnels' "$T/verify.out" ||
    fail "a unit with an unknown directive passed: $(cat "$T/verify.out")"
sed 's|^Documentation=.*|Documentation=man:nimbus-nosuchpage(8)|' \
    "$U/nimbusd.service" >"$B2/nimbusd.service"
rc=0; verify "$B2/nimbusd.socket" "$B2/nimbusd.service" || rc=$?
[ "$rc" != 0 ] || fail "a unit naming a missing man page passed"
ok "the check catches an unknown directive and a missing man page"

# The sandbox as systemd rates it (offline, no running manager needed).
if systemd-analyze security --help 2>/dev/null | grep -q -- '--offline'; then
    out=$(timeout 120 systemd-analyze security --offline=true --no-pager \
        "$U/nimbusd.service" 2>&1)
    lvl=$(sed -n 's/.*Overall exposure level for nimbusd.service: \([0-9.]*\).*/\1/p' <<<"$out")
    [ -n "$lvl" ] || fail "systemd-analyze security: $(tail -n 5 <<<"$out")"
    awk -v l="$lvl" 'BEGIN { exit !(l <= 2.0) }' ||
        fail "exposure level $lvl (more than 2.0)"
    ok "systemd-analyze security: exposure level $lvl"
fi
exit 0
