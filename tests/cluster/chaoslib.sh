# chaoslib.sh - the failure rounds of tests/cluster/chaos.sh and
# scripts/cluster-soak.sh (bash, sourced after lib.sh). A round: three
# chaosclient processes work while the leader is killed (-9) and
# restarted, then a follower, then a node is stopped (SIGSTOP) and
# continued; then every acknowledged change must be on every node,
# nothing must be there that no client attempted, and the digests agree.
# Needs T (a temp dir), CHAOS (the chaosclient binary), fail().

CH_ALICE=alicepw1
CH_BOB=bobpw123
CH_CALL_TIMEOUT=${CH_CALL_TIMEOUT:-3}
declare -A CH_CPID

# ch_setup: the cluster, CUs alice and bob, and a client config per node
# naming all three servers, its own node first (its primary).
ch_setup() {
    local out n i list
    cl_init "$T" 3 || fail "PKI"
    cl_start_cluster || fail "the cluster did not form"
    out=$(cl_mgmt 1 "loginHSM CO admin $CL_CO_PW; createUser CU alice $CH_ALICE; createUser CU bob $CH_BOB") ||
        fail "createUser: $out"
    for n in 1 2 3; do
        list="unix:$(cl_sock "$n")"
        for i in 1 2 3; do
            [ "$i" = "$n" ] || list="$list, unix:$(cl_sock "$i")"
        done
        printf 'servers = %s\ncall_timeout = %s\n' "$list" \
            "$CH_CALL_TIMEOUT" >"$T/all$n.conf"
    done
}

# ch_mgmt N COMMANDS: cl_mgmt bounded in time (a stopped node never
# answers).
ch_mgmt() {
    local n=$1
    shift
    NIMBUS_CONF=$CL_DIR/n$n/client.conf timeout 10 "$CL_MGMT" -y -c "$*" 2>&1
}

# ch_status N: node N's listNodes (empty when it does not answer).
ch_status() { ch_mgmt "$1" "loginHSM CO admin $CL_CO_PW; listNodes" 2>/dev/null; }

# ch_leader: the leader's id as a live node sees it (waits up to 15 s).
ch_leader() {
    local i n l
    for ((i = 0; i < 75; i++)); do
        for n in 1 2 3; do
            [ -n "${CL_PID[$n]:-}" ] || continue
            l=$(ch_status "$n" | sed -n 's/^Leader: node \([0-9]*\)(.*/\1/p')
            if [ -n "$l" ] && [ -n "${CL_PID[$l]:-}" ]; then
                echo "$l"
                return 0
            fi
        done
        sleep 0.2
    done
    return 1
}

# ch_term N: node N's current term.
ch_term() { ch_status "$1" | sed -n 's/^This node [0-9]*: [a-z]*, term \([0-9]*\),.*/\1/p'; }

# ch_restart N: node N again from its dirs (its config as written).
ch_restart() {
    local log=$CL_DIR/n$1/nimbusd.log
    # cl_wait_ready looks for the ready line: only this start's may count
    cat "$log" >>"$log.old" 2>/dev/null
    : >"$log"
    cl_launch "$1"
    cl_wait_ready "$1" 30 || fail "node $1 did not come back"
}

ch_clients_start() {
    local r=$1
    NIMBUS_CONF=$T/all1.conf "$CHAOS" work alice "$CH_ALICE" "r$r-a" \
        >"$T/c1.log" 2>"$T/c1.err" &
    CH_CPID[1]=$!
    NIMBUS_CONF=$T/all2.conf "$CHAOS" work bob "$CH_BOB" "r$r-b" pw \
        >"$T/c2.log" 2>"$T/c2.err" &
    CH_CPID[2]=$!
    NIMBUS_CONF=$T/all3.conf "$CHAOS" users "$CL_CO_PW" "r${r}u" \
        >"$T/c3.log" 2>"$T/c3.err" &
    CH_CPID[3]=$!
}

ch_clients_stop() {
    local c
    for c in 1 2 3; do
        [ -n "${CH_CPID[$c]:-}" ] || continue
        kill -TERM "${CH_CPID[$c]}" 2>/dev/null
    done
    for c in 1 2 3; do
        [ -n "${CH_CPID[$c]:-}" ] || continue
        # a call may wait for call_timeout before the client sees SIGTERM
        timeout 30 tail --pid="${CH_CPID[$c]}" -f /dev/null
        kill -9 "${CH_CPID[$c]}" 2>/dev/null
        wait "${CH_CPID[$c]}" 2>/dev/null
        CH_CPID[$c]=
    done
}

