"""The one place that knows about array modules: NumPy on "cpu", CuPy on "cuda".

Every op is written once against ``xp`` (the array module of its inputs, as in
chainer). This is the only file in the project that imports CuPy; a test checks
that. CuPy is imported lazily, so a machine without it (or without a GPU) never
pays for it and gets a clear error only when it asks for "cuda".
"""
from __future__ import annotations

import math
import os

import numpy as np

DEVICES = ("cpu", "cuda")

_cupy = None            # the cupy module once imported successfully
_cupy_error = None      # why importing / initialising cupy failed, if it did
_default_device = None  # resolved lazily from MINIGRAD_DEVICE
_np_rng = np.random.default_rng()


def _tune_malloc():
    """Keep freed large arrays in glibc's heap for reuse.

    By default glibc hands every large array fresh pages from mmap and returns them on
    free, so each op's output pays ~1000 page faults per 4 MB: for elementwise ops that
    costs ten times the arithmetic. Raising the mmap and trim thresholds makes freed
    blocks reusable, as a caching allocator would; the peak memory stays the same.
    Linux/glibc only; MINIGRAD_MALLOC_TUNING=0 turns it off."""
    if os.environ.get("MINIGRAD_MALLOC_TUNING", "1") == "0" or not os.uname().sysname == "Linux":
        return False
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        return bool(libc.mallopt(M_MMAP_THRESHOLD, 1 << 30) and
                    libc.mallopt(M_TRIM_THRESHOLD, 1 << 30))
    except (OSError, AttributeError):   # not glibc (musl, macOS): leave it alone
        return False


MALLOC_TUNED = _tune_malloc()


def _load_cupy():
    """Import CuPy and check that a GPU answers; remember the failure reason."""
    global _cupy, _cupy_error
    if _cupy is not None or _cupy_error is not None:
        return _cupy
    try:
        import cupy  # the only cupy import in the project
        cupy.cuda.runtime.getDeviceCount()
        cupy.zeros(1)  # fails here when the driver or the device is missing
        _cupy = cupy
    except Exception as exc:  # ImportError, CUDARuntimeError, ...
        _cupy_error = f"{type(exc).__name__}: {exc}"
    return _cupy


def cuda_is_available() -> bool:
    """True when CuPy imports and a CUDA device answers."""
    return _load_cupy() is not None


def check_device(device) -> str:
    """Normalise a device name ("cpu", "cuda", "cuda:0") or raise a clear error."""
    if device is None:
        return get_default_device()
    name = str(device).split(":")[0]
    if name not in DEVICES:
        raise ValueError(f"device: expected one of {DEVICES}, got {device!r}")
    if name == "cuda" and not cuda_is_available():
        raise RuntimeError(
            "device='cuda' was requested but CuPy or a GPU is not available "
            f"({_cupy_error}). Install CuPy (pip install 'minigrad-minigpt[cuda]') on a machine "
            "with an NVIDIA GPU, or use device='cpu'.")
    return name


def set_default_device(device: str) -> None:
    """Device used by constructors when none is given (also set by MINIGRAD_DEVICE)."""
    global _default_device
    _default_device = check_device(device)


def get_default_device() -> str:
    global _default_device
    if _default_device is None:
        env = os.environ.get("MINIGRAD_DEVICE", "cpu")
        if env.split(":")[0] not in DEVICES:
            raise ValueError(f"MINIGRAD_DEVICE: expected one of {DEVICES}, got {env!r}")
        _default_device = "cpu"  # so check_device below cannot recurse
        _default_device = check_device(env)
    return _default_device


def xp_for(device: str):
    """The array module for a device name."""
    return _cupy if check_device(device) == "cuda" else np


def device_of(array) -> str:
    """"cpu" for NumPy arrays (and scalars), "cuda" for CuPy arrays."""
    if isinstance(array, np.ndarray) or _cupy is None:
        return "cpu"
    return "cuda" if isinstance(array, _cupy.ndarray) else "cpu"


def get_array_module(array):
    """NumPy or CuPy, whichever owns ``array`` (chainer's ``xp`` idiom)."""
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return _cupy
    return np


def to_device(array, device: str):
    """Move an array to a device (a copy only when it changes device)."""
    device = check_device(device)
    if device_of(array) == device:
        return array
    if device == "cuda":
        return _cupy.asarray(array)
    return _cupy.asnumpy(array)


