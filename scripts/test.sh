#!/usr/bin/env bash
# Runs every Nimbus test: installs what the tests need (Debian packages),
# builds with -Werror, runs `make check` (unit, module and process suites),
# builds the Debian packages from a clean copy and runs them from a
# scratch root (tests/pkg/debs.sh), then a sanitizer build (ASan + UBSan)
# of the unit and module suites.
#
#   scripts/test.sh            everything
#   NIMBUS_SKIP_SANITIZERS=1   only the strict build and make check
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=$(nproc 2>/dev/null || echo 2)

say() { printf '\n==> %s\n' "$*"; }

# ----------------------------------------------------------- dependencies
pkgs=(build-essential autoconf automake libtool pkg-config libssl-dev
      libsqlite3-dev libp11-kit-dev p11-kit libcmocka-dev opensc sqlite3
      binutils python3 openssl softhsm2 util-linux
      protobuf-c-compiler libprotobuf-c-dev
      # the cluster engine (src/cluster/): libraft with its libuv I/O
      libraft-dev libuv1-dev
      # nimbusd: sd_notify and socket activation (systemd-socket-activate);
      # the units checked by systemd-analyze verify, which looks up their
      # Documentation= man pages with man (tests/daemon/units.sh)
      libsystemd-dev systemd man-db
      # the interop clients: every one of them runs in CI, none skips
      libengine-pkcs11-openssl gnutls-bin nginx curl openjdk-17-jdk-headless
      python3-pykcs11 apache2 openssh-server openssh-client libnss3-tools
      # the Debian packages (tests/pkg/debs.sh)
      dpkg-dev debhelper fakeroot)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing: ${missing[*]}"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        SUDO=sudo
    fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

# ----------------------------------------------------------- strict build
# Builds are out of tree (build-strict/, build-sanitize/; quickstart.sh
# uses build-quickstart/): a configuration in the sources themselves
# would make every out-of-tree configure refuse, so it goes first.
if [ -f config.status ]; then
    say "the sources are configured in place: make distclean there first"
    make distclean >/dev/null 2>&1 || rm -f config.status
fi
say "autoreconf"
autoreconf -fi >/dev/null 2>&1 || autoreconf -fi

build_and_check() {
    local dir=$1 target=$2
    shift 2
    rm -rf "$dir"
    mkdir -p "$dir"
    (cd "$dir" && "$top/configure" --enable-strict "$@" >/dev/null)
    make -C "$dir" -j"$jobs" >/dev/null
    if ! make -C "$dir" -j"$jobs" "$target"; then
        for f in "$dir"/tests/*/*.log "$dir"/test-suite.log; do
            [ -f "$f" ] || continue
            if grep -qE '^(FAIL|ERROR)|\[  FAILED  \]|ERROR:' "$f" 2>/dev/null; then
                echo "---- $f"
                tail -n 60 "$f"
            fi
        done
        return 1
    fi
}

# One closing line that any CI reader understands, counted from the
# automake results of both builds.
summary() {
    local pass=0 fail=0 skip=0 trs
    for trs in "$top"/build-strict/tests/*/*.trs \
        "$top"/build-sanitize/tests/*/*.trs; do
        [ -f "$trs" ] || continue
        case $(sed -n 's/^:test-result: //p' "$trs") in
        PASS | XFAIL) pass=$((pass + 1)) ;;
        SKIP) skip=$((skip + 1)) ;;
        *) fail=$((fail + 1)) ;;
        esac
    done
    echo "$pass passed, $fail failed, $skip skipped"
}

say "strict build and make check"
build_and_check "$top/build-strict" check || { summary; exit 1; }

say "Debian packages: build from a clean copy, run from a scratch root"
# Its verdict is counted with the others (a .trs beside make check's).
mkdir -p "$top/build-strict/tests/pkg"
debs_rc=0
NIMBUS_TOP_SRCDIR=$top NIMBUS_JOBS=$jobs bash "$top/tests/pkg/debs.sh" \
    >"$top/build-strict/tests/pkg/debs.log" 2>&1 || debs_rc=$?
cat "$top/build-strict/tests/pkg/debs.log"
case $debs_rc in
0) debs_result=PASS ;;
77) debs_result=SKIP ;;
*) debs_result=FAIL ;;
esac
printf ':test-result: %s\n' "$debs_result" >"$top/build-strict/tests/pkg/debs.trs"
[ "$debs_result" != FAIL ] || { summary; exit 1; }

if [ "${NIMBUS_SKIP_SANITIZERS:-0}" != 1 ]; then
    say "sanitizer build (ASan + UBSan): our programs (make check-sanitizer)"
    # The test programs link the runtime, so the module they dlopen runs
    # instrumented; LeakSanitizer checks them at exit.
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    build_and_check "$top/build-sanitize" check-sanitizer --enable-asan \
        --enable-ubsan ||
        { summary; exit 1; }
fi

say "all tests passed"
summary
