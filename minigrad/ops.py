"""Primitive ops. Each is a Function with forward/backward on raw arrays and its
derivative in a comment; the engine (autograd.py) handles broadcasting, ordering
and accumulation, so backward may return gradients in the broadcast shape.

Non-tensor arguments (axes, shapes, indices, masks) come in as keyword constants.
Fused ops with hand-derived backward (softmax, cross-entropy, layer norm, GELU,
attention, linear) live in fused.py and are registered in the same table.
"""
from __future__ import annotations

import numpy as np

from .autograd import Function, register

# ----------------------------------------------------------------------------- binary


@register
class Add(Function):
    # d(a+b)/da = 1, d(a+b)/db = 1
    saved_inputs = ()
    saves_output = False

    def forward(self, a, b):
        return a + b

    def backward(self, g):
        return g, g


@register
class Sub(Function):
    # d(a-b)/da = 1, d(a-b)/db = -1
    saved_inputs = ()
    saves_output = False

    def forward(self, a, b):
        return a - b

    def backward(self, g):
        return g, (-g if self.needs_grad[1] else None)


@register
class Mul(Function):
    # d(ab)/da = b, d(ab)/db = a
    saved_inputs = {0: (1,), 1: (0,)}   # a is read for db only, b for da
    saves_output = False

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        return (g * self.b if self.needs_grad[0] else None,
                g * self.a if self.needs_grad[1] else None)


@register
class Div(Function):
    # d(a/b)/da = 1/b, d(a/b)/db = -a/b^2
    saved_inputs = {0: (1,), 1: (0, 1)}
    saves_output = False

    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, g):
        ga = g / self.b
        return ga, (-ga * self.a / self.b if self.needs_grad[1] else None)


@register
class Pow(Function):
    # d(a^b)/da = b a^(b-1), d(a^b)/db = a^b ln a   (tensor exponent; a > 0 for db)
    saved_inputs = {0: (0, 1), 1: (0,)}
    saves_output = True

    def forward(self, a, b):
        self.a, self.b = a, b
        self.out = a ** b
        return self.out

    def backward(self, g):
        ga = g * self.b * self.a ** (self.b - 1) if self.needs_grad[0] else None
        gb = g * self.out * self.xp.log(self.a) if self.needs_grad[1] else None
        return ga, gb


@register
class Maximum(Function):
    # d max(a,b)/da = 1 where a > b, 1/2 where a == b (as PyTorch), else 0
    saved_inputs = (0, 1)
    saves_output = False

    def forward(self, a, b):
        self.a, self.b = a, b
        return self.xp.maximum(a, b)

    def backward(self, g):
        a, b = self.a, self.b
        share = (a > b) + 0.5 * (a == b)
        return g * share.astype(g.dtype), g * (1 - share).astype(g.dtype)


# ----------------------------------------------------------------------------- unary


@register
class PowScalar(Function):
    # d(x^c)/dx = c x^(c-1)
    saved_inputs = (0,)
    saves_output = False

    def forward(self, x, exponent):
        self.x, self.c = x, exponent
        return x ** exponent

    def backward(self, g):
        return g * (self.c * self.x ** (self.c - 1))


@register
class Neg(Function):
    # d(-x)/dx = -1
    saved_inputs = ()
    saves_output = False

    def forward(self, x):
        return -x

    def backward(self, g):
        return -g


@register
class Exp(Function):
    # d e^x/dx = e^x
    saved_inputs = ()
    saves_output = True

    def forward(self, x):
        self.out = self.xp.exp(x)
        return self.out

    def backward(self, g):
        return g * self.out


@register
class Log(Function):
    # d ln x/dx = 1/x
    saved_inputs = (0,)
    saves_output = False

    def forward(self, x):
        self.x = x
        return self.xp.log(x)

    def backward(self, g):
        return g / self.x


@register
class Sqrt(Function):
    # d sqrt(x)/dx = 1 / (2 sqrt(x))
    saved_inputs = ()
    saves_output = True

    def forward(self, x):
        self.out = self.xp.sqrt(x)
        return self.out

    def backward(self, g):
        return g / (2 * self.out)


