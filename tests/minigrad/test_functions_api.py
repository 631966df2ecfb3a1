"""The everyday API a PyTorch user reaches for (issue 16, item 6): module-level functions,
einsum, constructors, multinomial, and Tensor's shape/selection methods; each against
NumPy, a closed form or finite differences."""
import configparser
import math
from pathlib import Path

import numpy as np
import pytest

import minigrad as mg
from minigrad.errors import ArgumentError, DTypeError, IndexRangeError, ShapeError

RNG = np.random.default_rng(1)


def t64(a, grad=False):
    return mg.tensor(np.asarray(a, dtype=np.float64), dtype="float64", requires_grad=grad)


# ----------------------------------------------------------------------------- functions
def test_module_level_elementwise_and_softmax_match_numpy():
    x = RNG.standard_normal((3, 4))
    t = t64(x)
    for fn, ref in ((mg.exp, np.exp), (mg.tanh, np.tanh), (mg.abs, np.abs),
                    (mg.relu, lambda a: np.maximum(a, 0)), (mg.square, np.square),
                    (mg.sigmoid, lambda a: 1 / (1 + np.exp(-a)))):
        np.testing.assert_allclose(fn(t).numpy(), ref(x), rtol=1e-12)
    np.testing.assert_allclose(mg.log(mg.abs(t)).numpy(), np.log(np.abs(x)))
    np.testing.assert_allclose(mg.sqrt(mg.abs(t)).numpy(), np.sqrt(np.abs(x)))
    np.testing.assert_allclose(mg.clamp(t, -0.5, 0.5).numpy(), np.clip(x, -0.5, 0.5))
    np.testing.assert_allclose(mg.pow(t, 3).numpy(), x ** 3)
    soft = np.exp(x) / np.exp(x).sum(0, keepdims=True)
    np.testing.assert_allclose(mg.softmax(t, 0).numpy(), soft)
    np.testing.assert_allclose(mg.log_softmax(t, dim=0).numpy(), np.log(soft))
    np.testing.assert_allclose(t.softmax(0).numpy(), soft)
    np.testing.assert_allclose(t.log_softmax(-2).numpy(), np.log(soft))
    np.testing.assert_allclose(mg.sum(t, 1).numpy(), x.sum(1))
    np.testing.assert_allclose(mg.mean(t, (0, 1), keepdim=True).numpy(), x.mean(keepdims=True))
    assert mg.numel(t) == 12 and t.numel() == 12 and t.nelement() == 12


def test_softmax_without_dim_is_torchs_implicit_choice_with_a_warning():
    x = RNG.standard_normal((2, 3, 4))
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        out = mg.functional.softmax(t64(x))        # 3-D: dim 0, as torch (not -1)
    np.testing.assert_allclose(out.numpy(), np.exp(x) / np.exp(x).sum(0, keepdims=True))
    with pytest.raises(TypeError):
        t64(x).softmax()                            # the method needs dim, as in torch


def test_products_match_numpy():
    a, b = RNG.standard_normal((2, 3, 4)), RNG.standard_normal((2, 4, 5))
    np.testing.assert_allclose(mg.matmul(t64(a), t64(b)).numpy(), a @ b)
    np.testing.assert_allclose(mg.bmm(t64(a), t64(b)).numpy(), a @ b)
    np.testing.assert_allclose(mg.mm(t64(a[0]), t64(b[0])).numpy(), a[0] @ b[0])
    u, v = RNG.standard_normal(3), RNG.standard_normal(4)
    np.testing.assert_allclose(mg.outer(t64(u), t64(v)).numpy(), np.outer(u, v))
    np.testing.assert_allclose(mg.dot(t64(u), t64(u)).numpy(), u @ u)
    with pytest.raises(ShapeError, match="mm: input must be 2-D"):
        mg.mm(t64(a), t64(b))
    with pytest.raises(ShapeError, match="batch sizes differ"):
        mg.bmm(t64(a), t64(b[:1]))


