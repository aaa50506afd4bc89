#!/bin/bash
# A clone (issue 14): a new cluster made from the same cluster key.
#  1. The source (3 nodes, cluster_clones = the clone's id) makes a key of
#     a known value; the AU extracts it as a masked file.
#  2. A cluster id not in cluster_clones (same CA) asks for the key: the
#     source refuses, and that node stops at once with a clear error.
#  3. The clone's first node (cluster_bootstrap + cluster_clone_of) takes
#     the key from a source member, is activated like any new cluster, and
#     a second node joins the CLONE with addNode. The masked file inserts
#     on the clone; the key encrypts there as on the source, on both clone
#     nodes, and the clone's key set hash names the same object. A restart
#     of the clone's first node does not ask the source again.
#  4. A clone's certificate at the source's leader: a raft stream is not
#     let in; a request channel gets the key rpc answered and nothing else
#     (read index, a forwarded entry, another rpc refused); another CA's
#     certificate is refused; the leader and its term stay, and listNodes
#     counts the refusals.
#  5. A source member whose config lacks cluster_clones gives nothing.
set -u
. "$(dirname "$0")/lib.sh"
cl_test clone
command -v openssl >/dev/null || { echo "SKIP: no openssl CLI"; exit 77; }
CO="loginHSM CO admin $CL_CO_PW"
AU="loginHSM AU app_user appuser1"
term() {
    cl_mgmt "$1" "$CO; listNodes" |
        sed -n 's/^This node [0-9]*: [a-z]*, term \([0-9]*\),.*/\1/p'
}
refused() {
    cl_mgmt "$1" "$CO; listNodes" |
        sed -n 's/^Peers refused by this node since it started: \([0-9]*\)$/\1/p'
}
# keyset N USER_ID: USER_ID's key set hash on node N (ids, owner, shares)
keyset() {
    cl_mgmt "$1" "$CO; findAllKeys $2 1" |
        sed -n 's/^Key set hash (SHA-256) on server [0-9]*([^)]*): \([0-9a-f]\{64\}\)$/\1/p'
}
# outsider NAME CID CERT ID SRC: a node NAME, id ID of cluster CID with
# certificate CERT(.crt, .key) that bootstraps as a clone of the source's
# node SRC: it must stop with a clear error; its output is in $out
outsider() {
    local name=$1 cid=$2 cert=$3 id=$4 src=$5 d=$CL_DIR/n$1 i
    CL_PORT[$name]=$(python3 "$CL_S/scripts/free-port.py")
    mkdir -p "$d/sock"
    chmod 0750 "$d/sock"
    cat >"$d/nimbusd.conf" <<EOF
store = $d/store
kdf_iterations = 1000
listen = unix:$d/sock/nimbusd.sock
log_level = info
log_file = $d/nimbusd.log
cluster_id = $cid
cluster_node_id = $id
cluster_listen = 127.0.0.1:${CL_PORT[$name]}
cluster_ca = $CL_DIR/pki/ca.crt
cluster_cert = $cert.crt
cluster_key = $cert.key
cluster_bootstrap = yes
cluster_clone_of = $CL_ID@127.0.0.1:${CL_PORT[$src]}
EOF
    cl_launch "$name"
    for ((i = 0; i < 150; i++)); do
        kill -0 "${CL_PID[$name]}" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "${CL_PID[$name]}" 2>/dev/null; then
        cl_stop "$name"
        fail "$name (cluster $cid) did not stop within 15 s"
    fi
    wait "${CL_PID[$name]}"
    local rc=$?
    CL_PID[$name]=
    [ "$rc" != 0 ] || fail "$name (cluster $cid) exited 0"
    out=$(cat "$d/nimbusd.out" "$d/nimbusd.log" 2>/dev/null)
}

cl_init "$T" 3 || fail "PKI"
cl_clone_init 3 || fail "the clone's PKI"
CL_CONF_EXTRA="cluster_clones = $CL_CLONE_ID"
cl_start_cluster || fail "the source cluster did not form"

# --- 1. the source: alice's key of a known value, extracted by the AU
out=$(cl_mgmt 1 "$CO; createUser CU alice alicepw1; changePswd AU app_user appuser1") ||
    fail "source users: $out"
KEYHEX=5eed0fc10e5eed0fc10e5eed0fc10e5eed0fc10e5eed0fc10e5eed0fc10e5eed
out=$(app 2 open "loginuser alice alicepw1" "aes ck1 $KEYHEX" "ecb0 ck1")
grep -q "^aes CKR_OK" <<<"$out" || fail "aes on the source: $out"
e0=$(sed -n 's/^ecb0 CKR_OK \([0-9a-f]*\)$/\1/p' <<<"$out")
[ -n "$e0" ] || fail "ecb0 on the source: $out"
alice=$(cl_mgmt 1 "listUsers" | awk '$3 == "alice" { print $1 }')
H=$(cl_mgmt 1 "loginHSM CU alice alicepw1; findAllKeys $alice 0" |
    sed -n 's/^\([0-9]*\)(o).*/\1/p' | head -n 1)
