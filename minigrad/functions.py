"""Module-level functions with torch's names: ``mg.exp(x)``, ``mg.softmax(x, dim)``,
``mg.matmul(a, b)``, ``mg.max(x, 1)``, ``mg.einsum(...)``, ``mg.eye(3)``,
``mg.from_numpy(a)``, ``mg.multinomial(p, 1)``, ``mg.sin``, ``mg.scatter``, ``mg.conv2d`` ...

Most are the Tensor method of the same name, called on the first argument (one
implementation: the method's). The constructors (eye, linspace, from_numpy, as_tensor,
randperm), the sampler (multinomial, from the seeded generator), ``out=`` and matmul's rules
(Tensor.matmul and ``@`` call them) live here; the rest comes from the modules that own it
(elementwise.py, indexing.py, conv.py, shape_ops.py, reductions.py).
"""
from __future__ import annotations

import numbers
import warnings

import numpy as np

from . import backend, dtypes
from . import creation as _creation
from . import functional as F
from . import ops as O
from .autograd import is_grad_enabled, no_grad
from .conv import (adaptive_avg_pool2d, avg_pool1d, avg_pool2d, conv1d, conv2d,  # noqa: F401
                   max_pool1d, max_pool2d)
from .creation import tensor as _new_tensor
from .einsum import einsum
from .elementwise import (ceil, cos, exp2, expm1, floor, fmod, frac, isfinite, isinf,  # noqa: F401
                          isnan, lerp, log1p, log2, log10, logical_and, logical_not,
                          logical_or, logical_xor, nan_to_num, reciprocal, remainder, round,
                          rsqrt, sign, sin, tan, trunc)
from .errors import ArgumentError, DTypeError, GraphError, ShapeError
from .indexing import (argwhere, count_nonzero, index_add, nonzero, scatter,  # noqa: F401
                       scatter_add, unique)
from .reductions import (all, amax, amin, any, argmax, argmin, argsort, cumsum, gather,
                         logsumexp, max, min, norm, prod, sort, std, topk, var)
from .shape_ops import diag, flip, movedim, roll, unflatten  # noqa: F401
from .shape_ops import index_select, masked_select, narrow, select, t, tril, triu, unbind
from .tensor import DEFAULT_FLOAT, Tensor, _check_broadcast, as_dtype
from .truth import PRINT_OPTIONS

# ----------------------------------------------------------------------------- elementwise


def exp(x): return x.exp()
def log(x): return x.log()
def sqrt(x): return x.sqrt()
def abs(x): return x.abs()
def tanh(x): return x.tanh()
def sigmoid(x): return x.sigmoid()
def relu(x): return x.relu()
def square(x): return x.square()
def pow(x, exponent): return x ** exponent          # noqa: A001  (torch's name)
def maximum(a, b): return a.maximum(b)
def minimum(a, b): return a.minimum(b)


def add(input, other, *, alpha=1, out=None):
    """input + alpha * other."""
    return _out("add", input + (other if alpha == 1 else other * alpha), out)


def sub(input, other, *, alpha=1, out=None):
    """input - alpha * other."""
    return _out("sub", input - (other if alpha == 1 else other * alpha), out)


def mul(input, other, *, out=None):
    return _out("mul", input * other, out)


multiply, subtract = mul, sub


def addcmul(input, tensor1, tensor2, *, value=1):
    return input.addcmul(tensor1, tensor2, value=value)


def addcdiv(input, tensor1, tensor2, *, value=1):
    return input.addcdiv(tensor1, tensor2, value=value)


def _out(fn, result, out):
    """torch's ``out=``: the result written into ``out`` (resized if its shape differs,
    cast to its dtype where the result's category allows), returned. As in torch, not
    while autograd records: the functions with out= do not support gradients."""
    if out is None:
        return result
    if not isinstance(out, Tensor):
        raise DTypeError(f"{fn}: out must be a Tensor, got {type(out).__name__}")
    if is_grad_enabled() and (result.requires_grad or out.requires_grad):
        raise GraphError(f"{fn}(): functions with out=... arguments don't support automatic "
                         f"differentiation, but one of the arguments requires grad; write "
                         f"y = {fn}(...) instead, or call it under no_grad()")
    if out.shape != result.shape:
        if out.numel():
            warnings.warn(f"{fn}: an output with one or more elements was resized since it "
                          f"had shape {out.shape}, which does not match the required output "
                          f"shape {result.shape}", UserWarning, stacklevel=3)
        out.array = backend.get_array_module(result.array).empty(result.shape, out.dtype)
    with no_grad():
        out.copy_(result) if dtypes.can_cast(result.dtype, out.dtype) else _cast_error(
            fn, result, out)
    return out


