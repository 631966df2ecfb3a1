"""torch.device's place: ``mg.device("cuda" if mg.cuda.is_available() else "cpu")`` and
``x.device.type``. A device is a str ("cpu", "cuda") with torch's ``type`` and ``index``,
so every function that takes a device name takes it, and ``x.device == "cpu"`` holds."""
from __future__ import annotations

from . import backend
from .errors import ArgumentError


class device(str):          # noqa: N801  (torch's name)
    """A device name with ``.type`` ("cpu" or "cuda") and ``.index`` (None unless given)."""

    def __new__(cls, type, index=None):   # noqa: A002  (torch's argument name)
        name, _, number = str(type).partition(":")
        if name not in backend.DEVICES:
            raise ArgumentError(f"device: expected one of {backend.DEVICES} (optionally "
                                f"with an index, 'cuda:0'), got {type!r}")
        if number:
            if index is not None or not number.isdigit():
                raise ArgumentError(f"device: invalid device string {type!r}")
            index = int(number)
        self = super().__new__(cls, name if index is None else f"{name}:{index}")
        self.type, self.index = name, index
        return self


_NAMED: dict = {}


def named(name: str) -> device:
    """The (shared) device object of a backend device name: what Tensor.device returns."""
    d = _NAMED.get(name)
    if d is None:
        d = _NAMED[name] = device(name)
    return d
