"""ctypes bindings for libvit (``libvit.so.0``).

    import numpy as np, libvit
    ctx = libvit.Context(threads=2, seed=0)
    model = libvit.Model(ctx, img_size=28, patch_size=4, in_channels=1, num_classes=10,
                         dim=96, depth=6, heads=3)
    opt = libvit.AdamW(model, lr=1e-3)
    logits = model.forward(images)            # images: float32 [B, C, H, W]
    loss = model.loss(labels)                 # labels: int32 [B]
    model.backward(); opt.step(); opt.zero_grad()

The library is found through $VIT_LIBRARY, then the system's loader path.
Every failing call raises libvit.Error carrying the status and vit_last_error().
"""
import ctypes
import ctypes.util
import os

import numpy as np

__all__ = ["Error", "Context", "Config", "Model", "AdamW", "load_library", "version"]

_c = ctypes
_vp = _c.c_void_p

STATUS = {0: "ok", 1: "invalid argument", 2: "shape mismatch", 3: "wrong element type", 4: "out of memory",
          5: "input/output error", 6: "malformed data", 7: "unsupported", 8: "call out of order",
          9: "non-finite value", 10: "internal error", 11: "cancelled", 12: "not found"}

CFG_INT = {"img_size": 1, "patch_size": 2, "in_channels": 3, "num_classes": 4, "dim": 5, "depth": 6,
           "heads": 7, "qkv_bias": 8, "patch_norm": 9, "global_pool": 10}
CFG_FLOAT = {"mlp_ratio": 32, "drop_rate": 33, "attn_drop_rate": 34, "drop_path_rate": 35, "ln_eps": 36}
OPT_FLOAT = {"lr": 1, "beta1": 2, "beta2": 3, "eps": 4, "weight_decay": 5, "clip_grad_norm": 6,
             "last_grad_norm": 7}
OPT_INT = {"step": 32, "decay_exempt": 33}
CTX_INT = {"threads": 1, "seed": 2, "device": 3, "device_index": 4, "log_level": 5, "cpu_isa": 6}
CPU_ISA_NAMES = ("baseline", "avx2", "avx512")  # vit_cpu_isa values
DTYPE_F32, DTYPE_I32 = 0, 2


class Error(RuntimeError):
    """A libvit call failed: .status is the vit_status code, str() the detail."""

    def __init__(self, status, detail):
        super().__init__(f"{STATUS.get(status, 'unknown status')}: {detail}")
        self.status = status


_lib = None


def load_library(path=None):
    """Load libvit once; path, $VIT_LIBRARY or the loader's search path."""
    global _lib
    if _lib is not None and path is None:
        return _lib
    path = path or os.environ.get("VIT_LIBRARY") or ctypes.util.find_library("vit") or "libvit.so.0"
    lib = _c.CDLL(path)
    lib.vit_last_error.restype = _c.c_char_p
    lib.vit_version_string.restype = _c.c_char_p
    lib.vit_status_string.restype = _c.c_char_p
    for fn in ("vit_context_destroy", "vit_tensor_destroy", "vit_config_destroy", "vit_model_destroy",
               "vit_optimizer_destroy"):
        getattr(lib, fn).restype = None
        getattr(lib, fn).argtypes = [_vp]
    _lib = lib
    return lib


def _check(status):
    if status != 0:
        raise Error(status, load_library().vit_last_error().decode(errors="replace"))


def version():
    return load_library().vit_version_string().decode()


class _Handle:
    _destroy = None

    def __init__(self):
        self._h = _vp()

    def close(self):
        if self._h and self._h.value:
            getattr(load_library(), self._destroy)(self._h)
            self._h = _vp()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Context(_Handle):
    """Device, threads, seed; every other handle is made from one."""
    _destroy = "vit_context_destroy"

    def __init__(self, **params):
        super().__init__()
        lib = load_library()
        _check(lib.vit_context_create(_c.byref(self._h)))
        for k, v in params.items():
            self.set(k, v)

    def set(self, key, value):
        _check(load_library().vit_context_set_int(self._h, CTX_INT[key], _c.c_int64(int(value))))

    def get(self, key):
        out = _c.c_int64()
        _check(load_library().vit_context_get_int(self._h, CTX_INT[key], _c.byref(out)))
        return out.value


class Tensor(_Handle):
    """A libvit tensor holding a copy of a numpy array (float32 or int32)."""
    _destroy = "vit_tensor_destroy"

    def __init__(self, ctx, array):
        super().__init__()
        array = np.ascontiguousarray(array)
        dtype = {np.dtype(np.float32): DTYPE_F32, np.dtype(np.int32): DTYPE_I32}.get(array.dtype)
        if dtype is None:
            raise TypeError(f"libvit tensors hold float32 or int32, not {array.dtype}")
        self.shape = array.shape
        self.dtype = array.dtype
        shape = (_c.c_int64 * max(1, array.ndim))(*array.shape)
        lib = load_library()
        _check(lib.vit_tensor_create(ctx._h, dtype, array.ndim, shape, _c.byref(self._h)))
        self.write(array)

    def write(self, array):
        array = np.ascontiguousarray(array, dtype=self.dtype)
        _check(load_library().vit_tensor_write(self._h, array.ctypes.data_as(_vp), _c.c_size_t(array.nbytes)))

    def numpy(self):
        out = np.empty(self.shape, dtype=self.dtype)
        _check(load_library().vit_tensor_read(self._h, out.ctypes.data_as(_vp), _c.c_size_t(out.nbytes)))
        return out


