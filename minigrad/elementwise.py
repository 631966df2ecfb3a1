"""Elementwise maths beyond the primitives of ops.py, with torch's names and dtypes:
``sin``/``cos``/``tan``, ``log1p``/``expm1``/``log2``/``log10``, ``reciprocal``/``rsqrt``,
the rounding family (``sign``, ``floor``, ``ceil``, ``round``, ``trunc``, ``frac``),
``remainder`` (Python's ``%``) and ``fmod``, ``lerp``, ``isnan``/``isinf``/``isfinite``,
``nan_to_num`` and the ``logical_*`` functions.

Each function takes the tensor first; Tensor's methods (everyday.py) and the module-level
functions (``mg.sin(x)``) call them. As in torch, an integer or bool tensor given to a
floating-point function (sin, log1p, rsqrt, ...) computes in the default float dtype.
"""
from __future__ import annotations

import math

import numpy as np

from . import backend, dtypes
from . import ops as O
from .autograd import Function, register
from .errors import ArgumentError, DTypeError, ShapeError
from .tensor import Tensor, _check_broadcast, _guard


# ----------------------------------------------------------------------------- the ops
@register
class Sin(Function):
    # d sin x/dx = cos x
    saved_inputs = (0,)
    saves_output = False

    def forward(self, x):
        self.x = x
        return self.xp.sin(x)

    def backward(self, g):
        return g * self.xp.cos(self.x)


@register
class Cos(Function):
    # d cos x/dx = -sin x
    saved_inputs = (0,)
    saves_output = False

    def forward(self, x):
        self.x = x
        return self.xp.cos(x)

    def backward(self, g):
        return -g * self.xp.sin(self.x)


@register
class Log1p(Function):
    # d ln(1 + x)/dx = 1 / (1 + x)   (log1p: exact for tiny x, where log(1 + x) is not)
    saved_inputs = (0,)
    saves_output = False

    def forward(self, x):
        self.x = x
        return self.xp.log1p(x)

    def backward(self, g):
        return g / (1 + self.x)


@register
class Expm1(Function):
    # d (e^x - 1)/dx = e^x = out + 1
    saved_inputs = ()
    saves_output = True

    def forward(self, x):
        self.out = self.xp.expm1(x)
        return self.out

    def backward(self, g):
        return g * (self.out + 1)


@register
class Remainder(Function):
    # r = a - q b with q = floor(a / b) (remainder: the sign of b, Python's %) or
    # q = trunc(a / b) (fmod: the sign of a).  dr/da = 1, dr/db = -q  (q is piecewise
    # constant: torch's derivative)
    saved_inputs = (0, 1)
    saves_output = False

    def forward(self, a, b, fmod=False):
        self.a, self.b, self.fmod = a, b, fmod
        return self.xp.fmod(a, b) if fmod else self.xp.remainder(a, b)

    def backward(self, g):
        if not self.needs_grad[1]:
            return g, None
        q = self.a / self.b
        q = self.xp.trunc(q) if self.fmod else self.xp.floor(q)
        return g, -g * q


@register
class Rounded(Function):
    # sign, floor, ceil, round, trunc: piecewise constant, so the derivative is 0
    # everywhere (torch's choice at the jumps too)
    saved_inputs = ()
    saves_output = False

    def forward(self, x, fn, decimals=0):
        if fn == "round":
            return self.xp.round(x, decimals)
        return getattr(self.xp, fn)(x)

    def backward(self, g):
        return self.xp.zeros_like(g)


# ----------------------------------------------------------------------------- helpers
def floating(x: Tensor) -> Tensor:
    """``x`` itself when floating-point, else as the default float dtype (torch computes
    sin, exp, ... of an integer tensor in float32)."""
    return x if x.array.dtype.kind == "f" else x.astype(dtypes.DEFAULT_FLOAT)


def _tensor(fn: str, x) -> Tensor:
    if not isinstance(x, Tensor):
        raise DTypeError(f"{fn}: expected a Tensor, got {type(x).__name__}; wrap numbers "
                         f"with mg.tensor(...)")
    return x


def _flag(x: Tensor, array) -> Tensor:
    """A bool result (no gradient)."""
    return Tensor._make(backend.get_array_module(x.array).asarray(array), False)


# ----------------------------------------------------------------------------- clamp, masks
def clamp(x, min=None, max=None):
    """Each element limited to [min, max] (numbers, or tensors that broadcast); an integer
    tensor clamped to float bounds computes in the default float dtype, as torch."""
    if min is None and max is None:
        raise ArgumentError("clamp: at least one of min and max must be given")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        if min is not None and max is not None and isinstance(min, Tensor) != isinstance(
                max, Tensor):
            raise DTypeError("clamp: min and max must both be tensors or both be numbers "
                             "(as torch); wrap the number: max=mg.tensor(2.0)")
        out = x if min is None else x.maximum(min)
        return out if max is None else out.minimum(max)
    if x.array.dtype.kind != "f" and (isinstance(min, float) or isinstance(max, float)):
        x = x.astype(dtypes.DEFAULT_FLOAT)
    return O.Clip.apply(x, lo=min, hi=max)


def masked_fill(x, mask, value):
    """Where ``mask`` is True, ``value`` (a number, or a 0-d tensor, cast to x's dtype as in
    torch); elsewhere x."""
    arr = mask.array if isinstance(mask, Tensor) else mask
    if getattr(arr, "dtype", None) != bool:
        raise DTypeError(f"masked_fill: mask must be boolean (a bool tensor), got "
                         f"{getattr(arr, 'dtype', type(arr).__name__)}; write the "
                         f"condition as a comparison, e.g. x.masked_fill(m == 0, value)")
    _check_broadcast("masked_fill", x.shape, tuple(arr.shape))
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise ShapeError(f"masked_fill: only a 0-dimensional value tensor is supported, "
                             f"got shape {value.shape}")
        value = value.astype(x.dtype)
    else:
        value = x._wrap_as(value, x.dtype)
    return _guard(O.Where.apply(value, x, condition=arr), mask)


