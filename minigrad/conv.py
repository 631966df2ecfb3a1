"""Convolution, pooling and padding, as torch.nn.functional has them: ``conv2d`` /
``conv1d`` (stride, padding, dilation, groups), ``max_pool2d`` / ``max_pool1d``,
``avg_pool2d`` / ``avg_pool1d``, ``adaptive_avg_pool2d`` and ``pad`` (constant, reflect,
replicate and circular). Layout NCHW (NCL in 1-D), as in torch.

Two ops of their own, Conv2d and MaxPool2d, work on a strided window view of the padded
input (N, C, OH, OW, KH, KW) -- no copy until the product (im2col by tensordot); the 1-D
forms are the 2-D ones with a height of 1, average pooling is a grouped convolution with a
constant kernel, and pad is built from Cat and GetItem.
"""
from __future__ import annotations

import numbers

import numpy as np

from . import backend
from .autograd import Function, register
from .errors import ArgumentError, DTypeError, ShapeError
from .shape_ops import cat
from .tensor import Tensor


def _windows(xp, x, kh, kw, stride, dilation):
    """The (N, C, OH, OW, KH, KW) view of x's kh x kw windows (no copy)."""
    n, c, h, w = x.shape
    (sh, sw), (dh, dw) = stride, dilation
    oh = (h - dh * (kh - 1) - 1) // sh + 1
    ow = (w - dw * (kw - 1) - 1) // sw + 1
    s = x.strides
    extra = {"writeable": False} if xp is np else {}     # (CuPy's as_strided has no flag)
    return xp.lib.stride_tricks.as_strided(
        x, (n, c, oh, ow, kh, kw), (s[0], s[1], s[2] * sh, s[3] * sw, s[2] * dh, s[3] * dw),
        **extra)


def _pad_array(xp, x, padding, value):
    (ph, pw) = padding
    if not ph and not pw:
        return x
    return xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def _window_slices(i, j, oh, ow, stride, dilation):
    """The (rows, cols) slices of the padded input that window offset (i, j) reads."""
    (sh, sw), (dh, dw) = stride, dilation
    return (slice(i * dh, i * dh + sh * (oh - 1) + 1, sh),
            slice(j * dw, j * dw + sw * (ow - 1) + 1, sw))


@register
class Conv2d(Function):
    # out[n, o, y, x] = sum_{c, i, j} xpad[n, c, y s + i d, x s + j d] w[o, c, i, j]
    # (per group). dw = sum over n, y, x of g * the window; dx = each window offset's
    # g . w, added back at the places the window read (then the padding cropped).
    saved_inputs = (0, 1)
    saves_output = False

    def forward(self, x, w, stride, padding, dilation, groups):
        xp = self.xp
        self.xpad = _pad_array(xp, x, padding, 0)
        self.w, self.x_shape = w, x.shape
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        o, cg, kh, kw = w.shape
        win = _windows(xp, self.xpad, kh, kw, stride, dilation)
        og = o // groups
        outs = [xp.tensordot(win[:, k * cg:(k + 1) * cg], w[k * og:(k + 1) * og],
                             axes=([1, 4, 5], [1, 2, 3])) for k in range(groups)]
        out = outs[0] if groups == 1 else xp.concatenate(outs, axis=-1)   # (N, OH, OW, O)
        return xp.ascontiguousarray(out.transpose(0, 3, 1, 2))

    def backward(self, g):
        xp, w, groups = self.xp, self.w, self.groups
        o, cg, kh, kw = w.shape
        og = o // groups
        n, _, oh, ow = g.shape
        win = _windows(xp, self.xpad, kh, kw, self.stride, self.dilation)
        gw = gx = None
        if self.needs_grad[1]:
            gw = xp.concatenate([xp.tensordot(g[:, k * og:(k + 1) * og],
                                              win[:, k * cg:(k + 1) * cg],
                                              axes=([0, 2, 3], [0, 2, 3]))
                                 for k in range(groups)], axis=0)
        if self.needs_grad[0]:
            gpad = xp.zeros(self.xpad.shape, dtype=g.dtype)
            for k in range(groups):
                # (N, OH, OW, Cg, KH, KW): what each window offset sends back
                cols = xp.tensordot(g[:, k * og:(k + 1) * og], w[k * og:(k + 1) * og],
                                    axes=([1], [0])).transpose(0, 3, 1, 2, 4, 5)
                for i in range(kh):
                    for j in range(kw):
                        rows, columns = _window_slices(i, j, oh, ow, self.stride, self.dilation)
                        gpad[:, k * cg:(k + 1) * cg, rows, columns] += cols[..., i, j]
            ph, pw = self.padding
            gx = gpad[:, :, ph:ph + self.x_shape[2], pw:pw + self.x_shape[3]]
        return gx, gw


