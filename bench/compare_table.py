#!/usr/bin/env python3
"""Markdown table of bench/compare.sh's results: libvit vs PyTorch vs ONNX Runtime.

Reads the JSON lines that vit-bench, torch_ref.py, ort_ref.mjs and
bench_gemm --workload print (a line without "impl" is libvit's) and shows, per
workload, the median over repeats of images per second and peak RSS, and
libvit's whole-step GFLOP/s as a share of the oneDNN matrix-product rate
measured at the workload's own shapes, and libvit's and ONNX Runtime's
whole-step GFLOP/s as a share of the processor's multiply-add peak that
bench_gemm measures beside it. Speed ratios and shares are the median of each
run's own ratio (compare.sh runs a run's sides back to back), memory ratios
the ratio of medians; libvit÷best, libvit÷ORT and the share, the cells the
targets are stated in, also list each run's own value. The GFLOP/s column
counts the model's FLOPs, the same per image for every implementation; the
shares count those libvit computes ("executed_gflops": its inference skips the
last block's projection and MLP for all tokens but the pooled class token).
Lines are grouped by "cores" (the comparison's thread count; "threads" where
absent). PyTorch appears twice: as most programs run it (one process on all
the cores' threads) and at its best, the fastest of the configurations
measured (also one thread, and P processes of T threads, written "PxT"), whose
memory is one process's peak. Standard library only.

    python3 bench/compare_table.py bench/results.jsonl
"""
import json
import statistics
import sys

IMPLS = ("libvit", "pytorch", "onnxruntime")


def field(key):
    """A record's value of key (None where an older line lacks it)."""
    return lambda r: r.get(key)


