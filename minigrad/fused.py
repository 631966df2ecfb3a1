"""Fused ops with hand-derived backward: one node instead of a dozen, fewer
temporaries, and numerically safe forms (max-shifted exponentials).

Each op here exists three times; its docstring names the other two:

* its composite twin in composite.py, the readers' path (primitives only);
* its NumPy code here, written once against ``xp``, blocked, in place and threaded
  (backend/threads.py): the path CuPy takes, and NumPy's with the compiled loops off;
* on contiguous float32/float64 NumPy arrays, its compiled loop in backend/kernels.py,
  picked per call by ``kernels_for``.

tests/minigrad/test_functional.py holds each op equal to its composite, and tests/minigrad/backend/test_kernels.py
each compiled loop equal to the NumPy code, value and gradient, in float32 and float64.
"""
from __future__ import annotations

import math

import numpy as np

from .autograd import Function, register
from .backend import kernels_for
from .backend.mathfns import erf
from .backend.threads import blas_rows, blas_tasks, parallel_for, split_rows

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _softmax(xp, x, axis):
    e = xp.exp(x - x.max(axis=axis, keepdims=True))
    e /= e.sum(axis=axis, keepdims=True)
    return e


def _logsumexp(xp, x, axis):
    m = x.max(axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)     # a row of -inf stays -inf instead of NaN
    return m + xp.log(xp.exp(x - m).sum(axis=axis, keepdims=True))


@register
class Softmax(Function):
    """softmax along ``axis``. Composite twin: composite.softmax. No compiled loop (the
    attention softmax has one: see Attention)."""
    # y = e^x / sum e^x;  dx = y * (g - sum(g * y))
    saved_inputs = ()
    saves_output = True

    def forward(self, x, axis=-1):
        self.axis = axis
        self.out = _softmax(self.xp, x, axis)
        return self.out

    def backward(self, g):
        y = self.out
        return y * (g - (g * y).sum(axis=self.axis, keepdims=True))


@register
class LogSoftmax(Function):
    """log_softmax along ``axis``. Composite twin: composite.log_softmax. No compiled loop."""
    # y = x - logsumexp(x);  dx = g - softmax(x) * sum(g)
    saved_inputs = ()
    saves_output = True

    def forward(self, x, axis=-1):
        self.axis = axis
        self.out = x - _logsumexp(self.xp, x, axis)
        return self.out

    def backward(self, g):
        return g - self.xp.exp(self.out) * g.sum(axis=self.axis, keepdims=True)


@register
class CrossEntropy(Function):
    """Mean cross-entropy of logits (N, C) against integer targets. Composite twin:
    composite.cross_entropy. Compiled loops: kernels.log_sum_exp_rows (forward),
    kernels.cross_entropy_backward."""
    # loss = mean over kept rows of (logsumexp(z) - z[target]);
    # dz = (softmax(z) - onehot(target)) / n_kept on kept rows, 0 on ignored rows
    saved_inputs = (0,)
    saves_output = False

    def forward(self, logits, targets, ignore_index=-100):
        xp = self.xp
        rows = xp.arange(logits.shape[0])
        self.keep = targets != ignore_index
        safe = xp.where(self.keep, targets, 0)
        lse = xp.empty(logits.shape[0], dtype=logits.dtype)
        self.count = int(self.keep.sum())
        self.rows, self.safe, self.lse = rows, safe, lse
        self.loops = kernels_for(xp, logits, lse)
        if self.loops is not None:          # compiled: only logsumexp now, softmax in backward
            self.logits, self.p = logits, None
            split_rows(lambda lo, hi: self.loops.log_sum_exp_rows(logits[lo:hi], lse[lo:hi]),
                       logits.shape[0], logits.size)
        else:
            self.p = self._softmax_and_lse(logits, lse)
        losses = (lse - logits[rows, safe]) * self.keep
        return xp.asarray(losses.sum() / self.count if self.count else xp.nan, dtype=logits.dtype)

    def _softmax_and_lse(self, logits, lse):
        xp = self.xp
        p = xp.empty_like(logits)                       # softmax(z), kept for backward

        def kernel(lo, hi):
            z, e = logits[lo:hi], p[lo:hi]
            m = z.max(axis=-1, keepdims=True)
            m[~xp.isfinite(m)] = 0                      # a row of -inf stays -inf, not NaN
            xp.subtract(z, m, out=e)
            xp.exp(e, out=e)
            total = e.sum(axis=-1, keepdims=True)
            e /= total
            lse[lo:hi] = (m + xp.log(total))[:, 0]
        parallel_for(kernel, logits.shape[0], logits.size, xp=xp)
        return p

    def backward(self, g):
        xp = self.xp
        if self.count == 0:
            return xp.zeros_like(self.p if self.p is not None else self.logits)
        scale = (self.keep * (g / self.count)).astype(self.lse.dtype)    # per row
        if self.p is None:
            z, grad, lse, safe = self.logits, xp.empty_like(self.logits), self.lse, self.safe
            split_rows(lambda lo, hi: self.loops.cross_entropy_backward(
                z[lo:hi], lse[lo:hi], safe[lo:hi], scale[lo:hi], grad[lo:hi]), z.shape[0], z.size)
            return grad
        grad = self.p                                   # ours to overwrite: freed after this
        grad[self.rows, self.safe] -= 1
        grad *= scale[:, None]
        return grad


