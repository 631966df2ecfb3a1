"""Truth, comparison and conversion as in PyTorch (minigrad/truth.py), and the autograd
entry points: backward(gradient=), mg.autograd.grad, mg.inference_mode."""
import operator

import numpy as np
import pytest

import minigrad as mg
from minigrad.errors import (ArgumentError, ConversionError, DTypeError, GraphError,
                             ShapeError)


# ----------------------------------------------------------------------------- comparison
@pytest.mark.parametrize("op", [operator.eq, operator.ne, operator.lt, operator.le,
                                operator.gt, operator.ge])
def test_comparisons_are_elementwise_with_broadcasting(op):
    rng = np.random.default_rng(0)
    a = rng.integers(-2, 3, (3, 4)).astype(np.float32)
    b = rng.integers(-2, 3, (4,)).astype(np.int64)
    for got, want in ((op(mg.tensor(a), mg.tensor(b)), op(a, b)), (op(mg.tensor(a), b), op(a, b)),
                      (op(mg.tensor(a), 1), op(a, 1)), (op(1.0, mg.tensor(a)), op(1.0, a))):
        assert isinstance(got, mg.Tensor) and got.dtype == mg.bool and not got.requires_grad
        np.testing.assert_array_equal(got.numpy(), want)


def test_comparison_promotes_like_arithmetic():
    t = mg.tensor([0.1, 0.2])            # float32: 0.1 is compared in float32, as torch
    np.testing.assert_array_equal((t == 0.1).numpy(), [True, False])
    assert not bool(t.double()[0] == 0.1)
    np.testing.assert_array_equal((mg.tensor([1, 2]) == mg.tensor([1.0, 2.5])).numpy(),
                                  [True, False])
    x = mg.randn(3, requires_grad=True)
    assert not (x > 0).requires_grad
    with pytest.raises(ShapeError, match=r"\(3,\) and \(2,\)"):
        mg.ones(3) < mg.ones(2)


def test_tensors_stay_hashable_by_identity():
    a, b = mg.tensor([1.0]), mg.tensor([1.0])
    d = {a: 1, b: 2}
    assert d[a] == 1 and d[b] == 2 and len({a, b, a}) == 2
    assert (a == None) is False and (a != None) is True   # noqa: E711
    assert a in [b, a]                     # identity first, as Python lists do
    # the optimizer and the module registry key parameters by identity: equal values are fine
    p, q = mg.nn.Parameter(mg.zeros(2)), mg.nn.Parameter(mg.zeros(2))
    opt = mg.optim.SGD([p, q], lr=1.0)
    p.grad, q.grad = mg.tensor([1.0, 1.0]), mg.tensor([2.0, 2.0])
    opt.step()
    np.testing.assert_array_equal(p.detach().numpy(), [-1, -1])
    np.testing.assert_array_equal(q.detach().numpy(), [-2, -2])


def test_membership():
    t = mg.tensor([[1, 2], [3, 4]])
    assert 3 in t and 5 not in t and 4.0 in t


# ----------------------------------------------------------------------------- truth
def test_bool_of_one_element_is_its_truth():
    assert not mg.tensor([0.0]) and mg.tensor(2.0) and mg.tensor([[True]])
    assert not mg.tensor(0) and mg.tensor([-1])


@pytest.mark.parametrize("shape", [(2,), (0,), (2, 3)])
def test_bool_of_several_or_no_values_is_ambiguous(shape):
    with pytest.raises(ConversionError, match=r"ambiguous \(shape .*\.any\(\) or \.all\(\)"):
        bool(mg.zeros(*shape))
    assert issubclass(ConversionError, RuntimeError) and issubclass(ConversionError, TypeError)
    assert issubclass(ConversionError, ValueError)      # torch: RuntimeError / ValueError


def test_python_numbers_from_tensors():
    assert float(mg.tensor([2.75])) == 2.75 and int(mg.tensor(2.75)) == 2
    assert int(mg.tensor(-2.5)) == -2 and isinstance(mg.tensor([3]).item(), int)
    assert [10, 20, 30][mg.tensor(2)] == 30 and list(range(5))[mg.tensor([1]):] == [1, 2, 3, 4]
    with pytest.raises(ConversionError, match=r"only one element.*shape \(2,\)"):
        float(mg.tensor([1.0, 2.0]))
    with pytest.raises(ConversionError, match=r"2 elements"):
        mg.tensor([1.0, 2.0]).item()
    with pytest.raises(DTypeError, match="only integer tensors"):
        [1, 2][mg.tensor(1.0)]


