"""Optimizer state from files is data, never trusted: ``load_state_dict`` checks what the
constructor checks (hyperparameter ranges, finiteness) and every piece of state (step counts,
moments: presence, dtype, shape), whichever loader carried it; the compiled AdamW loop checks
the sizes it is given, so a bad moment can never write out of bounds (issue 17, item 1)."""
from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import minigrad as mg
from minigrad import backend, nn, optim, serialization
from minigrad.errors import ArgumentError, StateDictError

ROOT = Path(__file__).resolve().parents[3]


def _params():
    rng = np.random.default_rng(0)
    return [nn.Parameter(rng.standard_normal((3, 4)).astype(np.float32)),
            nn.Parameter(rng.standard_normal(4).astype(np.float32))]


def _trained(cls, **kw):
    params = _params()
    opt = cls(params, **kw)
    for _ in range(2):
        for p in params:
            p.grad = mg.tensor(np.cos(p.array))
        opt.step()
    return opt


def _fresh(cls, **kw):
    return cls(_params(), **kw)


def _snapshot(opt):
    """Everything load_state_dict may change, as comparable values."""
    groups = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    state = [{k: (np.array(v).tolist() if hasattr(v, "shape") else v) for k, v in s.items()}
             for s in opt.state.values()]
    return json.dumps([groups, state], default=str, sort_keys=True)


# ----------------------------------------------------------------------------- hyperparameters
BAD_GROUPS = {
    optim.AdamW: [("lr", float("inf")), ("lr", -1e28), ("lr", float("nan")), ("lr", -1.0),
                  ("eps", -1.0), ("eps", float("inf")), ("betas", (1.5, 0.9)),
                  ("betas", (0.9, float("nan"))), ("betas", (0.9,)), ("betas", (0.9, -0.1)),
                  ("weight_decay", -0.1), ("weight_decay", float("inf")), ("amsgrad", 1),
                  ("maximize", "no")],
    optim.SGD: [("lr", float("inf")), ("lr", -1e28), ("momentum", -1.0),
                ("momentum", float("inf")), ("weight_decay", -1.0), ("dampening", float("inf")),
                ("nesterov", 1)],
}
FLAGS = ("amsgrad", "maximize", "nesterov")   # loaded ones must be bools
CASES = [(cls, name, value) for cls, items in BAD_GROUPS.items() for name, value in items]


@pytest.mark.parametrize("cls,name,value", CASES,
                         ids=[f"{c.__name__}-{n}-{v}" for c, n, v in CASES])
def test_load_state_dict_checks_what_the_constructor_checks(cls, name, value):
    kw = {"lr": 0.01, "momentum": 0.9} if cls is optim.SGD else {"lr": 0.01}
    if name not in FLAGS:       # flags take any truth value in a constructor, as in torch
        with pytest.raises(ArgumentError):
            cls(_params(), **{**kw, name: value})      # the constructor rejects it ...
    sd = copy.deepcopy(_trained(cls, **kw).state_dict())
    sd["param_groups"][0][name] = value
    opt = _fresh(cls, **kw)
    before = _snapshot(opt)
    with pytest.raises(StateDictError, match=rf"param_groups\[0\]\['{name}'\]"):
        opt.load_state_dict(sd)                        # ... and so does load_state_dict
    assert _snapshot(opt) == before                    # nothing changed


def test_sgd_nesterov_rule_holds_for_loaded_groups():
    sd = copy.deepcopy(_trained(optim.SGD, lr=0.1, momentum=0.9, nesterov=True).state_dict())
    sd["param_groups"][0]["momentum"] = 0.0
    with pytest.raises(StateDictError, match="nesterov"):
        _fresh(optim.SGD, lr=0.1, momentum=0.9, nesterov=True).load_state_dict(sd)


