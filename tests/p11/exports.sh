#!/bin/bash
# exports.sh - the module exports exactly the three PKCS#11 entry points
# C_GetFunctionList, C_GetInterfaceList and C_GetInterface, and nothing else
# (no internal mod_/hsm_/store_/crypto_ function, no data symbol).
#
# Environment (set by make check): NIMBUS_MODULE, NIMBUS_TOP_BUILDDIR.
# Exit: 0 pass, 1 fail, 77 skip (nm missing), 99 hard error (no module).
set -u

top=${NIMBUS_TOP_BUILDDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
module=${NIMBUS_MODULE:-$top/.libs/libnimbus-pkcs11.so}

if ! command -v nm >/dev/null 2>&1; then
    echo "SKIP: exports: nm (binutils) not found"
    exit 77
fi
if [ ! -f "$module" ]; then
    echo "ERROR: exports: module $module not built"
    exit 99
fi

if ! syms=$(nm -D --defined-only "$module"); then
    echo "ERROR: exports: nm -D --defined-only $module failed"
    exit 99
fi

want="C_GetFunctionList C_GetInterface C_GetInterfaceList"
fail=0

# nm -D prints "ADDRESS TYPE NAME"; type A marks version nodes, which are
# not symbols of the module's code.
funcs=$(printf '%s\n' "$syms" | awk 'NF == 3 && $2 ~ /^[TtWwiI]$/ { print $3 }' |
    sed 's/@.*//' | sort -u)
others=$(printf '%s\n' "$syms" | awk 'NF == 3 && $2 !~ /^[TtWwiIA]$/ { print $2, $3 }')

for name in $want; do
    if ! printf '%s\n' "$funcs" | grep -qx "$name"; then
        echo "FAIL: exports: $name is not exported"
        fail=1
    fi
done
for name in $funcs; do
    case " $want " in
    *" $name "*) ;;
    _init | _fini) ;; # ELF constructor glue, not part of the API
    *)
        echo "FAIL: exports: unexpected exported function $name"
        fail=1
        ;;
    esac
done
if [ -n "$others" ]; then
    printf '%s\n' "$others" | while read -r type name; do
        case "$name" in
        _edata | _end | __bss_start) ;; # linker boundary markers
        *) echo "FAIL: exports: unexpected exported data symbol $name ($type)" ;;
        esac
    done | grep . && fail=1
fi

if [ "$fail" -ne 0 ]; then
    echo "exports: the dynamic symbol table of $module:"
    printf '%s\n' "$syms"
    exit 1
fi
echo "PASS: exports: only $want"
exit 0