def test_format_tolist_len_and_iteration():
    assert f"{mg.tensor(1.23456):.3f}" == "1.235" and format(mg.tensor(5), "03d") == "005"
    t = mg.tensor([[1, 2], [3, 4]])
    assert format(t, "") == str(t) == f"{t}"
    with pytest.raises(ConversionError, match=r"only 0-d tensors.*item\(\)"):
        format(mg.tensor([1.5]), ".2f")
    assert t.tolist() == [[1, 2], [3, 4]] and mg.tensor(1.5).tolist() == 1.5
    assert len(t) == 2 and [r.tolist() for r in t] == [[1, 2], [3, 4]]
    rows = list(t)
    rows[0][1] = 9                       # iteration gives views, as in torch
    assert t[0, 1].item() == 9
    with pytest.raises(ConversionError, match="len\\(\\) of a 0-d tensor"):
        len(mg.tensor(3.0))
    with pytest.raises(ConversionError, match="iteration over a 0-d tensor"):
        iter(mg.tensor(3.0))


def test_numpy_asarray_gives_the_numbers():
    t = mg.tensor([1.5, 2.5])
    a = np.asarray(t)
    assert isinstance(a, np.ndarray) and a.dtype == np.float32
    np.testing.assert_array_equal(a, [1.5, 2.5])
    a[0] = 7                             # shares memory, as torch's .numpy()
    assert t[0].item() == 7
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    assert np.array(t, copy=True) is not t.array
    out = np.ones(2) + mg.tensor([1.0, 2.0])          # ndarray + Tensor stays a Tensor
    assert isinstance(out, mg.Tensor)


def test_any_all_and_logical_operators():
    t = mg.tensor([[0.0, 1.0], [0.0, 2.0]])
    assert t.any().item() is True and t.all().item() is False
    np.testing.assert_array_equal(t.any(dim=1).numpy(), [True, True])
    np.testing.assert_array_equal(t.all(0, keepdim=True).numpy(), [[False, True]])
    assert t.any().dtype == mg.bool
    with pytest.raises(ShapeError, match="dim 2 is out of range"):
        t.any(dim=2)
    a, b = mg.tensor([True, False, True]), mg.tensor([True, True, False])
    np.testing.assert_array_equal((a & b).numpy(), [True, False, False])
    np.testing.assert_array_equal((a | b).numpy(), [True, True, True])
    np.testing.assert_array_equal((a ^ b).numpy(), [False, True, True])
    np.testing.assert_array_equal((~a).numpy(), [False, True, False])
    np.testing.assert_array_equal((a & True).numpy(), [True, False, True])
    np.testing.assert_array_equal((mg.tensor([6, 3]) & mg.tensor([3, 5])).numpy(), [2, 1])
    np.testing.assert_array_equal((~mg.tensor([0, 5])).numpy(), [-1, -6])
    with pytest.raises(DTypeError, match="only bool and integer tensors.*compare first"):
        mg.tensor([1.0]) & mg.tensor([1.0])
    with pytest.raises(DTypeError, match="invert.*float32"):
        ~mg.tensor([1.0])
    with pytest.raises(DTypeError, match="bool tensor.*~"):
        -mg.tensor([True])
    with pytest.raises(DTypeError, match="subtraction.*bool"):
        mg.tensor([True]) - mg.tensor([False])


# ----------------------------------------------------------------------------- where, masks
def test_where_function_and_method():
    x = mg.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = mg.where(x > 0, x, 0.0)
    z = x.where(x > 0, mg.tensor(-1.0))
    np.testing.assert_array_equal(y.detach().numpy(), [1, 0, 3])
    np.testing.assert_array_equal(z.detach().numpy(), [1, -1, 3])
    assert y.dtype == z.dtype == mg.float32
    (y + z).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2, 0, 2])
    assert mg.where(mg.tensor([True, False]), 1.0, 0).dtype == mg.float32
    assert mg.where(mg.tensor([True, False]), 1, 0).dtype == mg.int64
    assert mg.where(mg.tensor([True]), mg.tensor([1]), 0.5).dtype == mg.float32


def test_boolean_mask_indexing_and_its_gradient():
    x = mg.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    y = mg.tensor([0, 1, 0, 1])
    picked = x[y == 1]
    np.testing.assert_array_equal(picked.detach().numpy(), [2, 4])
    (picked * mg.tensor([10.0, 20.0])).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0, 10, 0, 20])