def _cast_error(fn, result, out):
    raise DTypeError(f"{fn}: result type {result.dtype} can't be cast to the desired output "
                     f"type {out.dtype} (out=); pass an out tensor of dtype {result.dtype}")


def div(a, b, rounding_mode=None, *, out=None):
    """a / b; rounding_mode "floor" or "trunc" rounds the quotient (integers stay integers,
    as in torch; the rounded result carries no gradient: its derivative is 0)."""
    if out is not None:
        return _out("div", div(a, b, rounding_mode), out)
    if rounding_mode is None:
        return a / b
    if rounding_mode not in ("floor", "trunc"):
        raise ArgumentError(f"div: rounding_mode must be None, 'floor' or 'trunc', got "
                            f"{rounding_mode!r}")
    a, b = (a if isinstance(a, Tensor) else b._wrap(a))._pair(b)     # torch's promotion
    x, y = a.array, backend.to_device(b.array, a.device)
    xp = backend.get_array_module(x)
    if x.dtype.kind == "b":
        raise DTypeError("div: floor and trunc division of bool tensors are not implemented "
                         "(as torch); convert first: x.long()")
    if x.dtype.kind in "iu":
        if bool((y == 0).any()):
            raise ZeroDivisionError("div: integer division by zero")
        q = xp.floor_divide(x, y)
        if rounding_mode == "trunc":      # floor rounds toward -inf; trunc toward 0
            q = q + ((q < 0) & (q * y != x))
        return Tensor._make(q, False)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = (x / y)
    q = xp.floor(q) if rounding_mode == "floor" else xp.trunc(q)
    return Tensor._make(xp.asarray(q).astype(x.dtype, copy=False), False)


def clamp(x, min=None, max=None):
    """Each element limited to [min, max] (either may be None)."""
    return x.clamp(min, max)


clip = clamp


def softmax(x, dim, dtype=None):
    """softmax along dim (torch.softmax: dim is required)."""
    return F.softmax(x if dtype is None else x.astype(dtype), dim)


def log_softmax(x, dim, dtype=None):
    return F.log_softmax(x if dtype is None else x.astype(dtype), dim)


# ----------------------------------------------------------------------------- products


def matmul(a, b, *, out=None):
    """a @ b with torch's rules: 1-D operands promoted to a row / column (and the 1 dropped
    after), batch dims broadcast, both operands of one dtype (no promotion, as torch)."""
    if not isinstance(a, Tensor):
        raise DTypeError(f"matmul: expected a Tensor, got {type(a).__name__}")
    b = a._wrap(b)
    if out is not None:
        return _out("matmul", matmul(a, b), out)
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError(f"matmul: both operands need at least 1 dimension, got shapes "
                         f"{a.shape} and {b.shape}")
    if a.array.dtype == bool:
        raise DTypeError("matmul: not implemented for bool tensors (as torch); convert "
                         "first: a.float() @ b.float()")
    if a.array.dtype != b.array.dtype:      # torch does not promote in matmul
        raise DTypeError(f"matmul: expected both operands to have the same dtype, got "
                         f"{a.dtype} and {b.dtype}; convert one first, e.g. "
                         f"x.to(w.dtype) or x.float() (data from NumPy is often float64)")
    if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise ShapeError(f"matmul: shapes {a.shape} and {b.shape} do not fit: "
                         f"{a.shape[-1]} (last dim of the first) != "
                         f"{b.shape[-2 if b.ndim > 1 else 0]} (rows of the second)")
    _check_broadcast("matmul", a.shape[:-2], b.shape[:-2])
    squeeze = []
    if a.ndim == 1:   # (n,) @ (..., n, m): promote to (1, n), drop the 1 afterwards
        a = a.reshape(1, a.shape[0])
        squeeze.append(-2)
    if b.ndim == 1:   # (..., n) @ (n,): promote to (n, 1)
        b = b.reshape(b.shape[0], 1)
        squeeze.append(-1)
    result = O.MatMul.apply(a, b)
    for axis in sorted(squeeze):
        result = result.squeeze(axis if len(squeeze) == 1 else -1)
    return result


