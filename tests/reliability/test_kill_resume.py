#!/usr/bin/env python3
"""vit-train killed with SIGKILL at every step of its checkpoint saves.

A reference run trains a tiny model for a few epochs. Then, for each kill
point K (the K-th fwrite, fflush, fsync or rename of a run, counted by
kill_shim.so: every step of every save, the plots and metrics included), a
run is killed there; every checkpoint it left must load, and a run resumed
from its last.safetensors (or started again when there is none yet) must end
with exactly the reference's weights and optimizer state.

    test_kill_resume.py VIT_TRAIN KILL_SHIM LIBVIT [--points N]
"""
import ctypes
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile

import numpy as np

EPOCHS = 3
ARGS = ["--img-size", "8", "--patch-size", "4", "--dim", "12", "--depth", "1", "--heads", "2",
        "--threads", "1", "--workers", "1", "--batch-size", "4", "--epochs", str(EPOCHS),
        "--drop", "0.1", "--drop-path", "0.1", "--augment", "flip", "--seed", "5", "--format", "idx"]


def write_idx(root, n_train=40, n_val=12):
    """MNIST-style files: 8x8 gray images of three stripe patterns plus noise."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:8, 0:8]
    for prefix, n in (("train", n_train), ("t10k", n_val)):
        labels = (np.arange(n) % 3).astype(np.uint8)
        base = [((x + y) % 2), (y % 2), (x % 2)]
        images = np.stack([(base[l] * 180 + rng.integers(0, 60, (8, 8))).astype(np.uint8) for l in labels])
        for kind, arr in (("images-idx3-ubyte", images), ("labels-idx1-ubyte", labels)):
            head = struct.pack(">I", 0x0800 | arr.ndim) + b"".join(struct.pack(">I", d) for d in arr.shape)
            with open(os.path.join(root, f"{prefix}-{kind}"), "wb") as f:
                f.write(head + arr.tobytes())


def tensors(path):
    """name -> raw bytes of every tensor of a safetensors file (metadata, which
    holds timings, left out)."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    return {k: data[v["data_offsets"][0]:v["data_offsets"][1]] for k, v in header.items() if k != "__metadata__"}


class Lib:
    """Just enough of libvit through ctypes to check that a checkpoint loads."""

    def __init__(self, path):
        self.lib = ctypes.CDLL(path)
        self.ctx = ctypes.c_void_p()
        assert self.lib.vit_context_create(ctypes.byref(self.ctx)) == 0
        self.lib.vit_last_error.restype = ctypes.c_char_p

    def loads(self, path):
        model = ctypes.c_void_p()
        status = self.lib.vit_model_load(self.ctx, path.encode(), ctypes.byref(model))
        self.lib.vit_model_destroy(model)
        return status == 0, self.lib.vit_last_error().decode(errors="replace")


def train(exe, data, out, env, *extra):
    return subprocess.run([exe, "--data", data, "--out", out, *ARGS, *extra], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def main():
    exe, shim, libpath = sys.argv[1:4]
    points = int(sys.argv[sys.argv.index("--points") + 1]) if "--points" in sys.argv else 0
    lib = Lib(libpath)
    tmp = tempfile.mkdtemp(prefix="vit_kill.")
    try:
        data = os.path.join(tmp, "data")
        os.makedirs(data)
        write_idx(data)
        env = dict(os.environ, LD_PRELOAD=shim, VIT_KILL_COUNT=os.path.join(tmp, "count"))
        ref = os.path.join(tmp, "ref")
        p = train(exe, data, ref, env)
        if p.returncode != 0:
            print(f"reference run failed: {p.stderr}")
            return 1
        with open(os.path.join(tmp, "count")) as f:
            total = int(f.read())
        want = {name: tensors(os.path.join(ref, name)) for name in ("last.safetensors", "last.optim.safetensors")}
        env.pop("VIT_KILL_COUNT")
        ks = range(1, total + 1)
        if points and points < total:  # evenly spread, both ends included
            ks = sorted({1 + round(i * (total - 1) / (points - 1)) for i in range(points)})
        failures = []
        for k in ks:
            out = os.path.join(tmp, f"k{k}")
            p = train(exe, data, out, dict(env, VIT_KILL_AT=str(k)))
            if p.returncode != -signal.SIGKILL:
                failures.append(f"kill point {k}: the run ended with status {p.returncode}, not killed")
                continue
            for name in ("best.safetensors", "last.safetensors"):
                path = os.path.join(out, name)
                if os.path.exists(path):
                    ok, err = lib.loads(path)
                    if not ok:
                        failures.append(f"kill point {k}: {name} does not load: {err}")
            last = os.path.join(out, "last.safetensors")
            resume = ["--resume", last] if os.path.exists(last) else []
            p = train(exe, data, out, dict(os.environ), *resume)
            if p.returncode != 0:
                failures.append(f"kill point {k}: {'resuming' if resume else 'starting again'} failed: "
                                f"{p.stderr.strip()}")
                continue
            for name, tens in want.items():
                if tensors(os.path.join(out, name)) != tens:
                    failures.append(f"kill point {k}: {name} differs from the uninterrupted run's")
            shutil.rmtree(out)
        for f in failures:
            print(f)
        print(f"{len(ks)} kill points of {total} save steps tried, {len(failures)} failures")
        print(f"{len(ks) - len(failures)} passed, {len(failures)} failed")
        return 1 if failures else 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
