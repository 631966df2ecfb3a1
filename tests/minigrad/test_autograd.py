"""The engine: node reuse, deep graphs, accumulation, retain_graph, no_grad, hooks,
retain_grad, detach, dtype rules and the errors users hit."""
import numpy as np
import pytest

import minigrad as mg
from minigrad.errors import DTypeError, GraphError, ShapeError


def test_reuse_sums_contributions():
    a = mg.tensor([3.0], requires_grad=True)
    (a + a).backward(mg.tensor([1.0]))
    assert a.grad.numpy().tolist() == [2.0]
    b = mg.tensor([3.0], requires_grad=True)
    (b * b).sum().backward()
    assert b.grad.item() == 6.0          # d(b^2)/db = 2b


def test_diamond_graph_matches_closed_form():
    # f = (x*y) + (x*y)^2 with y = x + 1: df/dx = (2x+1)(1 + 2 x (x+1))
    x = mg.tensor(1.5, dtype="float64", requires_grad=True)
    y = x + 1
    z = x * y
    (z + z * z).backward()
    assert x.grad.item() == pytest.approx((2 * 1.5 + 1) * (1 + 2 * 1.5 * 2.5))


def test_ten_thousand_op_chain():
    x = mg.tensor(1.0, dtype="float64", requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.backward()
    assert x.grad.item() == pytest.approx(1.0001 ** 10_000, rel=1e-9)


def test_leaf_grad_accumulates_across_backward_calls():
    w = mg.tensor([1.0, 2.0], requires_grad=True)
    for _ in range(3):
        (w * 2).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [6.0, 6.0])


def test_broadcast_gradient_is_reduced_to_input_shape():
    a = mg.tensor(np.ones((2, 3, 4)), requires_grad=True)
    b = mg.tensor(np.ones((3, 1)), requires_grad=True)
    (a * b).backward(mg.ones(2, 3, 4))
    assert b.grad.shape == (3, 1)
    np.testing.assert_array_equal(b.grad.numpy(), np.full((3, 1), 8.0))


def test_graph_is_freed_and_second_backward_errors():
    x = mg.tensor([2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(GraphError, match="retain_graph=True"):
        y.backward()


def test_retain_graph_allows_second_backward():
    x = mg.tensor([2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad.item() == 8.0


def test_no_grad_records_nothing():
    x = mg.tensor([1.0], requires_grad=True)
    with mg.no_grad():
        y = x * 2
    assert not y.requires_grad and y.grad_fn is None
    assert mg.is_grad_enabled()


def test_detach_cuts_the_graph():
    x = mg.tensor([3.0], requires_grad=True)
    y = (x * x.detach()).sum()      # d/dx = x.detach() = 3, not 2x
    y.backward()
    assert x.grad.item() == 3.0


def test_retain_grad_on_intermediate():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    h = (x * 3).retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), [6.0, 12.0])    # 2h
    np.testing.assert_allclose(x.grad.numpy(), [18.0, 36.0])   # 2h * 3


def test_hooks_inspect_and_replace_gradients():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    h = x * 2
    h.register_hook(lambda g: seen.append(g.numpy().copy()))
    handle = x.register_hook(lambda g: g * 10)
    h.sum().backward()
    np.testing.assert_array_equal(seen[0], [1.0, 1.0])
    np.testing.assert_array_equal(x.grad.numpy(), [20.0, 20.0])
    handle.remove()
    x.grad = None
    (x * 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])


def test_retain_grad_and_hooks_set_after_the_tensor_was_used():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    y = (h * h).sum()                       # h is an input before either call below
    h.retain_grad()
    h.register_hook(lambda g: g * 10)
    y.backward()
    np.testing.assert_allclose(h.grad.numpy(), [60.0, 120.0])   # 2h * 10: hooks first
    np.testing.assert_allclose(x.grad.numpy(), [180.0, 360.0])  # 2h * 10 * 3


def test_the_graph_keeps_only_what_the_ops_saved():
    """An intermediate result that no op saved for backward (Add saves nothing) is freed
    once the program drops it, though the graph through it lives on; gradients are the
    same."""
    import gc
    import weakref
    x = mg.tensor(np.arange(4.0), requires_grad=True)
    h = x + 1
    dead = weakref.ref(h.array)
    y = ((h + 1) * x).sum()                 # Mul saves x and h + 1, not h
    del h
    gc.collect()
    assert dead() is None
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.arange(4.0) + 2)   # d(x(x+2))/dx


def test_every_non_leaf_knows_its_op_and_inputs():
    a, b = mg.tensor([1.0], requires_grad=True), mg.tensor([2.0], requires_grad=True)
    c = a * b
    assert c.grad_fn.name == "Mul" and c.grad_fn.inputs == (a, b)
    assert a.is_leaf and not c.is_leaf


def test_shared_gradient_arrays_are_not_aliased_between_leaves():
    a, b = mg.tensor([1.0], requires_grad=True), mg.tensor([1.0], requires_grad=True)
    (a + b).sum().backward()
    a.grad.array *= 5          # what an in-place clip does
    assert b.grad.item() == 1.0


def test_dtype_rules():
    assert mg.tensor([1.0, 2.0]).dtype == np.float32
    assert mg.tensor(np.zeros(3)).dtype == np.float64     # arrays keep their dtype (torch)
    assert mg.tensor([1.0], dtype="float64").dtype == np.float64
    assert mg.tensor([1, 2]).dtype == np.int64
    x = mg.tensor([1.0], dtype=np.float64)
    assert (x * 2).dtype == np.float64 and (2.5 + x).dtype == np.float64   # scalars keep dtype
    assert (mg.tensor([1.0]) * 3).dtype == np.float32
    y = mg.randn(3, dtype="float64", requires_grad=True)
    (y * y).sum().backward()
    assert y.grad.dtype == np.float64


