#!/bin/bash
# Run libvit's vit-bench, the PyTorch reference (bench/torch_ref.py) and, for
# the inference workloads, ONNX Runtime (bench/ort_ref.mjs) on the same
# workloads, and print a markdown table (bench/compare_table.py).
# PyTorch runs as most programs run it (N threads) and, with N > 1, also the
# ways it may do better on N cores: one thread, and for training N
# single-thread processes sharing each batch (torch_ref.py --procs); the
# table compares libvit with the fastest of these too.
#
#   bench/compare.sh [BUILD] [--workloads a,b,c] [--threads N] [--repeat R]
#                    [--steps S] [--warmup W] [--out FILE]
#
# BUILD is libvit's meson build folder (default build). --steps defaults to
# 5, and to 20 for fmnist-train, whose steps take a fifth of a second: a
# run then times four seconds of it rather than one. Each workload runs its
# sides back to back, R times over, so that a slow spell of the machine hits
# all sides alike; every run is its own process, since peak RSS is per process.
# The environment (OPENBLAS_* included) is passed to every side unchanged.
# Needs /usr/bin/python3 with torch and bench/node_modules (tools/install-deps.sh --bench).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
py=${PYTHON:-/usr/bin/python3}
build=build workloads=fmnist-train,tiny-c32-train,seed-b16-train,b16-infer-b1,b16-infer-b16
threads=2 repeat=1 steps= warmup=2 out=$here/results.jsonl

usage() { echo usage: >&2; sed -n '10,11s/^#//p' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case $1 in
        --workloads|--threads|--repeat|--steps|--warmup|--out) [ $# -ge 2 ] || usage ;;&
        --workloads) workloads=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        --repeat) repeat=$2; shift 2 ;;
        --steps) steps=$2; shift 2 ;;
        --warmup) warmup=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        -h|--help) usage ;;
        -*) echo "compare.sh: unknown option '$1'" >&2; usage ;;
        *) build=$1; shift ;;
    esac
done
case $repeat in ''|*[!0-9]*|0) echo "compare.sh: --repeat needs a positive integer" >&2; exit 2 ;; esac
# Relative paths are the caller's; the runs below start from the repository root.
case $build in /*) ;; *) build=$PWD/$build ;; esac
case $out in /*) ;; *) out=$PWD/$out ;; esac
vitbench=$build/examples/vit-bench gemm=$build/bench/bench_gemm
[ -x "$vitbench" ] || { echo "compare.sh: no $vitbench; build libvit first" >&2; exit 1; }
# The matrix-product ceiling at each workload's shapes (built on request only).
meson compile -C "$build" bench/bench_gemm >/dev/null || { echo "compare.sh: cannot build $gemm" >&2; exit 1; }
cd "$root" || exit 1

# Which BLAS torch loads decides its matmul speed: Debian's torch with the
# reference netlib libblas is several times slower than with OpenBLAS.
probe=$("$py" bench/torch_ref.py --probe) || { echo "compare.sh: $py cannot import torch" >&2; exit 1; }
blas=$(printf '%s\n' "$probe" | sed -n 's/.*"blas_path": "\([^"]*\)".*/\1/p')
echo "PyTorch BLAS: ${blas:-none found}"
case $(basename "${blas:-none}") in
    libopenblas*|libmkl*) ;;
    *) echo "compare.sh: warning: torch uses the reference BLAS (${blas:-none}), not an optimised one;" \
            "install libopenblas0-pthread (tools/install-deps.sh --bench)" >&2 ;;
esac

onnx=$here/vit_b16.onnx
case ,$workloads, in
    *,b16-infer-*)
        [ -d "$here/node_modules/onnxruntime-node" ] ||
            { echo "compare.sh: no bench/node_modules; run tools/install-deps.sh --bench" >&2; exit 1; }
        if [ ! -f "$onnx" ] || [ ! -f "$onnx.ref.json" ]; then
            "$py" bench/export_onnx.py --out "$onnx" || exit 1
        fi
        # Once, so the table never compares against a model that computes something else.
        node bench/ort_ref.mjs --workload b16-infer-b1 --model "$onnx" --steps 1 --warmup 0 --check >/dev/null || exit 1
        ;;
esac

: >"$out"
failed=0
# run LABEL THREADS CMD...: one JSON line from CMD on THREADS threads (of
# each process) appended to $out, with "cores": the --threads of this
# comparison, which the table groups by (vit-bench's line gets "impl": "libvit").
run() {
    local label=$1 t=$2 line
    shift 2
    if line=$("$@" --workload "$w" --threads "$t" --steps "$wsteps" --warmup "$warmup" --json) && [ -n "$line" ]; then
        case $line in *'"impl"'*) ;; *) line=${line%\}}', "impl": "libvit"}' ;; esac
        line=${line%\}}", \"cores\": $threads}"
        printf '%s\n' "$line" >>"$out"
        echo "  $label: $line" >&2
    else
        echo "compare.sh: $label failed on $w" >&2
        failed=1
    fi
}
for w in ${workloads//,/ }; do
    case $w in fmnist-train) wsteps=${steps:-20} ;; *) wsteps=${steps:-5} ;; esac
    for r in $(seq "$repeat"); do
        echo "$w, run $r of $repeat" >&2
        run libvit "$threads" "$vitbench"
        if line=$("$gemm" --workload "$w" --threads "$threads" --reps 10 --warmup 2); then
            printf '%s\n' "${line%\}}, \"impl\": \"matmul\", \"cores\": $threads}" >>"$out"
            echo "  matmul: $line" >&2
        else
            echo "compare.sh: bench_gemm failed on $w" >&2
            failed=1
        fi
        run pytorch "$threads" "$py" bench/torch_ref.py
        if [ "$threads" -gt 1 ]; then
            run "pytorch 1 thread" 1 "$py" bench/torch_ref.py
            case $w in *-train) run "pytorch $threads processes" 1 "$py" bench/torch_ref.py --procs "$threads" ;; esac
        fi
        case $w in b16-infer-*) run onnxruntime "$threads" node bench/ort_ref.mjs --model "$onnx" ;; esac
    done
done

echo
"$py" bench/compare_table.py "$out" || exit 1
echo "(results in $out)"
exit $failed
