"""Losses with torch.nn.functional's names, arguments and layouts (minigrad.functional
re-exports them): cross_entropy, nll_loss, mse_loss, l1_loss, binary_cross_entropy,
binary_cross_entropy_with_logits. ``reduction`` is 'mean' (default), 'sum' or 'none'.

Class layout, as in PyTorch: the input is (C,), (N, C) or (N, C, d1, d2, ...) with the
classes in dim 1, and integer targets are (), (N,) or (N, d1, d2, ...). A GPT's logits
(B, T, V) with targets (B, T) are therefore written ``cross_entropy(logits.view(-1, V),
targets.view(-1))``, as nanoGPT does. cross_entropy also takes class probabilities as
targets (a float tensor of the input's shape).

The common case (integer targets, mean, no weight, no label smoothing) is one fused op
(fused.CrossEntropy); the others are composed from log_softmax and indexing. Either way a
row whose target is ``ignore_index`` never changes the loss or the gradients, whatever its
logits (even -inf or NaN).
"""
from __future__ import annotations

import numbers
import warnings

import numpy as np

from . import backend
from . import fused as FU
from . import ops as O
from .errors import ArgumentError, DTypeError, IndexRangeError, ShapeError
from .tensor import Tensor, where

REDUCTIONS = ("mean", "sum", "none")


def _float_input(fn: str, name: str, x) -> None:
    if not isinstance(x, Tensor):
        raise DTypeError(f"{fn}: {name} must be a Tensor, got {type(x).__name__}")
    if x.array.dtype.kind != "f":
        raise DTypeError(f"{fn}: {name} must be a floating-point tensor, got dtype "
                         f"{x.array.dtype} (convert with .float())")


def _check_reduction(fn: str, reduction) -> None:
    if reduction not in REDUCTIONS:
        raise ArgumentError(f"{fn}: reduction must be 'mean', 'sum' or 'none', got "
                            f"{reduction!r}")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss


def _array(target, device):
    t = target.array if isinstance(target, Tensor) else target
    if not hasattr(t, "dtype"):
        t = np.asarray(t)
    return backend.to_device(t, device)


def _as_tensor(fn: str, name: str, value, like: Tensor) -> Tensor:
    """A float tensor of ``like``'s dtype from a tensor, array or number (no gradient unless
    it is a tensor that has one)."""
    if isinstance(value, Tensor):
        if value.array.dtype != like.array.dtype:
            if value.array.dtype.kind != "f" or like.array.dtype.kind != "f":
                value = Tensor._make(value.array.astype(like.array.dtype), False)
            else:
                raise DTypeError(f"{fn}: {name} has dtype {value.array.dtype} but the input "
                                 f"has {like.array.dtype}; convert one of them (.float() / "
                                 f".double())")
        return value
    return Tensor._make(_array(value, like.device).astype(like.array.dtype), False)


# ----------------------------------------------------------------------------- class layout


def _classes_last(fn: str, x: Tensor):
    """(x as (M, C) with the classes last, the batch shape (targets' shape))."""
    if x.ndim == 0:
        raise ShapeError(f"{fn}: input must have a class dimension: (C,), (N, C) or "
                         f"(N, C, d1, ...), got a 0-d tensor")
    if x.ndim == 1:
        return x.reshape(1, x.shape[0]), ()
    if x.ndim == 2:
        return x, x.shape[:1]
    c = x.shape[1]
    moved = x.permute(0, *range(2, x.ndim), 1)          # (N, d1, ..., C)
    return moved.reshape(-1, c), (x.shape[0],) + x.shape[2:]


