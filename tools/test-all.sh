#!/bin/sh
# Every test: a warnings-as-errors build with the full suite (unit tests,
# PyTorch parity, data and checkpoint tests), then the unit tests again under
# AddressSanitizer + UndefinedBehaviorSanitizer.
set -eu
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)

meson setup build-ci --wipe -Dwerror=true -Dbuildtype=release >/dev/null 2>&1 ||
    meson setup build-ci -Dwerror=true -Dbuildtype=release
meson compile -C build-ci -j "$jobs"
meson test -C build-ci --print-errorlogs --num-processes 1
tools/check-install.sh build-ci

# Sanitizers: the C tests only (Python cannot load an ASan library without
# preloading the runtime). LSan ignores what oneDNN and OpenMP keep for the
# process lifetime; see tools/lsan.supp.
meson setup build-asan --wipe -Dwerror=true -Dbuildtype=debugoptimized -Db_sanitize=address,undefined \
    -Db_lundef=false -Dparity=disabled >/dev/null 2>&1 ||
    meson setup build-asan -Dwerror=true -Dbuildtype=debugoptimized -Db_sanitize=address,undefined \
        -Db_lundef=false -Dparity=disabled
meson compile -C build-asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
LSAN_OPTIONS=suppressions="$PWD/tools/lsan.supp":print_suppressions=0 \
    meson test -C build-asan --print-errorlogs --num-processes 1 --no-suite slow
