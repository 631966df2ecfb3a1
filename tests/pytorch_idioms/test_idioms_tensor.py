"""PyTorch idioms about the tensor itself, written once in torch spelling and run with
minigrad and torch (see tests/idioms.py): truth and comparison, in-place updates and
their autograd rules (the version counter), ``.data``, dtypes and promotion, and the
autograd entry points (backward(gradient=), autograd.grad, inference_mode)."""
import math

import numpy as np
import pytest

from idioms import cases_of, check_case, idiom


# ----------------------------------------------------------------------------- comparison
@idiom(expect=[False, True, False])
def compare_with_a_scalar(lib):
    t = lib.tensor([1.0, 6.0, 3.0])
    return t == 6.0


@idiom(expect=([[False, False], [True, True]], [[True, True], [False, False]],
               [[True, False], [True, True]]))
def compare_tensors_with_broadcasting(lib):
    a = lib.tensor([[1, 2], [3, 4]])
    b = lib.tensor([2, 2])
    return a > b, a <= b, a != b


@idiom(expect=[True, False, True])
def compare_int_and_float_tensors(lib):
    return lib.tensor([1, 2, 3]) == lib.tensor([1.0, 2.5, 3.0])


@idiom(expect=(True, False))
def a_float32_tensor_equals_the_python_float_it_was_made_from(lib):
    t = lib.tensor([0.1])
    return bool(t == 0.1), bool(t.double() == 0.1)


@idiom(expect=(False, True, True))
def bool_of_one_element(lib):
    return bool(lib.tensor([0.0])), bool(lib.tensor(2.0)), bool(lib.tensor([[3]]))


@idiom
def bool_of_several_elements_is_ambiguous(lib):
    return bool(lib.tensor([1.0, 2.0]))


@idiom
def bool_of_an_empty_tensor_is_ambiguous(lib):
    return bool(lib.tensor([]))


@idiom(expect=0.25)
def if_loss_below_best(lib):
    best = float("inf")
    for v in [0.5, 0.25, 0.75]:
        loss = lib.tensor(v)
        if loss < best:
            best = loss.item()
    return best


@idiom(expect=(2.75, 2, 2.75, -2))
def float_int_item(lib):
    t = lib.tensor([2.75])
    return float(t), int(t), t.item(), int(lib.tensor(-2.5))


@idiom
def float_of_several_elements_raises(lib):
    return float(lib.tensor([1.0, 2.0]))


@idiom(expect=(20, 30))
def an_integer_tensor_indexes_a_list(lib):
    xs = [10, 20, 30]
    return xs[lib.tensor(1)], xs[lib.tensor([2])]


@idiom
def a_float_tensor_is_not_an_index(lib):
    return [10, 20, 30][lib.tensor(1.0)]


@idiom(expect=("loss 1.235", "0.500", True))
def format_a_loss(lib):
    loss = lib.tensor(1.23456)
    t = lib.tensor([1.0, 2.0])
    return f"loss {loss:.3f}", format(lib.tensor(0.5), ".3f"), format(t, "") == str(t)


@idiom(expect=([[1, 2], [3, 4]], 1.5, [True, False]))
def tolist(lib):
    return (lib.tensor([[1, 2], [3, 4]]).tolist(), lib.tensor(1.5).tolist(),
            lib.tensor([True, False]).tolist())


@idiom(expect=(2, [3, 7], [[1, 2], [3, 4]]))
def len_and_iteration(lib):
    t = lib.tensor([[1, 2], [3, 4]])
    return len(t), [row.sum().item() for row in t], [row.tolist() for row in t]


@idiom
def len_of_a_0d_tensor_raises(lib):
    return len(lib.tensor(3.0))


@idiom
def iterating_a_0d_tensor_raises(lib):
    return list(lib.tensor(3.0))


@idiom(expect=np.array([1.5, 2.5], dtype=np.float32))
def numpy_asarray_gives_the_numbers(lib):
    return np.asarray(lib.tensor([1.5, 2.5]))


