"""Writing by index and the index-valued functions, with torch's names and meanings:
``scatter`` / ``scatter_`` (one-hot targets: ``zeros(n, c).scatter_(1, y[:, None], 1.0)``),
``scatter_add`` / ``scatter_add_`` and ``index_add_`` (counts and sums by index), ``nonzero``
/ ``argwhere``, ``count_nonzero``, ``unique``, and ``where(condition)`` of one argument.

Each function takes the tensor first; Tensor's methods (everyday.py) and the module-level
functions call them. The in-place forms follow inplace.py's autograd rules.
"""
from __future__ import annotations

import numbers

import numpy as np

from . import backend
from .autograd import Function, register
from .errors import ArgumentError, DTypeError, IndexRangeError, ShapeError
from .ops import _along
from .tensor import Tensor


# ----------------------------------------------------------------------------- the ops
class _ScatterBase(Function):
    # out = x with src's entries written (Scatter) or added (ScatterAdd) along ``axis`` at
    # ``index``: out[index[i][j]][j] = src[i][j] for axis 0, over index's shape (src may be
    # larger: its front part is used).  d out/d src[i][j] = g[index[i][j]][j] (a gather);
    # d out/dx = g, except (Scatter) where an entry was overwritten: 0 there.
    saved_inputs = ()
    saves_output = False

    def forward(self, x, src, index, axis):
        region = tuple(slice(0, n) for n in index.shape)
        self.where = _along(self.xp, index, axis)
        self.src_shape, self.region = src.shape, region
        out = x.copy()
        self._write(out, self.where, self.xp.broadcast_to(src, index.shape) if src.ndim == 0
                    else src[region])
        return out

    def backward(self, g):
        gx = None
        if self.needs_grad[0]:
            gx = self._x_grad(g)
        gsrc = None
        if self.needs_grad[1]:
            picked = g[self.where]
            if len(self.src_shape) == 0:
                gsrc = self.xp.asarray(picked.sum())
            else:
                gsrc = self.xp.zeros(self.src_shape, dtype=g.dtype)
                gsrc[self.region] = picked
        return gx, gsrc


@register
class Scatter(_ScatterBase):
    def _write(self, out, where, values):
        out[where] = values              # a place named twice: the last write wins

    def _x_grad(self, g):
        gx = g.copy()
        gx[self.where] = 0
        return gx


@register
class ScatterAdd(_ScatterBase):
    def _write(self, out, where, values):
        backend.scatter_add(out, where, values)     # places named twice add up

    def _x_grad(self, g):
        return g


# ----------------------------------------------------------------------------- scatter
def _scatter_args(fn, x, dim, index, src):
    """(axis, index array, src tensor), checked as torch checks them."""
    if not isinstance(x, Tensor):
        raise DTypeError(f"{fn}: expected a Tensor, got {type(x).__name__}")
    axis = x._dim(fn, dim)
    idx = index.array if isinstance(index, Tensor) else np.asarray(index)
    if idx.dtype.kind not in "iu":
        raise DTypeError(f"{fn}: index must be an integer tensor (int64), got dtype "
                         f"{idx.dtype}")
    if idx.ndim != max(x.ndim, 1):
        raise ShapeError(f"{fn}: index must have as many dims as the tensor ({x.ndim}), got "
                         f"index of shape {tuple(idx.shape)}; e.g. y.unsqueeze(1) for a "
                         f"column of class indices")
    if isinstance(src, Tensor):
        if src.dtype != x.dtype:
            raise DTypeError(f"{fn}: src must have the tensor's dtype {x.dtype}, got "
                             f"{src.dtype}; convert it: src.to(x.dtype)")
        if src.ndim != idx.ndim or any(i > s for i, s in zip(idx.shape, src.shape)):
            raise ShapeError(f"{fn}: index of shape {tuple(idx.shape)} must not be larger "
                             f"than src of shape {src.shape} in any dim")
    elif isinstance(src, numbers.Number):
        src = x._wrap_as(src, x.dtype)
    else:
        raise DTypeError(f"{fn}: src must be a tensor or a number, got {type(src).__name__}")
    for d, (n, m) in enumerate(zip(idx.shape, x.shape)):
        if d != axis and n > m:
            raise ShapeError(f"{fn}: index of shape {tuple(idx.shape)} is larger than the "
                             f"tensor of shape {x.shape} in dim {d}")
    size = x.shape[axis] if x.ndim else 1
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= size):
        bad = int(idx.min()) if int(idx.min()) < 0 else int(idx.max())
        raise IndexRangeError(f"{fn}: index {bad} is out of bounds for dim {axis} with size "
                              f"{size}")
    return axis, backend.to_device(idx, x.device), src


def scatter(x, dim, index, src=None, *, value=None, reduce=None):
    """x with ``src`` (a tensor, or a number) written at ``index`` along dim:
    out[index[i][j]][j] = src[i][j] for dim 0. Where index names a place twice, the last
    write wins (torch leaves it undefined)."""
    if reduce is not None:
        raise ArgumentError(f"scatter: reduce={reduce!r} is not supported; use scatter_add "
                            f"for sums")
    src = value if src is None else src
    if x.ndim == 0:
        return scatter(x.reshape(1), 0, index, src).reshape(())
    axis, idx, src = _scatter_args("scatter", x, dim, index, src)
    return Scatter.apply(x, src, index=idx, axis=axis)


