"""Losses in PyTorch's layouts and arguments, their nn modules, the activations modules and
nn.init's He/Glorot/truncated-normal initialisers (issue 16, item 6): NumPy references and
closed forms always, PyTorch where installed."""
import math

import numpy as np
import pytest

import minigrad as mg
import minigrad.functional as F
from minigrad import nn
from minigrad.errors import ArgumentError, DTypeError, IndexRangeError, ShapeError

RNG = np.random.default_rng(2)


def t64(a, grad=False):
    return mg.tensor(np.asarray(a, dtype=np.float64), dtype="float64", requires_grad=grad)


def ref_log_softmax(z, axis):
    m = z.max(axis, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis, keepdims=True))


def ref_cross_entropy(z, t, weight=None, ignore_index=-100, reduction="mean", eps=0.0):
    """PyTorch's definition written out with NumPy; classes in dim 1."""
    logp = np.moveaxis(ref_log_softmax(z, 1), 1, -1)          # (N, d..., C)
    c = logp.shape[-1]
    w = np.ones(c) if weight is None else weight
    keep = t != ignore_index
    safe = np.where(keep, t, 0)
    picked = np.take_along_axis(logp, safe[..., None], -1)[..., 0]
    nll = -picked * w[safe] * keep
    smooth = -(logp * w).sum(-1) * keep
    loss = (1 - eps) * nll + eps / c * smooth
    if reduction == "none":
        return loss
    return loss.sum() / (w[safe] * keep).sum() if reduction == "mean" else loss.sum()


# ----------------------------------------------------------------------------- cross_entropy
@pytest.mark.parametrize("shape", [(5, 4), (3, 4, 2), (2, 4, 3, 2)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("eps,weighted", [(0.0, False), (0.1, False), (0.0, True), (0.2, True)])
def test_cross_entropy_layouts_reductions_smoothing_weights(shape, reduction, eps, weighted):
    z = RNG.standard_normal(shape)
    t = RNG.integers(0, shape[1], (shape[0],) + shape[2:])
    t.reshape(-1)[0] = -100                                   # one ignored position
    w = RNG.random(shape[1]) + 0.5 if weighted else None
    out = F.cross_entropy(t64(z), mg.tensor(t), weight=None if w is None else t64(w),
                          reduction=reduction, label_smoothing=eps)
    want = ref_cross_entropy(z, t, w, reduction=reduction, eps=eps)
    assert out.shape == np.shape(want)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-10, atol=1e-12)
    x = t64(z, grad=True)
    mg.gradcheck(lambda a: F.cross_entropy(a, t, weight=None if w is None else t64(w),
                                           reduction=reduction, label_smoothing=eps), [x])


def test_cross_entropy_fused_and_composed_paths_agree():
    z = RNG.standard_normal((6, 5))
    t = np.array([0, 4, -100, 2, 2, 1])
    a, b = t64(z, grad=True), t64(z, grad=True)
    fused = F.cross_entropy(a, t)                                  # the fused op
    composed = F.cross_entropy(b, t, reduction="sum") / 5          # log_softmax + indexing
    np.testing.assert_allclose(fused.item(), composed.item(), rtol=1e-12)
    fused.backward()
    composed.backward()
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10, atol=1e-14)
    assert np.all(a.grad.numpy()[2] == 0)                          # the ignored row


def test_cross_entropy_probability_targets_and_unbatched():
    z = RNG.standard_normal((4, 3))
    p = RNG.random((4, 3))
    p /= p.sum(1, keepdims=True)
    want = -(p * ref_log_softmax(z, 1)).sum(1).mean()
    np.testing.assert_allclose(F.cross_entropy(t64(z), t64(p)).item(), want, rtol=1e-12)
    smooth = p * 0.9 + 0.1 / 3
    np.testing.assert_allclose(F.cross_entropy(t64(z), t64(p), label_smoothing=0.1).item(),
                               -(smooth * ref_log_softmax(z, 1)).sum(1).mean(), rtol=1e-12)
    one = F.cross_entropy(t64(z[0]), mg.tensor(2))                  # (C,) with a 0-d target
    assert one.shape == () and one.item() == pytest.approx(-ref_log_softmax(z[:1], 1)[0, 2])
    mg.gradcheck(lambda a, b: F.cross_entropy(a, b), [t64(z, grad=True), t64(p, grad=True)])


