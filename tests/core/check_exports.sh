#!/bin/sh
# libvit.so exports exactly the VIT_API functions of the public headers (no
# more: nothing internal leaks; no less: every declared function links), and
# its SONAME is libvit.so.<major>.
#   check_exports.sh LIBRARY INCLUDE_DIR
set -eu
lib="$1" inc="$2"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRV]$/ {print $3}' | sed 's/@.*//' | sort -u >"$tmp/exported"
# A declaration may span lines: drop preprocessor lines, join the rest, and
# take the name before the first '(' of every VIT_API declaration.
for h in "$inc"/vit/*.h; do
    grep -v '^[[:space:]]*#' "$h" | tr '\n' ' ' | grep -o 'VIT_API[^;(]*(' | sed 's/[[:space:]]*($//; s/.*[ *]//' || true
done | sort -u >"$tmp/declared"
status=0
if grep -v '^vit_' "$tmp/exported" >"$tmp/outside"; then
    echo "symbols outside the vit_ namespace:"; cat "$tmp/outside"; status=1
fi
if [ -n "$(comm -23 "$tmp/declared" "$tmp/exported")" ]; then
    echo "declared VIT_API but not exported:"; comm -23 "$tmp/declared" "$tmp/exported"; status=1
fi
if [ -n "$(comm -13 "$tmp/declared" "$tmp/exported")" ]; then
    echo "exported but not declared VIT_API in $inc/vit:"; comm -13 "$tmp/declared" "$tmp/exported"; status=1
fi
soname=$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
case "$soname" in
    libvit.so.[0-9]*) ;;
    *) echo "unexpected SONAME '$soname'"; status=1 ;;
esac
[ "$status" -eq 0 ] || exit 1
echo "$(wc -l <"$tmp/exported") exported symbols: exactly the VIT_API functions of $inc/vit; SONAME $soname"
