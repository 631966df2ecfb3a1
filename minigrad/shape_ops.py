"""Shape and selection methods with PyTorch's names, built on the primitive ops (so their
gradients come from Reshape, Expand, GetItem, Where, Permute): ``repeat``,
``index_select``, ``select``, ``unbind``, ``narrow``, ``masked_select``, ``tril`` /
``triu``, ``t()``, ``mT``, ``T``, ``flatten``, ``split``, ``chunk``, ``flip``, ``roll``,
``movedim``, ``unflatten``; ``cat``, ``stack``; and the one op of its own, ``Contiguous``
(a row-major copy, for ``x.contiguous()``).
Each takes the tensor first; Tensor's methods (everyday.py) call them.
"""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from . import backend
from . import ops as O
from .autograd import Function, register
from .errors import ArgumentError, DTypeError, IndexRangeError, ShapeError
from .indexing import scatter
from .tensor import Tensor, _check_broadcast, _shape_arg, where


class Size(tuple):
    """A tensor's shape: a tuple (compares, indexes, unpacks as one), like torch.Size.
    (Slices and sums are plain tuples: no Python-level indexing on this hot path.)
    repr() names the type, ``minigrad.Size([2, 3])``; str() and f-strings give the plain
    ``(2, 3)``, which is what error messages show."""
    __slots__ = ()

    def __repr__(self):
        return f"minigrad.Size({list(self)})"

    def __str__(self):
        return tuple.__repr__(self)

    def numel(self) -> int:
        """The number of elements of a tensor of this shape."""
        n = 1
        for s in self:
            n *= s
        return n


def _int(fn, name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ArgumentError(f"{fn}: {name} must be an int, got {type(value).__name__} {value!r}")
    return int(value)


def repeat(x, *sizes):
    """Tile x: ``x.repeat(2, 3)`` stacks 2 copies along dim 0 and 3 along dim 1 (np.tile);
    more sizes than dims add leading dims. The gradient adds up over the copies."""
    sizes = tuple(_int("repeat", "sizes", s) for s in _shape_arg(sizes))
    if len(sizes) < x.ndim:
        raise ShapeError(f"repeat: got {len(sizes)} sizes {sizes} for a tensor of shape "
                         f"{x.shape}; give at least one per dim ({x.ndim})")
    if any(s < 0 for s in sizes):
        raise ArgumentError(f"repeat: sizes must be >= 0, got {sizes}")
    shape = (1,) * (len(sizes) - x.ndim) + x.shape
    spread = tuple(v for n in shape for v in (1, n))            # (1, a, 1, b)
    copies = tuple(v for r, n in zip(sizes, shape) for v in (r, n))   # (r1, a, r2, b)
    return x.reshape(spread).expand(copies).reshape(tuple(r * n for r, n in zip(sizes, shape)))


def _int_index(fn, index, size):
    idx = index.array if isinstance(index, Tensor) else np.asarray(index)
    if idx.dtype.kind not in "iu":
        raise DTypeError(f"{fn}: index must be an integer tensor, got dtype {idx.dtype}")
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= size):
        bad = int(idx.min()) if int(idx.min()) < 0 else int(idx.max())
        raise IndexRangeError(f"{fn}: index {bad} is out of range for a dim of size {size} "
                              f"(expected 0..{size - 1})")
    return idx


def index_select(x, dim, index):
    """The entries of x at the integer positions ``index`` (1-D) along dim."""
    dim = x._dim("index_select", dim)
    idx = _int_index("index_select", index, x.shape[dim] if x.ndim else 1)
    if idx.ndim > 1:
        raise ShapeError(f"index_select: index must be 1-D, got shape {tuple(idx.shape)}")
    if x.ndim == 0:
        return x.reshape(1)[idx.reshape(-1)].reshape(())
    return x[(slice(None),) * dim + (idx.reshape(-1),)]


def select(x, dim, index):
    """x[..., index, ...] with index on dim (that dim removed)."""
    dim = x._dim("select", dim)
    n = x.shape[dim]
    index = _int("select", "index", index)
    if not -n <= index < n:
        raise IndexRangeError(f"select: index {index} is out of range for dim {dim} of size "
                              f"{n}")
    return x[(slice(None),) * dim + (index % n,)]


