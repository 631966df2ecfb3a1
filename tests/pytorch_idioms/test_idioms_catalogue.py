"""A catalogue of everyday PyTorch code, written as PyTorch users write it and run with
minigrad and torch by the harness in idioms.py (each case once, with only ``lib`` swapped).
This module: PyTorch's "60-minute blitz" (tensors, autograd, a network, a classifier),
"learning PyTorch with examples" (the polynomial fit written with tensors, autograd, a custom
autograd.Function, nn, optim and a custom Module) and micrograd's loops. The catalogue goes on
in test_idioms_catalogue_nanogpt.py (nanoGPT's model.py and train.py),
test_idioms_catalogue_tensor.py (indexing, broadcasting, creation, shapes, dtypes, reductions,
sort/gather/scatter, elementwise maths, matmul) and test_idioms_catalogue_nn.py (nn modules,
functional, optimizers, grad mode, printing).

Random values differ between the libraries: the cases that draw them compare shapes, dtypes
and statistics, never the values. ``expect`` is a value worked out by hand or with NumPy."""
import math

import numpy as np
import pytest

from idioms import cases_of, check_case, idiom


def _nn(lib):
    return lib.nn


def _F(lib):
    return lib.nn.functional


# ============================================================================== the blitz: tensors
@idiom(expect=([[1, 2], [3, 4]], [[1, 2], [3, 4]]))
def blitz_tensor_from_data_and_numpy(lib):
    data = [[1, 2], [3, 4]]
    x_data = lib.tensor(data)
    np_array = np.array(data)
    x_np = lib.from_numpy(np_array)
    return x_data, x_np


@idiom(expect=([[1, 1], [1, 1]], ((2, 2), "float32", True)))
def blitz_ones_like_and_rand_like(lib):
    x_data = lib.tensor([[1, 2], [3, 4]])
    x_ones = lib.ones_like(x_data)
    x_rand = lib.rand_like(x_data, dtype=lib.float)
    in_range = bool(((x_rand >= 0) & (x_rand < 1)).all())
    return x_ones, (tuple(x_rand.shape), str(x_rand.dtype).replace("torch.", ""), in_range)


@idiom(expect=((2, 3), (2, 3), [[0.0] * 3] * 2, True))
def blitz_shape_tuple_creation(lib):
    shape = (2, 3,)
    rand_tensor = lib.rand(shape)
    ones_tensor = lib.ones(shape)
    zeros_tensor = lib.zeros(shape)
    return (tuple(rand_tensor.shape), tuple(ones_tensor.shape), zeros_tensor,
            ones_tensor.dtype == lib.float32)


@idiom(expect=((3, 4), True, "cpu"))
def blitz_tensor_attributes(lib):
    tensor = lib.rand(3, 4)
    return tuple(tensor.shape), tensor.dtype == lib.float32, str(tensor.device)


@idiom(expect=([1.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0],
               [[1.0, 0.0, 1.0, 1.0]] * 4))
def blitz_numpy_like_indexing(lib):          # first_row is a view: it sees the write
    tensor = lib.ones(4, 4)
    first_row = tensor[0]
    first_column = tensor[:, 0]
    last_column = tensor[..., -1]
    tensor[:, 1] = 0
    return first_row, first_column, last_column, tensor


@idiom(expect=(4, 12))
def blitz_cat_three_times(lib):
    tensor = lib.ones(4, 4)
    t1 = lib.cat([tensor, tensor, tensor], dim=1)
    return tuple(t1.shape)


@idiom(expect=([[2.0, 4.0], [6.0, 8.0]], [[1.0, 4.0], [9.0, 16.0]], [[5.0, 11.0], [11.0, 25.0]]))
def blitz_arithmetic_spellings(lib):
    tensor = lib.tensor([[1.0, 2.0], [3.0, 4.0]])
    y1 = tensor @ tensor.T
    y2 = tensor.matmul(tensor.T)
    assert bool((y1 == y2).all())
    z1 = tensor * tensor
    z2 = tensor.mul(tensor)
    assert bool((z1 == z2).all())
    return tensor + tensor, z1, y1


