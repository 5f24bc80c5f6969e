"""Errors, Context, Tensor, and handle lifetimes."""
import gc
import tracemalloc

import numpy as np
import pytest

import libvit
from conftest import TINY, images


# ------------------------------------------------------------------ errors
def test_one_error_class_per_status():
    expected = {1: (libvit.InvalidArgumentError, ValueError), 2: (libvit.ShapeError, ValueError),
                3: (libvit.DtypeError, TypeError), 4: (libvit.OutOfMemoryError, MemoryError),
                5: (libvit.InputOutputError, OSError), 6: (libvit.FormatError, ValueError),
                7: (libvit.UnsupportedError, NotImplementedError), 8: (libvit.StateError, RuntimeError),
                9: (libvit.NumericError, ArithmeticError), 10: (libvit.InternalError, RuntimeError),
                11: (libvit.CancelledError, RuntimeError), 12: (libvit.NotFoundError, LookupError)}
    for status, (cls, builtin) in expected.items():
        assert cls.status == status and issubclass(cls, libvit.VitError) and issubclass(cls, builtin)
        e = libvit.errors.error_for(status, "detail")
        assert type(e) is cls and e.detail == "detail"
        assert str(e) == f"{libvit.status_string(status)}: detail"
    assert libvit.status_string(0) == "ok" and libvit.status_string(2) == "shape mismatch"
    unknown = libvit.errors.error_for(99, "x")
    assert type(unknown) is libvit.VitError and unknown.status == 99
    assert libvit.Error is libvit.VitError


def test_errors_carry_the_library_message(ctx):
    with pytest.raises(libvit.InvalidArgumentError) as e:
        ctx.set("threads", 5000)
    assert e.value.status == 1 and "VIT_CTX_THREADS: 5000 is out of range 0..4096" in str(e.value)
    # the message is the library's, and it is cleared once raised
    assert libvit.load_library().vit_last_error() == b""


# ----------------------------------------------------------------- context
def test_context_settings():
    with libvit.Context(threads=2, seed=7, log_level="info") as ctx:
        assert (ctx.threads, ctx.seed, ctx.device, ctx.get("log_level")) == (2, 7, "cpu", "info")
        assert ctx.get("device_index") == 0
        ctx.threads, ctx.seed = 1, 2**64 - 1  # the seed is a uint64
        assert ctx.get("threads") == 1 and ctx.seed == 2**64 - 1
        assert ctx.cpu_isa in libvit.CPU_ISA_NAMES and ctx.get("cpu_isa") == ctx.cpu_isa
        ctx.set("log_level", 3)
        assert ctx.get("log_level") == "debug"
        assert "threads=1" in repr(ctx)
    assert repr(ctx) == "<libvit.Context closed>"


def test_context_refuses_what_it_cannot_take(ctx):
    with pytest.raises(libvit.InvalidArgumentError, match=r"unknown context setting 'thread' \(did you mean "
                                                          r"'threads'\?\); valid: threads, seed, device"):
        ctx.set("thread", 2)
    with pytest.raises(libvit.InvalidArgumentError, match="did you mean 'threads'"):
        libvit.Context(thread=2)
    with pytest.raises(TypeError, match="context setting 'threads' must be an integer, not float 2.0"):
        ctx.set("threads", 2.0)
    with pytest.raises(TypeError, match="must be an integer"):
        ctx.set("seed", "1")
    with pytest.raises(libvit.InvalidArgumentError, match="outside 0..2"):
        ctx.seed = -1
    with pytest.raises(libvit.InvalidArgumentError, match="read-only"):
        ctx.set("cpu_isa", "avx2")
    with pytest.raises(libvit.UnsupportedError, match="CUDA"):
        ctx.device = "cuda"   # no GPU here, or a build without the module: either way the reason
    assert ctx.device == "cpu"
    assert ctx.precision == "fp32"
    with pytest.raises(libvit.UnsupportedError, match="bf16"):
        ctx.precision = "bf16"
    ctx.precision = "default"
    assert ctx.precision == "fp32"
    with pytest.raises(libvit.InvalidArgumentError, match="unknown context setting 'device' value 'gpu'"):
        ctx.device = "gpu"


