"""Array functions NumPy lacks or runs slowly, each with its CuPy twin: tanh, erf and the
scatter-adds (repeated indices accumulate) behind the embedding gradient.

The ops (ops.py, fused.py) call these on raw arrays. They live in the backend, not beside
the ops, because each one branches on where its arrays are (NumPy, a compiled loop, CuPy),
and that branching is the backend's job: ops.py stays written once against ``xp``. Their
CuPy parts come from ``cupyx_module`` in __init__.py, the one file that imports CuPy.
"""
from __future__ import annotations

import math

import numpy as np

from . import cupyx_module, get_array_module, kernels_for


def scatter_add(target, index, values) -> None:
    """``target[index] += values`` where repeated indices accumulate (in place)."""
    if get_array_module(target) is not np:
        cupyx_module().scatter_add(target, index, values)
    else:
        np.add.at(target, index, values)


def index_add_rows(target, index, values) -> None:
    """``target[index] += values`` for a 1-D or N-D integer ``index`` into axis 0, with
    repeated rows accumulating: the embedding gradient. Sorting the rows and summing
    each run with ``add.reduceat`` beats ``np.add.at`` several times on CPU; the compiled
    loop (kernels.index_add_rows_) does it in one pass."""
    if get_array_module(target) is not np:
        scatter_add(target, index, values)
        return
    flat = index.reshape(-1)
    rows = values.reshape((flat.size,) + target.shape[1:])
    loops = kernels_for(np, target, rows)
    if loops is not None and flat.dtype.kind in "iu" and flat.size:   # compiled: one pass
        loops.index_add_rows_(target.reshape(target.shape[0], -1), np.ascontiguousarray(flat),
                              rows.reshape(flat.size, -1))
        return
    if flat.size and flat.dtype.kind == "i" and flat.min() < 0:
        flat = np.where(flat < 0, flat + target.shape[0], flat)   # -1 and n-1: one run
    order = np.argsort(flat, kind="stable")
    sorted_idx = flat[order]
    starts = np.flatnonzero(np.concatenate(([True], sorted_idx[1:] != sorted_idx[:-1])))
    target[sorted_idx[starts]] += np.add.reduceat(rows[order], starts, axis=0)


def tanh(x):
    """tanh(x) as a new array (see tanh_)."""
    xp = get_array_module(x)
    if xp is not np:
        return xp.tanh(x)
    out = np.array(x, copy=True)
    tanh_(out)
    return out


def tanh_(u) -> None:
    """u <- tanh(u) in place, as 1 - 2 / (1 + e^(2u)): NumPy's float32 exp is vectorised
    where its tanh is not, so this is ~2x faster on CPU; exact limits at +-inf (no NaN)."""
    if get_array_module(u) is not np:
        get_array_module(u).tanh(u, out=u)
        return
    u *= 2
    with np.errstate(over="ignore"):
        np.exp(u, out=u)
    u += 1
    np.reciprocal(u, out=u)
    u *= -2
    u += 1


def erf(x):
    """The error function elementwise (exact GELU needs it; NumPy has none): SciPy's when
    installed, else math.erf element by element."""
    if get_array_module(x) is not np:
        return cupyx_module().scipy.special.erf(x)
    try:
        from scipy.special import erf as scipy_erf
        return scipy_erf(x)
    except ImportError:
        return _np_erf(x).astype(x.dtype, copy=False)


_np_erf = np.vectorize(math.erf, otypes=[np.float64])