def test_masked_fill_keeps_the_dtype_and_takes_a_0d_value():
    m = mg.tensor([False, True])
    out = mg.tensor([1, 2]).masked_fill(m, 0.5)
    assert out.dtype == mg.int64 and out.tolist() == [1, 0]
    v = mg.tensor(3.0, requires_grad=True)
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    (x.masked_fill(m, v) * mg.tensor([1.0, 5.0])).sum().backward()
    assert v.grad.item() == 5.0 and x.grad.tolist() == [1.0, 0.0]
    with pytest.raises(ShapeError, match="0-dimensional value"):
        x.masked_fill(m, mg.tensor([1.0, 2.0]))
    with pytest.raises(DTypeError, match="boolean"):
        x.masked_fill(mg.tensor([0, 1]), 0.0)


# ----------------------------------------------------------------------------- autograd API
def test_backward_takes_gradient_and_the_old_grad_keyword():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).backward(gradient=mg.tensor([1.0, 2.0]))
    np.testing.assert_array_equal(x.grad.numpy(), [3, 6])
    (x * 3).backward(grad=mg.tensor([1.0, 1.0]))
    np.testing.assert_array_equal(x.grad.numpy(), [6, 9])
    (x * 3).backward([1.0, 0.0])
    np.testing.assert_array_equal(x.grad.numpy(), [9, 9])
    with pytest.raises(ArgumentError, match="once"):
        (x * 3).backward(gradient=mg.ones(2), grad=mg.ones(2))
    with pytest.raises(GraphError, match="create_graph"):
        (x * 3).sum().backward(create_graph=True)
    with pytest.raises(GraphError, match="scalar output.*gradient="):
        (x * 3).backward()


def test_autograd_grad_returns_a_tuple_and_leaves_dot_grad_alone():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    w = mg.tensor([3.0], requires_grad=True)
    h = x * w                               # a non-leaf input
    out = (h * h).sum()
    gx, gw, gh = mg.autograd.grad(out, [x, w, h], retain_graph=True)
    np.testing.assert_allclose(gx.detach().numpy(), 2 * 9 * x.detach().numpy())
    np.testing.assert_allclose(gw.numpy(), [2 * 3 * (1 + 4)])
    np.testing.assert_allclose(gh.detach().numpy(), 2 * h.detach().numpy())
    assert x.grad is None and w.grad is None and h.grad is None
    assert not gx.requires_grad
    (g2,) = mg.autograd.grad(out, x)       # the graph was retained
    np.testing.assert_allclose(g2.numpy(), gx.numpy())
    with pytest.raises(GraphError, match="freed"):
        mg.autograd.grad(out, x)
    y = x * 2
    (g,) = mg.autograd.grad([y, y.sum()], x, grad_outputs=[mg.tensor([1.0, 0.0]), None])
    np.testing.assert_allclose(g.numpy(), [4.0, 2.0])


def test_autograd_grad_errors():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    w = mg.tensor([1.0], requires_grad=True)
    with pytest.raises(GraphError, match="index 1.*allow_unused=True"):
        mg.autograd.grad((x * 3).sum(), [x, w])
    gx, gw = mg.autograd.grad((x * 3).sum(), [x, w], allow_unused=True)
    assert gw is None and gx.tolist() == [3.0, 3.0]
    with pytest.raises(GraphError, match="does not require grad"):
        mg.autograd.grad((x * 3).sum(), [mg.ones(2)])
    with pytest.raises(GraphError, match="higher-order"):
        mg.autograd.grad((x * 3).sum(), x, create_graph=True)
    with pytest.raises(GraphError, match="one gradient per output"):
        mg.autograd.grad([(x * 3).sum()], x, grad_outputs=[None, None])
    with pytest.raises(GraphError, match="scalar output"):
        mg.autograd.grad(x * 3, x)


def test_inference_mode_as_context_and_decorator():
    x = mg.tensor([1.0], requires_grad=True)
    with mg.inference_mode():
        assert not (x * 2).requires_grad and mg.is_inference_mode_enabled()
        assert not mg.is_grad_enabled()
    assert (x * 2).requires_grad and not mg.is_inference_mode_enabled()

    @mg.inference_mode
    def bare(t):
        return t * 2

    @mg.inference_mode()
    def called(t):
        return t * 2
    assert not bare(x).requires_grad and not called(x).requires_grad
    with mg.no_grad(), mg.inference_mode(False):   # mode=False turns grad on, as torch
        assert (x * 2).requires_grad
    assert mg.is_grad_enabled()