[ -n "$H" ] || fail "no handle for alice's key"
out=$(cl_mgmt 3 "$AU; extractMaskedObject $H $T/k.masked")
has "the AU extracts on the source" "extractMaskedObject success"
src_keyset=$(keyset 1 "$alice")
[ -n "$src_keyset" ] || fail "no key set hash on the source"
ok "source: alice's key (ecb0 $e0) extracted as a masked file"

# --- 2. a cluster id not in cluster_clones: refused, stops at once
r0=$(refused 1)
outsider x1 "$CL_ID-other" "$CL_DIR/pki/rogue-cluster" 1 1
has "a cluster not in cluster_clones" "refused to give its cluster key"
has "the error names what to fix" "cluster_clones must name $CL_ID-other"
[ "$(refused 1)" -gt "$r0" ] || fail "node 1 did not count the refusal"
ok "a cluster id not in cluster_clones: refused, the node stops with a clear error, listNodes counts it"

# --- 3. the clone: c1 takes the key from node 2, c2 joins the clone
cl_start_clone 2 2 || fail "the clone did not form"
out=$(cat "$CL_DIR/nc1/nimbusd.log")
has "c1 took the source's key" "cluster key of $CL_ID installed (domain $CL_ID)"
has "c1 is a new cluster" "cluster $CL_CLONE_ID: node 1 on 127.0.0.1:${CL_PORT[c1]} (new cluster), a clone of $CL_ID"
out=$(cl_mgmt c2 "$CO; listNodes")
has "the clone has two nodes" "Number of nodes found 2"
out=$(cl_mgmt 1 "$CO; listNodes")
has "the source still has three" "Number of nodes found 3"
ok "clone $CL_CLONE_ID: c1 bootstrapped from the source's key, activated, c2 added to it"

out=$(cl_mgmt c1 "$CO; createUser CU alice alicepw1; changePswd AU app_user appuser1") ||
    fail "clone users: $out"
calice=$(cl_mgmt c1 "listUsers" | awk '$3 == "alice" { print $1 }')
[ "$calice" = "$alice" ] || fail "alice is user $calice on the clone, $alice on the source"
out=$(cl_mgmt c2 "$AU; insertMaskedObject $T/k.masked")
has "the masked file inserts on the clone" "Object $H inserted"
for n in c1 c2; do
    out=$(app "$n" open "loginuser alice alicepw1" "ecb0 ck1")
    grep -q "^ecb0 CKR_OK $e0\$" <<<"$out" ||
        fail "clone node $n: the key does not encrypt as on the source: $out (want $e0)"
done
for n in c1 c2; do
    [ "$(keyset "$n" "$alice")" = "$src_keyset" ] ||
        fail "clone node $n: alice's key set hash differs from the source's"
done
out=$(cl_mgmt c1 "loginHSM CU alice alicepw1; findAllKeys $alice 0")
has "the clone's key set names the object" "$H(o)"
ok "the source's masked key inserts on the clone: same id, same value on c1 and c2, key set hash equal to the source's"

# c1 restarted with the same config: its own sealed key, the source not asked
cl_stop c1 || fail "stop c1"
cl_launch c1
cl_wait_ready c1 || fail "c1 did not restart"
[ "$(grep -c "fetching its cluster key" "$CL_DIR/nc1/nimbusd.log")" = 1 ] ||
    fail "c1 asked the source again on its restart"
out=$(app c1 open "loginuser alice alicepw1" "ecb0 ck1")
grep -q "^ecb0 CKR_OK $e0\$" <<<"$out" || fail "c1 after its restart: $out"
ok "c1 restarted: its own copy of the key, the source not asked again"

# --- 4. a clone's certificate at the source's leader
L=$(leader)
[ -n "$L" ] || fail "no leader on the source"
t0=$(term "$L")
r0=$(refused "$L")
python3 - "${CL_PORT[$L]}" "$CL_DIR" "$CL_ID" <<'EOF' || fail "raw requests of a clone's node"
import socket, ssl, struct, sys
port, d, src = int(sys.argv[1]), sys.argv[2], sys.argv[3]
KEY_REQUEST = b"nimbus-cluster-key-v1"

def varint(n):
    o = bytearray()
    while True:
        c = n & 0x7f
        n >>= 7
        if n:
            o.append(c | 0x80)
        else:
            o.append(c)
            return bytes(o)

def field(no, payload):
    return bytes([no << 3 | 2]) + varint(len(payload)) + payload

