"""Specs (see op_specs.py) of the ops added for the everyday PyTorch API: the elementwise
maths of minigrad/elementwise.py, scatter (indexing.py), Contiguous (shape_ops.py) and
the convolution and max pooling of minigrad/conv.py. op_specs.SPECS includes these."""
from __future__ import annotations

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
from hypothesis import assume
import numpy as np

from minigrad import conv as C
from minigrad import elementwise as E
from minigrad import indexing as I
from minigrad import shape_ops as S

F64 = np.float64


def _spec(draw, call, ref):
    from op_specs import Spec
    return Spec(draw, call, ref)


def _floats(lo, hi):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, width=64)


def _arr(data, shape, elements=None):
    return data.draw(hnp.arrays(F64, shape, elements=_floats(-2, 2) if elements is None
                                else elements))


def _shape(data, min_dims=0, max_dims=3):
    return data.draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1,
                                      max_side=4))


def _unary(elements=None):
    def draw(data):
        return [_arr(data, _shape(data), elements)], {}
    return draw


# ----------------------------------------------------------------------------- elementwise
def _remainder(data):
    """a = q b with q's fractional part in [0.2, 0.8]: floor and trunc of a / b stay away
    from their jumps, where the remainder has none of its derivative. b broadcasts."""
    sa = _shape(data)
    sb = tuple(1 if data.draw(st.booleans()) else n for n in sa)[data.draw(
        st.integers(0, len(sa))):]
    b = _arr(data, sb, st.tuples(_floats(0.5, 2), st.booleans()).map(
        lambda t: t[0] if t[1] else -t[0]))
    q = _arr(data, sa, st.tuples(st.integers(-2, 2), _floats(0.2, 0.8)).map(sum))
    return [q * b, b], {"fmod": data.draw(st.booleans())}


def _ref_remainder(a, b, fmod):
    return np.fmod(a, b) if fmod else np.remainder(a, b)


def _rounded(data):
    """Values 0.1 away from the integers and the halves (the jumps of floor, ceil, trunc,
    round; sign's at 0)."""
    el = st.tuples(st.integers(-3, 3), st.one_of(_floats(0.1, 0.4), _floats(0.6, 0.9))).map(sum)
    return [_arr(data, _shape(data), el)], {"fn": data.draw(
        st.sampled_from(["sign", "floor", "ceil", "round", "trunc"]))}


def _ref_rounded(x, fn, decimals=0):
    return getattr(np, fn)(x)


# ----------------------------------------------------------------------------- scatter
def _scatter(unique):
    def draw(data):
        s = _shape(data, min_dims=1)
        axis = data.draw(st.integers(0, len(s) - 1))
        ishape = tuple(data.draw(st.integers(1, s[axis] if unique else 5)) if d == axis
                       else data.draw(st.integers(1, n)) for d, n in enumerate(s))
        if unique:      # an overwritten src entry has no derivative: no place named twice
            keys = data.draw(hnp.arrays(F64, s, elements=_floats(0, 1)))
            index = np.argsort(keys, axis=axis, kind="stable")
            index = index[tuple(slice(0, n) for n in ishape)]
        else:           # places named twice add up
            index = data.draw(hnp.arrays(np.int64, ishape, elements=st.integers(0, s[axis] - 1)))
        src_shape = tuple(n + data.draw(st.integers(0, 1)) for n in ishape)
        return [_arr(data, s), _arr(data, src_shape)], {"index": index, "axis": axis}
    return draw


def _ref_scatter(add):
    def ref(x, src, index, axis):
        out = x.copy()
        for pos in np.ndindex(*index.shape):
            target = list(pos)
            target[axis] = index[pos]
            if add:
                out[tuple(target)] += src[pos]
            else:
                out[tuple(target)] = src[pos]
        return out
    return ref


