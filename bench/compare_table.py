#!/usr/bin/env python3
"""Markdown table of bench/compare.sh's results: libvit vs PyTorch vs ONNX Runtime.

Reads the JSON lines that vit-bench, torch_ref.py, ort_ref.mjs and
bench_gemm --workload print (a line without "impl" is libvit's) and shows, per
workload, the median over repeats of images per second and peak RSS, and
libvit's whole-step GFLOP/s as a share of the oneDNN matrix-product rate
measured at the workload's own shapes. Standard library only.

    python3 bench/compare_table.py bench/results.jsonl
"""
import json
import statistics
import sys

IMPLS = ("libvit", "pytorch", "onnxruntime")


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
            runs.setdefault((r["workload"], r["threads"]), {}).setdefault(impl, []).append(r)
            if impl == "pytorch" and r.get("blas"):
                blas.add(r["blas"])
    if not runs:
        sys.exit(f"compare_table.py: no results in {sys.argv[1]}")
    several_thread_counts = len({t for _, t in runs}) > 1

    def med(key, workload, impl):
        rs = runs[workload].get(impl)
        return statistics.median(r[key] for r in rs) if rs else None

    def fmt(v, spec):
        return "–" if v is None else format(v, spec)

    def ratio(a, b):
        return None if a is None or b is None or b == 0 else a / b

    print("| workload | libvit img/s | PyTorch img/s | ORT img/s | libvit÷PyTorch | libvit÷ORT "
          "| libvit MiB | PyTorch MiB | ORT MiB | mem ratio libvit/PyTorch | libvit GFLOP/s | matmul GFLOP/s | share |")
    print("|---|" + "---:|" * 12)
    for key in runs:  # first-seen order, which is the order compare.sh ran them in
        ips = [med("img_per_s", key, i) for i in IMPLS]
        mib = [med("peak_rss_mib", key, i) for i in IMPLS]
        label = f"{key[0]} ({key[1]} threads)" if several_thread_counts else key[0]
        cells = [fmt(v, ".2f") for v in ips]
        cells += [fmt(ratio(ips[0], ips[1]), ".2f") + "×", fmt(ratio(ips[0], ips[2]), ".2f") + "×"]
        cells += [fmt(v, ".0f") for v in mib] + [fmt(ratio(mib[0], mib[1]), ".2f")]
        gf, mm = med("gflops", key, "libvit"), med("matmul_gflops", key, "matmul")
        cells += [fmt(gf, ".1f"), fmt(mm, ".1f"), fmt(None if ratio(gf, mm) is None else 100 * ratio(gf, mm), ".0f") + "%"]
        print("| " + " | ".join([label] + [c.replace("–×", "–").replace("–%", "–") for c in cells]) + " |")
    reps = max(len(rs) for impls in runs.values() for rs in impls.values())
    threads = ", ".join(str(t) for t in sorted({t for _, t in runs}))
    print(f"\nMedian over up to {reps} run(s) per side; threads {threads}; "
          f"PyTorch BLAS {', '.join(sorted(blas)) or 'unknown'}. Ratios above 1 favour libvit for speed, "
          "below 1 for memory.")


if __name__ == "__main__":
    main()
