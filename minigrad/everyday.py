"""The everyday PyTorch tensor API as methods: ``max(dim)`` with indices, ``sort``, ``topk``,
``median``, ``cumsum``, ``norm``, ``var``/``std``, ``gather``, ``scatter_``, ``repeat``,
``flip``, ``T``/``mT``/``t()``, ``size()``, ``softmax(dim)``, ``sin``, ``floor``, ``%``,
``new_zeros``, the method spellings of the operators (``add``, ``mul``, ``div`` with
``rounding_mode``, ``mm``, ...). Tensor derives from ``EverydayMixin``; the bodies are in
reductions.py, shape_ops.py, elementwise.py, indexing.py, functional.py and functions.py, and
these methods forward to them.
"""
from __future__ import annotations

from . import tensor as T   # (a cycle: tensor.py imports this module and, at its end, the
#                              modules with the bodies, T._R, T._S, T._F, T._fn, T._E (elementwise),
#                              T._I (indexing); used at call time)


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

    def median(self, dim=None, keepdim=False): return T._R.median(self, dim, keepdim)
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
    def view(self, *shape): return T._S.view(self, shape)
    def flip(self, *dims): return T._S.flip(self, T._shape_arg(dims))
    def roll(self, shifts, dims=None): return T._S.roll(self, shifts, dims)
    def movedim(self, source, destination): return T._S.movedim(self, source, destination)
    moveaxis = movedim
    def swapaxes(self, dim0, dim1): return self.transpose(dim0, dim1)
    swapdims = swapaxes
    def unflatten(self, dim, sizes): return T._S.unflatten(self, dim, sizes)

    def repeat_interleave(self, repeats, dim=None):
        return T._S.repeat_interleave(self, repeats, dim)
    def diag(self, diagonal=0): return T._S.diag(self, diagonal)
    def trace(self): return T._S.diag(self).sum()
    def softmax(self, dim): return T._F.softmax(self, dim)
    def log_softmax(self, dim): return T._F.log_softmax(self, dim)

    # ------------------------------------------------------------------ the method spellings
    # of the operators
    def add(self, other, *, alpha=1): return self + (other if alpha == 1 else other * alpha)
    def sub(self, other, *, alpha=1): return self - (other if alpha == 1 else other * alpha)
    def mul(self, other): return self * other
    def pow(self, exponent): return self ** exponent
    def neg(self): return -self
    def square(self): return self * self if self.array.dtype.kind == "f" else self ** 2

    def div(self, other, *, rounding_mode=None):
        return self / other if rounding_mode is None else T._fn.div(self, other, rounding_mode)

    def __floordiv__(self, other): return T._fn.div(self, other, "floor")
    def __rfloordiv__(self, other): return T._fn.div(self._wrap(other), self, "floor")
    def __mod__(self, other): return T._E.remainder(self, other)
    def __rmod__(self, other): return T._E.remainder(other, self)
    def remainder(self, other): return T._E.remainder(self, other)
    def fmod(self, other): return T._E.fmod(self, other)
    def mm(self, mat2): return T._fn.mm(self, mat2)
    def mv(self, vec): return T._fn.mv(self, vec)
    def bmm(self, mat2): return T._fn.bmm(self, mat2)
    def dot(self, other): return T._fn.dot(self, other)
    def outer(self, other): return T._fn.outer(self, other)

    def addcmul(self, tensor1, tensor2, *, value=1):
        return self + value * tensor1 * tensor2

    def addcdiv(self, tensor1, tensor2, *, value=1):
        return self + value * tensor1 / tensor2

    # ------------------------------------------------------------------ elementwise maths
    def sin(self): return T._E.sin(self)
    def cos(self): return T._E.cos(self)
    def tan(self): return T._E.tan(self)
    def log1p(self): return T._E.log1p(self)
    def expm1(self): return T._E.expm1(self)
    def log2(self): return T._E.log2(self)
    def log10(self): return T._E.log10(self)
    def exp2(self): return T._E.exp2(self)
    def reciprocal(self): return T._E.reciprocal(self)
    def rsqrt(self): return T._E.rsqrt(self)
    def sign(self): return T._E.sign(self)
    def floor(self): return T._E.floor(self)
    def ceil(self): return T._E.ceil(self)
    def trunc(self): return T._E.trunc(self)
    def frac(self): return T._E.frac(self)
    def round(self, *, decimals=0): return T._E.round(self, decimals=decimals)
    def lerp(self, end, weight): return T._E.lerp(self, end, weight)
    def isnan(self): return T._E.isnan(self)
    def isinf(self): return T._E.isinf(self)
    def isfinite(self): return T._E.isfinite(self)

    def nan_to_num(self, nan=0.0, posinf=None, neginf=None):
        return T._E.nan_to_num(self, nan, posinf, neginf)

    def logical_not(self): return T._E.logical_not(self)
    def logical_and(self, other): return T._E.logical_and(self, other)
    def logical_or(self, other): return T._E.logical_or(self, other)
    def logical_xor(self, other): return T._E.logical_xor(self, other)
    def clamp(self, min=None, max=None): return T._E.clamp(self, min, max)
    clip = clamp
    def masked_fill(self, mask, value): return T._E.masked_fill(self, mask, value)
    def clamp_min(self, min): return self.clamp(min=min)
    def clamp_max(self, max): return self.clamp(max=max)

    # ------------------------------------------------------------------ indexing
    def scatter(self, dim, index, src=None, *, value=None, reduce=None):
        return T._I.scatter(self, dim, index, src, value=value, reduce=reduce)

    def scatter_add(self, dim, index, src): return T._I.scatter_add(self, dim, index, src)

    def index_add(self, dim, index, source, *, alpha=1):
        return T._I.index_add(self, dim, index, source, alpha=alpha)

    def nonzero(self, *, as_tuple=False): return T._I.nonzero(self, as_tuple=as_tuple)
    def argwhere(self): return T._I.argwhere(self)
    def count_nonzero(self, dim=None): return T._I.count_nonzero(self, dim)

    def unique(self, sorted=True, return_inverse=False, return_counts=False, dim=None):
        return T._I.unique(self, sorted, return_inverse, return_counts, dim)

    # ------------------------------------------------------------------ new tensors like this one
    # (torch's new_*: this tensor's dtype and device unless told otherwise)
    def new_zeros(self, *size, dtype=None, device=None, requires_grad=False):
        return self._new(T._C.zeros, size, dtype, device, requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad=False):
        return self._new(T._C.ones, size, dtype, device, requires_grad)

    def new_empty(self, *size, dtype=None, device=None, requires_grad=False):
        return self._new(T._C.empty, size, dtype, device, requires_grad)

    def new_full(self, size, fill_value, *, dtype=None, device=None, requires_grad=False):
        return T._C.full(size, fill_value, dtype=dtype or self.dtype,
                         device=device or self.device, requires_grad=requires_grad)

    def new_tensor(self, data, *, dtype=None, device=None, requires_grad=False):
        """A new tensor of ``data`` (copied), with this tensor's dtype and device unless
        given (torch's rule: not the data's own dtype)."""
        return T._C.tensor(data, dtype=dtype or self.dtype, device=device or self.device,
                           requires_grad=requires_grad)

    def _new(self, make, size, dtype, device, requires_grad):
        return make(*T._shape_arg(size), dtype=dtype or self.dtype, device=device or self.device,
                    requires_grad=requires_grad)

    def type(self, dtype=None):
        """With a dtype: this tensor converted to it (as .to(dtype)). Without: the type's
        name, in torch's style ("minigrad.FloatTensor")."""
        if dtype is None:
            return f"minigrad.{_TYPE_NAMES.get(str(self.dtype), str(self.dtype))}Tensor"
        if isinstance(dtype, str) and dtype.endswith("Tensor"):
            raise T.DTypeError(f"type: type names such as {dtype!r} are not supported; pass a "
                               f"dtype: x.type(mg.float32), or write x.float()")
        return self.to(dtype)

    def __getattr__(self, name):
        # only reached when a name is missing: say so in torch's terms
        if name.startswith("_"):
            raise AttributeError(f"'Tensor' object has no attribute {name!r}")
        raise AttributeError(f"'Tensor' object has no attribute {name!r} (torch's "
                             f"Tensor.{name}): minigrad implements torch's everyday tensor "
                             f"methods, not all of them; see docs/pytorch.md and dir(tensor)")

    def element_size(self): return int(self.array.itemsize)
    is_cuda = property(lambda self: self.device == "cuda")


_TYPE_NAMES = {"float32": "Float", "float64": "Double", "float16": "Half", "int64": "Long",
               "int32": "Int", "int16": "Short", "int8": "Char", "uint8": "Byte", "bool": "Bool"}
