"""Reductions with PyTorch's return values: ``max(dim)`` / ``min(dim)`` give a named
``(values, indices)`` pair, ``sort`` and ``topk`` too; ``argsort``, ``argmax``, ``cumsum``,
``prod``, ``logsumexp``, ``norm``, ``var`` / ``std`` (``unbiased=`` or ``correction=``),
``any`` / ``all`` with ``dim``.

Each function takes the tensor first (``torch.sort(x, dim)``); Tensor's methods of the
same names call them. Values that come with indices are picked by ``Gather`` from the
indices, so their gradient goes to the picked elements only (as in PyTorch); the indices
themselves are int64 tensors without gradient.
"""
from __future__ import annotations

import math
import numbers
from collections import namedtuple

import numpy as np

from . import backend
from . import ops as O
from .errors import ArgumentError, DTypeError, IndexRangeError, ShapeError
from .tensor import Tensor


def _return_type(name):
    cls = namedtuple(name, ["values", "indices"])
    cls.__module__ = "minigrad.return_types"   # shows as minigrad.return_types.max(...)
    cls.__doc__ = f"What {name}() returns: a (values, indices) pair, like torch.return_types."
    return cls


max_result, min_result = _return_type("max"), _return_type("min")
sort_result, topk_result = _return_type("sort"), _return_type("topk")
median_result = _return_type("median")

def _xp(x):
    return backend.get_array_module(x.array)


def _one_dim(fn, x, dim):
    """``dim`` as a non-negative axis; torch reduces a 0-d tensor over dim 0 or -1 too."""
    if isinstance(dim, (tuple, list)):
        raise ArgumentError(f"{fn}: dim must be one int here, got {dim!r}; to reduce over "
                            f"several dims use amax/amin (values only) or reshape first")
    return x._dim(fn, dim)


def _float(fn, x):
    if x.array.dtype.kind != "f":
        raise DTypeError(f"{fn}: expected a floating-point tensor, got dtype {x.array.dtype} "
                         f"(convert with .float())")


def _not_bool(fn, x):
    if x.array.dtype == bool:
        raise DTypeError(f"{fn}: not implemented for bool tensors (as torch); convert first: "
                         f"x.long()")


def _nonempty(fn, x, axis):
    if x.ndim and x.shape[axis] == 0:
        raise ShapeError(f"{fn}: expected reduction dim {axis} to have non-zero size, got "
                         f"shape {x.shape}")


def _indices(array):
    return Tensor._make(array.astype(np.int64, copy=False), False)


def gather(x, dim, index):
    """out[i][j] = x[index[i][j]][j] for dim 0 (and so on): torch.gather. ``index`` is an
    integer tensor with x's number of dims, no larger than x outside ``dim``."""
    dim = x._dim("gather", dim)
    idx = index.array if isinstance(index, Tensor) else np.asarray(index)
    if idx.dtype.kind not in "iu":
        raise DTypeError(f"gather: index must be an integer tensor, got dtype {idx.dtype}")
    if idx.ndim != x.ndim and not (x.ndim == 0 and idx.ndim <= 1):
        raise ShapeError(f"gather: index must have as many dims as the input ({x.ndim}), got "
                         f"index of shape {tuple(idx.shape)}")
    if x.ndim == 0:
        return gather(x.reshape(1), 0, idx.reshape(-1)).reshape(idx.shape)
    for d, (n, m) in enumerate(zip(idx.shape, x.shape)):
        if d != dim and n > m:
            raise ShapeError(f"gather: index of shape {tuple(idx.shape)} is larger than the "
                             f"input of shape {x.shape} in dim {d}")
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= x.shape[dim]):
        bad = int(idx.min()) if int(idx.min()) < 0 else int(idx.max())
        raise IndexRangeError(f"gather: index {bad} is out of range for dim {dim} of size "
                              f"{x.shape[dim]} (expected 0..{x.shape[dim] - 1})")
    return O.Gather.apply(x, index=backend.to_device(idx, x.device), axis=dim)


