"""minigrad.optim: closed-form updates, torch oracle, groups, state, clipping, schedules."""
import math

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn, optim
from minigrad.errors import StateDictError


def grad_fn(p):
    """A fixed, non-linear 'gradient' of the current parameter values (float64)."""
    return np.sin(3 * p) + 0.5 * p ** 3 - 0.1


def T(array):
    """A tensor of exactly this array's dtype (float64 stays float64)."""
    array = np.asarray(array)
    return mg.tensor(array, dtype=array.dtype)


def make_params(seed=0, shapes=((3, 4), (4,), (2, 2, 3))):
    rng = np.random.default_rng(seed)
    return [nn.Parameter(rng.standard_normal(s)) for s in shapes]


def run(opt_cls, params, steps, **kw):
    opt = opt_cls(params, **kw)
    for _ in range(steps):
        for p in params:
            p.grad = T(grad_fn(p.array))
        opt.step()
    return opt


# ----------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("momentum,dampening,wd,nesterov", [
    (0.0, 0.0, 0.0, False), (0.0, 0.0, 0.1, False), (0.9, 0.0, 0.0, False),
    (0.9, 0.3, 0.05, False), (0.8, 0.0, 0.1, True)])
def test_sgd_matches_closed_form(momentum, dampening, wd, nesterov):
    params = make_params()
    expected = [p.array.copy() for p in params]
    bufs = [None] * len(params)
    lr = 0.05
    for _ in range(5):
        for i, x in enumerate(expected):
            d = grad_fn(x) + wd * x
            if momentum:
                bufs[i] = d.copy() if bufs[i] is None else momentum * bufs[i] + (1 - dampening) * d
                d = d + momentum * bufs[i] if nesterov else bufs[i]
            expected[i] = x - lr * d
    run(optim.SGD, params, 5, lr=lr, momentum=momentum, dampening=dampening,
        weight_decay=wd, nesterov=nesterov)
    for p, e in zip(params, expected):
        np.testing.assert_allclose(p.array, e, rtol=1e-12, atol=1e-14)


def test_sgd_first_steps_by_hand():
    # p=1, grad=p (loss p^2/2), lr=0.1, momentum 0.5: buf1=1 -> p=0.9; buf2=0.5+0.9=1.4 -> p=0.76
    p = nn.Parameter(np.array([1.0]))
    opt = optim.SGD([p], lr=0.1, momentum=0.5)
    for want in (0.9, 0.76):
        p.grad = T(p.array.copy())
        opt.step()
        assert p.array[0] == pytest.approx(want, abs=1e-15)


@pytest.mark.parametrize("decoupled,wd,amsgrad", [
    (False, 0.0, False), (False, 0.1, False), (True, 0.0, False), (True, 0.1, False),
    (False, 0.05, True), (True, 0.05, True)])
def test_adam_and_adamw_match_closed_form(decoupled, wd, amsgrad):
    params = make_params(1)
    lr, b1, b2, eps = 0.01, 0.8, 0.95, 1e-6
    xs = [p.array.copy() for p in params]
    m = [np.zeros_like(x) for x in xs]
    v = [np.zeros_like(x) for x in xs]
    vmax = [np.zeros_like(x) for x in xs]
    for t in range(1, 7):
        for i in range(len(xs)):
            g = grad_fn(xs[i])
            if decoupled:
                xs[i] = xs[i] * (1 - lr * wd)
            else:
                g = g + wd * xs[i]
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            vmax[i] = np.maximum(vmax[i], v[i])
            m_hat = m[i] / (1 - b1 ** t)
            v_hat = (vmax[i] if amsgrad else v[i]) / (1 - b2 ** t)
            xs[i] = xs[i] - lr * m_hat / (np.sqrt(v_hat) + eps)
    cls = optim.AdamW if decoupled else optim.Adam
    opt = run(cls, params, 6, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, amsgrad=amsgrad)
    for p, x in zip(params, xs):
        np.testing.assert_allclose(p.array, x, rtol=1e-10, atol=1e-13)
    st = opt.state[params[0]]
    assert st["step"] == 6
    np.testing.assert_allclose(st["exp_avg"], m[0], rtol=1e-12)
    np.testing.assert_allclose(st["exp_avg_sq"], v[0], rtol=1e-12)