def _class_targets(fn: str, x: Tensor, t, batch, ignore_index):
    """Integer targets checked against the layout and the number of classes, flat (M,)."""
    if t.dtype != np.int64 and t.dtype != np.uint8:     # torch's rule: Long or Byte
        raise DTypeError(f"{fn}: expected target dtype to be int64 (long) or uint8, got "
                         f"{t.dtype}; convert the class indices: target.long()")
    n_classes = x.shape[0] if x.ndim == 1 else x.shape[1]
    if tuple(t.shape) != batch:
        hint = ""
        if x.ndim >= 3 and tuple(t.shape) == x.shape[:-1]:
            hint = (f"; the classes are dim 1 as in PyTorch, so for logits (..., C) with "
                    f"targets (...) write {fn}(logits.view(-1, {x.shape[-1]}), "
                    f"targets.view(-1))")
        raise ShapeError(f"{fn}: targets of shape {tuple(t.shape)} do not match "
                         f"{'logits' if fn == 'cross_entropy' else 'input'} of "
                         f"shape {x.shape}; expected targets of shape {batch} (input (N, C) "
                         f"or (N, C, d1, ...), targets (N,) or (N, d1, ...)){hint}")
    if x.array.size == 0:
        raise ShapeError(f"{fn}: input must hold at least one row and one class, got shape "
                         f"{x.shape} (an empty batch has no mean loss)")
    t = t.reshape(-1)
    ignored = t == ignore_index
    bad = ~ignored & ((t < 0) | (t >= n_classes))
    if bool(bad.any()):
        raise IndexRangeError(f"{fn}: target {int(t[bad].ravel()[0])} is out of range for "
                              f"{n_classes} classes (expected 0..{n_classes - 1} or "
                              f"ignore_index={ignore_index})")
    return t, ignored


def _nll(logp: Tensor, t, ignored, weight, reduction: str, batch, smoothing: float = 0.0):
    """PyTorch's nll_loss (with cross_entropy's label smoothing) on log-probabilities
    (M, C) and flat targets: -w[t] logp[t] per row, 0 on ignored rows; 'mean' divides by
    the sum of the kept rows' weights."""
    xp = backend.get_array_module(logp.array)
    m, c = logp.shape
    keep = ~ignored
    safe_t = xp.where(keep, t, 0)
    w_rows = keep.astype(logp.array.dtype)
    if weight is not None:
        w_rows = w_rows * weight.array[safe_t]
    kept = Tensor._make(w_rows, False)
    loss = -logp[xp.arange(m), safe_t] * kept                          # (M,)
    if smoothing:
        per_class = logp if weight is None else logp * weight
        smooth = -per_class.sum(1) * Tensor._make(keep.astype(logp.array.dtype), False)
        loss = loss * (1 - smoothing) + smooth * (smoothing / c)
    if reduction == "none":
        return loss.reshape(batch)
    total = loss.sum()
    return total / kept.sum() if reduction == "mean" else total


def _class_weight(fn: str, weight, x: Tensor, n_classes: int):
    if weight is None:
        return None
    w = _as_tensor(fn, "weight", weight, x)
    if w.shape != (n_classes,):
        raise ShapeError(f"{fn}: weight must have one entry per class, shape ({n_classes},), "
                         f"got {w.shape}")
    return w.detach()


def cross_entropy(input: Tensor, target, weight=None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """-log softmax(input)[target], averaged over the kept rows (reduction='mean').

    input (C,), (N, C) or (N, C, d1, ...) (classes in dim 1, as in PyTorch); target integer
    class indices (), (N,) or (N, d1, ...), or class probabilities of the input's shape.
    ``weight`` (C,) rescales each class; rows with target ``ignore_index`` are left out;
    ``label_smoothing`` mixes the target with the uniform distribution."""
    fn = "cross_entropy"
    _float_input(fn, "input", input)
    _check_reduction(fn, reduction)
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, numbers.Real) \
            or not 0.0 <= label_smoothing <= 1.0:
        raise ArgumentError(f"{fn}: label_smoothing must be in [0, 1], got {label_smoothing!r}")
    t = _array(target, input.device)
    flat, batch = _classes_last(fn, input)
    w = _class_weight(fn, weight, input, flat.shape[1])
    if t.dtype.kind == "f":
        return _cross_entropy_probabilities(input, target, t, flat, batch, w, reduction,
                                            label_smoothing)
    if t.dtype.kind not in "iu":
        raise DTypeError(f"{fn}: targets must be integer class indices, got dtype {t.dtype}")
    t, ignored = _class_targets(fn, input, t, batch, ignore_index)
    if bool(ignored.any()):   # an ignored row's logits (even -inf or NaN) must not leak in
        flat = flat.masked_fill(ignored.reshape(-1, 1), 0.0)
    if w is None and not label_smoothing and reduction == "mean":
        return FU.CrossEntropy.apply(flat, targets=t, ignore_index=ignore_index)
    logp = FU.LogSoftmax.apply(flat, axis=1)
    return _nll(logp, t, ignored, w, reduction, batch, float(label_smoothing))


