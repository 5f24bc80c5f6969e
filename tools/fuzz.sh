#!/bin/sh
# Coverage-guided fuzzing of every reader of outside data with libFuzzer,
# under AddressSanitizer + UndefinedBehaviorSanitizer (LeakSanitizer on).
#
#   tools/fuzz.sh [-t|--seconds SECONDS] [-b|--build BUILD_DIR] [TARGET...]
#
# Builds libvit's internal archive with clang in BUILD_DIR (default
# build-fuzz, configured on first use, rebuilt incrementally), links each
# target of tests/fuzz/fuzz_<TARGET>.c against it, and runs the targets one
# after the other for SECONDS each (default 60, or $FUZZ_SECONDS), starting
# from the seed corpus tests/fuzz/corpus/<TARGET>/ (copied: the repository's
# corpus is not modified) and the regression inputs tests/fuzz/regress/<TARGET>/.
# Prints the executions per target; exits 1 if any target found a crash, a
# leak, a timeout (-timeout=10 s per input) or an out-of-memory (2 GiB), and
# keeps the input that did it in BUILD_DIR/fuzz/artifacts/<TARGET>/. A fixed
# finding's input goes into tests/fuzz/regress/<TARGET>/, where the normal
# test suite replays it (tests/fuzz/replay.c).
#
# Needs clang and libFuzzer (Debian: clang libclang-rt-14-dev libomp-dev).
set -eu
cd "$(dirname "$0")/.."
src=$PWD

usage() {
    sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}
seconds=${FUZZ_SECONDS:-60}
build="build-fuzz"
while [ $# -gt 0 ]; do
    case $1 in
        -t|--seconds) [ $# -ge 2 ] || usage; seconds=$2; shift 2 ;;
        --seconds=*) seconds=${1#*=}; shift ;;
        -b|--build) [ $# -ge 2 ] || usage; build=$2; shift 2 ;;
        --build=*) build=${1#*=}; shift ;;
        -h|--help) usage ;;
        --) shift; break ;;
        -*) usage ;;
        *) break ;;
    esac
