#!/bin/bash
# crash.sh - kill -9 a writer at a random instant, again and again.
#
# Each round starts "p11_writer write" (token data objects, one "ack LABEL"
# line printed and flushed after each successful C_CreateObject), kills it
# with SIGKILL 50-400 ms later, and then checks that the store survived:
#   (a) sqlite3's PRAGMA integrity_check says "ok" (when sqlite3 exists);
#   (b) every acknowledged object is present, every present object has
#       exactly the value that was written (nothing torn), and at most one
#       object per kill is present without an acknowledgement (the create
#       that was in flight);
#   (c) a fresh process can still log in.
#
# NIMBUS_CRASH_ROUNDS (default 20) sets the number of rounds; the loop stops
# early, with a note, if it nears the 60 s budget.
# Environment (set by make check): NIMBUS_MODULE, NIMBUS_TOP_BUILDDIR.
# Exit: 0 pass, 1 fail, 77 skip (a needed tool is missing), 99 hard error.
set -u

top=${NIMBUS_TOP_BUILDDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export NIMBUS_MODULE=${NIMBUS_MODULE:-$top/.libs/libnimbus-pkcs11.so}
writer=$top/tests/p11/p11_writer
rounds=${NIMBUS_CRASH_ROUNDS:-20}
budget=45 # seconds after which no new round starts

for tool in mktemp grep sort comm uniq cut seq sleep wc head; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "SKIP: crash: $tool not found"
        exit 77
    fi
done
if [ ! -x "$writer" ] || [ ! -f "$NIMBUS_MODULE" ]; then
    echo "ERROR: crash: $writer or $NIMBUS_MODULE not built"
    exit 99
fi
case "$rounds" in
'' | *[!0-9]*)
    echo "ERROR: crash: NIMBUS_CRASH_ROUNDS=$rounds is not a number"
    exit 99
    ;;
esac
have_sqlite3=0
if command -v sqlite3 >/dev/null 2>&1; then
    have_sqlite3=1
else
    echo "# note: sqlite3 not found: PRAGMA integrity_check is skipped"
fi

if command -v timeout >/dev/null 2>&1; then
    W() { timeout 60 "$writer" "$@"; }
else
    W() { "$writer" "$@"; }
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/nimbus-crash.XXXXXX") || exit 99
trap 'rm -rf "$dir"' EXIT
store=$dir/store
cat >"$dir/nimbus.conf" <<CONF
# crash.sh: a fresh store
store = $store
kdf_iterations = 1000
CONF
export NIMBUS_CONF=$dir/nimbus.conf
PIN=alice:alicepw1

die() {
    echo "FAIL: crash: $*"
    exit 1
}

W init crash sopass123 >/dev/null || die "C_InitToken failed"
W mkuser sopass123 alice alicepw1 >/dev/null || die "creating CU alice failed"

: >"$dir/acked"
acked=0 present=0 extra=0 done_rounds=0 integrity="not checked (no sqlite3)"
start=$SECONDS
for r in $(seq 1 "$rounds"); do
    if [ $((SECONDS - start)) -ge "$budget" ]; then
        echo "# note: stopping after $done_rounds rounds (${budget}s budget)"
        break
    fi

    "$writer" write "$PIN" "r$r" 100000 >"$dir/out.$r" 2>"$dir/err.$r" &
    pid=$!
    ms=$((RANDOM % 351 + 50))
    sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rc=$?
    if [ "$rc" -ne 137 ]; then
        die "round $r: the writer ended on its own before the kill (exit $rc): $(cat "$dir/err.$r")"
    fi
    done_rounds=$r

    # (a) the database file is consistent.
    if [ "$have_sqlite3" -eq 1 ]; then
        check=$(sqlite3 "$store/token0.db" 'PRAGMA integrity_check' 2>&1)
        [ "$check" = ok ] || die "round $r: integrity_check: $check"
        integrity=ok
    fi

    # (b) acknowledged objects are there, values are whole.
    n=$(grep -c '^ack ' "$dir/out.$r")
    grep '^ack ' "$dir/out.$r" | cut -c5- >>"$dir/acked"
    if ! W list "$PIN" >"$dir/present" 2>"$dir/list.err"; then
        grep '^bad ' "$dir/present"
        die "round $r: listing failed or found torn objects: $(cat "$dir/list.err")"
    fi
    sort -u "$dir/acked" >"$dir/acked.sorted"
    sort "$dir/present" >"$dir/present.sorted"
    if [ "$(sort -u "$dir/present" | wc -l)" -ne "$(wc -l <"$dir/present")" ]; then
        die "round $r: a label is present twice: $(sort "$dir/present" | uniq -d | head -n 5)"
    fi
    missing=$(comm -23 "$dir/acked.sorted" "$dir/present.sorted")
    [ -z "$missing" ] || die "round $r: acknowledged but missing: $(echo $missing | cut -c1-300)"
    acked=$(wc -l <"$dir/acked.sorted")
    present=$(wc -l <"$dir/present.sorted")
    extra=$((present - acked))
    if [ "$extra" -gt "$r" ]; then
        die "round $r: $extra objects present without acknowledgement (at most one per kill): $(comm -13 "$dir/acked.sorted" "$dir/present.sorted" | head -n 5)"
    fi

    # (c) a fresh process can still log in.
    out=$(W login user "$PIN" 2>&1)
    case "$out" in
    "CKR_OK "*) ;;
    *) die "round $r: login after the kill: $out" ;;
    esac
    echo "# round $r: killed after ${ms} ms, $n acknowledged this round, $present objects in all"
done

if [ "$acked" -eq 0 ]; then
    die "no object was ever acknowledged: the writer never got to write"
fi
echo "crash: $done_rounds rounds of kill -9, $acked acknowledged objects all present and whole, $extra committed but unacknowledged, integrity_check $integrity, login ok, $((SECONDS - start))s"
exit 0
