#!/bin/sh
# engine.sh - the cluster engine's test (test_engine.c) with a PKI made by
# mkpki.sh in a temporary directory.
set -eu
top=${NIMBUS_TOP_BUILDDIR:-.}
src=${NIMBUS_TOP_SRCDIR:-$(dirname "$0")/../..}
command -v openssl >/dev/null 2>&1 || { echo "SKIP: no openssl CLI"; exit 77; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nimbus-engine-pki.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
"$src/tests/cluster/mkpki.sh" "$tmp" t1 1 2 3
# a clone cluster's node under the same CA (test_engine's clone checks)
MKPKI_CA=$tmp "$src/tests/cluster/mkpki.sh" "$tmp/clone" t1-clone 1
${NIMBUS_TEST_WRAPPER:-} "$top/tests/cluster/test_engine" "$tmp"
