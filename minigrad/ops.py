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
