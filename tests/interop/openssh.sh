#!/bin/bash
# openssh.sh - OpenSSH logs in with an RSA-2048 and an EC P-256 key on the
# token: a loopback sshd (its own config, host key and AuthorizedKeysFile
# in the test directory, StrictModes no, run as root with -D -e) accepts
#   - `ssh -I MODULE` (the client loads the module itself), and
#   - keys that `ssh-add -s MODULE` put into an ssh-agent the test starts
#     (the agent's PKCS#11 helper loads the module),
# each once with the RSA key only and once with the EC key only
# (PubkeyAcceptedAlgorithms), running the remote command `echo ok`. The
# PIN (alice:<password>) comes from an SSH_ASKPASS script
# (SSH_ASKPASS_REQUIRE=force). The public keys for authorized_keys are the
# token's, exported by pkcs11-tool; sshd's log must show each login with
# that key's fingerprint. A wrong PIN gets no login.
#
# `ssh -I` looks for the token's public keys before it logs in, and logs in
# (asking for the PIN) when it finds none; ssh-add -s logs in first. The
# keys ssh offers are the module's alone: no agent for ssh -I, no key
# files (IdentityFile none), and IdentitiesOnly is left off, since it would
# drop the PKCS#11 keys too.
# Exit: 0 pass, 1 fail, 77 skip, 99 hard error.
T=openssh
. "$(dirname "$0")/common.sh"

SSHD=$(command -v sshd || ls /usr/sbin/sshd 2>/dev/null)
[ -n "$SSHD" ] && [ -x "$SSHD" ] ||
    skip "sshd is not installed (apt-get install openssh-server)"
need_cmd ssh openssh-client
need_cmd ssh-agent openssh-client
need_cmd ssh-add openssh-client
need_cmd ssh-keygen openssh-client
need_cmd pkcs11-tool opensc
[ "$(id -u)" -eq 0 ] || skip "sshd must run as root to accept logins"
interop_setup
fresh_store "$tmp" alice "$ALICE_PW"
PIN=alice:$ALICE_PW
S=$tmp/ssh
mkdir -p "$S"
cd "$S" || die "cd $S"

u() { t 60 pkcs11-tool --module "$MODULE" --login --pin "$PIN" "$@"; }
for k in "rsa:2048 31 ssh-rsa" "EC:prime256v1 32 ssh-ec"; do
    set -- $k
    u --keypairgen --key-type "$1" --id "$2" --label "$3" >/dev/null 2>&1 ||
        die "pkcs11-tool could not generate $3"
    u --read-object --type pubkey --id "$2" -o "$3.der" >/dev/null 2>&1 &&
        openssl pkey -pubin -inform DER -in "$3.der" -out "$3.pem" &&
        ssh-keygen -i -m PKCS8 -f "$3.pem" >"$3.pub" ||
        die "cannot export the $3 public key"
done
cat ssh-rsa.pub ssh-ec.pub >authorized_keys
fp() { ssh-keygen -l -E sha256 -f "$1" | awk '{ print $2 }'; }
FP_RSA=$(fp ssh-rsa.pub)
FP_EC=$(fp ssh-ec.pub)

printf '#!/bin/sh\necho "%s"\n' "$PIN" >askpass
printf '#!/bin/sh\necho "alice:wrong-pw-9"\n' >askpass-wrong
chmod 700 askpass askpass-wrong
ssh-keygen -q -t ed25519 -N '' -f host_ed25519 || die "host key"
# sshd refuses to start without its privilege separation directory
[ -d /run/sshd ] || mkdir -p -m 0755 /run/sshd || die "cannot make /run/sshd"

start_sshd() {
    PORT=$(free_port)
    cat >sshd_config <<EOF
Port $PORT
ListenAddress 127.0.0.1
HostKey $S/host_ed25519
PidFile $S/sshd.pid
AuthorizedKeysFile $S/authorized_keys
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
AllowUsers root
LogLevel VERBOSE
EOF
    : >sshd.log
    bg_start "$SSHD" -D -e -f "$S/sshd_config" 2>"$S/sshd.log"
    sshd_pid=$bg_pid
    server_up "$sshd_pid" sshd.log "$PORT"
}
with_free_ports start_sshd || {
    bad "sshd did not start" "$(cat sshd.log)"
    finish
}
ok "sshd listens on 127.0.0.1:$PORT"
echo "[127.0.0.1]:$PORT $(cut -d' ' -f1,2 host_ed25519.pub)" >known_hosts

