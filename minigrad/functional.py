"""minigrad.functional (import as F): torch.nn.functional's names on minigrad.

These call the fused ops of fused.py (one graph node, hand-derived backward).
The same functions built from primitives, for reading and stepping through,
are in minigrad.composite; tests check that both agree, value and gradient.
The losses (cross_entropy in PyTorch's (N, C, d...) layout, nll_loss, mse_loss, l1_loss,
binary_cross_entropy[_with_logits]) live in losses.py and are re-exported here.

Numerics (tested in tests/minigrad/test_numerics.py):

* softmax, log_softmax and cross_entropy shift by the row maximum, so any finite logits
  (±1e4 in float32, ±1e300 in float64) give finite values and finite gradients.
* A *masked* entry is -inf (``masked_fill(mask, float("-inf"))``). A row with at least one
  finite entry is well defined: softmax is exactly 0 on the masked entries, log_softmax is
  -inf there (log 0) and finite elsewhere, and every gradient is finite (0 on the masked
  entries). cross_entropy is finite when the target entry is not masked, +inf when it is.
* A *fully masked* row (every entry -inf) holds no distribution: softmax and log_softmax
  give NaN on it, as PyTorch does, and ``detect_anomaly()`` names the op. cross_entropy
  ignores such a row, with zero gradient, when its target is ``ignore_index`` (an ignored
  row never changes the loss or the gradients, whatever its logits).
* layer_norm is finite on constant rows (variance 0: the output is the bias).
* cross_entropy needs at least one row; when every target is ``ignore_index`` the mean is
  over no rows and the loss is NaN (as in PyTorch), with zero gradients.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from . import backend
from . import fused as FU
from . import ops as O
from .errors import ArgumentError, DTypeError, IndexRangeError, ShapeError
from .losses import (binary_cross_entropy, binary_cross_entropy_with_logits,  # noqa: F401
                     cross_entropy, l1_loss, mse_loss, nll_loss, softplus)
from .inplace import apply_inplace
from .tensor import Tensor, where


def _dim(name, x, dim):
    if not -x.ndim <= dim < max(x.ndim, 1):
        raise ShapeError(f"{name}: dim {dim} is out of range for shape {x.shape}")
    return dim % max(x.ndim, 1)


def _float_input(fn: str, name: str, x) -> None:
    if not isinstance(x, Tensor):
        raise DTypeError(f"{fn}: {name} must be a Tensor, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise DTypeError(f"{fn}: {name} must be a floating-point tensor, got dtype {x.dtype} "
                         "(convert with .float())")


def _softmax_dim(name, x, dim):
    """dim, or PyTorch's deprecated implicit choice when it is None (0 for 0-, 1- and 3-D
    inputs, else 1), with PyTorch's warning: the same answer as torch, never a silent -1."""
    if dim is None:
        dim = 0 if x.ndim in (0, 1, 3) else 1
        warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the "
                      f"call to include dim=X as an argument (dim={dim} was used).",
                      UserWarning, stacklevel=3)
    return _dim(name, x, dim)


def softmax(x: Tensor, dim=None) -> Tensor:
    """exp(x) / sum(exp(x)) along dim (give dim; None is PyTorch's implicit choice)."""
    _float_input("softmax", "input", x)
    return FU.Softmax.apply(x, axis=_softmax_dim("softmax", x, dim))