def _cross_entropy_probabilities(input, target, t, flat, batch, w, reduction, smoothing):
    fn = "cross_entropy"
    if tuple(t.shape) != input.shape:
        raise DTypeError(f"{fn}: targets must be integer class indices, got dtype {t.dtype} "
                         f"of shape {tuple(t.shape)} (float targets are class probabilities "
                         f"and need the logits' shape {input.shape})")
    probs = _as_tensor(fn, "target", target, input)
    p_flat, _ = _classes_last(fn, probs)
    c = flat.shape[1]
    if smoothing:
        p_flat = p_flat * (1 - smoothing) + smoothing / c
    logp = FU.LogSoftmax.apply(flat, axis=1)
    per_class = logp * p_flat if w is None else logp * p_flat * w
    loss = -per_class.sum(1)                                            # (M,)
    return loss.reshape(batch) if reduction == "none" else _reduce(loss, reduction)


def nll_loss(input: Tensor, target, weight=None, ignore_index: int = -100,
             reduction: str = "mean") -> Tensor:
    """-input[target] for log-probabilities ``input`` (C,), (N, C) or (N, C, d1, ...), with
    cross_entropy's targets, weight, ignore_index and reduction; so
    ``nll_loss(log_softmax(z, 1), t) == cross_entropy(z, t)``."""
    fn = "nll_loss"
    _float_input(fn, "input", input)
    _check_reduction(fn, reduction)
    t = _array(target, input.device)
    if t.dtype.kind not in "iu":
        raise DTypeError(f"{fn}: targets must be integer class indices, got dtype {t.dtype}")
    flat, batch = _classes_last(fn, input)
    w = _class_weight(fn, weight, input, flat.shape[1])
    t, ignored = _class_targets(fn, input, t, batch, ignore_index)
    if bool(ignored.any()):
        flat = flat.masked_fill(ignored.reshape(-1, 1), 0.0)
    return _nll(flat, t, ignored, w, reduction, batch)


# ----------------------------------------------------------------------------- regression


def _pair(fn: str, input, target):
    """input and target as float tensors; different shapes broadcast, with PyTorch's warning."""
    _float_input(fn, "input", input)
    target = _as_tensor(fn, "target", target, input)
    if target.shape != input.shape:
        try:
            np.broadcast_shapes(input.shape, target.shape)
        except ValueError:
            raise ShapeError(f"{fn}: input of shape {input.shape} and target of shape "
                             f"{target.shape} cannot be broadcast together") from None
        warnings.warn(f"{fn}: target size {target.shape} differs from input size "
                      f"{input.shape}; they are broadcast, which is likely not what you "
                      f"want (make the shapes equal)", UserWarning, stacklevel=3)
    return input, target


def mse_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:
    """(input - target)^2, averaged (or summed, or per element)."""
    _check_reduction("mse_loss", reduction)
    input, target = _pair("mse_loss", input, target)
    diff = input - target
    return _reduce(diff * diff, reduction)


def l1_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:
    """|input - target|, averaged (or summed, or per element)."""
    _check_reduction("l1_loss", reduction)
    input, target = _pair("l1_loss", input, target)
    return _reduce((input - target).abs(), reduction)