@register
class MaxPool2d(Function):
    # out = the largest entry of each window (padding is -inf); the gradient goes to that
    # entry (the first of equal ones), adding up where windows overlap
    saved_inputs = ()
    saves_output = False

    def forward(self, x, kernel, stride, padding, dilation):
        xp = self.xp
        xpad = _pad_array(xp, x, padding, -np.inf)
        kh, kw = kernel
        win = _windows(xp, xpad, kh, kw, stride, dilation)
        n, c, oh, ow = win.shape[:4]
        flat = win.reshape(n, c, oh, ow, kh * kw)
        self.arg = xp.argmax(flat, axis=-1)
        self.pad_shape, self.x_shape = xpad.shape, x.shape
        self.kernel, self.stride, self.padding, self.dilation = kernel, stride, padding, dilation
        return xp.take_along_axis(flat, self.arg[..., None], axis=-1)[..., 0]

    def backward(self, g):
        xp = self.xp
        n, c, oh, ow = g.shape
        (sh, sw), (dh, dw), kw = self.stride, self.dilation, self.kernel[1]
        i, j = self.arg // kw, self.arg % kw
        rows = xp.arange(oh).reshape(1, 1, oh, 1) * sh + i * dh
        cols = xp.arange(ow).reshape(1, 1, 1, ow) * sw + j * dw
        hp, wp = self.pad_shape[2:]
        plane = xp.arange(n * c).reshape(n, c, 1, 1) * (hp * wp)
        flat_index = (plane + rows * wp + cols).reshape(-1)
        gpad = xp.zeros(n * c * hp * wp, dtype=g.dtype)
        backend.scatter_add(gpad, flat_index, g.reshape(-1))
        ph, pw = self.padding
        gpad = gpad.reshape(self.pad_shape)
        return gpad[:, :, ph:ph + self.x_shape[2], pw:pw + self.x_shape[3]]


# ----------------------------------------------------------------------------- arguments
def _pair(fn, name, value, minimum):
    pair = (value, value) if isinstance(value, numbers.Integral) else tuple(value)
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, numbers.Integral)
                             or v < minimum for v in pair):
        raise ArgumentError(f"{fn}: {name} must be an int >= {minimum} or a pair of them, "
                            f"got {value!r}")
    return tuple(int(v) for v in pair)


def _check_input(fn, x, ndim=4):
    if not isinstance(x, Tensor):
        raise DTypeError(f"{fn}: input must be a Tensor, got {type(x).__name__}")
    if x.array.dtype.kind != "f":
        raise DTypeError(f"{fn}: input must be a floating-point tensor, got dtype {x.dtype} "
                         f"(convert with .float())")
    layout = "(N, C, H, W)" if ndim == 4 else "(N, C, L)"
    if x.ndim not in (ndim - 1, ndim):
        raise ShapeError(f"{fn}: expected a {ndim}-D input {layout} (or {ndim - 1}-D without "
                         f"the batch dim), got shape {x.shape}")