@register
class LayerNorm(Function):
    """LayerNorm over the last axis. Composite twin: composite.layer_norm. Compiled loops:
    kernels.layer_norm_forward, kernels.layer_norm_backward."""
    # xhat = (x - mean) / sqrt(var + eps), y = xhat * w + b   (over the last axis)
    # dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), dxhat = g * w
    # Row means are matrix-vector products (BLAS, every core) rather than NumPy's slow
    # reductions over short rows; the rest runs in place, block by block.
    saved_inputs = {1: (0,)}
    saves_output = False

    def forward(self, x, weight, bias, eps=1e-5):
        xp = self.xp
        n = x.shape[-1]
        x2 = x.reshape(-1, n)
        xhat, y = xp.empty_like(x2), xp.empty_like(x2)
        rstd = xp.empty((x2.shape[0], 1), dtype=x.dtype)
        self.xhat, self.rstd, self.weight = xhat, rstd, weight
        loops = kernels_for(xp, x2, weight, bias)
        if loops is not None:                                     # the same, compiled
            split_rows(lambda lo, hi: loops.layer_norm_forward(
                x2[lo:hi], weight, bias, eps, xhat[lo:hi], y[lo:hi], rstd[lo:hi, 0]),
                x2.shape[0], x2.size)
            return y.reshape(x.shape)
        mean = x2 @ xp.full(n, 1.0 / n, dtype=x.dtype)           # (rows,)

        def kernel(lo, hi):
            xh, r = xhat[lo:hi], rstd[lo:hi]
            xp.subtract(x2[lo:hi], mean[lo:hi, None], out=xh)
            r[:, 0] = xp.einsum("ri,ri->r", xh, xh)       # one pass, no temporary
            r /= n
            r += eps
            xp.sqrt(r, out=r)
            xp.reciprocal(r, out=r)
            xh *= r
            xp.multiply(xh, weight, out=y[lo:hi])
            y[lo:hi] += bias
        parallel_for(kernel, x2.shape[0], x2.size, xp=xp)
        return y.reshape(x.shape)

    def backward(self, g):
        xp, xhat = self.xp, self.xhat
        n = xhat.shape[-1]
        g2 = g.reshape(-1, n)
        loops = kernels_for(xp, g2, xhat, self.weight)
        if loops is not None and self.needs_grad[0]:
            return self._backward_compiled(loops, g, g2)
        gw = xp.einsum("ri,ri->i", g2, xhat) if self.needs_grad[1] else None
        gb = xp.ones(g2.shape[0], dtype=g2.dtype) @ g2 if self.needs_grad[2] else None
        if not self.needs_grad[0]:
            return None, gw, gb
        gx = xp.empty_like(g2)
        m1 = g2 @ (self.weight / n)                                # mean(dxhat), (rows,)

        def kernel(lo, hi):
            gs, xh = gx[lo:hi], xhat[lo:hi]
            xp.multiply(g2[lo:hi], self.weight, out=gs)              # dxhat
            m2 = xp.einsum("ri,ri->r", gs, xh)[:, None]               # sum(dxhat * xhat)
            m2 /= n
            gs -= m1[lo:hi, None]
            gs -= xh * m2
            gs *= self.rstd[lo:hi]
        parallel_for(kernel, g2.shape[0], g2.size, xp=xp)
        return gx.reshape(g.shape), gw, gb

    def _backward_compiled(self, loops, g, g2):
        n = g2.shape[1] if self.needs_grad[1] or self.needs_grad[2] else 0   # 0: no dw, db
        gx, partial = np.empty_like(g2), {}        # lo -> (dw, db) of the rows lo:hi

        def rows(lo, hi):
            gw, gb = np.zeros(n, g2.dtype), np.zeros(n, g2.dtype)
            loops.layer_norm_backward(g2[lo:hi], self.xhat[lo:hi], self.weight,
                                      self.rstd[lo:hi, 0], gx[lo:hi], gw, gb)
            partial[lo] = gw, gb
        split_rows(rows, g2.shape[0], g2.size)
        pieces = [partial[lo] for lo in sorted(partial)]           # summed in a fixed order
        gw, gb = pieces[0] if len(pieces) == 1 else map(sum, zip(*pieces))
        return (gx.reshape(g.shape), gw if self.needs_grad[1] else None,
                gb if self.needs_grad[2] else None)