def test_adam_first_step_is_lr_times_sign():
    # after one step m_hat = g, v_hat = g^2, so the update is lr * g / (|g| + eps)
    p = nn.Parameter(np.array([1.0, -2.0, 3.0]))
    opt = optim.Adam([p], lr=0.1, eps=0.0)
    p.grad = T(np.array([4.0, -0.5, 1e-3]))
    opt.step()
    np.testing.assert_allclose(p.array, [0.9, -1.9, 2.9], rtol=1e-12)


def test_defaults_match_torch():
    torch = pytest.importorskip("torch")
    p = [nn.Parameter(np.zeros(2))]
    tp = [torch.zeros(2, requires_grad=True)]
    for ours, theirs in ((optim.SGD(p), torch.optim.SGD(tp)), (optim.Adam(p), torch.optim.Adam(tp)),
                         (optim.AdamW(p), torch.optim.AdamW(tp))):
        for key, value in ours.defaults.items():
            assert theirs.defaults[key] == value, (type(ours).__name__, key)


# ----------------------------------------------------------------------------- torch oracle
@pytest.mark.parametrize("name,kw", [
    ("AdamW", dict(lr=1e-2, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1)),
    ("AdamW", dict(lr=3e-3, weight_decay=0.0, amsgrad=True)),
    ("Adam", dict(lr=1e-2, weight_decay=0.05)),
    ("Adam", dict(lr=1e-2, maximize=True)),
    ("SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.01, nesterov=True)),
    ("SGD", dict(lr=0.05, momentum=0.7, dampening=0.2)),
])
def test_matches_torch_over_20_steps(name, kw):
    torch = pytest.importorskip("torch")
    params = make_params(2)
    tparams = [torch.tensor(p.array.copy(), requires_grad=True) for p in params]
    ours = getattr(optim, name)(params, **kw)
    theirs = getattr(torch.optim, name)(tparams, **kw)
    for _ in range(20):
        for p, tp in zip(params, tparams):
            p.grad = T(grad_fn(p.array))
            tp.grad = torch.from_numpy(grad_fn(tp.detach().numpy()))
        ours.step()
        theirs.step()
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.array, tp.detach().numpy(), rtol=1e-6, atol=1e-12)


# ----------------------------------------------------------------------------- groups
def test_weight_decay_groups_decay_matrices_not_biases_or_norms():
    mg.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    groups = optim.weight_decay_groups(model.named_parameters(), 0.5)
    assert [p.shape for p in groups[0]["params"]] == [(4, 3), (2, 4)]
    assert [p.shape for p in groups[1]["params"]] == [(4,), (4,), (4,), (2,)]
    before = [p.array.copy() for p in model.parameters()]
    opt = optim.AdamW(groups, lr=0.1)
    for p in model.parameters():
        p.grad = mg.zeros_like(p)          # zero gradient: only the decay moves parameters
    opt.step()
    decayed = {id(p) for p in groups[0]["params"]}
    for p, b in zip(model.parameters(), before):
        want = b * (1 - 0.1 * 0.5) if id(p) in decayed else b
        np.testing.assert_allclose(p.array, want, rtol=1e-6)


def test_param_groups_override_defaults_and_add_param_group():
    a, b, c = make_params(3, ((2,), (3,), (4,)))
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1, momentum=0.5)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[1]["lr"] == 1.0
    assert opt.param_groups[1]["momentum"] == 0.5
    opt.add_param_group({"params": c, "lr": 2.0})
    assert opt.param_groups[2]["params"] == [c]
    for p in (a, b, c):
        p.grad = mg.ones_like(p)
    before = [p.array.copy() for p in (a, b, c)]
    opt.step()
    for p, x, lr in zip((a, b, c), before, (0.1, 1.0, 2.0)):
        np.testing.assert_allclose(p.array, x - lr)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="iterable"):
        optim.SGD(a, lr=0.1)
    with pytest.raises(ValueError, match="more than once"):
        optim.SGD([a, a], lr=0.1)


@pytest.mark.parametrize("cls,kw,match", [
    (optim.SGD, dict(lr=-1), "lr"), (optim.Adam, dict(betas=(0.9, 1.0)), "betas"),
    (optim.AdamW, dict(eps=-1), "eps"), (optim.SGD, dict(nesterov=True), "Nesterov"),
    (optim.Adam, dict(weight_decay=-0.1), "weight_decay")])
def test_bad_hyperparameters_are_rejected(cls, kw, match):
    with pytest.raises(ValueError, match=match):
        cls(make_params(), **kw)