def test_log_callback(tmp_path):
    """Messages reach the callback instead of stderr: a CIFAR-10 folder without
    batches.meta.txt is read with the standard names, said at level info."""
    (tmp_path / "test_batch.bin").write_bytes(bytes(3073))
    got = []
    with libvit.Context(log_level="info") as ctx:
        ctx.set_log(lambda level, message: got.append((level, message)))
        assert len(libvit.Dataset(ctx, tmp_path, split="val")) == 1
        assert got and got[0][0] == "info" and "batches.meta.txt missing" in got[0][1]
        ctx.set_log(None)
        with pytest.raises(TypeError):
            ctx.set_log("print")


# ------------------------------------------------------------------ tensors
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.uint8])
def test_tensor_round_trip(ctx, dtype):
    a = (np.arange(24) % 7).astype(dtype).reshape(2, 3, 4)
    t = libvit.Tensor(ctx, a)
    assert t.shape == (2, 3, 4) and t.dtype == a.dtype and t.ndim == 3 and len(t) == 2
    assert t.numel == 24 and t.itemsize == a.itemsize and t.nbytes == a.nbytes and t.device == "cpu"
    assert np.array_equal(t.read(), a) and np.array_equal(t.numpy(), a) and np.array_equal(np.asarray(t), a)
    assert f"{a.dtype.name} [2, 3, 4] on cpu" in repr(t)
    z = libvit.Tensor.zeros(ctx, (5,), dtype)
    assert z.dtype == np.dtype(dtype) and not z.read().any()
    assert np.asarray(t, dtype=np.float64).dtype == np.float64  # an explicit conversion


def test_tensor_numpy_is_a_zero_copy_view(ctx):
    t = libvit.Tensor.zeros(ctx, (3, 4))
    view = t.numpy()
    view[1, 2] = 5.0
    assert t.read()[1, 2] == 5.0  # the view writes into the tensor
    t.copy_from(np.full((3, 4), 2, np.float32))
    assert (view == 2).all()  # and sees what is written into it
    assert np.shares_memory(view, t.numpy())
    data = libvit.load_library()
    ptr = libvit.core.c_void_p()
    libvit.errors.check(data.vit_tensor_data(t._h, libvit.core.byref(ptr)))
    assert view.__array_interface__["data"][0] == ptr.value


def test_a_view_keeps_the_tensor_alive(ctx):
    t = libvit.Tensor(ctx, np.arange(1000, dtype=np.int32))
    view = t.numpy()
    t.close()
    with pytest.raises(libvit.StateError, match="this Tensor is closed"):
        t.numpy()
    del t
    gc.collect()
    for _ in range(50):  # memory freed under the view would be reused by these
        libvit.Tensor(ctx, np.full(1000, -1, np.int32))
    assert np.array_equal(view, np.arange(1000))


def test_from_numpy_copies_once(ctx):
    """One copy straight from the array's memory: no temporary numpy array,
    contiguous or strided (tracemalloc sees numpy's buffers, not libvit's)."""
    big = np.random.default_rng(0).standard_normal((256, 1024)).astype(np.float32)  # 1 MiB
    strided = big[:, ::2]
    for source in (big, strided):
        tracemalloc.start()
        t = libvit.Tensor.from_numpy(ctx, source)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 64 * 1024, f"{peak} bytes allocated for a {source.nbytes}-byte array"
        assert np.array_equal(t.read(), source)


