#!/bin/bash
# twofa.sh - two-factor login of crypto officers, end to end, with real
# RSA keys and signatures made here by the openssl CLI, through
# nimbus-mgmt and through the PKCS#11 module (tests/p11/p11_2fa), first on
# an embedded store, then through a nimbusd this test starts (unix socket,
# the same daemon named twice as two servers, and TLS):
#
#  1. createUser CO -2fa: the authdata file, signed with the new key,
#     turns 2FA on (listUsers: MofnPubKey and 2FA YES); a signature by
#     another key, an EC key, an RSA-1024 key, a missing PublicKey create
#     nothing. The new officer's 2FA key approves a quorum token
#     (approveToken): it is its quorum key.
#  2. loginHSM -2fa with the right signature logs in; the password alone,
#     a signature by another key, an unsigned file fail; a wrong one
#     counts toward lockout: after the limit even the right signature is
#     CKR_PIN_LOCKED.
#  3. A CO's changePswd without -2fa unlocks and turns 2FA off (the key is
#     no longer the quorum key: MofnPubKey NO); changePswd -2fa <dir>
#     turns it on again, again rotates the key (the old key no longer
#     logs in), and -2fa alone turns it off.
#  4. PKCS#11: a bare password is CKR_PIN_INCORRECT; the PIN form
#     "2fa=<b64>:name:password" over C_NimbusLoginChallenge's digest logs
#     in (C_Login and C_LoginUser); the same PIN again, a challenge asked
#     for another user, a signature by another key are CKR_PIN_INCORRECT;
#     C_NimbusLoginChallenge refuses bad arguments with their codes.
#
# Environment (set by make check): NIMBUS_MODULE, NIMBUS_TOP_BUILDDIR,
# NIMBUS_TOP_SRCDIR. Exit: 0 pass, 1 fail, 77 skip, 99 hard error.
set -u