def _pick(fn, x, dim, keepdim, index_of):
    """(values, indices) of the elements that ``index_of(array, axis)`` picks along dim."""
    if x.ndim == 0:
        return x, _indices(_xp(x).zeros((), np.int64))
    axis = _one_dim(fn, x, dim)
    _nonempty(fn, x, axis)
    idx = _xp(x).expand_dims(index_of(x.array, axis), axis)
    values = O.Gather.apply(x, index=idx, axis=axis)
    if not keepdim:
        values, idx = values.squeeze(axis), idx.squeeze(axis)
    return values, _indices(idx)


def max(x, dim=None, keepdim=False, *, axis=None, keepdims=None, out=None):
    """torch.max: the largest value (0-d) without dim; with dim a named pair
    ``(values, indices)``; with another tensor the elementwise maximum. (``axis`` and
    ``keepdims`` are NumPy's spellings, which torch accepts too.)"""
    return _extremum("max", x, dim, bool(keepdim or keepdims), axis, out, max_result)


def min(x, dim=None, keepdim=False, *, axis=None, keepdims=None, out=None):
    """torch.min: as max, for the smallest."""
    return _extremum("min", x, dim, bool(keepdim or keepdims), axis, out, min_result)


def _extremum(fn, x, dim, keepdim, axis, out, result):
    if out is not None:
        raise ArgumentError(f"{fn}: out= is not supported; use the returned value")
    dim = axis if dim is None else dim
    if isinstance(dim, Tensor):        # torch.max(a, b): the elementwise maximum
        return x.maximum(dim) if fn == "max" else x.minimum(dim)
    if dim is None:
        if keepdim:
            raise ArgumentError(f"{fn}: keepdim needs a dim; write x.{fn}(dim, keepdim=True) "
                                f"or x.a{fn}(dim=tuple(range(x.ndim)), keepdim=True)")
        if x.array.size == 0:
            raise ShapeError(f"{fn}: the tensor of shape {x.shape} is empty (no {fn}); pass "
                             "a dim to reduce an empty tensor along a non-empty dim")
        return (O.Max if fn == "max" else O.Min).apply(x, axis=None, keepdims=False)
    xp = _xp(x)
    values, indices = _pick(fn, x, dim, keepdim, xp.argmax if fn == "max" else xp.argmin)
    return result(values, indices)


def amax(x, dim=(), keepdim=False):
    """The largest values over one or several dims (all when dim is () or None); ties
    share the gradient equally, as torch.amax."""
    return _amax_amin(O.Max, "amax", x, dim, keepdim)


def amin(x, dim=(), keepdim=False):
    return _amax_amin(O.Min, "amin", x, dim, keepdim)


def _amax_amin(op, fn, x, dim, keepdim):
    axes = None if dim is None or dim == () else x._axes(fn, dim, None)
    if x.array.size == 0:
        raise ShapeError(f"{fn}: cannot reduce the empty tensor of shape {x.shape}")
    return op.apply(x, axis=axes, keepdims=bool(keepdim))


def argmax(x, dim=None, keepdim=False):
    """Indices of the largest values (int64, no gradient); the flat index without dim."""
    return _argext("argmax", x, dim, keepdim)


def argmin(x, dim=None, keepdim=False):
    return _argext("argmin", x, dim, keepdim)


def _argext(fn, x, dim, keepdim):
    if x.array.dtype == bool:
        raise DTypeError(f"{fn}(): does not support bool input (as torch); convert it: "
                         f"x.long().{fn}() or x.float().{fn}()")
    xp = _xp(x)
    find = xp.argmax if fn == "argmax" else xp.argmin
    if dim is None:
        if x.array.size == 0:
            raise ShapeError(f"{fn}: the tensor of shape {x.shape} is empty")
        flat = xp.asarray(find(x.array.reshape(-1)))
        return _indices(flat.reshape((1,) * x.ndim) if keepdim else flat)
    if x.ndim == 0:
        x._dim(fn, dim)
        return _indices(xp.zeros((), np.int64))
    axis = x._dim(fn, dim)
    _nonempty(fn, x, axis)
    out = find(x.array, axis=axis)
    return _indices(xp.expand_dims(out, axis) if keepdim else out)