@idiom(expect=([[5.0, 11.0], [11.0, 25.0]], [[1.0, 4.0], [9.0, 16.0]]))
def blitz_out_argument(lib):
    tensor = lib.tensor([[1.0, 2.0], [3.0, 4.0]])
    y3 = lib.zeros(2, 2)
    lib.matmul(tensor, tensor.T, out=y3)
    z3 = lib.zeros(2, 2)
    lib.mul(tensor, tensor, out=z3)
    return y3, z3


@idiom(expect=(16.0, True))
def blitz_single_element_item(lib):
    tensor = lib.ones(4, 4)
    agg = tensor.sum()
    agg_item = agg.item()
    return agg_item, isinstance(agg_item, float)


@idiom(expect=[[6.0, 6.0], [6.0, 6.0]])
def blitz_in_place_add_(lib):
    tensor = lib.ones(2, 2)
    tensor.add_(5)
    return tensor


@idiom(expect=([2.0, 2.0, 2.0], [2.0, 2.0, 2.0]))
def blitz_numpy_shares_memory(lib):
    t = lib.ones(3)
    n = t.numpy()
    t.add_(1)
    return t, n.tolist()


@idiom(expect=[2.0, 2.0, 2.0])
def blitz_from_numpy_shares_memory(lib):
    n = np.ones(3)
    t = lib.from_numpy(n)
    np.add(n, 1, out=n)
    return t


# ============================================================================= the blitz: autograd
@idiom(expect=([36.0, 81.0], [-12.0, -8.0], [True, True]))
def blitz_autograd_external_grad(lib):
    a = lib.tensor([2., 3.], requires_grad=True)
    b = lib.tensor([6., 4.], requires_grad=True)
    Q = 3 * a ** 3 - b ** 2
    external_grad = lib.tensor([1., 1.])
    Q.backward(gradient=external_grad)
    return a.grad, b.grad, (9 * a ** 2 == a.grad).tolist()


@idiom(expect=(False, True))
def blitz_requires_grad_propagates(lib):
    x = lib.rand(5, 5)
    y = lib.rand(5, 5)
    z = lib.rand((5, 5), requires_grad=True)
    a = x + y
    b = x + z
    return a.requires_grad, b.requires_grad


@idiom(expect=(["fc.weight", "fc.bias"], 20))
def blitz_freeze_all_but_a_new_head(lib):
    nn = _nn(lib)
    model = nn.Sequential()
    model.body = nn.Linear(4, 4)
    model.fc = nn.Linear(4, 3)
    for param in model.parameters():
        param.requires_grad = False
    model.fc = nn.Linear(4, 2)          # a fresh head: the only part that trains
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    return trainable, sum(p.numel() for p in model.parameters() if not p.requires_grad)


# ============================================================================ the blitz: a network
@idiom(expect=(10, (6, 1, 5, 5), (1, 10), (1, 10)))
def blitz_lenet(lib):
    nn, F = _nn(lib), _F(lib)

    class Net(nn.Module):
        def __init__(self):
            super(Net, self).__init__()
            self.conv1 = nn.Conv2d(1, 6, 5)
            self.conv2 = nn.Conv2d(6, 16, 5)
            self.fc1 = nn.Linear(16 * 5 * 5, 120)
            self.fc2 = nn.Linear(120, 84)
            self.fc3 = nn.Linear(84, 10)

        def forward(self, input):
            c1 = F.relu(self.conv1(input))
            s2 = F.max_pool2d(c1, (2, 2))
            c3 = F.relu(self.conv2(s2))
            s4 = F.max_pool2d(c3, 2)
            s4 = lib.flatten(s4, 1)
            f5 = F.relu(self.fc1(s4))
            f6 = F.relu(self.fc2(f5))
            return self.fc3(f6)

    net = Net()
    params = list(net.parameters())
    input = lib.randn(1, 1, 32, 32)
    out = net(input)
    net.zero_grad()
    out.backward(lib.randn(1, 10))
    return (len(params), tuple(params[0].size()), tuple(out.shape),
            tuple(net.fc3.bias.grad.unsqueeze(0).shape))


