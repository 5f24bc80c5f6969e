#!/usr/bin/python3
"""PyTorch side of the CPU benchmark: vit-bench's workloads on the same model.

Same workloads, defaults, step and timing as examples/vit-bench.c: synthetic
inputs, a training step is zero_grad + forward + cross-entropy + backward +
AdamW step (torch.optim.AdamW defaults, lr 1e-3, weight decay 0.01), inference
runs under torch.no_grad() in eval mode. The model is tests/parity/torch_vit.py
(timm layout: qkv bias, no patch norm, LayerNorm eps 1e-6, cls-token pooling,
dropout 0). Peak RSS is the process's, so run one workload per process.

--procs P (training only) runs P processes of --threads threads each, each
taking 1/P of every batch, the gradients averaged (torch.distributed, gloo)
before the step: data parallelism on one machine, the way a torch that gains
little from a second thread uses the cores best. Then "threads" in the JSON
is P x --threads, the step time is rank 0's (every step ends in the
all-reduce, so the ranks keep step) and "peak_rss_mib" is the largest
process's peak ("total_rss_mib" the sum).

    /usr/bin/python3 bench/torch_ref.py --workload fmnist-train --threads 2 --json
    /usr/bin/python3 bench/torch_ref.py --workload fmnist-train --threads 1 --procs 2 --json
    /usr/bin/python3 bench/torch_ref.py --probe    # JSON: torch version and the BLAS it loaded
"""
import argparse
import ctypes
import json
import os
import resource
import statistics
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "parity"))
from torch_vit import VisionTransformer, flops_per_image  # noqa: E402

# name: (img, patch, channels, dim, depth, heads, mlp, classes, batch, train), as in vit-bench.c
WORKLOADS = {
    "fmnist-train": (28, 4, 1, 96, 6, 3, 4.0, 10, 128, True),
    "tiny-c32-train": (32, 4, 3, 192, 12, 3, 4.0, 10, 64, True),
    "seed-b16-train": (224, 16, 3, 768, 12, 12, 4.0, 2, 4, True),
    "b16-infer-b1": (224, 16, 3, 768, 12, 12, 4.0, 1000, 1, False),
    "b16-infer-b16": (224, 16, 3, 768, 12, 12, 4.0, 1000, 16, False),
}


def loaded_blas():
    """Path of the BLAS library this process has mapped (the first match by preference)."""
    with open("/proc/self/maps") as f:
        paths = {line.split()[-1] for line in f if "/" in line}
    for key in ("libmkl", "libopenblas", "libblas"):
        hits = sorted(p for p in paths if os.path.basename(p).startswith(key))
        if hits:
            return hits[0]
    return None


def set_threads(n):
    """Run torch on n threads: its OpenMP pool, one inter-op thread, and the BLAS."""
    torch.set_num_threads(n)
    torch.set_num_interop_threads(1)
    # torch.set_num_threads sizes OpenMP only; a pthread OpenBLAS keeps one
    # thread per core unless told, so give it the same count (through its
    # API: the OPENBLAS_* environment is left as the caller set it).
    blas = loaded_blas()
    if blas and "openblas" in os.path.basename(blas):
        ctypes.CDLL(blas).openblas_set_num_threads(n)


def run_procs(run, args, procs):
    """run(rank, args, store) in this process when procs is 1, else in procs
    spawned processes that join a gloo group through the file store."""
    if procs == 1:
        run(0, args, None)
        return
    store = f"/tmp/{os.path.basename(sys.argv[0])}.{os.getpid()}.store"
    try:
        mp.spawn(run, args=(args, store), nprocs=procs)
    finally:
        if os.path.exists(store):
            os.remove(store)


def average_gradients(params, procs):
    """Each process's gradients replaced by their mean over the processes
    (each process's loss is the mean over its share of the batch)."""
    if procs == 1:
        return
    grads = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(grads)
    grads /= procs
    offset = 0
    for p in params:
        p.grad.copy_(grads[offset:offset + p.numel()].view_as(p.grad))
        offset += p.numel()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workload", choices=sorted(WORKLOADS))
    ap.add_argument("--threads", type=int, default=2, help="threads of each process")
    ap.add_argument("--procs", type=int, default=1, help="data-parallel processes sharing each batch (training)")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--probe", action="store_true", help="print torch's version and BLAS as JSON, run nothing")
    args = ap.parse_args()
    if args.probe:
        blas = loaded_blas()
        print(json.dumps({"impl": "pytorch", "torch": torch.__version__,
                          "blas": os.path.basename(blas) if blas else "none", "blas_path": blas or ""}))
        return
    if not args.workload:
        ap.error("--workload is required")
    if args.threads < 1 or args.steps < 1 or args.warmup < 0:
        ap.error("--threads and --steps must be >= 1, --warmup >= 0")
    batch, train = WORKLOADS[args.workload][8:]
    if args.procs < 1 or (args.procs > 1 and (not train or batch % args.procs)):
        ap.error(f"--procs {args.procs}: must be 1, or divide the batch of a training workload")
    run_procs(run, args, args.procs)


def run(rank, args, store):
    """The benchmark in one process: all of it, or rank's share of every batch when args.procs > 1."""
    img, patch, chans, dim, depth, heads, mlp, classes, batch, train = WORKLOADS[args.workload]
    procs = args.procs
    if procs > 1:
        dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=procs)
    set_threads(args.threads)
    torch.manual_seed(0)
    model = VisionTransformer(img_size=img, patch_size=patch, in_channels=chans, num_classes=classes, dim=dim,
                              depth=depth, heads=heads, mlp_ratio=mlp)
    x = torch.rand(batch, chans, img, img) - 0.5
    y = torch.arange(batch) % classes
    share = slice(rank * batch // procs, (rank + 1) * batch // procs)
    x, y = x[share], y[share]

    if train:
        model.train()
        opt = torch.optim.AdamW(model.parameters())
        params = list(model.parameters())

        def step():
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            average_gradients(params, procs)
            opt.step()
    else:
        model.eval()

        def step():
            with torch.no_grad():
                model(x)

    times = []
    for s in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        step()
        if s >= args.warmup:
            times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    total_rss = rss
    if procs > 1:
        peaks = [None] * procs
        dist.all_gather_object(peaks, rss)
        rss, total_rss = max(peaks), sum(peaks)
        if rank:
            return
    flops = flops_per_image(img, patch, chans, dim, depth, mlp, classes) * batch * (3 if train else 1)
    ips, gflops = batch / median, flops / median * 1e-9
    blas = loaded_blas()
    blas_name = os.path.basename(blas) if blas else "none"
    if args.json:
        print(json.dumps({"workload": args.workload, "threads": args.threads * procs, "procs": procs,
                          "threads_per_proc": args.threads, "batch": batch, "median_step_s": round(median, 6),
                          "img_per_s": round(ips, 3), "gflops": round(gflops, 2), "peak_rss_mib": round(rss, 1),
                          "total_rss_mib": round(total_rss, 1), "impl": "pytorch", "blas": blas_name,
                          "blas_path": blas or ""}), flush=True)
    else:
        print(f"{args.workload:<16} {procs} x {args.threads} threads batch {batch:4d}  {median * 1e3:9.2f} ms/step  "
              f"{ips:9.2f} img/s  {gflops:7.1f} GFLOP/s  peak RSS {rss:7.1f} MiB  (pytorch, {blas_name})",
              flush=True)


if __name__ == "__main__":
    main()
