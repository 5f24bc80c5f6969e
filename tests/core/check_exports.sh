#!/bin/sh
# libvit.so exports only vit_* symbols (plus its version node), and its SONAME is libvit.so.<major>.
lib="$1"
bad=$(nm -D --defined-only "$lib" | awk '{print $3}' | sed 's/@.*//' | grep -v '^vit_')
if [ -n "$bad" ]; then
    echo "symbols outside the vit_ namespace:"; echo "$bad"; exit 1
fi
soname=$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
case "$soname" in
    libvit.so.[0-9]*) ;;
    *) echo "unexpected SONAME '$soname'"; exit 1 ;;
esac
count=$(nm -D --defined-only "$lib" | grep -c ' T vit_')
echo "$count exported vit_* functions, SONAME $soname"
