"""Data-parallel training under mpirun (docs/distributed.md).

    test_dist.py NAME DIST_TRAIN|none VIT_TRAIN LIBVIT

DIST_TRAIN is tests/dist/dist_train (built only with MPI; "none" in a build
without it, where every test but no_mpi_refusal reports itself skipped with
exit status 77). Every run goes over TCP only (--mca btl tcp,self) on the
loopback interface, or between two network namespaces for two_hosts.
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

SKIP = 77
DATA = "/usr/share/datasets/fashion-mnist"
# The bound on |loss(N ranks) - loss(1 rank)| over the 20 steps; what the
# runs reach is printed (about 1e-6 on x86-64 with AVX2 or AVX-512).
LOSS_BOUND = 1e-5


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(SKIP)


def mpi_env():
    env = dict(os.environ)
    # Open MPI refuses root unless told; CI containers run as root.
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")
    return env


def mpirun(n, argv, extra=(), timeout=300):
    """Runs argv on n ranks over TCP on the loopback interface; returns (rc, stdout, stderr, seconds)."""
    cmd = ["mpirun", "-np", str(n), "--oversubscribe", "--mca", "btl", "tcp,self",
           "--mca", "btl_tcp_if_include", "lo", "--mca", "oob_tcp_if_include", "lo", *extra, *map(str, argv)]
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=mpi_env())
    return p.returncode, p.stdout, p.stderr, time.monotonic() - t0


def need_mpi(dist_train):
    if dist_train == "none":
        skip("libvit was built without MPI (-Dmpi=disabled or no MPI found): nothing distributed to test")
    if not shutil.which("mpirun"):
        skip("mpirun is not installed (apt-get install openmpi-bin)")
    if not os.path.exists(os.path.join(DATA, "train-labels-idx1-ubyte.gz")):
        skip(f"{DATA} is missing (apt-get install dataset-fashion-mnist)")


def steps_of(stdout):
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def train_steps(dist_train, n, *args, steps=20):
    rc, out, err, secs = mpirun(n, [dist_train, "--data", DATA, "--steps", steps, *args])
    if rc != 0:
        sys.exit(f"FAIL: {n} ranks {' '.join(map(str, args))}: exit status {rc}\n{err[-3000:]}")
    rows = steps_of(out)
    if len(rows) != steps:
        sys.exit(f"FAIL: {n} ranks: {len(rows)} steps reported, not {steps}\n{out}\n{err[-2000:]}")
    print(f"{n} rank(s) {' '.join(map(str, args))}: {secs:.1f} s; {err.strip().splitlines()[-1]}")
    return rows


def compare(one, many, label):
    worst = max(abs(a["loss"] - b["loss"]) for a, b in zip(one, many))
    print(f"{label}: largest |loss - loss(1 rank)| over {len(one)} steps = {worst:.3g} (bound {LOSS_BOUND:g})")
    if worst > LOSS_BOUND:
        for a, b in zip(one, many):
            print(f"  step {a['step']}: {a['loss']:.9g} {b['loss']:.9g}")
        sys.exit(f"FAIL: {label}: the losses differ from one rank's by {worst:.3g} > {LOSS_BOUND:g}")
    if one[0]["loss"] == one[-1]["loss"]:
        sys.exit("FAIL: the loss did not move: nothing was trained")


# ------------------------------------------------------------------ the tests
def test_equal_ranks(dist_train, vit_train, libvit):
    """2 and 3 ranks train 20 steps with the losses of 1 rank on the same
    global batch (48), every rank holding the same parameter bits after
    every step (dist_train checks that itself and fails otherwise). The
    3-rank run reduces in one pass after backward instead of overlapped, in
    small buckets, so that both paths are covered."""
    need_mpi(dist_train)
    one = train_steps(dist_train, 1)
    compare(one, train_steps(dist_train, 2), "2 ranks")
    compare(one, train_steps(dist_train, 3, "--no-overlap", "--bucket-bytes", 65536), "3 ranks")


def test_own_communicator(dist_train, vit_train, libvit):
    """A host program that initialised MPI itself hands libvit its own
    communicator (the address of its MPI_Comm): same losses as one rank."""
    need_mpi(dist_train)
    one = train_steps(dist_train, 1, steps=5)
    compare(one, train_steps(dist_train, 2, "--own-mpi", "--bucket-bytes", 65536, steps=5), "2 ranks, own MPI_Comm")


def fault_run(dist_train, kind, timeout_ms):
    rc, out, err, secs = mpirun(2, [dist_train, "--data", DATA, "--steps", 20, f"--{kind}-rank", 1,
                                    f"--{kind}-at", 3, "--timeout-ms", timeout_ms], timeout=240)
    print(f"{kind}: exit status {rc} after {secs:.1f} s")
    print("\n".join(err.strip().splitlines()[-12:]))
    if rc == 0:
        sys.exit(f"FAIL: a {kind} rank went unnoticed (exit status 0)")
    if len(steps_of(out)) != 2:
        sys.exit(f"FAIL: expected the 2 steps before the fault, got:\n{out}")
    return err, secs


def test_dead_rank(dist_train, vit_train, libvit):
    """Rank 1 is killed (SIGKILL) before step 3: the job ends with a failure
    naming it, well before the communicator's timeout would matter."""
    need_mpi(dist_train)
    err, secs = fault_run(dist_train, "die", 20000)
    if "signal 9" not in err and "died or stalled" not in err:
        sys.exit("FAIL: no message names the dead rank")
    if secs > 120:
        sys.exit(f"FAIL: {secs:.0f} s to notice a dead rank")


