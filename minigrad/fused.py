"""Fused ops with hand-derived backward: one node instead of a dozen, fewer
temporaries, and numerically safe forms (max-shifted exponentials). Each one is
tested against its composition of primitives (composite.py), value and gradient.
"""
from __future__ import annotations

import math

from .autograd import Function, register
from .backend import erf, parallel_for

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
    # y = e^x / sum e^x;  dx = y * (g - sum(g * y))
    def forward(self, x, axis=-1):
        self.axis = axis
        self.out = _softmax(self.xp, x, axis)
        return self.out

    def backward(self, g):
        y = self.out
        return y * (g - (g * y).sum(axis=self.axis, keepdims=True))


@register
class LogSoftmax(Function):
    # y = x - logsumexp(x);  dx = g - softmax(x) * sum(g)
    def forward(self, x, axis=-1):
        self.axis = axis
        self.out = x - _logsumexp(self.xp, x, axis)
        return self.out

    def backward(self, g):
        return g - self.xp.exp(self.out) * g.sum(axis=self.axis, keepdims=True)


@register
class CrossEntropy(Function):
    # loss = mean over kept rows of (logsumexp(z) - z[target]);
    # dz = (softmax(z) - onehot(target)) / n_kept on kept rows, 0 on ignored rows
    def forward(self, logits, targets, ignore_index=-100):
        xp = self.xp
        rows = xp.arange(logits.shape[0])
        self.keep = targets != ignore_index
        safe = xp.where(self.keep, targets, 0)
        p = xp.empty_like(logits)                       # softmax(z), kept for backward
        lse = xp.empty(logits.shape[0], dtype=logits.dtype)

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
        losses = (lse - logits[rows, safe]) * self.keep
        self.count = int(self.keep.sum())
        self.p, self.rows, self.safe = p, rows, safe
        return xp.asarray(losses.sum() / self.count if self.count else xp.nan, dtype=logits.dtype)

    def backward(self, g):
        xp = self.xp
        if self.count == 0:
            return xp.zeros_like(self.p)
        grad = self.p                                   # ours to overwrite: freed after this
        grad[self.rows, self.safe] -= 1
        grad *= (self.keep * (g / self.count))[:, None].astype(grad.dtype)
        return grad


@register
class LayerNorm(Function):
    # xhat = (x - mean) / sqrt(var + eps), y = xhat * w + b   (over the last axis)
    # dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), dxhat = g * w
    # Row means are matrix-vector products (BLAS, every core) rather than NumPy's slow
    # reductions over short rows; the rest runs in place, block by block.
    def forward(self, x, weight, bias, eps=1e-5):
        xp = self.xp
        n = x.shape[-1]
        x2 = x.reshape(-1, n)
        xhat, y = xp.empty_like(x2), xp.empty_like(x2)
        rstd = xp.empty((x2.shape[0], 1), dtype=x.dtype)
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
        self.xhat, self.rstd, self.weight = xhat, rstd, weight
        return y.reshape(x.shape)

    def backward(self, g):
        xp, xhat = self.xp, self.xhat
        n = xhat.shape[-1]
        g2 = g.reshape(-1, n)
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


def _gelu_sigmoid(xp, xs, s):
    """s <- sigmoid(2u) = 1 / (1 + exp(-2u)) = (1 + tanh u) / 2, in place in the buffer s.
    exp overflows to inf for very negative x, which gives the exact limit s = 0."""
    xp.multiply(xs, xs, out=s)
    s *= -2 * SQRT_2_OVER_PI * 0.044715
    s -= 2 * SQRT_2_OVER_PI
    s *= xs                                   # -2u
    with xp.errstate(over="ignore"):
        xp.exp(s, out=s)
    s += 1
    xp.reciprocal(s, out=s)