def _gelu_sigmoid(xp, xs, s):
    """s <- sigmoid(2u) = 1 / (1 + exp(-2u)) = (1 + tanh u) / 2, in place in the buffer s.
    exp overflows to inf for very negative x, which gives the exact limit s = 0."""
    xp.multiply(xs, xs, out=s)
    s *= -2 * SQRT_2_OVER_PI * 0.044715
    s -= 2 * SQRT_2_OVER_PI
    s *= xs                                   # -2u
    with np.errstate(over="ignore"):     # (NumPy only; CuPy does not warn)
        xp.exp(s, out=s)
    s += 1
    xp.reciprocal(s, out=s)


@register
class GeluTanh(Function):
    """GELU, tanh form. Composite twin: composite.gelu(x, approximate="tanh"). Compiled
    loops: kernels.gelu_forward, kernels.gelu_backward."""
    # y = x/2 (1 + tanh u), u = sqrt(2/pi) (x + 0.044715 x^3)   (GPT-2's GELU)
    #   = x s, with s = sigmoid(2u) = 1 / (1 + exp(-2u))   (the same function, fewer passes)
    # dy/dx = s + x s (1 - s) du2/dx,  du2/dx = 2 sqrt(2/pi) (1 + 3 * 0.044715 x^2)
    # In place, piece by piece on every core: this op sees the widest activations (4 C).
    # Only x is saved; backward recomputes s (as PyTorch recomputes tanh), so GELU costs one
    # activation of memory, not two.
    saved_inputs = (0,)
    saves_output = False

    def forward(self, x):
        xp = self.xp
        xf = xp.ascontiguousarray(x).reshape(-1)
        y = xp.empty_like(xf)
        self.x = xf
        loops = kernels_for(xp, xf)
        if loops is not None:                     # the same, compiled: one pass
            split_rows(lambda lo, hi: loops.gelu_forward(xf[lo:hi], y[lo:hi]), xf.size, xf.size)
            return y.reshape(x.shape)

        def kernel(lo, hi):
            ys = y[lo:hi]
            _gelu_sigmoid(xp, xf[lo:hi], ys)  # ys = s
            ys *= xf[lo:hi]
        parallel_for(kernel, xf.size, xp=xp)
        return y.reshape(x.shape)

    def backward(self, g):
        xp, xf = self.xp, self.x
        gf = xp.ascontiguousarray(g).reshape(-1)
        d = xp.empty_like(gf)
        loops = kernels_for(xp, xf, gf)
        if loops is not None:                     # the same, compiled: one pass
            split_rows(lambda lo, hi: loops.gelu_backward(xf[lo:hi], gf[lo:hi], d[lo:hi]),
                       xf.size, xf.size)
            return d.reshape(g.shape)

        def kernel(lo, hi):
            xs, ds = xf[lo:hi], d[lo:hi]
            s = xp.empty_like(xs)
            _gelu_sigmoid(xp, xs, s)          # s, recomputed
            xp.multiply(xs, xs, out=ds)
            ds *= 6 * SQRT_2_OVER_PI * 0.044715
            ds += 2 * SQRT_2_OVER_PI
            ds *= xs                          # x du2/dx
            ds *= s
            ds -= ds * s                      # x s (1 - s) du2/dx
            ds += s
            ds *= gf[lo:hi]
        parallel_for(kernel, xf.size, xp=xp)
        return d.reshape(g.shape)


