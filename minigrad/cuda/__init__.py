"""torch.cuda's everyday names on minigrad (whose GPU arrays are CuPy's):
``mg.cuda.is_available()``, ``device_count()``, ``manual_seed(_all)``, ``synchronize()``,
``is_bf16_supported()`` (False: NumPy and CuPy have no bfloat16) and ``mg.cuda.amp``
(GradScaler, autocast; see amp.py)."""
from __future__ import annotations

from .. import backend
from . import amp  # noqa: F401  (mg.cuda.amp, as torch.cuda.amp: minigrad.amp)


def is_available() -> bool:
    """True when CuPy imports and a CUDA device answers."""
    return backend.cuda_is_available()


def device_count() -> int:
    """How many CUDA devices CuPy sees (0 without CuPy or a GPU)."""
    if not backend.cuda_is_available():
        return 0
    return int(backend.cupy_module().cuda.runtime.getDeviceCount())


def manual_seed(seed: int) -> None:
    """Seed minigrad's generators (one seed covers the CPU and the GPU, as mg.manual_seed)."""
    backend.manual_seed(seed)


manual_seed_all = manual_seed


def synchronize(device=None) -> None:
    """Wait for the GPU's queued work (nothing to wait for without one)."""
    if backend.cuda_is_available():
        backend.synchronize("cuda")


def is_bf16_supported() -> bool:
    """False: minigrad's arrays (NumPy, CuPy) have no bfloat16 dtype."""
    return False
