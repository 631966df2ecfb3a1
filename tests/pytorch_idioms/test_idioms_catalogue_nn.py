"""The PyTorch-idiom catalogue (see test_idioms_catalogue.py), continued: nn modules,
nn.functional, optimizers and schedulers, grad mode and autograd, printing."""
import collections
import copy

import numpy as np
import pytest

from idioms import cases_of, check_case, idiom


def _nn(lib):
    return lib.nn


def _F(lib):
    return lib.nn.functional


# ====================================================================================== nn modules
@idiom(expect=((3, 2), (3,), None, (5, 3)))
def linear_shapes_and_no_bias(lib):
    nn = _nn(lib)
    layer = nn.Linear(2, 3)
    nobias = nn.Linear(2, 3, bias=False)
    return (tuple(layer.weight.shape), tuple(layer.bias.shape), nobias.bias,
            tuple(layer(lib.ones(5, 2)).shape))


@idiom(expect=(["0.weight", "0.bias", "2.weight", "2.bias"], ["", "0", "1", "2"], 3, 27))
def sequential_names(lib):
    nn = _nn(lib)
    model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 3))
    return ([n for n, _ in model.named_parameters()], [n for n, _ in model.named_modules()],
            len(list(model.children())), sum(p.numel() for p in model.parameters()))


@idiom(expect=(["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"], (4, 2), 3))
def sequential_from_an_ordered_dict(lib):
    nn = _nn(lib)
    model = nn.Sequential(collections.OrderedDict([
        ('fc1', nn.Linear(2, 4)), ('act', nn.Tanh()), ('fc2', nn.Linear(4, 1))]))
    return [n for n, _ in model.named_parameters()], tuple(model.fc1.weight.shape), len(model)


@idiom(expect=(2, (4, 1), 2, True))
def sequential_indexing_and_slicing(lib):
    nn = _nn(lib)
    model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1))
    head = model[:2]
    return (len(head), tuple(model[-1].weight.shape[::-1]), sum(1 for _ in head),
            isinstance(model[1], nn.ReLU))


@idiom(expect=(3, ["layers.0.weight", "layers.0.bias"], ["a", "b"], (1, 2)))
def module_list_and_dict(lib):
    nn = _nn(lib)

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(2)])
            self.layers.append(nn.Linear(2, 2))
            self.heads = nn.ModuleDict({'a': nn.Linear(2, 1), 'b': nn.Linear(2, 2)})

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return self.heads['b'](x)

    m = M()
    return (len(m.layers), [n for n, _ in m.named_parameters()][:2], list(m.heads.keys()),
            tuple(m(lib.ones(1, 2)).shape))


@idiom(expect=([0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]))
def apply_an_init_function(lib):
    nn = _nn(lib)
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2))

    def init_fn(m):
        if type(m) == nn.Linear:
            nn.init.zeros_(m.bias)
            nn.init.ones_(m.weight)

    model.apply(init_fn)
    return (lib.cat([m.bias for m in model if isinstance(m, nn.Linear)]).detach(),
            lib.cat([m.weight.flatten()[:2] for m in model if isinstance(m, nn.Linear)]).detach())


@idiom(expect=(False, [False, False], True))
def module_requires_grad_and_zero_grad(lib):
    nn = _nn(lib)
    m = nn.Linear(2, 2)
    m(lib.ones(1, 2)).sum().backward()
    m.zero_grad()
    g = m.weight.grad
    m.requires_grad_(False)
    flags = [p.requires_grad for p in m.parameters()]
    return g is not None and bool(g.any()), flags, m(lib.ones(1, 2)).requires_grad is False


@idiom(expect=("float64", "float64", "float32"))
def module_to_dtype_and_double(lib):
    nn = _nn(lib)
    m = nn.Linear(2, 2)
    m.to(lib.float64)
    a = str(m.weight.dtype).replace("torch.", "")
    m.float().double()
    b = str(m.bias.dtype).replace("torch.", "")
    m.float()
    return a, b, str(m(lib.ones(1, 2)).dtype).replace("torch.", "")


@idiom(expect=((2, 3, 4), True))
def embedding_lookup(lib):
    emb = lib.nn.Embedding(10, 4)
    out = emb(lib.tensor([[1, 2, 3], [4, 5, 6]]))
    return tuple(out.shape), bool((out[0, 0] == emb.weight[1]).all())


@idiom
def embedding_with_a_float_index_raises(lib):
    return lib.nn.Embedding(10, 4)(lib.tensor([1.0, 2.0]))


@idiom
def embedding_index_out_of_range_raises(lib):
    return lib.nn.Embedding(10, 4)(lib.tensor([10]))


