#!/usr/bin/env python3
"""Where one GPU training step's time goes, from Nsight Compute's CSV:

    ncu --clock-control none --metrics gpu__time_duration.sum --csv --print-units base \\
        vit-bench --workload b16-train --device cuda --steps 1 --warmup 1 > ncu.csv
    tools/kernel-times.py ncu.csv[.gz]

(--print-units base: the durations are then read as nanoseconds.) A step
ends with a run of AdamW launches; the last step, from the end of the
previous such run, is summed by class and by kernel. Prints markdown."""
import collections
import csv
import gzip
import re
import sys


def kernel_class(name):
    if name.startswith("nvjet") or "splitKreduce" in name or "gemm" in name.lower():
        return "matrix products (cuBLASLt)"
    if "sdpa" in name or name.startswith("cudnn") or "cudnn::" in name:
        return "attention (cuDNN)"
    if name.startswith(("to_bf16", "from_bf16")):
        return "rounding to bf16 and back"
    return "the rest (LayerNorm, GELU, residual, column sums, AdamW, ...)"


def main(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        rows = list(csv.DictReader(line for line in f if line.startswith('"')))
    if not rows:
        sys.exit("kernel-times: no kernel rows in %s" % path)
    for r in rows:
        r["ns"] = float(r["Metric Value"].replace(",", ""))
        r["short"] = re.sub(r"\(.*", "", r["Kernel Name"]).replace("void ", "")[:80]
    adamw = [i for i, r in enumerate(rows) if r["short"].startswith("adamw")]
    ends = [i for k, i in enumerate(adamw) if k + 1 == len(adamw) or adamw[k + 1] != i + 1]
    step = rows[ends[-2] + 1:ends[-1] + 1] if len(ends) >= 2 else rows
    total = sum(r["ns"] for r in step)
    print("%d kernels, %.2f ms of kernel time in the last step\n" % (len(step), total / 1e6))
    for title, key, top in (("class", lambda r: kernel_class(r["short"]), None), ("kernel", lambda r: r["short"], 15)):
        agg = collections.defaultdict(lambda: [0, 0.0])
        for r in step:
            a = agg[key(r)]
            a[0] += 1
            a[1] += r["ns"]
        print("| %s | ms | share | launches |\n|---|---:|---:|---:|" % title)
        for name, (n, ns) in sorted(agg.items(), key=lambda kv: -kv[1][1])[:top]:
            print("| %s | %.2f | %.1f %% | %d |" % (name, ns / 1e6, 100 * ns / total, n))
        print()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: kernel-times.py NCU_CSV[.gz]")
    main(sys.argv[1])