def test_groups_added_later_are_checked_too():
    opt = optim.AdamW(_params()[:1], lr=0.01)
    with pytest.raises(ArgumentError, match=r"param_groups\[1\]\['lr'\].*inf"):
        opt.add_param_group({"params": _params()[1:], "lr": float("inf")})
    assert len(opt.param_groups) == 1


# ----------------------------------------------------------------------------- state
ADAM_BAD_STATE = [
    ("step", float("nan")), ("step", -1), ("step", 1.5), ("step", float("inf")), ("step", "3"),
    ("step", True), ("step", None), ("step", 2 ** 70), ("step", np.array([1.0, 2.0])),
    ("exp_avg", np.float32(0.5)), ("exp_avg", np.zeros((), np.float32)),
    ("exp_avg", np.zeros((4, 3), np.float32)), ("exp_avg", np.zeros((3, 4), np.int64)),
    ("exp_avg", np.zeros((3, 4), bool)), ("exp_avg", np.zeros((3, 4), np.complex64)),
    ("exp_avg", None), ("exp_avg", "x"), ("exp_avg", [[0.0] * 4] * 3), ("exp_avg", 0.5),
    ("exp_avg_sq", np.zeros(12, np.float32)), ("exp_avg_sq", np.zeros((3, 4), np.uint8)),
    ("unknown_key", np.zeros((3, 4), np.float32)),
    ("exp_avg", np.full((3, 4), np.nan, np.float32)), ("exp_avg", np.full((3, 4), np.inf)),
    ("exp_avg_sq", np.full((3, 4), -1.0, np.float32)),
]


@pytest.mark.parametrize("name,value", ADAM_BAD_STATE,
                         ids=[f"{n}-{type(v).__name__}-{getattr(v, 'shape', v)}"
                              for n, v in ADAM_BAD_STATE])
def test_adam_state_is_checked(name, value):
    sd = copy.deepcopy(_trained(optim.AdamW, lr=0.01).state_dict())
    sd["state"][0][name] = value
    opt = _fresh(optim.AdamW, lr=0.01)
    with pytest.raises(StateDictError, match=rf"state\.0\.{name}"):
        opt.load_state_dict(sd)
    assert opt.state == {}


@pytest.mark.parametrize("missing", ["step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"])
def test_adam_state_must_be_complete(missing):
    sd = copy.deepcopy(_trained(optim.AdamW, lr=0.01, amsgrad=True).state_dict())
    del sd["state"][1][missing]
    with pytest.raises(StateDictError, match=rf"state\.1.*{missing}"):
        _fresh(optim.AdamW, lr=0.01, amsgrad=True).load_state_dict(sd)


@pytest.mark.parametrize("value", [np.float64(1.0), np.zeros((3, 4), np.int32),
                                   np.zeros((4, 3)), np.zeros((2,)), "buf"])
def test_sgd_momentum_buffer_is_checked(value):
    sd = copy.deepcopy(_trained(optim.SGD, lr=0.1, momentum=0.9).state_dict())
    sd["state"][0]["momentum_buffer"] = value
    with pytest.raises(StateDictError, match=r"state\.0\.momentum_buffer"):
        _fresh(optim.SGD, lr=0.1, momentum=0.9).load_state_dict(sd)


def test_valid_state_still_loads_and_resumes_identically():
    """What the checks accept: a state dict as saved, an empty state for an unused parameter,
    torch's 0-d float step, a missing SGD buffer (as torch: the next step starts one)."""
    a = _trained(optim.AdamW, lr=0.01)
    sd = copy.deepcopy(a.state_dict())
    sd["state"][0]["step"] = np.array(2.0, np.float32)     # torch stores step as a 0-d tensor
    sd["state"][1] = {}
    b = _fresh(optim.AdamW, lr=0.5)
    b.load_state_dict(sd)
    st = b.state[b.param_groups[0]["params"][0]]
    assert st["step"] == 2 and isinstance(st["step"], int)
    np.testing.assert_array_equal(st["exp_avg"], a.state_dict()["state"][0]["exp_avg"])
    assert b.param_groups[0]["lr"] == 0.01
    s = _trained(optim.SGD, lr=0.1, momentum=0.9).state_dict()
    del s["state"][0]["momentum_buffer"]
    _fresh(optim.SGD, lr=0.1, momentum=0.9).load_state_dict(s)


