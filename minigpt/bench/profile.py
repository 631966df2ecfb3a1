"""Where a training step's time goes, per phase and per op, minigrad beside PyTorch:
``minigpt bench --profile --configs tiny --steps 10``.

Phases: forward (model and loss), backward, optimizer step (zero_grad goes with backward).
minigrad's ops are timed by wrapping every registered op's forward and backward for the
duration of the profile (``minigrad.OPS``); what a phase spends outside its ops is the
engine and the Python around it (modules, graph recording, accumulating gradients).
PyTorch's ops come from ``torch.profiler`` (self CPU time, summed over its threads, so with
two threads an op's figure can exceed its wall time). Wall-clock figures: profile on a quiet
machine, and compare the two frameworks only within one run.
"""
from __future__ import annotations

import collections
import contextlib
import os
import time

import minigrad as mg
from minigrad import optim

from ..model import GPT, GPTConfig
from .training import CONFIGS, _batches


@contextlib.contextmanager
def _op_timers(forward: dict, backward: dict, calls: collections.Counter):
    """Time every registered op's forward and backward (seconds, summed by op name)."""
    saved = {}

    def timed(fn, name, into, count):
        def wrapper(self, *args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(self, *args, **kwargs)
            finally:
                into[name] += time.perf_counter() - t
                if count:
                    calls[name] += 1
        return wrapper
    for name, cls in mg.OPS.items():
        saved[cls] = cls.__dict__.get("forward"), cls.__dict__.get("backward")
        cls.forward = timed(cls.forward, name, forward, True)
        cls.backward = timed(cls.backward, name, backward, False)
    try:
        yield
    finally:
        for cls, (fwd, bwd) in saved.items():
            for attr, fn in (("forward", fwd), ("backward", bwd)):
                if fn is None:
                    delattr(cls, attr)
                else:
                    setattr(cls, attr, fn)


def _phases(model_loss, zero_and_backward, optimizer_step, batches, steps, warmup=3):
    """Seconds per phase summed over ``steps`` steps (after ``warmup`` untimed ones), and
    a function to run more steps untimed."""
    totals = collections.defaultdict(float)

    def one(idx, targets, record):
        t0 = time.perf_counter()
        loss = model_loss(idx, targets)
        t1 = time.perf_counter()
        zero_and_backward(loss)
        t2 = time.perf_counter()
        optimizer_step()
        t3 = time.perf_counter()
        float(loss.item())
        if record:
            totals["forward"] += t1 - t0
            totals["backward"] += t2 - t1
            totals["optimizer"] += t3 - t2
    for i in range(warmup):
        one(*batches[i % len(batches)], False)
    return totals, one


def profile_minigrad(name: str, steps: int = 10) -> dict:
    """ms per step of each phase, of each op's forward and backward (and its calls per
    step), and of the engine and Python around the ops."""
    params, batch = CONFIGS[name]
    cfg = GPTConfig(**params)
    mg.manual_seed(0)
    model = GPT(cfg)                      # as the benchmark's minigrad_step builds it
    opt = optim.AdamW(optim.weight_decay_groups(model.named_parameters(), 0.1), lr=1e-3)
    batches = _batches(cfg, batch, 8)

    def zero_and_backward(loss):
        opt.zero_grad()
        loss.backward()
    fwd, bwd, calls = (collections.defaultdict(float), collections.defaultdict(float),
                       collections.Counter())
    totals, one = _phases(lambda i, t: model(i, t)[1], zero_and_backward, opt.step, batches,
                          steps)
    with _op_timers(fwd, bwd, calls):
        fwd.clear(), bwd.clear(), calls.clear()
        for i in range(steps):
            one(*batches[i % len(batches)], True)
    ms = 1000 / steps
    ops = {op: {"calls": calls[op] // steps, "forward_ms": round(fwd[op] * ms, 2),
                "backward_ms": round(bwd[op] * ms, 2)}
           for op in sorted(set(fwd) | set(bwd), key=lambda o: -(fwd[o] + bwd[o]))}
    phases = {k: round(v * ms, 2) for k, v in totals.items()}
    return {"framework": "minigrad", "config": name, "ms_per_step": round(sum(phases.values()), 1),
            "phases": phases, "ops": ops,
            "engine_and_python_ms": {
                "forward": round(phases["forward"] - sum(fwd.values()) * ms, 2),
                "backward": round(phases["backward"] - sum(bwd.values()) * ms, 2)}}


def profile_torch(name: str, steps: int = 10, top: int = 12) -> dict:
    """The same phases for the PyTorch twin, and its ``top`` ops by self CPU time."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from .torch_gpt import TorchGPT
    torch.set_num_threads(os.cpu_count())
    params, batch = CONFIGS[name]
    cfg = GPTConfig(**params)
    torch.manual_seed(0)
    model = TorchGPT(cfg)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}], lr=1e-3)
    batches = [(torch.as_tensor(i), torch.as_tensor(t)) for i, t in _batches(cfg, batch, 8)]

    def zero_and_backward(loss):
        opt.zero_grad(set_to_none=True)
        loss.backward()
    totals, one = _phases(model, zero_and_backward, opt.step, batches, steps)
    for i in range(steps):
        one(*batches[i % len(batches)], True)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(steps):
            one(*batches[i % len(batches)], False)
    ms = 1000 / steps
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:top]
    phases = {k: round(v * ms, 2) for k, v in totals.items()}
    return {"framework": "torch", "config": name, "ms_per_step": round(sum(phases.values()), 1),
            "phases": phases,
            "ops": {e.key: {"calls": e.count // steps,
                            "self_cpu_ms": round(e.self_cpu_time_total / 1000 / steps, 2)}
                    for e in events}}


def print_profile(p: dict) -> None:
    print(f"{p['framework']} {p['config']}: {p['ms_per_step']} ms/step; "
          + ", ".join(f"{k} {v} ms" for k, v in p["phases"].items()))
    if "engine_and_python_ms" in p:
        e = p["engine_and_python_ms"]
        print(f"  outside the ops (engine and Python): forward {e['forward']} ms, backward "
              f"{e['backward']} ms")
        print(f"  {'op':<22} {'calls':>6} {'forward ms':>11} {'backward ms':>12}")
        for op, r in p["ops"].items():
            print(f"  {op:<22} {r['calls']:>6} {r['forward_ms']:>11} {r['backward_ms']:>12}")
    else:
        print(f"  {'op (torch.profiler, self CPU)':<50} {'calls':>6} {'ms':>8}")
        for op, r in p["ops"].items():
            print(f"  {op[:50]:<50} {r['calls']:>6} {r['self_cpu_ms']:>8}")


__all__ = ["profile_minigrad", "profile_torch", "print_profile"]
