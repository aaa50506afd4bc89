#!/bin/bash
# multiprocess.sh - several processes on one store.
#
# Each step is a separate p11_writer process (a separate PKCS#11
# application) on a fresh store: activation and user creation in one,
# login in another; an object committed by one process is visible to a
# process that is already logged in at its next C_FindObjectsInit; the
# lockout counter is shared by all processes; two writers in parallel both
# succeed (no SQLITE_BUSY surfaces as an error) and lose nothing.
#
# Environment (set by make check): NIMBUS_MODULE, NIMBUS_TOP_BUILDDIR.
# Exit: 0 pass, 1 fail, 77 skip (a needed tool is missing), 99 hard error.
set -u

top=${NIMBUS_TOP_BUILDDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export NIMBUS_MODULE=${NIMBUS_MODULE:-$top/.libs/libnimbus-pkcs11.so}
writer=$top/tests/p11/p11_writer

for tool in mktemp grep seq head sleep; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "SKIP: multiprocess: $tool not found"
        exit 77
    fi
done
if [ ! -x "$writer" ] || [ ! -f "$NIMBUS_MODULE" ]; then
    echo "ERROR: multiprocess: $writer or $NIMBUS_MODULE not built"
    exit 99
fi

# Guard against a hung process (deadlock on the store) stalling make check.
if command -v timeout >/dev/null 2>&1; then
    W() { timeout 120 "$writer" "$@"; }
else
    W() { "$writer" "$@"; }
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/nimbus-mp.XXXXXX") || exit 99
trap 'rm -rf "$dir"' EXIT
cat >"$dir/nimbus.conf" <<CONF
# multiprocess.sh: a fresh store
store = $dir/store
kdf_iterations = 1000
CONF
export NIMBUS_CONF=$dir/nimbus.conf

SO=sopass123
ALICE=alice:alicepw1
failures=0

ok() { echo "ok - $*"; }
not_ok() {
    echo "not ok - $*"
    failures=$((failures + 1))
}
# expect_out DESC WANT CMD...: runs CMD, passes when its exit status is 0
# and its first output line is WANT.
expect_out() {
    local desc=$1 want=$2 out rc
    shift 2
    out=$("$@" 2>"$dir/err")
    rc=$?
    if [ "$rc" -eq 0 ] && [ "$(printf '%s\n' "$out" | head -n 1)" = "$want" ]; then
        ok "$desc"
    else
        not_ok "$desc: want '$want', got '$out' (exit $rc) $(cat "$dir/err")"
    fi
}
# expect_login DESC CKR TYPE PIN: a fresh process's C_Login returns CKR.
expect_login() {
    local out
    out=$(W login "$3" "$4" 2>&1)
    case "$out" in
    "$2 "*) ok "$1 ($2)" ;;
    *) not_ok "$1: want $2, got '$out'" ;;
    esac
}
# run_ok DESC CMD...: CMD exits 0.
run_ok() {
    local desc=$1 out
    shift
    if out=$("$@" 2>&1); then
        ok "$desc"
    else
        not_ok "$desc: exit $?: $out"
    fi
}

echo "# store $dir/store"

# --- process A activates the token and creates CU alice -------------------
run_ok "A: C_InitToken activates the token" W init test "$SO"
run_ok "A: CO creates CU alice" W mkuser "$SO" alice alicepw1
run_ok "A: CO creates CU bob" W mkuser "$SO" bob bobpass1

# --- process B logs in as alice ------------------------------------------
expect_login "B: alice logs in" CKR_OK user "$ALICE"
info=$(W info 2>&1)
case "$info" in
*TOKEN_INITIALIZED*USER_PIN_INITIALIZED* | *USER_PIN_INITIALIZED*TOKEN_INITIALIZED*)
    ok "B: token info shows TOKEN_INITIALIZED and USER_PIN_INITIALIZED" ;;
*) not_ok "B: token info flags: $info" ;;
esac
case "$info" in
*"label test"*) ok "B: token label set by A" ;;
*) not_ok "B: token label: $info" ;;
esac

