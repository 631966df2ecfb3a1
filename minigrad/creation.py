"""Constructors: minigrad.tensor, zeros, ones, randn, ... (torch's names and defaults)."""
from __future__ import annotations

import math
import numbers

import numpy as np

from . import backend
from .errors import ArgumentError, DTypeError
from .dtypes import python_default
from .tensor import DEFAULT_FLOAT, Tensor, _shape_arg, as_dtype


def tensor(data, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A new tensor from a list, scalar, NumPy/CuPy array or Tensor (copied), as
    torch.tensor: Python floats become float32, ints int64, bools bool; an array (or
    NumPy scalar) or a Tensor keeps its dtype (np.array([0.5]) stays float64)."""
    if isinstance(data, Tensor):
        data = data.array
    if not isinstance(data, np.ndarray) and backend.device_of(data) == "cpu":
        from_python = not isinstance(data, np.generic)
        try:
            data = np.asarray(data)
        except ValueError as exc:   # ragged nested lists
            raise ArgumentError(f"tensor: data must be a rectangular nested list (every row "
                                f"the same length), a scalar or an array; got a ragged "
                                f"{type(data).__name__} ({exc})") from None
        if dtype is None and from_python:
            dtype = python_default(data)
    data = data.copy()
    return Tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)


def _check_shape(fn: str, shape) -> tuple:
    """``shape`` (sizes, or one tuple/list of sizes) as a tuple of non-negative ints."""
    shape = _shape_arg(shape)
    for s in shape:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0:
            raise ArgumentError(f"{fn}: sizes must be non-negative ints, got {shape}")
    return tuple(int(s) for s in shape)


def _full(shape, value, dtype, device, requires_grad, fn="shape"):
    shape = _check_shape(fn, shape)
    if not isinstance(value, numbers.Number):
        if not (hasattr(value, "dtype") and getattr(value, "ndim", 1) == 0):
            raise DTypeError(f"{fn}: fill_value must be a number, got "
                             f"{type(value).__name__} {value!r}")
    dtype = as_dtype(dtype) or DEFAULT_FLOAT
    xp = backend.xp_for(device or backend.get_default_device())
    return _leaf(xp.full(shape, value, dtype=dtype), requires_grad)


def _leaf(data, requires_grad):
    return Tensor._make(data, False).requires_grad_(requires_grad)


def zeros(*shape, dtype=None, device=None, requires_grad=False):
    return _full(shape, 0, dtype, device, requires_grad, "zeros")


def ones(*shape, dtype=None, device=None, requires_grad=False):
    return _full(shape, 1, dtype, device, requires_grad, "ones")


def empty(*shape, dtype=None, device=None, requires_grad=False):
    return _full(shape, 0, dtype, device, requires_grad, "empty")


def full(shape, fill_value, dtype=None, device=None, requires_grad=False):
    if dtype is None and isinstance(fill_value, (bool, np.bool_)):
        dtype = np.bool_                # torch: the fill value's type picks the dtype
    elif dtype is None and isinstance(fill_value, (int, np.integer)):
        dtype = np.int64
    return _full(shape, fill_value, dtype, device, requires_grad, "full")


def zeros_like(t, dtype=None, device=None, requires_grad=False):
    return zeros(t.shape, dtype=dtype or t.dtype, device=device or t.device,
                 requires_grad=requires_grad)


def ones_like(t, dtype=None, device=None, requires_grad=False):
    return ones(t.shape, dtype=dtype or t.dtype, device=device or t.device,
                requires_grad=requires_grad)


def full_like(t, fill_value, dtype=None, device=None, requires_grad=False):
    return full(t.shape, fill_value, dtype=dtype or t.dtype, device=device or t.device,
                requires_grad=requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    if end is None:
        start, end = 0, start
    for name, v in (("start", start), ("end", end), ("step", step)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise ArgumentError(f"arange: {name} must be a finite number, got {v!r}")
    if step == 0:
        raise ArgumentError("arange: step must not be 0")
    xp = backend.xp_for(device or backend.get_default_device())
    data = xp.arange(start, end, step)
    if dtype is None and data.dtype.kind == "f":
        dtype = DEFAULT_FLOAT
    return _leaf(data.astype(as_dtype(dtype) or data.dtype, copy=False), requires_grad)


def randn(*shape, dtype=None, device=None, requires_grad=False):
    """Standard normal samples from the seeded generator (see manual_seed)."""
    device = backend.check_device(device)
    shape = _check_shape("randn", shape)
    data = backend.random_normal(shape, as_dtype(dtype) or DEFAULT_FLOAT, device)
    return _leaf(data, requires_grad)


def rand(*shape, dtype=None, device=None, requires_grad=False):
    """Uniform samples in [0, 1) from the seeded generator."""
    device = backend.check_device(device)
    shape = _check_shape("rand", shape)
    data = backend.random_uniform(shape, as_dtype(dtype) or DEFAULT_FLOAT, device)
    return _leaf(data, requires_grad)


def randint(*args, size=None, dtype=np.int64, device=None, requires_grad=False):
    """Integers drawn uniformly from [low, high): ``randint(high, size)`` or
    ``randint(low, high, size)``, size a tuple (torch's signatures)."""
    if size is None and args:
        args, size = args[:-1], args[-1]
    if len(args) not in (1, 2) or isinstance(size, numbers.Number):
        raise ArgumentError(f"randint: expected randint(high, size) or randint(low, high, "
                            f"size) with size a tuple such as (3,), got arguments "
                            f"{args + (size,)}")
    low, high = (0, args[0]) if len(args) == 1 else args
    device = backend.check_device(device)
    size = _check_shape("randint", size)
    for name, v in (("low", low), ("high", high)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise ArgumentError(f"randint: {name} must be an int, got {v!r}")
    if not low < high:
        raise ArgumentError(f"randint: expected low < high, got low={low}, high={high}")
    gen = backend.rng(device)
    data = gen.integers(low, high, size=size) if device == "cpu" else gen.randint(low, high, size)
    return _leaf(data.astype(as_dtype(dtype)), requires_grad)


def rand_like(t, dtype=None, device=None, requires_grad=False):
    return rand(t.shape, dtype=dtype or _float_like(t), device=device or t.device,
                requires_grad=requires_grad)


def _float_like(t):
    """t's dtype for the random draws; torch.rand_like of an integer tensor is an error."""
    if t.dtype.kind != "f":
        raise DTypeError(f"rand_like: the tensor has dtype {t.dtype}; uniform draws need a "
                         f"floating-point dtype: pass dtype=mg.float32")
    return t.dtype


def randint_like(t, low=0, high=None, *, dtype=None, device=None, requires_grad=False):
    """randint of t's shape (and dtype): ``randint_like(t, high)`` or ``(t, low, high)``."""
    if high is None:
        low, high = 0, low
    return randint(low, high, t.shape, dtype=dtype or t.dtype, device=device or t.device,
                   requires_grad=requires_grad)


def empty_like(t, dtype=None, device=None, requires_grad=False):
    return empty(t.shape, dtype=dtype or t.dtype, device=device or t.device,
                 requires_grad=requires_grad)


def randn_like(t, dtype=None, device=None, requires_grad=False):
    return randn(t.shape, dtype=dtype or t.dtype, device=device or t.device,
                 requires_grad=requires_grad)