@register
class GeluExact(Function):
    """GELU, erf form. Composite twin: composite.gelu(x). No compiled loop (erf: mathfns)."""
    # y = x Phi(x) = x/2 (1 + erf(x / sqrt 2));  dy/dx = Phi(x) + x phi(x)
    saved_inputs = (0,)
    saves_output = False

    def forward(self, x):
        self.x = x
        self.cdf = (0.5 * (1 + erf(x / math.sqrt(2.0)))).astype(x.dtype, copy=False)
        return x * self.cdf

    def backward(self, g):
        x = self.x
        pdf = self.xp.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        return g * (self.cdf + x * pdf)


@register
class Dropout(Function):
    """x times a given mask of 0 and 1/(1-p). Composite twin: composite.dropout. No
    compiled loop."""
    # y = x * mask, mask already holding 0 or 1/(1-p);  dx = g * mask
    saved_inputs = ()
    saves_output = False

    def forward(self, x, mask):
        self.mask = mask
        return x * mask

    def backward(self, g):
        return g * self.mask


@register
class Linear(Function):
    """x @ W^T + b. Composite twin: composite.linear. No compiled loop: BLAS, split over
    the cores by threads.blas_rows and blas_tasks."""
    # y = x @ W^T + b, W of shape (out, in) as in torch.nn.Linear; rows flattened so
    # every product is one 2-D GEMM:  dx = g @ W,  dW = g^T @ x,  db = sum_rows g.
    # On the CPU the forward's rows (or, when fewer, its outputs) are cut into one piece per
    # core, bias added while the piece is in cache, and the backward computes dW beside
    # dx and db (backend.blas_rows, blas_tasks).
    saved_inputs = {0: (1,), 1: (0,)}
    saves_output = False

    def forward(self, x, weight, bias=None):
        xp = self.xp
        x2 = self.x2 = x.reshape(-1, x.shape[-1])
        self.x_shape, self.weight = x.shape, weight
        M, N = x2.shape[0], weight.shape[0]
        y = xp.empty((M, N), dtype=xp.result_type(x2, weight))

        def rows(lo, hi):
            xp.matmul(x2[lo:hi], weight.T, out=y[lo:hi])
            if bias is not None:
                y[lo:hi] += bias

        def columns(lo, hi):     # fewer rows than outputs: each piece packs half of W
            xp.matmul(x2, weight[lo:hi].T, out=y[:, lo:hi])
            if bias is not None:
                y[:, lo:hi] += bias[lo:hi]
        if M >= N:
            blas_rows(rows, M, 2 * y.size * x2.shape[1], xp)
        else:
            blas_rows(columns, N, 2 * y.size * x2.shape[1], xp)
        return y.reshape(x.shape[:-1] + (N,))

    def backward(self, g):
        xp, needs = self.xp, self.needs_grad
        g2 = g.reshape(-1, g.shape[-1])
        grads = [None] * len(needs)

        def weight_grad():
            if needs[1]:
                grads[1] = g2.T @ self.x2

        def input_and_bias_grads():
            if needs[0]:
                grads[0] = (g2 @ self.weight).reshape(self.x_shape)
            if len(needs) == 3 and needs[2]:
                grads[2] = xp.ones(g2.shape[0], dtype=g2.dtype) @ g2   # row sum as BLAS gemv
        # this thread takes the first task at once, a pool thread the second when it wakes
        # (~0.1 ms later): dW first, as dx and dW cost the same and db goes beside dx
        blas_tasks([weight_grad, input_and_bias_grads], 2 * g2.size * self.x2.shape[1], xp)
        return tuple(grads)


# ----------------------------------------------------------------------------- attention
# Causal attention in blocks of queries, as flash attention does: the queries a:b see only
# the keys 0:e (e = b + Tk - Tq), so a block never computes the scores of keys it cannot see
# (over four blocks, 5/8 of the T x T scores are computed). Per block, with G = dL/dy:
#   p = softmax(s), s = (q * scale) k^T masked;  y = (p * mask) v
#   dv = (p * mask)^T G;  dp = (G v^T) * mask;  ds = p (dp - rowsum(dp p));
#   dq = ds k * scale;  dk = ds^T (q * scale)
# The helpers take the keys twice over, k (..., Tk, hs) and kt = k^T (..., hs, Tk), and v
# and vt = v^T likewise: each product then reads its operands as stored. They may be views
# of one another; MultiHeadAttention passes copies, as BLAS's small-matrix kernels run
# q @ k^T 1.3-1.5x slower from a transposed view than from kt itself (OpenBLAS, AVX-512).
ATTENTION_BLOCK = 64   # queries per block