@idiom(expect=(True, False, [True, True], [[False, True]]))
def any_and_all(lib):
    t = lib.tensor([[0.0, 1.0], [0.0, 2.0]])
    return t.any(), t.all(), t.any(dim=1), t.all(dim=0, keepdim=True)


@idiom(expect=([True, False, False], [True, True, True], [False, True, True],
               [False, True, False]))
def logical_operators_on_bool_tensors(lib):
    a = lib.tensor([True, False, True])
    b = lib.tensor([True, True, False])
    return a & b, a | b, a ^ b, ~a


@idiom(expect=([2, 1], [-1, -6], [7, 7]))
def bitwise_operators_on_int_tensors(lib):
    a = lib.tensor([6, 3])
    b = lib.tensor([3, 5])
    return a & b, ~lib.tensor([0, 5]), a | b


@idiom
def bitwise_and_of_floats_raises(lib):
    return lib.tensor([1.0]) & lib.tensor([1.0])


@idiom
def invert_of_a_float_tensor_raises(lib):
    return ~lib.tensor([1.0])


@idiom(expect=([1.0, 0.0, 3.0], [1.0, -1.0, 3.0]))
def where_function_and_method(lib):
    x = lib.tensor([1.0, -2.0, 3.0])
    return lib.where(x > 0, x, 0.0), x.where(x > 0, lib.tensor(-1.0))


@idiom(expect=[2.0, 4.0])
def boolean_mask_indexing(lib):
    x = lib.tensor([1.0, 2.0, 3.0, 4.0])
    y = lib.tensor([0, 1, 0, 1])
    return x[y == 1]


@idiom(expect=2 / 3, rtol=1e-6)
def accuracy(lib):
    pred = lib.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]]).argmax(dim=1)
    y = lib.tensor([1, 1, 1])
    return (pred == y).float().mean().item()


@idiom(expect=[[0.0, -math.inf, -math.inf], [0.0, 0.0, -math.inf], [0.0, 0.0, 0.0]])
def nanogpt_causal_mask(lib):
    att = lib.zeros(3, 3)
    bias = lib.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]])
    return att.masked_fill(bias == 0, float("-inf"))


@idiom(expect=[1, 0])
def masked_fill_keeps_the_dtype(lib):
    return lib.tensor([1, 2]).masked_fill(lib.tensor([False, True]), 0.5)


@idiom(expect=(True, False, True))
def membership(lib):
    t = lib.tensor([1, 2, 3])
    return 2 in t, 5 in t, 2.0 in t


@idiom(expect=("a", "b", 2, False))
def tensors_are_dict_keys_by_identity(lib):
    a, b = lib.tensor([1.0]), lib.tensor([1.0])
    d = {a: "a", b: "b"}
    return d[a], d[b], len(d), a == None  # noqa: E711  (torch: False, not an error)


# ----------------------------------------------------------------------------- assignment
@idiom(expect=[1.0, 0.0, 0.0])
def assign_through_a_mask(lib):
    x = lib.tensor([1.0, 5.0, 3.0])
    x[x > 2] = 0.0
    return x


@idiom(expect=[[1.0, 2.0, 9.0], [0.0, 0.0, 9.0]])
def assign_rows_and_columns(lib):
    x = lib.zeros(2, 3)
    x[0] = lib.tensor([1.0, 2.0, 3.0])
    x[:, 2] = 9
    return x


@idiom(expect=[1, 7, 3])
def assign_a_float_into_an_int_tensor_truncates(lib):
    x = lib.tensor([1, 2, 3])
    x[1] = 7.9
    return x


# ----------------------------------------------------------------------------- in place
@idiom(expect=[[11.0, 12.0], [3.0, 4.0]])
def iadd_through_a_view_updates_the_base(lib):
    x = lib.tensor([[1.0, 2.0], [3.0, 4.0]])
    v = x[0]
    v += 10
    return x


