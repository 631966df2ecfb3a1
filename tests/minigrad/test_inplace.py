"""In-place ops under PyTorch's autograd rules (minigrad/inplace.py): the same storage is
updated, leaves that require grad refuse outside no_grad, version counters catch a tensor
modified after an op saved it, and in-place ops on non-leaves (also through views) are
recorded with the right gradient -- checked against closed forms and central differences."""
import numpy as np
import pytest

import minigrad as mg
from minigrad.errors import DTypeError, GraphError, IndexRangeError, ShapeError

F64 = mg.float64


def _leaf(values, dtype=F64):
    return mg.tensor(values, dtype=dtype, requires_grad=True)


# ----------------------------------------------------------------------------- storage
def test_augmented_assignment_updates_the_same_array_and_its_views():
    x = mg.tensor([[1.0, 2.0], [3.0, 4.0]])
    raw, row = x.array, x[1]
    x += 1
    x -= mg.tensor([0.5, 0.5])
    x *= 2
    x /= 4
    assert x.array is raw
    np.testing.assert_allclose(x.numpy(), (np.array([[1, 2], [3, 4]]) + 0.5) / 2)
    np.testing.assert_allclose(row.numpy(), [1.75, 2.25])     # the view saw every write
    row.zero_()
    np.testing.assert_allclose(x.numpy()[1], [0, 0])


def test_manual_sgd_under_no_grad_changes_the_weights():
    w = mg.tensor([1.0, -2.0], requires_grad=True)
    for _ in range(2):
        (w * w).sum().backward()
        with mg.no_grad():
            w -= 0.25 * w.grad
        w.grad = None
    np.testing.assert_allclose(w.detach().numpy(), [0.25, -0.5])       # w *= (1 - 0.5) each step
    assert w.requires_grad and w.is_leaf


def test_every_in_place_method_against_numpy():
    a = np.array([[-1.5, 0.5, 2.0], [3.0, -0.25, 1.0]], dtype=np.float32)
    t = mg.tensor(a.copy())
    t.add_(mg.tensor([1.0, 2.0, 3.0]), alpha=2).sub_(0.5).mul_(mg.tensor(3.0)).div_(2)
    np.testing.assert_allclose(t.numpy(), (a + 2 * np.array([1, 2, 3]) - 0.5) * 3 / 2)
    t.clamp_(-1, 4)
    np.testing.assert_allclose(t.numpy(), np.clip((a + 2 * np.array([1, 2, 3]) - 0.5) * 1.5,
                                                  -1, 4))
    t.masked_fill_(t > 3, -7.0)
    assert (t.numpy() == -7).sum() == (np.clip((a + 2 * np.array([1, 2, 3]) - .5) * 1.5, -1, 4)
                                       > 3).sum()
    t.fill_(2.5)
    assert (t.numpy() == 2.5).all()
    t **= 2
    assert (t.numpy() == 6.25).all()
    t.copy_(mg.tensor([1, 2, 3]))                     # broadcast and cast (int -> float32)
    np.testing.assert_array_equal(t.numpy(), [[1, 2, 3], [1, 2, 3]])
    assert t.dtype == mg.float32


def test_random_fills_follow_the_seed_and_the_bounds():
    mg.manual_seed(3)
    a = mg.zeros(2000).normal_(1.0, 0.5)
    mg.manual_seed(3)
    b = mg.zeros(2000).normal_(1.0, 0.5)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert abs(a.numpy().mean() - 1.0) < 0.05 and abs(a.numpy().std() - 0.5) < 0.05
    u = mg.zeros(2000).uniform_(-2, 3)
    assert u.numpy().min() >= -2 and u.numpy().max() < 3 and u.numpy().max() > 2.9
    with pytest.raises(DTypeError, match="floating-point"):
        mg.zeros(2, dtype=mg.int64).normal_()


def test_bitwise_in_place_on_masks():
    m = mg.tensor([True, False, True])
    m &= mg.tensor([True, True, False])
    m |= mg.tensor([False, True, False])
    m ^= True
    np.testing.assert_array_equal(m.numpy(), [False, False, True])


