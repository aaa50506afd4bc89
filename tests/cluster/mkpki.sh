#!/bin/sh
# mkpki.sh DIR CLUSTER_ID NODE_ID... - a cluster PKI for tests, with the
# openssl CLI (P-256 keys, days 2):
#   ca.crt ca.key                    the cluster CA
#   node<ID>.crt node<ID>.key        SAN URI urn:nimbus:cluster:<cluster>:node:<ID>,
#                                    serverAuth+clientAuth (OpenSSL checks
#                                    an accepted peer as a TLS client)
# and certificates that must be refused, all naming the first node id:
#   rogue-ca.crt rogue-ca.key        another CA
#   rogue-otherca.crt/.key           made by that other CA
#   rogue-cluster.crt/.key           the cluster CA, another cluster id
# A node's certificate presented under another id is the fourth case
# (the test claims another id in the preamble).
# With MKPKI_CA=CADIR: no new CA, the node certificates are made by
# CADIR/ca.crt and ca.key (copied here), and no rogue ones: another
# cluster of the same organisation (a clone).
set -eu
[ $# -ge 3 ] || { echo "usage: $0 DIR CLUSTER_ID NODE_ID..." >&2; exit 2; }
D=$1; CID=$2; shift 2
mkdir -p "$D"
cd "$D"
umask 077

ca() { # name
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -days 2 -keyout "$1.key" -out "$1.crt" -subj "/CN=nimbus test $1" \
        -addext basicConstraints=critical,CA:TRUE \
        -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
}
leaf() { # name cluster-id node-id ca
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$1.key" -out "$1.csr" -subj "/CN=nimbus node $3" 2>/dev/null
    printf '%s\n' 'basicConstraints=CA:FALSE' \
        'keyUsage=critical,digitalSignature' \
        'extendedKeyUsage=serverAuth,clientAuth' \
        "subjectAltName=URI:urn:nimbus:cluster:$2:node:$3" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$4.crt" -CAkey "$4.key" \
        -CAcreateserial -days 2 -extfile "$1.ext" -out "$1.crt" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}

if [ -n "${MKPKI_CA:-}" ]; then
    cp "$MKPKI_CA/ca.crt" "$MKPKI_CA/ca.key" .
    for id in "$@"; do
        leaf "node$id" "$CID" "$id" ca
    done
    rm -f ca.srl
    exit 0
fi
ca ca
ca rogue-ca
for id in "$@"; do
    leaf "node$id" "$CID" "$id" ca
done
leaf rogue-otherca "$CID" "$1" rogue-ca
leaf rogue-cluster "$CID-other" "$1" ca
rm -f ca.srl rogue-ca.srl