# ----------------------------------------------------------------------------- conv, pooling
def _conv2d(data):
    groups = data.draw(st.integers(1, 2))
    cg, og = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2))
    kh, kw = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    stride = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2)))
    dilation = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2)))
    padding = (data.draw(st.integers(0, 1)), data.draw(st.integers(0, 1)))
    h = data.draw(st.integers(max(1, dilation[0] * (kh - 1) + 1 - 2 * padding[0]), 5))
    w = data.draw(st.integers(max(1, dilation[1] * (kw - 1) + 1 - 2 * padding[1]), 5))
    n = data.draw(st.integers(1, 2))
    x = _arr(data, (n, cg * groups, h, w))
    weight = _arr(data, (og * groups, cg, kh, kw))
    return [x, weight], {"stride": stride, "padding": padding, "dilation": dilation,
                         "groups": groups}


def _ref_conv2d(x, w, stride, padding, dilation, groups):
    x = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    oh = (h - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    og = o // groups
    out = np.zeros((n, o, oh, ow))
    for b, oc, y, z in np.ndindex(n, o, oh, ow):
        g = oc // og
        for ci, i, j in np.ndindex(cg, kh, kw):
            out[b, oc, y, z] += x[b, g * cg + ci, y * stride[0] + i * dilation[0],
                                  z * stride[1] + j * dilation[1]] * w[oc, ci, i, j]
    return out


def _max_pool2d(data):
    kernel = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    stride = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2)))
    dilation = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2)))
    padding = tuple(data.draw(st.integers(0, k // 2)) for k in kernel)
    h = data.draw(st.integers(max(1, dilation[0] * (kernel[0] - 1) + 1 - 2 * padding[0]), 5))
    w = data.draw(st.integers(max(1, dilation[1] * (kernel[1] - 1) + 1 - 2 * padding[1]), 5))
    shape = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2)), h, w)
    # distinct values on a 0.05 grid: the maximum of each window is unique (no ties)
    x = data.draw(hnp.arrays(F64, shape, unique=True,
                             elements=st.integers(-60, 60).map(lambda i: i / 20)))
    kw = {"kernel": kernel, "stride": stride, "padding": padding, "dilation": dilation}
    # a dilated window can see only padding: its output is -inf (as torch's), where finite
    # differences are undefined
    assume(np.isfinite(_ref_max_pool2d(x, **kw)).all())
    return [x], kw


def _ref_max_pool2d(x, kernel, stride, padding, dilation):
    x = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2),
               constant_values=-np.inf)
    n, c, h, w = x.shape
    oh = (h - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1
    ow = (w - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1
    out = np.full((n, c, oh, ow), -np.inf)
    for b, ch, y, z in np.ndindex(n, c, oh, ow):
        for i, j in np.ndindex(*kernel):
            out[b, ch, y, z] = max(out[b, ch, y, z], x[b, ch, y * stride[0] + i * dilation[0],
                                                        z * stride[1] + j * dilation[1]])
    return out


def more_specs() -> dict:
    return {
        "Sin": _spec(_unary(), E.Sin.apply, np.sin),
        "Cos": _spec(_unary(), E.Cos.apply, np.cos),
        "Log1p": _spec(_unary(_floats(-0.5, 2)), E.Log1p.apply, np.log1p),
        "Expm1": _spec(_unary(), E.Expm1.apply, np.expm1),
        "Remainder": _spec(_remainder, E.Remainder.apply, _ref_remainder),
        "Rounded": _spec(_rounded, E.Rounded.apply, _ref_rounded),
        "Scatter": _spec(_scatter(True), I.Scatter.apply, _ref_scatter(False)),
        "ScatterAdd": _spec(_scatter(False), I.ScatterAdd.apply, _ref_scatter(True)),
        "Contiguous": _spec(_unary(), S.Contiguous.apply, np.ascontiguousarray),
        "Conv2d": _spec(_conv2d, C.Conv2d.apply, _ref_conv2d),
        "MaxPool2d": _spec(_max_pool2d, C.MaxPool2d.apply, _ref_max_pool2d),
    }