# ----------------------------------------------------------------------------- refusals
def test_a_leaf_that_requires_grad_refuses_in_place_outside_no_grad():
    w = mg.tensor([1.0], requires_grad=True)
    for act in (lambda: w.add_(1), lambda: w.__iadd__(1), lambda: w.zero_(),
                lambda: w.__setitem__(0, 3.0), lambda: w.normal_()):
        with pytest.raises(GraphError, match="leaf Variable that requires grad.*no_grad"):
            act()
    with pytest.raises(GraphError, match="a view of a leaf Variable"):
        w[0].mul_(2)
    assert w.item() == 1.0 and w._version == 0


def test_dtype_shape_and_memory_refusals():
    with pytest.raises(DTypeError, match="float32 can't be cast to the desired output type "
                                         "int64"):
        x = mg.tensor([1, 2])
        x += 1.5
    with pytest.raises(DTypeError, match="int64 can't be cast.*bool"):
        b = mg.tensor([True])
        b += 1
    with pytest.raises(DTypeError, match="float32 can't be cast.*int64"):
        mg.tensor([1, 2]).div_(2)
    with pytest.raises(ShapeError, match=r"shape \(3,\) doesn't match the broadcast shape "
                                         r"\(2, 3\)"):
        x = mg.ones(3)
        x += mg.ones(2, 3)
    with pytest.raises(GraphError, match="single memory location.*clone"):
        mg.ones(3, 1).expand(3, 2).add_(1)
    with pytest.raises(IndexRangeError, match="index assignment"):
        mg.zeros(3)[5] = 1.0
    with pytest.raises(ShapeError, match="value must broadcast"):
        mg.zeros(3, 2)[0] = mg.ones(3)
    x = mg.tensor([1, 2])
    x.copy_(mg.tensor([1.7, 2.2]))                    # copy_ casts, like torch
    np.testing.assert_array_equal(x.numpy(), [1, 2])


def test_a_view_made_under_no_grad_refuses_in_place_with_grad():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    with mg.no_grad():
        v = y[0:1]
    with pytest.raises(GraphError, match="view was created in no_grad mode"):
        v.mul_(2)
    w = mg.tensor([3.0], requires_grad=True)
    plain = mg.zeros(3)
    with mg.no_grad():
        u = plain[:2]
    with pytest.raises(GraphError, match="view was created in no_grad mode"):
        u[0] = w[0]                      # even when only the value requires grad (torch)
    y = x * 2
    with mg.no_grad():
        u = y[0:1]
    y.mul_(w)                            # its base changed under autograd: u is stale
    with pytest.raises(GraphError, match="created in no_grad mode and its base"):
        u * 3
    with mg.no_grad():
        assert (u * 3).tolist() == [18.0]  # without autograd it is just memory


# ----------------------------------------------------------------------------- versions
def test_version_counters_are_shared_by_views_and_detach_not_data():
    a = mg.ones(2, 3)
    assert a._version == 0
    a.add_(1)
    v = a[0]
    r = a.reshape(6)
    v.mul_(2)
    r[0] = 5.0
    a.T.add_(1)
    a.detach().zero_()
    assert a._version == v._version == r._version == 5
    a.data.add_(1)
    assert a._version == 5
    with mg.no_grad():
        a.unsqueeze(0).squeeze(0).add_(1)
    assert a._version == 6


def test_backward_refuses_a_saved_output_modified_in_place():
    x = _leaf([1.0, 2.0])
    y = x.exp()
    loss = y.sum()
    y.fill_(0.0)
    with pytest.raises(GraphError, match=r"shape \(2,\).*output 0 of Exp, is at version 1; "
                                         r"expected version 0"):
        loss.backward()


def test_backward_refuses_a_saved_input_modified_through_a_view_or_detach():
    x = _leaf([1.0, 2.0, 3.0])
    y = x + 1
    z = y * x                              # Mul saved y (needed for x's gradient)
    y.detach()[0] = 7.0                    # not recorded, but the version moves
    with pytest.raises(GraphError, match="input 0 of Mul"):
        z.sum().backward()
    x.grad = None
    y = x + 1
    z = (y * x).sum()
    with mg.no_grad():
        y[1:].mul_(2)
    with pytest.raises(GraphError, match="input 0 of Mul, is at version 1"):
        z.backward()