@idiom(expect=(True, True))
def blitz_manual_update_with_data_sub_(lib):
    nn = _nn(lib)
    net = nn.Linear(3, 2)
    before = [p.detach().clone() for p in net.parameters()]
    out = net(lib.ones(4, 3))
    criterion = nn.MSELoss()
    loss = criterion(out, lib.zeros(4, 2))
    net.zero_grad()
    loss.backward()
    learning_rate = 0.01
    for f in net.parameters():
        f.data.sub_(f.grad.data * learning_rate)
    changed = [bool((p != b).any()) for p, b in zip(net.parameters(), before)]
    expected = [bool(lib.allclose(p, b - 0.01 * p.grad)) for p, b in zip(net.parameters(), before)]
    return all(changed), all(expected)


@idiom(expect=(None, True))
def blitz_bias_grad_none_after_zero_grad(lib):
    nn = _nn(lib)
    net = nn.Linear(3, 2)
    net(lib.ones(1, 3)).sum().backward()
    net.zero_grad()
    before = net.bias.grad
    net(lib.ones(1, 3)).sum().backward()
    return before, net.bias.grad is not None


@idiom(expect=((4, 10), 4, True))
def blitz_classifier_accuracy_loop(lib):
    outputs = lib.tensor([[0.9] + [0.1] * 9, [0.0] * 9 + [1.0], [2.0] + [0.0] * 9,
                          [0.0] * 3 + [0.9] + [0.0] * 6])
    labels = lib.tensor([0, 9, 1, 3])
    correct = 0
    total = 0
    _, predicted = lib.max(outputs.data, 1)
    total += labels.size(0)
    correct += (predicted == labels).sum().item()
    return tuple(outputs.shape), total, correct == 3


@idiom(expect=((2, 6, 28, 28), [[[[5.0, 7.0], [13.0, 15.0]]]]))
def blitz_cifar_conv_and_pool(lib):
    nn = _nn(lib)
    pool = nn.MaxPool2d(2, 2)
    conv = nn.Conv2d(3, 6, 5)
    z = conv(lib.randn(2, 3, 32, 32))
    return tuple(z.shape), pool(lib.arange(16.0).reshape(1, 1, 4, 4))


# ================================================================== learning PyTorch with examples
def _fit_poly(lib, steps=200):
    x = lib.linspace(-math.pi, math.pi, 200)
    y = lib.sin(x)
    a = lib.tensor(0.1, requires_grad=True)
    b = lib.tensor(0.2, requires_grad=True)
    c = lib.tensor(-0.1, requires_grad=True)
    d = lib.tensor(0.05, requires_grad=True)
    learning_rate = 1e-5
    for t in range(steps):
        y_pred = a + b * x + c * x ** 2 + d * x ** 3
        loss = (y_pred - y).pow(2).sum()
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
    return loss.item(), [a.item(), b.item(), c.item(), d.item()]


@idiom(rtol=1e-4)
def examples_polynomial_with_autograd(lib):
    return _fit_poly(lib)