def _query_blocks(tq, tk, causal):
    """(a, b, e) for each block: queries a:b, which see keys 0:e."""
    if not causal:
        return [(0, tq, tk)]
    blocks = []
    for a in range(0, tq, ATTENTION_BLOCK):
        b = min(tq, a + ATTENTION_BLOCK)
        blocks.append((a, b, max(1, min(tk, b + tk - tq))))
    return blocks


def _attention_weights(xp, qs, kt, a, b, e, causal, scores_out=None):
    """p = softmax(s) for queries a:b over keys 0:e, s = qs k^T (qs = q * scale, kt = k^T),
    the keys ahead of each query masked when causal. ``scores_out`` (a recording): receives
    s before the mask and the softmax overwrite it."""
    s = qs[..., a:b, :] @ kt[..., :e]                                  # (..., b-a, e)
    if scores_out is not None:
        scores_out[...] = s
    tq, tk = qs.shape[-2], kt.shape[-1]
    rows = s.reshape((-1,) + s.shape[-2:])
    loops = kernels_for(xp, rows)
    if loops is not None:                      # the same as kernel below, compiled
        loops.softmax_rows_(rows, a, tk - tq, causal)
        return s
    mask = None
    if causal and e > a + tk - tq + 1:        # the block reaches keys ahead of some query
        ahead = xp.arange(e)[None, :] > xp.arange(a, b)[:, None] + (tk - tq)
        mask = xp.where(ahead, -xp.inf, 0).astype(s.dtype)              # (b-a, e): 0 / -inf

    def kernel(lo, hi):                        # mask, shift, exp, normalise, in place
        r = rows[lo:hi]
        if mask is not None:
            r += mask
        r -= r.max(axis=-1, keepdims=True)
        xp.exp(r, out=r)
        r /= xp.einsum("bij->bi", r)[..., None]   # (einsum: faster than .sum on short rows)
    parallel_for(kernel, rows.shape[0], s.size, xp=xp)
    return s


def _keep_weights(qs, kt, v):
    """Whether forward keeps the attention weights for backward: only while they are no
    larger than q, k and v together (T <= 3 head sizes). Longer contexts recompute them
    block by block in backward (like flash attention): there the (T x T) weights of every
    head would be the largest activation of a block."""
    n = qs.shape[-2] * kt.shape[-1] * math.prod(np.broadcast_shapes(qs.shape[:-2],
                                                                      kt.shape[:-2]))
    return n <= qs.size + kt.size + v.size


def _attention_forward(xp, qs, kt, v, causal, dropout_mask, out=None, seen=None):
    """y (..., Tq, hv) (written into ``out`` if given) and the weights of each block (None:
    not kept), from qs = q * scale, kt = k^T and v. ``seen`` (a recording): (scores,
    weights), two arrays (..., Tq, Tk) that receive each block's scores before the softmax
    and its weights."""
    batch = np.broadcast_shapes(qs.shape[:-2], kt.shape[:-2], v.shape[:-2])
    blocks = _query_blocks(qs.shape[-2], kt.shape[-1], causal)
    keep = _keep_weights(qs, kt, v)
    y, saved = out, []
    if y is None and len(blocks) > 1:
        y = xp.empty(batch + (qs.shape[-2], v.shape[-1]), dtype=v.dtype)
    for a, b, e in blocks:
        p = _attention_weights(xp, qs, kt, a, b, e, causal,
                               None if seen is None else seen[0][..., a:b, :e])
        if seen is not None:
            seen[1][..., a:b, :e] = p
        pd = p if dropout_mask is None else p * dropout_mask[..., a:b, :e]
        if y is None:
            y = pd @ v[..., :e, :]          # one block: its output is the whole output
        elif len(blocks) == 1:
            xp.matmul(pd, v[..., :e, :], out=y)
        else:
            y[..., a:b, :] = pd @ v[..., :e, :]   # (no matmul out=: a strided view)
        saved.append(p if keep else None)
    return y, saved


