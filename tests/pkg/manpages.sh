#!/usr/bin/env bash
# manpages.sh - the man pages stay true to the code: every key that
# src/common/conf.c accepts has its entry in nimbus.conf(5), every command
# of nimbus-mgmt's table has its entry in nimbus-mgmt(1), every option of
# nimbusd (once it exists) is in nimbusd(8); and groff reads each page
# without a warning.
set -u
T=manpages
srcdir=${NIMBUS_TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
fail=0
bad() {
    echo "FAIL: $T: $*"
    fail=1
}

# A page documents WORD when an entry (.TP tag line) starts with it.
documented() {
    grep -Eq "^\.(B|BI|BR) \"?$2( |\"|\$)" "$1"
}

conf5=$srcdir/docs/nimbus.conf.5
keys=$(grep -oE 'strcmp\(key, "[a-z_0-9]+"\)' "$srcdir/src/common/conf.c" |
    sed -E 's/.*"(.*)".*/\1/' | sort -u)
[ "$(wc -w <<<"$keys")" -ge 20 ] || bad "found only $(wc -w <<<"$keys") keys in conf.c"
for k in $keys; do
    documented "$conf5" "$k" || bad "nimbus.conf.5 has no entry for key '$k'"
done
echo "ok: $(wc -w <<<"$keys") keys of conf.c checked in nimbus.conf.5"

mgmt1=$srcdir/docs/nimbus-mgmt.1
cmds=$(sed -n '/^const struct mgmt_cmd mgmt_commands\[\]/,/^};/p' \
    "$srcdir/src/mgmt/commands.c" | grep -oE '^ *\{"[A-Za-z_0-9]+"' |
    sed -E 's/.*"(.*)"/\1/')
[ "$(wc -w <<<"$cmds")" -ge 15 ] || bad "found only $(wc -w <<<"$cmds") commands"
for c in $cmds; do
    documented "$mgmt1" "$c" || bad "nimbus-mgmt.1 has no entry for command '$c'"
done
echo "ok: $(wc -w <<<"$cmds") commands of nimbus-mgmt checked in nimbus-mgmt.1"

# nimbusd: every option of its getopt_long table and option string
d=$srcdir/src/daemon/nimbusd.c
if [ -f "$d" ]; then
    page=$srcdir/docs/nimbusd.8
    [ -f "$page" ] || bad "src/daemon/nimbusd.c without docs/nimbusd.8"
    longs=$(grep -oE '\{"[a-z][a-z-]*", *(no|required|optional)_argument' "$d" |
        sed -E 's/\{"([^"]*)".*/--\1/')
    shorts=$(grep -oE 'getopt_long\([^"]*"[^"]*"' "$d" | sed -E 's/.*"(.*)"/\1/' |
        tr -d ':' | sed -E 's/(.)/-\1 /g')
    opts="$longs $shorts"
    [ "$(wc -w <<<"$opts")" -ge 4 ] || bad "found only options '$opts' in nimbusd.c"
    for o in $opts; do
        esc=$(sed 's/-/\\\\-/g' <<<"$o")
        grep -Eq "^\.(B|BI|BR) \"?$esc( |,|\"|\$)|^\.(B|BI|BR) .*, $esc( |\"|\$)" "$page" ||
            bad "nimbusd.8 has no entry for option '$o'"
    done
    echo "ok: $(wc -w <<<"$opts") options of nimbusd checked in nimbusd.8"
fi

if command -v groff >/dev/null 2>&1; then
    for p in "$srcdir"/docs/*.[1-8]; do
        w=$(groff -man -ww -z "$p" 2>&1)
        [ -z "$w" ] || bad "groff warns on $(basename "$p"): $w"
    done
    echo "ok: groff reads the pages without a warning"
else
    echo "groff not installed: pages not linted"
fi

# A hostile check of the checker itself: a key that is not in the page
# must be reported (else the loop above proves nothing).
if documented "$conf5" "no_such_key_xyz"; then
    bad "the entry matcher accepts a key that is not there"
fi
exit $fail
