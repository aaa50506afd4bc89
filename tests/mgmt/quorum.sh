#!/bin/bash
# quorum.sh - quorum (M of N) approval end to end through nimbus-mgmt and
# the PKCS#11 module, with three COs whose RSA-2048 keys, registration
# signatures and token approvals are made here with the openssl CLI. The
# whole flow runs three times: on an embedded store, then through a
# nimbusd this test starts (tests/remote/lib.sh) on a unix socket and over
# mutual TLS (the expiry check runs embedded and on the unix socket).
#
#  1. registerQuorumPubKey for admin, officer2, officer3 (listUsers then
#     shows MofnPubKey YES); a signature by another key, a 1024-bit key
#     and another CO's name are refused.
#  2. setMValue 3 2 while service 4 is 1 is refused (with a hint), 4 4
#     above the number of registered COs too; 4 2 is taken.
#  3. One shell session (a login: tokens belong to it) fed through a
#     fifo, the approvers signing between its commands: setMValue 3 2
#     needs a service 4 token approved twice; then createUser is
#     refused with RET_MXN_AUTH_FAILED and creates nothing; with a token,
#     the requester approving twice counts once, an unregistered key, a
#     signature over other bytes and an unknown CO do not count, so one
#     approval is not enough; officer2's makes two and createUser works.
#     The used token cannot be replayed. C_InitPIN of another user through
#     the module: CKR_FUNCTION_REJECTED. changePswd of another user and
#     deleteUser are guarded too. A token dies at logout; delToken.
#  4. Service 4: raising service 3 again needs another token of
#     service 4.
#  5. The audit log holds each step (registrations, tokens issued, used
#     and refused, approvals accepted and rejected, M changes, delToken)
#     and its chain verifies.
#  6. A token whose lifetime (quorum_token_lifetime = 6) is over no longer
#     counts.
#  7. With two servers named, getToken asks for server mode.
#
# Environment (set by make check): NIMBUS_MODULE, NIMBUS_TOP_BUILDDIR,
# NIMBUS_TOP_SRCDIR. Exit: 0 pass, 1 fail, 77 skip, 99 hard error.
set -u