@idiom(expect=([0.0, 0.0], [1.0, 1.0]))
def layer_norm_normalizes_rows(lib):
    ln = lib.nn.LayerNorm(4)
    x = lib.tensor([[1.0, 2.0, 3.0, 4.0], [2.0, 0.0, -2.0, 8.0]])
    y = ln(x)
    return y.mean(dim=-1).abs().round(decimals=5), y.var(dim=-1, unbiased=False).round(decimals=3)


@idiom(expect=(True, True, True))
def dropout_in_train_and_eval(lib):
    drop = lib.nn.Dropout(p=0.5)
    x = lib.ones(1000)
    y = drop(x)
    kept = y[y != 0]
    train_ok = bool((kept == 2.0).all()) and 350 < kept.numel() < 650
    drop.eval()
    return (train_ok, bool((drop(x) == x).all()),
            bool((_F(lib).dropout(x, 0.5, training=False) == x).all()))


@idiom(expect=(True, True, True))
def module_repr(lib):
    nn = _nn(lib)
    layer = nn.Linear(2, 3)
    model = nn.Sequential(layer, nn.ReLU())
    return (repr(layer).startswith("Linear(in_features=2, out_features=3, bias=True)"),
            "(0): Linear(in_features=2" in repr(model), "(1): ReLU()" in repr(model))


@idiom(expect=(True, False, (3,)))
def parameter_wrapping(lib):
    nn = _nn(lib)
    p = nn.Parameter(lib.zeros(3))
    q = nn.Parameter(lib.zeros(3), requires_grad=False)
    return p.requires_grad, q.requires_grad, tuple(p.shape)


@idiom(expect=(["weight", "bias"], [], []))
def load_state_dict_strict_false(lib):
    nn = _nn(lib)
    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    sd = a.state_dict()
    result = b.load_state_dict(sd, strict=False)
    return list(sd.keys()), list(result.missing_keys), list(result.unexpected_keys)


@idiom
def load_state_dict_with_a_wrong_shape_raises(lib):
    nn = _nn(lib)
    return nn.Linear(2, 2).load_state_dict(nn.Linear(2, 3).state_dict())


@idiom(expect=(True, False))
def deepcopy_a_model(lib):
    nn = _nn(lib)
    model = nn.Linear(2, 2)
    ema = copy.deepcopy(model)
    same = bool((ema.weight == model.weight).all())
    with lib.no_grad():
        model.weight.add_(1.0)
    return same, bool((ema.weight == model.weight).any())


@idiom(expect=((4, 3), (4, 3)))
def activation_modules(lib):
    nn = _nn(lib)
    x = lib.randn(4, 3)
    outs = [m(x) for m in (nn.ReLU(), nn.GELU(), nn.Tanh(), nn.Sigmoid(), nn.Softmax(dim=1),
                           nn.LeakyReLU(0.2), nn.SiLU(), nn.ELU())]
    return tuple(outs[0].shape), tuple(outs[-1].shape)


@idiom(expect=((4, 3), True, True))
def batchnorm1d_train_and_eval(lib):
    bn = lib.nn.BatchNorm1d(3)
    x = lib.randn(4, 3) * 3 + 1
    y = bn(x)
    mean_ok = bool((y.mean(dim=0).abs() < 1e-5).all())
    bn.eval()
    return tuple(y.shape), mean_ok, bool((bn.running_mean != 0).all())


# ====================================================================================== functional
@idiom
def functional_activations(lib):
    F = _F(lib)
    x = lib.tensor([-2.0, -0.5, 0.0, 0.5, 2.0])
    return (F.relu(x), F.gelu(x), F.gelu(x, approximate='tanh'), F.silu(x), F.sigmoid(x),
            F.tanh(x), F.leaky_relu(x, 0.1), F.elu(x), F.softplus(x), F.softmax(x, dim=0),
            F.log_softmax(x, dim=-1))


@idiom
def functional_losses(lib):
    F = _F(lib)
    logits = lib.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    target = lib.tensor([0, 2])
    pred, y = lib.tensor([0.5, 1.5, 2.0]), lib.tensor([1.0, 1.0, 1.0])
    return (F.cross_entropy(logits, target), F.cross_entropy(logits, target, reduction='none'),
            F.nll_loss(F.log_softmax(logits, dim=1), target), F.mse_loss(pred, y),
            F.l1_loss(pred, y), F.smooth_l1_loss(pred, y), F.huber_loss(pred, y, delta=0.5),
            F.binary_cross_entropy(lib.sigmoid(pred), y / 2),
            F.binary_cross_entropy_with_logits(pred, y / 2))


