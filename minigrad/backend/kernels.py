"""Compiled CPU loops (Numba) for the inner loops of the fused ops and of Adam.

NumPy runs an expression such as GELU as a dozen ufuncs, each a pass over memory, and its
float32 exp is scalar on CPUs without AVX-512. A compiled loop makes one pass, with a
vectorised exp. This is the only file that imports numba, and only the switch
(``kernels_for`` in backend/__init__.py) imports it, on first use, and decides per call
whether a loop runs: on C-contiguous float32 or float64 NumPy arrays. MINIGRAD_KERNELS=0
turns the loops off; so does a missing numba.

Each loop has two twins, named in its caller's docstring:

* the readers' path, minigrad/composite.py: the op written with primitives only;
* the fused op's own code in minigrad/fused.py, written once against ``xp``: the path CuPy
  takes, and NumPy with the loops off. Adam's is ``optim.Adam._readable_update``.

Tests hold them equal: tests/minigrad/test_functional.py the fused ops to their composites, and
tests/minigrad/backend/test_kernels.py every loop here to its NumPy twin, value and gradient, in float32 and
float64. Each loop is the maths of the fused op that calls it (the derivations are there).
They are compiled for each dtype on first use (about a second each) and cached on disk.

Floating-point contract: no reassociation in elementwise code, so exp's range reduction stays
exact; sums and maxima over a row go through _sum/_dot/_max, which may reorder (vectorise).

Every loop checks the sizes of the arrays it is given (a few comparisons per call) and
raises ValueError rather than read or write out of bounds: its callers pass arrays that
may come from a file (an optimizer's loaded state, for one).

Two things learnt the hard way. Arrays passed as different arguments must not overlap: LLVM
checks at run time and falls back to scalar code (an exp_(x, x) runs 7x slower than exp_(x, y);
a loop that works in place takes one array). And exp is inlined by LLVM, not by numba's IR
inliner (overload(inline="always")), which dropped the statement after a loop calling it.
"""
from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)

_FAST = {"nsz", "contract", "arcp", "afn"}      # no reassoc: see the module docstring
_jit = numba.njit(fastmath=_FAST, error_model="numpy", nogil=True, cache=True)
_jit_reduce = numba.njit(fastmath=_FAST | {"reassoc"}, error_model="numpy", nogil=True,
                         cache=True)


# ----------------------------------------------------------------------------- exp
@intrinsic
def _pow2(typingctx, biased):
    """2^(k) as float32 from k + 127: the integer shifted into the exponent bits."""
    def codegen(context, builder, signature, args):
        bits = builder.shl(args[0], ir.Constant(ir.IntType(32), 23))
        return builder.bitcast(bits, ir.FloatType())
    return types.float32(types.int32), codegen


_f32 = np.float32
_LOG2E, _LN2_HI, _LN2_LO = _f32(1.4426950408889634), _f32(0.693359375), _f32(-2.12194440e-4)
_P = tuple(_f32(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
                             4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1))
EXP32_MIN = _f32(-87.33654)     # below: 0 (float32 exp is denormal there)
EXP32_MAX = _f32(88.37626)      # above: inf (k would reach 128; true overflow is 88.72)


def _exp32(x):
    # exp(x) = 2^k e^r, k = round(x log2 e), r = x - k ln 2 in [-ln2/2, ln2/2] (ln 2 split
    # in two parts so that k ln 2 is exact), e^r by Cephes' degree-7 polynomial: ~1 ulp.
    # Pure arithmetic and selects, so the loops that call it vectorise.
    p0, p1, p2, p3, p4, p5 = _P
    xc = min(max(x, EXP32_MIN), EXP32_MAX)
    biased = np.int32(xc * _LOG2E + _f32(127.5))   # k + 127 = floor(x log2 e + 1/2) + 127 >= 1
    k = _f32(biased) - _f32(127)
    r = xc - k * _LN2_HI - k * _LN2_LO
    p = ((((p0 * r + p1) * r + p2) * r + p3) * r + p4) * r + p5
    y = (p * r * r + r + _f32(1)) * _pow2(biased)
    if x < EXP32_MIN:
        y = _f32(0)
    if x > EXP32_MAX:
        y = _f32(np.inf)
    if x != x:
        y = x                                          # NaN stays NaN
    return y