def to_numpy(array) -> np.ndarray:
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return _cupy.asnumpy(array)
    return np.asarray(array)


def synchronize(device: str = "cpu") -> None:
    """Wait for queued GPU work (for timing); nothing to do on the CPU."""
    if device == "cuda" and _cupy is not None:
        _cupy.cuda.Device().synchronize()


# ----------------------------------------------------------------------------- RNG
def manual_seed(seed: int) -> None:
    """Seed every backend's random generator (NumPy always, CuPy when loaded)."""
    global _np_rng
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"manual_seed: seed must be a non-negative int, got {seed!r}")
    _np_rng = np.random.default_rng(int(seed))
    if _load_cupy() is not None:
        _cupy.random.seed(int(seed))


def rng(device: str = "cpu"):
    """The seeded random generator of a device (numpy.random.Generator or cupy.random)."""
    if check_device(device) == "cuda":
        return _cupy.random
    return _np_rng


def random_normal(shape, dtype, device: str = "cpu"):
    """Standard normal samples of ``shape`` and ``dtype`` from the device's seeded generator."""
    dtype = np.dtype(dtype)
    if check_device(device) == "cuda":
        return _cupy.random.standard_normal(shape, dtype=dtype)
    if dtype in (np.float32, np.float64):
        return _np_rng.standard_normal(shape, dtype=dtype)
    return _np_rng.standard_normal(shape).astype(dtype)


def random_uniform(shape, dtype, device: str = "cpu"):
    """Uniform samples in [0, 1) of ``shape`` and ``dtype`` from the device's seeded generator."""
    dtype = np.dtype(dtype)
    if check_device(device) == "cuda":
        return _cupy.random.random_sample(shape, dtype=dtype)
    if dtype in (np.float32, np.float64):
        return _np_rng.random(shape, dtype=dtype)
    return _np_rng.random(shape).astype(dtype)


def get_rng_state() -> dict:
    """The NumPy generator's state as plain JSON-able data (for checkpoints)."""
    return _np_rng.bit_generator.state


def set_rng_state(state: dict) -> None:
    _np_rng.bit_generator.state = state


# ----------------------------------------------------------------------------- kernels
def scatter_add(target, index, values) -> None:
    """``target[index] += values`` where repeated indices accumulate (in place)."""
    if _cupy is not None and isinstance(target, _cupy.ndarray):
        import cupyx  # part of the cupy package
        cupyx.scatter_add(target, index, values)
    else:
        np.add.at(target, index, values)


def index_add_rows(target, index, values) -> None:
    """``target[index] += values`` for a 1-D or N-D integer ``index`` into axis 0, with
    repeated rows accumulating: the embedding gradient. Sorting the rows and summing
    each run with ``add.reduceat`` beats ``np.add.at`` several times on CPU."""
    if _cupy is not None and isinstance(target, _cupy.ndarray):
        scatter_add(target, index, values)
        return
    flat = index.reshape(-1)
    rows = values.reshape((flat.size,) + target.shape[1:])
    order = np.argsort(flat, kind="stable")
    sorted_idx = flat[order]
    starts = np.flatnonzero(np.concatenate(([True], sorted_idx[1:] != sorted_idx[:-1])))
    target[sorted_idx[starts]] += np.add.reduceat(rows[order], starts, axis=0)


def tanh(x):
    """tanh as 1 - 2 / (1 + e^(2x)): NumPy's float32 exp is vectorised (AVX2), its
    tanh is not, so this is ~2.5x faster on CPU; exact limits at +-inf (no NaN)."""
    xp = get_array_module(x)
    if xp is not np:
        return xp.tanh(x)
    with np.errstate(over="ignore"):
        e = np.asarray(x * 2)       # a new array (0-d results come back as scalars)
        np.exp(e, out=e)
    e += 1
    np.reciprocal(e, out=e)
    e *= -2
    e += 1
    return e


def erf(x):
    """The error function elementwise (exact GELU needs it; NumPy has none)."""
    if _cupy is not None and isinstance(x, _cupy.ndarray):
        import cupyx.scipy.special
        return cupyx.scipy.special.erf(x)
    try:
        from scipy.special import erf as scipy_erf
        return scipy_erf(x)
    except ImportError:
        return _np_erf(x).astype(x.dtype, copy=False)


_np_erf = np.vectorize(math.erf, otypes=[np.float64])