@idiom
def kl_div_of_log_probabilities(lib):
    F = _F(lib)
    p = F.log_softmax(lib.tensor([[1.0, 2.0, 0.5]]), dim=1)
    q = F.softmax(lib.tensor([[0.5, 1.0, 1.5]]), dim=1)
    return F.kl_div(p, q, reduction='batchmean')


@idiom(expect=([[0.6, 0.8], [1.0, 0.0]], [[0.0, 0.0, 1.0, 2.0, 0.0]], 1.0))
def normalize_pad_cosine(lib):
    F = _F(lib)
    return (F.normalize(lib.tensor([[3.0, 4.0], [2.0, 0.0]]), dim=1),
            F.pad(lib.tensor([[1.0, 2.0]]), (2, 1)),
            F.cosine_similarity(lib.tensor([[1.0, 2.0]]), lib.tensor([[2.0, 4.0]])).item())


@idiom(expect=((2, 3), True))
def linear_and_embedding_functional(lib):
    F = _F(lib)
    w = lib.ones(3, 4)
    out = F.linear(lib.ones(2, 4), w, lib.zeros(3))
    emb = F.embedding(lib.tensor([0, 2]), lib.arange(12.0).view(3, 4))
    return tuple(out.shape), bool((emb[1] == lib.tensor([8.0, 9.0, 10.0, 11.0])).all())


@idiom
def cross_entropy_with_a_float_target_of_the_wrong_shape_raises(lib):
    return _F(lib).cross_entropy(lib.ones(2, 3), lib.tensor([0.0, 1.0]))


@idiom(expect=0.0)
def cross_entropy_with_probability_targets(lib):
    F = _F(lib)
    logits = lib.tensor([[2.0, 0.5, -1.0]])
    return round(F.cross_entropy(logits, F.softmax(logits, dim=1)).item()
                 - (-(F.softmax(logits, dim=1) * F.log_softmax(logits, dim=1)).sum()).item(), 5)


# ====================================================================================== optimizers
def _quadratic_steps(lib, make_opt, steps=5):
    w = lib.tensor([1.0, -2.0, 3.0], requires_grad=True)
    b = lib.tensor([0.5], requires_grad=True)
    opt = make_opt([w, b])
    target = lib.tensor([0.5, 0.5, 0.5])
    for _ in range(steps):
        opt.zero_grad()
        loss = ((w - target) ** 2).sum() + (b ** 2).sum() * 3
        loss.backward()
        opt.step()
    return w.detach(), b.detach()


@idiom(rtol=1e-5)
def sgd_steps(lib):
    return _quadratic_steps(lib, lambda p: lib.optim.SGD(p, lr=0.1))


@idiom(rtol=1e-5)
def sgd_momentum_nesterov_weight_decay_steps(lib):
    return (_quadratic_steps(lib, lambda p: lib.optim.SGD(p, lr=0.05, momentum=0.9)),
            _quadratic_steps(lib, lambda p: lib.optim.SGD(p, lr=0.05, momentum=0.9,
                                                           nesterov=True, weight_decay=0.01)))


@idiom(rtol=1e-5)
def adam_steps(lib):
    return _quadratic_steps(lib, lambda p: lib.optim.Adam(p, lr=0.1))


@idiom(rtol=1e-5)
def adamw_steps_with_betas(lib):
    return _quadratic_steps(lib, lambda p: lib.optim.AdamW(p, lr=0.1, betas=(0.9, 0.95),
                                                            weight_decay=0.1))


@idiom(rtol=1e-5)
def adam_with_weight_decay_and_amsgrad_off(lib):
    return _quadratic_steps(lib, lambda p: lib.optim.Adam(p, lr=0.05, weight_decay=0.1))


@idiom(rtol=1e-5)
def rmsprop_steps(lib):
    return _quadratic_steps(lib, lambda p: lib.optim.RMSprop(p, lr=0.01))


@idiom(rtol=1e-5)
def per_group_learning_rates(lib):
    w = lib.tensor([1.0], requires_grad=True)
    b = lib.tensor([1.0], requires_grad=True)
    opt = lib.optim.SGD([{'params': [w]}, {'params': [b], 'lr': 0.5}], lr=0.1)
    (w + b).sum().backward()
    opt.step()
    return w.detach(), b.detach(), opt.param_groups[1]['lr']


