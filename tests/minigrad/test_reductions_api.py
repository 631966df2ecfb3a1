"""Reductions that return what PyTorch returns (issue 16, item 5), each against NumPy or a
closed form: max/min(dim) pairs, sort, topk, argsort, argmax/argmin, cumsum, prod,
logsumexp, norm, var/std, any/all."""
import math

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given

import minigrad as mg
from minigrad.errors import ArgumentError, DTypeError, ShapeError

RNG = np.random.default_rng(0)


def t64(a, grad=False):
    return mg.tensor(np.asarray(a, dtype=np.float64), dtype="float64", requires_grad=grad)


def unique_arrays(min_dims=1):
    """Float arrays without ties (a 0.1 grid, distinct values): sort orders are unique."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=3, min_side=1, max_side=5).flatmap(
        lambda s: hnp.arrays(np.float64, s, unique=True,
                             elements=st.integers(-500, 500).map(lambda i: i / 10)))


# ----------------------------------------------------------------------------- max / min
@given(unique_arrays(), st.data())
def test_max_min_with_dim_return_values_and_indices_like_numpy(x, data):
    dim = data.draw(st.integers(-x.ndim, x.ndim - 1))
    keepdim = data.draw(st.booleans())
    for name, ref, arg in (("max", np.max, np.argmax), ("min", np.min, np.argmin)):
        out = getattr(t64(x), name)(dim, keepdim=keepdim)
        assert type(out).__name__ == name and out._fields == ("values", "indices")
        values, indices = out                                # unpacks as a pair
        np.testing.assert_array_equal(values.numpy(), ref(x, axis=dim, keepdims=keepdim))
        np.testing.assert_array_equal(indices.numpy(), arg(x, axis=dim, keepdims=keepdim)
                                      if keepdim else arg(x, axis=dim))
        assert indices.dtype == np.int64 and not indices.requires_grad
        assert out.values is out[0] and out.indices is out[1]


def test_max_forms_as_in_torch():
    x = t64([[1.0, 5.0, 3.0], [4.0, 2.0, 6.0]])
    m = x.max()
    assert m.shape == () and m.item() == 6.0                 # no dim: a 0-d tensor
    np.testing.assert_array_equal(x.max(1)[1].numpy(), [1, 2])     # logits.max(1)[1]: argmax
    np.testing.assert_array_equal(x.max(dim=0).values.numpy(), [4.0, 5.0, 6.0])
    np.testing.assert_array_equal(mg.max(x, 1, True).indices.numpy(), [[1], [2]])
    np.testing.assert_array_equal(mg.min(x, dim=1).values.numpy(), [1.0, 2.0])
    other = t64([[2.0, 2.0, 2.0], [5.0, 5.0, 5.0]])
    np.testing.assert_array_equal(x.max(other).numpy(), np.maximum(x.numpy(), other.numpy()))
    np.testing.assert_array_equal(mg.min(x, other).numpy(), np.minimum(x.numpy(), other.numpy()))
    with pytest.raises(ArgumentError, match="amax"):
        x.max(dim=(0, 1))
    with pytest.raises(ShapeError, match="non-zero size"):
        mg.zeros(2, 0).max(1)


def test_max_dim_gradient_goes_to_the_returned_index():
    # ties: torch's gradient goes to the index it returns (here the first), not shared
    x = t64([[3.0, 1.0, 3.0], [0.0, 2.0, 2.0]], grad=True)
    values, idx = x.max(1)
    (values * t64([10.0, 100.0])).sum().backward()
    want = np.zeros((2, 3))
    want[0, idx.numpy()[0]], want[1, idx.numpy()[1]] = 10.0, 100.0
    np.testing.assert_array_equal(x.grad.numpy(), want)
    np.testing.assert_array_equal(idx.numpy(), [0, 1])
    # amax (values only, over dims) shares the gradient between ties, as torch.amax
    y = t64([3.0, 1.0, 3.0], grad=True)
    y.amax().backward()
    np.testing.assert_array_equal(y.grad.numpy(), [0.5, 0.0, 0.5])


@given(unique_arrays(), st.data())
def test_max_sort_topk_gradients_match_finite_differences(x, data):
    dim = data.draw(st.integers(0, x.ndim - 1))
    k = data.draw(st.integers(1, x.shape[dim]))
    t = t64(x, grad=True)
    mg.gradcheck(lambda a: a.max(dim).values, [t])
    mg.gradcheck(lambda a: a.min(dim, keepdim=True).values, [t])
    mg.gradcheck(lambda a: a.sort(dim, descending=True).values, [t])
    mg.gradcheck(lambda a: a.topk(k, dim).values, [t])


# ----------------------------------------------------------------------------- sort / topk
@given(unique_arrays(), st.data())
def test_sort_topk_argsort_match_numpy(x, data):
    dim = data.draw(st.integers(-x.ndim, x.ndim - 1))
    k = data.draw(st.integers(0, x.shape[dim]))
    values, indices = t64(x).sort(dim)
    np.testing.assert_array_equal(values.numpy(), np.sort(x, axis=dim))
    np.testing.assert_array_equal(indices.numpy(), np.argsort(x, axis=dim))
    desc = np.flip(np.argsort(x, axis=dim), dim)
    np.testing.assert_array_equal(t64(x).argsort(dim, descending=True).numpy(), desc)
    top = t64(x).topk(k, dim)
    np.testing.assert_array_equal(top.indices.numpy(), np.take(desc, range(k), axis=dim))
    np.testing.assert_array_equal(top.values.numpy(),
                                  np.take_along_axis(x, top.indices.numpy(), dim))
    low = mg.topk(t64(x), k, dim, largest=False)
    np.testing.assert_array_equal(low.indices.numpy(),
                                  np.take(np.argsort(x, axis=dim), range(k), axis=dim))


def test_sort_is_stable_both_ways_and_puts_nan_last_or_first():
    x = t64([2.0, 1.0, 2.0, 1.0, 2.0])
    np.testing.assert_array_equal(x.sort(stable=True).indices.numpy(), [1, 3, 0, 2, 4])
    np.testing.assert_array_equal(x.sort(descending=True, stable=True).indices.numpy(),
                                  [0, 2, 4, 1, 3])
    n = t64([1.0, np.nan, 0.0])
    np.testing.assert_array_equal(n.sort().indices.numpy(), [2, 0, 1])     # NaN is largest
    np.testing.assert_array_equal(n.sort(descending=True).indices.numpy(), [1, 0, 2])
    ints = mg.tensor([3, 1, 2])
    s = ints.sort()
    assert s.values.dtype == np.int64 and s.values.tolist() == [1, 2, 3]


def test_topk_errors_and_sampling_use():
    logits = t64([[0.1, 2.0, -1.0, 0.5]])
    v, i = logits.topk(2)
    assert i.tolist() == [[1, 3]] and v.tolist() == [[2.0, 0.5]]
    # nanoGPT's top-k filter: logits below the k-th largest are masked out
    masked = logits.masked_fill((logits.array < v[:, [-1]].array), float("-inf"))
    assert np.isinf(masked.numpy()).tolist() == [[True, False, True, False]]
    with pytest.raises(ArgumentError, match=r"k must be an int in 0\.\.4"):
        logits.topk(5)


def test_argmax_argmin_as_torch():
    x = np.array([[1.0, 9.0, 3.0], [7.0, 2.0, 8.0]])
    t = t64(x)
    assert t.argmax().item() == 1 and t.argmax().shape == ()          # the flat index
    assert t.argmax(keepdim=True).shape == (1, 1)
    np.testing.assert_array_equal(t.argmax(1).numpy(), [1, 2])
    np.testing.assert_array_equal(mg.argmin(t, dim=0, keepdim=True).numpy(), [[0, 1, 0]])
    assert t.argmax(1).dtype == np.int64 and not t.argmax(1).requires_grad


# ----------------------------------------------------------------------------- cumsum / prod
def test_cumsum_and_prod_match_numpy_and_integer_results_are_int64():
    x = RNG.standard_normal((3, 4))
    np.testing.assert_allclose(t64(x).cumsum(1).numpy(), np.cumsum(x, 1))
    np.testing.assert_allclose(mg.cumsum(t64(x), dim=-2).numpy(), np.cumsum(x, 0))
    np.testing.assert_allclose(t64(x).prod().numpy(), np.prod(x))
    np.testing.assert_allclose(t64(x).prod(1, keepdim=True).numpy(), np.prod(x, 1, keepdims=True))
    b = mg.tensor(np.array([True, False, True]))
    assert b.cumsum(0).dtype == np.int64 and b.cumsum(0).tolist() == [1, 1, 2]
    i = mg.tensor(np.array([2, 3, 4], dtype=np.int32))
    assert i.prod().dtype == np.int64 and i.prod().item() == 24
    with pytest.raises(ArgumentError, match="one int"):
        t64(x).prod((0, 1))


def test_prod_gradient_is_exact_with_zeros():
    # d/dx_i prod(x) = product of the others: with one zero only that entry gets a gradient
    x = t64([2.0, 0.0, 3.0, 5.0], grad=True)
    x.prod().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 30.0, 0.0, 0.0])
    y = t64([[0.0, 0.0, 4.0]], grad=True)            # two zeros: every gradient is 0
    y.prod(1).sum().backward()
    np.testing.assert_array_equal(y.grad.numpy(), [[0.0, 0.0, 0.0]])


def test_cumsum_gradient_is_a_reverse_cumulative_sum():
    x = t64([1.0, 2.0, 3.0], grad=True)
    (x.cumsum(0) * t64([1.0, 10.0, 100.0])).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [111.0, 110.0, 100.0])


# ----------------------------------------------------------------------------- logsumexp
def test_logsumexp_value_stability_and_gradient():
    x = RNG.standard_normal((3, 5))
    ref = np.log(np.exp(x).sum(1))
    np.testing.assert_allclose(t64(x).logsumexp(1).numpy(), ref)
    np.testing.assert_allclose(mg.logsumexp(t64(x), (0, 1), keepdim=True).numpy(),
                               np.log(np.exp(x).sum()).reshape(1, 1))
    big = mg.tensor([[1e4, 1e4], [-1e4, -1e4 + math.log(3)]])           # float32
    np.testing.assert_allclose(big.logsumexp(1).numpy(),
                               [1e4 + math.log(2), -1e4 + math.log(4)], rtol=1e-6)
    inf = float("-inf")
    out = t64([[inf, inf], [0.0, inf]]).logsumexp(1).numpy()
    assert out[0] == -np.inf and out[1] == 0.0
    t = t64(x, grad=True)
    t.logsumexp(1).sum().backward()                     # d lse / dx = softmax(x)
    np.testing.assert_allclose(t.grad.numpy(), np.exp(x) / np.exp(x).sum(1, keepdims=True))
    assert mg.tensor([1, 2, 3]).logsumexp(0).dtype == np.float32        # ints -> float


# ----------------------------------------------------------------------------- norm
@pytest.mark.parametrize("p", [2, 1, 3, 0.5, math.inf, -math.inf, "fro"])
def test_norm_matches_numpy(p):
    x = RNG.standard_normal((3, 4))
    q = 2 if p == "fro" else p
    flat = np.linalg.norm(x.ravel(), ord=q)
    np.testing.assert_allclose(t64(x).norm(p).numpy(), flat)
    np.testing.assert_allclose(mg.norm(t64(x), p, dim=1).numpy(), np.linalg.norm(x, ord=q, axis=1))
    np.testing.assert_allclose(t64(x).norm(p, dim=0, keepdim=True).numpy(),
                               np.linalg.norm(x, ord=q, axis=0, keepdims=True))


def test_norm_gradient_is_zero_at_zero_and_x_over_norm_elsewhere():
    z = t64([0.0, 0.0, 0.0], grad=True)
    z.norm().backward()
    np.testing.assert_array_equal(z.grad.numpy(), [0.0, 0.0, 0.0])      # not NaN
    x = t64([3.0, 4.0], grad=True)
    x.norm().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.6, 0.8])
    with pytest.raises(ArgumentError, match="count of nonzeros"):
        x.norm(0)
    with pytest.raises(ArgumentError, match="'nuc'"):
        x.norm("nuc")
    with pytest.raises(DTypeError, match="floating-point"):
        mg.tensor([1, 2]).norm()


# ----------------------------------------------------------------------------- var / std
def test_var_std_unbiased_and_correction_spellings():
    x = RNG.standard_normal((4, 5))
    t = t64(x)
    np.testing.assert_allclose(t.var().numpy(), x.var(ddof=1))
    np.testing.assert_allclose(t.var(1, True).numpy(), x.var(1, ddof=1))          # torch's
    np.testing.assert_allclose(t.var(1, False).numpy(), x.var(1, ddof=0))         # positional
    np.testing.assert_allclose(t.var(False).numpy(), x.var(ddof=0))               # unbiased
    np.testing.assert_allclose(t.std(0, keepdim=True).numpy(), x.std(0, ddof=1, keepdims=True))
    np.testing.assert_allclose(t.std(dim=(0, 1), correction=0).numpy(), x.std(ddof=0))
    np.testing.assert_allclose(mg.std(t, 1, unbiased=False).numpy(), x.std(1))
    np.testing.assert_allclose(mg.var(t, dim=0, correction=2).numpy(), x.var(0, ddof=2))
    with pytest.raises(ArgumentError, match="not both"):
        t.var(unbiased=True, correction=1)
    with pytest.raises(DTypeError, match="floating-point"):
        mg.tensor([1, 2, 3]).std()
    g = t64(x, grad=True)
    mg.gradcheck(lambda a: a.std(1, unbiased=False), [g])
    flat = t64([[2.0, 2.0, 2.0], [1.0, 2.0, 3.0]], grad=True)   # a constant row: std 0
    flat.std(1).sum().backward()
    np.testing.assert_allclose(flat.grad.numpy(), [[0.0, 0.0, 0.0], [-0.5, 0.0, 0.5]])


# ----------------------------------------------------------------------------- any / all
def test_any_all_with_dim_are_bool_tensors():
    x = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    t = t64(x)
    assert t.any().dtype == np.bool_ and t.any().shape == () and bool(t.any().item())
    assert not t.all().item()
    np.testing.assert_array_equal(t.any(1).numpy(), [True, False])
    np.testing.assert_array_equal(mg.all(t64(x == 0), dim=0).numpy(),
                                  [True, False, True])
    np.testing.assert_array_equal(t.any(dim=1, keepdim=True).numpy(), [[True], [False]])
    np.testing.assert_array_equal(t.any(dim=(0, 1)).numpy(), True)