def test_zero_grad_and_params_without_grad_are_skipped():
    a, b = make_params(4, ((2,), (2,)))
    opt = optim.Adam([a, b], lr=0.1)
    a.grad = mg.ones_like(a)
    before_b = b.array.copy()
    opt.step()
    np.testing.assert_array_equal(b.array, before_b)
    assert b not in opt.state
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(a.grad.array, 0)
    opt.zero_grad()
    assert a.grad is None


def test_closure_is_called_and_its_loss_returned():
    p = nn.Parameter(np.array([2.0]))
    opt = optim.SGD([p], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == 4.0
    assert p.array[0] == pytest.approx(1.0)   # 2 - 0.25 * 4


# ----------------------------------------------------------------------------- state dict
@pytest.mark.parametrize("cls,kw", [(optim.AdamW, dict(lr=0.01, amsgrad=True)),
                                    (optim.SGD, dict(lr=0.01, momentum=0.9))])
def test_state_dict_resume_is_identical_to_uninterrupted(cls, kw):
    a = make_params(5)
    b = [nn.Parameter(p.array.copy()) for p in a]
    opt_a = run(cls, a, 3, **kw)
    sd = opt_a.state_dict()
    assert sorted(sd["state"]) == [0, 1, 2]
    opt_b = cls(b, lr=123.0)               # hyperparameters come from the state dict
    for p, q in zip(a, b):
        q.array[...] = p.array
    opt_b.load_state_dict(sd)
    assert opt_b.param_groups[0]["lr"] == kw["lr"]
    for opt, ps in ((opt_a, a), (opt_b, b)):
        for _ in range(3):
            for p in ps:
                p.grad = T(grad_fn(p.array))
            opt.step()
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p.array, q.array)


def test_load_state_dict_copies_and_casts_and_rejects_mismatches():
    a = make_params(6)
    opt = run(optim.Adam, a, 2, lr=0.1)
    sd = opt.state_dict()
    f32 = [nn.Parameter(p.array.astype(np.float32)) for p in a]
    opt32 = optim.Adam(f32, lr=0.1)
    opt32.load_state_dict(sd)
    st = opt32.state[f32[0]]
    assert st["exp_avg"].dtype == np.float32 and st["step"] == 2
    assert st["exp_avg"] is not sd["state"][0]["exp_avg"]
    with pytest.raises(ValueError, match="parameter group 0 has 3 parameters in the loaded"):
        optim.Adam(a[:2]).load_state_dict(sd)
    with pytest.raises(ValueError, match="1 parameter groups, this optimizer has 2"):
        optim.Adam([{"params": a[:1]}, {"params": a[1:]}]).load_state_dict(sd)
    wrong = [nn.Parameter(np.zeros((5,))) for _ in a]
    with pytest.raises(StateDictError, match=r"state\.0\.exp_avg has shape \(3, 4\).*\(5,\)"):
        optim.Adam(wrong).load_state_dict(sd)


# ----------------------------------------------------------------------------- clipping
def test_clip_grad_norm_value_and_effect():
    a, b, c = make_params(7, ((3,), (2, 2), (5,)))
    a.grad = T(np.array([3.0, 0.0, 0.0]))
    b.grad = T(np.array([[0.0, 4.0], [0.0, 0.0]]))      # total norm 5
    total = optim.clip_grad_norm_([a, b, c], max_norm=1.0)
    assert isinstance(total, mg.Tensor) and total.ndim == 0 and total.item() == pytest.approx(5.0)
    np.testing.assert_allclose(a.grad.array, [3 / (5 + 1e-6), 0, 0])
    new = math.sqrt((a.grad.array ** 2).sum() + (b.grad.array ** 2).sum())
    assert new == pytest.approx(1.0, rel=1e-6)
    # below the limit: untouched; nn.utils exposes the same function
    assert nn.utils.clip_grad_norm_ is optim.clip_grad_norm_
    g = a.grad.array.copy()
    assert nn.utils.clip_grad_norm_(a, max_norm=10.0).item() == pytest.approx(0.6, rel=1e-6)
    np.testing.assert_array_equal(a.grad.array, g)
    assert optim.clip_grad_norm_([c], 1.0).item() == 0.0   # no gradients at all