def exp(x):
    """exp inside the loops: the vectorisable _exp32 for float32, math.exp otherwise."""
    return math.exp(x)


@overload(exp, fastmath=_FAST)
def _exp_overload(x):
    if x == types.float32:
        return _exp32
    return lambda x: math.exp(x)


# ----------------------------------------------------------------------------- row reductions
@_jit_reduce
def _sum(a, n):
    s = a.dtype.type(0)
    for j in range(n):
        s += a[j]
    return s


@_jit_reduce
def _dot(a, b, n):
    s = a.dtype.type(0)
    for j in range(n):
        s += a[j] * b[j]
    return s


@numba.njit(fastmath=_FAST | {"reassoc", "nnan"}, error_model="numpy", nogil=True, cache=True)
def _max(a, n):
    # four running maxima: LLVM does not vectorise a max reduction, but runs these in parallel
    # (a NaN may be skipped here; it still makes its row NaN through exp(x - max))
    m0 = m1 = m2 = m3 = a[0]
    j = 0
    while j + 4 <= n:
        m0, m1, m2, m3 = max(m0, a[j]), max(m1, a[j + 1]), max(m2, a[j + 2]), max(m3, a[j + 3])
        j += 4
    m = max(max(m0, m1), max(m2, m3))
    for i in range(j, n):
        m = max(m, a[i])
    return m


# ----------------------------------------------------------------------------- GELU (tanh form)
@_jit
def gelu_forward(x, y):
    """y = x sigmoid(2u) = x / (1 + exp(-2u)), u = sqrt(2/pi) (x + 0.044715 x^3)."""
    if y.size != x.size:
        raise ValueError("gelu_forward: x and y must have the same size")
    c = x.dtype.type
    a, b = c(-2 * SQRT_2_OVER_PI), c(0.044715)
    for i in range(x.size):
        v = x[i]
        y[i] = v / (c(1) + exp(a * (v + b * v * v * v)))


@_jit
def gelu_backward(x, g, out):
    """out = g (s + x s (1 - s) du2/dx), s = sigmoid(2u),
    du2/dx = 2 sqrt(2/pi) (1 + 3 * 0.044715 x^2)."""
    if g.size != x.size or out.size != x.size:
        raise ValueError("gelu_backward: x, g and out must have the same size")
    c = x.dtype.type
    a, b = c(-2 * SQRT_2_OVER_PI), c(0.044715)
    d0, d2 = c(2 * SQRT_2_OVER_PI), c(6 * SQRT_2_OVER_PI * 0.044715)
    for i in range(x.size):
        v = x[i]
        s = c(1) / (c(1) + exp(a * (v + b * v * v * v)))
        out[i] = g[i] * (s + v * s * (c(1) - s) * (d0 + d2 * v * v))


# ----------------------------------------------------------------------------- LayerNorm
@_jit
def layer_norm_forward(x, weight, bias, eps, xhat, y, rstd):
    """Per row: xhat = (x - mean) rstd, rstd = 1 / sqrt(var + eps); y = xhat w + b."""
    rows, n = x.shape
    if weight.shape[0] != n or bias.shape[0] != n or xhat.shape != x.shape or \
            y.shape != x.shape or rstd.shape[0] != rows:
        raise ValueError("layer_norm_forward: the arrays' shapes do not fit x's")
    c = x.dtype.type
    for r in range(rows):
        xr, hr, yr = x[r], xhat[r], y[r]
        mean = _sum(xr, n) / c(n)
        for j in range(n):
            hr[j] = xr[j] - mean
        s = c(1) / math.sqrt(_dot(hr, hr, n) / c(n) + c(eps))
        rstd[r] = s
        for j in range(n):
            h = hr[j] * s
            hr[j] = h
            yr[j] = h * weight[j] + bias[j]