def test_cross_entropy_layout_errors_say_what_to_write():
    logits = t64(np.zeros((2, 5, 7)))                 # a GPT's (B, T, V)
    targets = mg.tensor(np.zeros((2, 5), dtype=np.int64))
    with pytest.raises(ShapeError, match=r"logits\.view\(-1, 7\), targets\.view\(-1\)"):
        F.cross_entropy(logits, targets)
    # written as nanoGPT does, the same numbers mean the same thing
    loss = F.cross_entropy(logits.view(-1, 7), targets.view(-1))
    assert loss.item() == pytest.approx(math.log(7))
    with pytest.raises(IndexRangeError, match="target 5 is out of range for 5 classes"):
        F.cross_entropy(t64(np.zeros((1, 5))), [5])
    with pytest.raises(ArgumentError, match="reduction"):
        F.cross_entropy(t64(np.zeros((1, 5))), [1], reduction="avg")
    with pytest.raises(ArgumentError, match="label_smoothing"):
        F.cross_entropy(t64(np.zeros((1, 5))), [1], label_smoothing=1.5)
    with pytest.raises(ShapeError, match="one entry per class"):
        F.cross_entropy(t64(np.zeros((1, 5))), [1], weight=t64([1.0, 2.0]))


def test_cross_entropy_ignored_rows_never_leak_in_any_path():
    z = np.array([[1.0, 2.0, 3.0], [-np.inf, -np.inf, -np.inf], [0.0, 1.0, np.nan]])
    t = np.array([2, -100, -100])
    for kw in ({}, {"reduction": "sum"}, {"label_smoothing": 0.1},
               {"weight": t64([1.0, 2.0, 3.0])}):
        x = t64(z, grad=True)
        loss = F.cross_entropy(x, t, **kw)
        loss.backward()
        assert np.isfinite(loss.item()) and np.isfinite(x.grad.numpy()).all(), kw
        assert (x.grad.numpy()[1:] == 0).all()


# ----------------------------------------------------------------------------- nll_loss
def test_nll_loss_matches_definition_and_equals_cross_entropy_of_log_softmax():
    z = RNG.standard_normal((3, 4, 5))
    t = RNG.integers(0, 4, (3, 5))
    t[0, 0] = -100
    w = np.array([0.5, 1.0, 2.0, 1.5])
    logp = F.log_softmax(t64(z), 1)
    for reduction in ("mean", "sum", "none"):
        np.testing.assert_allclose(
            F.nll_loss(logp, mg.tensor(t), weight=t64(w), reduction=reduction).numpy(),
            ref_cross_entropy(z, t, w, reduction=reduction), rtol=1e-10)
    np.testing.assert_allclose(F.nll_loss(logp, t).item(), F.cross_entropy(t64(z), t).item(),
                               rtol=1e-12)
    with pytest.raises(DTypeError, match="integer class indices"):
        F.nll_loss(logp, t.astype(float))


# ----------------------------------------------------------------------------- regression
def test_mse_and_l1_losses():
    x, y = RNG.standard_normal((3, 4)), RNG.standard_normal((3, 4))
    for fn, ref in ((F.mse_loss, lambda d: d * d), (F.l1_loss, np.abs)):
        np.testing.assert_allclose(fn(t64(x), t64(y)).item(), ref(x - y).mean())
        np.testing.assert_allclose(fn(t64(x), t64(y), reduction="sum").item(), ref(x - y).sum())
        np.testing.assert_allclose(fn(t64(x), t64(y), reduction="none").numpy(), ref(x - y))
        mg.gradcheck(lambda a, b: fn(a, b, reduction="none"), [t64(x, True), t64(y, True)])
    with pytest.warns(UserWarning, match="broadcast"):
        F.mse_loss(t64(x), t64(y[:1]))
    with pytest.raises(ShapeError, match="cannot be broadcast"):
        F.l1_loss(t64(x), t64(np.ones(5)))


