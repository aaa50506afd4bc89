#!/bin/bash
# A 3-node cluster on loopback (section 11): activation on the first node,
# two nodes added by the CO; users and keys made through any node are
# there, with the same ids, through every node; the sync digests agree;
# the raft log and snapshots hold no key value and no password; lockout
# counts failures on every node together and a CO's reset clears it
# everywhere.
set -u
. "$(dirname "$0")/lib.sh"
cl_test cluster

# app N LINES...: rclient against node N, one command per argument; its
# answer lines on stdout.

cl_init "$T" 3 || fail "PKI"
cl_start_cluster || fail "the cluster did not form"
ok "node 1 bootstrapped and activated; nodes 2 and 3 added by the CO"

# the membership changes are in the (replicated) audit log, read on node 3
out=$(cl_mgmt 3 "loginHSM CO admin $CL_CO_PW; getAuditLog") ||
    fail "getAuditLog on node 3: $out"
for n in 2 3; do
    grep -E " node_add .*\b$n\b.*CKR_OK" <<<"$out" >/dev/null ||
        fail "no audit record of the CO adding node $n: $out"
done
ok "the audit log, read on node 3, records both addNode"

# --- users made through node 2 are on every node
out=$(cl_mgmt 2 "loginHSM CO admin $CL_CO_PW; createUser CU alice alicepw1; createUser CU bob bobpw123") ||
    fail "createUser through node 2: $out"
for n in 1 2 3; do
    out=$(cl_mgmt "$n" "listUsers") || fail "listUsers on node $n: $out"
    grep -q "alice" <<<"$out" && grep -q "bob" <<<"$out" ||
        fail "node $n does not list alice and bob: $out"
done
ok "users created through node 2 are listed by nodes 1, 2 and 3"

# --- a key made through node 3 signs through node 1
out=$(app 3 open "loginuser alice alicepw1" "genec k3") || fail "genec: $out"
grep -q "^genec CKR_OK" <<<"$out" || fail "genec through node 3: $out"
out=$(app 1 open "loginuser alice alicepw1" "count k3" "sign k3")
grep -q "^count CKR_OK 2" <<<"$out" || fail "node 1 does not find k3: $out"
grep -q "^sign CKR_OK" <<<"$out" || fail "node 1 cannot sign with k3: $out"
ok "a key pair made through node 3 is found and signs through node 1"

# --- sync status: the same digest on every node, and alice has the same
# id everywhere (ids come from the log)
for n in 1 2 3; do
    id=$(cl_mgmt "$n" "listUsers" | awk '$3 == "alice" { print $1 }')
    [ -n "$id" ] || fail "no id for alice on node $n"
    [ "$n" = 1 ] && alice=$id
    [ "$id" = "$alice" ] || fail "alice is $alice on node 1 but $id on node $n"
done
d=()
for n in 1 2 3; do
    out=$(cl_mgmt "$n" "loginHSM CO admin $CL_CO_PW; findAllKeys $alice 1") ||
        fail "findAllKeys on node $n: $out"
    d[$n]=$(sed -n 's/^Key set hash (SHA-256) on server [0-9]*([^)]*): \([0-9a-f]\{64\}\)$/\1/p' <<<"$out")
    [ -n "${d[$n]}" ] || fail "no digest from node $n: $out"
done
[ "${d[1]}" = "${d[2]}" ] && [ "${d[2]}" = "${d[3]}" ] ||
    fail "key digests differ: ${d[*]}"
ok "findAllKeys alice 1: one digest, equal on the three nodes"

# --- no key value and no password in any file of any node (raft log,
# snapshots, store): a known AES key imported through node 2
KEYHEX=5ca1ab1e0ddba11c0ffee0ddf00d5eed5ca1ab1e0ddba11c0ffee0ddf00d5eed
out=$(app 2 open "loginuser alice alicepw1" "aes known $KEYHEX" "count known")
grep -q "^aes CKR_OK" <<<"$out" || fail "aes import through node 2: $out"
out=$(app 3 open "loginuser alice alicepw1" "count known")
grep -q "^count CKR_OK 1" <<<"$out" || fail "node 3 does not find the key: $out"
python3 - "$T" "$KEYHEX" alicepw1 bobpw123 "$CL_CO_PW" <<'EOF' || fail "a secret is in a node's files"
import os, sys
root = sys.argv[1]
secrets = [bytes.fromhex(sys.argv[2]), sys.argv[2].encode()]
secrets += [s.encode() for s in sys.argv[3:]]
for n in (1, 2, 3):
    d = os.path.join(root, "n%d" % n, "store")
    for dp, _, fs in os.walk(d):
        for f in fs:
            data = open(os.path.join(dp, f), "rb").read()
            for s in secrets:
                if s in data:
                    print("%s holds %r" % (os.path.join(dp, f), s))
                    sys.exit(1)
EOF
ok "no file of any node (raft log, store) holds the key value or a password"

# --- lockout is cluster-wide: failures through three nodes add up
for n in 1 2 3 1 2; do
    out=$(app "$n" open "loginuser bob wrongpw1")
    grep -q "^loginuser CKR_PIN_INCORRECT\|^loginuser CKR_PIN_LOCKED" <<<"$out" ||
        fail "wrong password through node $n: $out"
done
for n in 1 2 3; do
    out=$(app "$n" open "loginuser bob bobpw123")
    grep -q "^loginuser CKR_PIN_LOCKED" <<<"$out" ||
        fail "bob is not locked on node $n after 5 failures over 3 nodes: $out"
done
ok "5 wrong passwords spread over 3 nodes lock bob on all three"
out=$(cl_mgmt 3 "loginHSM CO admin $CL_CO_PW; changePswd CU bob bobpw456") ||
    fail "changePswd through node 3: $out"
for n in 1 2 3; do
    out=$(app "$n" open "loginuser bob bobpw456")
    grep -q "^loginuser CKR_OK" <<<"$out" ||
        fail "bob still locked on node $n after the CO's reset: $out"
done
ok "the CO's reset through node 3 unlocks bob on every node"

for n in 1 2 3; do
    cl_stop "$n" || fail "node $n did not stop cleanly"
done
ok "the three nodes stop on SIGTERM"
