#!/bin/sh
# Every test (docs/reliability.md says what each guarantees):
#   1. a warnings-as-errors build with debug info and the CUDA module
#      (-Dcuda=enabled: its host-only tests run, its GPU tests report
#      themselves skipped without a GPU) and the full suite (unit
#      tests once per CPU ISA level, PyTorch parity, data, checkpoints,
#      programs, fault injection, kill-and-resume), the install check, the
#      ABI check against abi/, and valgrind on vit-train and vit-predict;
#   2. the C tests again under AddressSanitizer + UndefinedBehaviorSanitizer,
#      built without CUDA (-Dcuda=disabled: the CPU-only configuration);
#   3. two contexts on two threads under ThreadSanitizer;
#   4. every file parser under libFuzzer for FUZZ_SECONDS each (60).
set -eu
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)

# setup DIR OPTIONS...: a fresh meson build folder.
setup() {
    dir=$1
    shift
    meson setup "$dir" --wipe "$@" >/dev/null 2>&1 || meson setup "$dir" "$@"
}

setup build-ci -Dwerror=true -Dbuildtype=release -Ddebug=true -Dcuda=enabled
meson compile -C build-ci -j "$jobs"
meson test -C build-ci --print-errorlogs --num-processes 1
tools/check-install.sh build-ci
tools/check-abi.sh build-ci
tools/valgrind-check.sh build-ci

# Sanitizers: the C tests only (Python cannot load an ASan library without
# preloading the runtime), in a build without MPI: LeakSanitizer would report
# what Open MPI keeps for the process lifetime, and a build without MPI (one
# rank; more refused) is tested there (docs/distributed.md). LSan ignores
# what oneDNN and OpenMP keep for the process lifetime; see tools/lsan.supp.
setup build-asan -Dwerror=true -Dbuildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false \
    -Dparity=disabled -Dmpi=disabled -Dcuda=disabled
meson compile -C build-asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
LSAN_OPTIONS=suppressions="$PWD/tools/lsan.supp":print_suppressions=0 \
    meson test -C build-asan --print-errorlogs --num-processes 1 --no-suite slow

# ThreadSanitizer: each context's OpenMP team at one thread (libgomp is not
# instrumented); what oneDNN's own locks guard is suppressed (tools/tsan.supp).
setup build-tsan -Dbuildtype=debugoptimized -Db_sanitize=thread -Db_lundef=false -Dparity=disabled -Dcuda=disabled
meson compile -C build-tsan -j "$jobs" tests/reliability/test_threads
VIT_TEST_CONTEXT_THREADS=1 OMP_NUM_THREADS=1 \
TSAN_OPTIONS="halt_on_error=1:suppressions=$PWD/tools/tsan.supp" \
    build-tsan/tests/reliability/test_threads

tools/fuzz.sh --seconds "${FUZZ_SECONDS:-60}"