@register
class Tanh(Function):
    # d tanh(x)/dx = 1 - tanh(x)^2
    saved_inputs = ()
    saves_output = True

    def forward(self, x):
        from .backend import tanh
        self.out = tanh(x)
        return self.out

    def backward(self, g):
        return g * (1 - self.out * self.out)


@register
class Erf(Function):
    # d erf(x)/dx = 2/sqrt(pi) e^(-x^2)
    saved_inputs = (0,)
    saves_output = False

    def forward(self, x):
        from .backend import erf
        self.x = x
        return erf(x).astype(x.dtype, copy=False)

    def backward(self, g):
        return g * (1.1283791670955126 * self.xp.exp(-self.x * self.x))


@register
class Sigmoid(Function):
    # d s(x)/dx = s(x) (1 - s(x)); computed as exp(-logaddexp(0, -x)) to never overflow
    saved_inputs = ()
    saves_output = True

    def forward(self, x):
        self.out = self.xp.exp(-self.xp.logaddexp(0, -x)).astype(x.dtype, copy=False)
        return self.out

    def backward(self, g):
        return g * self.out * (1 - self.out)


@register
class Relu(Function):
    # d relu(x)/dx = 1 where x > 0 else 0
    saved_inputs = ()
    saves_output = False

    def forward(self, x):
        self.mask = x > 0
        return x * self.mask

    def backward(self, g):
        return g * self.mask


@register
class Abs(Function):
    # d|x|/dx = sign(x) (0 at 0, as PyTorch)
    saved_inputs = (0,)
    saves_output = False

    def forward(self, x):
        self.x = x
        return self.xp.abs(x)

    def backward(self, g):
        return g * self.xp.sign(self.x)


@register
class Clip(Function):
    # d clip(x, lo, hi)/dx = 1 where lo <= x <= hi else 0
    saved_inputs = ()
    saves_output = False

    def forward(self, x, lo=None, hi=None):
        self.inside = self.xp.ones(x.shape, dtype=bool)
        if lo is not None:
            self.inside &= x >= lo
        if hi is not None:
            self.inside &= x <= hi
        return self.xp.clip(x, lo, hi)

    def backward(self, g):
        return g * self.inside


# ----------------------------------------------------------------------------- reductions


def _expand_reduced(g, shape, axis, keepdims):
    """Reshape a reduced gradient so it broadcasts against the input again."""
    if axis is None or keepdims:
        return g.reshape([1] * len(shape)) if axis is None and not keepdims else g
    axes = sorted(a % len(shape) for a in axis)
    for a in axes:
        g = g.reshape(g.shape[:a] + (1,) + g.shape[a:])
    return g


@register
class Sum(Function):
    # d sum(x)/dx_i = 1: the gradient is broadcast back over the summed axes
    saved_inputs = ()
    saves_output = False

    def forward(self, x, axis=None, keepdims=False):
        self.shape, self.axis, self.keepdims = x.shape, axis, keepdims
        return x.sum(axis=axis, keepdims=keepdims)

    def backward(self, g):
        g = _expand_reduced(g, self.shape, self.axis, self.keepdims)
        return self.xp.broadcast_to(g, self.shape)


@register
class Mean(Function):
    # d mean(x)/dx_i = 1/n, n the number of elements averaged
    saved_inputs = ()
    saves_output = False

    def forward(self, x, axis=None, keepdims=False):
        self.shape, self.axis, self.keepdims = x.shape, axis, keepdims
        out = x.mean(axis=axis, keepdims=keepdims)
        self.n = x.size // max(out.size, 1) if x.size else 1
        return out

    def backward(self, g):
        g = _expand_reduced(g, self.shape, self.axis, self.keepdims) / self.n
        return self.xp.broadcast_to(g, self.shape)


class _Extremum(Function):
    # d max(x)/dx_i = 1/k for each of the k elements equal to the max (ties share), else 0
    saved_inputs = (0,)
    saves_output = True

    def forward(self, x, axis=None, keepdims=False):
        self.x, self.axis, self.keepdims = x, axis, keepdims
        self.out = self.reduce(x, axis=axis, keepdims=True)
        return self.out if keepdims else self.reduce(x, axis=axis, keepdims=False)

    def backward(self, g):
        g = _expand_reduced(g, self.x.shape, self.axis, self.keepdims)
        hit = (self.x == self.out).astype(g.dtype)
        return g * hit / hit.sum(axis=self.axis, keepdims=True)