def mv(a, v):
    """Matrix (n, m) times vector (m,): a vector (n,)."""
    _dims("mv", "input", a, 2)
    _dims("mv", "vec", v, 1)
    return a.matmul(v)


def _dims(fn, name, x, n):
    if x.ndim != n:
        raise ShapeError(f"{fn}: {name} must be {n}-D, got shape {x.shape}")


def mm(a, b):
    """Matrix product of two 2-D tensors (no broadcasting)."""
    _dims("mm", "input", a, 2)
    _dims("mm", "mat2", b, 2)
    return a.matmul(b)


def bmm(a, b):
    """Batched matrix product of (B, n, k) and (B, k, m) tensors (no broadcasting)."""
    _dims("bmm", "input", a, 3)
    _dims("bmm", "mat2", b, 3)
    if a.shape[0] != b.shape[0]:
        raise ShapeError(f"bmm: batch sizes differ: {a.shape} and {b.shape}")
    return a.matmul(b)


def outer(a, b):
    """The outer product of two 1-D tensors: out[i, j] = a[i] * b[j]."""
    _dims("outer", "input", a, 1)
    _dims("outer", "vec2", b, 1)
    return a.reshape(-1, 1) * b.reshape(1, -1)


def dot(a, b):
    """The inner product of two 1-D tensors of the same length (0-d)."""
    _dims("dot", "input", a, 1)
    _dims("dot", "tensor", b, 1)
    if a.shape != b.shape:
        raise ShapeError(f"dot: expected 1-D tensors of the same length, got {a.shape} and "
                         f"{b.shape}")
    return (a * b).sum()


# ----------------------------------------------------------------------------- reductions


def sum(x, dim=None, keepdim=False, *, dtype=None):
    """Sum of all elements, or along dim (an int or a tuple)."""
    return (x if dtype is None else x.astype(dtype)).sum(dim, keepdim)


def mean(x, dim=None, keepdim=False, *, dtype=None):
    return (x if dtype is None else x.astype(dtype)).mean(dim, keepdim)


def numel(x):
    return x.numel()


def median(x, dim=None, keepdim=False):
    return x.median(dim, keepdim)


