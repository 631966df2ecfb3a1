"""Training health per layer: activation mean/std, gradient norm, update/parameter ratio.

The numbers that tell a sick run from a healthy one before the loss does: activations that
drift (std growing layer after layer), gradients that vanish or explode in one layer, and
updates far from ~1e-3 of the weights (too small: it does not learn; too large: it is unstable).
Layers: "emb" (wte, wpe), "h.0" ... "h.{n_layer-1}" (one block each) and "ln_f".

A training loop calls it every N steps (activations come from the model's own forward, through
a minigpt.recording.Recorder):

    from minigpt import health
    monitor = health.HealthMonitor(model, every=100)
    for step in range(max_steps):
        with monitor.watch(step):               # on a due step, records the activations
            logits, loss = model(xb, yb)
        loss.backward()
        monitor.before_update(step)             # on a due step, copies the parameters
        optimizer.step()
        rows = monitor.after_update(step)       # on a due step, one dict per layer
        if rows:
            print(health.format_health(rows, step))
        optimizer.zero_grad()

or, without the monitor: ``before = snapshot(model)`` before optimizer.step(), then
``layer_health(model, activations=recorder, params_before=before)`` before zero_grad().
"""
from __future__ import annotations

import contextlib

import numpy as np

import minigrad as mg
from minigrad import backend

from .recording import Recorder

__all__ = ["layer_of", "snapshot", "layer_health", "format_health", "HealthMonitor"]


def layer_of(param_name: str) -> str:
    """The layer a parameter belongs to.

    >>> layer_of("transformer.h.3.mlp.c_fc.weight"), layer_of("transformer.wpe.weight")
    ('h.3', 'emb')
    """
    parts = param_name.split(".")
    if parts[:2] == ["transformer", "h"]:
        return f"h.{parts[2]}"
    if parts[1:2] in (["wte"], ["wpe"]):
        return "emb"
    return "ln_f" if parts[1:2] == ["ln_f"] else parts[0]


def _layer_output(layer: str) -> str:
    """The recorded stage output that is a layer's output."""
    return {"emb": "emb", "ln_f": "ln_f"}.get(layer, f"{layer}.resid_mlp")


def snapshot(model) -> dict:
    """{parameter name: a NumPy copy}: take it just before optimizer.step()."""
    return {n: backend.to_numpy(p.array).astype(np.float64) for n, p in model.named_parameters()}


def layer_health(model, activations=None, params_before: dict | None = None, batch=None) -> list:
    """One dict per layer ("emb", "h.0", ..., "ln_f"):
      act_mean, act_std    of the layer's output (from ``activations``, a Recorder or a dict
                           name -> Tensor/array of the forward, or from a no-grad forward of
                           ``batch``, an id array (B, T)); None without either
      grad_norm            |gradient| over the layer's parameters (None before backward)
      param_norm           |parameters|
      update_norm, update_ratio   |p - p_before| and |p - p_before| / |p_before| (needs
                           ``params_before`` from snapshot() taken before the optimizer step)
    """
    if activations is None and batch is not None:
        was_training = model.training
        model.eval()
        try:
            with mg.no_grad(), Recorder() as activations:
                model(batch)
        finally:
            model.train(was_training)
    acts = getattr(activations, "tensors", activations) or {}
    sums: dict[str, dict] = {}
    for name, p in model.named_parameters():
        s = sums.setdefault(layer_of(name), {"grad": 0.0, "param": 0.0, "update": 0.0,
                                             "before": 0.0, "has_grad": False})
        data = backend.to_numpy(p.array).astype(np.float64)
        s["param"] += float((data ** 2).sum())
        if p.grad is not None:
            s["grad"] += float((backend.to_numpy(p.grad.array).astype(np.float64) ** 2).sum())
            s["has_grad"] = True
        if params_before is not None and name in params_before:
            before = params_before[name]
            s["update"] += float(((data - before) ** 2).sum())
            s["before"] += float((before ** 2).sum())
    rows = []
    for layer, s in sums.items():
        out = acts.get(_layer_output(layer))
        a = None if out is None else backend.to_numpy(getattr(out, "array", out))
        row = {"layer": layer,
               "act_mean": None if a is None else float(a.mean()),
               "act_std": None if a is None else float(a.std()),
               "grad_norm": float(np.sqrt(s["grad"])) if s["has_grad"] else None,
               "param_norm": float(np.sqrt(s["param"])),
               "update_norm": None, "update_ratio": None}
        if params_before is not None:
            row["update_norm"] = float(np.sqrt(s["update"]))
            row["update_ratio"] = row["update_norm"] / max(float(np.sqrt(s["before"])), 1e-30)
        rows.append(row)
    return rows


def format_health(rows: list, step: int | None = None) -> str:
    """A small table for the training log."""
    def f(v):
        return "-" if v is None else f"{v:.3g}"
    head = f"health{'' if step is None else f' @ step {step}'}:"
    lines = [head, f"  {'layer':<6} {'act mean':>9} {'act std':>9} {'|grad|':>9} {'|param|':>9} "
                   f"{'update/param':>12}"]
    for r in rows:
        lines.append(f"  {r['layer']:<6} {f(r['act_mean']):>9} {f(r['act_std']):>9} "
                     f"{f(r['grad_norm']):>9} {f(r['param_norm']):>9} {f(r['update_ratio']):>12}")
    return "\n".join(lines)


class HealthMonitor:
    """Every ``every`` steps: record the forward's activations, copy the parameters before
    the optimizer step, and report layer_health after it (see the module docstring)."""

    def __init__(self, model, every: int = 100):
        if every < 1:
            raise ValueError(f"HealthMonitor: every must be >= 1, got {every}")
        self.model, self.every = model, every
        self._recorder, self._before = None, None

    def due(self, step: int) -> bool:
        return step % self.every == 0

    def watch(self, step: int):
        """Context for the forward pass: a Recorder on a due step, else nothing."""
        if not self.due(step):
            return contextlib.nullcontext()
        self._recorder = Recorder()
        return self._recorder

    def before_update(self, step: int) -> None:
        if self.due(step):
            self._before = snapshot(self.model)

    def after_update(self, step: int) -> list | None:
        if not self.due(step):
            return None
        rows = layer_health(self.model, self._recorder, self._before)
        self._recorder, self._before = None, None
        return rows
