"""dtypes as in PyTorch (minigrad/dtypes.py): the names, what constructors give, casts and
.to(), and type promotion (checked against a hand-written table, and against torch over
every pair of dtypes when torch is installed)."""
import itertools

import numpy as np
import pytest

import minigrad as mg
from minigrad.errors import ArgumentError, DTypeError

NAMES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64"]


def test_dtype_objects_are_numpy_dtypes_with_torch_names():
    assert mg.float32 is np.dtype("float32") and mg.float is mg.float32
    assert mg.double is mg.float64 and mg.half is mg.float16
    assert mg.long is mg.int64 and mg.int is mg.int32 and mg.short is mg.int16
    assert mg.bool == np.bool_
    t = mg.zeros(2)
    assert t.dtype == mg.float32 and t.dtype == np.float32 and t.dtype == "float32"
    assert np.zeros(2, mg.float64).dtype == np.float64           # NumPy takes them
    assert mg.zeros(2, dtype=mg.long).dtype == np.int64
    assert str(mg.float32) == "float32"
    assert mg.promote_types(mg.int64, mg.float32) is mg.float32


def test_what_constructors_give():
    assert mg.tensor([1.0, 2.0]).dtype == mg.float32
    assert mg.tensor([1, 2]).dtype == mg.int64
    assert mg.tensor([True, False]).dtype == mg.bool
    assert mg.tensor([1, 2.5]).dtype == mg.float32
    assert mg.tensor(1.5).dtype == mg.float32 and mg.tensor(3).dtype == mg.int64
    assert mg.tensor(np.array([0.5])).dtype == mg.float64      # arrays keep their dtype
    assert mg.tensor(np.array([1], dtype=np.int32)).dtype == mg.int32
    assert mg.tensor(np.float64(0.5)).dtype == mg.float64      # so do NumPy scalars
    assert mg.tensor(mg.tensor([1.0], dtype=mg.float64)).dtype == mg.float64
    assert mg.Tensor([1.0, 2.0]).dtype == mg.float32 and mg.Tensor(np.zeros(2)).dtype == \
        mg.float64
    assert mg.tensor([1, 2], dtype=mg.float64).dtype == mg.float64
    with pytest.raises(DTypeError, match="only floating-point tensors can require"):
        mg.tensor([1, 2], requires_grad=True)


def test_casts_and_to():
    x = mg.tensor([1.5, -2.5])
    assert x.float() is x and x.double().dtype == mg.float64 and x.half().dtype == mg.float16
    assert x.long().tolist() == [1, -2] and x.int().dtype == mg.int32
    assert x.bool().tolist() == [True, True]
    assert mg.tensor([1, 2]).type_as(x).dtype == mg.float32
    assert x.is_floating_point() and not mg.tensor([1]).is_floating_point()
    assert x.to(mg.float64).dtype == mg.float64 and x.to("cpu") is x
    assert x.to("cpu", mg.float64).dtype == mg.float64
    assert x.to(dtype=mg.int64, device="cpu").dtype == mg.int64
    assert x.to(mg.tensor([1], dtype=mg.int64)).dtype == mg.int64
    assert x.to(mg.float32) is x
    y = x.to(mg.float32, copy=True)
    assert y is not x and y.array is not x.array
    with pytest.raises(ArgumentError, match=r"'float64' is not a device.*mg\.float64"):
        x.to("float64")
    w = mg.tensor([1.0, 2.0], requires_grad=True)
    (w.to(mg.float64) * 3).sum().backward()         # the graph is kept through the cast
    assert w.grad.dtype == mg.float32 and w.grad.tolist() == [3.0, 3.0]


# ----------------------------------------------------------------------------- promotion
def _t(dtype, zero_dim=False):
    return mg.ones((), dtype=dtype) if zero_dim else mg.ones(2, dtype=dtype)


