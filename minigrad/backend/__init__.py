"""The one place that knows about array modules: NumPy on "cpu", CuPy on "cuda".

Every op is written once against ``xp`` (the array module of its inputs, as in
chainer). This is the only file in the project that imports CuPy; a test checks
that. CuPy is imported lazily, so a machine without it (or without a GPU) never
pays for it and gets a clear error only when it asks for "cuda".

The backend's rooms:

* here: devices, ``xp`` lookup, the random generators, and the switch that picks the
  compiled CPU loops for a call (``kernels_for``, ``MINIGRAD_KERNELS``);
* ``threads.py``: minigrad's CPU thread pool, the BLAS hold and the glibc malloc tuning
  (done on minigrad's first CPU work, never at import);
* ``kernels.py``: the compiled loops themselves (Numba, imported on first use);
* ``mathfns.py``: array functions NumPy lacks or runs slowly (tanh, erf, scatter-add);
* ``distributed.py``: NCCL / CUDA-aware MPI helpers for ``minigpt.ddp``.

Importing minigrad changes nothing in the process: no CuPy, no numba, no threads, no
malloc tuning until they are needed.
"""
from __future__ import annotations

import os

import numpy as np

DEVICES = ("cpu", "cuda")

_cupy = None            # the cupy module once imported and initialised successfully
_cupy_error = None      # why importing / initialising cupy failed, if it did
_default_device = None  # resolved lazily from MINIGRAD_DEVICE
_np_rng = None          # NumPy's generator, made on first use (numpy.random loads then)


# ----------------------------------------------------------------------------- CuPy
def cupy_module():
    """The cupy module, imported but not initialised (no CUDA context is made, unlike
    ``cuda_is_available``): distributed.py picks each rank's GPU before any context
    exists. Raises ImportError without CuPy."""
    import cupy  # the only cupy import in the project (with cupyx and nccl below)
    return cupy


def cupyx_module():
    """cupyx, CuPy's extras (``scatter_add``, ``scipy.special``), for mathfns.py."""
    import cupyx
    import cupyx.scipy.special  # noqa: F401  (a submodule: loaded so the attribute exists)
    return cupyx


def nccl_module():
    """``cupy.cuda.nccl`` (NCCL's bindings), for distributed.py."""
    from cupy.cuda import nccl
    return nccl


def _load_cupy():
    """Import CuPy and check that a GPU answers; remember the failure reason."""
    global _cupy, _cupy_error
    if _cupy is not None or _cupy_error is not None:
        return _cupy
    try:
        cupy = cupy_module()
        cupy.cuda.runtime.getDeviceCount()
        cupy.zeros(1)  # fails here when the driver or the device is missing
        _cupy = cupy
    except Exception as exc:  # ImportError, CUDARuntimeError, ...
        _cupy_error = f"{type(exc).__name__}: {exc}"
    return _cupy


def cuda_is_available() -> bool:
    """True when CuPy imports and a CUDA device answers."""
    return _load_cupy() is not None


# ----------------------------------------------------------------------------- devices
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
def _numpy_rng():
    """The NumPy generator behind rng("cpu"), seeded from the OS until manual_seed."""
    global _np_rng
    if _np_rng is None:
        _np_rng = np.random.default_rng()
    return _np_rng


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
    return _numpy_rng()


def random_normal(shape, dtype, device: str = "cpu"):
    """Standard normal samples of ``shape`` and ``dtype`` from the device's seeded generator."""
    dtype = np.dtype(dtype)
    if check_device(device) == "cuda":
        return _cupy.random.standard_normal(shape, dtype=dtype)
    if dtype in (np.float32, np.float64):
        return _numpy_rng().standard_normal(shape, dtype=dtype)
    return _numpy_rng().standard_normal(shape).astype(dtype)


