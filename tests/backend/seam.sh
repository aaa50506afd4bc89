#!/bin/bash
# seam.sh - the PKCS#11 front end and nimbus-mgmt reach the HSM only through
# the backend seam (src/backend/backend.h): no object file of theirs refers
# to a symbol the core (src/hsm) defines. Only src/backend/embedded.c calls
# the core; the check is shown to bite by finding those calls in its object.
#
# Environment (set by make check): NIMBUS_TOP_BUILDDIR. Exit: 0 pass,
# 1 fail, 77 skip (nm missing), 99 hard error.
set -u

top=${NIMBUS_TOP_BUILDDIR:-$(cd "$(dirname "$0")/../.." && pwd)}

if ! command -v nm >/dev/null 2>&1; then
    echo "SKIP: seam: nm (binutils) not found"
    exit 77
fi

# The core's symbols: what the objects of src/hsm (not its crypto/
# subdirectory) define. The mechanism codec (src/common/mechparam.c) is
# shared by the front end, the wire and the core, and is not among them.
core_syms=$(find "$top/src/hsm" -maxdepth 2 -name '*.o' ! -path '*/crypto/*' \
    -exec nm -g --defined-only {} + 2>/dev/null | awk 'NF == 3 { print $3 }' |
    sort -u)
if ! grep -qx hsm_open <<<"$core_syms"; then
    echo "ERROR: seam: no core objects under $top/src/hsm (build first)"
    exit 99
fi

# Core symbols an object file uses without defining them.
core_refs() {
    nm -u "$1" 2>/dev/null | awk '{ print $NF }' | sort -u |
        comm -12 - <(printf '%s\n' "$core_syms") || true
}

fail=0
for dir in src/pkcs11 src/mgmt src/backend; do
    objs=$(find "$top/$dir" -name '*.o' 2>/dev/null | sort)
    if [ -z "$objs" ]; then
        echo "ERROR: seam: no object files under $top/$dir (build first)"
        exit 99
    fi
done

for o in $(find "$top/src/pkcs11" "$top/src/mgmt" -name '*.o' | sort); do
    refs=$(core_refs "$o")
    if [ -n "$refs" ]; then
        echo "FAIL: seam: ${o#"$top"/} calls the core directly:" $refs
        fail=1
    fi
done

# The other half: the backend's other files do not call the core either,
# and embedded.c does (else the check above proves nothing).
emb=0
for o in $(find "$top/src/backend" -name '*.o' | sort); do
    refs=$(core_refs "$o")
    case $(basename "$o") in
    *embedded.o)
        [ -n "$refs" ] && emb=1
        ;;
    *)
        if [ -n "$refs" ]; then
            echo "FAIL: seam: ${o#"$top"/} calls the core:" $refs
            fail=1
        fi
        ;;
    esac
done
if [ "$emb" != 1 ]; then
    echo "FAIL: seam: embedded.c's object calls no core function"
    fail=1
fi

[ "$fail" = 0 ] && echo "PASS: seam: only src/backend/embedded.c calls the core"
exit $fail
