"""The gradient walking back: the Backward record of a trace's prompt pass, and the float64
finite-difference check of every stage's gradient."""
from __future__ import annotations

import copy

import numpy as np

import minigrad as mg
from minigrad import backend

from ..recording import Recorder
from .record import Backward, FDCheck, stage_names
from .stages import pass_grads, position_norms, stage_view


def backward_record(model, arrays, grads, loss, targets, description) -> Backward:
    """The Backward of the prompt's pass (its checks are added by ``fd_checks``):
    ``arrays`` and ``grads`` as pass_arrays / pass_grads give them, the parameters' gradients
    from the backward that just ran."""
    names = {id(p): n for n, p in model.named_parameters()}
    tok_emb = arrays["tok_emb"][0].astype(np.float64)
    saliency = (grads["tok_emb"][0].astype(np.float64) * tok_emb).sum(-1)
    return Backward(
        loss=float(loss.item()), description=description, targets=targets,
        grad_norms={k: position_norms(k, g if k == "pos_emb" else g[0])
                    for k, g in grads.items()},
        param_grad_norms={names[id(p)]: float(np.linalg.norm(
            backend.to_numpy(p.grad.array).astype(np.float64)))
            for p in model.parameters() if p.grad is not None},
        saliency=saliency, checks={})


def _float64_copy(model):
    """A float64 CPU copy of the model (tied weights stay tied)."""
    saved = [(p, p.grad) for p in model.parameters()]
    for p, _ in saved:
        p.grad = None
    try:
        m = copy.deepcopy(model)
    finally:
        for p, g in saved:
            p.grad = g
    return m.to("cpu", "float64")


def fd_checks(model, idx, targets, grads32, samples, eps=1e-5, atol=1e-9, rtol=1e-5,
              seed=0) -> dict:
    """For each stage output h: dL/dh from backward (float64) at ``samples`` elements (the
    largest |dL/dh| and random others) against (L(h + eps e) - L(h - eps e)) / (2 eps),
    L recomputed by the real forward with h replaced (Recorder overrides; attn.q/k/v/y are
    perturbed inside the recorded c_attn output and merged y they are views of). Agrees
    when max |error| <= atol + rtol * max |dL/dh| over the stage. ``grads32``: the trace's
    own (float32) gradients, compared too."""
    m64 = _float64_copy(model)
    m64.eval()
    with Recorder(retain_grad=True) as rec:
        _, loss = m64(idx, targets[None])
    loss.backward()
    names = stage_names(m64.config.n_layer)
    grads = pass_grads(rec, names, m64.config.n_head)
    rng = np.random.default_rng(seed)

    def loss_with(recorded, delta):
        over = {recorded: lambda t: t + mg.as_tensor(delta)}
        with mg.no_grad(), Recorder(overrides=over):
            return m64(idx, targets[None])[1].item()

    checks = {}
    for name in names:
        recorded, view = stage_view(name, m64.config.n_head)
        g = grads[name]
        scale = float(np.abs(g).max())
        picks = [int(np.abs(g).argmax())]
        picks += [int(e) for e in rng.choice(g.size, size=min(samples - 1, g.size),
                                             replace=False) if int(e) not in picks]
        elements, err = [], 0.0
        for e in picks[:samples]:
            at = np.unravel_index(e, g.shape)
            delta = np.zeros(rec[recorded].shape)
            view(delta)[at] = eps                # one element of the stage, in its recording
            numeric = (loss_with(recorded, delta) - loss_with(recorded, -delta)) / (2 * eps)
            analytic = float(g[at])
            err = max(err, abs(analytic - numeric))
            elements.append(([int(i) for i in at], analytic, numeric))
        f32 = None
        if name in grads32:
            f32 = float(np.abs(grads32[name].astype(np.float64) - g).max() / max(scale, 1e-30))
        checks[name] = FDCheck(name, "agrees" if err <= atol + rtol * scale else "disagrees",
                               err, scale, elements, f32)
    return checks


__all__ = ["backward_record", "fd_checks"]