def std_mean(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """(std, mean) along dim, as torch.std_mean."""
    return (x.std(dim, unbiased, keepdim, correction=correction), x.mean(dim, keepdim))


def var_mean(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """(var, mean) along dim, as torch.var_mean."""
    return (x.var(dim, unbiased, keepdim, correction=correction), x.mean(dim, keepdim))


def bernoulli(input, p=None):
    """1 with probability ``input`` (or ``p``) elementwise, else 0, in input's dtype, from
    minigrad's seeded generator (no gradient)."""
    if not isinstance(input, Tensor) or input.array.dtype.kind != "f":
        raise DTypeError("bernoulli: input must be a floating-point tensor of probabilities")
    probs = input.array if p is None else p
    u = backend.random_uniform(input.shape, input.array.dtype, input.device)
    return Tensor._make((u < probs).astype(input.array.dtype), False)


def get_default_dtype():
    """The dtype Python floats become: float32 (minigrad's is fixed)."""
    return DEFAULT_FLOAT


def set_default_dtype(d):
    """Only float32, the default minigrad is built around, can be set (a no-op)."""
    if as_dtype(d) != DEFAULT_FLOAT:
        raise DTypeError(f"set_default_dtype: minigrad's default float dtype is fixed at "
                         f"float32, got {d}; pass dtype= to the constructors (mg.tensor(..., "
                         f"dtype=mg.float64)) or convert: x.double(), model.double()")


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None,
                     profile=None, sci_mode=None):
    """How tensors print (torch.set_printoptions): precision, threshold (the element count
    beyond which it summarises), edgeitems, linewidth; profile 'default', 'short', 'full'."""
    if profile is not None:
        PRINT_OPTIONS.update({"default": dict(precision=4, threshold=1000, edgeitems=3,
                                                max_line_width=80),
                                "short": dict(precision=2, threshold=1000, edgeitems=2,
                                              max_line_width=80),
                                "full": dict(precision=4, threshold=2 ** 63 - 1, edgeitems=3,
                                             max_line_width=80)}[profile])
    for name, value in (("precision", precision), ("threshold", threshold),
                        ("edgeitems", edgeitems), ("max_line_width", linewidth)):
        if value is not None:
            PRINT_OPTIONS[name] = value
    if sci_mode is not None:
        PRINT_OPTIONS["suppress_small"] = not sci_mode


def equal(a, b) -> bool:
    """True when a and b have the same shape and the same values (torch.equal)."""
    return isinstance(a, Tensor) and isinstance(b, Tensor) and a.shape == b.shape and \
        bool((a == b).all())


def is_tensor(obj) -> bool:
    return isinstance(obj, Tensor)


def is_floating_point(x) -> bool:
    return x.is_floating_point()


def normal(mean=0.0, std=1.0, size=None, *, dtype=None, device=None, requires_grad=False):
    """Draws from N(mean, std**2): of ``size`` for number arguments, else elementwise for
    tensors of means and/or standard deviations (broadcast)."""
    if isinstance(mean, Tensor) or isinstance(std, Tensor):
        like = mean if isinstance(mean, Tensor) else std
        shape = np.broadcast_shapes(tuple(getattr(mean, "shape", ())),
                                    tuple(getattr(std, "shape", ())))
        z = _creation.randn(*shape, dtype=like.dtype, device=like.device)
        return (z * std + mean).detach()
    if size is None:
        raise ArgumentError("normal: with number mean and std, pass size=(...)")
    z = _creation.randn(*size, dtype=dtype, device=device)
    return (z * std + mean).detach().requires_grad_(requires_grad)


# ----------------------------------------------------------------------------- shapes


def reshape(x, shape): return x.reshape(shape)
def swapaxes(x, dim0, dim1): return x.transpose(dim0, dim1)
def repeat_interleave(x, repeats, dim=None): return x.repeat_interleave(repeats, dim)
def trace(x): return x.trace()


moveaxis = movedim
def flatten(x, start_dim=0, end_dim=-1): return x.flatten(start_dim, end_dim)
def transpose(x, dim0, dim1): return x.transpose(dim0, dim1)
def permute(x, dims): return x.permute(dims)
def squeeze(x, dim=None): return x.squeeze(dim)
def unsqueeze(x, dim): return x.unsqueeze(dim)
def split(x, split_size_or_sections, dim=0): return x.split(split_size_or_sections, dim)
def chunk(x, chunks, dim=0): return x.chunk(chunks, dim)


# ----------------------------------------------------------------------------- comparisons


def _arrays(a, b):
    a = a.array if isinstance(a, Tensor) else np.asarray(a)
    return a, backend.to_device(b.array if isinstance(b, Tensor) else np.asarray(b),
                                backend.device_of(a))


def isclose(a, b, rtol=1e-5, atol=1e-8, equal_nan=False):
    """|a - b| <= atol + rtol |b| elementwise, as a bool tensor."""
    x, y = _arrays(a, b)
    xp = backend.get_array_module(x)
    return Tensor._make(xp.asarray(xp.isclose(x, y, rtol=rtol, atol=atol,
                                              equal_nan=equal_nan)), False)


def allclose(a, b, rtol=1e-5, atol=1e-8, equal_nan=False) -> bool:
    """True when every element of a is close to b's (isclose); a Python bool."""
    x, y = _arrays(a, b)
    xp = backend.get_array_module(x)
    return bool(xp.allclose(x, y, rtol=rtol, atol=atol, equal_nan=equal_nan))


# ----------------------------------------------------------------------------- constructors


def _size(fn, name, n):
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise ArgumentError(f"{fn}: {name} must be an int >= 0, got {n!r}")
    return int(n)


def _leaf(array, requires_grad):
    return Tensor._make(array, False).requires_grad_(requires_grad)


def eye(n, m=None, *, dtype=None, device=None, requires_grad=False):
    """The n x m identity (m = n by default); float32 unless dtype is given."""
    n = _size("eye", "n", n)
    m = n if m is None else _size("eye", "m", m)
    xp = backend.xp_for(backend.check_device(device))
    return _leaf(xp.eye(n, m, dtype=as_dtype(dtype) or DEFAULT_FLOAT), requires_grad)


def linspace(start, end, steps, *, dtype=None, device=None, requires_grad=False):
    """``steps`` evenly spaced values from start to end, both included (float32 default)."""
    steps = _size("linspace", "steps", steps)
    start, end = (v.item() if isinstance(v, Tensor) else v for v in (start, end))
    for name, v in (("start", start), ("end", end)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise ArgumentError(f"linspace: {name} must be a number, got {v!r}")
    xp = backend.xp_for(backend.check_device(device))
    data = xp.linspace(start, end, steps, dtype=np.float64)
    return _leaf(data.astype(as_dtype(dtype) or DEFAULT_FLOAT), requires_grad)


def from_numpy(array) -> Tensor:
    """A tensor that shares memory with the NumPy array (changes show in both) and keeps
    its dtype (a float64 array gives a float64 tensor)."""
    if not isinstance(array, np.ndarray):
        raise DTypeError(f"from_numpy: expected a NumPy ndarray, got {type(array).__name__}; "
                         f"use mg.tensor(data) for lists and numbers")
    if array.dtype.kind not in "biuf":
        raise DTypeError(f"from_numpy: the array's dtype {array.dtype} is not numeric")
    return Tensor._make(array, False)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """``data`` as a tensor, without a copy where it can: the same tensor, or an array's
    memory when the dtype and device already match (arrays keep their dtype); otherwise a
    new tensor as mg.tensor makes it."""
    dtype = as_dtype(dtype)
    if isinstance(data, Tensor):
        out = data if dtype is None else data.astype(dtype)
        return out if device is None else out.to(device)
    if isinstance(data, np.ndarray) or backend.device_of(data) == "cuda":
        target = backend.check_device(device) if device is not None else backend.device_of(data)
        if data.dtype.kind not in "biuf":
            raise DTypeError(f"as_tensor: the array's dtype {data.dtype} is not numeric")
        if (dtype is None or dtype == data.dtype) and target == backend.device_of(data):
            return Tensor._make(data, False)
        array = backend.to_device(data, target)
        return Tensor._make(array.astype(dtype or array.dtype, copy=False), False)
    return _new_tensor(data, dtype=dtype, device=device)


def randperm(n, *, dtype=np.int64, device=None):
    """A random permutation of 0..n-1 from the seeded generator."""
    n = _size("randperm", "n", n)
    device = backend.check_device(device)
    return Tensor._make(backend.rng(device).permutation(n).astype(as_dtype(dtype)), False)


def multinomial(input, num_samples, replacement=False, *, generator=None):
    """Draw category indices from the rows of ``input`` (1-D or 2-D non-negative weights,
    normalised per row) with the seeded generator: ``num_samples`` per row, with or without
    replacement. Returns int64 of shape (num_samples,) or (rows, num_samples)."""
    if generator is not None:
        raise ArgumentError("multinomial: generator= is not supported; seed with "
                            "mg.manual_seed(n)")
    p = _check_weights(input, num_samples, replacement)
    rows = p.reshape(-1, p.shape[-1])
    xp = backend.get_array_module(rows)
    if replacement:
        u = backend.random_uniform((rows.shape[0], num_samples), np.float64, input.device)
        out = _inverse_cdf(xp, rows, u)
    else:   # exponential race: the k smallest E_i / w_i (E_i ~ Exp(1)) are k draws without
        # replacement, each next one with probability proportional to its weight
        u = backend.random_uniform(rows.shape, np.float64, input.device)
        with np.errstate(divide="ignore", invalid="ignore"):
            keys = -xp.log1p(-u) / rows             # weight 0: inf, drawn last
        kw = {"kind": "stable"} if xp is np else {}
        out = xp.argsort(keys, axis=-1, **kw)[:, :num_samples]
    return Tensor._make(out.astype(np.int64).reshape(p.shape[:-1] + (num_samples,)), False)


def _check_weights(input, num_samples, replacement):
    if not isinstance(input, Tensor):
        raise DTypeError(f"multinomial: input must be a Tensor, got {type(input).__name__}")
    if input.array.dtype.kind != "f":
        raise DTypeError(f"multinomial: input must be a floating-point tensor of weights, got "
                         f"dtype {input.array.dtype} (convert with .float())")
    if input.ndim not in (1, 2) or input.shape[-1] == 0:
        raise ShapeError(f"multinomial: input must be 1-D or 2-D with at least one category, "
                         f"got shape {input.shape}")
    if isinstance(num_samples, bool) or not isinstance(num_samples, numbers.Integral) or \
            num_samples < 1:
        raise ArgumentError(f"multinomial: num_samples must be an int >= 1, got {num_samples!r}")
    if not replacement and num_samples > input.shape[-1]:
        raise ArgumentError(f"multinomial: cannot draw {num_samples} samples from "
                            f"{input.shape[-1]} categories without replacement; pass "
                            f"replacement=True")
    p = input.array.astype(np.float64)
    xp = backend.get_array_module(p)
    if not bool(xp.isfinite(p).all()) or bool((p < 0).any()):
        raise ArgumentError("multinomial: the weights must be finite and >= 0 (got inf, nan "
                            "or a negative entry); pass probabilities, e.g. softmax(logits)")
    if bool((p.sum(-1) <= 0).any()):
        raise ArgumentError("multinomial: every row of weights must have a positive sum")
    return p


def _inverse_cdf(xp, rows, u):
    """Per row, the first category whose cumulative probability exceeds u: one
    searchsorted over all rows at once, each row's CDF shifted by its row number."""
    n, c = rows.shape
    cdf = xp.cumsum(rows, axis=-1)
    cdf = cdf / cdf[:, -1:]
    cdf[:, -1] = 1.0
    offset = xp.arange(n, dtype=np.float64)[:, None]
    flat = xp.searchsorted((cdf + offset).reshape(-1), (u + offset).reshape(-1), side="right")
    return xp.minimum(flat.reshape(n, -1) - (offset.astype(np.int64) * c), c - 1)


# names that are also Python builtins: mg.max is torch.max, but minigrad.__all__ leaves them
# out so that ``from minigrad import *`` does not replace the builtin max, sum, ... of a script
BUILTIN_NAMES = frozenset({"abs", "all", "any", "max", "min", "pow", "sum", "round",
                           "compile"})

__all__ = [
    "exp", "log", "sqrt", "abs", "tanh", "sigmoid", "relu", "square", "pow", "maximum",
    "minimum", "div", "clamp", "clip", "softmax", "log_softmax", "matmul", "mm", "bmm", "outer",
    "dot", "einsum", "sum", "mean", "max", "min", "amax", "amin", "argmax", "argmin", "sort",
    "argsort", "topk", "cumsum", "prod", "logsumexp", "norm", "std", "var", "any", "all",
    "numel", "reshape", "flatten", "transpose", "permute", "squeeze", "unsqueeze", "split",
    "chunk", "unbind", "narrow", "select", "gather", "index_select", "masked_select", "t",
    "tril", "triu", "isclose", "allclose", "eye", "linspace", "from_numpy", "as_tensor",
    "randperm", "multinomial", "mv", "add", "sub", "mul", "multiply", "subtract", "addcmul",
    "addcdiv", "median", "equal", "is_tensor", "is_floating_point", "normal", "swapaxes",
    "trace", "moveaxis", "sin", "cos", "tan", "log1p", "expm1", "log2", "log10", "exp2",
    "reciprocal", "rsqrt", "sign", "floor", "ceil", "round", "trunc", "frac", "remainder",
    "fmod", "lerp", "isnan", "isinf", "isfinite", "nan_to_num", "logical_and", "logical_not",
    "logical_or", "logical_xor", "scatter", "scatter_add", "index_add", "nonzero", "argwhere",
    "count_nonzero", "unique", "diag", "flip", "movedim", "roll", "unflatten", "conv2d",
    "conv1d", "max_pool2d", "max_pool1d", "avg_pool2d", "avg_pool1d", "adaptive_avg_pool2d",
    "compile", "std_mean", "var_mean", "bernoulli", "get_default_dtype", "set_default_dtype",
    "set_printoptions", "repeat_interleave",
]


def compile(model=None, **options):       # noqa: A001  (torch's name)
    """torch.compile's place: minigrad runs eagerly, so the model (or function) comes back
    as it is -- the same results, nothing compiled. Also a decorator (``@mg.compile``,
    ``@mg.compile(...)``)."""
    if model is None:
        return lambda fn: fn
    return model
