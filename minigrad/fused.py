"""Fused ops with hand-derived backward: one node instead of a dozen, fewer
temporaries, and numerically safe forms (max-shifted exponentials). Each one is
tested against its composition of primitives (composite.py), value and gradient.
"""
from __future__ import annotations

import math

from .autograd import Function, register
from .backend import erf, tanh

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
        lse = _logsumexp(xp, logits, -1)[:, 0]
        losses = (lse - logits[rows, safe]) * self.keep
        self.count = int(self.keep.sum())
        self.logits, self.lse, self.rows, self.safe = logits, lse, rows, safe
        return xp.asarray(losses.sum() / self.count if self.count else xp.nan, dtype=logits.dtype)

    def backward(self, g):
        xp = self.xp
        if self.count == 0:
            return xp.zeros_like(self.logits)
        grad = xp.exp(self.logits - self.lse[:, None])
        grad[self.rows, self.safe] -= 1
        grad *= (self.keep * (g / self.count))[:, None].astype(grad.dtype)
        return grad


@register
class LayerNorm(Function):
    # xhat = (x - mean) / sqrt(var + eps), y = xhat * w + b   (over the last axis)
    # dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), dxhat = g * w
    def forward(self, x, weight, bias, eps=1e-5):
        xhat = x - x.mean(axis=-1, keepdims=True)
        var = self.xp.einsum("...i,...i->...", xhat, xhat)[..., None]   # one pass, no temp
        var /= x.shape[-1]
        var += eps
        self.rstd = 1.0 / self.xp.sqrt(var)
        xhat *= self.rstd
        self.xhat, self.weight = xhat, weight
        y = xhat * weight
        y += bias
        return y

    def backward(self, g):
        xhat = self.xhat
        n = xhat.shape[-1]
        rows = g.reshape(-1, n)
        gw = self.xp.einsum("ri,ri->i", rows, xhat.reshape(-1, n)) if self.needs_grad[1] else None
        gb = rows.sum(axis=0) if self.needs_grad[2] else None
        if not self.needs_grad[0]:
            return None, gw, gb
        gx = g * self.weight                                           # dxhat
        m2 = self.xp.einsum("...i,...i->...", gx, xhat)[..., None]     # sum(dxhat * xhat)
        m2 /= n
        m1 = gx.mean(axis=-1, keepdims=True)
        gx -= m1
        gx -= xhat * m2
        gx *= self.rstd
        return gx, gw, gb


@register
class GeluTanh(Function):
    # y = x/2 (1 + tanh u), u = sqrt(2/pi) (x + 0.044715 x^3)   (GPT-2's GELU)
    # dy/dx = (1 + tanh u)/2 + x/2 (1 - tanh^2 u) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
    # (written with in-place updates: this op sees the widest activations, 4 x n_embd)
    def forward(self, x):
        u = x * x
        u *= 0.044715
        u += 1
        u *= x
        u *= SQRT_2_OVER_PI                   # u = sqrt(2/pi) (x + 0.044715 x^3)
        self.x, self.t = x, tanh(u)
        y = self.t + 1
        y *= x
        y *= 0.5
        return y

    def backward(self, g):
        x, t = self.x, self.t
        d = x * x
        d *= 3 * 0.044715
        d += 1
        d *= SQRT_2_OVER_PI                   # du/dx
        d *= 1 - t * t                        # 1 - tanh^2 u
        d *= x
        d += t
        d += 1
        d *= 0.5
        d *= g
        return d


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


@register
class Attention(Function):
    # causal scaled dot-product attention, q (..., Tq, hs), k (..., Tk, hs), v (..., Tk, hv):
    # s = q k^T * scale, masked so query i sees keys j <= i + (Tk - Tq); p = softmax(s);
    # y = (p * dropout_mask) @ v.
    # dv = pd^T g;  dpd = g v^T;  dp = dpd * mask;  ds = p (dp - sum(dp p));  dq = ds k scale;
    # dk = ds^T q scale
    def forward(self, q, k, v, causal=True, scale=None, dropout_mask=None):
        xp = self.xp
        self.scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
        s = q @ xp.swapaxes(k, -1, -2)                 # (..., Tq, Tk)
        s *= self.scale
        if causal:
            tq, tk = q.shape[-2], k.shape[-2]
            blocked = xp.triu(xp.ones((tq, tk), dtype=bool), k=tk - tq + 1)
            xp.copyto(s, -xp.inf, where=blocked)       # in place: no masked copy
        s -= s.max(axis=-1, keepdims=True)             # softmax, in place
        xp.exp(s, out=s)
        s /= s.sum(axis=-1, keepdims=True)
        self.p, self.mask = s, dropout_mask
        pd = s if dropout_mask is None else s * dropout_mask
        self.q, self.k, self.v, self.pd = q, k, v, pd
        return pd @ v

    def backward(self, g):
        xp = self.xp
        gv = xp.swapaxes(self.pd, -1, -2) @ g if self.needs_grad[2] else None
        gs = g @ xp.swapaxes(self.v, -1, -2)           # d pd
        if self.mask is not None:
            gs *= self.mask                            # d p
        gs -= xp.einsum("...ij,...ij->...i", gs, self.p)[..., None]
        gs *= self.p                                   # d s = p (dp - sum(dp p))
        gs *= self.scale
        gq = gs @ self.k if self.needs_grad[0] else None
        gk = xp.swapaxes(gs, -1, -2) @ self.q if self.needs_grad[1] else None
        return gq, gk, gv