@register
class Max(_Extremum):
    def reduce(self, x, **kw):
        return x.max(**kw)


@register
class Min(_Extremum):
    def reduce(self, x, **kw):
        return x.min(**kw)


@register
class Var(Function):
    # var = sum((x - mean)^2) / (n - correction);  d var/dx_i = 2 (x_i - mean) / (n - correction)
    saved_inputs = ()
    saves_output = False

    def forward(self, x, axis=None, keepdims=False, correction=1):
        self.shape, self.axis, self.keepdims = x.shape, axis, keepdims
        self.centered = x - x.mean(axis=axis, keepdims=True)
        n = x.size // max(x.mean(axis=axis).size, 1)
        self.denom = max(n - correction, 0)
        return (self.centered ** 2).sum(axis=axis, keepdims=keepdims) / self.denom

    def backward(self, g):
        g = _expand_reduced(g, self.shape, self.axis, self.keepdims)
        return g * (2 / self.denom) * self.centered


# ----------------------------------------------------------------------------- shapes


@register
class Reshape(Function):
    # a view: the gradient is reshaped back
    saved_inputs = ()
    saves_output = False
    view = True

    def forward(self, x, shape):
        self.shape = x.shape
        return x.reshape(shape)

    def backward(self, g):
        return g.reshape(self.shape)


@register
class Permute(Function):
    # a permutation of axes: the gradient goes through the inverse permutation
    saved_inputs = ()
    saves_output = False
    view = True

    def forward(self, x, axes):
        self.inverse = tuple(sorted(range(len(axes)), key=lambda i: axes[i]))
        return x.transpose(axes)

    def backward(self, g):
        return g.transpose(self.inverse)


@register
class Expand(Function):
    # broadcast_to: the engine's unbroadcast sums the gradient back
    saved_inputs = ()
    saves_output = False
    view = True

    def forward(self, x, shape):
        return self.xp.broadcast_to(x, shape)

    def backward(self, g):
        return g


@register
class GetItem(Function):
    # out = x[index]: the gradient is scattered back and repeated indices add up
    # (this is the embedding gradient)
    saved_inputs = ()
    saves_output = False
    view = True

    def forward(self, x, index):
        self.shape, self.dtype, self.index = x.shape, x.dtype, index
        out = x[index]
        if isinstance(out, np.generic):     # one element: a 0-d view (x[0, 0, ...]), not a copy
            out = x[(index if type(index) is tuple else (index,)) + (Ellipsis,)]
        return out

    def backward(self, g):
        from .backend import index_add_rows, scatter_add
        grad = self.xp.zeros(self.shape, dtype=g.dtype)
        index = self.index
        if _is_basic_index(index):
            grad[index] = g            # slices and ints never repeat
        elif hasattr(index, "dtype") and index.dtype.kind in "iu":
            index_add_rows(grad, index, g)   # rows picked by ids: the embedding gradient
        else:
            scatter_add(grad, index, g)
        return grad


def _is_basic_index(index):
    """Only ints, slices, None and ...: NumPy returns a view and no place repeats."""
    for i in (index if type(index) is tuple else (index,)):
        if not (type(i) is int or type(i) is slice or i is None or i is Ellipsis
                or isinstance(i, np.integer)):
            return False
    return True


@register
class Where(Function):
    # where(c, a, b): the gradient flows to a where c, to b elsewhere
    saved_inputs = ()
    saves_output = False

    def forward(self, a, b, condition):
        self.condition = condition
        return self.xp.where(condition, a, b)

    def backward(self, g):
        zero = self.xp.zeros((), dtype=g.dtype)
        return (self.xp.where(self.condition, g, zero) if self.needs_grad[0] else None,
                self.xp.where(self.condition, zero, g) if self.needs_grad[1] else None)