def dial(cert, version):
    """TLS 1.3 with cert, the preamble; the socket if acked, else None."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.load_verify_locations(d + "/pki/ca.crt")
    ctx.load_cert_chain(cert + ".crt", cert + ".key")
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5))
    addr = b"127.0.0.1:1".ljust(16, b"\0")
    try:
        s.sendall(struct.pack("<QQQ", version, 1, len(addr)) + addr)
        ack = s.recv(8)
    except (OSError, ssl.SSLError):
        ack = b""
    if ack[:6] == b"NIMBOK":
        return s
    s.close()
    return None

def ask(s, call):
    """One Request (id 7, call), its Reply's (status, payload)."""
    req = bytes([0x08, 7]) + call
    s.sendall(struct.pack("<I", len(req)) + req)
    buf = b""
    while len(buf) < 4 or len(buf) < 4 + struct.unpack("<I", buf[:4])[0]:
        chunk = s.recv(65536)
        if not chunk:
            raise SystemExit("the link closed before the reply")
        buf += chunk
    rep = buf[4:4 + struct.unpack("<I", buf[:4])[0]]
    i, status, payload = 0, None, b""
    while i < len(rep):
        key = rep[i]; i += 1
        n = s2 = 0
        if key & 7 == 0:
            while True:
                c = rep[i]; i += 1
                n |= (c & 0x7f) << s2; s2 += 7
                if not c & 0x80:
                    break
            if key >> 3 == 2:
                status = (n >> 1) ^ -(n & 1)
        else:
            while True:
                c = rep[i]; i += 1
                n |= (c & 0x7f) << s2; s2 += 7
                if not c & 0x80:
                    break
            if key >> 3 == 4:
                payload = rep[i:i + n]
            i += n
    return status, payload

clone = d + "/pki-clone/node1"
# a raft stream: no ack
if dial(clone, 1) is not None:
    raise SystemExit("a clone's node got a raft stream")
s = dial(clone, 2)
if s is None:
    raise SystemExit("a clone's node got no request channel")
EREFUSED = -9
st, _ = ask(s, field(3, b""))                       # read index
if st != EREFUSED:
    raise SystemExit("read index from a clone: status %r" % st)
entry = struct.pack("<QQQ", 1, 1, 4) + b"evil" + bytes(4)
st, _ = ask(s, field(2, field(1, entry)))           # a forwarded entry
if st != EREFUSED:
    raise SystemExit("a forwarded entry from a clone: status %r" % st)
st, _ = ask(s, field(4, field(1, b"nimbus-cluster-status-v1")))
if st != EREFUSED:
    raise SystemExit("another rpc from a clone: status %r" % st)
st, p = ask(s, field(4, field(1, KEY_REQUEST)))     # the key: answered
if st != 0 or len(p) != 32 + len(src) or p[32:] != src.encode():
    raise SystemExit("the key rpc from a clone: status %r, %d bytes" % (st, len(p)))
s.close()
# another CA's certificate: no ack
try:
    other = dial(d + "/pki/rogue-otherca", 2)
except (OSError, ssl.SSLError):
    other = None
if other is not None:
    raise SystemExit("another CA's certificate got a request channel")
print("ok")
EOF
sleep 1
[ "$(term "$L")" = "$t0" ] || fail "the source's term moved: $t0 -> $(term "$L")"
[ "$(leader)" = "$L" ] || fail "the source's leader changed"
r1=$(refused "$L")
[ "$r1" -ge $((r0 + 5)) ] || fail "the leader counted $((r1 - r0)) refusals, want 5 or more"
out=$(cl_mgmt 1 "$CO; createUser CU carol carolpw1")
has "a write after the clone's requests" "on 3 nodes"
ok "a clone's certificate at the leader: no raft stream, only the key rpc answered, another CA refused; leader, term kept, $((r1 - r0)) refusals counted"

# --- 5. a source member without cluster_clones gives nothing
cl_stop 3 || fail "stop node 3"
CL_CONF_EXTRA="" cl_conf 3 "cluster_join = 127.0.0.1:${CL_PORT[1]}"
cl_launch 3
cl_wait_ready 3 || fail "node 3 did not restart"
r0=$(refused 3)
# the clone's node 3, with a store of its own, asks node 3
outsider x3 "$CL_CLONE_ID" "$CL_DIR/pki-clone/node3" 3 3
has "a member without cluster_clones" "refused to give its cluster key"
[ "$(refused 3)" -gt "$r0" ] || fail "node 3 did not count the refusal"
ok "a source member whose config lacks cluster_clones gives nothing"

# every node ends cleanly (under the sanitizers: no leak, no error)
for n in c2 c1 1 2 3; do
    cl_stop "$n" || fail "node $n did not stop cleanly"
done
ok "every node of both clusters stopped cleanly"