def log_softmax(x: Tensor, dim=None) -> Tensor:
    """x - logsumexp(x) along dim (give dim; None is PyTorch's implicit choice)."""
    _float_input("log_softmax", "input", x)
    return FU.LogSoftmax.apply(x, axis=_softmax_dim("log_softmax", x, dim))


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """GELU; approximate="tanh" is the form GPT-2 uses, "none" the exact x * Phi(x)."""
    _float_input("gelu", "input", x)
    if approximate == "tanh":
        return FU.GeluTanh.apply(x)
    if approximate == "none":
        return FU.GeluExact.apply(x)
    raise ArgumentError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def layer_norm(x: Tensor, normalized_shape, weight=None, bias=None, eps: float = 1e-5):
    """Normalise over the last dims (``normalized_shape``), then scale and shift."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if not shape or x.shape[len(x.shape) - len(shape):] != shape:
        raise ShapeError(f"layer_norm: normalized_shape {shape} must be the last dimensions "
                         f"of the input, got input shape {x.shape}")
    _float_input("layer_norm", "input", x)
    if len(shape) > 1:      # several dims: as one, of their product
        n = math.prod(shape)
        for name, p in (("weight", weight), ("bias", bias)):
            if p is not None and p.shape != shape:
                raise ShapeError(f"layer_norm: {name} must have shape {shape}, got {p.shape}")
        flat = layer_norm(x.reshape(x.shape[:len(x.shape) - len(shape)] + (n,)), n,
                          None if weight is None else weight.reshape(n),
                          None if bias is None else bias.reshape(n), eps)
        return flat.reshape(x.shape)
    xp = backend.get_array_module(x.array)
    if weight is None:
        weight = Tensor._make(xp.ones(shape, dtype=x.dtype), False)
    if bias is None:
        bias = Tensor._make(xp.zeros(shape, dtype=x.dtype), False)
    for name, p in (("weight", weight), ("bias", bias)):
        if p.shape != shape:
            raise ShapeError(f"layer_norm: {name} must have shape {shape}, got {p.shape}")
        if p.dtype != x.dtype:
            raise DTypeError(f"layer_norm: {name} has dtype {p.dtype} but the input has "
                             f"{x.dtype}; convert one of them (.float() / .double())")
    return FU.LayerNorm.apply(x, weight, bias, eps=eps)


def _dropout_mask(shape, p: float, dtype, device):
    """Inverted-dropout mask from the seeded RNG: 0 with probability p, else 1 / (1 - p)."""
    keep = backend.random_uniform(shape, dtype, device) >= p
    return keep.astype(dtype) * dtype.type(1.0 / (1.0 - p))


def dropout(x: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Zero each element with probability p and scale the rest by 1/(1-p) (training only)."""
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating)) or not 0 <= p <= 1:
        raise ArgumentError(f"dropout: p must be in [0, 1], got {p!r}")
    if inplace and training and p > 0:
        return apply_inplace(x, "dropout_", lambda old: dropout(old, p, training))
    if not training or p == 0:
        return x
    if p == 1:
        return x * 0
    return FU.Dropout.apply(x, mask=_dropout_mask(x.shape, p, x.dtype, x.device))


def linear(x: Tensor, weight: Tensor, bias=None) -> Tensor:
    """x @ weight.T + bias, weight of shape (out_features, in_features)."""
    if weight.ndim != 2 or x.shape[-1:] != weight.shape[1:]:
        raise ShapeError(f"linear: input of shape {x.shape} does not fit weight of shape "
                         f"{weight.shape} (expected input (..., {weight.shape[-1]}))")
    if bias is not None and bias.shape != weight.shape[:1]:
        raise ShapeError(f"linear: bias must have shape {weight.shape[:1]}, got {bias.shape}")
    _float_input("linear", "input", x)
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and p.dtype != x.dtype:
            raise DTypeError(f"linear: {name} has dtype {p.dtype} but the input has "
                             f"{x.dtype}; convert one of them (.float() / .double())")
    args = (x, weight) if bias is None else (x, weight, bias)
    return FU.Linear.apply(*args)