@register
class Cat(Function):
    # concatenation: each input gets its slice of the gradient back
    saved_inputs = ()
    saves_output = False

    def forward(self, *xs, axis=0):
        self.axis = axis
        self.bounds = []
        start = 0
        for x in xs:
            self.bounds.append((start, start + x.shape[axis]))
            start += x.shape[axis]
        return self.xp.concatenate(xs, axis=axis)

    def backward(self, g):
        index = [slice(None)] * g.ndim
        grads = []
        for lo, hi in self.bounds:
            index[self.axis] = slice(lo, hi)
            grads.append(g[tuple(index)])
        return tuple(grads)


@register
class MatMul(Function):
    # C = A @ B (batched, broadcast): dA = dC @ B^T, dB = A^T @ dC
    # (1-D operands are promoted to matrices by Tensor.matmul before they get here)
    saved_inputs = {0: (1,), 1: (0,)}
    saves_output = False

    def forward(self, a, b):
        self.a, self.b = a, b
        return a @ b

    def backward(self, g):
        xp = self.xp
        ga = g @ xp.swapaxes(self.b, -1, -2) if self.needs_grad[0] else None
        gb = xp.swapaxes(self.a, -1, -2) @ g if self.needs_grad[1] else None
        return ga, gb


# ============================================================================= issue 16: the
# everyday PyTorch API (gather, cumsum, prod, norm, softplus, binary cross-entropy).
# Sorting, max(dim) and topk compose Gather with index computations (reductions.py).


def _along(xp, index, axis):
    """Full integer index arrays that address ``target[..., index, ...]`` element by element:
    ``index`` on ``axis``, an arange broadcast on every other axis."""
    ndim = index.ndim
    out = []
    for d in range(ndim):
        if d == axis:
            out.append(index)
        else:
            shape = [1] * ndim
            shape[d] = index.shape[d]
            out.append(xp.arange(index.shape[d]).reshape(shape))
    return tuple(out)


@register
class Gather(Function):
    # out[i][j] = x[index[i][j]][j] (axis 0): each input element gets the sum of the output
    # gradients that picked it (repeated indices add up)
    def forward(self, x, index, axis):
        # as torch: index may be smaller than x on the other axes, which then take their front
        region = tuple(slice(None) if d == axis else slice(0, n) for d, n in enumerate(index.shape))
        self.shape, self.index, self.axis, self.region = x.shape, index, axis, region
        return self.xp.take_along_axis(x[region], index, axis)

    def backward(self, g):
        from .backend import scatter_add
        grad = self.xp.zeros(self.shape, dtype=g.dtype)
        scatter_add(grad[self.region], _along(self.xp, self.index, self.axis), g)
        return grad


@register
class CumSum(Function):
    # y_k = sum_{i <= k} x_i  =>  dx_i = sum_{k >= i} g_k: a cumulative sum from the end
    def forward(self, x, axis):
        self.axis = axis
        return self.xp.cumsum(x, axis=axis)

    def backward(self, g):
        xp = self.xp
        return xp.flip(xp.cumsum(xp.flip(g, self.axis), axis=self.axis), self.axis)


@register
class Prod(Function):
    # d prod(x)/dx_i = product of the other elements; computed as (exclusive cumulative
    # product from the left) * (from the right), which is exact where x_i == 0 (no division)
    def forward(self, x, axis=None, keepdims=False):
        self.x, self.axis, self.keepdims = x, axis, keepdims
        return x.prod(axis=axis, keepdims=keepdims)

    def backward(self, g):
        xp, x = self.xp, self.x
        axis = -1 if self.axis is None else self.axis
        moved = xp.moveaxis(x.reshape(-1) if self.axis is None else x, axis, -1)
        one = xp.ones(moved.shape[:-1] + (1,), dtype=x.dtype)
        left = xp.cumprod(xp.concatenate([one, moved[..., :-1]], axis=-1), axis=-1)
        right = xp.flip(xp.cumprod(xp.flip(xp.concatenate([moved[..., 1:], one], axis=-1), -1),
                                   axis=-1), -1)
        others = xp.moveaxis(left * right, -1, axis).reshape(x.shape)
        reduced = None if self.axis is None else (self.axis,)
        return _expand_reduced(g, x.shape, reduced, self.keepdims) * others