def test_in_place_on_what_no_op_saved_is_allowed():
    x = _leaf([1.0, 2.0])
    y = x + 1                    # Add saves nothing
    y += 1
    z = y * 2                    # Mul by a constant: y is not kept (only x-side grads)
    y.add_(1)
    (z.sum() + y.sum()).backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])


def test_an_optimizer_step_moves_the_version():
    w = mg.nn.Parameter(mg.tensor([1.0, 2.0]))
    opt = mg.optim.SGD([w], lr=0.1)
    loss = (w * w).sum()
    loss.backward(retain_graph=True)
    before = w._version
    opt.step()
    assert w._version == before + 1
    with pytest.raises(GraphError, match="modified by an inplace operation"):
        loss.backward()


def test_a_modified_index_or_mask_tensor_is_caught():
    x = _leaf([1.0, 2.0, 3.0])
    idx = mg.tensor([0, 0, 2])
    out = x[idx].sum()
    idx[0] = 1
    with pytest.raises(GraphError, match="indexes or masks with"):
        out.backward()
    mask = mg.tensor([True, False, True])
    out = mg.where(mask, x, 0.0).sum()
    mask.fill_(False)
    with pytest.raises(GraphError, match="indexes or masks with"):
        out.backward()


# ----------------------------------------------------------------------------- gradients
def test_assignment_into_a_non_leaf():
    x = _leaf([1.0, 2.0, 3.0])
    y = x * 2
    y[0] = 5
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0, 2, 2])


def test_assignment_of_a_value_that_requires_grad_into_a_plain_tensor():
    v = _leaf([3.0, 4.0])
    z = mg.zeros(2, 3, dtype=F64)
    z[:, 1] = v * 2
    assert z.requires_grad and not z.is_leaf
    (z * mg.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=F64)).sum().backward()
    np.testing.assert_allclose(v.grad.numpy(), [4.0, 10.0])


def test_a_repeated_index_gives_the_gradient_to_the_last_write():
    v = _leaf([1.0, 2.0, 3.0])
    z = mg.zeros(4, dtype=F64)
    z[mg.tensor([1, 1, 3])] = v
    np.testing.assert_allclose(z.detach().numpy(), [0, 2, 0, 3])
    (z * mg.tensor([10.0, 20.0, 30.0, 40.0], dtype=F64)).sum().backward()
    np.testing.assert_allclose(v.grad.numpy(), [0, 20, 40])


def test_imul_needs_the_old_value():
    x, w = _leaf([1.0, 2.0, 3.0]), _leaf([0.5, -1.0, 2.0])
    y = x * 2
    y *= w
    y *= y.detach() * 0 + 3          # a second in-place op: the first kept its own copy
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 6 * w.detach().numpy())
    np.testing.assert_allclose(w.grad.numpy(), 6 * x.detach().numpy())


def test_the_same_tensor_on_both_sides_is_refused_at_backward():
    x = _leaf([1.0, 2.0])
    y = x * 2
    y.mul_(y)
    with pytest.raises(GraphError, match="modified by an inplace operation"):
        y.sum().backward()
    x.grad = None
    y = x * 2
    y.add_(y)                        # add keeps nothing: fine, as in torch
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 4.0])


def test_in_place_through_views_rewires_the_base():
    x, w = _leaf([1.0, 2.0, 3.0, 4.0]), _leaf([0.5, -1.0])
    y = x * 2
    m = y.view(2, 2)
    m[1].mul_(w)                     # a view of a view: y[2:] *= w
    m.T[0, 0] += 10                  # and through a transpose: y[0] += 10
    assert y.grad_fn.name == "SetItem"
    np.testing.assert_allclose(y.detach().numpy(), [12, 4, 3, -8])
    (y * mg.tensor([1.0, 2.0, 3.0, 4.0], dtype=F64)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2, 4, 6 * 0.5, 8 * -1.0])
    np.testing.assert_allclose(w.grad.numpy(), [3 * 6, 4 * 8])