def test_div_rounding_modes_match_numpy():
    a, b = np.array([-7, 7, 6, -6]), np.array([2, -2, 4, 4])
    assert mg.tensor(a).div(mg.tensor(b), rounding_mode="floor").tolist() == \
        np.floor_divide(a, b).tolist()
    assert mg.div(mg.tensor(a), mg.tensor(b), rounding_mode="trunc").tolist() == \
        np.trunc(a / b).astype(int).tolist()
    assert (mg.tensor(a) // 4).tolist() == (a // 4).tolist()
    x = mg.tensor([-7.5, 7.5])
    assert (x // 2).tolist() == [-4.0, 3.0] and (x // 2).dtype == np.float32
    with pytest.raises(ArgumentError, match="rounding_mode"):
        x.div(2, rounding_mode="round")


def test_isclose_and_allclose():
    a, b = t64([1.0, 2.0, np.nan]), t64([1.0 + 1e-9, 2.1, np.nan])
    assert mg.isclose(a, b).tolist() == [True, False, False]
    assert mg.isclose(a, b, equal_nan=True).tolist() == [True, False, True]
    assert mg.allclose(a[:1], b[:1]) is True and mg.allclose(a, b) is False


# ----------------------------------------------------------------------------- einsum
EINSUMS = [
    ("ij,jk->ik", [(2, 3), (3, 4)], lambda a, b: a @ b),
    ("bij,bjk->bik", [(2, 2, 3), (2, 3, 4)], lambda a, b: a @ b),
    ("ij->ji", [(2, 3)], lambda a: a.T),
    ("ii->", [(3, 3)], np.trace),
    ("ii->i", [(3, 3)], np.diag),
    ("i,j->ij", [(3,), (4,)], np.outer),
    ("ij->i", [(2, 3)], lambda a: a.sum(1)),
    ("ij,ij->", [(2, 3), (2, 3)], lambda a, b: (a * b).sum()),
    ("...ij,...jk->...ik", [(2, 1, 2, 3), (5, 3, 4)], lambda a, b: a @ b),
    ("ij,kj", [(2, 3), (4, 3)], lambda a, b: a @ b.T),                 # implicit output
    ("ba,cb", [(2, 3), (4, 2)], lambda a, b: (b @ a).T),               # sorted: a, c
    ("bhtd,bhsd->bhts", [(1, 2, 3, 4), (1, 2, 5, 4)], lambda q, k: q @ np.swapaxes(k, -1, -2)),
    ("...ij->j", [(2, 3, 4)], lambda a: a.sum((0, 1))),                # sums the ... dims
]


@pytest.mark.parametrize("eq,shapes,ref", EINSUMS, ids=[e[0] for e in EINSUMS])
def test_einsum_values_and_gradients(eq, shapes, ref):
    arrays = [RNG.standard_normal(s) for s in shapes]
    tensors = [t64(a, grad=True) for a in arrays]
    np.testing.assert_allclose(mg.einsum(eq, *tensors).detach().numpy(), ref(*arrays), rtol=1e-12)
    np.testing.assert_allclose(mg.einsum(eq, tensors).detach().numpy(), ref(*arrays), rtol=1e-12)
    mg.gradcheck(lambda *ts: mg.einsum(eq, *ts), tensors)


def test_einsum_trace_gradient_is_the_identity():
    a = t64(RNG.standard_normal((3, 3)), grad=True)
    mg.einsum("ii", a).backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.eye(3))


def test_einsum_errors_name_the_problem():
    a = t64(np.ones((2, 3)))
    with pytest.raises(ShapeError, match="subscript 'j' has size 3"):
        mg.einsum("ij,jk->ik", a, a)
    with pytest.raises(ArgumentError, match="names 2 operands, got 1"):
        mg.einsum("ij,jk->ik", a)
    with pytest.raises(ShapeError, match="operand 0 has 2 dims"):
        mg.einsum("ijk->i", a)
    with pytest.raises(ArgumentError, match="more than once"):
        mg.einsum("ij->ii", a)
    with pytest.raises(DTypeError, match="one dtype"):
        mg.einsum("ij,ij->", a, mg.ones(2, 3))


# ----------------------------------------------------------------------------- constructors
def test_eye_linspace():
    np.testing.assert_array_equal(mg.eye(3).numpy(), np.eye(3))
    assert mg.eye(2, 4).shape == (2, 4) and mg.eye(2).dtype == np.float32
    assert mg.eye(2, dtype="float64").dtype == np.float64
    np.testing.assert_allclose(mg.linspace(-1, 1, 5).numpy(), np.linspace(-1, 1, 5))
    assert mg.linspace(0, 1, 1).tolist() == [0.0] and mg.linspace(0, 1, 0).shape == (0,)
    with pytest.raises(ArgumentError, match="steps"):
        mg.linspace(0, 1, -1)


def test_from_numpy_shares_memory_and_keeps_dtype():
    a = np.arange(3.0)                        # float64
    t = mg.from_numpy(a)
    assert t.dtype == np.float64
    a[0] = 7.0
    assert t.tolist() == [7.0, 1.0, 2.0]
    t.array[1] = -1.0
    assert a[1] == -1.0
    assert mg.from_numpy(np.array([1, 2], dtype=np.int32)).dtype == np.int32
    with pytest.raises(DTypeError, match="expected a NumPy ndarray"):
        mg.from_numpy([1.0, 2.0])


def test_as_tensor_avoids_copies_where_it_can():
    a = np.arange(3.0)
    t = mg.as_tensor(a)
    a[2] = 9.0
    assert t.dtype == np.float64 and t.tolist() == [0.0, 1.0, 9.0]
    c = mg.as_tensor(a, dtype="float32")       # a dtype change copies
    a[0] = 5.0
    assert c.dtype == np.float32 and c.tolist()[0] == 0.0
    x = mg.ones(2)
    assert mg.as_tensor(x) is x
    assert mg.as_tensor([1, 2]).dtype == np.int64 and mg.as_tensor([1.5]).dtype == np.float32


def test_randperm_is_a_seeded_permutation():
    mg.manual_seed(3)
    p = mg.randperm(10)
    assert sorted(p.tolist()) == list(range(10)) and p.dtype == np.int64
    mg.manual_seed(3)
    assert mg.randperm(10).tolist() == p.tolist()


# ----------------------------------------------------------------------------- multinomial
def test_multinomial_with_replacement_follows_the_probabilities():
    probs = np.array([0.1, 0.0, 0.6, 0.3])
    mg.manual_seed(0)
    draws = mg.multinomial(mg.tensor(probs * 5), 20000, replacement=True)   # unnormalised
    assert draws.shape == (20000,) and draws.dtype == np.int64
    freq = np.bincount(draws.numpy(), minlength=4) / 20000
    # 5 standard errors of a binomial proportion: fails only if the sampler is wrong
    np.testing.assert_allclose(freq, probs, atol=5 * np.sqrt(0.25 / 20000))
    assert freq[1] == 0.0
    mg.manual_seed(0)
    again = mg.multinomial(mg.tensor(probs * 5), 20000, replacement=True)
    assert again.tolist() == draws.tolist()                        # the seeded generator


def test_multinomial_without_replacement_and_rows():
    mg.manual_seed(1)
    w = mg.tensor([[1.0, 1.0, 1.0, 0.0], [0.0, 5.0, 0.0, 1.0]])
    out = mg.multinomial(w, 3)
    assert out.shape == (2, 3)
    for row in out.tolist():
        assert len(set(row)) == 3                                 # no category twice
    assert set(out.tolist()[0]) == {0, 1, 2}                      # the positive ones
    assert out.tolist()[1][:2] in ([1, 3], [3, 1])                # positive weights first
    # first draw without replacement: P(category) = w / sum(w); second: renormalised
    mg.manual_seed(2)
    first = mg.multinomial(mg.tensor([[3.0, 1.0]] * 20000), 1).numpy()[:, 0]
    assert abs((first == 0).mean() - 0.75) < 5 * math.sqrt(0.75 * 0.25 / 20000)


def test_multinomial_errors():
    with pytest.raises(ArgumentError, match="without replacement"):
        mg.multinomial(mg.tensor([0.5, 0.5]), 3)
    with pytest.raises(ArgumentError, match="finite and >= 0"):
        mg.multinomial(mg.tensor([-1.0, 2.0]), 1)
    with pytest.raises(ArgumentError, match="positive sum"):
        mg.multinomial(mg.tensor([0.0, 0.0]), 1, True)
    with pytest.raises(DTypeError, match="floating-point"):
        mg.multinomial(mg.tensor([1, 2]), 1)


# ----------------------------------------------------------------------------- tensor methods
def test_transposes_dim_size():
    x = t64(RNG.standard_normal((2, 3)))
    np.testing.assert_array_equal(x.T.numpy(), x.numpy().T)
    np.testing.assert_array_equal(x.t().numpy(), x.numpy().T)
    np.testing.assert_array_equal(x.mT.numpy(), x.numpy().T)
    b = t64(RNG.standard_normal((4, 2, 3)))
    np.testing.assert_array_equal(b.mT.numpy(), np.swapaxes(b.numpy(), -1, -2))
    with pytest.warns(UserWarning, match="mT"):
        assert b.T.shape == (3, 2, 4)                # reverses all dims, as torch (warns)
    with pytest.raises(ShapeError, match="<= 2 dims"):
        b.t()
    with pytest.raises(ShapeError, match=">= 2 dims"):
        t64([1.0]).mT
    assert t64([1.0, 2.0]).T.shape == (2,) and t64([1.0, 2.0]).t().shape == (2,)
    assert b.dim() == 3 and b.ndimension() == 3
    size = b.size()
    assert size == (4, 2, 3) and isinstance(size, tuple) and isinstance(b.shape, mg.Size)
    assert b.size(-1) == 3 and b.size(0) == 4 and size.numel() == 24
    assert repr(size) == "minigrad.Size([4, 2, 3])" and f"{size}" == "(4, 2, 3)"
    n, c, h = b.shape
    assert (n, c, h) == (4, 2, 3)


def test_repeat_matches_tile_and_sums_gradients():
    x = RNG.standard_normal((2, 3))
    t = t64(x, grad=True)
    np.testing.assert_array_equal(t.repeat(2, 1).detach().numpy(), np.tile(x, (2, 1)))
    np.testing.assert_array_equal(t.repeat(2, 1, 3).detach().numpy(), np.tile(x, (2, 1, 3)))
    t.repeat(3, 2).sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), np.full((2, 3), 6.0))
    mg.gradcheck(lambda a: a.repeat(1, 2, 2), [t64(x, grad=True)])
    with pytest.raises(ShapeError, match="at least one per dim"):
        t.repeat(2)


