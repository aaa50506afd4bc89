#!/usr/bin/env bash
# check-order.sh - the README's two commands in any order, in a fresh
# clone of this checkout's HEAD (or the revision given): quickstart.sh,
# test.sh, quickstart.sh again, test.sh again, then quickstart.sh once more
# after a README-style ./configure in the sources. Every step must pass.
# test.sh runs with NIMBUS_SKIP_SANITIZERS=1 (the order is what is checked
# here, not the sanitizers). Too slow for make check (two full builds and
# two make checks): run it by hand after changing either script.
#
#   scripts/check-order.sh [REVISION]
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
rev=$(git -C "$top" rev-parse "${1:-HEAD}")
work=$(mktemp -d "${TMPDIR:-/tmp}/nimbus-order.XXXXXX")
trap 'rm -rf "$work"' EXIT

git clone -q --no-checkout "$top" "$work/nimbus"
git -C "$work/nimbus" checkout -q "$rev"
# The module suite reads test vectors from ../shared beside the sources.
if [ -d "$top/../shared" ]; then
    ln -s "$(cd "$top/../shared" && pwd)" "$work/shared"
fi
cd "$work/nimbus"

run() {
    local name=$1
    shift
    printf '==> %s\n' "$name"
    if ! "$@" >"$work/$name.log" 2>&1; then
        tail -n 40 "$work/$name.log"
        printf 'check-order: FAILED at %s\n' "$name"
        exit 1
    fi
}

run quickstart-1 scripts/quickstart.sh
run test-1 env NIMBUS_SKIP_SANITIZERS=1 scripts/test.sh
run quickstart-2 scripts/quickstart.sh
run test-2 env NIMBUS_SKIP_SANITIZERS=1 scripts/test.sh
run configure-in-place ./configure
run quickstart-3 scripts/quickstart.sh
if [ -n "$(git status --porcelain)" ]; then
    git status --short
    echo "check-order: the runs left files git does not ignore"
    exit 1
fi
echo "check-order: OK (quickstart, test.sh, quickstart, test.sh," \
    "configure in place, quickstart)"
