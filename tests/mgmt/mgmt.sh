#!/bin/bash
# mgmt.sh - nimbus-mgmt end to end, on fresh stores.
#
#  1. The seed's activation transcript and its login/logout transcript,
#     run through the shell: the output lines match the seed's (server
#     names aside, and only server 0: there is one server). The seed pages
#     are read from ../shared/reference when present, else the copy of
#     their output lines kept below is used.
#  2. Every command, every role (unauthenticated, PRECO, CO, CU, AU):
#     allowed or refused as the permission table says.
#  3. Lockout after 5 wrong loginHSM, and a CO's changePswd unlocks.
#  4. deleteUser refusals; shareKey by a non-owner refused; a key shared
#     with a second CU is usable by it through the PKCS#11 module
#     (p11_writer), and no longer once unshared.
#  5. The audit log: the events are there, no password is; editing,
#     deleting or reordering a record in the database (sqlite3 CLI) is
#     found by verifyAuditLog, which names the first broken record.
#  6. Scripted use: -c, -y, stdin, prefixes, usage errors, exit status,
#     no prompt without a terminal; -hpswd and the prompt on a terminal
#     (through script(1), when it is there).
#  7. servers (remote mode) without a remote backend: a clear failure.
#  8. The cluster commands on an embedded store: "not in a cluster" for
#     every role; their arguments checked before anything is sent.
#
# Environment (set by make check): NIMBUS_MODULE, NIMBUS_TOP_BUILDDIR,
# NIMBUS_TOP_SRCDIR. Exit: 0 pass, 1 fail, 77 skip (a needed tool is
# missing), 99 hard error.
set -u