def test_gather_index_select_and_their_gradients():
    x = RNG.standard_normal((3, 4))
    idx = np.array([[0, 0], [3, 1], [2, 2]])
    t = t64(x, grad=True)
    np.testing.assert_array_equal(t.gather(1, mg.tensor(idx)).detach().numpy(),
                                  np.take_along_axis(x, idx, 1))
    t.gather(1, mg.tensor(idx)).sum().backward()       # repeated indices add up
    want = np.zeros((3, 4))
    np.add.at(want, (np.arange(3)[:, None], idx), 1.0)
    np.testing.assert_array_equal(t.grad.numpy(), want)
    np.testing.assert_array_equal(mg.gather(t64(x), 0, mg.tensor([[2, 0, 1, 1]])).numpy(),
                                  [[x[2, 0], x[0, 1], x[1, 2], x[1, 3]]])
    np.testing.assert_array_equal(t.index_select(1, mg.tensor([3, 0, 3])).detach().numpy(),
                                  x[:, [3, 0, 3]])
    np.testing.assert_array_equal(mg.index_select(t64(x), 0, mg.tensor([1])).numpy(), x[[1]])
    mg.gradcheck(lambda a: a.index_select(0, mg.tensor([2, 2, 0])), [t64(x, grad=True)])
    with pytest.raises(IndexRangeError, match="out of range"):
        t.gather(1, mg.tensor([[4]] * 3))
    with pytest.raises(IndexRangeError, match="index 4 is out of range"):
        t.index_select(1, mg.tensor([4]))
    with pytest.raises(DTypeError, match="integer"):
        t.gather(1, mg.tensor([[0.0]]))