def scatter_add(x, dim, index, src):
    """x with ``src``'s entries added at ``index`` along dim (places named twice add up):
    counts, sums by class."""
    if x.ndim == 0:
        return scatter_add(x.reshape(1), 0, index, src).reshape(())
    if not isinstance(src, Tensor):
        raise DTypeError(f"scatter_add: src must be a tensor, got {type(src).__name__}")
    axis, idx, src = _scatter_args("scatter_add", x, dim, index, src)
    return ScatterAdd.apply(x, src, index=idx, axis=axis)


def index_add(x, dim, index, source, *, alpha=1):
    """x with alpha * source's slices added at the rows ``index`` (1-D) along dim:
    out[..., index[i], ...] += alpha * source[..., i, ...]."""
    axis = x._dim("index_add", dim)
    idx = index.array if isinstance(index, Tensor) else np.asarray(index)
    if idx.ndim > 1:
        raise ShapeError(f"index_add: index must be 1-D, got shape {tuple(idx.shape)}")
    if not isinstance(source, Tensor) or source.ndim != x.ndim or idx.size != (
            source.shape[axis] if source.ndim else 1):
        raise ShapeError(f"index_add: source must be a tensor with x's number of dims and "
                         f"one slice per index along dim {axis} ({idx.size}), got "
                         f"{getattr(source, 'shape', source)}")
    shape = [1] * max(x.ndim, 1)
    shape[axis] = -1
    xp = backend.get_array_module(x.array)
    full = xp.broadcast_to(backend.to_device(idx, x.device).reshape(shape), source.shape)
    return scatter_add(x, axis, full, source if alpha == 1 else source * alpha)


# ----------------------------------------------------------------------------- index-valued
def _indices(xp, array):
    return Tensor._make(xp.asarray(array).astype(np.int64, copy=False), False)


def nonzero(x, *, as_tuple=False):
    """The indices of the nonzero entries: an int64 tensor (count, x.ndim), or with
    ``as_tuple=True`` one 1-D tensor per dim (what ``x[...]`` takes)."""
    xp = backend.get_array_module(x.array)
    found = xp.nonzero(x.array.reshape(1) if x.ndim == 0 else x.array)
    if as_tuple:
        return tuple(_indices(xp, f) for f in found)
    return _indices(xp, xp.stack(found, axis=1) if x.ndim else xp.zeros((len(found[0]), 0)))


def argwhere(x):
    """nonzero(x): the indices of the nonzero entries, one row each."""
    return nonzero(x)


def count_nonzero(x, dim=None):
    """How many entries are nonzero (along dim), as int64."""
    xp = backend.get_array_module(x.array)
    axis = None if dim is None else (
        tuple(x._dim("count_nonzero", d) for d in dim) if isinstance(dim, (tuple, list))
        else x._dim("count_nonzero", dim))
    return _indices(xp, xp.count_nonzero(x.array, axis=axis))


def unique(x, sorted=True, return_inverse=False, return_counts=False, dim=None):
    """The distinct values of x (ascending), as torch.unique; with return_inverse, where
    each element of x went (x's shape); with return_counts, how often each value occurs.
    With dim, the distinct slices along dim. (The values come out sorted whatever
    ``sorted`` says: torch's order for sorted=False is unspecified.)"""
    xp = backend.get_array_module(x.array)
    axis = None if dim is None else x._dim("unique", dim)
    along = {} if axis is None else {"axis": axis}
    values, inverse, counts = xp.unique(x.array, return_inverse=True, return_counts=True,
                                        **along)
    out = [Tensor._make(values, False)]
    if return_inverse:
        shape = x.shape if axis is None else (x.shape[axis],)
        out.append(_indices(xp, inverse.reshape(shape)))
    if return_counts:
        out.append(_indices(xp, counts))
    return out[0] if len(out) == 1 else tuple(out)


def one_hot(tensor, num_classes=-1):
    """int64 one-hot rows of an int64 class-index tensor: shape tensor.shape + (classes,)
    (num_classes=-1: the largest index + 1), as torch.nn.functional.one_hot."""
    if not isinstance(tensor, Tensor) or tensor.dtype != np.int64:
        raise DTypeError(f"one_hot: expected an int64 tensor of class indices, got "
                         f"{getattr(tensor, 'dtype', type(tensor).__name__)}; convert with "
                         f".long()")
    a = tensor.array
    xp = backend.get_array_module(a)
    if a.size and int(a.min()) < 0:
        raise IndexRangeError("one_hot: class values must be >= 0")
    n = (int(a.max()) + 1 if a.size else 0) if num_classes == -1 else num_classes
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1 and a.size:
        raise ArgumentError(f"one_hot: num_classes must be a positive int (or -1), got "
                            f"{num_classes!r}")
    if a.size and int(a.max()) >= n:
        raise IndexRangeError(f"one_hot: class value {int(a.max())} is out of range for "
                              f"num_classes={n}")
    return _indices(xp, a[..., None] == xp.arange(n))


__all__ = ["scatter", "scatter_add", "index_add", "nonzero", "argwhere", "count_nonzero",
           "unique", "one_hot"]