def unbind(x, dim=0):
    """The slices of x along dim, as a tuple (dim removed)."""
    dim = x._dim("unbind", dim)
    return tuple(x[(slice(None),) * dim + (i,)] for i in range(x.shape[dim]))


def narrow(x, dim, start, length):
    """x's entries start..start+length-1 along dim (a view in torch; here a slice)."""
    dim = x._dim("narrow", dim)
    n = x.shape[dim]
    start, length = _int("narrow", "start", start), _int("narrow", "length", length)
    if not -n <= start <= n:
        raise IndexRangeError(f"narrow: start {start} is out of range for dim {dim} of size {n}")
    start %= n if n else 1
    if length < 0 or start + length > n:
        raise IndexRangeError(f"narrow: start ({start}) + length ({length}) exceeds dim {dim} "
                              f"of size {n}")
    return x[(slice(None),) * dim + (slice(start, start + length),)]


def masked_select(x, mask):
    """The entries of x where the boolean ``mask`` (broadcast with x) is True, as 1-D."""
    m = mask.array if isinstance(mask, Tensor) else np.asarray(mask)
    if m.dtype != bool:
        raise DTypeError(f"masked_select: mask must be boolean, got dtype {m.dtype}")
    _check_broadcast("masked_select", x.shape, tuple(m.shape))
    shape = tuple(np.broadcast_shapes(x.shape, tuple(m.shape)))
    xp = backend.get_array_module(x.array)
    m = xp.broadcast_to(backend.to_device(m, x.device), shape)
    return x.expand(shape)[m]


def _triangle(fn, x, diagonal, keep):
    if x.ndim < 2:
        raise ShapeError(f"{fn}: expected a tensor with at least 2 dims (a matrix or a batch "
                         f"of them), got shape {x.shape}")
    diagonal = _int(fn, "diagonal", diagonal)
    xp = backend.get_array_module(x.array)
    mask = keep(xp.ones(x.shape[-2:], dtype=bool), k=diagonal)
    return where(Tensor._make(mask, False), x, x._wrap_as(0, x.dtype))     # x's dtype kept


def tril(x, diagonal=0):
    """The lower triangle of the last two dims (entries j <= i + diagonal), zeros above."""
    return _triangle("tril", x, diagonal, backend.get_array_module(x.array).tril)


def triu(x, diagonal=0):
    """The upper triangle of the last two dims (entries j >= i + diagonal), zeros below."""
    return _triangle("triu", x, diagonal, backend.get_array_module(x.array).triu)


def t(x):
    """The transpose of a matrix; a 0-d or 1-d tensor as it is (torch.t)."""
    if x.ndim > 2:
        raise ShapeError(f"t: expects a tensor with <= 2 dims, got shape {x.shape}; use "
                         f".mT or .transpose(-2, -1) for a batch of matrices")
    return x.transpose(0, 1) if x.ndim == 2 else x


def matrix_transpose(x):
    """x.mT: the last two dims swapped (a batch of matrices transposed)."""
    if x.ndim < 2:
        raise ShapeError(f"mT: expects a tensor with >= 2 dims (a matrix or a batch of them), "
                         f"got shape {x.shape}")
    return x.transpose(-2, -1)


def reverse_dims(x):
    """x.T: all dims reversed. As torch, this is the transpose for a matrix and warns for
    more than 2 dims (write .mT for a batch of matrices, or permute)."""
    if x.ndim > 2:
        warnings.warn(f"x.T on a tensor of {x.ndim} dims reverses all of them (shape "
                      f"{x.shape}); write x.mT to transpose a batch of matrices or "
                      f"x.permute(*reversed(range(x.ndim))) to reverse the dims", UserWarning,
                      stacklevel=3)
    return x.permute(*reversed(range(x.ndim))) if x.ndim > 1 else x


def flatten(self, start_dim=0, end_dim=-1):
    """Dims start_dim..end_dim merged into one (a 0-d tensor becomes shape (1,))."""
    if self.ndim == 0:
        return self.reshape(1)
    start, end = self._dim("flatten", start_dim), self._dim("flatten", end_dim)
    if start > end:
        raise ShapeError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} "
                         f"for a tensor of shape {self.shape}")
    merged = math.prod(self.shape[start:end + 1])
    return self.reshape(self.shape[:start] + (merged,) + self.shape[end + 1:])