def test_tensor_refuses_what_it_cannot_hold(ctx):
    with pytest.raises(libvit.DtypeError, match="float32, int32 or uint8, not float64"):
        libvit.Tensor(ctx, np.zeros(3))
    with pytest.raises(libvit.DtypeError, match="not int64"):
        libvit.Tensor(ctx, [1, 2, 3])
    with pytest.raises(libvit.ShapeError, match="1 to 4 dimensions"):
        libvit.Tensor(ctx, np.float32(1))
    with pytest.raises(libvit.ShapeError, match="1 to 4 dimensions"):
        libvit.Tensor.zeros(ctx, (1, 1, 1, 1, 1))
    with pytest.raises(libvit.ShapeError, match="each > 0"):
        libvit.Tensor.zeros(ctx, (2, 0))
    with pytest.raises(TypeError, match="ctx must be a libvit.Context"):
        libvit.Tensor(None, np.zeros(3, np.float32))
    t = libvit.Tensor.zeros(ctx, (2, 3))
    with pytest.raises(libvit.DtypeError, match="must be float32, not float64"):
        t.copy_from(np.zeros((2, 3)))
    with pytest.raises(libvit.ShapeError, match=r"\(3, 2\) is not the tensor's \(2, 3\)"):
        t.copy_from(np.zeros((3, 2), np.float32))
    t.write(np.ones((2, 3), np.float32)[:, ::-1])  # a strided array copies through the view
    assert t.read().sum() == 6


def test_closed_handles_raise_before_c(ctx, tmp_path):
    """Every handle kind, once closed, raises StateError instead of reaching C."""
    model = libvit.Model(ctx, **TINY)
    opt = libvit.AdamW(model)
    cfg = libvit.Config()
    tensor = libvit.Tensor.zeros(ctx, (2,))
    tf = libvit.Transform(ctx, size=8)
    (tmp_path / "test_batch.bin").write_bytes(bytes(3073))
    ds = libvit.Dataset(ctx, tmp_path, split="val")
    loader = libvit.DataLoader(ds, tf, 1)
    calls = [(model, lambda: model.forward(images(1))), (opt, opt.step), (cfg, lambda: cfg.get("dim")),
             (tensor, tensor.read), (tf, lambda: tf.get("size")), (ds, lambda: len(ds)),
             (loader, lambda: next(iter(loader))), (ctx, lambda: ctx.threads)]
    for handle, call in calls:
        handle.close()
        handle.close()  # idempotent
        assert handle.closed
        with pytest.raises(libvit.StateError, match=f"this {type(handle).__name__} is closed"):
            call()
    with pytest.raises(libvit.StateError):
        libvit.Model(ctx, **TINY)
    with pytest.raises(libvit.StateError):
        with cfg:
            pass


# --------------------------------------------------------------- lifetimes
def rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4


def test_ten_thousand_tensors_do_not_grow_the_process(ctx):
    def churn(n):
        for i in range(n):
            t = libvit.Tensor(ctx, np.full((16, 16), i, np.float32))
            view = t.numpy()
            assert view[0, 0] == i
    churn(1000)  # warm up allocator pools
    gc.collect()
    before = rss_kib()
    churn(10000)
    gc.collect()
    grown = rss_kib() - before
    assert grown < 2048, f"the process grew by {grown} KiB over 10,000 tensors"


def test_children_outlive_their_parents_python_objects():
    ctx = libvit.Context(threads=1)
    model = libvit.Model(ctx, **TINY)
    tf = libvit.Transform(ctx, size=8)
    del ctx  # the Python object goes; the C context lives as long as the model needs it
    gc.collect()
    assert model.forward(images(2)).shape == (2, 3)
    with libvit.Context(threads=1) as ctx:
        model2 = libvit.Model(ctx, **TINY)
        tensor = libvit.Tensor(ctx, np.ones(3, np.float32))
    assert ctx.closed  # closed by `with`, yet its model and tensor work
    assert model2.forward(images(1)).shape == (1, 3) and tensor.read().sum() == 3
    opt = libvit.AdamW(model2, lr=0.1)
    model2.loss([0])
    model2.backward()
    model2.close()  # the optimizer keeps the C model for its steps
    before = opt.read_state("exp_avg", "head.bias").copy()
    opt.step()
    assert not np.array_equal(opt.read_state("exp_avg", "head.bias"), before)
    assert tf.get("size") == 8