@register
class Norm(Function):
    # n = (sum |x|^p)^(1/p) over axis (finite p > 0);  dn/dx = sign(x) |x|^(p-1) / n^(p-1),
    # i.e. x / n for p = 2 and sign(x) for p = 1; 0 where n == 0 (as PyTorch: a subgradient)
    def forward(self, x, p=2, axis=None, keepdims=False):
        xp = self.xp
        self.x, self.p, self.axis, self.keepdims = x, p, axis, keepdims
        if p == 2:
            out = xp.sqrt((x * x).sum(axis=axis, keepdims=True))
        elif p == 1:
            out = xp.abs(x).sum(axis=axis, keepdims=True)
        else:
            out = (xp.abs(x) ** p).sum(axis=axis, keepdims=True) ** (1.0 / p)
        self.out = out
        return out if keepdims else (out.reshape(()) if axis is None else out.squeeze(axis))

    def backward(self, g):
        xp, x, n, p = self.xp, self.x, self.out, self.p
        g = _expand_reduced(g, x.shape, self.axis, self.keepdims)
        if p == 1:
            return g * xp.sign(x)
        safe = xp.where(n == 0, 1, n)
        if p == 2:
            scale = x / safe
        else:
            with _quiet(xp):
                scale = xp.where(x == 0, 0, xp.sign(x) * xp.abs(x) ** (p - 1)) / safe ** (p - 1)
        return g * xp.where(n == 0, 0, scale)


@register
class Std(Function):
    # s = sqrt(sum((x - mean)^2) / (n - correction));  ds/dx_i = (x_i - mean) / ((n - c) s),
    # 0 where s == 0 (a constant slice), as PyTorch
    def forward(self, x, axis=None, keepdims=False, correction=1):
        xp = self.xp
        self.shape, self.axis, self.keepdims = x.shape, axis, keepdims
        self.centered = x - x.mean(axis=axis, keepdims=True)
        n = x.size // max(x.mean(axis=axis).size, 1)
        self.denom = max(n - correction, 0)
        with _quiet(xp):
            self.out = xp.sqrt((self.centered ** 2).sum(axis=axis, keepdims=True) / self.denom)
        return self.out if keepdims else (self.out.reshape(()) if axis is None else
                                          self.out.squeeze(axis))

    def backward(self, g):
        xp = self.xp
        g = _expand_reduced(g, self.shape, self.axis, self.keepdims)
        s = self.out
        with _quiet(xp):
            scale = xp.where(s == 0, 0, g / (self.denom * xp.where(s == 0, 1, s)))
        return scale * self.centered


@register
class Softplus(Function):
    # softplus(x) = log(1 + e^x), computed as logaddexp(0, x);  d/dx = sigmoid(x)
    def forward(self, x):
        self.x = x
        return self.xp.logaddexp(0, x).astype(x.dtype, copy=False)

    def backward(self, g):
        return g * self.xp.exp(-self.xp.logaddexp(0, -self.x)).astype(g.dtype, copy=False)


@register
class BinaryCrossEntropy(Function):
    # l = -(t log x + (1 - t) log(1 - x)), each log clamped at -100 as PyTorch does;
    # dl/dx = (x - t) / (x (1 - x)) (denominator floored at 1e-12), dl/dt = log(1 - x) - log x
    def forward(self, x, t):
        xp = self.xp
        with _quiet(xp):
            self.log_x = xp.maximum(xp.log(x), -100)
            self.log_1mx = xp.maximum(xp.log(1 - x), -100)
        self.x, self.t = x, t
        return -(t * self.log_x + (1 - t) * self.log_1mx)

    def backward(self, g):
        x, t = self.x, self.t
        gx = g * (x - t) / self.xp.maximum(x * (1 - x), 1e-12) if self.needs_grad[0] else None
        gt = g * (self.log_1mx - self.log_x) if self.needs_grad[1] else None
        return gx, gt


def _quiet(xp):
    """Silence NumPy's divide/invalid warnings for a computation that masks them itself."""
    import contextlib
    import numpy
    return numpy.errstate(divide="ignore", invalid="ignore") if xp is numpy else \
        contextlib.nullcontext()
