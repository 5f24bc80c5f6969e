#!/bin/sh
# The package as a user gets it: `meson install` into a staging root, then a
# program built with `pkg-config --cflags --libs vit` alone. vit.pc locates
# itself (${pcfiledir}), so PKG_CONFIG_PATH is all it needs: its -I and -L
# must name directories inside the staging root. Then the same from the build
# tree through vit-uninstalled.pc.
set -eu
build=${1:-build-ci}
case $build in /*) ;; *) build="$PWD/$build" ;; esac
stage="$build/staging"
rm -rf "$stage"
DESTDIR="$stage" meson install -C "$build" --quiet >/dev/null
stage_real=$(cd "$stage" && pwd -P)
fail() { echo "check-install: $*" >&2; exit 1; }

pc=$(find "$stage" -name vit.pc | head -n 1)
[ -n "$pc" ] || fail "no vit.pc under $stage"
flags=$(env -u PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_PATH="$(dirname "$pc")" pkg-config --cflags --libs vit)
incdir="" libdir=""
for f in $flags; do
    case $f in
        -I* | -L*) dir=${f#-?} ;;
        *) continue ;;
    esac
    real=$(cd "$dir" 2>/dev/null && pwd -P) || fail "$f: no such directory ($pc)"
    case $real/ in
        "$stage_real"/*) ;;
        *) fail "$f is outside the staging root $stage ($pc)" ;;
    esac
    case $f in
        -I*) [ -f "$real/vit/vit.h" ] && incdir=$real ;;
        -L*) [ -e "$real/libvit.so" ] && libdir=$real ;;
    esac
done
[ -n "$incdir" ] || fail "no -I with vit/vit.h in: $flags"
[ -n "$libdir" ] || fail "no -L with libvit.so in: $flags"
# shellcheck disable=SC2086
cc -std=c99 -pedantic -Werror tests/core/header_only.c $flags -o "$build/installed_check"
LD_LIBRARY_PATH="$libdir" "$build/installed_check"
echo "installed package: pkg-config --cflags --libs vit -> $flags"

flags=$(PKG_CONFIG_PATH="$build/pkgconfig" pkg-config --cflags --libs vit)
case $flags in
    *"$build/libvit"*) ;;
    *) fail "build tree: vit-uninstalled.pc not used: $flags" ;;
esac
# shellcheck disable=SC2086
cc -std=c11 tests/core/header_only.c $flags -o "$build/uninstalled_check"
LD_LIBRARY_PATH="$build/libvit" "$build/uninstalled_check"
echo "build tree: pkg-config (vit-uninstalled.pc) works"
