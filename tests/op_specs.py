"""One spec per op in minigrad.OPS: how to draw its inputs, how to call it, and a
NumPy reference for its forward. test_ops.py checks every op against its spec and
fails for any registered op that has none."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np

import minigrad.functional as F
from minigrad import fused as FU
from minigrad import ops as O
from minigrad.einsum import Einsum, explicit
from minigrad.inplace import SetItem
from minigrad.tensor import _Cast, _ToDevice
from op_specs_more import more_specs

F64 = np.float64


@dataclass
class Spec:
    draw: Callable      # draw(data) -> (list of float64 input arrays, dict of constants)
    call: Callable      # call(*tensors, **consts) -> Tensor (the minigrad op)
    ref: Callable       # ref(*arrays, **consts) -> np.ndarray (independent NumPy forward)


def floats(lo, hi):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, width=64)


def away_from_zero(lo=0.1, hi=2.0):
    """Values with |x| in [lo, hi]: keeps kinks (relu, abs) out of finite differences."""
    return st.tuples(floats(lo, hi), st.booleans()).map(lambda t: t[0] if t[1] else -t[0])


def arr(data, shape, elements=None):
    return data.draw(hnp.arrays(F64, shape, elements=floats(-2, 2) if elements is None else elements))


def shapes(data, n=1, min_dims=0, max_dims=3):
    """n mutually broadcastable shapes (size-1 dims included)."""
    if n == 1:
        return (data.draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1,
                                           max_side=4)),)
    return data.draw(hnp.mutually_broadcastable_shapes(num_shapes=n, min_dims=min_dims,
                                                       max_dims=max_dims, min_side=1,
                                                       max_side=4)).input_shapes


def unary(elements=None):
    def draw(data):
        (s,) = shapes(data)
        return [arr(data, s, elements)], {}
    return draw


def binary(el_a=None, el_b=None):
    def draw(data):
        sa, sb = shapes(data, 2)
        return [arr(data, sa, el_a), arr(data, sb, el_b)], {}
    return draw


def reduction(unique=False, correction=False):
    def draw(data):
        (s,) = shapes(data, min_dims=1)
        if unique:   # ties have no derivative; a 0.1 grid with distinct values has none
            x = data.draw(hnp.arrays(F64, s, unique=True,
                                     elements=st.integers(-200, 200).map(lambda i: i / 10)))
        else:
            x = arr(data, s)
        axis = data.draw(st.one_of(st.none(), st.lists(st.integers(0, len(s) - 1), min_size=1,
                                                       max_size=len(s), unique=True).map(tuple)))
        consts = {"axis": axis, "keepdims": data.draw(st.booleans())}
        if correction:
            n = x.size if axis is None else int(np.prod([s[a] for a in axis]))
            consts["correction"] = data.draw(st.sampled_from([0, 1])) if n > 1 else 0
        return [x], consts
    return draw


def _reshape(data):
    (s,) = shapes(data)
    x = arr(data, s)
    target = data.draw(st.sampled_from([(-1,), tuple(reversed(s)), (1, x.size), (x.size, 1)]))
    return [x], {"shape": target}


def _permute(data):
    (s,) = shapes(data, min_dims=1)
    return [arr(data, s)], {"axes": tuple(data.draw(st.permutations(range(len(s)))))}


def _expand(data):
    (s,) = shapes(data)
    lead = data.draw(st.lists(st.integers(1, 3), max_size=2))
    target = tuple(lead) + tuple(data.draw(st.integers(1, 3)) if n == 1 else n for n in s)
    return [arr(data, s)], {"shape": target}


def _getitem(data):
    (s,) = shapes(data, min_dims=1)
    x = arr(data, s)
    kind = data.draw(st.sampled_from(["slice", "int", "array", "array2d"]))
    if kind == "slice":
        a = data.draw(st.integers(0, s[0] - 1))
        index = (slice(a, None, data.draw(st.integers(1, 2))),)
    elif kind == "int":
        index = data.draw(st.integers(-s[0], s[0] - 1))
    else:   # repeated indices must accumulate in backward (the embedding gradient)
        ishape = (data.draw(st.integers(1, 6)),) if kind == "array" else (2, 3)
        index = data.draw(hnp.arrays(np.int64, ishape, elements=st.integers(0, s[0] - 1)))
    return [x], {"index": index}


def _setitem(data):
    """x[index] = value: basic and advanced indices (repeated ones too: the last write
    wins), value broadcast to the indexed part (size-1 or missing leading dims)."""
    (s,) = shapes(data, min_dims=1)
    x = arr(data, s)
    kind = data.draw(st.sampled_from(["slice", "int", "mask", "array", "pair"]))
    if kind == "slice":
        index = (slice(data.draw(st.integers(0, s[0] - 1)), None, data.draw(st.integers(1, 2))),)
    elif kind == "int":
        index = (data.draw(st.integers(-s[0], s[0] - 1)),)
    elif kind == "mask":
        index = data.draw(hnp.arrays(np.bool_, s))
    elif kind == "array":
        index = data.draw(hnp.arrays(np.int64, (data.draw(st.integers(1, 5)),),
                                     elements=st.integers(0, s[0] - 1)))
    else:       # one index array per dim: the positions a view's elements have in its base
        n = data.draw(st.integers(1, 4))
        index = tuple(data.draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, d - 1)))
                      for d in s)
    target = np.empty(s)[index].shape
    drop = data.draw(st.integers(0, len(target)))
    vshape = tuple(1 if data.draw(st.booleans()) else d for d in target[drop:])
    return [x, arr(data, vshape)], {"index": index}


def _ref_setitem(x, value, index):
    out = x.copy()
    out[index] = value
    return out


def _where(data):
    sa, sb, sc = shapes(data, 3)
    cond = data.draw(hnp.arrays(np.bool_, sc))
    return [arr(data, sa), arr(data, sb)], {"condition": cond}


def _cat(data):
    (s,) = shapes(data, min_dims=1)
    axis = data.draw(st.integers(0, len(s) - 1))
    parts = []
    for _ in range(data.draw(st.integers(1, 3))):
        shape = list(s)
        shape[axis] = data.draw(st.integers(1, 3))
        parts.append(arr(data, tuple(shape)))
    return parts, {"axis": axis}


def _matmul(data):
    b1, b2 = shapes(data, 2, max_dims=2)
    n, k, m = (data.draw(st.integers(1, 4)) for _ in range(3))
    return [arr(data, b1 + (n, k)), arr(data, b2 + (k, m))], {}


def _clip(data):
    (s,) = shapes(data)
    # values kept 0.05 away from the bounds -0.5 and 0.5, where clip has a kink
    el = st.one_of(floats(-2, -0.55), floats(-0.45, 0.45), floats(0.55, 2))
    lo, hi = data.draw(st.sampled_from([(-0.5, 0.5), (None, 0.5), (-0.5, None)]))
    return [arr(data, s, el)], {"lo": lo, "hi": hi}


def _maximum(data):
    sa, sb = shapes(data, 2)
    grid = st.integers(-20, 20).map(lambda i: i / 10)
    a = arr(data, sa, grid)
    b = arr(data, sb, grid) + 0.05     # never equal to a: ties have no derivative
    return [a, b], {}


def _pow_scalar(data):
    (s,) = shapes(data)
    return [arr(data, s, floats(0.5, 2))], {"exponent": data.draw(
        st.sampled_from([2, 3, -1, 0.5, 1.5, -2.5]))}


def _softmax_like(data):
    (s,) = shapes(data, min_dims=1)
    return [arr(data, s, floats(-5, 5))], {"axis": data.draw(st.integers(0, len(s) - 1))}


def _cross_entropy(data):
    n, c = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 5))
    targets = data.draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, c - 1)))
    if n > 1 and data.draw(st.booleans()):
        targets[data.draw(st.integers(0, n - 1))] = -100     # one ignored row
    return [arr(data, (n, c), floats(-5, 5))], {"targets": targets, "ignore_index": -100}


def _ref_cross_entropy(z, targets, ignore_index):
    keep = targets != ignore_index
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return np.array(-logp[np.arange(len(z))[keep], targets[keep]].mean())


def _layer_norm(data):
    (s,) = shapes(data, min_dims=1)
    c = s[-1] if s[-1] > 1 else 2
    s = s[:-1] + (c,)
    return [arr(data, s), arr(data, (c,)), arr(data, (c,))], {"eps": 1e-5}


def _ref_layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(x.var(-1, keepdims=True) + eps) * w + b


def _dropout(data):
    (s,) = shapes(data)
    keep = data.draw(hnp.arrays(np.bool_, s))
    return [arr(data, s)], {"mask": keep / 0.75}


def _linear(data):
    (lead,) = shapes(data, max_dims=2)
    i, o = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    ins = [arr(data, lead + (i,)), arr(data, (o, i))]
    if data.draw(st.booleans()):
        ins.append(arr(data, (o,)))
    return ins, {}


def _ref_linear(x, w, b=None):
    return x @ w.T + (0 if b is None else b)


def _attention(data):
    (batch,) = shapes(data, max_dims=2)
    tk = data.draw(st.integers(1, 4))
    tq = data.draw(st.integers(1, tk))
    hs, hv = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    consts = {"causal": data.draw(st.booleans()), "scale": None, "dropout_mask": None}
    if data.draw(st.booleans()):
        consts["dropout_mask"] = data.draw(hnp.arrays(np.bool_, batch + (tq, tk))) / 0.5
    return [arr(data, batch + (tq, hs)), arr(data, batch + (tk, hs)),
            arr(data, batch + (tk, hv))], consts


def _ref_attention(q, k, v, causal, scale, dropout_mask):
    s = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
    tq, tk = s.shape[-2:]
    if causal:
        i, j = np.indices((tq, tk))
        s = np.where(j <= i + tk - tq, s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p = p / p.sum(-1, keepdims=True)
    if dropout_mask is not None:
        p = p * dropout_mask
    return p @ v


def _mha(data):
    B, T, nh, hs = (data.draw(st.integers(1, 3)) for _ in range(4))
    consts = {"n_head": nh, "causal": data.draw(st.booleans()), "dropout_mask": None}
    past = 0
    if data.draw(st.booleans()):   # a KV cache holding `past` positions (constants)
        past = data.draw(st.integers(0, 3))
        t_max = past + T + data.draw(st.integers(0, 2))
        consts.update(k_cache=arr(data, (B, nh, t_max, hs)), v_cache=arr(data, (B, nh, t_max, hs)),
                      cache_start=past)
    if data.draw(st.booleans()):
        consts["dropout_mask"] = data.draw(hnp.arrays(np.bool_, (B, nh, T, past + T))) / 0.5
    return [arr(data, (B, T, 3 * nh * hs))], consts


def _ref_mha(qkv, n_head, causal, dropout_mask, k_cache=None, v_cache=None, cache_start=0):
    B, T, C3 = qkv.shape
    q, k, v = (a.reshape(B, T, n_head, -1).transpose(0, 2, 1, 3) for a in np.split(qkv, 3, -1))
    if k_cache is not None:   # the cached positions come first
        k = np.concatenate([k_cache[:, :, :cache_start], k], axis=2)
        v = np.concatenate([v_cache[:, :, :cache_start], v], axis=2)
    y = _ref_attention(q, k, v, causal, None, dropout_mask)
    return y.transpose(0, 2, 1, 3).reshape(B, T, C3 // 3)


_erf = np.vectorize(math.erf)


def _reduce_ref(fn):
    return lambda x, axis, keepdims: np.asarray(fn(x, axis=axis, keepdims=keepdims))


def _var_ref(x, axis, keepdims, correction):
    return np.asarray(np.var(x, axis=axis, keepdims=keepdims, ddof=correction))


# ----------------------------------------------------------------------------- issue 16 ops
def _gather(data):
    (s,) = shapes(data, min_dims=1)
    axis = data.draw(st.integers(0, len(s) - 1))
    # index no larger than x outside axis, any length along it; repeats must add up
    ishape = tuple(data.draw(st.integers(1, 5)) if d == axis else data.draw(st.integers(1, n))
                   for d, n in enumerate(s))
    index = data.draw(hnp.arrays(np.int64, ishape, elements=st.integers(0, s[axis] - 1)))
    return [arr(data, s)], {"index": index, "axis": axis}


def _ref_gather(x, index, axis):
    region = tuple(slice(None) if d == axis else slice(0, n) for d, n in enumerate(index.shape))
    return np.take_along_axis(x[region], index, axis)


def _one_axis(data, min_dims=1):
    (s,) = shapes(data, min_dims=min_dims)
    return s, data.draw(st.integers(0, len(s) - 1))


def _cumsum(data):
    s, axis = _one_axis(data)
    return [arr(data, s)], {"axis": axis}


def _prod(data):
    s, axis = _one_axis(data)
    # zeros included: the gradient must stay exact where another element is 0
    el = st.one_of(floats(-2, 2), st.just(0.0))
    return [arr(data, s, el)], {"axis": data.draw(st.sampled_from([None, axis])),
                                "keepdims": data.draw(st.booleans())}


def _norm(data):
    (s,) = shapes(data, min_dims=1)
    p = data.draw(st.sampled_from([2, 1, 3, 0.5, 1.5]))
    # |x| >= 0.1 keeps the kinks of |x| (p = 1) and of |x|^p (p < 1) out of finite differences
    x = arr(data, s, away_from_zero(0.1, 2))
    axis = data.draw(st.one_of(st.none(), st.lists(st.integers(0, len(s) - 1), min_size=1,
                                                   max_size=len(s), unique=True).map(tuple)))
    return [x], {"p": p, "axis": axis, "keepdims": data.draw(st.booleans())}


def _ref_norm(x, p, axis, keepdims):
    return np.asarray((np.abs(x) ** p).sum(axis=axis, keepdims=keepdims) ** (1 / p))


def _bce(data):
    sa, sb = shapes(data, 2)
    return [arr(data, sa, floats(0.05, 0.95)), arr(data, sb, floats(0, 1))], {}


def _ref_bce(x, t):
    return -(t * np.log(x) + (1 - t) * np.log(1 - x))


_EINSUMS = ["ij,jk->ik", "bij,bjk->bik", "ij->ji", "ii->", "ii->i", "i,j->ij", "ij->i",
            "ij,ij->", "...ij,...jk->...ik", "bhtd,bhsd->bhts", "ij,jk", "i,i", "iij->j",
            "ij,j->i", "...i->..."]


def _einsum(data):
    eq = data.draw(st.sampled_from(_EINSUMS))
    size = {ch: data.draw(st.integers(1, 3)) for ch in "bhijkstd"}
    batch = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3))
    terms = eq.split("->")[0].split(",")
    arrays = []
    for n, term in enumerate(terms):   # '...' dims: broadcastable between the operands
        lead = batch.input_shapes[n] if "..." in term else ()
        arrays.append(arr(data, lead + tuple(size[ch] for ch in term.replace("...", ""))))
    inputs, output, sizes = explicit(eq, [a.shape for a in arrays])
    return arrays, {"inputs": tuple(inputs), "output": output, "sizes": sizes}


def _ref_einsum(*arrays, inputs, output, sizes):
    return np.asarray(np.einsum(",".join(inputs) + "->" + output, *arrays))


SPECS = {
    "Add": Spec(binary(), O.Add.apply, np.add),
    "Sub": Spec(binary(), O.Sub.apply, np.subtract),
    "Mul": Spec(binary(), O.Mul.apply, np.multiply),
    "Div": Spec(binary(el_b=away_from_zero(0.5, 2)), O.Div.apply, np.divide),
    "Pow": Spec(binary(floats(0.5, 2), floats(-2, 2)), O.Pow.apply, np.power),
    "Maximum": Spec(_maximum, O.Maximum.apply, np.maximum),
    "PowScalar": Spec(_pow_scalar, O.PowScalar.apply, lambda x, exponent: x ** exponent),
    "Neg": Spec(unary(), O.Neg.apply, np.negative),
    "Exp": Spec(unary(), O.Exp.apply, np.exp),
    "Log": Spec(unary(floats(0.1, 3)), O.Log.apply, np.log),
    "Sqrt": Spec(unary(floats(0.1, 3)), O.Sqrt.apply, np.sqrt),
    "Tanh": Spec(unary(), O.Tanh.apply, np.tanh),
    "Erf": Spec(unary(), O.Erf.apply, _erf),
    "Sigmoid": Spec(unary(floats(-6, 6)), O.Sigmoid.apply, lambda x: 1 / (1 + np.exp(-x))),
    "Relu": Spec(unary(away_from_zero()), O.Relu.apply, lambda x: np.maximum(x, 0)),
    "Abs": Spec(unary(away_from_zero()), O.Abs.apply, np.abs),
    "Clip": Spec(_clip, O.Clip.apply, lambda x, lo, hi: np.clip(x, lo, hi)),
    "Sum": Spec(reduction(), O.Sum.apply, _reduce_ref(np.sum)),
    "Mean": Spec(reduction(), O.Mean.apply, _reduce_ref(np.mean)),
    "Max": Spec(reduction(unique=True), O.Max.apply, _reduce_ref(np.max)),
    "Min": Spec(reduction(unique=True), O.Min.apply, _reduce_ref(np.min)),
    "Var": Spec(reduction(correction=True), O.Var.apply, _var_ref),
    "Reshape": Spec(_reshape, O.Reshape.apply, lambda x, shape: x.reshape(shape)),
    "Permute": Spec(_permute, O.Permute.apply, lambda x, axes: x.transpose(axes)),
    "Expand": Spec(_expand, O.Expand.apply, lambda x, shape: np.broadcast_to(x, shape)),
    "GetItem": Spec(_getitem, O.GetItem.apply, lambda x, index: x[index]),
    "SetItem": Spec(_setitem, SetItem.apply, _ref_setitem),
    "Where": Spec(_where, O.Where.apply, lambda a, b, condition: np.where(condition, a, b)),
    "Cat": Spec(_cat, O.Cat.apply, lambda *xs, axis: np.concatenate(xs, axis=axis)),
    "MatMul": Spec(_matmul, O.MatMul.apply, np.matmul),
    "_Cast": Spec(lambda d: (unary()(d)[0], {"dtype": np.float64}), _Cast.apply,
                  lambda x, dtype: x.astype(dtype)),
    "_ToDevice": Spec(lambda d: (unary()(d)[0], {"device": "cpu"}), _ToDevice.apply,
                      lambda x, device: x),
    "Softmax": Spec(_softmax_like, FU.Softmax.apply,
                    lambda x, axis: np.exp(x) / np.exp(x).sum(axis, keepdims=True)),
    "LogSoftmax": Spec(_softmax_like, FU.LogSoftmax.apply,
                       lambda x, axis: x - np.log(np.exp(x).sum(axis, keepdims=True))),
    "CrossEntropy": Spec(_cross_entropy, FU.CrossEntropy.apply, _ref_cross_entropy),
    "LayerNorm": Spec(_layer_norm, FU.LayerNorm.apply, _ref_layer_norm),
    "GeluTanh": Spec(unary(floats(-4, 4)), FU.GeluTanh.apply, lambda x: 0.5 * x * (
        1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))),
    "GeluExact": Spec(unary(floats(-4, 4)), FU.GeluExact.apply,
                      lambda x: x * 0.5 * (1 + _erf(x / math.sqrt(2)))),
    "Dropout": Spec(_dropout, FU.Dropout.apply, lambda x, mask: x * mask),
    "Linear": Spec(_linear, FU.Linear.apply, _ref_linear),
    "Attention": Spec(_attention, FU.Attention.apply, _ref_attention),
    "MultiHeadAttention": Spec(_mha, FU.MultiHeadAttention.apply, _ref_mha),
    # issue 16
    "Gather": Spec(_gather, O.Gather.apply, _ref_gather),
    "CumSum": Spec(_cumsum, O.CumSum.apply, lambda x, axis: np.cumsum(x, axis=axis)),
    "Prod": Spec(_prod, O.Prod.apply,
                 lambda x, axis, keepdims: np.asarray(np.prod(x, axis=axis, keepdims=keepdims))),
    "Norm": Spec(_norm, O.Norm.apply, _ref_norm),
    "Std": Spec(reduction(unique=True, correction=True), O.Std.apply,   # (no flat slice: kink)
                lambda x, axis, keepdims, correction: np.asarray(
                    np.std(x, axis=axis, keepdims=keepdims, ddof=correction))),
    "Softplus": Spec(unary(floats(-30, 30)), O.Softplus.apply, lambda x: np.log1p(np.exp(x))),
    "BinaryCrossEntropy": Spec(_bce, O.BinaryCrossEntropy.apply, _ref_bce),
    "Einsum": Spec(_einsum, Einsum.apply, _ref_einsum),
}
SPECS.update(more_specs())      # the ops of the everyday PyTorch API (op_specs_more.py)

# Composite (primitive-built) functions compared with their fused twins.
COMPOSITES = ["softmax", "log_softmax", "cross_entropy", "gelu", "gelu_tanh", "layer_norm",
              "linear", "attention"]
_ = F  # the functional module is exercised in test_functional.py