# --- an object A commits is seen by B (already logged in) at its next find
W watch "$ALICE" mp-shared 20000 >"$dir/watch.out" 2>"$dir/watch.err" &
watch_pid=$!
for _ in $(seq 1 500); do
    grep -q '^before' "$dir/watch.out" 2>/dev/null && break
    kill -0 "$watch_pid" 2>/dev/null || break
    sleep 0.02
done
if grep -qx 'before 0' "$dir/watch.out"; then
    ok "B: logged in, does not see mp-shared yet"
else
    not_ok "B: first find: $(cat "$dir/watch.out" "$dir/watch.err")"
fi
expect_out "A: alice creates mp-shared" "ack mp-shared" W create "$ALICE" mp-shared
if wait "$watch_pid" && grep -q '^seen 1$' "$dir/watch.out"; then
    ok "B: sees mp-shared at its next C_FindObjectsInit"
else
    not_ok "B: watch: $(cat "$dir/watch.out" "$dir/watch.err")"
fi
expect_out "C: a third process sees mp-shared" "found mp-shared 1" \
    W has "$ALICE" mp-shared
out=$(W has bob:bobpass1 mp-shared 2>&1)
if [ "$out" = "absent mp-shared" ]; then
    ok "C: bob does not see alice's private object"
else
    not_ok "C: bob: $out"
fi

# --- lockout counts across processes (login_failure_limit = 5) -----------
run_ok "A: CO creates CU carol" W mkuser "$SO" carol carolpw1
for i in 1 2 3 4; do
    expect_login "process $i: carol wrong password" CKR_PIN_INCORRECT user carol:wrongpw$i
done
expect_login "process 5: carol wrong password (5th failure)" CKR_PIN_INCORRECT \
    user carol:wrongpw5
expect_login "process 6: carol right password after lockout" CKR_PIN_LOCKED \
    user carol:carolpw1
expect_login "alice is not affected by carol's lockout" CKR_OK user "$ALICE"
run_ok "CO resets carol's password (unlocks)" W mkuser "$SO" carol carolpw2
expect_login "carol logs in after the reset" CKR_OK user carol:carolpw2

# A success resets the counter: 4 failures, success, 4 failures, success.
run_ok "A: CO creates CU dave" W mkuser "$SO" dave davepw11
for round in 1 2; do
    for i in 1 2 3 4; do
        expect_login "round $round process $i: dave wrong password" \
            CKR_PIN_INCORRECT user dave:wrongpw$i
    done
    expect_login "round $round: dave right password" CKR_OK user dave:davepw11
done

# --- two writers in parallel ---------------------------------------------
W write "$ALICE" pa 200 >"$dir/pa.out" 2>"$dir/pa.err" &
pa=$!
W write "$ALICE" pb 200 >"$dir/pb.out" 2>"$dir/pb.err" &
pb=$!
wait "$pa"
rc_a=$?
wait "$pb"
rc_b=$?
for w in pa pb; do
    if [ "$w" = pa ]; then rc=$rc_a; else rc=$rc_b; fi
    acks=$(grep -c '^ack ' "$dir/$w.out")
    if [ "$rc" -eq 0 ] && [ "$acks" -eq 200 ]; then
        ok "parallel writer $w: exit 0, 200 acknowledged"
    else
        not_ok "parallel writer $w: exit $rc, $acks acknowledged: $(cat "$dir/$w.err")"
    fi
done
expect_out "pa-* objects after the parallel writes" 200 W count "$ALICE" pa
expect_out "pb-* objects after the parallel writes" 200 W count "$ALICE" pb
na=$(W count "$ALICE" pa 2>/dev/null | head -n 1)
nb=$(W count "$ALICE" pb 2>/dev/null | head -n 1)
if [ "$((${na:-0} + ${nb:-0}))" -eq 400 ]; then
    ok "400 objects in all"
else
    not_ok "objects in all: ${na:-?} + ${nb:-?}, want 400"
fi

if [ "$failures" -ne 0 ]; then
    echo "multiprocess: $failures check(s) failed"
    exit 1
fi
echo "multiprocess: all checks passed"
exit 0