def smooth_l1_loss(input: Tensor, target, reduction: str = "mean", beta: float = 1.0):
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (d = input - target)."""
    _check_reduction("smooth_l1_loss", reduction)
    input, target = _pair("smooth_l1_loss", input, target)
    d = (input - target).abs()
    if beta == 0:
        return _reduce(d, reduction)
    return _reduce(where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta), reduction)


def huber_loss(input: Tensor, target, reduction: str = "mean", delta: float = 1.0):
    """0.5 d^2 where |d| <= delta, else delta (|d| - 0.5 delta): smooth_l1_loss * delta."""
    _check_reduction("huber_loss", reduction)
    input, target = _pair("huber_loss", input, target)
    d = (input - target).abs()
    return _reduce(where(d <= delta, 0.5 * d * d, delta * (d - 0.5 * delta)), reduction)


def kl_div(input: Tensor, target, reduction: str = "mean", log_target: bool = False):
    """KL(target || q) pointwise, with ``input`` = log q: target (log target - input), 0
    where target is 0 (log_target=True: target is given as log probabilities).
    reduction='batchmean' divides the sum by the batch size (the true KL divergence);
    'mean', as in torch, divides by the number of elements."""
    fn = "kl_div"
    if reduction not in REDUCTIONS + ("batchmean",):
        raise ArgumentError(f"{fn}: reduction must be 'batchmean', 'mean', 'sum' or 'none', "
                            f"got {reduction!r}")
    _float_input(fn, "input", input)
    target = _as_tensor(fn, "target", target, input)
    if log_target:
        loss = target.exp() * (target - input)
    else:
        positive = target > 0
        safe = where(positive, target, 1.0)               # log(1) = 0 where target is 0
        loss = where(positive, target * (safe.log() - input), 0.0)
    if reduction == "batchmean":
        return loss.sum() / (input.shape[0] if input.ndim else 1)
    return _reduce(loss, reduction)


# ----------------------------------------------------------------------------- binary


def _binary_pair(fn: str, input, target, weight):
    _float_input(fn, "input", input)
    if isinstance(target, Tensor) and target.array.dtype.kind != "f":
        raise DTypeError(f"{fn}: target must be a floating-point tensor (probabilities), "
                         f"got dtype {target.dtype}; convert it: target.float()")
    target = _as_tensor(fn, "target", target, input)
    if target.shape != input.shape:
        raise ShapeError(f"{fn}: target of shape {target.shape} must have the input's shape "
                         f"{input.shape}")
    if weight is not None:
        weight = _as_tensor(fn, "weight", weight, input)
        try:
            np.broadcast_shapes(weight.shape, input.shape)
        except ValueError:
            raise ShapeError(f"{fn}: weight of shape {weight.shape} does not broadcast with "
                             f"the input's shape {input.shape}") from None
    return target, weight


def binary_cross_entropy(input: Tensor, target, weight=None, reduction: str = "mean"):
    """-(t log p + (1 - t) log(1 - p)) for probabilities ``input`` in [0, 1] (each log
    clamped at -100, as PyTorch); for logits use binary_cross_entropy_with_logits."""
    fn = "binary_cross_entropy"
    _check_reduction(fn, reduction)
    target, weight = _binary_pair(fn, input, target, weight)
    x = input.array
    if x.size and bool(((x < 0) | (x > 1) | (x != x)).any()):
        raise ArgumentError(f"{fn}: every input element must be a probability in [0, 1], got "
                            f"values from {float(x.min())} to {float(x.max())}; for logits "
                            f"use binary_cross_entropy_with_logits")
    loss = O.BinaryCrossEntropy.apply(input, target)
    return _reduce(loss if weight is None else loss * weight, reduction)


def binary_cross_entropy_with_logits(input: Tensor, target, weight=None,
                                     reduction: str = "mean", pos_weight=None) -> Tensor:
    """binary_cross_entropy(sigmoid(input), target) computed stably from the logits:
    (1 - t) x + (1 + (pos_weight - 1) t) softplus(-x), finite for any finite x.
    ``pos_weight`` (broadcast over the last dim) weights the positive term."""
    fn = "binary_cross_entropy_with_logits"
    _check_reduction(fn, reduction)
    target, weight = _binary_pair(fn, input, target, weight)
    softplus_neg = O.Softplus.apply(-input)                 # -log sigmoid(x)
    if pos_weight is None:
        loss = (1 - target) * input + softplus_neg
    else:
        pos_weight = _as_tensor(fn, "pos_weight", pos_weight, input)
        loss = (1 - target) * input + (1 + (pos_weight - 1) * target) * softplus_neg
    return _reduce(loss if weight is None else loss * weight, reduction)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta x)) / beta, computed without overflow (the threshold PyTorch uses
    to switch to x is not needed: the exact value is computed everywhere)."""
    _float_input("softplus", "input", input)
    if beta == 1:
        return O.Softplus.apply(input)
    return O.Softplus.apply(input * beta) / beta