def test_a_view_made_before_its_base_changed_is_re_derived():
    x, w = _leaf([1.0, 2.0, 3.0]), _leaf([0.5, -1.0, 2.0])
    y = x * 2
    z = y[0:2]
    early = z.sum()                  # uses the old values
    y.mul_(w)
    np.testing.assert_allclose(z.detach().numpy(), [1.0, -4.0])
    (early + z.sum()).backward()
    np.testing.assert_allclose(x.grad.numpy(), [2 + 1.0, 2 - 2.0, 0])
    np.testing.assert_allclose(w.grad.numpy(), [2.0, 4.0, 0])


def test_fill_and_copy_send_the_gradient_to_the_source():
    x, s = _leaf([1.0, 2.0, 3.0]), _leaf(2.0)
    y = x * 2
    y.fill_(s)
    (y * mg.tensor([1.0, 2.0, 3.0], dtype=F64)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0, 0, 0])
    assert s.grad.item() == 6.0
    x.grad = None
    src = _leaf([[1.0], [2.0]], dtype=mg.float64)
    y = (x * 1).float().expand(2, 3).contiguous() * 1
    y.copy_(src)                     # broadcast (2, 1) -> (2, 3), cast float64 -> float32
    assert y.dtype == mg.float32
    y.sum().backward()
    np.testing.assert_allclose(src.grad.numpy(), [[3.0], [3.0]])
    assert src.grad.dtype == mg.float64
    np.testing.assert_allclose(x.grad.numpy(), [0, 0, 0])


def test_in_place_ops_pass_gradcheck():
    def f(x, w):
        y = x * 2
        y[1:] *= w[1:]
        y.clamp_(-3.0, 3.0)
        y.masked_fill_(x.detach() > 1.9, 0.5)
        y[0] = w[0] * y[2].clone()     # (y[2] itself would share y's version, as in torch)
        v = y.view(2, 2)
        v.T[1] += w[:2]
        return y.exp()
    rng = np.random.default_rng(0)
    x = mg.tensor(rng.uniform(-1, 1, 4), dtype=F64, requires_grad=True)
    w = mg.tensor(rng.uniform(-1, 1, 4), dtype=F64, requires_grad=True)
    mg.gradcheck(f, [x, w], seed=0)


def test_hooks_and_retain_grad_follow_the_versions():
    x = _leaf([1.0, 2.0])
    seen = []
    y = x * 2
    y.retain_grad()
    y.register_hook(lambda g: seen.append(("old", g.tolist())))
    y *= 5
    y.register_hook(lambda g: seen.append(("new", g.tolist())))
    (y * 3).sum().backward()
    assert seen == [("new", [3.0, 3.0]), ("old", [15.0, 15.0])]
    np.testing.assert_allclose(y.grad.numpy(), [3.0, 3.0])     # of the new version
    np.testing.assert_allclose(x.grad.numpy(), [30.0, 30.0])


# ----------------------------------------------------------------------------- .data
def test_data_is_a_tensor_sharing_the_parameter_storage():
    p = mg.nn.Parameter(mg.tensor([1.0, 2.0, 3.0]))
    p.grad = mg.tensor([1.0, 1.0, 1.0])
    p.data -= 0.5 * p.grad
    np.testing.assert_allclose(p.detach().numpy(), [0.5, 1.5, 2.5])
    p.data.copy_(mg.tensor([7.0, 8.0, 9.0]))
    np.testing.assert_allclose(p.detach().numpy(), [7, 8, 9])
    mg.manual_seed(0)
    p.data.normal_(0, 0.02)
    assert np.abs(p.detach().numpy()).max() < 0.1 and np.abs(p.detach().numpy()).min() > 0
    p.data.zero_()
    np.testing.assert_array_equal(p.detach().numpy(), [0, 0, 0])
    assert isinstance(p.data, mg.Tensor) and not p.data.requires_grad
    assert p.requires_grad and p.is_leaf and p._version == 0
    assert isinstance(p.detach().numpy(), np.ndarray)


def test_in_place_with_a_wider_operand_keeps_the_dtype_and_the_gradients():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    w = mg.tensor([3.0, 4.0], dtype=mg.float64, requires_grad=True)
    y = x * 2
    y *= w                    # float32 *= float64: stays float32, as in torch
    y += 1                    # and a later in-place op does not disturb the first
    assert y.dtype == mg.float32
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [6.0, 8.0])
    np.testing.assert_allclose(w.grad.numpy(), [2.0, 4.0])
    assert w.grad.dtype == mg.float64