def test_clip_grad_norm_inf_and_nonfinite():
    a = nn.Parameter(np.zeros(3))
    a.grad = T(np.array([1.0, -7.0, 2.0]))
    assert optim.clip_grad_norm_([a], 3.5, norm_type=float("inf")) == 7.0
    np.testing.assert_allclose(a.grad.array, np.array([1.0, -7.0, 2.0]) * 3.5 / (7 + 1e-6))
    a.grad = T(np.array([np.inf, 1.0]))
    with pytest.raises(RuntimeError, match="inf"):
        optim.clip_grad_norm_([a], 1.0, error_if_nonfinite=True)


def test_clip_grad_norm_matches_torch():
    torch = pytest.importorskip("torch")
    params = make_params(8)
    tparams = [torch.tensor(p.array) for p in params]
    for p, tp in zip(params, tparams):
        p.grad = T(grad_fn(p.array) * 3)
        tp.grad = torch.from_numpy(grad_fn(p.array) * 3)
    for norm_type in (2.0, 1.0, 3.0):
        ours = optim.clip_grad_norm_(params, 0.5, norm_type)
        theirs = torch.nn.utils.clip_grad_norm_(tparams, 0.5, norm_type)
        assert ours.item() == pytest.approx(theirs.item(), rel=1e-12)
        for p, tp in zip(params, tparams):
            np.testing.assert_allclose(p.grad.array, tp.grad.numpy(), rtol=1e-12)


# ----------------------------------------------------------------------------- schedules
def test_cosine_with_warmup_hand_values():
    f = lambda s: optim.cosine_with_warmup(s, max_lr=1.0, warmup_steps=2, max_steps=6,
                                           min_lr=0.0)
    want = [0.0, 0.5, 1.0, 0.5 + 0.5 * math.cos(math.pi / 4), 0.5,
            0.5 - 0.5 * math.cos(math.pi / 4), 0.0, 0.0, 0.0]
    assert [f(s) for s in range(9)] == pytest.approx(want, abs=1e-15)
    g = lambda s: optim.cosine_with_warmup(s, max_lr=6e-4, warmup_steps=10, max_steps=110,
                                           min_lr=6e-5)
    assert g(5) == pytest.approx(3e-4)
    assert g(60) == pytest.approx((6e-4 + 6e-5) / 2)
    assert g(10_000) == 6e-5
    assert optim.cosine_with_warmup(0, max_lr=1.0, warmup_steps=0, max_steps=4) == 1.0
    with pytest.raises(ValueError, match="warmup_steps <= max_steps"):
        optim.cosine_with_warmup(0, max_lr=1.0, warmup_steps=5, max_steps=4)


def test_warmup_cosine_scheduler_sets_lrs_and_resumes():
    a, b = make_params(9, ((2,), (2,)))
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=1.0)
    sched = optim.lr_scheduler.WarmupCosineLR(opt, warmup_steps=2, max_steps=6, min_lr=0.1)
    seen = [sched.get_last_lr()]
    for _ in range(7):
        sched.step()
        seen.append(sched.get_last_lr())
    for step, lrs in enumerate(seen):
        for lr, base in zip(lrs, (1.0, 0.5)):
            assert lr == optim.cosine_with_warmup(step, max_lr=base, warmup_steps=2,
                                                  max_steps=6, min_lr=0.1)
    assert [g["lr"] for g in opt.param_groups] == seen[-1]
    # resume: a fresh optimizer + scheduler loaded from the state dict continue identically
    sd = sched.state_dict()
    opt2 = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=1.0)
    sched2 = optim.WarmupCosineLR(opt2, warmup_steps=2, max_steps=6, min_lr=0.1)
    sched2.load_state_dict(sd)
    assert sched2.last_epoch == 7 and [g["lr"] for g in opt2.param_groups] == seen[-1]
    sched.step()
    sched2.step()
    assert sched.get_last_lr() == sched2.get_last_lr()


def test_lambda_lr_matches_torch():
    torch = pytest.importorskip("torch")
    p = make_params(10, ((2,),))
    tp = [torch.zeros(2, requires_grad=True)]
    fn = lambda s: 0.9 ** s
    ours = optim.lr_scheduler.LambdaLR(optim.SGD(p, lr=0.3), fn)
    topt = torch.optim.SGD(tp, lr=0.3)
    theirs = torch.optim.lr_scheduler.LambdaLR(topt, fn)
    for _ in range(5):
        assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr(), rel=1e-15)
        topt.step()
        ours.step()
        theirs.step()
    assert "lr_lambdas" not in ours.state_dict()