@idiom(rtol=1e-4)
def examples_polynomial_with_tensors_and_manual_grads(lib):
    x = lib.linspace(-math.pi, math.pi, 200)
    y = lib.sin(x)
    a, b, c, d = (lib.tensor(v) for v in (0.1, 0.2, -0.1, 0.05))
    learning_rate = 1e-5
    for t in range(100):
        y_pred = a + b * x + c * x ** 2 + d * x ** 3
        loss = (y_pred - y).pow(2).sum().item()
        grad_y_pred = 2.0 * (y_pred - y)
        grad_a = grad_y_pred.sum()
        grad_b = (grad_y_pred * x).sum()
        grad_c = (grad_y_pred * x ** 2).sum()
        grad_d = (grad_y_pred * x ** 3).sum()
        a -= learning_rate * grad_a
        b -= learning_rate * grad_b
        c -= learning_rate * grad_c
        d -= learning_rate * grad_d
    return loss, [a.item(), b.item(), c.item(), d.item()]


def _legendre(lib):
    class LegendrePolynomial3(lib.autograd.Function):
        @staticmethod
        def forward(ctx, input):
            ctx.save_for_backward(input)
            return 0.5 * (5 * input ** 3 - 3 * input)

        @staticmethod
        def backward(ctx, grad_output):
            input, = ctx.saved_tensors
            return grad_output * 1.5 * (5 * input ** 2 - 1)
    return LegendrePolynomial3


@idiom(expect=([-0.4375, 0.0, 1.0], [0.375, -1.5, 6.0]))
def examples_custom_autograd_function(lib):
    P3 = _legendre(lib).apply
    x = lib.tensor([0.5, 0.0, 1.0], requires_grad=True)
    y = P3(x)
    y.sum().backward()
    return y.detach(), x.grad


@idiom(rtol=1e-4)
def examples_custom_function_in_a_fit(lib):
    P3 = _legendre(lib).apply
    x = lib.linspace(-math.pi, math.pi, 100)
    y = lib.sin(x)
    a = lib.full((), 0.1, requires_grad=True)
    b = lib.full((), -1.0, requires_grad=True)
    c = lib.full((), 0.0, requires_grad=True)
    d = lib.full((), 0.3, requires_grad=True)
    for t in range(50):
        y_pred = a + b * P3(c + d * x)
        loss = (y_pred - y).pow(2).sum()
        loss.backward()
        with lib.no_grad():
            for p in (a, b, c, d):
                p -= 5e-6 * p.grad
                p.grad = None
    return loss.item(), [a.item(), b.item(), c.item(), d.item()]


def _poly_features(lib):
    x = lib.linspace(-math.pi, math.pi, 100)
    y = lib.sin(x)
    p = lib.tensor([1, 2, 3])
    xx = x.unsqueeze(-1).pow(p)
    return xx, y


def _poly_model(lib):
    nn = _nn(lib)
    model = nn.Sequential(nn.Linear(3, 1), nn.Flatten(0, 1))
    with lib.no_grad():
        model[0].weight.copy_(lib.tensor([[0.3, -0.1, 0.05]]))
        model[0].bias.fill_(0.1)
    return model


@idiom(expect=((100, 3), "float32"))
def examples_pow_with_an_integer_exponent_tensor(lib):
    xx, _ = _poly_features(lib)
    return tuple(xx.shape), str(xx.dtype).replace("torch.", "")


@idiom(rtol=1e-4)
def examples_nn_module_with_manual_update(lib):
    nn = _nn(lib)
    xx, y = _poly_features(lib)
    model = _poly_model(lib)
    loss_fn = nn.MSELoss(reduction='sum')
    learning_rate = 1e-6
    for t in range(50):
        y_pred = model(xx)
        loss = loss_fn(y_pred, y)
        model.zero_grad()
        loss.backward()
        with lib.no_grad():
            for param in model.parameters():
                param -= learning_rate * param.grad
    linear_layer = model[0]
    return (loss.item(), linear_layer.bias.item(), linear_layer.weight[:, 0].item(),
            linear_layer.weight[:, 1].item())