def _attention_backward(xp, g, qs, k, kt, v, vt, causal, scale, dropout_mask, saved,
                        needs=(True, True, True)):
    """dq, dk, dv (None where ``needs`` says no) from g = dL/dy; k and kt = k^T, v and
    vt = v^T as in _attention_forward."""
    tq, tk = qs.shape[-2], k.shape[-2]
    batch = g.shape[:-2]
    gq = xp.empty(batch + (tq, qs.shape[-1]), dtype=g.dtype) if needs[0] else None
    gk = gv = None
    # last block first: it sees every key, so it sets dk and dv, and the others add to them
    for (a, b, e), p in reversed(list(zip(_query_blocks(tq, tk, causal), saved))):
        if p is None:
            p = _attention_weights(xp, qs, kt, a, b, e, causal)
        gb = g[..., a:b, :]                                         # G  (..., b-a, hv)
        mask = None if dropout_mask is None else dropout_mask[..., a:b, :e]
        if needs[2]:
            pd = p if mask is None else p * mask
            gv = _add_rows(gv, xp.swapaxes(pd, -1, -2) @ gb)
        ds = gb @ vt[..., :e]                                       # dp  (..., b-a, e)
        if mask is not None:
            ds *= mask
        rows, prows = ds.reshape((-1,) + ds.shape[-2:]), p.reshape((-1,) + p.shape[-2:])
        loops = kernels_for(xp, rows, prows)

        def kernel(lo, hi):                    # ds = p (dp - rowsum(dp p)), in place
            r, pr = rows[lo:hi], prows[lo:hi]
            r -= xp.einsum("bij,bij->bi", r, pr)[..., None]
            r *= pr
        if loops is not None:                  # the same, compiled
            loops.softmax_rows_backward_(rows, prows)
        else:
            parallel_for(kernel, rows.shape[0], ds.size, xp=xp)
        if gq is not None:
            gqb = gq[..., a:b, :]
            gqb[...] = ds @ k[..., :e, :]
            gqb *= scale
        if needs[1]:
            gk = _add_rows(gk, xp.swapaxes(ds, -1, -2) @ qs[..., a:b, :])
    return gq, gk, gv


def _seen_arrays(xp, batch, tq, tk, dtype):
    """(scores, weights) for a recording: keys no query of a block may see are never
    scored, so their scores stay -inf and their weights 0."""
    return xp.full(batch + (tq, tk), -xp.inf, dtype=dtype), xp.zeros(batch + (tq, tk), dtype)


def _keep_intermediates(xp, into: dict, causal, q, k, v, scores, weights, y) -> None:
    """Fill a recording's dict with the arrays one attention computed (see
    functional.multi_head_attention): q before scaling, k, v, the scores, the causal mask
    (True where query i may see key j), the weights before dropout and y."""
    tq, tk = q.shape[-2], k.shape[-2]
    allowed = xp.ones((tq, tk), dtype=bool)
    if causal:
        allowed = xp.tril(allowed, k=tk - tq)
    into.update(q=q, k=k, v=v, scores=scores, mask=allowed, weights=weights, y=y)


def _add_rows(total, part):
    """total with part added to its first rows (part itself when total is None)."""
    if total is None:
        return part
    total[..., :part.shape[-2], :] += part
    return total


@register
class Attention(Function):
    """Scaled dot-product attention, causal or not. Composite twin: composite.attention.
    Compiled loops: kernels.softmax_rows_ (the masked softmax of _attention_weights),
    kernels.softmax_rows_backward_."""
    # causal scaled dot-product attention, q (..., Tq, hs), k (..., Tk, hs), v (..., Tk, hv):
    # s = q k^T * scale, masked so query i sees keys j <= i + (Tk - Tq); p = softmax(s);
    # y = (p * dropout_mask) @ v.
    # dv = pd^T g;  dpd = g v^T;  dp = dpd * mask;  ds = p (dp - sum(dp p));  dq = ds k scale;
    # dk = ds^T q scale   (computed in query blocks, see above)
    def forward(self, q, k, v, causal=True, scale=None, dropout_mask=None, intermediates=None):
        xp = self.xp
        self.scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
        seen = None
        if intermediates is not None:   # a recording: keep the arrays computed below
            seen = _seen_arrays(xp, np.broadcast_shapes(q.shape[:-2], k.shape[:-2]),
                                q.shape[-2], k.shape[-2], xp.result_type(q, k))
        self.qs = q * self.scale
        y, self.saved = _attention_forward(xp, self.qs, xp.swapaxes(k, -1, -2), v, causal,
                                           dropout_mask, seen=seen)
        self.k, self.v, self.causal, self.mask = k, v, causal, dropout_mask
        if intermediates is not None:
            _keep_intermediates(xp, intermediates, causal, q, k, v, *seen, y.copy())
        return y

    def backward(self, g):
        xp, k, v = self.xp, self.k, self.v
        return _attention_backward(xp, g, self.qs, k, xp.swapaxes(k, -1, -2), v,
                                   xp.swapaxes(v, -1, -2), self.causal, self.scale, self.mask,
                                   self.saved, self.needs_grad)


