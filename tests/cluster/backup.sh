#!/bin/bash
# nimbus-mgmt backup FILE / restore FILE (issue 14, "Operating it") on 3
# real nodes:
#  1. users (CUs, a second CO, the AU), a CU's AES key of a known value
#     shared with another CU, quorum keys and M: backup writes one 0600
#     file whose header it prints; the file shows no password, no user
#     name, no label and no key byte.
#  2. CU, AU (and PRECO, on a second cluster) may neither back up nor
#     restore.
#  3. restore into the same cluster in use: refused, nothing changes
#     (digest equal before and after); a changed byte (sealed part,
#     header), a cut file, a backup of another cluster (another key), a
#     masked object's file: refused, nothing changes; the second cluster
#     refuses this one's backup.
#  4. the same cluster emptied (keys destroyed, CUs deleted) takes its
#     backup back, on 3 nodes: every login on every node has ended, the
#     users log in with the backup's passwords and use the same key (same
#     value on each node, shared as before), quorum M is back, digests
#     are equal on the 3 nodes; the audit log names the restore.
#  5. a clone of 2 nodes made from the source's key (cluster_clone_of)
#     takes a backup of the source, on 2 nodes: the source's users log in
#     there and sign and encrypt with the same keys (and the share), M is
#     back, a new user and key made on the clone get fresh ids (its nodes'
#     reserved ids were below the source's), the clone's digests are
#     equal between its nodes.
set -u
. "$(dirname "$0")/lib.sh"
cl_test backup
for tool in openssl python3; do
    command -v "$tool" >/dev/null || { echo "SKIP: no $tool"; exit 77; }
done
# digests OUTPUT: the digest lines' hex, one per line, in order.
digests() { sed -n 's/^digest on server [0-9]*([^)]*): \([0-9a-f]\{64\}\) .*/\1/p' <<<"$1"; }
# same_digest OUTPUT: two digest lines (before, after) and they are equal.
same_digest() {
    local d
    d=$(digests "$out")
    [ "$(wc -l <<<"$d")" = 2 ] || fail "$1: two digests expected in: $out"
    [ "$(sed -n 1p <<<"$d")" = "$(sed -n 2p <<<"$d")" ] || fail "$1: the state changed: $out"
}
# converge NODES: the nodes' digests agree (taken at one applied index:
# a follower applies the shell's own login record a moment later).
converge() {
    local i d
    for ((i = 0; i < 20; i++)); do
        out=$(all "$1" "$CO; getClusterDigest")
        d=$(digests "$out")
        [ "$(sort -u <<<"$d" | wc -l)" = 1 ] &&
            [ "$(wc -l <<<"$d")" = "$(wc -w <<<"$1")" ] && return 0
        sleep 0.5
    done
    fail "the digests of nodes $1 never agree: $out"
}
# secretless FILE WORD...: none of the words (nor the key, raw or hex) in FILE.
secretless() {
    python3 - "$@" <<'EOF'
import sys
data = open(sys.argv[1], "rb").read()
words = [w.encode() for w in sys.argv[2:]]
words += [bytes.fromhex(w.decode()) for w in words if len(w) == 64]
for w in words:
    if w.lower() in data.lower():
        print("the file holds %r" % w)
        sys.exit(1)
EOF
}

# the source lets its clone (part 5) fetch the key
CL_CONF_EXTRA="cluster_clones = $CL_CLONE_ID"
cl_init "$T" 3 || fail "PKI"
cl_start_cluster || fail "the cluster did not form"
CO="loginHSM CO admin $CL_CO_PW"

# --- 1. the state, and its backup
out=$(all "1 2 3" "$CO; createUser CU alice alicepw1; createUser CU bob bobpw123; createUser CO officer2 officer2pw; changePswd AU app_user appuser1") ||
    fail "users: $out"
