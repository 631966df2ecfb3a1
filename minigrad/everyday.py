"""The everyday PyTorch tensor API (issue 16) as methods: ``max(dim)`` with indices, ``sort``,
``topk``, ``cumsum``, ``norm``, ``var``/``std``, ``gather``, ``repeat``, ``T``/``mT``/``t()``,
``size()``, ``softmax(dim)``, the method spellings of the operators (``add``, ``mul``, ``div``
with ``rounding_mode``, ...). Tensor derives from ``EverydayMixin``; the bodies are in
reductions.py, shape_ops.py, functional.py and functions.py, and these methods forward to them.
"""
from __future__ import annotations

from . import tensor as T   # (a cycle: tensor.py imports this module and, at its end, the
#                              modules with the bodies, T._R, T._S, T._F, T._fn; used at call time)


class EverydayMixin:
    """Tensor's everyday PyTorch methods that forward to the modules that implement them."""

    __slots__ = ()

    T = property(lambda self: T._S.reverse_dims(self))
    mT = property(lambda self: T._S.matrix_transpose(self))

    def t(self): return T._S.t(self)
    def dim(self): return self.ndim
    ndimension = dim
    def nelement(self): return self.numel()

    def size(self, dim=None):
        """The shape (a Size, i.e. a tuple), or the size of one dim."""
        return self.shape if dim is None else self.shape[self._dim("size", dim)]

    # ------------------------------------------------------------------ reductions
    def max(self, dim=None, keepdim=False, *, axis=None, keepdims=None, out=None):
        return T._R.max(self, dim, keepdim, axis=axis, keepdims=keepdims, out=out)

    def min(self, dim=None, keepdim=False, *, axis=None, keepdims=None, out=None):
        return T._R.min(self, dim, keepdim, axis=axis, keepdims=keepdims, out=out)

    def amax(self, dim=(), keepdim=False): return T._R.amax(self, dim, keepdim)
    def amin(self, dim=(), keepdim=False): return T._R.amin(self, dim, keepdim)
    def argmax(self, dim=None, keepdim=False): return T._R.argmax(self, dim, keepdim)
    def argmin(self, dim=None, keepdim=False): return T._R.argmin(self, dim, keepdim)

    def sort(self, dim=-1, descending=False, stable=False):
        return T._R.sort(self, dim, descending, stable)

    def argsort(self, dim=-1, descending=False, stable=False):
        return T._R.argsort(self, dim, descending, stable)

    def topk(self, k, dim=-1, largest=True, sorted=True):
        return T._R.topk(self, k, dim, largest, sorted)

    def cumsum(self, dim, dtype=None): return T._R.cumsum(self, dim, dtype)

    def prod(self, dim=None, keepdim=False, dtype=None):
        return T._R.prod(self, dim, keepdim, dtype)

    def logsumexp(self, dim, keepdim=False): return T._R.logsumexp(self, dim, keepdim)

    def norm(self, p="fro", dim=None, keepdim=False, dtype=None):
        return T._R.norm(self, p, dim, keepdim, dtype)

    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None,
            keepdims=None):
        return T._R.var(self, dim, unbiased, keepdim, correction=correction, axis=axis,
                        keepdims=keepdims)

    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None,
            keepdims=None):
        return T._R.std(self, dim, unbiased, keepdim, correction=correction, axis=axis,
                        keepdims=keepdims)

    def any(self, dim=None, keepdim=False): return T._R.any(self, dim, keepdim)
    def all(self, dim=None, keepdim=False): return T._R.all(self, dim, keepdim)
    def gather(self, dim, index): return T._R.gather(self, dim, index)

    # ------------------------------------------------------------------ selections and shapes
    def flatten(self, start_dim=0, end_dim=-1): return T._S.flatten(self, start_dim, end_dim)
    def split(self, split_size, dim=0): return T._S.split(self, split_size, dim)
    def chunk(self, chunks, dim=0): return T._S.chunk(self, chunks, dim)
    def index_select(self, dim, index): return T._S.index_select(self, dim, index)
    def select(self, dim, index): return T._S.select(self, dim, index)
    def repeat(self, *sizes): return T._S.repeat(self, *sizes)
    def unbind(self, dim=0): return T._S.unbind(self, dim)
    def narrow(self, dim, start, length): return T._S.narrow(self, dim, start, length)
    def masked_select(self, mask): return T._S.masked_select(self, mask)
    def tril(self, diagonal=0): return T._S.tril(self, diagonal)
    def triu(self, diagonal=0): return T._S.triu(self, diagonal)
    def expand_as(self, other): return self.expand(other.shape)
    def view_as(self, other): return self.view(other.shape)
    def reshape_as(self, other): return self.reshape(other.shape)
    def softmax(self, dim): return T._F.softmax(self, dim)
    def log_softmax(self, dim): return T._F.log_softmax(self, dim)

    # ------------------------------------------------------------------ the method spellings
    # of the operators
    def add(self, other, *, alpha=1): return self + (other if alpha == 1 else other * alpha)
    def sub(self, other, *, alpha=1): return self - (other if alpha == 1 else other * alpha)
    def mul(self, other): return self * other
    def pow(self, exponent): return self ** exponent
    def neg(self): return -self
    def square(self): return self * self

    def div(self, other, *, rounding_mode=None):
        return self / other if rounding_mode is None else T._fn.div(self, other, rounding_mode)

    def __floordiv__(self, other): return T._fn.div(self, other, "floor")
    def __rfloordiv__(self, other): return T._fn.div(self._wrap(other), self, "floor")