top=${NIMBUS_TOP_BUILDDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
srcdir=${NIMBUS_TOP_SRCDIR:-$top}
export NIMBUS_MODULE=${NIMBUS_MODULE:-$top/.libs/libnimbus-pkcs11.so}
mgmt_bin=$top/nimbus-mgmt
writer=$top/tests/p11/p11_writer
refdir=$srcdir/../shared/reference

for tool in mktemp grep sed awk diff cp sqlite3; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "SKIP: mgmt: $tool not found"
        exit 77
    fi
done
for f in "$mgmt_bin" "$writer"; do
    if [ ! -x "$f" ]; then
        echo "ERROR: mgmt: $f not built"
        exit 99
    fi
done
if [ ! -f "$NIMBUS_MODULE" ]; then
    echo "ERROR: mgmt: $NIMBUS_MODULE not built"
    exit 99
fi

if command -v timeout >/dev/null 2>&1; then
    T() { timeout 120 "$@"; }
else
    T() { "$@"; }
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/nimbus-mgmt.XXXXXX") || exit 99
trap 'rm -rf "$dir"' EXIT

CO_PW=co12345 # the seed's CO password (7 characters: the minimum)
ALICE_PW=alicepw1
BOB_PW=bobpass12
AU_PW=apppass1
NAME=nimbus # server 0's name: the token label
failures=0

ok() { echo "ok - $*"; }
not_ok() {
    echo "not ok - $*"
    failures=$((failures + 1))
}

# new_store NAME: a fresh store in $dir/NAME, made current (NIMBUS_CONF).
new_store() {
    mkdir -p "$dir/$1"
    cat >"$dir/$1/nimbus.conf" <<CONF
# mgmt.sh: a fresh store
store = $dir/$1/store
kdf_iterations = 1000
CONF
    export NIMBUS_CONF=$dir/$1/nimbus.conf
    db=$dir/$1/store/token0.db
}

# M ARGS...: runs nimbus-mgmt; output in $out, status in $rc.
M() {
    out=$(T "$mgmt_bin" "$@" 2>"$dir/err")
    rc=$?
    err=$(cat "$dir/err")
}

# has_line TEXT: the output has this exact line.
has_line() { grep -qxF -- "$1" <<<"$out"; }

# expect DESC WANT_RC: the last M ended with WANT_RC.
expect_rc() {
    if [ "$rc" -eq "$2" ]; then
        ok "$1"
    else
        not_ok "$1 (exit $rc, wanted $2)"
        printf '%s\n' "$out" "$err" | sed 's/^/#   /'
    fi
}

# expect_line DESC LINE: the last M printed LINE.
expect_line() {
    if has_line "$2"; then
        ok "$1"
    else
        not_ok "$1: no line '$2'"
        printf '%s\n' "$out" "$err" | sed 's/^/#   /'
    fi
}

# ---------------------------------------------------------------- seed

# seed_extract FILE: the transcript blocks of a seed page (code blocks
# with an aws-cloudhsm> line), as "C command" and "O output line", with
# the block's indent and trailing blanks removed.
seed_extract() {
    awk '
    function flush(   i, c) {
        if (!has)
            return
        for (i = 0; i < n; i++) {
            if (buf[i] ~ /^aws-cloudhsm>/) {
                c = buf[i]
                sub(/^aws-cloudhsm>/, "", c)
                print "C " c
            } else {
                print "O " buf[i]
            }
        }
    }
    /^ *```/ {
        if (inblock) {
            flush()
            inblock = 0
        } else {
            inblock = 1
            n = 0
            has = 0
            match($0, /^ */)
            indent = RLENGTH
        }
        next
    }
    inblock {
        line = $0
        if (substr(line, 1, indent) ~ /^ *$/)
            line = substr(line, indent + 1)
        sub(/[ \t\r]+$/, "", line)
        buf[n++] = line
        if (line ~ /^aws-cloudhsm>/)
            has = 1
    }' "$1"
}

# The seed's output lines, server names replaced by $NAME and only the
# lines of server 0 kept; "y" after each CAUTION question is the
# operator's answer.
seed_output() {
    seed_extract "$1" | sed -n 's/^O //p' |
        sed "s/server \([0-9]*\)([^)]*)/server \1($NAME)/g" |
        grep -v "server [1-9][0-9]*($NAME)"
}

seed_commands() {
    seed_extract "$1" | sed -n 's/^C //p'
}

activation_seed=
login_seed=
if [ -d "$refdir" ]; then
    activation_seed=$(grep -l 'aws-cloudhsm>changePswd PRECO' \
        "$refdir"/*.txt 2>/dev/null | head -n 1)
    login_seed=$(grep -l 'aws-cloudhsm>logoutHSM' "$refdir"/*.txt \
        2>/dev/null | head -n 1)
fi

# Kept copies of the seed transcripts' output lines (server 0 only, its
# name as $NAME), for a tree without ../shared/reference.
kept_activation() {
    cat <<EOF
E2E enabled on server 0($NAME)
Users on server 0($NAME):
Number of users found:2

    User Id             User Type       User Name                          MofnPubKey    LoginFailureCnt         2FA
         1              PRECO           admin                                    NO               0               NO
         2              AU              app_user                                 NO               0               NO
loginHSM success on server 0($NAME)
*************************CAUTION********************************
This is a CRITICAL operation, should be done on all nodes in the
cluster. Cav server does NOT synchronize these changes with the
nodes on which this operation is not executed or failed, please
ensure this operation is executed on all nodes in the cluster.
****************************************************************

Do you want to continue(y/n)?y
Changing password for admin(PRECO) on 1 nodes
Users on server 0($NAME):
Number of users found:2

    User Id             User Type       User Name                          MofnPubKey    LoginFailureCnt         2FA
         1              PCO             admin                                    NO               0               NO
         2              AU              app_user                                 NO               0               NO
EOF
}

kept_login() {
    cat <<EOF
loginHSM success on server 0($NAME)
logoutHSM success on server 0($NAME)
EOF
}

echo "# 1. the seed transcripts"
new_store act
if [ -n "$activation_seed" ]; then
    echo "# activation transcript from $activation_seed"
    seed_output "$activation_seed" >"$dir/act.want"
    # the commands, the new password filled in, "y" after the question
    seed_commands "$activation_seed" |
        sed "s/<NewPassword>/$CO_PW/" |
        awk '{ print } /^changePswd/ { print "y" }' >"$dir/act.in"
    kept_activation | diff -u - "$dir/act.want" >"$dir/kept.diff" ||
        not_ok "the kept copy of the activation transcript is out of date"
else
    echo "# activation transcript: the kept copy (no $refdir)"
    kept_activation >"$dir/act.want"
    printf '%s\n' enable_e2e listUsers "loginHSM PRECO admin password" \
        "changePswd PRECO admin $CO_PW" y listUsers quit >"$dir/act.in"
fi
T "$mgmt_bin" <"$dir/act.in" >"$dir/act.out" 2>"$dir/err"
rc=$?
if diff -u "$dir/act.want" "$dir/act.out" >"$dir/act.diff" && [ $rc -eq 0 ]; then
    ok "activation transcript: output matches the seed line for line"
else
    not_ok "activation transcript (exit $rc)"
    sed 's/^/#   /' "$dir/act.diff" "$dir/err"
fi

# The same with -y and -c: the same output.
new_store act2
M -y -c "enable_e2e; listUsers; loginHSM PRECO admin password; changePswd PRECO admin $CO_PW; listUsers; quit"
if [ "$out" = "$(cat "$dir/act.want")" ] && [ $rc -eq 0 ]; then
    ok "activation transcript with -y -c: same output"
else
    not_ok "activation transcript with -y -c"
    diff <(printf '%s\n' "$out") "$dir/act.want" | sed 's/^/#   /'
fi

export NIMBUS_CONF=$dir/act/nimbus.conf
db=$dir/act/store/token0.db
if [ -n "$login_seed" ]; then
    echo "# login/logout transcript from $login_seed"
    seed_output "$login_seed" >"$dir/login.want"
    seed_commands "$login_seed" >"$dir/login.in"
    kept_login | diff -u - "$dir/login.want" >/dev/null ||
        not_ok "the kept copy of the login transcript is out of date"
else
    kept_login >"$dir/login.want"
    printf '%s\n' "loginHSM CO admin $CO_PW" logoutHSM >"$dir/login.in"
fi
grep -q "loginHSM CO admin $CO_PW" "$dir/login.in" ||
    not_ok "the login seed does not log in as CO admin/$CO_PW"
T "$mgmt_bin" <"$dir/login.in" >"$dir/login.out" 2>"$dir/err"
rc=$?
if diff -u "$dir/login.want" "$dir/login.out" >"$dir/login.diff" &&
    [ $rc -eq 0 ]; then
    ok "login/logout transcript: output matches the seed"
else
    not_ok "login/logout transcript (exit $rc)"
    sed 's/^/#   /' "$dir/login.diff" "$dir/err"
fi

# ---------------------------------------------------------------- roles

echo "# 2. every command, every role"
CO="loginHSM CO admin $CO_PW"
CU="loginHSM CU alice $ALICE_PW"
AU="loginHSM AU app_user $AU_PW"
M -y -c "$CO; createUser CU alice $ALICE_PW; createUser CU bob $BOB_PW; createUser CO officer2 officer2pw; changePswd AU app_user $AU_PW; listUsers"
expect_rc "the CO creates alice, bob, officer2 and gives the AU a password" 0
expect_line "alice is user 3, a CU" \
    "         3              CU              alice                                    NO               0               NO"
expect_line "officer2 is a CO (not the primary)" \
    "         5              CO              officer2                                 NO               0               NO"

# alice's objects through the PKCS#11 module: one to share, one to change
T "$writer" create "alice:$ALICE_PW" shared-0 >/dev/null &&
    T "$writer" create "alice:$ALICE_PW" attr-0 >/dev/null ||
    not_ok "p11_writer could not create alice's objects"
M -c "$CU; findAllKeys 3 0"
K1=$(grep -o '^[0-9]*(o)' <<<"$out" | head -n 1 | tr -d '(o)')
K2=$(grep -o ', [0-9]*(o)' <<<"$out" | head -n 1 | tr -dc '0-9')
if [ -n "$K1" ] && [ -n "$K2" ]; then
    ok "findAllKeys lists alice's two objects ($K1, $K2)"
else
    not_ok "findAllKeys: alice's objects not listed"
    printf '%s\n' "$out" | sed 's/^/#   /'
    K1=1
    K2=2
fi

# role ROLE_LOGIN DESC WANT CMD: WANT is ok (exit 0) or no (refused by the
# HSM: exit 1 with a "failed: HSM Error" line).
role() {
    local login=$1 desc=$2 want=$3 cmd=$4
    if [ -n "$login" ]; then
        M -y -c "$login; $cmd"
    else
        M -y -c "$cmd"
    fi
    if [ "$want" = ok ] && [ $rc -eq 0 ]; then
        ok "$desc: $cmd"
    elif [ "$want" = no ] && [ $rc -eq 1 ] &&
        grep -q ' failed: .* on server 0' <<<"$out"; then
        ok "$desc: $cmd refused"
    else
        not_ok "$desc: $cmd (exit $rc, wanted $want)"
        printf '%s\n' "$out" "$err" | sed 's/^/#   /'
    fi
}

for who in unauth CO CU AU; do
    case $who in
    unauth) login= ;;
    CO) login=$CO ;;
    CU) login=$CU ;;
    AU) login=$AU ;;
    esac
    # basic information: everyone
    for cmd in listUsers getHSMInfo "info server 0" listAttributes \
        enable_e2e help "help shareKey"; do
        role "$login" "$who" ok "$cmd"
    done
    # user management, other users' passwords, the audit log: CO only
    want=no
    [ $who = CO ] && want=ok
    role "$login" "$who" $want "createUser CU tmp_$who tmppass1"
    role "$login" "$who" $want "deleteUser CU tmp_$who"
    role "$login" "$who" $want "changePswd CU bob $BOB_PW"
    role "$login" "$who" $want "getAuditLog"
    role "$login" "$who" $want "verifyAuditLog"
    # sync status (key handles, owners): CO, CU (its own), AU
    want=ok
    [ $who = unauth ] && want=no
    role "$login" "$who" $want "findAllKeys 3 1"
    role "$login" "$who" $want "getKeyInfo -k $K1"
    # key management and attributes: the owning CU only
    want=no
    [ $who = CU ] && want=ok
    role "$login" "$who" $want "getAttribute $K2 512"
    role "$login" "$who" $want "setAttribute $K2 3 relabelled"
    role "$login" "$who" $want "shareKey $K2 4 1"
    role "$login" "$who" $want "shareKey $K2 4 0"
done
# changing one's own password: every logged-in user
role "$CO" CO ok "changePswd CO admin $CO_PW"
role "$CU" CU ok "changePswd CU alice $ALICE_PW"
role "$AU" AU ok "changePswd AU app_user $AU_PW"
role "" unauth no "changePswd CU alice $ALICE_PW"
# a CU asks about another user's keys: refused
role "$CU" CU no "findAllKeys 4 0"
role "loginHSM CU bob $BOB_PW" "CU bob" no "getKeyInfo -k $K1"

# attribute values as the owner sees them
M -y -c "$CU; getAttribute $K2 3; setAttribute $K2 16 \"my app\"; getAttribute $K2 16"
expect_line "getAttribute shows the new label" "relabelled"
expect_line "setAttribute takes a quoted text value" "my app"
M -y -c "$CU; getAttribute $K2 258"
expect_line "getAttribute of an attribute the object lacks" \
    "getAttribute failed: HSM Error: the key has no such attribute (CKR_ATTRIBUTE_TYPE_INVALID) on server 0($NAME)"
M -y -c "$CU; setAttribute $K2 0 3"
expect_line "setAttribute refuses a read-only attribute" \
    "setAttribute failed: HSM Error: the attribute cannot be changed (CKR_ATTRIBUTE_READ_ONLY) on server 0($NAME)"
M -c "$CU; getAttribute $K2 512 $dir/attrs.txt"
if [ $rc -eq 0 ] && grep -qx relabelled "$dir/attrs.txt" &&
    [ "$(stat -c %a "$dir/attrs.txt")" = 600 ]; then
    ok "getAttribute 512 FILE writes every attribute to a 0600 file"
else
    not_ok "getAttribute 512 FILE"
fi

# The PRECO, on a store of its own: basic information and its own password.
new_store preco
P="loginHSM PRECO admin password"
for cmd in listUsers getHSMInfo "info server 0"; do
    role "$P" PRECO ok "$cmd"
done
for cmd in "createUser CU x xpasswd1" "changePswd AU app_user $AU_PW" \
    "findAllKeys 1 0" "getAuditLog" "verifyAuditLog" \
    "getAttribute 1 512" "shareKey 1 3 1"; do
    role "$P" PRECO no "$cmd"
done
role "$P" PRECO ok "changePswd PRECO admin newpass1"
M -c "listUsers"
expect_line "the PRECO's own change activated the HSM" \
    "         1              PCO             admin                                    NO               0               NO"
role "$P" PRECO no "listUsers" # PRECO is gone: the login fails

export NIMBUS_CONF=$dir/act/nimbus.conf
db=$dir/act/store/token0.db

# ---------------------------------------------------------------- lockout

echo "# 3. lockout"
for i in 1 2 3 4 5; do
    M -c "loginHSM CU bob wrongpass$i"
    has_line "loginHSM failed: HSM Error: wrong user name or password (CKR_PIN_INCORRECT) on server 0($NAME)" ||
        not_ok "wrong password $i not refused as incorrect"
done
M -c "loginHSM CU bob $BOB_PW"
expect_line "after 5 wrong passwords the right one is refused: locked" \
    "loginHSM failed: HSM Error: the user is locked out: a CO must reset its password (CKR_PIN_LOCKED) on server 0($NAME)"
expect_rc "a locked login fails the run" 1
M -c "listUsers"
expect_line "listUsers shows bob's 5 failures" \
    "         4              CU              bob                                      NO               5               NO"
M -y -c "$CO; changePswd CU bob $BOB_PW; logoutHSM; loginHSM CU bob $BOB_PW"
expect_rc "a CO's changePswd unlocks bob" 0
M -c "listUsers"
expect_line "bob's failure count is back to 0" \
    "         4              CU              bob                                      NO               0               NO"

# ------------------------------------------------------- users and sharing

echo "# 4. deleteUser refusals, sharing"
M -y -c "$CO; deleteUser CU alice"
expect_line "a CU that owns keys cannot be deleted" \
    "deleteUser failed: HSM Error: not permitted (CKR_ACTION_PROHIBITED) on server 0($NAME)"
M -y -c "$CO; deleteUser CO admin"
expect_line "the logged-in user cannot be deleted" \
    "deleteUser failed: HSM Error: not permitted (CKR_ACTION_PROHIBITED) on server 0($NAME)"
M -y -c "$CO; deleteUser CO alice"
expect_line "deleteUser with the wrong type is refused" \
    "deleteUser failed: HSM Error: invalid user type (CKR_USER_TYPE_INVALID) on server 0($NAME)"
M -y -c "$CO; deleteUser CU nobody"
expect_rc "deleteUser of an unknown user fails" 1
M -y -c "$CO; deleteUser CO officer2; listUsers"
expect_rc "the CO deletes officer2" 0
has_line "deleteUser success on server 0($NAME)" ||
    not_ok "no deleteUser success line"
sed -n '/^Users on/,$p' <<<"$out" | grep -q officer2 &&
    not_ok "officer2 still listed"

# sharing through the module
T "$writer" has "bob:$BOB_PW" shared-0 >/dev/null 2>&1 &&
    not_ok "bob sees alice's object before it is shared"
M -y -c "loginHSM CU bob $BOB_PW; shareKey $K1 4 1"
expect_line "shareKey by a non-owner is refused" \
    "shareKey failed: HSM Error: no such key, or not visible to this user (CKR_OBJECT_HANDLE_INVALID) on server 0($NAME)"
M -y -c "$CU; shareKey $K1 4 1; getKeyInfo -k $K1"
expect_line "alice shares her object with bob" \
    "shareKey success on server 0($NAME)"
expect_line "getKeyInfo shows the sharing" "	Shared with 1 user(s): 4"
if T "$writer" has "bob:$BOB_PW" shared-0 >/dev/null &&
    [ "$(T "$writer" count "bob:$BOB_PW" shared)" = 1 ]; then
    ok "bob finds and reads the shared object through the PKCS#11 module"
else
    not_ok "bob cannot use the shared object through the module"
fi
M -c "loginHSM CU bob $BOB_PW; findAllKeys 4 0"
expect_line "findAllKeys shows it as shared with bob" "$K1(s)"
M -y -c "loginHSM CU bob $BOB_PW; shareKey $K1 4 0"
expect_line "bob cannot unshare it either (not the owner)" \
    "shareKey failed: HSM Error: not permitted (CKR_ACTION_PROHIBITED) on server 0($NAME)"
M -y -c "$CU; shareKey $K1 4 0"
expect_rc "alice unshares it" 0
if T "$writer" has "bob:$BOB_PW" shared-0 >/dev/null 2>&1; then
    not_ok "bob still sees the object after unsharing"
else
    ok "unshared: bob no longer sees it through the module"
fi
# a public key cannot be shared (needs openssl and pkcs11-tool)
if command -v openssl >/dev/null 2>&1 &&
    command -v pkcs11-tool >/dev/null 2>&1 &&
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
        -out "$dir/ec.pem" >/dev/null 2>&1 &&
    openssl pkey -in "$dir/ec.pem" -pubout -outform DER \
        -out "$dir/ec.pub.der" >/dev/null 2>&1 &&
    T pkcs11-tool --module "$NIMBUS_MODULE" --login --pin "alice:$ALICE_PW" \
        --write-object "$dir/ec.pub.der" --type pubkey --label pub-0 \
        >/dev/null 2>&1; then
    M -c "$CU; findAllKeys 3 0"
    KP=$(grep -o '[0-9]*(o)' <<<"$out" | tr -d '(o)' | sort -n | tail -n 1)
    M -y -c "$CU; shareKey $KP 4 1"
    expect_line "a public key cannot be shared" \
        "shareKey failed: HSM Error: not permitted (CKR_ACTION_PROHIBITED) on server 0($NAME)"
else
    echo "# note: no public key import here (openssl, pkcs11-tool or the" \
        "module's support missing): public key sharing not checked"
fi

# ---------------------------------------------------------------- audit

echo "# 5. the audit log"
M -c "$CO; getAuditLog; verifyAuditLog"
expect_rc "the CO reads and verifies the audit log" 0
for op in activate login logout lockout create_user delete_user \
    change_password create share unshare set_attribute; do
    if grep -qE "^ +[0-9]+ +[0-9T:Z-]+ +[0-9a-f]{16} +[0-9]+ +$op " <<<"$out"; then
        ok "the audit log has a '$op' record"
    else
        not_ok "the audit log has no '$op' record"
    fi
done
for pw in "$CO_PW" "$ALICE_PW" "$BOB_PW" "$AU_PW" wrongpass1; do
    grep -qF -- "$pw" <<<"$out" && not_ok "a password ($pw) is in the audit log"
done
M -c "$CO; getAuditLog $dir/audit.txt"
if [ $rc -eq 0 ] && grep -q ' lockout ' "$dir/audit.txt"; then
    ok "getAuditLog FILE writes the log"
else
    not_ok "getAuditLog FILE"
fi
M -c "$CO; verifyAuditLog"
grep -qE "^verifyAuditLog success on server 0\($NAME\): [0-9]+ records, hash chain intact$" <<<"$out" ||
    not_ok "verifyAuditLog success line"

# tamper CASE SQL N: on a copy of the store, SQL must make verifyAuditLog
# name record N.
cp -r "$dir/act/store" "$dir/store.clean"
tamper() {
    local what=$1 sql=$2 n=$3
    rm -rf "$dir/act/store"
    cp -r "$dir/store.clean" "$dir/act/store"
    sqlite3 "$db" "$sql" || not_ok "sqlite3: $sql"
    M -c "$CO; verifyAuditLog"
    if [ $rc -eq 1 ] &&
        grep -q "^verifyAuditLog failed: audit record $n .* on server 0($NAME)\$" <<<"$out"; then
        ok "verifyAuditLog finds the $what (record $n)"
    else
        not_ok "verifyAuditLog misses the $what (record $n)"
        printf '%s\n' "$out" | sed 's/^/#   /'
    fi
}
tamper "edited result" "UPDATE audit SET result = result + 1 WHERE seq = 20" 20
tamper "edited user" "UPDATE audit SET user_id = user_id + 1 WHERE seq = 9" 9
tamper "deleted record" "DELETE FROM audit WHERE seq = 12" 12
tamper "reordered records" "UPDATE audit SET seq = -5 WHERE seq = 5;
    UPDATE audit SET seq = 5 WHERE seq = 6;
    UPDATE audit SET seq = 6 WHERE seq = -5;" 5
last=$(sqlite3 "$dir/store.clean/token0.db" 'select max(seq) from audit')
tamper "deleted last record" "DELETE FROM audit WHERE seq = $last" "$last"
rm -rf "$dir/act/store"
cp -r "$dir/store.clean" "$dir/act/store"

# ---------------------------------------------------------------- scripting

echo "# 6. scripted use"
M -c "listU"
expect_rc "a unique prefix runs the command" 0
expect_line "listU is listUsers" "Users on server 0($NAME):"
M -c "lo"
expect_rc "an ambiguous prefix fails" 1
grep -q "ambiguous" <<<"$err" || not_ok "no 'ambiguous' message"
M -c "frobnicate"
expect_rc "an unknown command fails" 1
before=$(sqlite3 "$db" 'select count(*) from users')
for bad in "createUser XX carol carolpw1" "createUser CU" \
    "createUser CU bad-name! carolpw1" "findAllKeys abc 0" \
    "findAllKeys 3 2" "getKeyInfo 1" "shareKey 1 4 yes" "loginHSM CU" \
    "setAttribute 1 999999 x" "info client 0" "server 7"; do
    M -y -c "$CO; $bad"
    if [ $rc -eq 1 ] && grep -q "usage: \|no server" <<<"$err"; then
        ok "wrong arguments print the usage: $bad"
    else
        not_ok "wrong arguments: $bad (exit $rc)"
        printf '%s\n' "$out" "$err" | sed 's/^/#   /'
    fi
done
[ "$(sqlite3 "$db" 'select count(*) from users')" = "$before" ] ||
    not_ok "a wrong command changed the users"
M -c "listUsers; loginHSM CU alice wrongpass; listUsers"
expect_rc "one failed command makes the exit status non-zero" 1
[ "$(grep -c '^Users on server' <<<"$out")" = 2 ] ||
    not_ok "the commands after a failure did not run"
M -c 'createUser CU "carol" carolpw1' </dev/null
expect_rc "no -y and no answer: the change is not made" 1
out=$(printf 'listUsers\nquit\nlistUsers\n' | T "$mgmt_bin" 2>&1)
if grep -q 'nimbus>' <<<"$out"; then
    not_ok "a prompt is printed when stdin is not a terminal"
elif [ "$(grep -c '^Users on server' <<<"$out")" = 1 ]; then
    ok "stdin: no prompt, and quit ends the input"
else
    not_ok "quit did not end the input"
fi
# a program driving the shell through pipes gets each answer before it
# sends the next command (tests/cluster's digest poll does)
coproc MG { T "$mgmt_bin" 2>&1; }
printf 'listUsers\n' >&"${MG[1]}"
line=
IFS= read -r -t 10 line <&"${MG[0]}"
if [ "$line" = "Users on server 0($NAME):" ]; then
    ok "stdin: a command's output is out before the next line is read"
else
    not_ok "stdin from a pipe held open: no answer to listUsers ('$line')"
fi
mg_pid=$MG_PID
printf 'quit\n' >&"${MG[1]}"
wait "$mg_pid"
out=$(printf '%s\n' "$CO" 'createUser CU carol carolpw1' n listUsers |
    T "$mgmt_bin" 2>&1)
if grep -q '^Do you want to continue(y/n)?n$' <<<"$out" &&
    ! grep -q carol <<<"$(sed -n '/^Users on/,$p' <<<"$out")"; then
    ok "answering n changes nothing"
else
    not_ok "answering n"
    printf '%s\n' "$out" | sed 's/^/#   /'
fi
M -c "server 0; listUsers; exit; exit"
expect_rc "server mode: exit leaves it, a second exit fails" 1
M "$dir/act/nimbus.conf" -c "listUsers"
expect_rc "a config given as argument" 0
M "$dir/missing.conf" -c "listUsers"
expect_rc "a missing config file is an error" 2

# On a terminal (script(1)): the prompt, and -hpswd without echo.
if command -v script >/dev/null 2>&1 && command -v timeout >/dev/null 2>&1; then
    # The password goes once the prompt is out: the shell turns echo off
    # (and flushes what came before) just before it, so a password typed
    # earlier would be echoed and lost (a fixed sleep bets on the start-up
    # time of a loaded machine).
    tty_out=$dir/tty.out
    : >"$tty_out"
    (
        for _ in $(seq 600); do
            grep -q 'Enter password: ' "$tty_out" && break
            sleep 0.1
        done
        printf '%s\n' "$CO_PW"
        sleep 1
    ) | timeout 60 script -qec "$mgmt_bin -c 'loginHSM CO admin -hpswd'" \
        /dev/null >"$tty_out" 2>&1
    out=$(tr -d '\r' <"$tty_out")
    if grep -q "^loginHSM success on server 0($NAME)" <<<"$out" &&
        ! grep -qF "$CO_PW" <<<"$out"; then
        ok "-hpswd reads the password from the terminal without echo"
    else
        not_ok "-hpswd"
        printf '%s\n' "$out" | sed 's/^/#   /'
    fi
    out=$( (
        sleep 1
        printf 'listUsers\nquit\n'
        sleep 1
    ) | timeout 60 script -qec "$mgmt_bin" /dev/null 2>&1 | tr -d '\r')
    if grep -q '^nimbus>' <<<"$out"; then
        ok "on a terminal the prompt is nimbus>"
    else
        not_ok "no nimbus> prompt on a terminal"
        printf '%s\n' "$out" | sed 's/^/#   /'
    fi
else
    echo "# note: script(1) or timeout missing: terminal checks skipped"
fi

# ---------------------------------------------------------------- cluster
# The embedded store is no cluster: each cluster command says so on its
# server line, for every role, and fails; bad arguments are usage errors
# (tests/remote/cluster-mgmt.sh runs them against a cluster).
echo "# 8. cluster commands, embedded"
for who in unauth CO CU AU; do
    case $who in
    unauth) login= ;;
    CO) login=$CO ;;
    CU) login=$CU ;;
    AU) login=$AU ;;
    esac
    for cmd in listNodes getClusterDigest "addNode 4 127.0.0.1:21004" \
        "removeNode 3" "transferLeader 2"; do
        c=${cmd%% *}
        if [ -n "$login" ]; then M -c "$login; $cmd"; else M -c "$cmd"; fi
        if [ $rc -eq 1 ] && has_line "$c failed: HSM Error: not in a cluster (CKR_FUNCTION_NOT_SUPPORTED) on server 0($NAME)"; then
            ok "embedded, $who: $cmd: not in a cluster"
        else
            not_ok "embedded: $cmd (exit $rc)"
            printf '%s\n' "$out" "$err" | sed 's/^/#   /'
        fi
    done
done
for cmd in "addNode 0 h:1" "addNode 4294967296 h:1" "addNode 4 h" \
    "addNode 4 h:0" "addNode 4 'a b:1'" "addNode 4" "removeNode x" \
    "removeNode 0" "transferLeader -1" "listNodes 1"; do
    M -c "$CO; $cmd"
    if [ $rc -eq 1 ] && grep -q "^usage: ${cmd%% *}" <<<"$err" &&
        ! grep -q "^${cmd%% *} \(failed\|success\)" <<<"$out"; then
        ok "usage error, nothing sent: $cmd"
    else
        not_ok "usage error: $cmd (exit $rc)"
        printf '%s\n' "$out" "$err" | sed 's/^/#   /'
    fi
done

# ---------------------------------------------------------------- remote
# servers names a nimbusd that is not there: the shell names the server it
# cannot reach and exits 2, without making a local store instead.
new_store remote
echo "servers = unix:$dir/remote/none.sock" >>"$NIMBUS_CONF"
M -c listUsers
expect_rc "servers nobody listens on: exit 2" 2
if grep -qF "nimbus-mgmt: server 0($dir/remote/none.sock): nimbusd cannot be reached (CKR_DEVICE_REMOVED)" <<<"$err" &&
    [ ! -e "$dir/remote/store" ]; then
    ok "servers: no local store made in their place"
else
    not_ok "servers: message or a local store"
    printf '%s\n' "$err" | sed 's/^/#   /'
fi

if [ $failures -ne 0 ]; then
    echo "FAIL: mgmt: $failures check(s) failed"
    exit 1
fi
echo "PASS: mgmt"
exit 0