def _batched(x, ndim, run):
    """run(x) on a batch; an unbatched input (no N) gets one added and removed."""
    if x.ndim == ndim - 1:
        return run(x.unsqueeze(0)).squeeze(0)
    return run(x)


# ----------------------------------------------------------------------------- convolution
def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation, as torch): input (N, C, H, W), weight
    (O, C / groups, KH, KW), bias (O,). padding: an int, a pair, 'valid' or 'same'."""
    fn = "conv2d"
    _check_input(fn, input)
    if not isinstance(weight, Tensor) or weight.ndim != 4:
        raise ShapeError(f"{fn}: weight must be a 4-D tensor (out, in / groups, kH, kW), got "
                         f"{getattr(weight, 'shape', type(weight).__name__)}")
    if weight.dtype != input.dtype:
        raise DTypeError(f"{fn}: input ({input.dtype}) and weight ({weight.dtype}) must have "
                         f"the same dtype; convert the input: x.to(weight.dtype)")
    stride, dilation = _pair(fn, "stride", stride, 1), _pair(fn, "dilation", dilation, 1)
    if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups < 1:
        raise ArgumentError(f"{fn}: groups must be a positive int, got {groups!r}")
    o, cg, kh, kw = weight.shape
    padding = _conv_padding(fn, padding, (kh, kw), stride, dilation)

    def run(x):
        c, h, w = x.shape[1:]
        if c != cg * groups or o % groups:
            raise ShapeError(f"{fn}: input of shape {x.shape} has {c} channels but weight of "
                             f"shape {weight.shape} with groups={groups} expects {cg * groups} "
                             f"(and out channels divisible by groups)")
        if h + 2 * padding[0] < dilation[0] * (kh - 1) + 1 or \
                w + 2 * padding[1] < dilation[1] * (kw - 1) + 1:
            raise ShapeError(f"{fn}: the kernel ({kh} x {kw}) is larger than the padded input "
                             f"({h + 2 * padding[0]} x {w + 2 * padding[1]})")
        out = Conv2d.apply(x, weight, stride=stride, padding=padding, dilation=dilation,
                           groups=groups)
        return out if bias is None else out + bias.reshape(1, -1, 1, 1)
    return _batched(input, 4, run)


def _conv_padding(fn, padding, kernel, stride, dilation):
    if padding == "valid":
        return (0, 0)
    if padding == "same":
        if stride != (1, 1):
            raise ArgumentError(f"{fn}: padding='same' needs stride 1, got stride {stride}")
        total = [d * (k - 1) for k, d in zip(kernel, dilation)]
        if any(t % 2 for t in total):
            raise ArgumentError(f"{fn}: padding='same' with an even kernel needs asymmetric "
                                f"padding, which minigrad does not do; pad with F.pad first")
        return tuple(t // 2 for t in total)
    return _pair(fn, "padding", padding, 0)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D convolution: input (N, C, L), weight (O, C / groups, K): conv2d with height 1."""
    fn = "conv1d"
    _check_input(fn, input, 3)
    if not isinstance(weight, Tensor) or weight.ndim != 3:
        raise ShapeError(f"{fn}: weight must be a 3-D tensor (out, in / groups, k), got "
                         f"{getattr(weight, 'shape', type(weight).__name__)}")
    stride, dilation = _with_height(fn, "stride", stride, 1), _with_height(fn, "dilation",
                                                                          dilation, 1)
    padding = padding if isinstance(padding, str) else _with_height(fn, "padding", padding, 0)
    return _batched(input, 3, lambda x: conv2d(
        x.unsqueeze(2), weight.unsqueeze(2), bias, stride, padding, dilation, groups).squeeze(2))