def _head_blocks(lo, hi, n_head):
    """The heads lo:hi of the (batch x head) order as at most three (batches, heads) slice
    pairs: the rest of a first batch element, whole batch elements, the start of a last."""
    (b0, h0), (b1, h1) = divmod(lo, n_head), divmod(hi, n_head)
    if b0 == b1:
        return [(slice(b0, b0 + 1), slice(h0, h1))] if h1 > h0 else []
    blocks = []
    if h0:
        blocks.append((slice(b0, b0 + 1), slice(h0, n_head)))
        b0 += 1
    if b1 > b0:
        blocks.append((slice(b0, b1), slice(0, n_head)))
    if h1:
        blocks.append((slice(b1, b1 + 1), slice(0, h1)))
    return blocks


def _by_batch(batch, n_head, *arrays):
    """Each (B nh, ...) array as (B, nh, ...): views, the heads of one batch element apart."""
    return [a.reshape((batch, n_head) + a.shape[1:]) for a in arrays]


@register
class MultiHeadAttention(Function):
    """A GPT block's attention from qkv. Composite twin: split qkv into heads, then
    composite.attention per head (tests/minigrad/test_functional.py writes it out).
    Compiled loops: Attention's, per piece of the heads."""
    # The whole attention of a GPT block after c_attn, in one node:
    # qkv (B, T, 3C) -> q, k, v (B, nh, T, hs) -> Attention -> y (B, nh, T, hs) -> (B, T, C).
    # The same maths as split + reshape + transpose + Attention + transpose + reshape (tested
    # equal), but each head's q (scaled), k^T and v are contiguous copies (faster batched
    # matmuls), and the backward writes dq, dk, dv into one (B, T, 3C) gradient. On the CPU
    # the B x nh heads are cut into one piece per core, and each piece does all of its own
    # work: copying its heads out of qkv, a whole attention, copying its output back
    # (backend.blas_rows; _head_blocks).
    # With a KV cache (k_cache, v_cache: (B, nh, T_max, hs), positions < cache_start filled)
    # this call's k, v are written at cache_start:cache_start + T and the queries attend over
    # all Tk = cache_start + T keys (causal: query i sees keys j <= cache_start + i). The
    # cached keys are constants: dk, dv are those of this call's keys only.
    saved_inputs = ()
    saves_output = False

    def forward(self, qkv, n_head, causal=True, dropout_mask=None, k_cache=None, v_cache=None,
                cache_start=0, intermediates=None):
        xp = self.xp
        B, T, C3 = qkv.shape
        hs = C3 // (3 * n_head)
        BH, dt = B * n_head, qkv.dtype
        src = qkv.reshape(B, T, 3, n_head, hs)        # q, k, v of head h: src[:, :, 0/1/2, h]
        self.scale = scale = 1.0 / math.sqrt(hs)
        qs = xp.empty((BH, T, hs), dtype=dt)            # q * scale, one row per head
        cached = k_cache is not None
        if cached:              # our keys and values join the cache; attend over all of it
            end = cache_start + T
            k_cache[:, :, cache_start:end] = src[:, :, 1].transpose(0, 2, 1, 3)
            v_cache[:, :, cache_start:end] = src[:, :, 2].transpose(0, 2, 1, 3)
            k = k_cache[:, :, :end].reshape(BH, end, hs)    # (B nh, Tk, hs): a view
            v = v_cache[:, :, :end].reshape(BH, end, hs)
            kt = xp.swapaxes(k, -1, -2)
        else:
            kt, v = xp.empty((BH, hs, T), dtype=dt), xp.empty((BH, T, hs), dtype=dt)
        tk = kt.shape[-1]
        seen = None
        if intermediates is not None:                  # a recording: keep what is computed
            seen = _seen_arrays(xp, (BH,), T, tk, dt)
        y, out = xp.empty((BH, T, hs), dtype=dt), xp.empty((B, T, n_head, hs), dtype=dt)
        qs4, kt4, v4, y4 = _by_batch(B, n_head, qs, kt, v, y)   # (B, nh, ...): views
        mask = (None if dropout_mask is None
                else dropout_mask.reshape((BH,) + dropout_mask.shape[-2:]))
        self.pieces = {}                               # (lo, hi) of the heads -> saved weights

        def piece(lo, hi):
            blocks = _head_blocks(lo, hi, n_head)
            for bs, hd in blocks:                      # this piece's heads out of qkv
                part = src[bs, :, :, hd]               # (batches, T, 3, heads, hs)
                xp.multiply(part[:, :, 0].transpose(0, 2, 1, 3), scale, out=qs4[bs, hd])
                if not cached:
                    kt4[bs, hd] = part[:, :, 1].transpose(0, 2, 3, 1)
                    v4[bs, hd] = part[:, :, 2].transpose(0, 2, 1, 3)
            _, self.pieces[lo, hi] = _attention_forward(
                xp, qs[lo:hi], kt[lo:hi], v[lo:hi], causal, None if mask is None else mask[lo:hi],
                out=y[lo:hi], seen=None if seen is None else (seen[0][lo:hi], seen[1][lo:hi]))
            for bs, hd in blocks:                      # and its output into (B, T, nh, hs)
                out[bs, :, hd] = y4[bs, hd].transpose(0, 2, 1, 3)
        blas_rows(piece, BH, 4 * qs.size * tk, xp)
        self.qs, self.kt, self.v, self.causal, self.mask = qs, kt, v, causal, mask
        self.shape = B, n_head, T, hs
        self.start, self.k = (cache_start, k) if cached else (None, None)   # None: no cache
        if intermediates is not None:
            q_read = src[:, :, 0].transpose(0, 2, 1, 3).copy()   # (B, nh, T, hs), unscaled
            _keep_intermediates(xp, intermediates, causal, q_read,
                                *_by_batch(B, n_head, xp.swapaxes(kt, -1, -2), v, *seen, y))
        return out.reshape(B, T, C3 // 3)

    def backward(self, g):
        xp = self.xp
        B, nh, T, hs = self.shape
        BH, dt = B * nh, g.dtype
        g_in = g.reshape(B, T, nh, hs)
        gh = xp.empty((BH, T, hs), dtype=dt)                      # g, one row per head
        grads = xp.empty((3, BH, T, hs), dtype=dt)                # dq, dk, dv of every head
        out = xp.empty((B, T, 3, nh, hs), dtype=dt)               # the same in qkv's layout
        qs, kt, v, start = self.qs, self.kt, self.v, self.start
        if start is None:           # k and v^T as contiguous copies, made piece by piece
            k, vt = xp.empty((BH, T, hs), dtype=dt), xp.empty((BH, hs, T), dtype=dt)
        else:                       # views of the cache: this call's keys begin at start
            k, vt = self.k, xp.swapaxes(v, -1, -2)
        gh4, = _by_batch(B, nh, gh)
        grads4 = grads.reshape(3, B, nh, T, hs)

        def piece(lo, hi):
            blocks = _head_blocks(lo, hi, nh)
            for bs, hd in blocks:
                gh4[bs, hd] = g_in[bs, :, hd].transpose(0, 2, 1, 3)
            if start is None:
                k[lo:hi] = xp.swapaxes(kt[lo:hi], -1, -2)
                vt[lo:hi] = xp.swapaxes(v[lo:hi], -1, -2)
            m = None if self.mask is None else self.mask[lo:hi]
            for i, gi in enumerate(_attention_backward(
                    xp, gh[lo:hi], qs[lo:hi], k[lo:hi], kt[lo:hi], v[lo:hi], vt[lo:hi],
                    self.causal, self.scale, m, self.pieces[lo, hi])):
                grads[i, lo:hi] = gi if i == 0 or start is None else gi[:, start:]
            for bs, hd in blocks:                  # (3, b, h, T, hs) -> (b, T, 3, h, hs)
                out[bs, :, :, hd] = grads4[:, bs, hd].transpose(1, 3, 0, 2, 4)
        tasks = [lambda lo=lo, hi=hi: piece(lo, hi) for lo, hi in self.pieces]
        blas_tasks(tasks, 8 * qs.size * kt.shape[-1], xp)
        return out.reshape(B, T, 3 * nh * hs)