@idiom(rtol=1e-4)
def examples_optim_rmsprop(lib):
    nn = _nn(lib)
    xx, y = _poly_features(lib)
    model = _poly_model(lib)
    loss_fn = nn.MSELoss(reduction='sum')
    optimizer = lib.optim.RMSprop(model.parameters(), lr=1e-3)
    for t in range(30):
        y_pred = model(xx)
        loss = loss_fn(y_pred, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return loss.item(), model[0].weight.detach(), model[0].bias.detach()


@idiom(rtol=1e-4)
def examples_custom_module_polynomial(lib):
    nn = _nn(lib)

    class Polynomial3(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Parameter(lib.tensor(0.1))
            self.b = nn.Parameter(lib.tensor(0.2))
            self.c = nn.Parameter(lib.tensor(-0.1))
            self.d = nn.Parameter(lib.tensor(0.05))

        def forward(self, x):
            return self.a + self.b * x + self.c * x ** 2 + self.d * x ** 3

        def string(self):
            return f'y = {self.a.item():.3f} + {self.b.item():.3f} x'

    x = lib.linspace(-math.pi, math.pi, 100)
    y = lib.sin(x)
    model = Polynomial3()
    criterion = nn.MSELoss(reduction='sum')
    optimizer = lib.optim.SGD(model.parameters(), lr=1e-6)
    for t in range(40):
        loss = criterion(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return loss.item(), len(list(model.parameters())), model.string()[:4]


@idiom(expect=((8, 1), 4, True))
def examples_dynamic_net_reuses_a_layer(lib):
    nn = _nn(lib)

    class DynamicNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.middle = nn.Linear(4, 4)
            self.outer = nn.Linear(4, 1)

        def forward(self, x, n):
            for _ in range(n):
                x = self.middle(x).relu()
            return self.outer(x)

    net = DynamicNet()
    out = net(lib.ones(8, 4), 3)
    out.sum().backward()
    return tuple(out.shape), len(list(net.parameters())), net.middle.weight.grad is not None


# =========================================================================== micrograd-style loops
@idiom(expect=True)
def micrograd_python_sum_of_tensors(lib):
    xs = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
    ys = [1.0, -1.0, -1.0, 1.0]
    w = lib.tensor([0.1, -0.2, 0.3], requires_grad=True)
    ypred = [(w * lib.tensor(x)).sum().tanh() for x in xs]
    loss = sum((yout - ygt) ** 2 for ygt, yout in zip(ys, ypred))
    loss.backward()
    return isinstance(loss, lib.Tensor) and loss.ndim == 0 and w.grad.shape == (3,)


@idiom(rtol=1e-4)
def micrograd_training_loop_with_zero_grad(lib):
    xs = lib.tensor([[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]])
    ys = lib.tensor([1.0, -1.0, -1.0, 1.0])
    w1 = lib.tensor([[0.1, -0.2, 0.3, 0.0], [0.2, 0.1, -0.1, 0.3], [-0.3, 0.2, 0.1, 0.1]],
                    requires_grad=True)
    w2 = lib.tensor([[0.5], [-0.4], [0.3], [0.2]], requires_grad=True)
    losses = []
    for k in range(20):
        ypred = ((xs @ w1).tanh() @ w2).tanh().squeeze(-1)
        loss = ((ypred - ys) ** 2).sum()
        for p in (w1, w2):
            if p.grad is not None:
                p.grad.zero_()
        loss.backward()
        for p in (w1, w2):
            p.data += -0.1 * p.grad
        losses.append(loss.item())
    return losses[-1], losses[-1] < losses[0]


@idiom(expect=([4.0, 6.0], [2.0, 3.0]))
def gradients_accumulate_until_zeroed(lib):
    x = lib.tensor([1.0, 1.5], requires_grad=True)
    (x * x).sum().backward()
    (x * x).sum().backward()
    g2 = x.grad.clone()
    x.grad.zero_()
    (x * 2).sum().backward()
    return g2, x.grad + lib.tensor([0.0, 1.0])


@pytest.mark.parametrize("name", cases_of(__name__))
def test_idiom(name):
    check_case(name)
