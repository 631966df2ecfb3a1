"""torch.optim.lr_scheduler's classic schedules (issue 16, item 6): closed forms always,
torch's sequence of lrs where torch is installed, state_dict round trips."""
import math

import pytest

import minigrad as mg
from minigrad import nn, optim
from minigrad.errors import ArgumentError, StateDictError

L = optim.lr_scheduler
BASE = 0.5


def lrs_of(make, steps=30, base=BASE):
    """The lr of each step: read before opt.step(), then sched.step(), as training does."""
    opt = optim.SGD([nn.Parameter(mg.zeros(2))], lr=base)
    sched = make(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert sched.get_last_lr() == [opt.param_groups[0]["lr"]]
    return out


CASES = {
    "StepLR": (lambda o, M: M.StepLR(o, step_size=3, gamma=0.5),
               lambda k: BASE * 0.5 ** (k // 3)),
    "MultiStepLR": (lambda o, M: M.MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.5),
                    lambda k: BASE * 0.5 ** sum(k >= m for m in (2, 5, 5, 9))),
    "ExponentialLR": (lambda o, M: M.ExponentialLR(o, gamma=0.9), lambda k: BASE * 0.9 ** k),
    "CosineAnnealingLR": (lambda o, M: M.CosineAnnealingLR(o, T_max=10, eta_min=0.01),
                          lambda k: 0.01 + (BASE - 0.01) * (1 + math.cos(math.pi * k / 10)) / 2),
    "LinearLR": (lambda o, M: M.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=4),
                 lambda k: BASE * (0.1 + 0.9 * min(k, 4) / 4)),
    "SequentialLR": (
        lambda o, M: M.SequentialLR(o, [M.LinearLR(o, 0.1, total_iters=4),
                                        M.CosineAnnealingLR(o, T_max=10),
                                        M.ExponentialLR(o, 0.9)], milestones=[4, 12]),
        lambda k: (BASE * (0.1 + 0.9 * k / 4) if k < 4 else
                   BASE * (1 + math.cos(math.pi * (k - 4) / 10)) / 2 if k < 12 else
                   BASE * 0.9 ** (k - 12))),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_schedule_matches_its_closed_form(name):
    make, closed = CASES[name]
    got = lrs_of(lambda o: make(o, L))
    assert got == pytest.approx([closed(k) for k in range(30)], rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("name", sorted(CASES))
def test_schedule_matches_torch(name):
    torch = pytest.importorskip("torch")
    make, _ = CASES[name]
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([p], lr=BASE)
    sched = make(opt, torch.optim.lr_scheduler)
    theirs = []
    for _ in range(30):
        theirs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs_of(lambda o: make(o, L)) == pytest.approx(theirs, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("name", sorted(CASES))
def test_state_dict_resume_equals_an_uninterrupted_run(name):
    make, _ = CASES[name]
    full = lrs_of(lambda o: make(o, L))
    opt = optim.SGD([nn.Parameter(mg.zeros(2))], lr=BASE)
    sched = make(opt, L)
    for _ in range(7):
        opt.step()
        sched.step()
    state = sched.state_dict()
    # a fresh optimizer and scheduler, as a resumed script builds them
    opt2 = optim.SGD([nn.Parameter(mg.zeros(2))], lr=BASE)
    sched2 = make(opt2, L)
    sched2.load_state_dict(state)
    resumed = []
    for _ in range(23):
        resumed.append(opt2.param_groups[0]["lr"])
        opt2.step()
        sched2.step()
    assert resumed == pytest.approx(full[7:], rel=1e-12, abs=1e-15)


def test_several_groups_keep_their_own_base_lr():
    a, b = nn.Parameter(mg.zeros(1)), nn.Parameter(mg.zeros(1))
    opt = optim.SGD([{"params": [a], "lr": 1.0}, {"params": [b], "lr": 0.1}], lr=0.5)
    sched = L.StepLR(opt, step_size=2, gamma=0.1)
    for _ in range(4):
        opt.step()
        sched.step()
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.01, 0.001])


def test_bad_arguments_are_rejected():
    opt = optim.SGD([nn.Parameter(mg.zeros(1))], lr=0.1)
    with pytest.raises(ArgumentError, match="step_size"):
        L.StepLR(opt, 0)
    with pytest.raises(ArgumentError, match="start_factor"):
        L.LinearLR(opt, start_factor=0.0)
    with pytest.raises(ArgumentError, match="T_max"):
        L.CosineAnnealingLR(opt, T_max=0)
    first = L.LinearLR(opt, 0.5, total_iters=2)
    with pytest.raises(ArgumentError, match="1 milestones"):
        L.SequentialLR(opt, [first, L.ExponentialLR(opt, 0.9)], milestones=[])
    other = optim.SGD([nn.Parameter(mg.zeros(1))], lr=0.1)
    with pytest.raises(ArgumentError, match="another optimizer"):
        L.SequentialLR(opt, [first, L.ExponentialLR(other, 0.9)], milestones=[2])
    seq = L.SequentialLR(opt, [first, L.ExponentialLR(opt, 0.9)], milestones=[2])
    bad = seq.state_dict()
    bad["_schedulers"] = bad["_schedulers"][:1]
    with pytest.raises(StateDictError, match="2 schedulers"):
        seq.load_state_dict(bad)