def split(self, split_size, dim=0):
    """Pieces of ``split_size`` along dim (or of the sizes in a list), like torch."""
    dim = self._dim("split", dim)
    n = self.shape[dim]
    if isinstance(split_size, numbers.Integral) and (isinstance(split_size, bool)
                                                     or split_size < 1):
        raise ArgumentError(f"split: split_size must be a positive int (or a list of "
                            f"sizes), got {split_size!r}")
    sizes = ([split_size] * (n // split_size) + ([n % split_size] if n % split_size else [])
             if isinstance(split_size, numbers.Integral) else list(split_size))
    if sum(sizes) != n:
        raise ShapeError(f"split: sizes {sizes} do not add up to dim {dim} of size {n}")
    out, start = [], 0
    index = [slice(None)] * self.ndim
    for s in sizes:
        index[dim] = slice(start, start + s)
        out.append(self[tuple(index)])
        start += s
    return tuple(out)

def chunk(self, chunks, dim=0):
    """``chunks`` pieces along dim (the last one smaller if needed), like torch."""
    if isinstance(chunks, bool) or not isinstance(chunks, numbers.Integral) or chunks < 1:
        raise ArgumentError(f"chunk: chunks must be a positive int, got {chunks!r}")
    dim = self._dim("chunk", dim)
    return self.split(-(-self.shape[dim] // chunks), dim)


def cat(tensors, dim=0):
    """The tensors joined along an existing dim (shapes equal elsewhere)."""
    tensors = list(tensors)
    if not tensors:
        raise ArgumentError("cat: expected a non-empty list of tensors, got an empty one")
    ref = tensors[0]
    dim = ref._dim("cat", dim)
    for i, t in enumerate(tensors):
        if t.ndim != ref.ndim or any(
                s != r for j, (s, r) in enumerate(zip(t.shape, ref.shape)) if j != dim % ref.ndim):
            raise ShapeError(f"cat: tensor {i} has shape {t.shape}, which does not match "
                             f"tensor 0's shape {ref.shape} outside dim {dim}")
    return O.Cat.apply(*tensors, axis=dim % ref.ndim)


def stack(tensors, dim=0):
    """The tensors (of one shape) joined along a new dim."""
    tensors = list(tensors)
    if not tensors:
        raise ArgumentError("stack: expected a non-empty list of tensors, got an empty one")
    for i, t in enumerate(tensors):
        if t.shape != tensors[0].shape:
            raise ShapeError(f"stack: tensor {i} has shape {t.shape}, expected "
                             f"{tensors[0].shape} like tensor 0")
    return cat([t.unsqueeze(dim) for t in tensors], dim=dim)


# ----------------------------------------------------------------------------- layout
def view(x, shape):
    """x.reshape(shape), which as torch's view refuses a view (of a transposed or sliced
    tensor) whose memory cannot be reshaped without a copy (``x.t().view(-1)``): write
    .reshape(...) or .contiguous().view(...) there."""
    if x._view is not None and not x.array.flags.c_contiguous:
        target = _shape_arg(shape)
        try:
            probe = x.array.view()
            probe.shape = target          # NumPy refuses when it would need a copy
        except AttributeError:
            raise ShapeError(f"view: view size is not compatible with input tensor's size and "
                             f"stride (at least one dimension spans across two contiguous "
                             f"subspaces): a view of shape {x.shape} (e.g. transposed) to "
                             f"{target}; use .reshape(...) instead, or "
                             f".contiguous().view(...)") from None
        except (ValueError, TypeError):
            pass                          # a bad shape: reshape names it
    return x.reshape(*shape)


def diag(x, diagonal=0):
    """A 1-D x as a square matrix with x on its ``diagonal``; a 2-D x's diagonal as 1-D."""
    diagonal = _int("diag", "diagonal", diagonal)
    xp = backend.get_array_module(x.array)
    if x.ndim == 1:
        n = x.shape[0] + abs(diagonal)
        rows = xp.arange(x.shape[0]) + max(-diagonal, 0)
        cols = xp.arange(x.shape[0]) + max(diagonal, 0)
        flat = Tensor._make(xp.zeros(n * n, dtype=x.array.dtype), False)
        return scatter(flat, 0, rows * n + cols, x).reshape(n, n)
    if x.ndim != 2:
        raise ShapeError(f"diag: expected a 1-D or 2-D tensor, got shape {x.shape}")
    n = max(0, min(x.shape[0] + min(diagonal, 0), x.shape[1] - max(diagonal, 0)))
    rows = xp.arange(n) + max(-diagonal, 0)
    return x[rows, rows + diagonal]


@register
class Contiguous(Function):
    # a row-major copy of x (x.contiguous() of a transposed x): the values are x's, so the
    # gradient passes unchanged
    saved_inputs = ()
    saves_output = False

    def forward(self, x):
        return self.xp.ascontiguousarray(x)

    def backward(self, g):
        return g


def _dims(fn, x, dims):
    dims = (dims,) if isinstance(dims, numbers.Integral) else tuple(dims)
    out = tuple(x._dim(fn, d) for d in dims)
    if len(set(out)) != len(out):
        raise ArgumentError(f"{fn}: dims {dims} name one dim twice")
    return out


def flip(x, dims):
    """x reversed along each of ``dims`` (a copy, as in torch)."""
    if x.ndim == 0:
        return x.clone()
    dims = _dims("flip", x, dims)
    index = tuple(slice(None, None, -1) if d in dims else slice(None) for d in range(x.ndim))
    return Contiguous.apply(O.GetItem.apply(x, index=index))


def roll(x, shifts, dims=None):
    """x's entries moved ``shifts`` places along ``dims``, wrapping around (torch.roll);
    without dims, over the flattened tensor (the shape kept)."""
    if dims is None:
        return roll(x.flatten(), shifts, 0).reshape(x.shape)
    shifts = (shifts,) if isinstance(shifts, numbers.Integral) else tuple(shifts)
    dims = _dims("roll", x, dims)
    if len(shifts) != len(dims):
        raise ArgumentError(f"roll: shifts {shifts} and dims {dims} must have the same length")
    for s, d in zip(shifts, dims):
        n = x.shape[d]
        s = _int("roll", "shifts", s) % n if n else 0
        if s:
            head = (slice(None),) * d
            x = cat([x[head + (slice(n - s, None),)], x[head + (slice(0, n - s),)]], dim=d)
    return x


def movedim(x, source, destination):
    """The dims ``source`` moved to the positions ``destination`` (the others keep their
    order), as torch.movedim."""
    src = _dims("movedim", x, source)
    dst = _dims("movedim", x, destination)
    if len(src) != len(dst):
        raise ArgumentError(f"movedim: source {source} and destination {destination} must "
                            f"name as many dims")
    order = [d for d in range(x.ndim) if d not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return x.permute(*order)


def unflatten(x, dim, sizes):
    """Dim ``dim`` split into ``sizes`` (one may be -1), as torch.unflatten."""
    dim = x._dim("unflatten", dim)
    sizes = tuple(_int("unflatten", "sizes", s) for s in sizes)
    known = math.prod(s for s in sizes if s != -1)
    if sizes.count(-1) > 1 or (-1 not in sizes and known != x.shape[dim]) or (
            -1 in sizes and (known == 0 or x.shape[dim] % known)):
        raise ShapeError(f"unflatten: sizes {sizes} do not multiply to dim {dim} of size "
                         f"{x.shape[dim]}")
    return x.reshape(x.shape[:dim] + sizes + x.shape[dim + 1:])


def repeat_interleave(x, repeats, dim=None):
    """Each entry repeated ``repeats`` times in place along dim (an int, or a 1-D tensor of
    counts, one per entry); without dim, over the flattened tensor (torch.repeat_interleave)."""
    if dim is None:
        x, dim = x.reshape(-1), 0
    dim = x._dim("repeat_interleave", dim)
    n = x.shape[dim]
    counts = repeats.array if isinstance(repeats, Tensor) else repeats
    if isinstance(counts, numbers.Integral) or getattr(counts, "ndim", 1) == 0:
        counts = np.full(n, int(counts))
    counts = backend.to_numpy(np.asarray(counts) if not hasattr(counts, "dtype") else counts)
    if counts.shape != (n,) or (counts < 0).any():
        raise ShapeError(f"repeat_interleave: repeats must be an int >= 0 or one count per "
                         f"entry ({n}) along dim {dim}, got {repeats!r}"[:200])
    index = np.repeat(np.arange(n), counts)
    return index_select(x, dim, Tensor._make(backend.to_device(index, x.device), False))