def random_uniform(shape, dtype, device: str = "cpu"):
    """Uniform samples in [0, 1) of ``shape`` and ``dtype`` from the device's seeded generator."""
    dtype = np.dtype(dtype)
    if check_device(device) == "cuda":
        return _cupy.random.random_sample(shape, dtype=dtype)
    if dtype in (np.float32, np.float64):
        return _numpy_rng().random(shape, dtype=dtype)
    return _numpy_rng().random(shape).astype(dtype)


def get_rng_state() -> dict:
    """The NumPy generator's state as plain JSON-able data (for checkpoints)."""
    return _numpy_rng().bit_generator.state


def set_rng_state(state: dict) -> None:
    _numpy_rng().bit_generator.state = state


# ----------------------------------------------------------------------------- compiled loops
# The fused ops' inner loops also exist compiled (kernels.py, Numba): one pass over memory
# instead of one per NumPy ufunc. Whether a call runs them is decided here, beside the array
# module, by the one switch that the fused ops and Adam share. It lives here rather than in
# kernels.py because numba compiles the loops when their module is imported, and importing
# minigrad must not import numba. The loops need no cache-sized blocks: the fused ops spread
# them over the cores with threads.split_rows.
_kernels_on = os.environ.get("MINIGRAD_KERNELS", "1") != "0"
_kernels = None          # the kernels module once imported
_kernels_error = None    # why it could not be imported, if it could not


def kernels_for(xp, *arrays):
    """The compiled loops (module minigrad.backend.kernels) when a fused op or Adam should
    run them on these arrays: NumPy arrays, all float32 or all float64, C-contiguous, loops
    switched on (MINIGRAD_KERNELS != 0, set_kernels_enabled) and numba importable. Otherwise
    None, and the caller runs its own code, written against xp (the path CuPy takes)."""
    if xp is not np or not _kernels_on:
        return None
    dtype = arrays[0].dtype
    if dtype != np.float32 and dtype != np.float64:
        return None
    for a in arrays:
        if a.dtype != dtype or not a.flags.c_contiguous:
            return None
    return _load_kernels()


def _load_kernels():
    """The kernels module, imported on first use; None when numba cannot be imported."""
    global _kernels, _kernels_error
    if _kernels is None and _kernels_error is None:
        try:
            from . import kernels
            _kernels = kernels
        except ImportError as exc:
            _kernels_error = f"{type(exc).__name__}: {exc}"
    return _kernels


def warm_up_kernels(dtype=np.float32) -> bool:
    """Load the compiled loops for ``dtype`` now (compiling them on a first run), so that
    neither the first step's time nor a memory measurement pays for it. False when the
    loops are off or numba is missing."""
    loops = _load_kernels() if _kernels_on else None
    if loops is not None:
        loops.warm_up(dtype)
    return loops is not None


def set_kernels_enabled(on: bool) -> bool:
    """Switch the compiled loops on or off for this process; returns the previous setting.
    Off, every fused op and Adam run their NumPy code (what tests compare the loops with)."""
    global _kernels_on
    old, _kernels_on = _kernels_on, bool(on)
    return old


def kernels_status() -> str:
    """'on', 'off (MINIGRAD_KERNELS=0 or set_kernels_enabled(False))', or
    'off (<why numba failed to import>)'."""
    if not _kernels_on:
        return "off (MINIGRAD_KERNELS=0 or set_kernels_enabled(False))"
    if _load_kernels() is None:
        return f"off ({_kernels_error})"
    return "on"


# The names callers use as minigrad.backend.<name> (ops, fused ops, tests); these modules
# import the names above, so they come last. The thread settings (NUM_THREADS, ...) are
# copies: to change one, set it on minigrad.backend.threads.
from .mathfns import erf, index_add_rows, scatter_add, tanh  # noqa: E402,F401
from .threads import (BLOCK_SIZE, NUM_THREADS, PARALLEL_MIN_FLOPS,  # noqa: E402,F401
                      PARALLEL_MIN_SIZE, blas_rows, blas_tasks, parallel_for, run_parallel,
                      split_rows)