done
case $build in /*) ;; *) build=$src/$build ;; esac
# (0 would be libFuzzer's "no limit")
case $seconds in ''|*[!0-9]*|0) echo "$0: -t wants whole seconds, at least 1, got '$seconds'" >&2; exit 2 ;; esac

all_targets=""
for f in tests/fuzz/fuzz_*.c; do
    f=${f#tests/fuzz/fuzz_}
    all_targets="$all_targets ${f%.c}"
done
targets=${*:-$all_targets}
for t in $targets; do
    [ -f "tests/fuzz/fuzz_$t.c" ] || { echo "$0: no target '$t' (targets:$all_targets)" >&2; exit 2; }
done

# Largest input per target: room for every seed and for growth, small
# enough that each execution stays fast.
max_len() {
    case $1 in
        json|folder) echo 4096 ;;
        safetensors|idx) echo 16384 ;;
        png|jpeg|cifar_bin) echo 24576 ;;
        *) echo 32768 ;;
    esac
}

command -v clang >/dev/null 2>&1 || { echo "$0: clang not found (Debian: apt-get install clang libclang-rt-14-dev libomp-dev)" >&2; exit 1; }
if ! echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return (int)(d && n); }' |
    clang -x c -fsanitize=fuzzer,address,undefined -o /dev/null - >/dev/null 2>&1; then
    echo "$0: clang cannot link libFuzzer with ASan/UBSan (Debian: apt-get install libclang-rt-14-dev)" >&2
    exit 1
fi

# The library: the same sources and flags as any build, plus the sanitizers
# and coverage instrumentation (fuzzer-no-link) of the readers' sources
# (tests/fuzz/coverage.allow), without MPI (the fuzzers link the archive with
# the libraries listed below only).
cov="-fsanitize=fuzzer-no-link -fsanitize-coverage-allowlist=$src/tests/fuzz/coverage.allow"
if [ ! -f "$build/build.ninja" ]; then
    CC=clang meson setup "$build" -Dcuda=disabled -Dbuildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false \
        -Dc_args="$cov" -Dexamples=false -Dparity=disabled -Dmpi=disabled >"$build.setup.log" 2>&1 ||
        { cat "$build.setup.log" >&2; exit 1; }
    rm -f "$build.setup.log"
else
    meson configure "$build" -Dc_args="$cov" -Dmpi=disabled >/dev/null
fi
jobs=$(nproc 2>/dev/null || echo 2)
ninja -C "$build" -j "$jobs" libvit/libvit_internal.a >/dev/null || ninja -C "$build" -j 1 libvit/libvit_internal.a
archive=$build/libvit/libvit_internal.a

mkdir -p "$build/fuzz"
libs="$(pkg-config --libs libpng libturbojpeg zlib) -ldnnl -fopenmp -lm -lpthread"
for t in $targets; do
    bin=$build/fuzz/fuzz_$t
    if [ ! -x "$bin" ] ||
        [ -n "$(find "tests/fuzz/fuzz_$t.c" tests/fuzz/fuzz.h "$archive" "$0" -newer "$bin" 2>/dev/null)" ]; then
        # shellcheck disable=SC2086
        clang -std=c11 -g -O1 -D_GNU_SOURCE -DVIT_FUZZ_LIBFUZZER -fsanitize=fuzzer,address,undefined \
            -fno-sanitize-recover=undefined -Ilibvit -Iinclude -I"$build/include" -Itests/fuzz \
            "tests/fuzz/fuzz_$t.c" "$archive" $libs -o "$bin"
    fi
done

# halt_on_error: a UBSan report fails the run as a crash does, with its input.
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0
export UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1
export LSAN_OPTIONS="suppressions=$src/tests/fuzz/lsan.supp:print_suppressions=0"
export OMP_NUM_THREADS=1

work=$(mktemp -d "${TMPDIR:-/tmp}/vit_fuzz_run.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
failed=""
summary=""
for t in $targets; do
    mkdir -p "$work/$t/corpus" "$work/$t/tmp" "$work/$t/artifacts"
    cp tests/fuzz/corpus/"$t"/* "$work/$t/corpus/"
    dict=""
    [ -f "tests/fuzz/$t.dict" ] && dict="-dict=$src/tests/fuzz/$t.dict"
    regress=""
    [ -d "tests/fuzz/regress/$t" ] && regress="$src/tests/fuzz/regress/$t"
    echo "== $t: $seconds s"
    rc=0
    # shellcheck disable=SC2086
    (cd "$work/$t" && TMPDIR="$work/$t/tmp" "$build/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 \
        -rss_limit_mb=2048 -max_len="$(max_len "$t")" -print_final_stats=1 -artifact_prefix="$work/$t/artifacts/" \
        $dict corpus $regress) >"$work/$t/log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t/log" | tail -n 1)
    grown=$(find "$work/$t/corpus" -type f | wc -l)
    cov=$(grep -o 'cov: [0-9]*' "$work/$t/log" | tail -n 1 | sed 's/cov: //')
    line=$(printf '%-13s %10s executions in %4s s, coverage %6s, corpus %4s' "$t" "${execs:-?}" "$seconds" \
        "${cov:-?}" "$grown")
    if [ "$rc" -ne 0 ] || ls "$work/$t/artifacts/"* >/dev/null 2>&1; then
        mkdir -p "$build/fuzz/artifacts/$t"
        cp "$work/$t/artifacts/"* "$build/fuzz/artifacts/$t/" 2>/dev/null || true
        cp "$work/$t/log" "$build/fuzz/artifacts/$t/log"
        grep -E 'ERROR|SUMMARY|runtime error|==[0-9]+==|Test unit written|deadly|leak|timeout|out-of-memory' \
            "$work/$t/log" | head -n 20 >&2 || true
        echo "$t: FAILED (exit $rc); input and log in $build/fuzz/artifacts/$t/" >&2
        failed="$failed $t"
        line="$line  FAILED"
    fi
    summary="$summary$line
"
done
echo "== libFuzzer, ASan + UBSan, $seconds s per target"
printf '%s' "$summary"
if [ -n "$failed" ]; then
    echo "failed:$failed" >&2
    exit 1
fi