top=${NIMBUS_TOP_BUILDDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
srcdir=${NIMBUS_TOP_SRCDIR:-$top}
export NIMBUS_MODULE=${NIMBUS_MODULE:-$top/.libs/libnimbus-pkcs11.so}
mgmt_bin=$top/nimbus-mgmt
writer=$top/tests/p11/p11_writer
NIMBUSD=$top/nimbusd
. "$srcdir/tests/remote/lib.sh"

for tool in openssl mktemp mkfifo grep sed awk wc tail cut timeout python3; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "SKIP: quorum: $tool not found"
        exit 77
    fi
done
for f in "$mgmt_bin" "$writer" "$NIMBUSD"; do
    if [ ! -x "$f" ]; then
        echo "ERROR: quorum: $f not built"
        exit 99
    fi
done

dir=$(mktemp -d "${TMPDIR:-/tmp}/nimbus-quorum.XXXXXX") || exit 99
SESS_PID=
cleanup() {
    if [ -n "$SESS_PID" ]; then
        exec 3>&-
        kill "$SESS_PID" 2>/dev/null
        wait "$SESS_PID" 2>/dev/null
    fi
    nimbusd_stop >/dev/null 2>&1
    rm -rf "$dir"
}
trap cleanup EXIT
# a session that died must not kill the test with SIGPIPE
trap "" PIPE

CO_PW=co12345
O2_PW=officer2pw
O3_PW=officer3pw
BOB_PW=bobpass12
declare -A PW=([admin]=$CO_PW [officer2]=$O2_PW [officer3]=$O3_PW)
failures=0
MODE=

ok() { echo "ok - $MODE: $*"; }
not_ok() {
    echo "not ok - $MODE: $*"
    printf '%s\n' "$out" | sed 's/^/#   /'
    failures=$((failures + 1))
}
# check DESC CMD...: ok when CMD succeeds
check() {
    local d=$1
    shift
    if "$@"; then ok "$d"; else not_ok "$d"; fi
}
has() { grep -qF -- "$1" <<<"$out"; }
has_re() { grep -qE -- "$1" <<<"$out"; }

# M ARGS...: one nimbus-mgmt run (its own login); output in $out, status $rc.
M() {
    out=$(timeout 120 "$mgmt_bin" -y "$@" 2>&1)
    rc=$?
}

# --------------------------------------------------------------- keys

k=$dir/keys
mkdir -p "$k"
keygen() { # NAME BITS
    openssl genpkey -algorithm RSA -pkeyopt "rsa_keygen_bits:$2" \
        -out "$k/$1.key" 2>/dev/null &&
        openssl pkey -in "$k/$1.key" -pubout -out "$k/$1.pub" 2>/dev/null
}
sign() { # KEYNAME FILE SIGFILE
    openssl dgst -sha256 -sign "$k/$1.key" -out "$3" "$2"
}
for c in admin officer2 officer3 rogue; do
    keygen "$c" 2048 || { echo "ERROR: openssl genpkey"; exit 99; }
done
keygen small 1024 || { echo "ERROR: openssl genpkey 1024"; exit 99; }
for c in admin officer2 officer3 small; do
    openssl rand -out "$k/$c.regtok" 32 &&
        sign "$c" "$k/$c.regtok" "$k/$c.regsig" || exit 99
done
# officer3's token signed by admin's key: a signature by another key
sign admin "$k/officer3.regtok" "$k/wrong.regsig" || exit 99

# ------------------------------------------------------------ a session

# sess_start: one nimbus-mgmt (one login) reading commands from a fifo.
sess_start() {
    rm -f "$dir/in"
    mkfifo "$dir/in" || exit 99
    : >"$dir/sess.out"
    timeout 600 "$mgmt_bin" -y <"$dir/in" >"$dir/sess.out" 2>&1 &
    SESS_PID=$!
    exec 3>"$dir/in"
    MARK=0
}

# S COMMAND: runs COMMAND in the session; what it printed in $out. An
# unknown command after it marks where its output ends.
S() {
    local before n
    MARK=$((MARK + 1))
    before=$(wc -l <"$dir/sess.out")
    printf '%s\nmark_%d\n' "$1" "$MARK" >&3
    for ((n = 0; n < 2400; n++)); do
        grep -qF "unknown command 'mark_$MARK'" "$dir/sess.out" && break
        kill -0 "$SESS_PID" 2>/dev/null || break
        sleep 0.05
    done
    out=$(tail -n "+$((before + 1))" "$dir/sess.out" |
        grep -vF "unknown command 'mark_")
}

sess_end() {
    exec 3>&-
    wait "$SESS_PID" 2>/dev/null
    SESS_PID=
    # its exit status is 1 (the marks are unknown commands): under the
    # sanitizers, its output tells
    if grep -qE "Sanitizer|runtime error" "$dir/sess.out"; then
        out=$(cat "$dir/sess.out")
        not_ok "the session's nimbus-mgmt: a sanitizer report"
    fi
}

# approval FILE TOKEN (TYPE NAME SIG)...: writes an approval file.
approval() {
    local f=$1 t=$2
    shift 2
    {
        echo "$t"
        echo $(($# / 3))
        while [ $# -ge 3 ]; do
            printf '%s\n%s\n%s\n' "$1" "$2" "$3"
            shift 3
        done
    } >"$f"
}

# user_col NAME COLUMN: a column of listUsers' row for NAME (4 MofnPubKey).
user_col() {
    awk -v n="$1" -v c="$2" '$3 == n { print $c }' <<<"$out"
}

# token_row: listTokens' first row, as "id service needed given approvers".
token_row() {
    awk '/^ *[0-9]+  [34]\[/ { print $1, $2, $5, $6, $7; exit }' <<<"$out"
}

# ---------------------------------------------------------------- flow

flow() {
    local w=$dir/$MODE-work id row
    mkdir -p "$w"

    # --- activation and three COs (no quorum yet)
    M -c "loginHSM PRECO admin password; changePswd PRECO admin $CO_PW"
    [ "$rc" -eq 0 ] || { not_ok "activation"; return; }
    M -c "loginHSM CO admin $CO_PW; createUser CO officer2 $O2_PW; createUser CO officer3 $O3_PW"
    [ "$rc" -eq 0 ] || { not_ok "two more COs"; return; }

    # --- 1. registration
    for c in admin officer2 officer3; do
        M -c "loginHSM CO $c ${PW[$c]}; registerQuorumPubKey CO $c $k/$c.regtok $k/$c.regsig $k/$c.pub"
        check "registerQuorumPubKey $c" \
            eval '[ "$rc" -eq 0 ] && has_re "^registerQuorumPubKey success on server 0\("'
    done
    M -c "listUsers"
    check "listUsers: MofnPubKey YES for the three COs, NO for the AU" \
        eval '[ "$(user_col admin 4)" = YES ] && [ "$(user_col officer2 4)" = YES ] &&
              [ "$(user_col officer3 4)" = YES ] && [ "$(user_col app_user 4)" = NO ]'

    M -c "loginHSM CO officer3 $O3_PW; registerQuorumPubKey CO officer3 $k/officer3.regtok $k/wrong.regsig $k/officer3.pub"
    check "a registration signed by another key: CKR_SIGNATURE_INVALID" \
        eval '[ "$rc" -eq 1 ] && has "(CKR_SIGNATURE_INVALID)"'
    M -c "loginHSM CO officer3 $O3_PW; registerQuorumPubKey CO officer3 $k/small.regtok $k/small.regsig $k/small.pub"
    check "a 1024-bit key: CKR_KEY_SIZE_RANGE" \
        eval '[ "$rc" -eq 1 ] && has "(CKR_KEY_SIZE_RANGE)"'
    M -c "loginHSM CO admin $CO_PW; registerQuorumPubKey CO officer2 $k/admin.regtok $k/admin.regsig $k/admin.pub"
    check "a CO registering a key under another CO's name is refused" \
        eval '[ "$rc" -eq 1 ] && has_re "^registerQuorumPubKey failed: "'
    M -c "listUsers"
    check "a refused registration removes nothing" \
        eval '[ "$(user_col officer3 4)" = YES ] && [ "$(user_col officer2 4)" = YES ]'

    # --- 2. M values: service 4 first (one CO could lower 3 alone else)
    M -c "loginHSM CO admin $CO_PW; setMValue 3 2"
    check "setMValue 3 2 while service 4 is 1: refused, with the hint" \
        eval '[ "$rc" -eq 1 ] && has_re "^setMValue failed: RET_MXN_AUTH_FAILED" &&
              has "setMValue 4 <m> first"'
    M -c "loginHSM CO admin $CO_PW; setMValue 4 4"
    check "setMValue 4 4 with three registered COs is refused" \
        eval '[ "$rc" -eq 1 ] && has_re "^setMValue failed: "'
    M -c "loginHSM CO admin $CO_PW; setMValue 4 2; getMValue 3; getMValue 4"
    check "setMValue 4 2; getMValue shows 1 and 2" \
        eval '[ "$rc" -eq 0 ] && has "MValue of service 3[USER_MGMT] on server 0 : [1]" &&
              has "MValue of service 4[MISC_CO] on server 0 : [2]"'

    # --- 3. the session: admin asks, the others approve
    sess_start
    S "loginHSM CO admin $CO_PW"
    S "setMValue 3 2"
    check "setMValue 3 2 without a service 4 token: RET_MXN_AUTH_FAILED" \
        has_re "^setMValue failed: RET_MXN_AUTH_FAILED"
    S "getToken 4 admin $w/t0"
    sign officer2 "$w/t0" "$w/o2.t0.sig"
    sign officer3 "$w/t0" "$w/o3.t0.sig"
    approval "$w/a0" "$w/t0" CO officer2 "$w/o2.t0.sig" CO officer3 "$w/o3.t0.sig"
    S "approveToken $w/a0"
    S "setMValue 3 2"
    check "with a service 4 token approved twice, setMValue 3 2 works" \
        has_re "^setMValue success on server 0\("
    S "getMValue 3"
    check "getMValue 3 shows 2" has "MValue of service 3[USER_MGMT] on server 0 : [2]"
    S "createUser CU bob $BOB_PW"
    check "createUser without a token: RET_MXN_AUTH_FAILED" \
        has_re "^createUser failed: RET_MXN_AUTH_FAILED: .*\(CKR_FUNCTION_REJECTED\) on server 0\("
    S "listUsers"
    check "the refused createUser created nothing" eval '[ -z "$(user_col bob 1)" ]'

    S "getToken 3 admin $w/t1"
    check "getToken writes the token" \
        eval 'has_re "^getToken success on server 0\(" && [ -s "$w/t1" ]'
    sign admin "$w/t1" "$w/admin.t1.sig"
    approval "$w/a1" "$w/t1" CO admin "$w/admin.t1.sig" CO admin "$w/admin.t1.sig"
    S "approveToken $w/a1"
    check "the requester approving twice: accepted once, then CKR_FUNCTION_REJECTED" \
        eval 'has "Approval 1 by admin(CO): accepted (CKR_OK)" &&
              has_re "^Approval 2 by admin\(CO\): rejected: .*\(CKR_FUNCTION_REJECTED\)$" &&
              has "1 of 2 approvals accepted"'
    S "listTokens"
    row=$(token_row)
    check "listTokens: service 3, 2 needed, 1 given, by admin ($row)" \
        eval '[ "$(cut -d" " -f2- <<<"$row")" = "3[USER_MGMT] 2 1 admin" ]'
    check "listTokens: seconds left within the lifetime" \
        eval 'awk "/^ *[0-9]+  3\\[/ { exit !(\$4 > 0 && \$4 <= 600) }" <<<"$out"'

    sign rogue "$w/t1" "$w/rogue.t1.sig"
    echo "other bytes" >"$w/other"
    sign officer3 "$w/other" "$w/officer3.other.sig"
    sign officer2 "$w/t1" "$w/officer2.t1.sig"
    approval "$w/a2" "$w/t1" CO officer3 "$w/rogue.t1.sig" \
        CO officer3 "$w/officer3.other.sig" CO nosuchco "$w/officer2.t1.sig"
    S "approveToken $w/a2"
    check "an unregistered key and a signature over other bytes: CKR_SIGNATURE_INVALID" \
        eval '[ "$(grep -c "^Approval [12] by officer3(CO): rejected: .*(CKR_SIGNATURE_INVALID)$" <<<"$out")" = 2 ]'
    check "an approver that is no CO does not count" \
        eval 'has_re "^Approval 3 by nosuchco\(CO\): rejected" && has "0 of 3 approvals accepted"'
    S "createUser CU bob $BOB_PW"
    check "one approval of two: still RET_MXN_AUTH_FAILED" \
        has_re "^createUser failed: RET_MXN_AUTH_FAILED"
    S "listUsers"
    check "... and still no bob" eval '[ -z "$(user_col bob 1)" ]'

    approval "$w/a3" "$w/t1" CO officer2 "$w/officer2.t1.sig"
    S "approveToken $w/a3"
    check "officer2's approval is accepted" \
        eval 'has "Approval 1 by officer2(CO): accepted (CKR_OK)" &&
              has_re "^approveToken success on server 0\("'
    S "listTokens"
    row=$(token_row)
    check "listTokens: 2 given by admin and officer2 ($row)" \
        eval '[ "$(cut -d" " -f2- <<<"$row")" = "3[USER_MGMT] 2 2 admin,officer2" ]'
    S "createUser CU bob $BOB_PW"
    check "createUser with two approvals works" \
        eval '! has_re "^createUser failed"'
    S "listUsers"
    check "... bob exists" eval '[ "$(user_col bob 2)" = CU ]'

    S "createUser CU carol carolpw1"
    check "the token is used up: the next createUser is refused" \
        has_re "^createUser failed: RET_MXN_AUTH_FAILED"
    sign officer3 "$w/t1" "$w/officer3.t1.sig"
    approval "$w/a4" "$w/t1" CO officer3 "$w/officer3.t1.sig"
    S "approveToken $w/a4"
    check "a used token cannot be approved again (replay): CKR_DATA_INVALID" \
        eval 'has_re "^approveToken failed: .*\(CKR_DATA_INVALID\) on server 0\("'

    # the module: C_InitPIN of another user is guarded as well
    out=$("$writer" mkuser "$CO_PW" carol carolpw1 2>&1)
    rc=$?
    check "C_InitPIN of another user without quorum: CKR_FUNCTION_REJECTED" \
        eval '[ "$rc" -eq 1 ] && has "C_InitPIN: CKR_FUNCTION_REJECTED"'
    S "listUsers"
    check "... and creates nobody" eval '[ -z "$(user_col carol 1)" ]'
    # C_InitToken's re-initialization deletes every CU: refused as well
    # (nimbusd refuses it first while the shell, another client, holds a
    # session)
    out=$("$writer" init gone "$CO_PW" 2>&1)
    rc=$?
    want=CKR_FUNCTION_REJECTED
    [ "$MODE" = embedded ] || want=CKR_SESSION_EXISTS
    check "C_InitToken re-initialization under the quorum: $want" \
        eval '[ "$rc" -eq 1 ] && has "C_InitToken: $want"'
    S "listUsers"
    check "... and bob stays" eval '[ "$(user_col bob 2)" = CU ]'
    S "changePswd CO officer3 newpass99"
    check "changePswd of another user: RET_MXN_AUTH_FAILED" \
        has_re "^changePswd failed: RET_MXN_AUTH_FAILED"
    S "deleteUser CU bob"
    check "deleteUser: RET_MXN_AUTH_FAILED" \
        has_re "^deleteUser failed: RET_MXN_AUTH_FAILED"

    # a token for deleteUser, approved by officer2 and officer3
    S "getToken 3 admin $w/t2"
    sign officer2 "$w/t2" "$w/o2.t2.sig"
    sign officer3 "$w/t2" "$w/o3.t2.sig"
    approval "$w/a5" "$w/t2" CO officer2 "$w/o2.t2.sig" CO officer3 "$w/o3.t2.sig"
    S "approveToken $w/a5"
    S "deleteUser CU bob"
    check "deleteUser with two approvals works" \
        eval 'has_re "^deleteUser success on server 0\("'

    # dies at logout
    S "getToken 3 admin $w/t3"
    sign admin "$w/t3" "$w/admin.t3.sig"
    sign officer2 "$w/t3" "$w/o2.t3.sig"
    approval "$w/a6" "$w/t3" CO admin "$w/admin.t3.sig" CO officer2 "$w/o2.t3.sig"
    S "approveToken $w/a6"
    check "a third token approved twice" has "2 of 2 approvals accepted"
    S "logoutHSM"
    S "loginHSM CO admin $CO_PW"
    S "createUser CU carol carolpw1"
    check "a token dies with its requester's login" \
        has_re "^createUser failed: RET_MXN_AUTH_FAILED"
    S "approveToken $w/a6"
    check "... and cannot be approved after it (CKR_DATA_INVALID)" \
        has "(CKR_DATA_INVALID)"

    # delToken
    S "getToken 3 admin $w/t4"
    S "listTokens"
    id=$(token_row | cut -d" " -f1)
    S "delToken $id"
    check "delToken $id" has_re "^delToken success on server 0\("
    S "listTokens"
    check "listTokens: none left" has "Number of tokens found:0"
    S "delToken $id"
    check "delToken of a token that is gone fails" has_re "^delToken failed: "

    # --- 4. service 4 guards setMValue: each change takes a token
    S "setMValue 3 3"
    check "raising service 3 needs a quorum on service 4" \
        has_re "^setMValue failed: RET_MXN_AUTH_FAILED"
    S "getToken 4 admin $w/t5"
    sign officer2 "$w/t5" "$w/o2.t5.sig"
    sign officer3 "$w/t5" "$w/o3.t5.sig"
    approval "$w/a7" "$w/t5" CO officer2 "$w/o2.t5.sig" CO officer3 "$w/o3.t5.sig"
    S "approveToken $w/a7"
    S "setMValue 3 3"
    check "with a service 4 token approved twice, setMValue 3 3 works" \
        has_re "^setMValue success on server 0\("
    S "getMValue 3"
    check "getMValue 3 shows 3" has "MValue of service 3[USER_MGMT] on server 0 : [3]"
    S "quit"
    sess_end

    # --- every step is in the audit log, the chain intact
    M -c "loginHSM CO admin $CO_PW; getAuditLog; verifyAuditLog"
    check "audit: registrations, refused and accepted approvals, tokens issued, used and refused, M changes" \
        eval 'has_re " quorum_register_key +[0-9]+ +CKR_OK " &&
              has_re " quorum_register_key +[0-9]+ +CKR_SIGNATURE_INVALID " &&
              has_re " quorum_token +[0-9]+ +CKR_OK " &&
              has_re " quorum_approve +[0-9]+ +CKR_OK " &&
              has_re " quorum_approve +[0-9]+ +CKR_SIGNATURE_INVALID " &&
              has_re " quorum_approve +[0-9]+ +CKR_FUNCTION_REJECTED " &&
              has_re " quorum_used +[0-9]+ +CKR_OK " &&
              has_re " quorum_refused +[0-9]+ +CKR_FUNCTION_REJECTED " &&
              has_re " quorum_set_m +[0-9]+ +CKR_OK " &&
              has_re " quorum_del_token +[0-9]+ +CKR_OK " &&
              has_re "^verifyAuditLog success on server 0\("'
}

# expiry: the session again with a token lifetime of LIFETIME s: long
# enough for three openssl signatures and the approval on a loaded
# machine (2 s was not); then a wait until the token's own "expires:"
# time has passed, by the clock the HSM reads.
LIFETIME=6
expiry() {
    local w=$dir/$MODE-work exp
    sess_start
    S "loginHSM CO admin $CO_PW"
    S "getToken 3 admin $w/t6"
    for c in admin officer2 officer3; do
        sign "$c" "$w/t6" "$w/$c.t6.sig"
    done
    approval "$w/a8" "$w/t6" CO admin "$w/admin.t6.sig" \
        CO officer2 "$w/officer2.t6.sig" CO officer3 "$w/officer3.t6.sig"
    S "approveToken $w/a8"
    check "a short-lived token approved three times" \
        has "3 of 3 approvals accepted"
    exp=$(sed -n 's/^expires: \([0-9]*\)$/\1/p' "$w/t6")
    [ -n "$exp" ] || { not_ok "the token names no expiry"; exp=$(($(date +%s) + LIFETIME)); }
    while [ "$(date +%s)" -le "$exp" ]; do
        sleep 0.2
    done
    S "createUser CU carol carolpw1"
    check "an expired token does not count" \
        has_re "^createUser failed: RET_MXN_AUTH_FAILED"
    S "approveToken $w/a8"
    check "an expired token cannot be approved (CKR_DATA_INVALID)" \
        has "(CKR_DATA_INVALID)"
    S "quit"
    sess_end
}

# ---------------------------------------------------------------- embedded

MODE=embedded
mkdir -p "$dir/emb"
cat >"$dir/emb/nimbus.conf" <<CONF
store = $dir/emb/store
kdf_iterations = 1000
CONF
{
    cat "$dir/emb/nimbus.conf"
    echo "quorum_token_lifetime = $LIFETIME"
} >"$dir/emb/short.conf"
export NIMBUS_CONF=$dir/emb/nimbus.conf
flow
export NIMBUS_CONF=$dir/emb/short.conf
expiry

# ---------------------------------------------------------------- nimbusd

MODE=nimbusd
if ! nimbusd_start "$dir/rem"; then
    echo "not ok - nimbusd did not start"
    cat "$dir/rem/nimbusd.log" 2>/dev/null | sed 's/^/#   /'
    exit 1
fi
export NIMBUS_CONF=$dir/rem/client.conf
flow
# Two servers named: tokens are per HSM, so getToken and approveToken want
# one (server mode); the daemon is listed twice, which is two servers to
# the shell.
ep=$(sed -n 's/^servers = //p' "$dir/rem/client.conf")
echo "servers = $ep, $ep" >"$dir/rem/two.conf"
NIMBUS_CONF=$dir/rem/two.conf M -c "loginHSM CO admin $CO_PW; getToken 3 admin $dir/two.token"
check "two servers: getToken asks for one (server mode)" \
    eval '[ "$rc" -eq 1 ] && has "each HSM issues its own tokens" && [ ! -e "$dir/two.token" ]'
NIMBUS_CONF=$dir/rem/two.conf M -c "loginHSM CO admin $CO_PW; server 1; getToken 3 admin $dir/two.token"
check "two servers: server 1; getToken works" \
    eval '[ "$rc" -eq 0 ] && has_re "^getToken success on server 1\(" && [ -s "$dir/two.token" ]'
nimbusd_stop || not_ok "nimbusd stopped badly"
if nimbusd_start "$dir/rem" "quorum_token_lifetime = $LIFETIME"; then
    expiry
    nimbusd_stop || not_ok "nimbusd stopped badly"
else
    not_ok "nimbusd with a short token lifetime did not start"
fi

# ------------------------------------------------ nimbusd over mutual TLS

MODE=nimbusd-tls
if make_pki "$dir/pki"; then
    export NIMBUS_TEST_REMOTE=tls NIMBUS_TEST_PKI=$dir/pki
    if nimbusd_start "$dir/tls"; then
        export NIMBUS_CONF=$dir/tls/client.conf
        flow
        nimbusd_stop || not_ok "nimbusd stopped badly"
    else
        out=$(cat "$dir/tls/nimbusd.log" 2>/dev/null)
        not_ok "nimbusd over TLS did not start"
    fi
else
    echo "note: openssl could not make the test CA: the TLS run is skipped"
fi

if [ "$failures" -ne 0 ]; then
    echo "FAIL: quorum: $failures check(s) failed"
    exit 1
fi
echo "PASS: quorum"
exit 0