def _order(array, axis, descending):
    """Indices that sort ``array`` along axis, stably (equal values keep their order, in
    both directions); NaN counts as the largest value, as in torch."""
    xp = backend.get_array_module(array)
    kw = {"kind": "stable"} if xp is np else {}
    if not descending:
        return xp.argsort(array, axis=axis, **kw)
    # descending and stable: sort the reversed array ascending, reverse, map indices back
    n = array.shape[axis]
    return n - 1 - xp.flip(xp.argsort(xp.flip(array, axis), axis=axis, **kw), axis)


def sort(x, dim=-1, descending=False, stable=False):
    """torch.sort: ``(values, indices)`` along dim, ascending unless descending=True.
    Always stable (a valid answer for stable=False too)."""
    if x.ndim == 0:
        x._dim("sort", dim)
        return sort_result(x, _indices(_xp(x).zeros((), np.int64)))
    axis = x._dim("sort", dim)
    idx = _order(x.array, axis, descending)
    return sort_result(O.Gather.apply(x, index=idx, axis=axis), _indices(idx))


def argsort(x, dim=-1, descending=False, stable=False):
    """Indices that sort x along dim (torch.argsort)."""
    return sort(x, dim, descending, stable).indices


def topk(x, k, dim=-1, largest=True, sorted=True):
    """torch.topk: the k largest (smallest with largest=False) values along dim and their
    indices, in order; ties keep the lower index first."""
    _not_bool("topk", x)
    axis = x._dim("topk", dim)
    n = x.shape[axis] if x.ndim else 1
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 0 <= k <= n:
        raise ArgumentError(f"topk: k must be an int in 0..{n} (the size of dim {axis}), "
                            f"got {k!r}")
    if x.ndim == 0:
        return topk_result(x, _indices(_xp(x).zeros((), np.int64)))
    xp = _xp(x)
    idx = xp.take(_order(x.array, axis, largest), xp.arange(k), axis=axis)
    return topk_result(O.Gather.apply(x, index=idx, axis=axis), _indices(idx))