# s ALGORITHMS ASKPASS ARGS...: ssh root@127.0.0.1 echo ok (ssh takes an
# option's first value: ARGS come first)
s() {
    local algs=$1 ap=$2
    shift 2
    SSH_ASKPASS=$S/$ap SSH_ASKPASS_REQUIRE=force DISPLAY=none \
        t 60 ssh -F /dev/null "$@" -p "$PORT" \
        -o UserKnownHostsFile="$S/known_hosts" -o StrictHostKeyChecking=yes \
        -o PasswordAuthentication=no -o KbdInteractiveAuthentication=no \
        -o IdentityFile=none \
        -o PubkeyAcceptedAlgorithms="$algs" -o ConnectTimeout=20 \
        root@127.0.0.1 echo ok </dev/null
}
RSA_ALGS=rsa-sha2-512,rsa-sha2-256
EC_ALGS=ecdsa-sha2-nistp256
# accepted WHAT FINGERPRINT: sshd logged a new login with that key
accepted() {
    local n
    n=$(grep "Accepted publickey for root from 127.0.0.1 " sshd.log |
        grep -cF "$2")
    if [ "$n" -gt "${seen[$2]:-0}" ]; then
        ok "$1: sshd accepted the token key $2"
    else
        bad "$1: sshd logged no login with $2" "$(tail -n 20 sshd.log)"
    fi
    seen[$2]=$n
}
declare -A seen

# ssh-keygen -D lists the same public keys (it asks for the PIN when the
# module shows none before login)
out=$(SSH_ASKPASS=$S/askpass SSH_ASKPASS_REQUIRE=force DISPLAY=none \
    t 60 ssh-keygen -D "$MODULE" </dev/null 2>&1)
for n in ssh-rsa ssh-ec; do
    if grep -qF "$(cut -d' ' -f2 "$n.pub")" <<<"$out"; then
        ok "ssh-keygen -D MODULE lists the token's $n key"
    else
        bad "ssh-keygen -D MODULE does not list the $n key" "$out"
    fi
done

# ------------------------------------------------------------ ssh-agent
bg_start ssh-agent -D -a "$S/agent.sock" -P "$(realpath "$MODULE")" \
    >agent.log 2>&1
for _ in $(seq 1 50); do
    [ -S "$S/agent.sock" ] && break
    sleep 0.1
done
[ -S "$S/agent.sock" ] || die "ssh-agent did not start: $(cat agent.log)"
export SSH_AUTH_SOCK=$S/agent.sock
out=$(SSH_ASKPASS=$S/askpass-wrong SSH_ASKPASS_REQUIRE=force DISPLAY=none \
    t 60 ssh-add -s "$MODULE" </dev/null 2>&1)
check_not "ssh-add -s with a wrong PIN adds nothing" "$(ssh-add -l 2>&1)" \
    "RSA|ECDSA"
out=$(SSH_ASKPASS=$S/askpass SSH_ASKPASS_REQUIRE=force DISPLAY=none \
    t 60 ssh-add -s "$MODULE" </dev/null 2>&1)
check "ssh-add -s MODULE" "$out" "Card added"
out=$(ssh-add -l 2>&1)
check "the agent holds the token's RSA key" "$(grep -F "$FP_RSA" <<<"$out")" \
    "\(RSA\)$"
check "the agent holds the token's EC key" "$(grep -F "$FP_EC" <<<"$out")" \
    "\(ECDSA\)$"
for k in "RSA $RSA_ALGS $FP_RSA" "EC $EC_ALGS $FP_EC"; do
    set -- $k
    out=$(s "$2" askpass -o IdentityAgent="$S/agent.sock" 2>&1)
    check "agent, $1 key: ssh ... echo ok" "$out" "^ok$"
    accepted "agent, $1 key" "$3"
done
unset SSH_AUTH_SOCK

# ------------------------------------------------------------ ssh -I
for k in "RSA $RSA_ALGS $FP_RSA" "EC $EC_ALGS $FP_EC"; do
    set -- $k
    out=$(s "$2" askpass -o IdentityAgent=none -I "$MODULE" 2>&1)
    check "ssh -I MODULE, $1 key: echo ok" "$out" "^ok$"
    accepted "ssh -I, $1 key" "$3"
done
out=$(s "$RSA_ALGS" askpass-wrong -o IdentityAgent=none -I "$MODULE" 2>&1)
check_not "ssh -I with a wrong PIN does not log in" "$out" "^ok$"

finish