def test_triangles_unbind_narrow_select_masked_select():
    x = RNG.standard_normal((2, 3, 4))
    t = t64(x, grad=True)
    np.testing.assert_array_equal(t.tril().detach().numpy(), np.tril(x))
    np.testing.assert_array_equal(mg.triu(t, 1).detach().numpy(), np.triu(x, 1))
    np.testing.assert_array_equal(mg.tril(t, diagonal=-1).detach().numpy(), np.tril(x, -1))
    t.tril().sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), np.broadcast_to(np.tril(np.ones((3, 4))),
                                                                  x.shape))
    parts = t.unbind(1)
    assert len(parts) == 3 and all(p.shape == (2, 4) for p in parts)
    np.testing.assert_array_equal(parts[2].detach().numpy(), x[:, 2])
    np.testing.assert_array_equal(t.narrow(2, 1, 2).detach().numpy(), x[:, :, 1:3])
    np.testing.assert_array_equal(t.narrow(-1, -2, 2).detach().numpy(), x[:, :, 2:4])
    np.testing.assert_array_equal(t.select(1, -1).detach().numpy(), x[:, -1])
    mask = x[0] > 0
    np.testing.assert_array_equal(t.masked_select(mg.tensor(mask)).detach().numpy(),
                                  x[np.broadcast_to(mask, x.shape)])
    with pytest.raises(IndexRangeError, match="exceeds"):
        t.narrow(2, 3, 2)
    with pytest.raises(ShapeError, match="at least 2 dims"):
        t64([1.0, 2.0]).tril()