def _with_height(fn, name, value, height):
    """A 1-D size (an int or a 1-tuple) as the 2-D pair (height, value)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            raise ArgumentError(f"{fn}: {name} must be an int or a 1-tuple, got {value!r}")
        value = value[0]
    return (height, _pair(fn, name, value, 0)[0])


# ----------------------------------------------------------------------------- pooling
def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """The largest value of each kernel_size window (stride defaults to kernel_size)."""
    fn = "max_pool2d"
    _check_input(fn, input)
    if ceil_mode or return_indices:
        raise ArgumentError(f"{fn}: ceil_mode=True and return_indices=True are not supported; "
                            f"pad the input (F.pad) for the last partial window")
    kernel = _pair(fn, "kernel_size", kernel_size, 1)
    stride = kernel if stride is None or stride == [] else _pair(fn, "stride", stride, 1)
    padding, dilation = _pair(fn, "padding", padding, 0), _pair(fn, "dilation", dilation, 1)
    if any(2 * p > k for p, k in zip(padding, kernel)):
        raise ArgumentError(f"{fn}: padding {padding} should be at most half of the kernel "
                            f"size {kernel}")

    def run(x):
        h, w = x.shape[2:]
        if h + 2 * padding[0] < dilation[0] * (kernel[0] - 1) + 1 or \
                w + 2 * padding[1] < dilation[1] * (kernel[1] - 1) + 1:
            raise ShapeError(f"{fn}: the window {kernel} is larger than the input of shape "
                             f"{x.shape}")
        return MaxPool2d.apply(x, kernel=kernel, stride=stride, padding=padding,
                               dilation=dilation)
    return _batched(input, 4, run)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """The mean of each kernel_size window (stride defaults to kernel_size); zero padding
    counts in the mean unless count_include_pad=False."""
    fn = "avg_pool2d"
    _check_input(fn, input)
    if ceil_mode:
        raise ArgumentError(f"{fn}: ceil_mode=True is not supported; pad the input (F.pad)")
    kernel = _pair(fn, "kernel_size", kernel_size, 1)
    stride = kernel if stride is None or stride == [] else _pair(fn, "stride", stride, 1)
    padding = _pair(fn, "padding", padding, 0)

    def run(x):
        c = x.shape[1]
        xp = backend.get_array_module(x.array)
        ones = Tensor._make(xp.ones((c, 1) + kernel, dtype=x.array.dtype), False)
        total = conv2d(x, ones, stride=stride, padding=padding, groups=c)
        if divisor_override is not None:
            return total / divisor_override
        if count_include_pad or padding == (0, 0):
            return total / (kernel[0] * kernel[1])
        inside = Tensor._make(xp.ones((1, 1) + tuple(x.shape[2:]), dtype=x.array.dtype), False)
        counts = conv2d(inside, ones[:1], stride=stride, padding=padding)
        return total / counts
    return _batched(input, 4, run)


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """max_pool2d over (N, C, L) inputs (windows along L)."""
    fn = "max_pool1d"
    _check_input(fn, input, 3)
    kernel = _with_height(fn, "kernel_size", kernel_size, 1)
    stride = kernel if stride is None else _with_height(fn, "stride", stride, 1)
    padding, dilation = _with_height(fn, "padding", padding, 0), _with_height(
        fn, "dilation", dilation, 1)
    return _batched(input, 3, lambda x: max_pool2d(
        x.unsqueeze(2), kernel, stride, padding, dilation, ceil_mode, return_indices).squeeze(2))


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    """avg_pool2d over (N, C, L) inputs (windows along L)."""
    fn = "avg_pool1d"
    _check_input(fn, input, 3)
    kernel = _with_height(fn, "kernel_size", kernel_size, 1)
    stride = kernel if stride is None else _with_height(fn, "stride", stride, 1)
    return _batched(input, 3, lambda x: avg_pool2d(
        x.unsqueeze(2), kernel, stride, _with_height(fn, "padding", padding, 0), ceil_mode,
        count_include_pad).squeeze(2))


def adaptive_avg_pool2d(input, output_size):
    """Means over a grid of output_size cells covering the input (cell i spans rows
    floor(i H / oh) .. ceil((i + 1) H / oh), as torch); output_size 1 is the global mean."""
    fn = "adaptive_avg_pool2d"
    _check_input(fn, input)

    def run(x):
        h, w = x.shape[2:]
        size = (output_size, output_size) if isinstance(output_size, numbers.Integral) \
            else tuple(output_size)
        oh, ow = (h if s is None else s for s, h in zip(size, (h, w)))
        if (oh, ow) == (1, 1):
            return x.mean((2, 3), keepdim=True)
        if h % oh == 0 and w % ow == 0:
            return avg_pool2d(x, (h // oh, w // ow))
        rows = [x[:, :, (i * h) // oh:-(-((i + 1) * h) // oh)].mean(2, keepdim=True)
                for i in range(oh)]
        x = cat(rows, 2)
        cols = [x[:, :, :, (j * w) // ow:-(-((j + 1) * w) // ow)].mean(3, keepdim=True)
                for j in range(ow)]
        return cat(cols, 3)
    return _batched(input, 4, run)


# ----------------------------------------------------------------------------- padding
def pad(input, pad, mode="constant", value=None):
    """Pad (negative: crop) the last dims: ``pad`` = (left, right) for the last dim, then
    (top, bottom) for the one before, ... Modes: 'constant' (``value``, default 0),
    'reflect', 'replicate', 'circular'."""
    if not isinstance(input, Tensor):
        raise DTypeError(f"pad: input must be a Tensor, got {type(input).__name__}")
    pad = tuple(pad)
    if len(pad) % 2 or len(pad) // 2 > input.ndim or not all(
            isinstance(p, numbers.Integral) and not isinstance(p, bool) for p in pad):
        raise ArgumentError(f"pad: expected an even number of ints, at most two per dim of "
                            f"the input of shape {input.shape}, got {pad}")
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise ArgumentError(f"pad: mode must be 'constant', 'reflect', 'replicate' or "
                            f"'circular', got {mode!r}")
    if mode != "constant" and value not in (None, 0):
        raise ArgumentError(f"pad: value= is only for mode='constant', got mode={mode!r}")
    x = input
    for k in range(len(pad) // 2):
        dim = x.ndim - 1 - k
        x = _pad_dim(x, dim, pad[2 * k], pad[2 * k + 1], mode, 0 if value is None else value)
    return x


def _pad_dim(x, dim, left, right, mode, value):
    n = x.shape[dim]
    head = (slice(None),) * dim
    if left < 0 or right < 0:     # crop first
        x = x[head + (slice(max(-left, 0), n - max(-right, 0)),)]
        left, right, n = max(left, 0), max(right, 0), x.shape[dim]
    if not left and not right:
        return x
    if mode == "constant":
        xp = backend.get_array_module(x.array)
        parts = []
        for size in (left, right):
            shape = x.shape[:dim] + (size,) + x.shape[dim + 1:]
            parts.append(Tensor._make(xp.full(shape, value, dtype=x.array.dtype), False))
        return cat([parts[0], x, parts[1]], dim)
    if mode == "reflect" and (left >= n or right >= n):
        raise ArgumentError(f"pad: reflect padding ({left}, {right}) must be smaller than the "
                            f"dim's size {n}")
    if mode == "circular" and (left > n or right > n):
        raise ArgumentError(f"pad: circular padding ({left}, {right}) must be at most the "
                            f"dim's size {n}")
    idx = np.arange(-left, n + right)
    if mode == "replicate":
        idx = np.clip(idx, 0, n - 1)
    elif mode == "reflect":
        idx = np.abs(idx)
        idx = np.where(idx > n - 1, 2 * (n - 1) - idx, idx)
    else:
        idx = idx % n
    return x[head + (backend.to_device(idx, x.device),)]


__all__ = ["conv2d", "conv1d", "max_pool2d", "max_pool1d", "avg_pool2d", "avg_pool1d",
           "adaptive_avg_pool2d", "pad"]