class Config(_Handle):
    """A model configuration: preset name and/or keyword settings."""
    _destroy = "vit_config_destroy"

    def __init__(self, preset=None, **settings):
        super().__init__()
        lib = load_library()
        _check(lib.vit_config_create(_c.byref(self._h)))
        if preset:
            _check(lib.vit_config_set_preset(self._h, preset.encode()))
        for k, v in settings.items():
            self.set(k, v)

    def set(self, key, value):
        lib = load_library()
        if key in CFG_INT:
            _check(lib.vit_config_set_int(self._h, CFG_INT[key], _c.c_int64(int(value))))
        elif key in CFG_FLOAT:
            _check(lib.vit_config_set_float(self._h, CFG_FLOAT[key], _c.c_double(float(value))))
        else:
            raise KeyError(f"unknown config key {key!r}")

    def get(self, key):
        lib = load_library()
        if key in CFG_INT:
            out = _c.c_int64()
            _check(lib.vit_config_get_int(self._h, CFG_INT[key], _c.byref(out)))
        else:
            out = _c.c_double()
            _check(lib.vit_config_get_float(self._h, CFG_FLOAT[key], _c.byref(out)))
        return out.value


class Model(_Handle):
    """A Vision Transformer; parameters by timm name as numpy arrays."""
    _destroy = "vit_model_destroy"

    def __init__(self, ctx, config=None, preset=None, **settings):
        super().__init__()
        self.ctx = ctx
        cfg = config or Config(preset, **settings)
        _check(load_library().vit_model_create(ctx._h, cfg._h, _c.byref(self._h)))
        self.num_classes = cfg.get("num_classes")
        self._batch = None

    def set_training(self, on=True):
        _check(load_library().vit_model_set_training(self._h, int(bool(on))))

    def set_grad(self, on=True):
        _check(load_library().vit_model_set_grad(self._h, int(bool(on))))

    def param_names(self):
        lib = load_library()
        n = _c.c_int()
        _check(lib.vit_model_param_count(self._h, _c.byref(n)))
        names = []
        for i in range(n.value):
            name, ndim, shape = _c.c_char_p(), _c.c_int(), (_c.c_int64 * 4)()
            _check(lib.vit_model_param_info(self._h, i, _c.byref(name), _c.byref(ndim), shape))
            names.append((name.value.decode(), tuple(shape[:ndim.value])))
        return names

    def _rw(self, fn, name, array):
        _check(getattr(load_library(), fn)(self._h, name.encode(), array.ctypes.data_as(_vp),
                                           _c.c_size_t(array.nbytes)))

    def state_dict(self):
        return {name: self.param(name, shape) for name, shape in self.param_names()}

    def param(self, name, shape=None):
        shape = shape or dict(self.param_names())[name]
        out = np.empty(shape, np.float32)
        self._rw("vit_model_param_read", name, out)
        return out

    def grad(self, name, shape=None):
        shape = shape or dict(self.param_names())[name]
        out = np.empty(shape, np.float32)
        self._rw("vit_model_grad_read", name, out)
        return out

    def load_state_dict(self, state):
        for name, value in state.items():
            self._rw("vit_model_param_write", name, np.ascontiguousarray(value, dtype=np.float32))

    def forward(self, images):
        images = np.ascontiguousarray(images, dtype=np.float32)
        self._images = Tensor(self.ctx, images)
        self._logits = Tensor(self.ctx, np.zeros((images.shape[0], self.num_classes), np.float32))
        _check(load_library().vit_model_forward(self._h, self._images._h, self._logits._h))
        return self._logits.numpy()

    def loss(self, labels, label_smoothing=0.0):
        self._labels = Tensor(self.ctx, np.ascontiguousarray(labels, dtype=np.int32))
        out = _c.c_float()
        _check(load_library().vit_model_loss(self._h, self._labels._h, _c.c_float(label_smoothing),
                                             _c.byref(out)))
        return out.value

    def backward(self):
        _check(load_library().vit_model_backward(self._h))

    def zero_grad(self):
        _check(load_library().vit_model_zero_grad(self._h))


class AdamW(_Handle):
    """torch.optim.AdamW's defaults and semantics over a Model."""
    _destroy = "vit_optimizer_destroy"

    def __init__(self, model, **params):
        super().__init__()
        self.model = model
        _check(load_library().vit_adamw_create(model._h, _c.byref(self._h)))
        for k, v in params.items():
            self.set(k, v)

    def set(self, key, value):
        lib = load_library()
        if key in OPT_INT:
            _check(lib.vit_optimizer_set_int(self._h, OPT_INT[key], _c.c_int64(int(value))))
        else:
            _check(lib.vit_optimizer_set_float(self._h, OPT_FLOAT[key], _c.c_double(float(value))))

    def get(self, key):
        lib = load_library()
        if key in OPT_INT:
            out = _c.c_int64()
            _check(lib.vit_optimizer_get_int(self._h, OPT_INT[key], _c.byref(out)))
        else:
            out = _c.c_double()
            _check(lib.vit_optimizer_get_float(self._h, OPT_FLOAT[key], _c.byref(out)))
        return out.value

    def step(self):
        _check(load_library().vit_optimizer_step(self._h))

    def zero_grad(self):
        _check(load_library().vit_optimizer_zero_grad(self._h))
