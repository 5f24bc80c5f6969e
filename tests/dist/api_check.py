"""The communicator's API through the Python package, run on 2 ranks under
mpirun by test_dist.py (python_api): rank and size, settings and their
checks, sums over ranks, attach (rank 0's weights reach rank 1; backward
then returns the mean of the ranks' gradients, compared with the mean of the
gradients each rank computed alone), detach, statistics.

    VIT_LIBRARY=build/libvit/libvit.so.0 mpirun -np 2 python3 tests/dist/api_check.py
"""
import os
import sys

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
import libvit  # noqa: E402


def expect(cond, what):
    if not cond:
        sys.exit(f"api_check [rank {RANK}]: FAIL: {what}")


comm = libvit.Communicator(timeout_ms=60000)
RANK, SIZE = comm.rank, comm.size
expect(SIZE == 2 and libvit.launch_size() == 2, f"size {SIZE}, launch size {libvit.launch_size()}")
expect(comm.get("mpi") and comm.get("mpi_handle_bytes") in (4, 8), "an MPI communicator")
expect(comm.get("bucket_bytes") == 1 << 20 and comm.get("overlap") is True, "defaults")
for name, value, error in (("bucket_bytes", 100, "4096"), ("timeout_ms", 0, "TIMEOUT"), ("rank", 1, "read-only")):
    try:
        comm.set(name, value)
        expect(False, f"{name} = {value} accepted")
    except libvit.InvalidArgumentError as e:
        expect(error in str(e), f"{name}: {e}")
sums = comm.allreduce_sum([1.0, RANK, 0.5])
expect(list(sums) == [2.0, 1.0, 1.0], f"allreduce_sum gave {sums}")
comm.barrier()

ctx = libvit.Context(threads=1, seed=10 + RANK)  # each rank draws other weights
model = libvit.Model(ctx, img_size=8, patch_size=4, in_channels=1, num_classes=3, dim=12, depth=1, heads=2)
rng = np.random.default_rng(100 + RANK)  # and has other data
images = rng.standard_normal((4, 1, 8, 8)).astype(np.float32)
labels = np.array([0, 1, 2, RANK], dtype=np.int32)
names = [p.name for p in model.parameters()]


def gradients():
    model.zero_grad()
    model.forward(images)
    model.loss(labels)
    model.backward()
    return {n: model.grad(n) for n in names}


comm.attach(model)
weights = np.concatenate([model.param(n).ravel() for n in names])
both = comm.allreduce_sum(weights.astype(np.float64))
expect(np.array_equal(both, 2 * weights.astype(np.float64)), "rank 0's weights did not reach every rank")
averaged = gradients()
libvit.Communicator.detach(model)
alone = gradients()
for n in names:
    mean = comm.allreduce_sum(alone[n].ravel().astype(np.float64)) / 2
    expect(np.allclose(averaged[n].ravel(), mean, rtol=1e-5, atol=1e-7), f"{n}: not the mean of the ranks' gradients")
stats = comm.stats()
expect(stats["backwards"] == 1 and stats["bytes"] > 0, f"statistics {stats}")
fashion = "/usr/share/datasets/fashion-mnist"
if os.path.isdir(fashion):
    # The Python loader's length counts its shard as the C loader does.
    ds = libvit.Dataset(ctx, fashion, split="val")
    for drop_last in (True, False):
        loader = libvit.DataLoader(ds, libvit.Transform(ctx, size=28), 7, shard_index=RANK, shard_count=SIZE,
                                   drop_last=drop_last, workers=0)
        next(iter(loader))
        expect(len(loader) == loader.num_batches, f"drop_last {drop_last}: len {len(loader)}, C {loader.num_batches}")
comm.close()
print(f"api_check [rank {RANK}]: PASS")
