#!/bin/bash
# Peers that must not disturb a 3-node cluster (issue 14): plain TCP
# garbage, a certificate of another CA and one of another cluster id on
# every node's cluster port are cut before raft sees a byte; a node
# removed with removeNode keeps trying with its certificate (running on,
# then restarted from its dirs) and is refused. Through all of it the
# leader and its term stay the same and the cluster takes writes.
set -u
B=${NIMBUS_TOP_BUILDDIR:-$(pwd)}
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/chaoslib.sh"

CHAOS=$B/tests/cluster/chaosclient
export NIMBUS_MODULE=${NIMBUS_MODULE:-$B/.libs/libnimbus-pkcs11.so}
[ -x "$CL_NIMBUSD" ] || { echo "SKIP: nimbusd not built"; exit 77; }
command -v openssl >/dev/null || { echo "SKIP: no openssl CLI"; exit 77; }

T=$(mktemp -d /tmp/nimbus-hostile-XXXXXX)
trap cl_test_cleanup EXIT # lib.sh: stops the nodes; fail, ok

ch_setup
l=$(ch_leader) || fail "no leader"
t=$(ch_term "$l")
[ -n "$t" ] || fail "no term from node $l"
echo "ok: leader node $l, term $t"

# the leader and its term, as every live node sees them
same() {
    local n lt
    for n in "$@"; do
        lt=$(ch_status "$n" | sed -n 's/^Leader: node \([0-9]*\)(.*/\1/p')
        [ "$lt" = "$l" ] || fail "$1: node $n sees leader '$lt', was $l"
        lt=$(ch_term "$n")
        [ "$lt" = "$t" ] || fail "$1: node $n is at term '$lt', was $t"
    done
}

# --- plain TCP garbage (random bytes, and a plaintext libraft-like
# preamble: protocol 1, a node id, an address) on each cluster port
python3 - "${CL_PORT[1]}" "${CL_PORT[2]}" "${CL_PORT[3]}" <<'EOF2' || fail "garbage sender"
import os, socket, struct, sys
for port in map(int, sys.argv[1:]):
    for i in range(10):
        s = socket.create_connection(("127.0.0.1", port), timeout=3)
        try:
            if i % 2:
                s.sendall(struct.pack("<QQQ", 1, 2, 16) + b"127.0.0.1:1\0\0\0\0\0")
                s.sendall(struct.pack("<QQ", 3, 64) + struct.pack("<QQQQ", 1000, 2, 1, 1000) + bytes(32))
            else:
                s.sendall(os.urandom(4096))
            s.recv(100)
        except OSError:
            pass
        s.close()
EOF2
sleep 1
same 1 2 3
echo "ok: plain TCP garbage on the three cluster ports: leader and term unchanged"

# --- a certificate of another CA, and the cluster CA's for another
# cluster id: the TLS handshake fails, nothing reaches raft
for c in rogue-otherca rogue-cluster; do
    for n in 1 2 3; do
        head -c 2000 /dev/urandom |
            timeout 5 openssl s_client -quiet -connect "127.0.0.1:${CL_PORT[$n]}" \
                -cert "$T/pki/$c.crt" -key "$T/pki/$c.key" \
                -CAfile "$T/pki/ca.crt" >/dev/null 2>&1
    done
done
sleep 1
same 1 2 3
grep -q "refused inbound" "$T"/n*/nimbusd.log ||
    fail "no node logged a refused inbound link"
echo "ok: certificates of another CA and of another cluster: refused, leader and term unchanged"

# --- removeNode: the removed node runs on, then restarts from its dirs,
# with its certificate; the others refuse it
r=$((l % 3 + 1))
keep=$((r % 3 + 1))
[ "$keep" = "$l" ] && keep=$((keep % 3 + 1))
# (a joining node is refused the same way before its addNode: count)
nm() { cat "$CL_DIR/n$l/nimbusd.log" "$CL_DIR/n$keep/nimbusd.log" | grep -c "node $r is not a member"; }
before=$(nm)
out=$(ch_mgmt "$l" "loginHSM CO admin $CL_CO_PW; removeNode $r") ||
    fail "removeNode $r: $out"
sleep 3
same "$l" "$keep"
ch_status "$l" | grep -q "^  *$r " && fail "node $r still listed by the leader"
cl_stop "$r"
cat "$CL_DIR/n$r/nimbusd.log" >>"$CL_DIR/n$r/nimbusd.log.old"
: >"$CL_DIR/n$r/nimbusd.log"
cl_launch "$r"
sleep 4
same "$l" "$keep"
[ "$(nm)" -gt "$before" ] ||
    fail "the removed node's links were not refused as a non-member's"
out=$(ch_mgmt "$keep" "loginHSM CO admin $CL_CO_PW; createUser CU carol carolpw1") ||
    fail "a write after the removal: $out"
echo "ok: node $r removed: its links refused (running on and restarted), leader and term unchanged, writes go on"
