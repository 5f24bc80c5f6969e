#!/bin/sh
# The package as a user gets it: `meson install` into a staging root, then a
# program built with `pkg-config --cflags --libs vit` alone; and the same from
# the build tree through meson-uninstalled.
set -eu
build=${1:-build-ci}
stage="$PWD/$build/staging"
rm -rf "$stage"
DESTDIR="$stage" meson install -C "$build" --quiet >/dev/null
pcdir=$(dirname "$(find "$stage" -name vit.pc | head -n 1)")
libdir=$(dirname "$(find "$stage" -name 'libvit.so.0' | head -n 1)")
flags=$(PKG_CONFIG_SYSROOT_DIR="$stage" PKG_CONFIG_PATH="$pcdir" pkg-config --cflags --libs vit)
# shellcheck disable=SC2086
cc -std=c99 -pedantic -Werror tests/core/header_only.c $flags -o "$build/installed_check"
LD_LIBRARY_PATH="$libdir" "$build/installed_check"
echo "installed package: pkg-config --cflags --libs vit -> $flags"

flags=$(PKG_CONFIG_PATH="$PWD/$build/meson-uninstalled" pkg-config --cflags --libs vit)
# shellcheck disable=SC2086
cc -std=c11 tests/core/header_only.c $flags -o "$build/uninstalled_check"
LD_LIBRARY_PATH="$PWD/$build/libvit" "$build/uninstalled_check"
echo "build tree: pkg-config (meson-uninstalled) works"