def embedding(idx, weight: Tensor, padding_idx=None, max_norm=None, norm_type=2.0,
              scale_grad_by_freq=False, sparse=False) -> Tensor:
    """Rows of ``weight`` picked by integer ``idx``; repeated ids add up in backward. The
    row ``padding_idx`` gets no gradient (torch's padding_idx)."""
    if max_norm is not None or scale_grad_by_freq or sparse:
        raise ArgumentError("embedding: max_norm, scale_grad_by_freq and sparse are not "
                            "supported; renormalise the weight yourself under no_grad()")
    if padding_idx is not None:
        n = weight.shape[0]
        if not -n <= padding_idx < n:
            raise IndexRangeError(f"embedding: padding_idx {padding_idx} must be within the "
                                  f"{n} rows")
        out = embedding(idx, weight)
        ids = idx.array if isinstance(idx, Tensor) else np.asarray(idx)
        pad = backend.to_device(ids == padding_idx % n, weight.device)[..., None]
        return where(pad, out.detach(), out)      # the padding row's gradient is 0
    data = idx.array if isinstance(idx, Tensor) else idx
    if not hasattr(data, "dtype"):
        data = np.asarray(data)
    if data.dtype.kind not in "iu":
        raise DTypeError(f"embedding: indices must be integers, got dtype {data.dtype}")
    if data.size and (int(data.min()) < 0 or int(data.max()) >= weight.shape[0]):
        bad = int(data.max()) if int(data.max()) >= weight.shape[0] else int(data.min())
        raise IndexRangeError(f"embedding: index {bad} is out of range for an embedding "
                              f"table of {weight.shape[0]} rows (expected 0.."
                              f"{weight.shape[0] - 1})")
    return O.GetItem.apply(weight, index=backend.to_device(data, weight.device))


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
                                 is_causal=False, scale=None, training=True, *,
                                 intermediates=None):
    """softmax(q k^T * scale + mask) @ v over the last two dims, as in torch.
    With is_causal, query i attends to keys j <= i + (Tk - Tq) (so a KV cache works).
    ``intermediates``: a dict that receives the arrays the op computes (see
    multi_head_attention; here q, k, v are the inputs and y the output)."""
    if attn_mask is not None:
        raise NotImplementedError("scaled_dot_product_attention: attn_mask is not supported; "
                                  "use is_causal=True or minigrad.composite.attention")
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise ShapeError(f"scaled_dot_product_attention: query {query.shape}, key {key.shape} "
                         f"and value {value.shape} do not fit")
    if is_causal and key.shape[-2] < query.shape[-2]:
        raise ShapeError(f"scaled_dot_product_attention: causal attention needs at least as "
                         f"many keys ({key.shape[-2]}) as queries ({query.shape[-2]})")
    _check_intermediates("scaled_dot_product_attention", intermediates)
    mask = None
    if dropout_p > 0 and training:
        mask = _dropout_mask(query.shape[:-1] + (key.shape[-2],), dropout_p, query.dtype,
                             query.device)
    return FU.Attention.apply(query, key, value, causal=is_causal, scale=scale,
                              dropout_mask=mask, intermediates=intermediates)


def multi_head_attention(qkv, n_head: int, is_causal: bool = True, dropout_p: float = 0.0,
                         training: bool = True, *, kv_cache=None, intermediates=None):
    """GPT's attention after c_attn in one fused op: qkv (B, T, 3C) -> (B, T, C), equal to
    splitting q, k, v, reshaping to (B, n_head, T, C / n_head), scaled_dot_product_attention
    and merging the heads back.

    ``kv_cache=(k, v, length)``: a KV cache, two arrays (NumPy/CuPy, qkv's dtype and device)
    of shape (B, n_head, T_max, C / n_head) holding the keys and values of positions
    0..length-1. The op writes this call's keys and values at length..length+T-1 and its
    queries (positions length..length+T-1) attend over all length+T keys. The cached keys
    are constants: the gradient reaches only this call's qkv.

    ``intermediates``: a dict that receives the arrays the op computes anyway (a Recorder's
    view of the real computation; nothing is kept when it is None):
      q, k, v   (B, n_head, T or Tk, hs): q before scaling; k, v over every key attended
                (a cache's too)
      scores    (B, n_head, T, Tk): q k^T / sqrt(hs) before the mask; keys that no query
                of a block of fused.ATTENTION_BLOCK queries may see are never scored: -inf
      mask      (T, Tk) bool: True where query i may see key j
      weights   (B, n_head, T, Tk): the softmax of the masked scores (before dropout)
      y         (B, n_head, T, hs): (dropped) weights @ v, before the heads are merged
    """
    if qkv.ndim != 3 or qkv.shape[-1] % (3 * n_head):
        raise ShapeError(f"multi_head_attention: qkv must have shape (B, T, 3 * C) with C "
                         f"divisible by n_head={n_head}, got {qkv.shape}")
    _check_intermediates("multi_head_attention", intermediates)
    B, T, _ = qkv.shape
    cache = {} if kv_cache is None else _check_kv_cache(qkv, n_head, kv_cache)
    mask = None
    if dropout_p > 0 and training:
        tk = cache.get("cache_start", 0) + T
        mask = _dropout_mask((B, n_head, T, tk), dropout_p, qkv.dtype, qkv.device)
    return FU.MultiHeadAttention.apply(qkv, n_head=n_head, causal=is_causal, dropout_mask=mask,
                                       intermediates=intermediates, **cache)