AU="loginHSM AU app_user appuser1"
KEYHEX=0badc0de5eed5ca1ab1e0ddba11c0ffee0ddf00d0badc0de5eed5ca1ab1e0ddb
out=$(app 2 open "loginuser alice alicepw1" "aes bk1 $KEYHEX" "ecb0 bk1")
grep -q "^aes CKR_OK" <<<"$out" || fail "aes through node 2: $out"
E0=$(sed -n 's/^ecb0 CKR_OK \([0-9a-f]*\)$/\1/p' <<<"$out")
[ -n "$E0" ] || fail "ecb0: $out"
bob=$(cl_mgmt 1 "listUsers" | awk '$3 == "bob" { print $1 }')
H=$(cl_mgmt 1 "loginHSM CU alice alicepw1; findAllKeys $(cl_mgmt 1 listUsers | awk '$3 == "alice" { print $1 }') 0" |
    sed -n 's/^\([0-9]*\)(o).*/\1/p' | head -n 1)
[ -n "$H" ] && [ -n "$bob" ] || fail "no handle for alice's key, or no bob"
out=$(cl_mgmt 1 "loginHSM CU alice alicepw1; shareKey $H $bob 1")
has "alice shares her key with bob" "shareKey success"
out=$(app 3 open "loginuser bob bobpw123" "ecb0 bk1")
grep -q "^ecb0 CKR_OK $E0\$" <<<"$out" || fail "bob uses the shared key: $out"
# quorum: two COs register keys, M of service 4 becomes 2
K=$T/keys
mkdir -p "$K"
for c in admin officer2; do
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$K/$c.key" 2>/dev/null &&
        openssl pkey -in "$K/$c.key" -pubout -out "$K/$c.pub" 2>/dev/null &&
        openssl rand -out "$K/$c.regtok" 32 &&
        openssl dgst -sha256 -sign "$K/$c.key" -out "$K/$c.regsig" "$K/$c.regtok" ||
        fail "openssl: quorum keys"
done
out=$(cl_mgmt 1 "$CO; registerQuorumPubKey CO admin $K/admin.regtok $K/admin.regsig $K/admin.pub")
has "admin's quorum key" "registerQuorumPubKey success"
out=$(cl_mgmt 1 "loginHSM CO officer2 officer2pw; registerQuorumPubKey CO officer2 $K/officer2.regtok $K/officer2.regsig $K/officer2.pub; setMValue 4 2")
has "setMValue 4 2" "setMValue success"
ok "users, alice's key shared with bob, quorum keys and M 2 on service 4"

out=$(cl_mgmt 2 "$CO; backup $T/b1.bak")
has "backup" "backup success on server"
has "backup's header" "of cluster $CL_ID (key domain $CL_ID) at index "
has "backup's counts" ": 5 users, 1 token objects, digest "
has "backup's file" "written to $T/b1.bak ("
[ "$(stat -c %a "$T/b1.bak")" = 600 ] || fail "the backup is not 0600"
secretless "$T/b1.bak" "$KEYHEX" alicepw1 bobpw123 officer2pw appuser1 "$CL_CO_PW" \
    alice bob officer2 app_user admin bk1 ||
    fail "the backup shows a secret, a name or a label"
if command -v strings >/dev/null; then
    ! strings -n 5 "$T/b1.bak" | grep -qiE 'alice|bob|officer2|app_user|admin|pw1|bk1' ||
        fail "strings shows a name or password"
fi
ok "backup: a 0600 file with its header printed; no password, user name, label or key byte in it"

# --- 2. who may not
for who in "loginHSM CU alice alicepw1" "$AU"; do
    out=$(cl_mgmt 1 "$who; backup $T/no.bak; restore $T/b1.bak")
    has "$who: backup" "backup failed: "
    has "$who: restore" "restore failed: "
    [ ! -e "$T/no.bak" ] || fail "$who got a backup file"
done
ok "a CU and the AU may neither back up nor restore"