@register
class GeluTanh(Function):
    # y = x/2 (1 + tanh u), u = sqrt(2/pi) (x + 0.044715 x^3)   (GPT-2's GELU)
    #   = x s, with s = sigmoid(2u) = 1 / (1 + exp(-2u))   (the same function, fewer passes)
    # dy/dx = s + x s (1 - s) du2/dx,  du2/dx = 2 sqrt(2/pi) (1 + 3 * 0.044715 x^2)
    # In place, piece by piece on every core: this op sees the widest activations (4 C).
    # Only x is saved; backward recomputes s (as PyTorch recomputes tanh), so GELU costs one
    # activation of memory, not two.
    def forward(self, x):
        xp = self.xp
        xf = xp.ascontiguousarray(x).reshape(-1)
        y = xp.empty_like(xf)

        def kernel(lo, hi):
            ys = y[lo:hi]
            _gelu_sigmoid(xp, xf[lo:hi], ys)  # ys = s
            ys *= xf[lo:hi]
        parallel_for(kernel, xf.size, xp=xp)
        self.x = xf
        return y.reshape(x.shape)

    def backward(self, g):
        xp, xf = self.xp, self.x
        gf = xp.ascontiguousarray(g).reshape(-1)
        d = xp.empty_like(gf)

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
    # y = x Phi(x) = x/2 (1 + erf(x / sqrt 2));  dy/dx = Phi(x) + x phi(x)
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
    # y = x * mask, mask already holding 0 or 1/(1-p);  dx = g * mask
    def forward(self, x, mask):
        self.mask = mask
        return x * mask

    def backward(self, g):
        return g * self.mask


@register
class Linear(Function):
    # y = x @ W^T + b, W of shape (out, in) as in torch.nn.Linear; rows flattened so
    # every product is one 2-D GEMM:  dx = g @ W,  dW = g^T @ x,  db = sum_rows g
    def forward(self, x, weight, bias=None):
        self.x2 = x.reshape(-1, x.shape[-1])
        self.x_shape, self.weight = x.shape, weight
        y = self.x2 @ weight.T
        if bias is not None:
            y += bias
        return y.reshape(x.shape[:-1] + (weight.shape[0],))

    def backward(self, g):
        g2 = g.reshape(-1, g.shape[-1])
        gx = (g2 @ self.weight).reshape(self.x_shape) if self.needs_grad[0] else None
        gw = g2.T @ self.x2 if self.needs_grad[1] else None
        if len(self.needs_grad) == 2:
            return gx, gw
        return gx, gw, (g2.sum(axis=0) if self.needs_grad[2] else None)


def _attention_probs(xp, q, k, causal, scale):
    """p = softmax(q k^T * scale), query i seeing keys j <= i + (Tk - Tq) when causal."""
    s = q @ xp.swapaxes(k, -1, -2)                 # (..., Tq, Tk)
    tq, tk = q.shape[-2], k.shape[-2]
    # the causal mask as 0 / -inf to add (a plain add is 3x faster than a masked copy)
    mask = xp.triu(xp.full((tq, tk), -xp.inf, dtype=s.dtype), k=tk - tq + 1) if causal else None
    rows = s.reshape((-1, tq, tk))

    def kernel(lo, hi):                            # scale, mask, softmax, all in place
        r = rows[lo:hi]
        r *= scale
        if mask is not None:
            r += mask
        r -= r.max(axis=-1, keepdims=True)
        xp.exp(r, out=r)
        r /= xp.einsum("bij->bi", r)[..., None]    # row sums (einsum: faster than .sum)
    parallel_for(kernel, rows.shape[0], s.size, xp=xp)
    return s


def _keep_probs(p, q, k, v):
    """Whether forward keeps the attention weights p for backward: only while they are no
    larger than q, k and v together (T <= 3 head sizes). Longer contexts recompute p from q
    and k in backward (like flash attention): there the (T x T) weights of every head would
    be the largest activation of a block."""
    return p.size <= q.size + k.size + v.size


