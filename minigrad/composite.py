"""The readers' path: the functional ops written with primitives only.

Start here to learn what an op computes. Each function is a few lines of tensor
maths, and autograd derives its gradient from the primitives in ops.py. The same
ops also exist fused (fused.py: one node with a hand-derived backward, whose NumPy
code is the path CuPy takes) and, for the CPU, compiled (backend/kernels.py); each
fused op's docstring names its twin here and its compiled loop. The tests check that
each one equals its fused twin in value and gradient (tests/minigrad/test_functional.py).
"""
from __future__ import annotations

import math

from . import backend
from .tensor import Tensor, where


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    e = (x - x.amax(dim, keepdim=True).detach()).exp()   # shift by the max: no overflow
    return e / e.sum(dim, keepdim=True)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    shifted = x - x.amax(dim, keepdim=True).detach()
    return shifted - shifted.exp().sum(dim, keepdim=True).log()


def cross_entropy(logits: Tensor, targets, ignore_index: int = -100) -> Tensor:
    t = targets.array if isinstance(targets, Tensor) else targets
    n = logits.shape[-1]
    t = t.reshape(-1)
    keep = t != ignore_index
    flat = logits.reshape(-1, n).masked_fill(~keep[:, None], 0.0)  # ignored rows: no NaN
    logp = log_softmax(flat, -1)                               # (N, C)
    xp = backend.get_array_module(logp.array)
    picked = logp[xp.arange(t.shape[0]), xp.where(keep, t, 0)]  # (N,)
    kept = Tensor._make(keep.astype(logp.dtype), False)
    return -(picked * kept).sum() / kept.sum()


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    if approximate == "tanh":
        return 0.5 * x * (1 + (math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)).tanh())
    return 0.5 * x * (1 + (x * (1 / math.sqrt(2))).erf())


def layer_norm(x: Tensor, normalized_shape, weight=None, bias=None, eps: float = 1e-5):
    mean = x.mean(-1, keepdim=True)                    # (..., 1)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)     # biased, as in the paper
    xhat = (x - mean) / (var + eps).sqrt()
    if weight is not None:
        xhat = xhat * weight
    if bias is not None:
        xhat = xhat + bias
    return xhat


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    if not training or p == 0:
        return x
    keep = backend.random_uniform(x.shape, x.dtype, x.device) >= p
    return x * Tensor._make(keep.astype(x.dtype) / (1 - p), False)


def linear(x: Tensor, weight: Tensor, bias=None) -> Tensor:
    y = x @ weight.transpose(0, 1)
    return y if bias is None else y + bias


def attention(q: Tensor, k: Tensor, v: Tensor, is_causal: bool = True, scale=None):
    tq, tk = q.shape[-2], k.shape[-2]
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    att = (q @ k.transpose(-2, -1)) * scale            # (..., Tq, Tk)
    if is_causal:
        xp = backend.get_array_module(q.array)
        allowed = xp.tril(xp.ones((tq, tk), dtype=bool), k=tk - tq)
        att = where(Tensor._make(allowed, False), att, float("-inf"))
    return softmax(att, -1) @ v                         # (..., Tq, hv)
