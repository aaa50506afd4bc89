#!/bin/bash
# p11kit.sh - `make install` puts the module in $(libdir)/pkcs11, the vendor
# header under $(includedir) and nimbus.module where p11-kit reads module
# configs; with that file in place `p11-kit list-modules` shows Nimbus and
# its token, and p11-kit-proxy.so exposes the token.
#
# The install goes to a DESTDIR. To show p11-kit the installed file without
# writing to the system, the test bind-mounts a copy of p11-kit's module
# directory (plus nimbus.module) over the real one in a private mount
# namespace: that needs root and unshare, else the p11-kit part is SKIP.
# Exit: 0 pass, 1 fail, 77 skip, 99 hard error.
set -u
top=${NIMBUS_TOP_BUILDDIR:-$(cd "$(dirname "$0")/../.." && pwd)}

for tool in p11-kit pkg-config make; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "SKIP: p11kit: $tool is not installed"
        exit 77
    fi
done
dir=$(mktemp -d "${TMPDIR:-/tmp}/nimbus-p11kit.XXXXXX") || exit 99
trap 'rm -rf "$dir"' EXIT
dest=$dir/dest

if ! make -s -C "$top" install DESTDIR="$dest" >"$dir/install.log" 2>&1; then
    echo "FAIL: p11kit: make install failed"
    cat "$dir/install.log"
    exit 1
fi
# where this build installs it (configure asks p11-kit-1.pc by default)
moddir=${NIMBUS_P11KIT_MODULE_DIR:-$(pkg-config --variable=p11_module_configs p11-kit-1)}
conf=$dest$moddir/nimbus.module
if [ ! -f "$conf" ]; then
    echo "FAIL: p11kit: nimbus.module is not in $moddir"
    find "$dest" -type f
    exit 1
fi
so=$(sed -n 's/^module: *//p' "$conf")
case $so in
*/pkcs11/libnimbus-pkcs11.so) ;;
*)
    echo "FAIL: p11kit: nimbus.module names '$so', not \$(libdir)/pkcs11"
    exit 1
    ;;
esac
if [ ! -f "$dest$so" ]; then
    echo "FAIL: p11kit: the module is not installed at $so"
    exit 1
fi
if [ -z "$(find "$dest" -path '*/include/nimbus/pkcs11-vendor.h')" ]; then
    echo "FAIL: p11kit: the vendor header is not installed"
    exit 1
fi
echo "installed: $so, $moddir/nimbus.module, include/nimbus/pkcs11-vendor.h"

if [ "$(id -u)" -ne 0 ] || ! command -v unshare >/dev/null 2>&1 ||
    ! unshare -m true 2>/dev/null; then
    echo "SKIP: p11kit: no private mount namespace here (needs root and" \
        "unshare): p11-kit list-modules not checked"
    exit 77
fi
mkdir -p "$dir/modules"
sysdir=$(pkg-config --variable=p11_module_configs p11-kit-1)
cp "$sysdir"/*.module "$dir/modules/" 2>/dev/null
sed "s|^module: .*|module: $dest$so|" "$conf" >"$dir/modules/nimbus.module"
printf 'store = %s/store\nkdf_iterations = 1000\nlabel = p11kit-test\n' \
    "$dir" >"$dir/nimbus.conf"
export NIMBUS_CONF=$dir/nimbus.conf
proxy=$(ls /usr/lib/*/p11-kit-proxy.so /usr/lib/p11-kit-proxy.so 2>/dev/null |
    head -n 1)
unshare -m /bin/sh -c '
    mount --bind "$1" "$2" || exit 99
    p11-kit list-modules > "$3/list.out" 2>&1
    if [ -n "$4" ] && command -v pkcs11-tool >/dev/null 2>&1; then
        pkcs11-tool --module "$4" -L > "$3/proxy.out" 2>&1
    fi
    exit 0' sh "$dir/modules" "$sysdir" "$dir" "$proxy"
fail=0
if ! grep -q '^nimbus:' "$dir/list.out" || ! grep -q 'p11kit-test' "$dir/list.out"; then
    echo "FAIL: p11kit: list-modules does not show nimbus and its token"
    cat "$dir/list.out"
    fail=1
else
    echo "p11-kit list-modules shows nimbus and its token"
fi
if [ -f "$dir/proxy.out" ]; then
    if grep -q 'Nimbus HSM slot' "$dir/proxy.out"; then
        echo "p11-kit-proxy.so exposes the token"
    else
        echo "FAIL: p11kit: p11-kit-proxy.so does not expose the token"
        cat "$dir/proxy.out"
        fail=1
    fi
else
    echo "note: p11-kit-proxy.so or pkcs11-tool missing: proxy not checked"
fi
exit $fail
