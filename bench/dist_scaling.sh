#!/bin/sh
# The data-parallel targets (docs/distributed.md): fmnist-train (vit-bench,
# global batch 128) as 1 rank x 1 thread, 1 rank x 2 threads and 2 ranks x
# 1 thread (mpirun, TCP on the loopback interface, one core per rank),
# ROUNDS rounds taken in turn so that a change in the machine's load hits
# all three alike; each figure is the median over the rounds of a run's
# median step. Prints a Markdown table with the ratios and the
# communication per step.
#   bench/dist_scaling.sh BUILD [ROUNDS (3)] [STEPS (10)]
set -eu
build=${1:?usage: bench/dist_scaling.sh BUILD [ROUNDS] [STEPS]}
rounds=${2:-3}
steps=${3:-10}
bench="$build/examples/vit-bench"
[ -x "$bench" ] || { echo "dist_scaling: no $bench (build first)" >&2; exit 1; }
command -v mpirun >/dev/null || { echo "dist_scaling: mpirun is not installed (apt-get install openmpi-bin)" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
args="--workload fmnist-train --steps $steps --warmup 2 --json"
i=0
while [ "$i" -lt "$rounds" ]; do
    "$bench" $args --threads 1 >>"$tmp"
    OMP_NUM_THREADS=2 "$bench" $args --threads 2 >>"$tmp"
    mpirun -np 2 --bind-to core --mca btl tcp,self --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo \
        "$bench" $args --threads 1 >>"$tmp"
    i=$((i + 1))
done
/usr/bin/python3 - "$tmp" "$rounds" "$steps" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
def median(key, ranks, threads):
    return statistics.median(r[key] for r in rows if r.get("ranks", 1) == ranks and r["threads"] == threads)
one, two_threads, two_ranks = (median("img_per_s", *k) for k in ((1, 1), (1, 2), (2, 1)))
wait, span, alone = (median(k, 2, 1) for k in ("comm_wait_ms", "comm_span_ms", "allreduce_alone_ms"))
print(f"fmnist-train, global batch 128, median of {sys.argv[2]} rounds of {sys.argv[3]} steps")
print()
print("| run | images/s | ratio to 1 rank x 1 thread | ratio to 1 rank x 2 threads |")
print("|---|---|---|---|")
print(f"| 1 rank x 1 thread | {one:.1f} | 1.00 | {one / two_threads:.2f} |")
print(f"| 1 rank x 2 threads | {two_threads:.1f} | {two_threads / one:.2f} | 1.00 |")
print(f"| 2 ranks x 1 thread (MPI, TCP) | {two_ranks:.1f} | **{two_ranks / one:.2f}** (target 1.8) | **{two_ranks / two_threads:.2f}** (target 0.95) |")
cpu1, cpu2t, cpu2r = (median("cpu_ms_per_step", *k) for k in ((1, 1), (1, 2), (2, 1)))
print()
print(f"processor time per step (user + system, per process): 1 rank x 1 thread {cpu1:.0f} ms; 1 rank x 2 threads "
      f"{cpu2t:.0f} ms; 2 ranks x 1 thread {cpu2r:.0f} ms per rank (rank 0): {cpu2r / cpu1 * 2:.2f} x the "
      f"one-process processor time for the two ranks together")
print(f"load average during the runs: {open('/proc/loadavg').read().split()[:3]}")
print()
print(f"communication per step (2 ranks): {wait:.1f} ms waited after backward; {span:.1f} ms from the first "
      f"bucket's start to the last's end, overlapped with backward; the gradient's reduction alone {alone:.1f} ms")
PY