def executed_gflops(r):
    """The GFLOP/s of what libvit computed; older lines have the model's FLOPs only."""
    return r.get("executed_gflops", r.get("gflops"))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: compare_table.py RESULTS.jsonl")
    runs = {}  # (workload, threads) -> impl -> [records]
    blas = set()
    with open(sys.argv[1]) as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            if "workload" not in r:  # e.g. torch_ref.py --probe
                continue
            impl = r.get("impl", "libvit")
            cores = r.get("cores", r["threads"])
            if impl == "pytorch":
                procs = r.get("procs", 1)
                config = (procs, r.get("threads_per_proc", r["threads"] // procs))
                impl = "pytorch" if config == (1, cores) else ("pytorch", config)
            runs.setdefault((r["workload"], cores), {}).setdefault(impl, []).append(r)
            if impl == "pytorch" and r.get("blas"):
                blas.add(r["blas"])
    if not runs:
        sys.exit(f"compare_table.py: no results in {sys.argv[1]}")
    several_thread_counts = len({t for _, t in runs}) > 1

    def med(key, workload, impl):
        values = [r[key] for r in runs[workload].get(impl, []) if key in r]  # older lines lack newer keys
        return statistics.median(values) if values else None

    def fmt(v, spec):
        return "–" if v is None else format(v, spec)

    def ratio(a, b):
        return None if a is None or b is None or b == 0 else a / b

    def percent(r):
        return fmt(None if r is None else 100 * r, ".0f") + "%"

    def run_ratios(workload, a_impl, a_value, b_impl, b_value):
        """Each run's a_value(a's record) / b_value(b's record), in run order,
        or None where the runs do not pair up (a side failed)."""
        a = [a_value(r) for r in runs[workload].get(a_impl, [])]
        b = [b_value(r) for r in runs[workload].get(b_impl, [])]
        if a and len(a) == len(b) and None not in a and None not in b and 0 not in b:
            return [x / y for x, y in zip(a, b)]
        return None

    def paired(workload, a_impl, a_value, b_impl, b_value):
        """Median over runs of a_value(a's record) / b_value(b's record) of the
        same run. compare.sh measures a run's sides back to back, so a slow
        spell of the machine between runs moves both sides of a run's ratio
        alike but not a ratio of medians taken run by run apart. Falls back to
        the ratio of medians where the runs do not pair up (a side failed)."""
        per_run = run_ratios(workload, a_impl, a_value, b_impl, b_value)
        if per_run:
            return statistics.median(per_run)
        a = [x for x in map(a_value, runs[workload].get(a_impl, [])) if x is not None]
        b = [y for y in map(b_value, runs[workload].get(b_impl, [])) if y is not None]
        return ratio(statistics.median(a) if a else None, statistics.median(b) if b else None)

    def with_runs(cell, per_run, spec, scale=1):
        """cell, then each run's own value where there are several: the cells
        the targets are stated in, so that a reader sees how far the runs
        spread around the median."""
        if not per_run or len(per_run) < 2:
            return cell
        return f"{cell} ({', '.join(format(scale * v, spec) for v in per_run)})"

    def best_pytorch(workload):
        """(label, impl key, img/s, MiB) of PyTorch's fastest configuration, or Nones."""
        cands = [i for i in runs[workload] if i == "pytorch" or (isinstance(i, tuple) and i[0] == "pytorch")]
        if not cands:
            return None, None, None, None
        best = max(cands, key=lambda i: med("img_per_s", workload, i))
        procs, threads = (1, workload[1]) if best == "pytorch" else best[1]
        label = f"{threads}t" if procs == 1 else f"{procs}x{threads}t"
        return label, best, med("img_per_s", workload, best), med("peak_rss_mib", workload, best)

    print("| workload | libvit img/s | PyTorch img/s | PyTorch best img/s | ORT img/s | libvit÷PyTorch "
          "| libvit÷best | libvit÷ORT | libvit MiB | PyTorch MiB | best MiB | ORT MiB | mem libvit/PyTorch "
          "| mem libvit/best | libvit GFLOP/s | matmul GFLOP/s | share | FMA peak GFLOP/s | libvit/peak | ORT/peak |")
    print("|---|" + "---:|" * 19)
    for key in runs:  # first-seen order, which is the order compare.sh ran them in
        ips = [med("img_per_s", key, i) for i in IMPLS]
        mib = [med("peak_rss_mib", key, i) for i in IMPLS]
        how, best, best_ips, best_mib = best_pytorch(key)
        label = f"{key[0]} ({key[1]} threads)" if several_thread_counts else key[0]
        cells = [fmt(ips[0], ".2f"), fmt(ips[1], ".2f"),
                 "–" if best_ips is None else f"{best_ips:.2f} ({how})", fmt(ips[2], ".2f")]
        for column, other in enumerate(("pytorch", best, "onnxruntime")):
            speed = (key, "libvit", field("img_per_s"), other, field("img_per_s"))
            cell = fmt(paired(*speed), ".2f") + "×"
            cells.append(with_runs(cell, run_ratios(*speed), ".2f") if column else cell)
        cells += [fmt(mib[0], ".0f"), fmt(mib[1], ".0f"), fmt(best_mib, ".0f"), fmt(mib[2], ".0f"),
                  fmt(ratio(mib[0], mib[1]), ".2f"), fmt(ratio(mib[0], best_mib), ".2f")]
        gf = med("gflops", key, "libvit")
        share = (key, "libvit", executed_gflops, "matmul", field("matmul_gflops"))
        cells += [fmt(gf, ".1f"), fmt(med("matmul_gflops", key, "matmul"), ".1f"),
                  with_runs(percent(paired(*share)), run_ratios(*share), ".0f", 100)]
        # ONNX Runtime computes the model's FLOPs per image, which libvit's GFLOP/s column counts
        per_image = None if gf is None or not ips[0] else gf / ips[0]

        def ort_gflops(r):
            return None if per_image is None else r["img_per_s"] * per_image

        cells += [fmt(med("fma_peak_gflops", key, "matmul"), ".1f"),
                  percent(paired(key, "libvit", executed_gflops, "matmul", field("fma_peak_gflops"))),
                  percent(paired(key, "onnxruntime", ort_gflops, "matmul", field("fma_peak_gflops")))]
        print("| " + " | ".join([label] + [c.replace("–×", "–").replace("–%", "–") for c in cells]) + " |")
    isas = sorted({r["cpu_isa"] for impls in runs.values() for r in impls.get("matmul", []) if "cpu_isa" in r})
    reps = max(len(rs) for impls in runs.values() for rs in impls.values())
    threads = ", ".join(str(t) for t in sorted({t for _, t in runs}))
    print(f"\nMedian over up to {reps} run(s) per side (speed ratios and shares: of each run's own ratio, "
          "each run's in parentheses after libvit÷best, libvit÷ORT and share); "
          f"threads {threads}; "
          f"PyTorch BLAS {', '.join(sorted(blas)) or 'unknown'}; libvit's CPU kernels "
          f"{', '.join(isas) or 'at an unrecorded ISA'}. \"best\" is PyTorch's fastest configuration "
          "measured (Nt: one process of N threads; PxT: P processes of T threads sharing each batch; its MiB one "
          "process's peak). Ratios above 1 favour libvit for speed, below 1 for memory.")


if __name__ == "__main__":
    main()