def _attention_backward(xp, g, q, k, v, causal, scale, dropout_mask, needs=(True, True, True),
                        p=None):
    if p is None:
        p = _attention_probs(xp, q, k, causal, scale)
    pd = p if dropout_mask is None else p * dropout_mask
    gv = xp.swapaxes(pd, -1, -2) @ g if needs[2] else None
    gs = g @ xp.swapaxes(v, -1, -2)                # d pd
    if dropout_mask is not None:
        gs *= dropout_mask                         # d p
    tq, tk = gs.shape[-2:]
    rows, prows = gs.reshape((-1, tq, tk)), p.reshape((-1, tq, tk))

    def kernel(lo, hi):                            # d s = p (dp - sum(dp p)) * scale
        r, pr = rows[lo:hi], prows[lo:hi]
        r -= xp.einsum("bij,bij->bi", r, pr)[..., None]
        r *= pr
        r *= scale
    parallel_for(kernel, rows.shape[0], gs.size, xp=xp)
    gq = gs @ k if needs[0] else None
    gk = xp.swapaxes(gs, -1, -2) @ q if needs[1] else None
    return gq, gk, gv


@register
class Attention(Function):
    # causal scaled dot-product attention, q (..., Tq, hs), k (..., Tk, hs), v (..., Tk, hv):
    # s = q k^T * scale, masked so query i sees keys j <= i + (Tk - Tq); p = softmax(s);
    # y = (p * dropout_mask) @ v.
    # dv = pd^T g;  dpd = g v^T;  dp = dpd * mask;  ds = p (dp - sum(dp p));  dq = ds k scale;
    # dk = ds^T q scale
    def forward(self, q, k, v, causal=True, scale=None, dropout_mask=None):
        self.scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
        p = _attention_probs(self.xp, q, k, causal, self.scale)
        self.q, self.k, self.v, self.causal, self.mask = q, k, v, causal, dropout_mask
        self.p = p if _keep_probs(p, q, k, v) else None
        return (p if dropout_mask is None else p * dropout_mask) @ v

    def backward(self, g):
        return _attention_backward(self.xp, g, self.q, self.k, self.v, self.causal,
                                   self.scale, self.mask, self.needs_grad, self.p)


@register
class MultiHeadAttention(Function):
    # The whole attention of a GPT block after c_attn, in one node:
    # qkv (B, T, 3C) -> q, k, v (B, nh, T, hs) -> Attention -> y (B, nh, T, hs) -> (B, T, C).
    # The same maths as split + reshape + transpose + Attention + transpose + reshape (tested
    # equal), but q, k, v are made contiguous once (faster batched matmuls) and the backward
    # writes dq, dk, dv straight into one (B, T, 3C) gradient.
    def forward(self, qkv, n_head, causal=True, dropout_mask=None):
        xp = self.xp
        B, T, C3 = qkv.shape
        hs = C3 // (3 * n_head)
        heads = xp.ascontiguousarray(qkv.reshape(B, T, 3, n_head, hs).transpose(2, 0, 3, 1, 4))
        q, k, v = heads                                # 3 x (B, nh, T, hs)
        self.scale = 1.0 / math.sqrt(hs)
        p = _attention_probs(xp, q, k, causal, self.scale)
        y = (p if dropout_mask is None else p * dropout_mask) @ v      # (B, nh, T, hs)
        self.q, self.k, self.v, self.causal, self.mask = q, k, v, causal, dropout_mask
        self.p = p if _keep_probs(p, q, k, v) else None
        return y.transpose(0, 2, 1, 3).reshape(B, T, C3 // 3)   # (B, nh, T, hs) -> (B, T, C)

    def backward(self, g):
        xp = self.xp
        B, nh, T, hs = self.q.shape
        g = xp.ascontiguousarray(g.reshape(B, T, nh, hs).transpose(0, 2, 1, 3))
        gq, gk, gv = _attention_backward(xp, g, self.q, self.k, self.v, self.causal,
                                         self.scale, self.mask, p=self.p)
        grad = xp.empty((B, T, 3, nh, hs), dtype=g.dtype)
        for i, gi in enumerate((gq, gk, gv)):
            grad[:, :, i] = gi.transpose(0, 2, 1, 3)    # (B, nh, T, hs) -> (B, T, nh, hs)
        return grad.reshape(B, T, 3 * nh * hs)
