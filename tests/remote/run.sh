#!/bin/bash
# run.sh MODE TEST - runs a suite of make check again against nimbusd.
#
# MODE is unix, tls, cluster or cluster-degraded; TEST a test of the build (tests/p11/test_p11) or a
# script of the source tree (tests/interop/nginx.sh). NIMBUS_TEST_REMOTE
# tells the test to start a nimbusd of its own wherever it makes a fresh
# store (tests/p11/p11util.c, tests/interop/common.sh) and to point the
# module and nimbus-mgmt at it. For tls a throw-away CA is made here first
# (NIMBUS_TEST_PKI); for cluster and cluster-degraded (3 nodes on loopback,
# tests/p11/p11util.c; the second with a follower stopped once formed) the
# nodes' certificates of tests/cluster/mkpki.sh. The test's exit status is
# this script's.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
top=${NIMBUS_TOP_BUILDDIR:-$(pwd)}
src=${NIMBUS_TOP_SRCDIR:-$(cd "$here/../.." && pwd)}
mode=${1:?usage: run.sh unix|tls|cluster|cluster-degraded TEST}
test=${2:?usage: run.sh unix|tls|cluster|cluster-degraded TEST}

[ -x "$NIMBUSD" ] || { echo "ERROR: $NIMBUSD is not built"; exit 99; }
prog=$top/$test
case $test in *.sh) prog=$src/$test ;; esac
[ -x "$prog" ] || { echo "ERROR: $prog not found"; exit 99; }

pki=
trap '[ -n "$pki" ] && rm -rf "$pki"' EXIT
case $mode in
unix) ;;
tls)
    command -v openssl >/dev/null || {
        echo "SKIP: the openssl CLI is not installed (it makes the test CA)"
        exit 77
    }
    command -v python3 >/dev/null || {
        echo "SKIP: python3 is not installed (it finds a free port)"
        exit 77
    }
    pki=$(mktemp -d "${TMPDIR:-/tmp}/nimbus-pki.XXXXXX") || exit 99
    make_pki "$pki" || { echo "ERROR: cannot make the test CA"; exit 99; }
    export NIMBUS_TEST_PKI=$pki
    ;;
cluster | cluster-degraded)
    command -v openssl >/dev/null || {
        echo "SKIP: the openssl CLI is not installed (it makes the cluster CA)"
        exit 77
    }
    [ -x "$top/nimbus-mgmt" ] || { echo "ERROR: nimbus-mgmt is not built"; exit 99; }
    pki=$(mktemp -d "${TMPDIR:-/tmp}/nimbus-pki.XXXXXX") || exit 99
    export NIMBUS_TEST_CLUSTER_ID=p11-test-cluster
    sh "$src/tests/cluster/mkpki.sh" "$pki" "$NIMBUS_TEST_CLUSTER_ID" 1 2 3 \
        >/dev/null 2>&1 || { echo "ERROR: cannot make the cluster CA"; exit 99; }
    export NIMBUS_TEST_PKI=$pki
    ;;
*)
    echo "ERROR: run.sh: mode $mode is not unix, tls, cluster or cluster-degraded"
    exit 99
    ;;
esac
export NIMBUS_TEST_REMOTE=$mode NIMBUSD
echo "remote run ($mode): $test"
"$prog"
