"""AdamW (include/vit/optim.h) and its checkpoints."""
from __future__ import annotations

from ctypes import byref, c_double, c_int64
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np

from ._handles import PathLike, Settings, _Handle, check_dtype, live, path_bytes, text_bytes
from ._lib import LIB, strings
from .errors import InvalidArgumentError, NotFoundError, ShapeError, check
from .model import Model, ParamInfo, _find_param, _param_infos

__all__ = ["AdamW", "OPTIM_STATES"]

#: vit_optim_state: PyTorch's names for AdamW's two moments
OPTIM_STATES = ("exp_avg", "exp_avg_sq")


class AdamW(_Handle):
    """torch.optim.AdamW's defaults and update rule over a Model (vit_optimizer).

    ``AdamW(model, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)``;
    also clip_grad_norm (clip the global gradient norm first; 0 = off),
    decay_exempt (no decay for biases, norms, pos_embed, cls_token) and step
    (steps taken). ``opt.lr = ...`` changes the rate between steps (schedules);
    ``opt.last_grad_norm`` is the norm the last step saw. The optimizer keeps
    its model alive.
    """

    _destroy = "vit_optimizer_destroy"
    SETTINGS = Settings("AdamW", {"step": 32, "decay_exempt": 33},
                        {"lr": 1, "beta1": 2, "beta2": 3, "eps": 4, "weight_decay": 5, "clip_grad_norm": 6,
                         "last_grad_norm": 7},
                        bools={"decay_exempt"}, readonly={"last_grad_norm"})

    def __init__(self, model: Model, *, betas: Optional[Sequence[float]] = None, **settings: Any):
        live(model, Model, "model")
        super().__init__(model)
        check(LIB.vit_adamw_create(model._ptr(), byref(self._h)))
        self.model = model
        if betas is not None:
            if len(betas) != 2:
                raise InvalidArgumentError(f"betas must be (beta1, beta2), not {betas!r}")
            settings = {"beta1": betas[0], "beta2": betas[1], **settings}
        for name, value in settings.items():
            self.set(name, value)

    def _model_ptr(self):
        """The model's handle, held through this optimizer's own reference."""
        return self._live().parents[0].ptr

    def set(self, name: str, value: Any) -> None:
        """Change one setting (vit_optimizer_set_float / vit_optimizer_set_int)."""
        key, real, raw = self.SETTINGS.encode(name, value)
        if real:
            check(LIB.vit_optimizer_set_float(self._ptr(), key, raw))
        else:
            check(LIB.vit_optimizer_set_int(self._ptr(), key, raw))

    def get(self, name: str) -> Any:
        """One setting (vit_optimizer_get_float / vit_optimizer_get_int)."""
        key, real = self.SETTINGS.key(name)
        if real:
            out = c_double()
            check(LIB.vit_optimizer_get_float(self._ptr(), key, byref(out)))
            return out.value
        out64 = c_int64()
        check(LIB.vit_optimizer_get_int(self._ptr(), key, byref(out64)))
        return self.SETTINGS.decode(name, out64.value)

    def settings(self) -> Dict[str, Any]:
        """Every setting by name."""
        return {name: self.get(name) for name in self.SETTINGS.names()}

    lr = property(lambda self: self.get("lr"), lambda self, v: self.set("lr", v), doc="The learning rate.")
    steps = property(lambda self: self.get("step"), lambda self, v: self.set("step", v), doc="Steps taken.")
    last_grad_norm = property(lambda self: self.get("last_grad_norm"),
                              doc="The global gradient norm the last step saw (before clipping).")

    def step(self) -> None:
        """One AdamW update of every parameter from its gradient (vit_optimizer_step)."""
        check(LIB.vit_optimizer_step(self._ptr()))

    def zero_grad(self) -> None:
        """Zero the model's gradients (vit_optimizer_zero_grad)."""
        check(LIB.vit_optimizer_zero_grad(self._ptr()))

    # ------------------------------------------------------------ state
    def _infos(self):
        return _param_infos(self._model_ptr())

    def _which(self, which: str) -> int:
        if which not in OPTIM_STATES:
            raise InvalidArgumentError(f"optimizer state {which!r} is not one of {', '.join(OPTIM_STATES)}")
        return OPTIM_STATES.index(which)

    def read_state(self, which: str, name: str) -> np.ndarray:
        """A copy of one parameter's "exp_avg" or "exp_avg_sq" (vit_optimizer_state_read)."""
        code, info = self._which(which), _find_param(self._infos(), name)
        out = np.empty(info.shape, np.float32)
        check(LIB.vit_optimizer_state_read(self._h, code, name.encode(), out.ctypes.data, out.nbytes))
        return out

    def write_state(self, which: str, name: str, value: Any) -> None:
        """Overwrite one parameter's moment with a float32 array of its shape (vit_optimizer_state_write)."""
        code, info = self._which(which), _find_param(self._infos(), name)
        array = np.ascontiguousarray(self._checked(value, info, which))
        check(LIB.vit_optimizer_state_write(self._h, code, name.encode(), array.ctypes.data, array.nbytes))

    @staticmethod
    def _checked(value: Any, info: ParamInfo, which: str) -> np.ndarray:
        array = np.asarray(value)
        check_dtype(array, np.float32, f"{which} of '{info.name}'", "convert explicitly with .astype(np.float32)")
        if array.shape != info.shape:
            raise ShapeError(f"{which} of '{info.name}' is {list(info.shape)}, not {list(array.shape)}")
        return array

    def state_dict(self) -> Dict[str, Any]:
        """{"settings": {...}, "exp_avg": {name: array}, "exp_avg_sq": {name: array}}."""
        state: Dict[str, Any] = {"settings": {k: v for k, v in self.settings().items() if k != "last_grad_norm"}}
        for which in OPTIM_STATES:
            state[which] = {p.name: self.read_state(which, p.name) for p in self._infos()}
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what state_dict() returned. Every moment is checked before any is written."""
        infos = {p.name: p for p in self._infos()}
        checked = []
        for which in OPTIM_STATES:
            moments = state.get(which, {})
            for name, value in moments.items():
                if name not in infos:
                    raise NotFoundError(f"load_state_dict: the model has no parameter {name!r}")
                checked.append((which, name, self._checked(value, infos[name], which)))
        for which, name, array in checked:
            self.write_state(which, name, array)
        for name, value in state.get("settings", {}).items():
            self.set(name, value)

    def save(self, path: PathLike, extra: Optional[Mapping[str, str]] = None) -> None:
        """Write m, v, the step and the settings as safetensors, atomically,
        with extra string entries in the file's metadata, e.g. the epoch, so
        they are saved with the state they belong to (vit_optimizer_save,
        vit_optimizer_save_ex); read them back with libvit.read_metadata."""
        raw = path_bytes(path)
        if not extra:
            check(LIB.vit_optimizer_save(self._ptr(), self._model_ptr(), raw))
            return
        keys = [text_bytes(k, "an extra key").decode() for k in extra]
        values = [text_bytes(v, f"extra '{k}'").decode() for k, v in extra.items()]
        check(LIB.vit_optimizer_save_ex(self._ptr(), self._model_ptr(), raw, len(keys), strings(keys),
                                        strings(values)))

    def load(self, path: PathLike) -> None:
        """Restore m, v, the step and the settings saved with them (vit_optimizer_load)."""
        check(LIB.vit_optimizer_load(self._ptr(), self._model_ptr(), path_bytes(path)))

    def _describe(self) -> str:
        return f"lr={self.lr:g} step={self.steps}"