def test_as_and_method_spellings():
    x, y = t64(np.ones((2, 3))), t64(np.ones((4, 2, 3)))
    assert x.expand_as(y).shape == (4, 2, 3)
    assert y.view_as(t64(np.ones((8, 3)))).shape == (8, 3)
    assert y.reshape_as(t64(np.ones(24))).shape == (24,)
    assert y.flatten(1).shape == (4, 6) and mg.flatten(y).shape == (24,)
    assert y.flatten(-2, -1).shape == (4, 6) and mg.zeros(0, 3).flatten(1).shape == (0, 3)
    assert t64(5.0).flatten().shape == (1,)
    with pytest.raises(ShapeError, match="start_dim 2 comes after end_dim 1"):
        y.flatten(2, 1)
    a = t64([1.0, 2.0])
    assert a.add(a, alpha=2).tolist() == [3.0, 6.0] and a.sub(1).tolist() == [0.0, 1.0]
    assert a.mul(a).tolist() == [1.0, 4.0] and a.div(2).tolist() == [0.5, 1.0]
    assert a.pow(3).tolist() == [1.0, 8.0] and a.neg().tolist() == [-1.0, -2.0]
    assert a.square().tolist() == [1.0, 4.0]


def test_version_is_setup_cfg_version():
    cfg = configparser.ConfigParser()
    cfg.read(Path(__file__).resolve().parents[2] / "setup.cfg")
    assert mg.__version__ == cfg["metadata"]["version"]
    from minigrad import version
    assert version.version() == mg.__version__
    with pytest.raises(AttributeError):
        mg.no_such_thing