# ch_progress C MIN: waits (20 s at most) until client C has acknowledged
# MIN more changes than now (its log grows with "CKR_OK" lines).
ch_progress() {
    local c=$1 want i
    want=$(($(grep -c ' CKR_OK$' "$T/c$c.log") + $2))
    for ((i = 0; i < 200; i++)); do
        [ "$(grep -c ' CKR_OK$' "$T/c$c.log")" -ge "$want" ] && return 0
        sleep 0.1
    done
    fail "client $c made no progress: $(tail -n 3 "$T/c$c.log" | tr '\n' '|')"
}

ch_all_progress() {
    ch_progress 1 3
    ch_progress 2 3
    ch_progress 3 2
}

# ch_digests: the three nodes' digests at the same applied index, from
# one nimbus-mgmt connected to all three (the status needs a login, and
# each login is an audit record, a log entry: polling with a new shell
# each time would move the index for ever). The shell is driven through
# pipes: getClusterDigest every 50 ms, and the first round that finds
# the three equal ends the poll (a batch of 100 rounds made the caller
# wait for every round after that one: over a second with 10,000
# objects). A login that fails on a node (one still starting) starts a
# new shell half a second later. Tries for 30 s; prints "DIGEST INDEX".
ch_digests() {
    local out
    printf 'servers = unix:%s, unix:%s, unix:%s\n' "$(cl_sock 1)" \
        "$(cl_sock 2)" "$(cl_sock 3)" >"$T/mgmt3.conf"
    out=$(NIMBUS_CONF=$T/mgmt3.conf python3 - "$CL_MGMT" \
        "loginHSM CO admin $CL_CO_PW" 30 2>"$T/digests.err" <<'PY'
import os, re, select, subprocess, sys, time
mgmt, login, limit = sys.argv[1], sys.argv[2], float(sys.argv[3])
end = time.monotonic() + limit
DIGEST = re.compile(r"^digest on server (\d+)\(.*\): ([0-9a-f]+) applied (\d+)$")


def lines(p, buf, want, pattern):
    """want lines matching pattern from p's output, or None by the end"""
    got = []
    while True:
        while b"\n" in buf[0]:
            line, buf[0] = buf[0].split(b"\n", 1)
            line = line.decode(errors="replace")
            if pattern.match(line):
                got.append(line)
                if len(got) == want:
                    return got
        left = end - time.monotonic()
        if left <= 0 or not select.select([p.stdout], [], [], left)[0]:
            return None
        b = os.read(p.stdout.fileno(), 65536)
        if not b:
            return None
        buf[0] += b


last = ""
while time.monotonic() < end:
    p = subprocess.Popen([mgmt, "-y"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    buf = [b""]
    try:
        p.stdin.write((login + "\n").encode())
        p.stdin.flush()
        got = lines(p, buf, 3, re.compile(r"^loginHSM "))
        if got is None or any(" success " not in l for l in got):
            last = "\n".join(got or ["loginHSM: no answer"])
            time.sleep(0.5)
            continue
        while time.monotonic() < end:
            p.stdin.write(b"getClusterDigest\n")
            p.stdin.flush()
            got = lines(p, buf, 3,
                        re.compile(r"^(digest on server|getClusterDigest)"))
            if got is None:
                break
            last = "\n".join(got)
            rows = [DIGEST.match(l) for l in got]
            if all(rows) and len({m.group(2, 3) for m in rows}) == 1:
                print(*rows[0].group(2, 3))
                sys.exit(0)
            time.sleep(0.05)
    finally:
        p.stdin.close()
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
print(last, file=sys.stderr)
sys.exit(1)
PY
    ) && [ -n "$out" ] && {
        echo "$out"
        return 0
    }
    out=$(NIMBUS_CONF=$T/mgmt3.conf timeout 20 "$CL_MGMT" -y -c \
        "loginHSM CO admin $CL_CO_PW; getClusterDigest; listNodes" 2>&1)
    fail "digests differ after recovery: $(cat "$T/digests.err")
$out"
}

# ch_round R: one round of faults under load, then the checks.
ch_round() {
    local r=$1 l f s n out pw cand
    ch_clients_start "$r"
    ch_all_progress

    l=$(ch_leader) || fail "round $r: no leader"
    echo "round $r: kill -9 of the leader, node $l"
    cl_kill "$l"
    ch_leader >/dev/null || fail "round $r: no new leader after killing $l"
    ch_all_progress
    ch_restart "$l"

    l=$(ch_leader) || fail "round $r: no leader"
    f=$((l % 3 + 1))
    echo "round $r: kill -9 of follower $f"
    cl_kill "$f"
    ch_all_progress
    ch_restart "$f"

    s=$((r % 3 + 1))
    echo "round $r: SIGSTOP of node $s for 3 s"
    kill -STOP "${CL_PID[$s]}"
    sleep 3
    kill -CONT "${CL_PID[$s]}"
    ch_all_progress
    ch_clients_stop

    ch_digests >"$T/digest" || return 1
    echo "round $r: digests equal: $(cat "$T/digest")"

    # bob's password: the one the client ended with (or, with a change
    # unresolved, the other) logs in on every node, the same on all
    read -r _ pw cand < <(grep '^final ' "$T/c2.log")
    [ -n "$pw" ] || fail "round $r: bob's client ended without a final line"
    # (node 1 first: one wrong password at most, lockout counts them)
    NIMBUS_CONF=$CL_DIR/n1/client.conf "$CHAOS" list bob "$pw" \
        >"$T/b1.list" 2>>"$T/list.err"
    if ! grep -q '^list CKR_OK' "$T/b1.list" && [ "$cand" != "-" ]; then
        pw=$cand
        NIMBUS_CONF=$CL_DIR/n1/client.conf "$CHAOS" list bob "$pw" \
            >"$T/b1.list" 2>>"$T/list.err"
    fi
    for n in 2 3; do
        NIMBUS_CONF=$CL_DIR/n$n/client.conf "$CHAOS" list bob "$pw" \
            >"$T/b$n.list" 2>>"$T/list.err"
    done
    for n in 1 2 3; do
        grep -q '^list CKR_OK' "$T/b$n.list" ||
            fail "round $r: bob's password $pw refused on node $n: $(tail -n 1 "$T/b$n.list")"
    done
    CH_BOB=$pw
    for n in 1 2 3; do
        NIMBUS_CONF=$CL_DIR/n$n/client.conf "$CHAOS" list alice "$CH_ALICE" \
            >"$T/a$n.list" 2>>"$T/list.err"
        grep -q '^list CKR_OK' "$T/a$n.list" ||
            fail "round $r: alice's list on node $n: $(tail -n 1 "$T/a$n.list")"
        ch_mgmt "$n" listUsers >"$T/u$n.list" ||
            fail "round $r: listUsers on node $n"
    done
    python3 - "$T" "$r" <<'EOF' || fail "round $r: the checks above"
import collections, sys
T, r = sys.argv[1], sys.argv[2]
def lines(f):
    return [l.split() for l in open(f"{T}/{f}") if l.strip()]
bad = []
def check(what, log, kind, prefix, visible_per_node):
    acked, tried = set(), set()
    for w in lines(log):
        if w[0] == kind:
            tried.add(w[1])
            if w[2] == "CKR_OK":
                acked.add(w[1])
    for n, vis in visible_per_node.items():
        mine = collections.Counter(v for v in vis if v.startswith(prefix))
        for v, c in mine.items():
            if c > 1:
                bad.append(f"{what} {v} is there {c} times on node {n}")
            if v not in tried:
                bad.append(f"{what} {v} on node {n} was never attempted")
        for a in acked - set(mine):
            bad.append(f"acknowledged {what} {a} missing on node {n}")
    inflight = len(tried - acked)
    print(f"round {r}: {what}: {len(acked)} acknowledged, {inflight} in flight")
def labels(f):
    return [w[1] for w in lines(f) if w[0] == "label" and not w[1].endswith("-sig")]
check("key", "c1.log", "key", f"r{r}-a-",
      {n: labels(f"a{n}.list") for n in (1, 2, 3)})
check("key", "c2.log", "key", f"r{r}-b-",
      {n: labels(f"b{n}.list") for n in (1, 2, 3)})
def users(f):
    return [w[2] for w in lines(f) if len(w) > 2 and w[2].startswith(f"r{r}u")]
check("user", "c3.log", "user", f"r{r}u", {n: users(f"u{n}.list") for n in (1, 2, 3)})
pw = [w for w in lines("c2.log") if w[0] == "pw"]
print(f"round {r}: password changes: {sum(w[2] == 'CKR_OK' for w in pw)} acknowledged, "
      f"{sum(w[2] != 'CKR_OK' for w in pw)} in flight")
for m in bad[:20]:
    print("FAIL:", m)
sys.exit(1 if bad else 0)
EOF
    # the password every node took is the last acknowledged change or one
    # made after it (in flight); never an older one
    python3 - "$T" "$pw" <<'EOF' || fail "round $r: bob's password went back"
import sys
T, used = sys.argv[1], sys.argv[2]
pw = [l.split() for l in open(f"{T}/c2.log") if l.startswith("pw ")]
ok = [i for i, w in enumerate(pw) if w[2] == "CKR_OK"]
if ok and used not in {w[1] for w in pw[ok[-1]:]}:
    print(f"bob logs in with {used}, older than the acknowledged {pw[ok[-1]][1]}")
    sys.exit(1)
EOF
    cp "$T/c1.log" "$T/round$r-c1.log"
}