def _check_intermediates(fn: str, intermediates) -> None:
    if intermediates is not None and not isinstance(intermediates, dict):
        raise ArgumentError(f"{fn}: intermediates must be a dict to fill or None, got "
                            f"{type(intermediates).__name__}")


def _check_kv_cache(qkv, n_head: int, kv_cache) -> dict:
    """The fused op's cache arguments from (k, v, length), each checked against qkv."""
    where = "multi_head_attention: kv_cache"
    if not (isinstance(kv_cache, tuple) and len(kv_cache) == 3):
        raise ArgumentError(f"{where} must be a tuple (k, v, length), got "
                            f"{type(kv_cache).__name__}")
    k, v, length = kv_cache
    B, T, C3 = qkv.shape
    for name, buf in (("k", k), ("v", v)):
        if isinstance(buf, Tensor) or not (hasattr(buf, "shape") and hasattr(buf, "dtype")):
            raise DTypeError(f"{where}: {name} must be a NumPy or CuPy array (the cache's own "
                             f"storage, written in place), got {type(buf).__name__}")
        want = (B, n_head, None, C3 // (3 * n_head))
        if buf.ndim != 4 or any(w is not None and w != n for w, n in zip(want, buf.shape)):
            raise ShapeError(f"{where}: {name} must have shape (B, n_head, T_max, head size) "
                             f"= ({B}, {n_head}, T_max, {want[3]}), got {tuple(buf.shape)}")
        if buf.dtype != qkv.dtype or backend.device_of(buf) != qkv.device:
            raise DTypeError(f"{where}: {name} holds {buf.dtype} on {backend.device_of(buf)}, "
                             f"qkv {qkv.dtype} on {qkv.device}; make the cache like qkv")
    if k.shape != v.shape:
        raise ShapeError(f"{where}: k and v must have one shape, got {tuple(k.shape)} and "
                         f"{tuple(v.shape)}")
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) \
            or not 0 <= length <= k.shape[2] - T:
        raise ArgumentError(f"{where}: length must be an int in [0, {k.shape[2] - T}] (T_max "
                            f"{k.shape[2]} minus the {T} new positions), got {length!r}")
    return {"k_cache": k, "v_cache": v, "cache_start": int(length)}


def relu(x, inplace: bool = False):
    """max(x, 0); inplace=True writes it into x (under the in-place rules) and returns x."""
    return x.relu_() if inplace else x.relu()


def tanh(x):
    return x.tanh()


def sigmoid(x):
    return x.sigmoid()


def leaky_relu(x, negative_slope: float = 0.01, inplace: bool = False):
    """x where x > 0, else negative_slope * x (the slope's gradient at 0, as PyTorch)."""
    _float_input("leaky_relu", "input", x)
    if inplace:
        return apply_inplace(x, "leaky_relu_", lambda old: leaky_relu(old, negative_slope))
    return where(x.array > 0, x, x * negative_slope)


# torch.nn.functional's other everyday names (activations, normalize, batch_norm, one_hot,
# convolution, pooling, pad, more losses) live in these modules
from .conv import (adaptive_avg_pool2d, avg_pool1d, avg_pool2d, conv1d, conv2d,  # noqa: E402,F401
                   max_pool1d, max_pool2d, pad)
from .functional_extra import (batch_norm, cosine_similarity, elu, hardtanh,  # noqa: E402,F401
                               logsigmoid, mish, normalize, pairwise_distance, relu6, silu,
                               softsign)
from .indexing import one_hot  # noqa: E402,F401
from .losses import huber_loss, kl_div, smooth_l1_loss  # noqa: E402,F401


def __getattr__(name):
    from .missing import missing
    raise missing("functional", name)