@idiom(expect=(True, 1))
def optimizer_state_dict_round_trip(lib):
    w = lib.tensor([1.0, 2.0], requires_grad=True)
    opt = lib.optim.Adam([w], lr=0.1)
    (w ** 2).sum().backward()
    opt.step()
    sd = opt.state_dict()
    w2 = lib.tensor([1.0, 2.0], requires_grad=True)
    opt2 = lib.optim.Adam([w2], lr=0.1)
    opt2.load_state_dict(sd)
    return sorted(sd.keys()) == ["param_groups", "state"], len(sd["state"])


@idiom(expect=[0.01, 0.0075, 0.005, 0.0025])
def linear_lr_and_cosine_scheduler_step(lib):
    w = lib.zeros(1, requires_grad=True)
    opt = lib.optim.SGD([w], lr=0.01)
    sched = lib.optim.lr_scheduler.LinearLR(opt, start_factor=1.0, end_factor=0.25, total_iters=3)
    lrs = []
    for _ in range(4):
        lrs.append(round(opt.param_groups[0]['lr'], 6))
        opt.step()
        sched.step()
    return lrs


@idiom
def optimizer_with_no_parameters_raises(lib):
    return lib.optim.SGD([], lr=0.1)


# ========================================================================== grad mode and autograd
@idiom(expect=(False, None, True))
def no_grad_context_and_decorator(lib):
    x = lib.ones(2, requires_grad=True)
    with lib.no_grad():
        y = x * 2

    @lib.no_grad()
    def double(t):
        return t * 2

    return y.requires_grad, double(x).grad_fn, (x * 2).requires_grad


@idiom(expect=(False, True, True))
def set_grad_enabled_and_enable_grad(lib):
    x = lib.ones(2, requires_grad=True)
    with lib.set_grad_enabled(False):
        a = (x * 2).requires_grad
        with lib.enable_grad():
            b = (x * 2).requires_grad
    return a, b, lib.is_grad_enabled()


@idiom(expect=(([2.0, 4.0],), True))
def autograd_grad_returns_a_tuple(lib):
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    y = (x ** 2).sum()
    g = lib.autograd.grad(y, x)
    return tuple(t.detach() for t in g), x.grad is None


@idiom(expect=[4.0, 4.0])
def backward_twice_with_retain_graph(lib):
    x = lib.tensor([1.0, 1.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    return x.grad


@idiom
def backward_twice_raises(lib):
    x = lib.tensor([1.0, 1.0], requires_grad=True)
    y = (x.exp()).sum()
    y.backward()
    y.backward()
    return x.grad


@idiom
def backward_of_a_non_scalar_raises(lib):
    x = lib.tensor([1.0, 1.0], requires_grad=True)
    (x * 2).backward()


@idiom
def backward_of_a_tensor_without_grad_raises(lib):
    lib.tensor([1.0, 2.0]).sum().backward()


@idiom
def in_place_on_a_leaf_requiring_grad_raises(lib):
    w = lib.ones(2, requires_grad=True)
    w.add_(1)


@idiom(expect=(True, False, True, [2.0, 2.0]))
def leaf_grad_fn_and_retain_grad(lib):
    x = lib.ones(2, requires_grad=True)
    y = x * 2
    y.retain_grad()
    z = (y * y).sum()
    z.backward()
    return x.is_leaf, y.is_leaf, y.grad_fn is not None, y.grad / 2


@idiom(expect=[6.0, 6.0])
def register_hook_doubles_the_gradient(lib):
    x = lib.ones(2, requires_grad=True)
    y = x * 3
    y.register_hook(lambda g: g * 2)
    y.sum().backward()
    return x.grad


@idiom(expect=(False, True, False))
def detach_and_requires_grad_(lib):
    x = lib.ones(2, requires_grad=True)
    d = x.detach()
    z = lib.zeros(2).requires_grad_()
    with lib.no_grad():
        w = z + 1
    return d.requires_grad, z.requires_grad, w.requires_grad


# ======================================================================================== printing
@idiom(expect=(True, True, True, True))
def repr_shows_values_and_grad(lib):
    t = lib.tensor([1.5, 2.25])
    r = lib.tensor([1.0], requires_grad=True)
    return ("tensor(" in repr(t) and "1.5" in repr(t) and "2.25" in str(t),
            "requires_grad=True" in repr(r), "grad_fn" in repr(r * 2),
            repr(lib.tensor(3)) == "tensor(3)")


@idiom(expect=("0.250", "loss 1.5000"))
def format_a_0d_tensor(lib):
    return f"{lib.tensor(0.25):.3f}", "loss {:.4f}".format(lib.tensor(1.5))


@pytest.mark.parametrize("name", cases_of(__name__))
def test_idiom(name):
    check_case(name)