def test_a_step_with_bad_state_set_directly_is_an_error_not_a_crash():
    """Bypassing load_state_dict (opt.state[p] = ...) still cannot reach the compiled loop
    with a moment of the wrong size."""
    for on in (True, False):
        backend.set_kernels_enabled(on)
        try:
            p = nn.Parameter(np.ones(16, np.float32))
            opt = optim.AdamW([p], lr=0.1)
            opt.state[p] = {"step": 1, "exp_avg": np.zeros((), np.float32),
                            "exp_avg_sq": np.zeros(16, np.float32)}
            p.grad = mg.tensor(np.ones(16, np.float32))
            with pytest.raises(StateDictError, match="exp_avg"):
                opt.step()
            np.testing.assert_array_equal(p.array, 1.0)
        finally:
            backend.set_kernels_enabled(True)


KERNEL_SIZES = textwrap.dedent("""
    import numpy as np
    from minigrad.backend import kernels
    p, g = np.ones(4096, np.float32), np.ones(4096, np.float32)
    guard = np.zeros(1 << 16, np.float32)         # memory a wild write could land in
    for m, v in ((np.zeros(1, np.float32), np.zeros(4096, np.float32)),
                 (np.zeros(4096, np.float32), np.zeros(2, np.float32)),
                 (np.zeros(4096, np.float32), np.zeros(4096, np.float32))):
        try:
            kernels.adam_step_(p, g[:m.size if m.size < 4096 else 4096], m, v, 1.0, 0.0, 1.0,
                               0.9, 0.999, 1e-3, 1.0, 1e-8)
            print("ran", m.size, v.size)
        except ValueError as exc:
            print("refused", m.size, v.size, "adam_step_" in str(exc))
    try:
        kernels.adam_step_(p, g[:5], np.zeros(4096, np.float32), np.zeros(4096, np.float32),
                           1.0, 0.0, 1.0, 0.9, 0.999, 1e-3, 1.0, 1e-8)
        print("ran grad 5")
    except ValueError:
        print("refused grad 5")
    print("guard", float(np.abs(guard).sum()))
""")