# ----------------------------------------------------------------------------- binary
def test_binary_cross_entropy_value_clamp_and_gradient():
    p, y = RNG.uniform(0.05, 0.95, (3, 4)), RNG.random((3, 4))
    want = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    np.testing.assert_allclose(F.binary_cross_entropy(t64(p), t64(y), reduction="none").numpy(),
                               want)
    np.testing.assert_allclose(F.binary_cross_entropy(t64(p), t64(y)).item(), want.mean())
    # saturated probabilities: log clamped at -100 as torch, finite value and gradient
    edge = t64([0.0, 1.0], grad=True)
    loss = F.binary_cross_entropy(edge, t64([1.0, 0.0]), reduction="sum")
    loss.backward()
    assert loss.item() == pytest.approx(200.0) and np.isfinite(edge.grad.numpy()).all()
    with pytest.raises(ArgumentError, match=r"probability in \[0, 1\]"):
        F.binary_cross_entropy(t64([1.5]), t64([1.0]))


def test_binary_cross_entropy_with_logits_is_stable_and_exact():
    x, y = RNG.standard_normal((3, 4)) * 3, RNG.random((3, 4))
    sig = 1 / (1 + np.exp(-x))
    want = -(y * np.log(sig) + (1 - y) * np.log(1 - sig))
    np.testing.assert_allclose(
        F.binary_cross_entropy_with_logits(t64(x), t64(y), reduction="none").numpy(), want)
    pw = np.array([1.0, 2.0, 0.5, 3.0])
    want_pw = -(pw * y * np.log(sig) + (1 - y) * np.log(1 - sig))
    np.testing.assert_allclose(F.binary_cross_entropy_with_logits(
        t64(x), t64(y), pos_weight=t64(pw)).item(), want_pw.mean())
    big = mg.tensor([1e4, -1e4, 0.0], requires_grad=True)          # float32
    loss = F.binary_cross_entropy_with_logits(big, mg.tensor([0.0, 1.0, 1.0]), reduction="none")
    np.testing.assert_allclose(loss.detach().numpy(), [1e4, 1e4, math.log(2)], rtol=1e-6)
    loss.sum().backward()
    np.testing.assert_allclose(big.grad.numpy(), [1.0, -1.0, -0.5])   # sigmoid(x) - y
    mg.gradcheck(lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction="sum"),
                 [t64(x, True), t64(y, True)])


def test_losses_match_torch():
    torch = pytest.importorskip("torch")
    TF = torch.nn.functional
    z, t = RNG.standard_normal((4, 3, 5)), RNG.integers(0, 3, (4, 5))
    w = np.array([1.0, 0.5, 2.0])
    ours = F.cross_entropy(t64(z), t, weight=t64(w), label_smoothing=0.1, reduction="none")
    theirs = TF.cross_entropy(torch.tensor(z), torch.tensor(t), weight=torch.tensor(w),
                              label_smoothing=0.1, reduction="none")
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-10)
    x, y = RNG.standard_normal(6), RNG.random(6)
    np.testing.assert_allclose(
        F.binary_cross_entropy_with_logits(t64(x), t64(y), pos_weight=t64([2.0])).item(),
        TF.binary_cross_entropy_with_logits(torch.tensor(x), torch.tensor(y),
                                            pos_weight=torch.tensor([2.0],
                                                                    dtype=torch.float64)).item())


# ----------------------------------------------------------------------------- modules
def test_loss_modules_call_the_functions():
    z, t = RNG.standard_normal((4, 3)), np.array([0, 2, 1, -100])
    w = t64([1.0, 2.0, 3.0])
    ce = nn.CrossEntropyLoss(weight=w, label_smoothing=0.1, reduction="sum")
    assert ce(t64(z), t).item() == pytest.approx(
        F.cross_entropy(t64(z), t, weight=w, label_smoothing=0.1, reduction="sum").item())
    assert "weight" in ce.state_dict()                       # a buffer, as in torch
    assert nn.NLLLoss()(F.log_softmax(t64(z), 1), t).item() == pytest.approx(
        nn.CrossEntropyLoss()(t64(z), t).item())
    x, y = t64(z), t64(np.ones((4, 3)) * 0.5)
    assert nn.MSELoss()(x, y).item() == pytest.approx(((z - 0.5) ** 2).mean())
    assert nn.L1Loss(reduction="sum")(x, y).item() == pytest.approx(np.abs(z - 0.5).sum())
    assert nn.BCEWithLogitsLoss()(x, y).item() == pytest.approx(
        F.binary_cross_entropy_with_logits(x, y).item())
    assert nn.BCELoss()(x.sigmoid(), y).item() == pytest.approx(
        F.binary_cross_entropy(x.sigmoid(), y).item())
    with pytest.raises(ArgumentError, match="reduction"):
        nn.MSELoss(reduction="avg")