top=${NIMBUS_TOP_BUILDDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
srcdir=${NIMBUS_TOP_SRCDIR:-$top}
export NIMBUS_MODULE=${NIMBUS_MODULE:-$top/.libs/libnimbus-pkcs11.so}
export NIMBUSD=${NIMBUSD:-$top/nimbusd}
mgmt_bin=$top/nimbus-mgmt
p11=$top/tests/p11/p11_2fa

for tool in mktemp grep sed awk openssl base64 mkfifo python3; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "SKIP: twofa: $tool not found"
        exit 77
    fi
done
for f in "$mgmt_bin" "$p11" "$NIMBUSD"; do
    if [ ! -x "$f" ]; then
        echo "ERROR: twofa: $f not built"
        exit 99
    fi
done
. "$srcdir/tests/remote/lib.sh"

dir=$(mktemp -d "${TMPDIR:-/tmp}/nimbus-2fa.XXXXXX") || exit 99
NIMBUSD_PID=
cleanup() {
    exec 3>&- 2>/dev/null
    [ -n "$NIMBUSD_PID" ] && nimbusd_stop
    rm -rf "$dir"
}
trap cleanup EXIT

if command -v timeout >/dev/null 2>&1; then
    T() { timeout 120 "$@"; }
else
    T() { "$@"; }
fi

CO_PW=co12345
PW1=alicepw1
failures=0
ok() { echo "ok - $*"; }
not_ok() {
    echo "not ok - $*"
    failures=$((failures + 1))
}

# Keys: two RSA-2048 (the second factor and another), an EC P-256 and an
# RSA-1024 one (wrong type, wrong size).
keys=$dir/keys
mkdir -p "$keys"
for k in k1 k2; do
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
        -out "$keys/$k.pem" 2>/dev/null &&
        openssl pkey -in "$keys/$k.pem" -pubout -out "$keys/$k.pub" ||
        exit 99
done
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
    -out "$keys/ec.pem" 2>/dev/null &&
    openssl pkey -in "$keys/ec.pem" -pubout -out "$keys/ec.pub" || exit 99
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 \
    -out "$keys/small.pem" 2>/dev/null &&
    openssl pkey -in "$keys/small.pem" -pubout -out "$keys/small.pub" ||
    exit 99

# sign_authdata FILE KEY PUB: rewrites the authdata file the shell wrote
# with each digest signed by KEY (SHA256-RSA-PKCS over the decoded
# digest: openssl dgst -sha256 -sign) and PUB's PEM in PublicKey ("" for
# none), as an officer would.
sign_authdata() {
    local f=$1 key=$2 pub=$3 ids digs i pubjson="" sig
    mapfile -t ids < <(sed -n 's/^ *"HsmId": "\(.*\)",$/\1/p' "$f")
    mapfile -t digs < <(sed -n 's/^ *"Digest": "\(.*\)",$/\1/p' "$f")
    [ -n "$pub" ] && pubjson=$(awk '{printf "%s\\n", $0}' "$pub")
    {
        printf '{\n    "Version": "1.0",\n    "PublicKey": "%s",\n' "$pubjson"
        printf '    "Data": [\n'
        for i in "${!ids[@]}"; do
            printf '%s' "${digs[$i]}" | base64 -d >"$dir/digest.bin"
            sig=$(openssl dgst -sha256 -sign "$key" "$dir/digest.bin" |
                base64 -w0)
            [ "$i" -gt 0 ] && printf ',\n'
            printf '        {"HsmId": "%s", "Digest": "%s", "Signature": "%s"}' \
                "${ids[$i]}" "${digs[$i]}" "$sig"
        done
        printf '\n    ]\n}\n'
    } >"$f.new" && mv "$f.new" "$f"
}

# M ARGS...: nimbus-mgmt; $out, $err, $rc.
M() {
    out=$(T "$mgmt_bin" "$@" 2>"$dir/err" </dev/null)
    rc=$?
    err=$(cat "$dir/err")
}

# M2 KEY PUB ARGS...: nimbus-mgmt ARGS, its stdin a FIFO; once it has
# written the authdata file, the file is signed (KEY "-": left unsigned)
# and Enter sent.
M2() {
    local key=$1 pub=$2 pid i f
    shift 2
    rm -f "$dir/in" "$dir/out"
    mkfifo "$dir/in" || exit 99
    T "$mgmt_bin" "$@" <"$dir/in" >"$dir/out" 2>"$dir/err" &
    pid=$!
    exec 3>"$dir/in"
    for ((i = 0; i < 600; i++)); do
        grep -q '^Authentication data written to' "$dir/out" 2>/dev/null &&
            break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    f=$(sed -n 's/^Authentication data written to: "\(.*\)"$/\1/p' \
        "$dir/out" | tail -n 1)
    fmode=
    [ -n "$f" ] && fmode=$(stat -c %a "$f")
    if [ -n "$f" ] && [ "$key" != - ]; then
        sign_authdata "$f" "$key" "$pub"
    fi
    echo >&3
    exec 3>&-
    wait "$pid"
    rc=$?
    out=$(cat "$dir/out")
    err=$(cat "$dir/err")
}

# P ARGS...: p11_2fa ARGS (login: signs the digest with $PKEY between).
P() {
    local pid i
    if [ "$1" != login ]; then
        out=$(T "$p11" "$@" 2>"$dir/err" </dev/null)
        rc=$?
        return
    fi
    rm -f "$dir/in" "$dir/out" "$dir/pd.bin" "$dir/ps.bin"
    mkfifo "$dir/in" || exit 99
    T "$p11" "$1" "$2" "$3" "$dir/pd.bin" "$dir/ps.bin" "${4:-}" \
        <"$dir/in" >"$dir/out" 2>"$dir/err" &
    pid=$!
    exec 3>"$dir/in"
    for ((i = 0; i < 600; i++)); do
        grep -q '^ready$' "$dir/out" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    [ -f "$dir/pd.bin" ] &&
        openssl dgst -sha256 -sign "$PKEY" -out "$dir/ps.bin" "$dir/pd.bin"
    echo >&3
    exec 3>&-
    wait "$pid"
    rc=$?
    out=$(cat "$dir/out")
}

# check DESC: the last command's output has line LINE ($2).
has() {
    if grep -qxF -- "$2" <<<"$out"; then
        ok "$MODE: $1"
    else
        not_ok "$MODE: $1: no line '$2'"
        printf '%s\n' "$out" "$err" | sed 's/^/#   /'
    fi
}
# fails DESC CMD CKR: the last command printed CMD's failure with CKR.
fails() {
    if grep -qE -- "^$2 failed: HSM Error: .* \($3\) on server 0\(.*\)\$" \
        <<<"$out"; then
        ok "$MODE: $1"
    else
        not_ok "$MODE: $1: no '$2 failed: ... ($3)' line"
        printf '%s\n' "$out" "$err" | sed 's/^/#   /'
    fi
}
# user_cols NAME: "MofnPubKey LoginFailureCnt 2FA" of listUsers (as anyone).
user_cols() {
    M -c "listUsers"
    awk -v n="$1" '$3 == n { print $4, $5, $6 }' <<<"$out"
}
cols() {
    local got
    got=$(user_cols "$2")
    if [ "$got" = "$3" ]; then
        ok "$MODE: $1"
    else
        not_ok "$MODE: $1: listUsers says '$got' for $2, wanted '$3'"
    fi
}

CO="loginHSM CO admin $CO_PW"

suite() {
    MODE=$1
    local S ad=$dir/$MODE-ad
    mkdir -p "$ad"
    M -y -c "loginHSM PRECO admin password; changePswd PRECO admin $CO_PW"
    [ "$rc" -eq 0 ] || {
        not_ok "$MODE: activation: $out $err"
        return
    }
    M -c "listUsers"
    S=$(sed -n 's/^Users on server 0(\(.*\)):$/\1/p' <<<"$out" | head -n 1)

    # 1. createUser -2fa, and what creates nothing
    M2 "$keys/k2.pem" "$keys/k1.pub" -y -c "$CO; createUser CO alice $PW1 -2fa $ad"
    fails "createUser -2fa: a signature by another key is refused" createUser CKR_SIGNATURE_INVALID
    M2 "$keys/ec.pem" "$keys/ec.pub" -y -c "$CO; createUser CO alice $PW1 -2fa $ad"
    fails "createUser -2fa: an EC key is refused" createUser CKR_KEY_TYPE_INCONSISTENT
    M2 "$keys/small.pem" "$keys/small.pub" -y -c "$CO; createUser CO alice $PW1 -2fa $ad"
    fails "createUser -2fa: an RSA-1024 key is refused" createUser CKR_KEY_SIZE_RANGE
    M2 "$keys/k1.pem" "" -y -c "$CO; createUser CO alice $PW1 -2fa $ad"
    if [ "$rc" -ne 0 ] && grep -q "PublicKey is empty" <<<"$err"; then
        ok "$MODE: createUser -2fa: an answer without PublicKey is refused"
    else
        not_ok "$MODE: createUser -2fa without PublicKey: rc $rc $out $err"
    fi
    if [ -z "$(user_cols alice)" ]; then
        ok "$MODE: none of these created the user"
    else
        not_ok "$MODE: a refused createUser -2fa left user alice"
    fi
    M2 "$keys/k1.pem" "$keys/k1.pub" -y -c "$CO; createUser CO alice $PW1 -2fa $ad"
    has "createUser CO -2fa with the key's signature" \
        "Creating User alice(CO) on 1 nodes"
    [ -f "$ad/authdata.json" ] && [ "$fmode" = 600 ] &&
        ok "$MODE: authdata.json written in the directory, mode 0600" ||
        not_ok "$MODE: authdata.json missing or not 0600"
    cols "the new CO has MofnPubKey and 2FA YES" alice "YES 0 YES"

    # The 2FA key is alice's quorum key: it approves admin's token (one
    # shell session, since a token dies with its requester's login).
    rm -f "$dir/in" "$ad/tok"
    mkfifo "$dir/in" || exit 99
    T "$mgmt_bin" <"$dir/in" >"$dir/out" 2>"$dir/err" &
    local pid=$! i
    exec 3>"$dir/in"
    printf '%s\ngetToken 3 admin %s\n' "$CO" "$ad/tok" >&3
    for ((i = 0; i < 600; i++)); do
        [ -s "$ad/tok" ] && break
        sleep 0.1
    done
    sleep 0.2
    openssl dgst -sha256 -sign "$keys/k1.pem" -out "$ad/tok.sig" "$ad/tok"
    printf '%s\n1\nCO\nalice\n%s\n' "$ad/tok" "$ad/tok.sig" >"$ad/appr"
    printf 'approveToken %s\nquit\n' "$ad/appr" >&3
    exec 3>&-
    wait "$pid"
    out=$(cat "$dir/out")
    err=$(cat "$dir/err")
    has "alice's 2FA key approves a quorum token" \
        "Approval 1 by alice(CO): accepted (CKR_OK)"

    # 2. logins
    M2 "$keys/k1.pem" "" -c "loginHSM CO alice $PW1 -2fa $ad"
    has "loginHSM -2fa with the right signature" \
        "loginHSM success on server 0($S)"
    M -c "loginHSM CO alice $PW1"
    fails "loginHSM without -2fa: the password alone fails" loginHSM CKR_PIN_INCORRECT
    cols "... and counts as a failed login" alice "YES 1 YES"
    M2 - "" -c "loginHSM CO alice $PW1 -2fa $ad"
    has "an unsigned authdata file: nothing is sent" \
        "loginHSM failed: no signature for server 0($S) in the authentication data"
    cols "... and costs no try" alice "YES 1 YES"
    M2 "$keys/k1.pem" "" -c "loginHSM CO alice wrongpass -2fa $ad"
    fails "the right signature with a wrong password fails" loginHSM CKR_PIN_INCORRECT
    for i in 3 4 5; do
        M2 "$keys/k2.pem" "" -c "loginHSM CO alice $PW1 -2fa $ad"
    done
    fails "a signature by another key with the right password fails" loginHSM CKR_PIN_INCORRECT
    cols "wrong signatures count toward lockout" alice "YES 5 YES"
    M2 "$keys/k1.pem" "" -c "loginHSM CO alice $PW1 -2fa $ad"
    fails "locked after the limit: the right signature is CKR_PIN_LOCKED" loginHSM CKR_PIN_LOCKED
    M -c "$CO; getAuditLog"
    if grep -q " login_2fa .*CKR_SIGNATURE_INVALID" <<<"$out" ||
        grep -q " login_2fa .*0x0*c0" <<<"$out"; then
        ok "$MODE: the audit log tells a failed second factor"
    else
        not_ok "$MODE: no login_2fa record with the signature's failure"
        grep login_2fa <<<"$out" | sed 's/^/#   /'
    fi

    # 3. unlock (2FA off), enable, rotate, disable
    M -y -c "$CO; changePswd CO alice $PW1"
    cols "changePswd without -2fa unlocks and removes 2FA and the key" \
        alice "NO 0 NO"
    M -c "loginHSM CO alice $PW1"
    has "then the password alone logs in" "loginHSM success on server 0($S)"
    M2 "$keys/k2.pem" "$keys/k2.pub" -y -c "$CO; changePswd CO alice $PW1 -2fa $ad"
    has "changePswd -2fa turns 2FA on" "Changing password for alice(CO) on 1 nodes"
    cols "... MofnPubKey and 2FA YES" alice "YES 0 YES"
    M2 "$keys/k2.pem" "" -c "loginHSM CO alice $PW1 -2fa $ad"
    has "login with the new key" "loginHSM success on server 0($S)"
    M2 "$keys/k1.pem" "$keys/k1.pub" -y -c "$CO; changePswd CO alice $PW1 -2fa $ad"
    has "changePswd -2fa again rotates the key" \
        "Changing password for alice(CO) on 1 nodes"
    M2 "$keys/k2.pem" "" -c "loginHSM CO alice $PW1 -2fa $ad"
    fails "after rotation the old key fails" loginHSM CKR_PIN_INCORRECT
    M2 "$keys/k1.pem" "" -c "loginHSM CO alice $PW1 -2fa $ad"
    has "after rotation the new key logs in" "loginHSM success on server 0($S)"

    # 4. PKCS#11, through the module
    PKEY=$keys/k1.pem
    P bare alice "$PW1"
    has "PKCS#11: a bare password of a 2FA CO" "C_Login: CKR_PIN_INCORRECT"
    P login alice "$PW1"
    has "PKCS#11: the 2FA PIN over C_NimbusLoginChallenge logs in" \
        "C_Login: CKR_OK"
    P login alice "$PW1" loginuser
    has "PKCS#11: the 2FA PIN with C_LoginUser" "C_Login: CKR_OK"
    P args alice "$PW1"
    has "PKCS#11: C_NimbusLoginChallenge without a length pointer" \
        "no length pointer: CKR_ARGUMENTS_BAD"
    has "PKCS#11: ... a name length without a name" \
        "a name length without a name: CKR_ARGUMENTS_BAD"
    has "PKCS#11: ... a name of 32 bytes" "a name of 32 bytes: CKR_ARGUMENTS_BAD"
    has "PKCS#11: ... a name with a NUL" "a name with a NUL: CKR_ARGUMENTS_BAD"
    has "PKCS#11: ... user type 77" "user type 77: CKR_USER_TYPE_INVALID"
    has "PKCS#11: ... no such session" \
        "no such session: CKR_SESSION_HANDLE_INVALID"
    has "PKCS#11: a 2FA PIN with bad base64" \
        "a 2FA PIN with bad base64: CKR_PIN_INCORRECT"
    has "PKCS#11: a 2FA PIN one character short" \
        "a 2FA PIN one character short: CKR_PIN_INCORRECT"
    cols "malformed PINs cost alice no try (never sent, or not her name)" \
        alice "YES 0 YES"
    P login alice "$PW1" replay
    has "PKCS#11: the same PIN again (a used challenge)" \
        "replay: CKR_PIN_INCORRECT"
    P login alice "$PW1" other
    has "PKCS#11: a challenge asked for another user" \
        "C_Login: CKR_PIN_INCORRECT"
    PKEY=$keys/k2.pem
    P login alice "$PW1"
    has "PKCS#11: a signature by another key" "C_Login: CKR_PIN_INCORRECT"
    PKEY=$keys/k1.pem
    P login alice badpassw
    has "PKCS#11: the right signature, a wrong password" \
        "C_Login: CKR_PIN_INCORRECT"
    cols "PKCS#11 failures counted" alice "YES 4 YES"
    P login alice "$PW1"
    has "PKCS#11: and a good login clears them" "C_Login: CKR_OK"
    cols "... (count back to 0)" alice "YES 0 YES"

    M -y -c "$CO; changePswd CO alice $PW1 -2fa"
    cols "changePswd -2fa alone turns 2FA off and removes the key" \
        alice "NO 0 NO"
    M -c "$CO; getAuditLog"
    if grep -q " 2fa_on " <<<"$out" && grep -q " 2fa_off " <<<"$out"; then
        ok "$MODE: the audit log records 2FA turned on and off"
    else
        not_ok "$MODE: no 2fa_on / 2fa_off records in the audit log"
    fi
    P bare alice "$PW1"
    has "PKCS#11: then the bare password logs in" "C_Login: CKR_OK"

    # 5. A key an M needs (admin's and alice's, M of service 4 at 2):
    # C_SetPIN, which would drop alice's 2FA and key, is refused with the
    # core's code, not a general error, and changes nothing
    M2 "$keys/k1.pem" "$keys/k1.pub" -y -c "$CO; changePswd CO alice $PW1 -2fa $ad"
    printf 'admin registration token' >"$ad/regtok"
    openssl dgst -sha256 -sign "$keys/k2.pem" -out "$ad/regsig" "$ad/regtok"
    M -y -c "$CO; registerQuorumPubKey CO admin $ad/regtok $ad/regsig $keys/k2.pub; setMValue 4 2"
    [ "$rc" -eq 0 ] || not_ok "$MODE: register admin's key, M 2: $out $err"
    P login alice "$PW1" setpin
    has "PKCS#11: C_SetPIN dropping a key an M needs" \
        "C_SetPIN: CKR_ACTION_PROHIBITED"
    cols "... changes nothing" alice "YES 0 YES"
}

# ---- embedded
mkdir -p "$dir/emb"
printf 'store = %s\nkdf_iterations = 1000\n' "$dir/emb/store" \
    >"$dir/emb/nimbus.conf"
export NIMBUS_CONF=$dir/emb/nimbus.conf
suite embedded

# ---- through nimbusd (unix socket)
if nimbusd_start "$dir/d"; then
    export NIMBUS_CONF=$dir/d/client.conf
    suite nimbusd
    # Two servers (the daemon named twice: two connections, one HSM): one
    # digest per server in the file, each signed, each server logs in.
    MODE=two-servers
    M2 "$keys/k1.pem" "$keys/k1.pub" -y -c "$CO; changePswd CO alice $PW1 -2fa $dir/nimbusd-ad"
    ep=$(sed -n 's/^servers = //p' "$dir/d/client.conf")
    echo "servers = $ep, $ep" >"$dir/d/two.conf"
    export NIMBUS_CONF=$dir/d/two.conf
    M2 "$keys/k1.pem" "" -c "loginHSM CO alice $PW1 -2fa $dir/nimbusd-ad"
    if [ "$(grep -c '^loginHSM success on server [01](' <<<"$out")" -eq 2 ] &&
        [ "$(grep -c '"Digest"' "$dir/nimbusd-ad/authdata.json")" -eq 2 ] &&
        [ "$(grep -o '"Digest": "[^"]*"' "$dir/nimbusd-ad/authdata.json" |
            sort -u | wc -l)" -eq 2 ]; then
        ok "two servers: two digests, both signed, both log in"
    else
        not_ok "two servers: $out $err"
    fi
    nimbusd_stop || not_ok "nimbusd: did not stop cleanly"
else
    not_ok "nimbusd did not start"
    cat "$dir/d/nimbusd.log" 2>/dev/null | sed 's/^/#   /'
fi

# ---- through nimbusd over TLS (a throw-away CA)
export NIMBUS_TEST_PKI=$dir/pki
if make_pki "$NIMBUS_TEST_PKI" &&
    NIMBUS_TEST_REMOTE=tls nimbusd_start "$dir/t"; then
    export NIMBUS_CONF=$dir/t/client.conf
    suite nimbusd-tls
    nimbusd_stop || not_ok "nimbusd (tls): did not stop cleanly"
else
    not_ok "nimbusd over TLS did not start"
    cat "$dir/t/nimbusd.log" 2>/dev/null | sed 's/^/#   /'
fi

echo "twofa: $failures failure(s)"
[ "$failures" -eq 0 ]