def test_compiled_adam_loop_checks_its_sizes():
    """In a subprocess: before the check, a short moment made the loop write out of bounds."""
    pytest.importorskip("numba")
    r = subprocess.run([sys.executable, "-c", KERNEL_SIZES], capture_output=True, text=True,
                       timeout=300, cwd=ROOT, env={**__import__("os").environ,
                                                    "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    assert r.stdout.split("\n")[:5] == ["refused 1 4096 True", "refused 4096 2 True",
                                        "ran 4096 4096", "refused grad 5", "guard 0.0"], r.stdout


# ----------------------------------------------------------------------------- every loader
MUTATIONS = [
    ("exp_avg", lambda sd: sd["state"][0].update(exp_avg=np.zeros((), np.float32))),
    ("step", lambda sd: sd["state"][0].update(step=float("nan"))),
    ("step", lambda sd: sd["state"][0].update(step=-3)),
    ("exp_avg_sq", lambda sd: sd["state"][0].update(
        exp_avg_sq=sd["state"][0]["exp_avg_sq"].astype(np.int64))),
    ("step", lambda sd: sd["state"][0].pop("step")),
    ("lr", lambda sd: sd["param_groups"][0].update(lr=float("inf"))),
]


def _gpt_and_adamw():
    from minigpt.model import GPT, GPTConfig
    model = GPT(GPTConfig(vocab_size=8, block_size=4, n_layer=1, n_head=1, n_embd=4))
    opt = optim.AdamW(model.parameters(), lr=0.01)
    x = np.arange(8).reshape(2, 4)
    model(x, x)[1].backward()
    opt.step()
    return model, opt


@pytest.mark.parametrize("loader", ["save_optimizer_state", "mg.save", "checkpoint"])
def test_every_loader_that_carries_optimizer_state_rejects_bad_state(tmp_path, loader):
    from minigpt.checkpoint import load_checkpoint, save_checkpoint
    from minigpt.errors import CheckpointError
    model, opt = _gpt_and_adamw()
    for name, mutate in MUTATIONS:
        sd = copy.deepcopy(opt.state_dict())
        mutate(sd)
        path = tmp_path / f"{loader}.safetensors"
        fresh = optim.AdamW(model.parameters(), lr=0.01)
        if loader == "save_optimizer_state":
            serialization.save_optimizer_state(sd, path)
            with pytest.raises(StateDictError, match=name):
                fresh.load_state_dict(serialization.load_optimizer_state(path))
        elif loader == "mg.save":
            mg.save({"optimizer": sd, "step": 3}, path)
            with pytest.raises(StateDictError, match=name):
                fresh.load_state_dict(mg.load(path)["optimizer"])
        else:
            with pytest.MonkeyPatch.context() as mp:       # save exactly this state dict
                mp.setattr(opt, "state_dict", lambda: sd)
                save_checkpoint(path, model, opt, step=1, train_config={}, tokenizer_text="")
            with pytest.raises(CheckpointError, match=name):
                load_checkpoint(path).restore(model, fresh)
        assert fresh.state == {}


RESUME = textwrap.dedent("""
    import sys
    import numpy as np
    from minigrad.optim import AdamW
    from minigpt.checkpoint import load_checkpoint, save_checkpoint
    from minigpt.errors import CheckpointError
    from minigpt.model import GPT, GPTConfig
    model = GPT(GPTConfig(vocab_size=8, block_size=4, n_layer=1, n_head=1, n_embd=64))
    opt = AdamW(model.parameters(), lr=1e-3)
    p = opt.param_groups[0]["params"][0]
    opt.state[p] = {"step": 3, "exp_avg": np.zeros((), np.float32),
                    "exp_avg_sq": np.zeros(p.shape, np.float32)}
    save_checkpoint(sys.argv[1], model, opt, step=3, train_config={}, tokenizer_text="")
    ck = load_checkpoint(sys.argv[1])            # what `minigpt train --resume` does
    model2 = ck.build_model()
    opt2 = AdamW(model2.parameters(), lr=1e-3)
    try:
        ck.restore(model2, opt2)
    except CheckpointError as exc:
        print("refused:", exc)
        sys.exit(0)
    for q in model2.parameters():
        q.grad = q.detach() * 0 + 1
    opt2.step()
    print("stepped")
""")


def test_resume_with_a_0d_moment_is_refused_not_a_segfault(tmp_path):
    """The outside harness's crash: a 0-d exp_avg in a checkpoint killed `--resume` with
    SIGSEGV in the compiled AdamW step (in a subprocess, so a crash cannot take pytest)."""
    r = subprocess.run([sys.executable, "-c", RESUME, str(tmp_path / "ckpt.safetensors")],
                       capture_output=True, text=True, timeout=300, cwd=ROOT,
                       env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    assert r.stdout.startswith("refused:") and "state.0.exp_avg" in r.stdout, r.stdout


def test_group_overrides_are_checked_with_the_defaults_filled_in():
    p, q = _params()
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    opt.add_param_group({"params": [q], "nesterov": True})        # momentum 0.9 from defaults
    assert opt.param_groups[1]["nesterov"] and opt.param_groups[1]["momentum"] == 0.9
    with pytest.raises(ArgumentError, match=r"param_groups\[1\]\['nesterov'\]"):
        optim.SGD([p], lr=0.1).add_param_group({"params": [q], "nesterov": True})