@idiom(expect=([4.5, 6.0], [1.0, 1.0], [0.0, 3.0]))
def in_place_methods(lib):
    x = lib.tensor([1.0, 2.0])
    x.add_(lib.tensor([1.0, 1.0]), alpha=2).mul_(3).div_(2)
    y = lib.tensor([5.0, -5.0]).zero_().fill_(2.0).sub_(lib.tensor(0.5), alpha=2)
    z = lib.tensor([-1.0, 7.0]).clamp_(0, 3)
    return x, y, z


@idiom(expect=[[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
def copy_broadcasts_and_casts(lib):
    x = lib.zeros(2, 3)
    x.copy_(lib.tensor([1, 2, 3]))
    return x


@idiom(expect=[0.512, -0.512])
def manual_sgd_under_no_grad(lib):
    w = lib.tensor([1.0, -1.0], requires_grad=True)
    for _ in range(3):
        loss = (w * w).sum()
        loss.backward()
        with lib.no_grad():
            w -= 0.1 * w.grad
        w.grad.zero_()
    return w.detach()


@idiom(expect=[0.512, -0.512])
def micrograd_style_sgd_on_data(lib):
    w = lib.tensor([1.0, -1.0], requires_grad=True)
    for _ in range(3):
        w.grad = None
        (w * w).sum().backward()
        w.data -= 0.1 * w.grad
    return w.detach()


@idiom(expect=True)
def learning_pytorch_with_examples_polynomial_fit(lib):
    # PyTorch's tutorial, "PyTorch: Tensors and autograd": a cubic fit, updated by hand
    x = lib.tensor(np.linspace(-1, 1, 200), dtype=lib.float32)
    y = x.tanh()
    a, b, c, d = (lib.tensor(v, requires_grad=True) for v in (0.3, -0.2, 0.1, 0.05))
    learning_rate, losses = 0.2, []
    for _ in range(300):
        y_pred = a + b * x + c * x ** 2 + d * x ** 3
        loss = ((y_pred - y) ** 2).mean()
        losses.append(loss.item())
        loss.backward()
        with lib.no_grad():
            a -= learning_rate * a.grad
            b -= learning_rate * b.grad
            c -= learning_rate * c.grad
            d -= learning_rate * d.grad
            a.grad = None
            b.grad = None
            c.grad = None
            d.grad = None
    return losses[-1] < losses[0] / 20


@idiom(expect=True)
def micrograd_training_loop(lib):
    # micrograd's demo: an MLP, a hinge loss, p.data += -lr * p.grad
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((64, 2))
    ys = np.where(xs[:, 0] + 0.5 * xs[:, 1] > 0, 1.0, -1.0)
    X, Y = lib.tensor(xs), lib.tensor(ys)
    params = [lib.tensor(rng.standard_normal(s) * 0.5, requires_grad=True)
              for s in [(2, 16), (16,), (16, 1), (1,)]]
    w1, b1, w2, b2 = params
    losses = []
    for k in range(60):
        scores = ((X @ w1 + b1).tanh() @ w2 + b2).reshape(-1)
        loss = (1 - Y * scores).relu().mean()
        losses.append(loss.item())
        for p in params:
            p.grad = None
        loss.backward()
        learning_rate = 0.5 - 0.4 * k / 60
        for p in params:
            p.data += -learning_rate * p.grad
    return losses[-1] < losses[0] / 3


@idiom
def in_place_on_a_leaf_that_requires_grad_raises(lib):
    w = lib.tensor([1.0], requires_grad=True)
    w += 1
    return w


@idiom
def in_place_on_a_view_of_a_leaf_raises(lib):
    w = lib.tensor([1.0, 2.0], requires_grad=True)
    w[0].mul_(2)
    return w


@idiom
def int_plus_equals_float_raises(lib):
    x = lib.tensor([1, 2])
    x += 1.5
    return x


@idiom
def in_place_cannot_broadcast_its_target(lib):
    x = lib.ones(3)
    x += lib.ones(2, 3)
    return x


@idiom
def in_place_on_an_expanded_tensor_raises(lib):
    return lib.ones(3, 1).expand(3, 2).add_(1)


@idiom
def modified_after_saving_raises_at_backward(lib):
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()
    loss = y.sum()
    y.fill_(0.0)
    loss.backward()
    return x.grad


@idiom(expect=[1.0, 1.0])
def in_place_on_what_nothing_saved_is_fine(lib):
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    y = x + 1
    y += 1
    y.sum().backward()
    return x.grad


@idiom(expect=(4, 0))
def version_counter(lib):
    a = lib.ones(2)
    a.add_(1)
    a.mul_(2)
    a[0].add_(1)          # a view shares the counter
    a.detach().add_(1)    # so does detach()
    a.data.add_(1)        # .data has its own
    return a._version, lib.ones(2)._version


@idiom(expect=[0.0, 2.0, 2.0])
def assign_into_a_non_leaf_is_differentiable(lib):
    x = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 2
    y[0] = 5
    y.sum().backward()
    return x.grad


@idiom(expect=([1.0, -2.0, 4.0], [2.0, 4.0, 6.0]))
def imul_of_a_non_leaf_is_differentiable(lib):
    x = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
    w = lib.tensor([0.5, -1.0, 2.0], requires_grad=True)
    y = x * 2
    y *= w
    y.sum().backward()
    return x.grad, w.grad


@idiom(expect=([2.0, -2.0, 4.0], [0.0, 4.0, 6.0]))
def in_place_through_a_slice(lib):
    x = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
    w = lib.tensor([0.5, -1.0, 2.0], requires_grad=True)
    y = x * 2
    y[1:] *= w[1:]
    y.sum().backward()
    return x.grad, w.grad


@idiom(expect=([1.0, -2.0, 0.0], [2.0, 4.0, 0.0]))
def a_view_made_before_its_base_changed(lib):
    x = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
    w = lib.tensor([0.5, -1.0, 2.0], requires_grad=True)
    y = x * 2
    z = y[0:2]
    y.mul_(w)
    z.sum().backward()
    return x.grad, w.grad


@idiom
def the_same_tensor_on_both_sides_of_mul_(lib):
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.mul_(y)
    y.sum().backward()
    return x.grad


@idiom
def a_no_grad_view_of_a_changed_base_raises(lib):
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    with lib.no_grad():
        v = y[0:1]
    y.mul_(lib.tensor([3.0, 3.0], requires_grad=True))
    return v * 3


@idiom
def optimizer_step_between_forward_and_backward_raises(lib):
    w = lib.nn.Parameter(lib.tensor([1.0, 2.0]))
    opt = lib.optim.SGD([w], lr=0.1)
    loss = (w * w).sum()
    loss.backward(retain_graph=True)
    opt.step()
    loss.backward()
    return w.grad


# ----------------------------------------------------------------------------- .data
@idiom(expect=([0.5, 1.5], [0.0, 0.0], [7.0, 8.0], True))
def data_updates_the_parameter(lib):
    p = lib.nn.Parameter(lib.tensor([1.0, 2.0]))
    p.grad = lib.tensor([1.0, 1.0])
    p.data -= 0.5 * p.grad
    first = p.detach().clone()
    p.data.zero_()
    second = p.detach().clone()
    p.data.copy_(lib.tensor([7.0, 8.0]))
    third = p.detach().clone()
    p.data.normal_(0, 0.02)
    return first, second, third, bool((p.abs() < 0.2).all()) and p.requires_grad


# ----------------------------------------------------------------------------- dtypes
@idiom(expect=([1.0, 2.0], [1, 2], [True], [0.5], [1.0, 2.5]))
def constructor_dtypes(lib):
    return (lib.tensor([1.0, 2.0]), lib.tensor([1, 2]), lib.tensor([True]),
            lib.tensor(np.array([0.5])), lib.tensor([1, 2.5]))


@idiom(expect=(True, True, True, True, False))
def dtype_objects_compare(lib):
    x = lib.tensor([1.0])
    return (x.dtype == lib.float32, x.double().dtype == lib.float64, lib.float == lib.float32,
            lib.long == lib.int64, x.dtype == lib.float64)


@idiom(expect=([1.0], [1.0], [1.0], [1.0], [1]))
def the_forms_of_to(lib):
    x = lib.tensor([1.0])
    return (x.to(lib.float64), x.to("cpu"), x.to("cpu", lib.float64),
            x.to(dtype=lib.float64, device="cpu"), x.to(lib.tensor([1], dtype=lib.int64)))


@idiom
def to_a_dtype_name_string_raises(lib):
    return lib.tensor([1.0]).to("float64")


@idiom(expect=([1.0, 2.0], [1, 2], [1, 2], [True, True], [1.0, 2.0], (True, False)))
def casts(lib):
    x = lib.tensor([1.5, 2.5])
    i = lib.tensor([1, 2])
    return (i.float(), x.long(), x.int(), x.bool(), i.type_as(lib.tensor([0.0])).double(),
            (x.is_floating_point(), i.is_floating_point()))


@idiom(expect=([0.5, 1.0, 1.5], [2.0, 1.0]))
def true_division_of_integers_is_float32(lib):
    return lib.tensor([1, 2, 3]) / 2, 2 / lib.tensor([1, 2])


@idiom(expect=([2.0], [2.0], [3.5], [2], [2], [2.0], [2]))
def type_promotion(lib):
    f32, i64 = lib.tensor([1.0]), lib.tensor([1])
    return (f32 + lib.tensor(1.0, dtype=lib.float64),        # 0-d is weak: float32
            i64 + lib.tensor(1.0, dtype=lib.float64),        # higher category: float64
            i64 + 2.5,                                       # int + float -> float32
            lib.tensor([True]) + 1,                          # bool + int -> int64
            lib.tensor([1], dtype=lib.int32) + 1,            # int32 stays int32
            f32 + lib.tensor([1.0], dtype=lib.float64),      # dims: float64
            lib.tensor([1], dtype=lib.uint8) + lib.tensor([1], dtype=lib.int8))   # int16


@idiom(expect=([1.0, 1.4142135], [2, 4], [1, 4]))
def powers_of_integer_tensors(lib):
    t = lib.tensor([1, 2])
    return t ** 0.5, 2 ** t, t ** 2


@idiom
def mean_of_an_integer_tensor_raises(lib):
    return lib.tensor([1, 2]).mean()


# ----------------------------------------------------------------------------- autograd
@idiom(expect=[2.0, 4.0, 6.0])
def backward_with_gradient_keyword(lib):
    x = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 2
    y.backward(gradient=lib.tensor([1.0, 2.0, 3.0]))
    return x.grad


@idiom(expect=([2.0, 4.0], None, [5.0, 5.0]))
def autograd_grad_leaves_dot_grad_alone(lib):
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    (g,) = lib.autograd.grad((x * x).sum(), x)
    (h,) = lib.autograd.grad([(x * 2).sum(), (x * 3).sum()], [x])
    return g, x.grad, h


@idiom(expect=([3.0, 3.0], None))
def autograd_grad_allow_unused(lib):
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    w = lib.tensor([1.0], requires_grad=True)
    return lib.autograd.grad((x * 3).sum(), [x, w], allow_unused=True)


@idiom
def autograd_grad_of_an_unused_input_raises(lib):
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    w = lib.tensor([1.0], requires_grad=True)
    return lib.autograd.grad((x * 3).sum(), [x, w])


@idiom(expect=(False, False, True))
def inference_mode(lib):
    x = lib.tensor([1.0], requires_grad=True)
    with lib.inference_mode():
        y = x * 2

    @lib.inference_mode()
    def f(t):
        return t * 2
    return y.requires_grad, f(x).requires_grad, (x * 2).requires_grad


@pytest.mark.parametrize("name", cases_of(__name__))
def test_idiom(name):
    check_case(name)
