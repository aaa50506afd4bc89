#!/usr/bin/env bash
# cluster-bench.sh BUILDDIR [SECONDS]: the cluster's figures (issue 14,
# docs/performance.md), measured in one run on this machine: three nimbusd
# on loopback (tests/cluster/lib.sh), then nimbus-speed as a client of
# the leader and of a follower, 1 and 8 threads:
#   aes-keygen-token  a token AES-256 key per call, acknowledged by a
#                     majority (one log entry each)
#   ecdsa-p256-sign   signing with a token key: no write on that path,
#                     so a follower should sign as fast as the leader
# SoftHSMv2 is not a reference here (it has no cluster); the ratio that
# matters is follower / leader, both measured in this run. nimbus-speed's
# own reference column is OpenSSL in the same process.
set -euo pipefail
b=$(cd "${1:-.}" && pwd)
secs=${2:-3}
src=$(cd "$(dirname "$0")/.." && pwd)
export NIMBUS_TOP_BUILDDIR=$b NIMBUS_TOP_SRCDIR=$src
. "$src/tests/cluster/lib.sh"

T=$(mktemp -d /tmp/nimbus-cluster-bench-XXXXXX)
trap 'cl_stop_all; rm -rf "$T"' EXIT
cl_init "$T" 3
cl_start_cluster
out=$(cl_mgmt 1 "loginHSM CO admin $CL_CO_PW; createUser CU bench benchpw1")
leader=$(cl_mgmt 1 "loginHSM CO admin $CL_CO_PW; listNodes" |
    sed -n 's/^Leader: node \([0-9]*\).*/\1/p')
leader=${leader:-1}
follower=1
[ "$leader" = 1 ] && follower=2
# The --module run (nimbus-speed calls it "embedded"): a store of its own,
# activated the same way, for the in-process figure beside the nodes'.
printf 'store = %s/emb\nkdf_iterations = 1000\n' "$T" >"$T/emb.conf"
export NIMBUS_CONF=$T/emb.conf
"$b/nimbus-mgmt" -y -c "loginHSM PRECO admin password; changePswd PRECO admin $CL_CO_PW; createUser CU bench benchpw1" >/dev/null
echo "== 3 nodes on loopback; leader: node $leader; follower: node $follower"
"$b/nimbus-speed" --module "$b/.libs/libnimbus-pkcs11.so" \
    --pin bench:benchpw1 --seconds "$secs" --threads 1,8 \
    --ops aes-keygen-token,ecdsa-p256-sign \
    --servers "unix:$(cl_sock "$leader"),unix:$(cl_sock "$follower")" \
    --openssl 2>&1 | sed "s|unix:$(cl_sock "$leader")|leader(node $leader)|g; s|unix:$(cl_sock "$follower")|follower(node $follower)|g"