# ----------------------------------------------------------------------------- trigonometry
def sin(x): return Sin.apply(floating(_tensor("sin", x)))
def cos(x): return Cos.apply(floating(_tensor("cos", x)))
def tan(x): return sin(x) / cos(x)


# ----------------------------------------------------------------------------- exp and log
def log1p(x): return Log1p.apply(floating(_tensor("log1p", x)))
def expm1(x): return Expm1.apply(floating(_tensor("expm1", x)))
def log2(x): return floating(_tensor("log2", x)).log() * (1 / math.log(2))
def log10(x): return floating(_tensor("log10", x)).log() * (1 / math.log(10))
def exp2(x): return 2.0 ** floating(_tensor("exp2", x))
def reciprocal(x): return 1.0 / floating(_tensor("reciprocal", x))
def rsqrt(x): return floating(_tensor("rsqrt", x)).sqrt().reciprocal()


# ----------------------------------------------------------------------------- rounding
def _rounded(fn, x, decimals=0):
    x = _tensor(fn, x)
    if x.array.dtype.kind == "b":
        if fn == "sign":
            return x.clone()
        raise DTypeError(f"{fn}: not defined for a bool tensor; convert it first "
                         f"(x.float() or x.long())")
    if x.array.dtype.kind in "iu" and fn != "sign":
        return x        # integers are already whole (torch returns them unchanged)
    return Rounded.apply(x, fn=fn, decimals=decimals)


def sign(x): return _rounded("sign", x)
def floor(x): return _rounded("floor", x)
def ceil(x): return _rounded("ceil", x)
def trunc(x): return _rounded("trunc", x)
def frac(x):
    if _tensor("frac", x).array.dtype.kind != "f":
        raise DTypeError(f"frac: not implemented for dtype {x.dtype} (as torch); integers "
                         f"have no fractional part")
    return x - trunc(x)


def round(x, *, decimals=0):      # noqa: A001  (torch's name)
    """Round half to even (torch's and NumPy's rule: round(2.5) is 2), to ``decimals``."""
    return _rounded("round", x, decimals=decimals)


# ----------------------------------------------------------------------------- remainders
def _remainder(fn, a, b, fmod):
    if not isinstance(a, Tensor):
        a = _tensor(fn, b)._wrap(a)
    a, b = a._pair(b)
    if a.array.dtype.kind == "b":
        raise DTypeError(f"{fn}: not implemented for bool tensors (as torch); convert: "
                         f"x.long()")
    if a.array.dtype.kind in "iu":        # integers: exact, no gradient
        if bool((b.array == 0).any()):
            raise ZeroDivisionError(f"{fn}: integer division by zero (ZeroDivisionError)")
        xp = backend.get_array_module(a.array)
        out = xp.fmod(a.array, b.array) if fmod else xp.remainder(a.array, b.array)
        return Tensor._make(xp.asarray(out), False)
    _check_broadcast(fn, a.shape, b.shape)
    return Remainder.apply(a, b, fmod=fmod)


def remainder(a, b):
    """a - floor(a / b) * b: the sign of b, like Python's ``%`` (``x % 3``)."""
    return _remainder("remainder", a, b, False)


def fmod(a, b):
    """a - trunc(a / b) * b: the sign of a, like C's fmod."""
    return _remainder("fmod", a, b, True)


# ----------------------------------------------------------------------------- interpolation
def lerp(start, end, weight):
    """start + weight * (end - start) (an EMA: ``ema.lerp_(p, 1 - decay)``)."""
    return _tensor("lerp", start) + weight * (end - start)


# ----------------------------------------------------------------------------- floating checks
def _check(fn, x):
    x = _tensor(fn, x)
    return _flag(x, getattr(backend.get_array_module(x.array), fn)(x.array))


def isnan(x): return _check("isnan", x)
def isinf(x): return _check("isinf", x)
def isfinite(x): return _check("isfinite", x)
def isposinf(x): return _flag(x, _tensor("isposinf", x).array == np.inf)
def isneginf(x): return _flag(x, _tensor("isneginf", x).array == -np.inf)


def nan_to_num(x, nan=0.0, posinf=None, neginf=None):
    """NaN -> ``nan``, +inf -> ``posinf`` and -inf -> ``neginf`` (by default the largest
    and smallest finite values of the dtype); the gradient passes where x was finite."""
    x = _tensor("nan_to_num", x)
    if x.array.dtype.kind != "f":
        return x
    info = np.finfo(x.array.dtype)
    posinf = info.max if posinf is None else posinf
    neginf = info.min if neginf is None else neginf
    return x.masked_fill(isnan(x), nan).masked_fill(isposinf(x), posinf) \
        .masked_fill(isneginf(x), neginf)


# ----------------------------------------------------------------------------- logic
def _truth(x):
    """The elements' truth as a bool array (nonzero is True, as in torch)."""
    a = x.array if isinstance(x, Tensor) else np.asarray(x)
    return a if a.dtype == bool else a != 0


def logical_not(x): return _flag(_tensor("logical_not", x), ~_truth(x))
def logical_and(a, b): return _flag(_tensor("logical_and", a), _truth(a) & _truth(b))
def logical_or(a, b): return _flag(_tensor("logical_or", a), _truth(a) | _truth(b))
def logical_xor(a, b): return _flag(_tensor("logical_xor", a), _truth(a) ^ _truth(b))