def test_activation_and_shape_modules():
    x = RNG.standard_normal((2, 3, 4))
    np.testing.assert_allclose(nn.Softmax(dim=1)(t64(x)).numpy(),
                               np.exp(x) / np.exp(x).sum(1, keepdims=True))
    np.testing.assert_allclose(nn.LogSoftmax(-1)(t64(x)).numpy(), ref_log_softmax(x, -1))
    assert nn.Flatten()(t64(x)).shape == (2, 12) and nn.Flatten(0, 1)(t64(x)).shape == (6, 4)
    assert nn.Identity(3, unused=True)(t64(x)).shape == x.shape
    np.testing.assert_allclose(nn.Softplus()(t64(x)).numpy(), np.log1p(np.exp(x)))
    np.testing.assert_allclose(nn.Softplus(beta=2)(t64(x)).numpy(), np.log1p(np.exp(2 * x)) / 2)
    np.testing.assert_allclose(nn.LeakyReLU(0.1)(t64(x)).numpy(), np.where(x > 0, x, 0.1 * x))
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3), nn.LogSoftmax(dim=1))
    assert model(t64(x).float()).shape == (2, 3)


# ----------------------------------------------------------------------------- init
def test_calculate_gain_table():
    assert nn.init.calculate_gain("linear") == 1 and nn.init.calculate_gain("sigmoid") == 1
    assert nn.init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert nn.init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert nn.init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01 ** 2)))
    assert nn.init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    assert nn.init.calculate_gain("selu") == 0.75
    with pytest.raises(ValueError, match="unsupported nonlinearity"):
        nn.init.calculate_gain("swish")


def test_kaiming_and_xavier_bounds_and_spread():
    w = mg.empty(400, 300)
    nn.init.kaiming_uniform_(w, a=math.sqrt(5))           # what torch's Linear uses
    bound = math.sqrt(6 / ((1 + 5) * 300))                # gain sqrt(2/(1+a^2)) * sqrt(3/fan)
    a = w.numpy()
    assert np.abs(a).max() <= bound and np.abs(a).max() > 0.99 * bound
    nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    assert w.numpy().std() == pytest.approx(math.sqrt(2 / 400), rel=0.02)
    nn.init.kaiming_uniform_(w, nonlinearity="relu")
    assert w.numpy().std() == pytest.approx(math.sqrt(2 / 300), rel=0.02)   # U(-b, b): b/sqrt3
    nn.init.xavier_uniform_(w, gain=nn.init.calculate_gain("tanh"))
    assert np.abs(w.numpy()).max() <= 5 / 3 * math.sqrt(6 / 700)
    with pytest.raises(ValueError, match="fan_in"):
        nn.init.kaiming_normal_(w, mode="fan")


def _truncated_moments(mean, std, a, b):
    """Mean and std of N(mean, std^2) truncated to [a, b] (closed form)."""
    al, be = (a - mean) / std, (b - mean) / std
    pdf = lambda v: math.exp(-v * v / 2) / math.sqrt(2 * math.pi)       # noqa: E731
    cdf = lambda v: 0.5 * (1 + math.erf(v / math.sqrt(2)))              # noqa: E731
    z = cdf(be) - cdf(al)
    m = mean + std * (pdf(al) - pdf(be)) / z
    var = std ** 2 * (1 + (al * pdf(al) - be * pdf(be)) / z - ((pdf(al) - pdf(be)) / z) ** 2)
    return m, math.sqrt(var)


@pytest.mark.parametrize("mean,std,a,b", [(0.0, 1.0, -2.0, 2.0), (0.0, 0.02, -0.04, 0.04),
                                          (1.0, 2.0, 0.0, 5.0), (0.0, 1.0, 2.5, 4.0)])
def test_trunc_normal_stays_in_range_with_the_right_moments(mean, std, a, b):
    w = mg.empty(200, 200, dtype="float64")
    nn.init.trunc_normal_(w, mean, std, a, b)
    x = w.numpy()
    assert x.min() >= a and x.max() <= b
    m, s = _truncated_moments(mean, std, a, b)
    n = x.size
    assert abs(x.mean() - m) < 5 * s / math.sqrt(n)
    assert x.std() == pytest.approx(s, rel=0.03)