def median(x, dim=None, keepdim=False):
    """torch.median: the lower of the two middle values for an even count (not their mean,
    as NumPy's). Without dim, of all elements (0-d); with dim, a named (values, indices)
    pair. NaN counts as the largest value. The gradient goes to the median element."""
    _not_bool("median", x)
    if dim is None:
        flat = x.reshape(-1)
        _nonempty("median", flat, 0)
        return sort(flat).values[(flat.shape[0] - 1) // 2]
    axis = _one_dim("median", x, dim)
    if x.ndim == 0:
        return median_result(x, _indices(_xp(x).zeros((), np.int64)))
    _nonempty("median", x, axis)
    s = sort(x, axis)
    k = (x.shape[axis] - 1) // 2
    values, indices = s.values.select(axis, k), s.indices.select(axis, k)
    if keepdim:
        values, indices = values.unsqueeze(axis), indices.unsqueeze(axis)
    return median_result(values, indices)


def cumsum(x, dim, dtype=None):
    """Cumulative sum along dim; integer and bool tensors give int64, as in torch."""
    axis = x._dim("cumsum", dim)
    if dtype is not None:
        x = x.astype(dtype)
    if x.ndim == 0:
        return x.reshape(()) * 1
    if x.array.dtype.kind in "biu":
        return Tensor._make(_xp(x).cumsum(x.array, axis=axis, dtype=np.int64), False)
    return O.CumSum.apply(x, axis=axis)


def prod(x, dim=None, keepdim=False, dtype=None):
    """Product of all elements (0-d) or along one dim; integer and bool tensors give int64.
    The gradient is exact where elements are zero."""
    if dtype is not None:
        x = x.astype(dtype)
    axis = None if dim is None else _one_dim("prod", x, dim)
    if x.array.dtype.kind in "biu":
        out = x.array.astype(np.int64).prod(axis=axis, keepdims=bool(keepdim and axis is not None))
        return Tensor._make(_xp(x).asarray(out), False)
    if x.ndim == 0:
        return x * 1
    return O.Prod.apply(x, axis=axis, keepdims=bool(keepdim and axis is not None))


def logsumexp(x, dim, keepdim=False):
    """log(sum(exp(x))) over dim (an int or a tuple), shifted by the maximum so that it
    never overflows; a slice of all -inf gives -inf. Integer tensors become float32."""
    axes = x._axes("logsumexp", dim, None)
    if x.array.dtype.kind != "f":
        x = x.float()
    if x.ndim == 0:                    # one element: its own logsumexp
        return logsumexp(x.reshape(1), 0).reshape(())
    xp = _xp(x)
    with np.errstate(invalid="ignore"):
        m = x.array.max(axis=axes, keepdims=True) if x.array.size else xp.zeros(
            (1,) * x.ndim, x.array.dtype)
    m = xp.where(xp.isfinite(m), m, 0).astype(x.array.dtype)   # all -inf (or inf): no shift
    shift = Tensor._make(m, False)
    with np.errstate(divide="ignore"):
        out = (x - shift).exp().sum(axes, keepdim=True).log() + shift
    return out if keepdim else out.reshape(tuple(
        s for i, s in enumerate(out.shape) if i not in (axes or range(x.ndim))))


def norm(x, p="fro", dim=None, keepdim=False, dtype=None):
    """torch.norm: the vector p-norm over dim (an int, a tuple, or all of x):
    p = 2 or 'fro' (sqrt of the sum of squares), 1, any finite p > 0, inf (max |x|),
    -inf (min |x|). The gradient at a zero vector is 0, as in torch."""
    if dtype is not None:
        x = x.astype(dtype)
    _float("norm", x)
    if isinstance(p, str):
        if p != "fro":
            raise ArgumentError(f"norm: p={p!r} is not supported; use p='fro', 1, 2, "
                                f"inf or another number > 0 (vector norms)")
        p = 2
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or math.isnan(p) or (
            p <= 0 and p != -math.inf):
        raise ArgumentError(f"norm: p must be 'fro', inf, -inf or a number > 0, got {p!r}"
                            + ("; for the count of nonzeros write (x != 0).sum()"
                               if p == 0 else ""))
    axes = x._axes("norm", dim, None)
    if math.isinf(p):
        return (amax if p > 0 else amin)(x.abs(), () if axes is None else axes, keepdim)
    return O.Norm.apply(x, p=p, axis=axes, keepdims=bool(keepdim))


def var(x, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None,
        keepdims=None):
    """Variance over dim (all by default) with torch's two spellings of the divisor:
    ``unbiased=True`` / ``correction=1`` (the default) divides by n - 1, ``unbiased=False``
    / ``correction=0`` by n. ``x.var(0, True)`` is ``unbiased=True``, as in torch."""
    return O.Var.apply(x, **_var_args("var", x, dim, unbiased, keepdim, correction, axis,
                                      keepdims))


def std(x, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None,
        keepdims=None):
    """Standard deviation: sqrt of var with the same arguments (gradient 0 on a constant
    slice, as in torch, where sqrt's would be NaN)."""
    return O.Std.apply(x, **_var_args("std", x, dim, unbiased, keepdim, correction, axis,
                                      keepdims))


def _var_args(fn, x, dim, unbiased, keepdim, correction, axis, keepdims):
    if isinstance(dim, bool):          # torch's var(unbiased) overload: x.var(False)
        dim, unbiased = None, dim
    if unbiased is not None and correction is not None:
        raise ArgumentError(f"{fn}: give unbiased= or correction=, not both")
    _float(fn, x)
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    axes = x._axes(fn, dim, axis)
    return {"axis": axes, "keepdims": bool(keepdim or keepdims), "correction": correction}


def any(x, dim=None, keepdim=False):
    """True where any element (along dim, or at all) is nonzero: a bool tensor."""
    return _logical("any", x, dim, keepdim)


def all(x, dim=None, keepdim=False):
    """True where every element (along dim, or at all) is nonzero: a bool tensor."""
    return _logical("all", x, dim, keepdim)


def _logical(fn, x, dim, keepdim):
    axes = x._axes(fn, dim, None)
    xp = _xp(x)
    out = getattr(x.array, fn)(axis=axes, keepdims=bool(keepdim and axes is not None))
    return Tensor._make(xp.asarray(out), False)
