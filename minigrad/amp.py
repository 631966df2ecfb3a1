"""torch.amp's names for training scripts: ``GradScaler`` (loss scaling, as torch's: scale
the loss, unscale the gradients, skip steps whose gradients are not finite, grow or shrink
the scale) and ``autocast``, which minigrad cannot do: it computes in the tensors' own
dtype, so an enabled autocast is refused with what to write instead.

    scaler = mg.amp.GradScaler(enabled=False)   # nanoGPT: enabled=(dtype == "float16")
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)                  # before clipping
    scaler.step(optimizer)
    scaler.update()

As in torch, a GradScaler for "cuda" on a machine without a GPU disables itself with a
warning (every method is then a pass-through).
"""
from __future__ import annotations

import math
import warnings

from . import backend
from .errors import ArgumentError, GraphError


class autocast:         # noqa: N801  (torch's name)
    """torch.autocast's place. Disabled (enabled=False) it does nothing; enabled it raises:
    minigrad has no mixed-precision casting (drop it, e.g. contextlib.nullcontext(), or
    convert the model: model.half())."""

    def __init__(self, device_type="cuda", dtype=None, enabled=True, cache_enabled=None):
        self.device_type, self.dtype, self.enabled = device_type, dtype, bool(enabled)

    def __enter__(self):
        if self.enabled:
            raise ArgumentError(f"autocast(device_type={self.device_type!r}): mixed precision "
                                f"is not supported: minigrad computes in each tensor's own "
                                f"dtype. Use contextlib.nullcontext() instead (or convert the "
                                f"model, model.half()), or pass enabled=False")
        return self

    def __exit__(self, *exc):
        return False

    def __call__(self, fn):
        def wrapped(*args, **kwargs):
            with self:
                return fn(*args, **kwargs)
        return wrapped


class GradScaler:
    """Dynamic loss scaling, as torch.amp.GradScaler."""

    def __init__(self, device="cuda", init_scale=2.0 ** 16, growth_factor=2.0,
                 backoff_factor=0.5, growth_interval=2000, enabled=True):
        if enabled and str(device).split(":")[0] == "cuda" and not backend.cuda_is_available():
            warnings.warn("GradScaler is enabled, but CUDA is not available. Disabling.",
                          UserWarning, stacklevel=2)
            enabled = False
        if not growth_factor > 1 or not 0 < backoff_factor < 1:
            raise ArgumentError(f"GradScaler: growth_factor must be > 1 and backoff_factor in "
                                f"(0, 1), got {growth_factor} and {backoff_factor}")
        self._enabled = bool(enabled)
        self._scale, self._growth_tracker = float(init_scale), 0
        self._growth_factor, self._backoff_factor = float(growth_factor), float(backoff_factor)
        self._growth_interval = int(growth_interval)
        self._found_inf = {}        # id(optimizer) -> whether its unscaled grads had inf/NaN

    def is_enabled(self) -> bool:
        return self._enabled

    def get_scale(self) -> float:
        return self._scale if self._enabled else 1.0

    def scale(self, outputs):
        """outputs (a tensor, or a list/tuple of them) times the scale."""
        if not self._enabled:
            return outputs
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(o) for o in outputs)
        return outputs * self._scale

    def unscale_(self, optimizer) -> None:
        """Divide optimizer's gradients by the scale (once per step), noting inf/NaN."""
        if not self._enabled:
            return
        if id(optimizer) in self._found_inf:
            raise GraphError("unscale_() has already been called on this optimizer since the "
                             "last update()")
        inv, found = 1.0 / self._scale, False
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    g = p.grad.array
                    g *= inv
                    found = found or not bool(backend.get_array_module(g).isfinite(g).all())
        self._found_inf[id(optimizer)] = found

    def step(self, optimizer, *args, **kwargs):
        """optimizer.step(), unless the (unscaled) gradients hold inf or NaN."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if id(optimizer) not in self._found_inf:
            self.unscale_(optimizer)
        if self._found_inf[id(optimizer)]:
            return None
        return optimizer.step(*args, **kwargs)

    def update(self, new_scale=None) -> None:
        """Shrink the scale after a skipped step; grow it after growth_interval good ones."""
        if not self._enabled:
            return
        if new_scale is not None:
            self._scale = float(new_scale)
        elif any(self._found_inf.values()):
            self._scale *= self._backoff_factor
            self._growth_tracker = 0
        else:
            self._growth_tracker += 1
            if self._growth_tracker == self._growth_interval:
                grown = self._scale * self._growth_factor
                self._scale = grown if math.isfinite(grown) else self._scale
                self._growth_tracker = 0
        self._found_inf = {}

    def state_dict(self) -> dict:
        if not self._enabled:
            return {}
        return {"scale": self._scale, "growth_factor": self._growth_factor,
                "backoff_factor": self._backoff_factor,
                "growth_interval": self._growth_interval, "_growth_tracker": self._growth_tracker}

    def load_state_dict(self, state_dict: dict) -> None:
        if not self._enabled:
            return
        self._scale = float(state_dict["scale"])
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._growth_tracker = int(state_dict["_growth_tracker"])