# a second cluster (its own id and key), one node, not yet activated
OTHER=other-cluster
CL_PORT[4]=$(python3 "$CL_S/scripts/free-port.py") || fail "port"
sh "$CL_S/tests/cluster/mkpki.sh" "$T/pkiB" "$OTHER" 4 >/dev/null 2>&1 || fail "PKI B"
cl_conf 4 "cluster_bootstrap = yes"
sed -i -e "s|^cluster_id = .*|cluster_id = $OTHER|" -e "s|$T/pki/|$T/pkiB/|" "$T/n4/nimbusd.conf"
cl_launch 4
cl_wait_ready 4 || fail "the second cluster did not start"
out=$(cl_mgmt 4 "loginHSM PRECO admin password; backup $T/no.bak; restore $T/b1.bak")
has "PRECO: backup" "backup failed: "
has "PRECO: restore" "restore failed: "
[ ! -e "$T/no.bak" ] || fail "the PRECO got a backup file"
ok "the PRECO may neither back up nor restore"
out=$(cl_mgmt 4 "loginHSM PRECO admin password; changePswd PRECO admin $CL_CO_PW")
has "activation of the second cluster" "success"
out=$(cl_mgmt 4 "$CO; backup $T/other.bak")
has "the second cluster's backup" "of cluster $OTHER (key domain $OTHER)"
out=$(cl_mgmt 4 "$CO; getClusterDigest; restore $T/b1.bak; getClusterDigest")
has "another key domain's backup into an empty cluster" "(CKR_DATA_INVALID)"
same_digest "the second cluster after a refused restore"
ok "an empty cluster of another key refuses the backup, nothing changes"

# --- 3. refusals on the cluster in use
out=$(cl_mgmt 1 "$CO; getClusterDigest; restore $T/b1.bak; getClusterDigest")
has "restore over the cluster in use" "(CKR_ACTION_PROHIBITED)"
same_digest "restore over the cluster in use"
ok "restore into the same cluster while it holds CUs and keys: refused, nothing changes"

python3 - "$T/b1.bak" "$T" <<'EOF' || fail "crafting files"
import sys
src, d = sys.argv[1], sys.argv[2]
data = bytes(open(src, "rb").read())
def w(name, b):
    open(d + "/" + name, "wb").write(b)