@_jit
def layer_norm_backward(g, xhat, weight, rstd, gx, gw, gb):
    """gx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)), dxhat = g w; and the
    row sums gw += g xhat, gb += g (skipped when gw / gb have length 0)."""
    rows, n = g.shape
    if xhat.shape != g.shape or gx.shape != g.shape or weight.shape[0] != n or \
            rstd.shape[0] != rows or (gw.shape[0] > 0 and (gw.shape[0] != n or
                                                          gb.shape[0] != n)):
        raise ValueError("layer_norm_backward: the arrays' shapes do not fit g's")
    c = xhat.dtype.type
    params = gw.shape[0] > 0
    for r in range(rows):
        gr, hr, out = g[r], xhat[r], gx[r]
        for j in range(n):
            out[j] = gr[j] * weight[j]
        m1 = _sum(out, n) / c(n)
        m2 = _dot(out, hr, n) / c(n)
        s = rstd[r]
        for j in range(n):
            out[j] = (out[j] - m1 - hr[j] * m2) * s
        if params:
            for j in range(n):
                gw[j] += gr[j] * hr[j]
                gb[j] += gr[j]


# ----------------------------------------------------------------------------- softmax rows
@_jit
def _exp_shifted_(a, shift, n):
    for j in range(n):
        a[j] = exp(a[j] - shift)


@_jit
def _scale_(a, factor, n):
    for j in range(n):
        a[j] *= factor


@_jit
def softmax_rows_(s, first_query, offset, causal):
    """In place on s (batch, queries, keys): the softmax of each row over the keys it may
    see (query i sees keys j <= first_query + i + offset when causal), 0 beyond: the
    masked softmax of fused._attention_weights."""
    # Each pass is a loop of its own from 0 (LLVM vectorises each alone), and the keys
    # beyond a row's reach are cleared by a slice: a loop from n indexes with a sign
    # check, which LLVM vectorised into scatter stores (2.5x slower on causal blocks).
    nb_, nq, nk = s.shape
    c = s.dtype.type
    for b in range(nb_):
        for i in range(nq):
            row = s[b, i]
            n = max(0, min(nk, first_query + i + offset + 1)) if causal else nk
            _exp_shifted_(row, _max(row, n), n)
            _scale_(row, c(1) / _sum(row, n), n)
            row[n:] = 0


@_jit
def softmax_rows_backward_(ds, p):
    """In place on ds (batch, queries, keys), softmax's backward: ds = p (ds - rowsum(ds p))."""
    nb_, nq, nk = ds.shape
    if p.shape != ds.shape:
        raise ValueError("softmax_rows_backward_: ds and p must have the same shape")
    for b in range(nb_):
        for i in range(nq):
            dr, pr = ds[b, i], p[b, i]
            cdot = _dot(dr, pr, nk)
            for j in range(nk):
                dr[j] = (dr[j] - cdot) * pr[j]


@_jit
def log_sum_exp_rows(z, lse):
    """lse[r] = logsumexp(z[r]) = m + log(sum exp(z[r] - m)), m = max z[r]; a row of -inf
    gives -inf (m is then taken as 0, as in the NumPy code)."""
    rows, n = z.shape
    if lse.shape[0] != rows:
        raise ValueError("log_sum_exp_rows: lse must have one entry per row of z")
    e = np.empty(n, z.dtype)                 # one row of exponentials, cache-resident
    for r in range(rows):
        zr = z[r]
        m = _max(zr, n)
        if not math.isfinite(m):
            m = z.dtype.type(0)
        for j in range(n):
            e[j] = exp(zr[j] - m)
        lse[r] = m + math.log(_sum(e, n))


@_jit
def cross_entropy_backward(z, lse, targets, scale, grad):
    """grad[r] = (softmax(z[r]) - onehot(targets[r])) scale[r],
    softmax(z[r]) = exp(z[r] - lse[r])."""
    rows, n = z.shape
    if lse.shape[0] != rows or targets.shape[0] != rows or scale.shape[0] != rows or \
            grad.shape != z.shape:
        raise ValueError("cross_entropy_backward: the arrays' shapes do not fit z's")
    for r in range(rows):
        zr, gr, shift, s = z[r], grad[r], lse[r], scale[r]
        for j in range(n):
            gr[j] = exp(zr[j] - shift) * s
        gr[targets[r]] -= s