def test_stalled_rank(dist_train, vit_train, libvit):
    """Rank 1 stops answering before step 3 (alive, asleep): rank 0's gradient
    reduction gives up after the timeout (5 s here) with a message naming
    the operation, and the job ends instead of hanging."""
    need_mpi(dist_train)
    err, secs = fault_run(dist_train, "stall", 5000)
    if "no answer from the other ranks after" not in err or "died or stalled" not in err:
        sys.exit("FAIL: rank 0 did not report the timeout")
    if secs > 120:
        sys.exit(f"FAIL: {secs:.0f} s to give up on a stalled rank")


def read_tensors(path):
    """name -> raw bytes of every tensor of a safetensors file."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        body = f.read()
    return {k: body[v["data_offsets"][0]:v["data_offsets"][1]] for k, v in head.items() if k != "__metadata__"}


def vit_train_args(out, epochs, extra=()):
    return ["--data", DATA, "--img-size", 28, "--patch-size", 4, "--no-patch-norm", "--dim", 32, "--depth", 2,
            "--heads", 2, "--drop", 0, "--attn-drop", 0, "--drop-path", 0, "--epochs", epochs, "--batch-size", 32,
            "--lr", 1e-3, "--steps-per-epoch", 4, "--val-batches", 3, "--workers", 1, "--threads", 1,
            "--augment", "flip", "--json", "--out", out, *extra]


def test_resume(dist_train, vit_train, libvit):
    """vit-train on 2 ranks: 3 epochs straight, and 1 epoch then --resume for
    2 more, end with the same bits in every tensor of last.safetensors and
    the same per-epoch losses; only rank 0 prints (one line per epoch) and
    writes; the 2-rank losses equal 1 rank's within the bound; and a 2-rank
    checkpoint resumed on 1 rank trains a 4th epoch as 2 ranks do, within
    the bound, saying that the rank count changed."""
    need_mpi(dist_train)
    tmp = tempfile.mkdtemp(prefix="vit-dist-resume-")
    try:
        def run(n, out, epochs, extra=()):
            rc, stdout, err, _ = mpirun(n, [vit_train, *vit_train_args(out, epochs, extra)])
            if rc != 0:
                sys.exit(f"FAIL: vit-train on {n} ranks: exit status {rc}\n{err[-3000:]}")
            return [json.loads(line) for line in stdout.splitlines()], err
        straight, err = run(2, f"{tmp}/straight", 3)
        if len(straight) != 3 or "(2 ranks x 16)" not in err:
            sys.exit(f"FAIL: expected 3 epoch lines from rank 0 alone and the batch split:\n{straight}\n{err}")
        first, _ = run(2, f"{tmp}/resumed", 1)
        rest, _ = run(2, f"{tmp}/resumed", 3, ["--resume", f"{tmp}/resumed/last.safetensors"])
        a = read_tensors(f"{tmp}/straight/last.safetensors")
        b = read_tensors(f"{tmp}/resumed/last.safetensors")
        differing = [k for k in a if a[k] != b.get(k)]
        if differing or a.keys() != b.keys():
            sys.exit(f"FAIL: resumed on 2 ranks, these tensors differ from the straight run: {differing[:5]}")
        for x, y in zip(straight, first + rest):
            if (x["train_loss"], x["val_loss"]) != (y["train_loss"], y["val_loss"]):
                sys.exit(f"FAIL: epoch {x['epoch']}: straight {x} resumed {y}")
        # Another rank count continues the same run, equal up to rounding, and says so.
        shutil.copytree(f"{tmp}/resumed", f"{tmp}/other", ignore=lambda d, names: [n for n in names if "last" not in n])
        shutil.copy(f"{tmp}/straight/last.safetensors", f"{tmp}/other/last.safetensors")
        shutil.copy(f"{tmp}/straight/last.optim.safetensors", f"{tmp}/other/last.optim.safetensors")
        more, err = run(1, f"{tmp}/other", 4, ["--resume", f"{tmp}/other/last.safetensors"])
        if "was saved by 2 ranks, this run has 1" not in err or len(more) != 1:
            sys.exit(f"FAIL: resuming 2 ranks' checkpoint on 1 rank:\n{more}\n{err}")
        onward, _ = run(2, f"{tmp}/straight", 4, ["--resume", f"{tmp}/straight/last.safetensors"])
        step4 = abs(more[0]["train_loss"] - onward[0]["train_loss"])
        print(f"epoch 4 resumed on 1 rank from a 2-rank checkpoint: |train loss - 2 ranks'| = {step4:.2g}")
        if step4 > LOSS_BOUND:
            sys.exit(f"FAIL: resumed on another rank count, the loss moved by {step4}")
        one, _ = run(1, f"{tmp}/one", 3)
        worst = max(abs(x["train_loss"] - y["train_loss"]) for x, y in zip(one, straight))
        print(f"resume on 2 ranks: {len(a)} tensors bit-identical to the straight run; "
              f"|train loss(2 ranks) - (1 rank)| <= {worst:.2g} per epoch")
        if worst > LOSS_BOUND:
            sys.exit(f"FAIL: 2-rank vit-train differs from 1 rank by {worst}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_two_hosts(dist_train, vit_train, libvit):
    need_mpi(dist_train)
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "two_hosts.sh")
    p = subprocess.run(["sh", script, dist_train, DATA], capture_output=True, text=True, timeout=500, env=mpi_env())
    print(p.stdout[-4000:])
    print(p.stderr[-4000:])
    sys.exit(p.returncode)


def test_bench(dist_train, vit_train, libvit):
    """vit-bench under mpirun: the workload's batch split over 2 ranks, one
    JSON line (rank 0's) with the communication figures; a batch the ranks
    do not divide is refused."""
    need_mpi(dist_train)
    bench = os.path.join(os.path.dirname(vit_train), "vit-bench")
    rc, out, err, _ = mpirun(2, [bench, "--workload", "fmnist-train", "--threads", 1, "--steps", 2, "--warmup", 1,
                                 "--json"])
    rows = steps_of(out)
    print(out, err[-2000:])
    if rc != 0 or len(rows) != 1:
        sys.exit(f"FAIL: vit-bench on 2 ranks: exit status {rc}, {len(rows)} JSON lines")
    r = rows[0]
    if (r["ranks"], r["batch"], r["rank_batch"]) != (2, 128, 64) or not r["allreduce_alone_ms"] > 0 or \
            r["comm_span_ms"] < r["comm_wait_ms"] or r["comm_wait_ms"] < 0:
        sys.exit(f"FAIL: vit-bench's distributed figures: {r}")
    rc, out, err, _ = mpirun(3, [bench, "--workload", "fmnist-train", "--steps", 1])
    if rc == 0 or "not a multiple of 3 ranks" not in err:
        sys.exit(f"FAIL: a batch of 128 on 3 ranks: exit status {rc}\n{err[-2000:]}")


def test_python_api(dist_train, vit_train, libvit):
    """The communicator through the Python package on 2 ranks (api_check.py)."""
    need_mpi(dist_train)
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "api_check.py")
    os.environ["VIT_LIBRARY"] = libvit
    rc, out, err, _ = mpirun(2, [sys.executable, script])
    print(out, err[-3000:])
    if rc != 0 or out.count("PASS") != 2:
        sys.exit(f"FAIL: api_check.py: exit status {rc}")


def test_no_mpi_refusal(dist_train, vit_train, libvit):
    """In a build without MPI, vit-train started as one of 2 ranks refuses
    (VIT_ERR_UNSUPPORTED) naming the cause, instead of training alone."""
    if dist_train != "none":
        skip("this build has MPI; the refusal is tested in a build without it (-Dmpi=disabled)")
    tmp = tempfile.mkdtemp(prefix="vit-dist-nompi-")
    try:
        env = dict(os.environ, OMPI_COMM_WORLD_SIZE="2", OMPI_COMM_WORLD_RANK="0")
        p = subprocess.run([vit_train, *map(str, vit_train_args(tmp, 1))], capture_output=True, text=True,
                           timeout=120, env=env)
        print(p.stderr)
        if p.returncode == 0 or "built without MPI" not in p.stderr or "unsupported" not in p.stderr:
            sys.exit(f"FAIL: exit status {p.returncode}; expected a refusal naming the missing MPI")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    name, dist_train, vit_train, libvit = sys.argv[1:5]
    globals()["test_" + name](dist_train, vit_train, libvit)
    print(f"PASS: {name}")
