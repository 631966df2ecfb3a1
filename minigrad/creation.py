"""Constructors: minigrad.tensor, zeros, ones, randn, ... (torch's names and defaults)."""
from __future__ import annotations

import numpy as np

from . import backend
from .tensor import DEFAULT_FLOAT, Tensor, _shape_arg, as_dtype


def tensor(data, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A new tensor from a list, scalar, NumPy/CuPy array or Tensor (copied).
    Floats default to float32, ints to int64."""
    if isinstance(data, Tensor):
        data = data.data
    if not isinstance(data, np.ndarray) and backend.device_of(data) == "cpu":
        data = np.asarray(data)
    data = data.copy()
    return Tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)


def _full(shape, value, dtype, device, requires_grad):
    shape = _shape_arg(shape)
    for s in shape:
        if not isinstance(s, (int, np.integer)) or s < 0:
            raise ValueError(f"shape: sizes must be non-negative ints, got {shape}")
    dtype = as_dtype(dtype) or DEFAULT_FLOAT
    xp = backend.xp_for(device or backend.get_default_device())
    return _leaf(xp.full(shape, value, dtype=dtype), requires_grad)


def _leaf(data, requires_grad):
    return Tensor._make(data, False).requires_grad_(requires_grad)


def zeros(*shape, dtype=None, device=None, requires_grad=False):
    return _full(shape, 0, dtype, device, requires_grad)


def ones(*shape, dtype=None, device=None, requires_grad=False):
    return _full(shape, 1, dtype, device, requires_grad)


def empty(*shape, dtype=None, device=None, requires_grad=False):
    return _full(shape, 0, dtype, device, requires_grad)


def full(shape, fill_value, dtype=None, device=None, requires_grad=False):
    if dtype is None and isinstance(fill_value, (int, np.integer)) and not isinstance(
            fill_value, bool):
        dtype = np.int64
    return _full(shape, fill_value, dtype, device, requires_grad)


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
    xp = backend.xp_for(device or backend.get_default_device())
    data = xp.arange(start, end, step)
    if dtype is None and data.dtype.kind == "f":
        dtype = DEFAULT_FLOAT
    return _leaf(data.astype(as_dtype(dtype) or data.dtype, copy=False), requires_grad)


def randn(*shape, dtype=None, device=None, requires_grad=False):
    """Standard normal samples from the seeded generator (see manual_seed)."""
    device = backend.check_device(device)
    data = backend.random_normal(_shape_arg(shape), as_dtype(dtype) or DEFAULT_FLOAT, device)
    return _leaf(data, requires_grad)


def rand(*shape, dtype=None, device=None, requires_grad=False):
    """Uniform samples in [0, 1) from the seeded generator."""
    device = backend.check_device(device)
    data = backend.random_uniform(_shape_arg(shape), as_dtype(dtype) or DEFAULT_FLOAT, device)
    return _leaf(data, requires_grad)


def randint(low, high, size, dtype=np.int64, device=None):
    device = backend.check_device(device)
    gen = backend.rng(device)
    data = gen.integers(low, high, size=size) if device == "cpu" else gen.randint(low, high, size)
    return _leaf(data.astype(dtype), False)


def randn_like(t, dtype=None, device=None, requires_grad=False):
    return randn(t.shape, dtype=dtype or t.dtype, device=device or t.device,
                 requires_grad=requires_grad)