@_jit
def index_add_rows_(target, index, rows):
    """target[index[i]] += rows[i] for every i, repeated indices adding up (target, rows 2-D):
    the embedding gradient. The indices already gathered these rows forward (negative ones
    count from the end, as in NumPy); the sizes are checked here."""
    if index.size != rows.shape[0] or rows.shape[1] != target.shape[1]:
        raise ValueError("index_add_rows_: index, rows and target do not fit")
    for i in range(index.size):
        t, r = target[index[i]], rows[i]
        for j in range(r.size):
            t[j] += r[j]


@_jit
def adam_step_(p, g, m, v, sign, l2, decay, beta1, beta2, step_size, sqrt_bc2, eps):
    """One Adam(W) update in place, one pass (the readable twin: optim.Adam._readable_update):
    d = sign g + l2 p;  p *= decay;  m = beta1 m + (1 - beta1) d;  v = beta2 v + (1 - beta2) d^2;
    p -= step_size m / (sqrt(v) / sqrt_bc2 + eps).  (sign -1 maximises; AdamW: decay = 1 - lr wd,
    l2 = 0; Adam: decay = 1, l2 = wd.)"""
    if g.size != p.size or m.size != p.size or v.size != p.size:   # never out of bounds
        raise ValueError("adam_step_: p, g, m and v must have the same size")
    c = p.dtype.type
    sg, l2_, dec, b1, b2 = c(sign), c(l2), c(decay), c(beta1), c(beta2)
    # 1 - beta in float64, then rounded: float32(1) - float32(0.999) is 1.3e-5 off 0.001,
    # which moved parameters 1e-4 (relative) away from torch's Adam within a few steps
    one_b1, one_b2 = c(1.0 - beta1), c(1.0 - beta2)
    lr_, inv_bc2, eps_ = c(step_size), c(1.0 / sqrt_bc2), c(eps)
    for i in range(p.size):
        d = sg * g[i] + l2_ * p[i]
        mi = b1 * m[i] + one_b1 * d
        vi = b2 * v[i] + one_b2 * d * d
        m[i], v[i] = mi, vi
        p[i] = p[i] * dec - lr_ * mi / (math.sqrt(vi) * inv_bc2 + eps_)


@_jit
def exp_(x, out):
    """out = exp(x) elementwise, for tests of exp itself."""
    for i in range(x.size):
        out[i] = exp(x[i])


def warm_up(dtype=np.float32) -> None:
    """Compile (or load from the disk cache) every loop for ``dtype`` now rather than at
    first use: about a second each the first time on a machine, milliseconds after."""
    x, y, g = np.ones(16, dtype), np.empty(16, dtype), np.ones(16, dtype)
    m2, h2, y2 = np.ones((2, 8), dtype), np.empty((2, 8), dtype), np.empty((2, 8), dtype)
    row, w8, b8 = np.ones(2, dtype), np.ones(8, dtype), np.zeros(8, dtype)
    gelu_forward(x, y)
    gelu_backward(x, g, y)
    layer_norm_forward(m2, w8, b8, 1e-5, h2, y2, row)
    layer_norm_backward(m2, h2, w8, row, y2, np.zeros(8, dtype), np.zeros(8, dtype))
    s3 = np.ones((1, 2, 8), dtype)
    softmax_rows_(s3, 0, 6, True)
    softmax_rows_backward_(np.ones((1, 2, 8), dtype), s3)
    targets = np.zeros(2, np.int64)
    log_sum_exp_rows(m2, row)
    cross_entropy_backward(m2, row, targets, np.ones(2, dtype), y2)
    index_add_rows_(h2, targets, m2)
    adam_step_(x, g, np.zeros(16, dtype), np.zeros(16, dtype), 1.0, 0.0, 1.0, 0.9, 0.999,
               1e-3, 1.0, 1e-8)