def test_integer_tensors_never_carry_gradients():
    with pytest.raises(DTypeError, match="only floating-point tensors can require gradients"):
        mg.tensor([1, 2], requires_grad=True)
    with pytest.raises(DTypeError, match="int64"):
        mg.arange(3).requires_grad_()


def test_backward_of_non_scalar_needs_grad():
    x = mg.randn(2, 3, requires_grad=True)
    with pytest.raises(GraphError, match=r"scalar output, got shape \(2, 3\)"):
        (x * 2).backward()
    with pytest.raises(ShapeError, match=r"output's shape \(2, 3\), got \(3,\)"):
        (x * 2).backward(mg.ones(3))


def test_matmul_shape_mismatch_names_both_shapes():
    with pytest.raises(ShapeError, match=r"matmul: shapes \(2, 3\) and \(4, 5\)"):
        mg.randn(2, 3) @ mg.randn(4, 5)


def test_broadcast_mismatch_names_op_and_shapes():
    with pytest.raises(ShapeError, match=r"Add: shapes \(2, 3\) and \(4,\) cannot be broadcast"):
        mg.randn(2, 3) + mg.randn(4)


def test_float_index_is_a_dtype_error():
    with pytest.raises(DTypeError, match="index arrays must be integers.*float"):
        mg.randn(5, 2)[np.array([0.0, 1.0])]


def test_matmul_1d_operands_follow_numpy():
    a, b = np.random.rand(3), np.random.rand(3, 4)
    for x, y in [(a, b), (b.T, a), (a, a), (np.random.rand(2, 4, 3), a)]:
        tx = mg.tensor(x, dtype="float64", requires_grad=True)
        ty = mg.tensor(y, dtype="float64", requires_grad=True)
        out = tx @ ty
        np.testing.assert_allclose(out.detach().numpy(), x @ y)
        mg.gradcheck(lambda p, q: p @ q, [tx, ty])


def test_indexing_accumulates_repeated_indices():
    w = mg.tensor(np.arange(6.0).reshape(3, 2), requires_grad=True)
    w[np.array([0, 2, 0, 0])].sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [[3, 3], [0, 0], [1, 1]])


def test_split_stack_cat_round_trip_and_grads():
    x = mg.randn(5, 4, dtype="float64", requires_grad=True)
    parts = x.split(2, dim=0)
    assert [p.shape for p in parts] == [(2, 4), (2, 4), (1, 4)]
    np.testing.assert_array_equal(mg.cat(parts, 0).detach().numpy(), x.detach().numpy())
    mg.gradcheck(lambda t: mg.stack(t.split([1, 3], dim=1)[1].split(1, dim=1), dim=0), [x])


def test_masked_fill_and_where():
    x = mg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x.masked_fill(np.array([True, False, True]), -1.0)
    np.testing.assert_array_equal(y.detach().numpy(), [-1.0, 2.0, -1.0])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 1.0, 0.0])


def test_argmax_has_no_gradient_and_matches_numpy():
    data = np.random.rand(3, 5)
    idx = mg.tensor(data).argmax(dim=1)
    assert idx.dtype == np.int64 and not idx.requires_grad
    np.testing.assert_array_equal(idx.numpy(), data.argmax(1))


def test_reductions_keepdims_and_torch_names():
    data = np.random.rand(2, 3, 4)
    x = mg.tensor(data, dtype="float64")
    np.testing.assert_allclose(x.sum(dim=(0, 2), keepdim=True).numpy(),
                               data.sum((0, 2), keepdims=True))
    np.testing.assert_allclose(x.var(1).numpy(), data.var(1, ddof=1))
    np.testing.assert_allclose(x.mean(axis=-1, keepdims=True).numpy(),
                               data.mean(-1, keepdims=True))
    np.testing.assert_allclose(x.max(0).values.numpy(), data.max(0))


def test_constructors_and_seed():
    mg.manual_seed(123)
    a = mg.randn(3, 4)
    mg.manual_seed(123)
    b = mg.randn(3, 4)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert mg.zeros(2, 3).shape == (2, 3) and mg.ones((2,)).numpy().tolist() == [1.0, 1.0]
    assert mg.full((2,), 7).dtype == np.int64
    assert mg.arange(5).numpy().tolist() == [0, 1, 2, 3, 4]
    assert mg.zeros_like(a).shape == a.shape
    assert 0 <= mg.rand(100).numpy().min() and mg.rand(100).numpy().max() < 1
    assert mg.tensor(3.5).item() == 3.5


def test_to_numpy_and_detach_share_values():
    x = mg.randn(2, 2, requires_grad=True)
    assert isinstance(x.detach().numpy(), np.ndarray)
    d = x.detach()
    assert not d.requires_grad and d.array is x.array
    assert x.to("cpu") is x


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning",
                            "ignore:divide by zero encountered:RuntimeWarning")
def test_detect_anomaly_names_the_op():   # NumPy warns of the NaN and inf it is meant to catch
    x = mg.tensor([-1.0, 1.0], requires_grad=True)
    with pytest.raises(mg.errors.AnomalyError, match="forward of Log"):
        with mg.detect_anomaly():
            x.log()
    y = mg.tensor([0.0, 1.0], requires_grad=True)
    with pytest.raises(mg.errors.AnomalyError, match="backward of Sqrt.*stage 'ffn'"):
        with mg.detect_anomaly(), mg.stage("ffn"):
            y.sqrt().sum().backward()
