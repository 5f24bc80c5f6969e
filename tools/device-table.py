#!/usr/bin/env python3
"""The table of tools/device-check.sh: libvit against PyTorch per
configuration, from the JSON lines the benchmarks wrote."""
import json
import sys


def main(path):
    rows = {}
    for line in open(path):
        line = line.strip()
        if not line:
            continue
        r = json.loads(line)
        impl, mode, batch = r["label"].split()
        rows.setdefault((mode, int(batch)), {})[impl] = r
    out = ["| mode | batch | libvit img/s | libvit MFU | libvit peak MiB | PyTorch img/s | PyTorch MFU "
           "| PyTorch peak MiB | libvit / PyTorch |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def cells(r):
        if r is None:
            return ["-", "-", "-"]
        if "error" in r:
            return ["failed", "-", "-"]
        return ["%.1f" % r["img_per_s"], "%.1f %%" % (100 * r["mfu"]), "%d" % r.get("smi_peak_mib", 0)]

    for (mode, batch) in sorted(rows, key=lambda k: (k[0] != "train", k[1])):
        v, t = rows[(mode, batch)].get("libvit"), rows[(mode, batch)].get("pytorch")
        ratio = "-"
        if v and t and "error" not in v and "error" not in t:
            ratio = "%.2f" % (v["img_per_s"] / t["img_per_s"])
        out.append("| %s | %d | %s | %s | %s |" % (mode, batch, " | ".join(cells(v)), " | ".join(cells(t)), ratio))
    print("\n".join(out))
    print("\nMFU: 3 x 35.1 GFLOP per trained image (1 x in inference) against 790 TFLOP/s; peak: GPU memory in use "
          "during the run (nvidia-smi, every 100 ms) above the idle level; each row is the median step of its own process.")


if __name__ == "__main__":
    main(sys.argv[1])
