#!/usr/bin/env bash
# Checks clang-format on the lines changed against a base revision
# (default: origin/main if it exists, else HEAD~1). Exit 1 on a difference.
set -euo pipefail
top=${1:-.}
cd "$top"
base=${NIMBUS_STYLE_BASE:-}
if [ -z "$base" ]; then
    if git rev-parse -q --verify origin/main >/dev/null; then
        base=origin/main
    elif git rev-parse -q --verify HEAD~1 >/dev/null; then
        base=HEAD~1
    else
        base=$(git hash-object -t tree /dev/null)
    fi
fi
if ! command -v clang-format >/dev/null; then
    echo "check-style: clang-format is not installed: skipping" >&2
    exit 0
fi
cf_diff=$(command -v clang-format-diff || command -v clang-format-diff-14 ||
          ls /usr/share/clang/clang-format-*/clang-format-diff.py 2>/dev/null |
          head -n 1 || true)
if [ -z "$cf_diff" ]; then
    echo "check-style: clang-format-diff not found: skipping" >&2
    exit 0
fi
out=$(git diff -U0 --no-color "$base" -- '*.c' '*.h' |
      python3 "$cf_diff" -p1 -style=file 2>/dev/null || true)
if [ -n "$out" ]; then
    printf '%s\n' "$out"
    echo "check-style: the lines above are not formatted as .clang-format says"
    exit 1
fi
echo "check-style: changed lines are formatted"