flip = bytearray(data)
flip[-20] ^= 0x01                  # in the sealed image
w("flip.bak", flip)
# the header is field 2, right after field 1 (the format string)
i = 2 + data[1]                    # past tag, length, "nimbus-backup-v1"
assert data[i] == 0x12
assert data[i + 1] < 0x80         # a header under 128 bytes
hdr = bytearray(data)
hdr[i + 2 + data[i + 1] - 5] ^= 0x01   # a byte of its digest, its last field
w("header.bak", hdr)
dom = bytearray(data)
dom[i + 5] ^= 0x01                 # a byte of the key domain: not this one's
w("domain.bak", dom)
w("cut.bak", data[: len(data) // 2])
EOF
out=$(cl_mgmt 3 "$AU; extractMaskedObject $H $T/k.masked")
has "a masked object's file" "extractMaskedObject success"
for f in flip:CKR_ENCRYPTED_DATA_INVALID header:CKR_ENCRYPTED_DATA_INVALID \
    domain:CKR_DATA_INVALID cut:CKR_DATA_INVALID other:CKR_DATA_INVALID k.masked:CKR_DATA_INVALID; do
    name=${f%%:*}
    file=$T/$name.bak
    [ "$name" = k.masked ] && file=$T/k.masked
    out=$(cl_mgmt 1 "$CO; getClusterDigest; restore $file; getClusterDigest")
    has "restore of $name" "(${f#*:})"
    same_digest "restore of $name"
done
out=$(cl_mgmt 1 "$CO; restore $T/nonexistent.bak")
has "a missing file" "cannot read it"
ok "a changed byte (image, header digest, key domain), a cut file, another cluster's backup, a masked object's file: refused, nothing changes"

# --- 4. the same cluster emptied takes its backup back
out=$(app 1 open "loginuser alice alicepw1" "destroy bk1" "count bk1")
grep -q "^count CKR_OK 0" <<<"$out" || fail "destroy: $out"
out=$(all "1 2 3" "$CO; deleteUser CU alice; deleteUser CU bob")
has "the CUs go" "Deleting user bob(CU) on 3 nodes"
# a CO logged in on every node across the restore
coproc SHELL3 {
    NIMBUS_CONF=$T/all.conf "$CL_MGMT" -y 2>&1
}
s3pid=$SHELL3_PID
s3in=${SHELL3[1]}
s3out=${SHELL3[0]}
echo "$CO" >&"$s3in"
sleep 1
out=$(all "1 2 3" "$CO; restore $T/b1.bak")
has "restore into the emptied cluster" "Restored backup of cluster $CL_ID"
has "restore's counts" ": 5 users, 1 token objects"
has "restore on every node" " on 3 nodes"
has "restore's hint" "log in again"
echo "getClusterDigest" >&"$s3in"
echo "quit" >&"$s3in"
out=$(timeout 20 cat <&"$s3out")
wait "$s3pid" 2>/dev/null
[ "$(grep -c "getClusterDigest failed" <<<"$out")" = 3 ] ||
    fail "a login of before the restore still stands on some node: $out"
ok "restore on 3 nodes; the CO logins of before, on each node, have ended"

for n in 1 2 3; do
    out=$(app "$n" open "loginuser alice alicepw1" "ecb0 bk1")
    grep -q "^ecb0 CKR_OK $E0\$" <<<"$out" || fail "node $n: alice's key after the restore: $out"
    out=$(app "$n" open "loginuser bob bobpw123" "ecb0 bk1")
    grep -q "^ecb0 CKR_OK $E0\$" <<<"$out" || fail "node $n: bob's share after the restore: $out"
done
out=$(cl_mgmt 1 "$CO; getMValue 4")
has "quorum M back" "MValue of service 4[MISC_CO] on server 0 : [2]"
converge "1 2 3"
out=$(cl_mgmt 2 "$CO; getAuditLog")
has "the audit log" "backup of $CL_ID at "
ok "the users log in with the backup's passwords and use the same key on every node; M back; digests equal; audited"

# --- 5. a clone of the source takes the source's backup
if ! declare -F cl_clone_init >/dev/null; then
    echo "SKIP part 5: no clone cluster support in tests/cluster/lib.sh"
    exit 0
fi
out=$(app 1 open "loginuser alice alicepw1" "genec sig1" "sign sig1")
grep -q "^sign CKR_OK" <<<"$out" || fail "genec: $out"
out=$(cl_mgmt 1 "$CO; backup $T/b2.bak")
has "backup with the signing key" ": 5 users, 3 token objects"
cl_stop 4
cl_clone_init 2 || fail "clone PKI"
cl_start_clone 1 2 || fail "the clone did not form"
out=$(all "c1 c2" "$CO; restore $T/b2.bak")
has "restore into the clone" "Restored backup of cluster $CL_ID (key domain $CL_ID)"
has "restore into the clone, on both nodes" " on 2 nodes"
for n in c1 c2; do
    out=$(app "$n" open "loginuser alice alicepw1" "sign sig1" "ecb0 bk1")
    grep -q "^sign CKR_OK" <<<"$out" || fail "clone node $n: alice signs: $out"
    grep -q "^ecb0 CKR_OK $E0\$" <<<"$out" || fail "clone node $n: alice's AES key: $out"
    out=$(app "$n" open "loginuser bob bobpw123" "ecb0 bk1")
    grep -q "^ecb0 CKR_OK $E0\$" <<<"$out" || fail "clone node $n: bob's share: $out"
done
out=$(cl_mgmt c2 "$CO; getMValue 4")
has "the clone's quorum M" "MValue of service 4[MISC_CO] on server 0 : [2]"
# the clone's nodes had reserved ids below the source's: dropped
out=$(all "c1 c2" "$CO; createUser CU carol carolpw1")
has "a new user on the clone after the restore" "Creating User carol(CU) on 2 nodes"
out=$(app c2 open "loginuser carol carolpw1" "aes ck1 $KEYHEX")
grep -q "^aes CKR_OK" <<<"$out" || fail "a new key on the clone: $out"
converge "c1 c2"
ok "a clone of the source's key takes its backup: the source's users sign and encrypt with the same keys there, M is back, new users and keys get fresh ids, the clone's digests agree"
