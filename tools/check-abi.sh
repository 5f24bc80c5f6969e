#!/bin/sh
# The ABI of the built libvit.so.0 against the baseline kept in abi/:
#   tools/check-abi.sh BUILD            compare (BUILD configured with -Ddebug=true)
#   tools/check-abi.sh BUILD --update   rewrite the baseline (see docs/reliability.md)
# Fails on any removed or changed function or variable, or a changed type
# reachable from one (an enumerator's value, a parameter's type, a struct's
# layout); additions (functions, enumerators) pass. abidiff (Debian's
# abigail-tools) reads the public types from include/vit only.
set -eu
cd "$(dirname "$0")/.."
build=${1:?usage: tools/check-abi.sh BUILD [--update]}
baseline=abi/libvit.so.0.abi
lib=$(find "$build/libvit" -maxdepth 1 -name 'libvit.so.*.*.*' -type f | head -n 1)
[ -n "$lib" ] || { echo "check-abi: no libvit.so.X.Y.Z in $build/libvit" >&2; exit 1; }
if ! readelf --debug-dump=info "$lib" 2>/dev/null | grep -q DW_TAG_compile_unit; then
    echo "check-abi: $lib has no debug info; configure $build with -Ddebug=true" >&2
    exit 1
fi
if [ "${2:-}" = --update ]; then
    abidw --no-corpus-path --no-show-locs --headers-dir include/vit --drop-private-types --out-file "$baseline" "$lib"
    echo "check-abi: $baseline rewritten from $lib"
    exit 0
fi
soname=$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
case "$baseline" in
    */"$soname".abi) ;;
    *) echo "check-abi: the library's SONAME is $soname but the baseline is $baseline: a new major" \
            "version starts a new baseline (tools/check-abi.sh BUILD --update, renamed)" >&2
       exit 1 ;;
esac
report=$(mktemp)
trap 'rm -f "$report"' EXIT
set +e
abidiff --no-show-locs --headers-dir2 include/vit "$baseline" "$lib" >"$report" 2>&1
rc=$?
set -e
# abidiff's status is a bit set: 1 error, 2 usage error, 4 ABI change, 8 incompatible change.
removed_or_changed=$(sed -n 's/.*changes summary: \([0-9]*\) Removed[^,]*, \([0-9]*\) Changed.*/\1 \2/p' "$report" |
    awk '{s += $1 + $2} END {print s + 0}')
if [ $((rc & 3)) -ne 0 ] || [ $((rc & 8)) -ne 0 ] || [ "$removed_or_changed" -ne 0 ]; then
    cat "$report"
    echo "check-abi: FAILED: $lib is not ABI-compatible with $baseline (abidiff status $rc)" >&2
    exit 1
fi
sed -n '/changes summary/p' "$report"
echo "check-abi: $lib is compatible with $baseline"