@pytest.mark.parametrize("a, b, want", [
    (_t(mg.float32), _t(mg.float64, True), mg.float32),     # 0-d tensors are weak
    (_t(mg.int64), _t(mg.float64, True), mg.float64),       # unless of a higher category
    (_t(mg.int32), _t(mg.int64, True), mg.int32),
    (_t(mg.bool), _t(mg.int32, True), mg.int32),
    (_t(mg.float32), _t(mg.float64), mg.float64),           # dims: the wider wins
    (_t(mg.int64), _t(mg.float32), mg.float32),             # NumPy: float64
    (_t(mg.uint8), _t(mg.int8), mg.int16),
    (_t(mg.float32, True), _t(mg.float64, True), mg.float64),
    (_t(mg.int64), 2.5, mg.float32), (_t(mg.bool), 1, mg.int64), (_t(mg.int32), 1, mg.int32),
    (_t(mg.float64), 1.5, mg.float64), (_t(mg.bool), True, mg.bool),
    (_t(mg.int64, True), 1.5, mg.float32), (_t(mg.uint8), 7, mg.uint8),
])
def test_promotion_table(a, b, want):
    assert (a + b).dtype == want and (b + a).dtype == want and (a * b).dtype == want
    assert (a == b).dtype == mg.bool


def test_true_division_pow_and_mean_of_integers():
    assert (mg.tensor([1, 2, 3]) / 2).dtype == mg.float32
    np.testing.assert_allclose((mg.tensor([1, 2, 3]) / 2).numpy(), [0.5, 1, 1.5])
    assert (2 / mg.tensor([1, 2])).dtype == mg.float32
    assert (mg.tensor([1, 2]) / mg.tensor([2, 4])).dtype == mg.float32
    assert (mg.tensor([1.0], dtype=mg.float64) / 2).dtype == mg.float64
    assert (mg.tensor([2]) ** 2).dtype == mg.int64 and (mg.tensor([2]) ** 0.5).dtype == mg.float32
    assert (2 ** mg.tensor([1, 2])).tolist() == [2, 4]
    assert (mg.tensor([True, False]).sum()).dtype == mg.int64
    with pytest.raises(DTypeError, match=r"mean\(\).*Got: int64.*\.float\(\)\.mean\(\)"):
        mg.tensor([1, 2]).mean()
    assert mg.tensor([True, False, True]).float().mean().item() == pytest.approx(2 / 3)


def test_mixed_float_gradients_come_back_in_each_inputs_dtype():
    a = mg.tensor([1.0, 2.0], requires_grad=True)
    b = mg.tensor([3.0, 4.0], dtype=mg.float64, requires_grad=True)
    out = a * b
    assert out.dtype == mg.float64
    out.sum().backward()
    assert a.grad.dtype == mg.float32 and b.grad.dtype == mg.float64
    np.testing.assert_allclose(a.grad.numpy(), [3, 4])
    np.testing.assert_allclose(b.grad.numpy(), [1, 2])
    s = mg.tensor(2.0, dtype=mg.float64, requires_grad=True)   # 0-d: a weak operand
    out = a * s
    assert out.dtype == mg.float32
    out.sum().backward()
    assert s.grad.dtype == mg.float64 and s.grad.item() == 3.0


def test_promotion_agrees_with_torch_for_every_pair():
    torch = pytest.importorskip("torch")
    ops = {"add": lambda x, y: x + y, "mul": lambda x, y: x * y, "div": lambda x, y: x / y,
           "lt": lambda x, y: x < y}

    def make(lib, name, zero):
        return lib.ones((), dtype=getattr(lib, name)) if zero else lib.ones(2, dtype=getattr(
            lib, name))

    def dtype_of(f):
        try:
            return str(f().dtype).replace("torch.", "")
        except Exception:       # noqa: BLE001  (both must refuse the same pairs)
            return "error"
    diffs = []
    for (a, b), (za, zb), (name, op) in itertools.product(
            itertools.product(NAMES, NAMES), itertools.product([False, True], repeat=2),
            ops.items()):
        ours = dtype_of(lambda: op(make(mg, a, za), make(mg, b, zb)))
        theirs = dtype_of(lambda: op(make(torch, a, za), make(torch, b, zb)))
        if ours != theirs:
            diffs.append((name, a, za, b, zb, ours, theirs))
    for a, scalar, z in itertools.product(NAMES, [True, 3, 2.5], [False, True]):
        for name, op in ops.items():
            ours = dtype_of(lambda: op(make(mg, a, z), scalar))
            theirs = dtype_of(lambda: op(make(torch, a, z), scalar))
            if ours != theirs:
                diffs.append((name, a, z, scalar, ours, theirs))
    assert not diffs, diffs[:10]
