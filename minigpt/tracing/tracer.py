"""``trace()``: record the life of a prompt's tokens through a GPT, then of each generated token.

The trace drives the one sampling loop (minigpt.generate.generate_steps) with a ``forward``
hook that runs each pass inside a Recorder: the same KV cache, the same sliding window, the
same seeded draws, so it picks exactly the tokens GPT.generate and ``minigpt sample`` pick.
Nothing is recomputed beside the model: the stage outputs are the tensors its forward
recorded and the arrays its fused attention op computed.
"""
from __future__ import annotations

import contextlib

import numpy as np

import minigrad as mg
import minigrad.functional as F
from minigrad import backend

from ..errors import ConfigError
from ..generate import generate_steps
from ..recording import Recorder
from ..sampling import check_sampling_settings
from .gradients import backward_record, fd_checks
from .record import STAGE_TENSORS, TokenTrace, stage_names
from .report import show
from .stages import (generated_token_stages, model_stages, pass_arrays, pass_grads,
                     sampling_stage, token_text, tokenizer_stages)


def trace(model, tokenizer, text: str, max_new_tokens: int = 0, temperature: float = 1.0,
          top_k: int | None = None, top_p: float | None = None, seed: int | None = 0,
          target="chosen", top: int = 5, check: bool = True, fd_samples: int = 3,
          eos_token_id: int | None = None, label: str = "") -> TokenTrace:
    """Record the life of ``text``'s tokens through ``model``, then of each generated token.

    Sampling is GPT.generate's own loop (same filter, same KV cache, same seeded generator),
    so ``seed`` gives the tokens model.generate(..., seed=seed) gives.
    ``target`` says what the backward pass explains (the loss is the cross-entropy GPT.forward
    computes, on the prompt pass's own recorded logits):
      - "chosen" (the default): the next token the trace chose (stage 12 of the prompt); the
        loss is -log p(chosen), so the gradients say which inputs and layers made it likely;
      - an int id, or a str whose first token is used: that token as the next one (a str that
        is exactly "chosen" or "continuation" names the rule: pass such a word as its id);
      - "continuation" (or True): the prompt's own continuation (position t predicts prompt
        token t + 1), the loss training learns from;
      - a sequence of T ints: the target at each prompt position (-1: no loss there);
      - None or False: forward only.
    ``check`` adds the float64 finite-difference spot-check (``fd_samples`` elements per stage).
    ``top``: rows of the top-k tables and the logit lens. ``eos_token_id`` defaults to the
    tokenizer's end-of-text token; generation stops once it is chosen. Settings out of range
    are a ConfigError (minigpt.sampling's one check).
    """
    if not isinstance(text, str) or not text:
        raise ConfigError(f"trace: text must be a non-empty str, got {text!r}")
    if eos_token_id is None:
        eos_token_id = getattr(tokenizer, "eot_token", None)
    check_sampling_settings(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k,
                            top_p=top_p, eos_token_id=eos_token_id, where="trace: ",
                            seed=None if isinstance(seed, np.random.Generator) else seed)
    cfg = model.config
    notes: list[str] = []
    ids, stages = tokenizer_stages(tokenizer, text)        # stages 1-3: the tokenizer's work
    if len(ids) > cfg.block_size:
        notes.append(f"the prompt has {len(ids)} tokens; the model reads at most "
                     f"{cfg.block_size}, so the trace keeps the last {cfg.block_size}")
        ids = ids[-cfg.block_size:]
        stages[2].data["ids"] = list(ids)
    tokens = {i: token_text(tokenizer, i) for i in ids}
    kind = _target_kind(target)
    targets = None if kind in (None, "chosen") else _targets(tokenizer, ids, target, kind)
    passes = []   # (Pass, Recorder, logits) of every forward pass the loop ran

    def forward(model, run):   # the loop's pass, recorded
        keep_graph = run.step == 0 and kind is not None     # the prompt's, for the backward
        grad_mode = mg.enable_grad() if keep_graph else contextlib.nullcontext()
        with grad_mode, Recorder(retain_grad=keep_graph) as rec:
            logits, _ = model(run.ids, cache=run.cache)
        passes.append((run, rec, logits))
        return logits

    was_training = model.training
    saved_grads = [(p, p.grad) for p in model.parameters()]
    model.eval()
    idx = np.array([ids], dtype=np.int64)
    context, generated, bwd, steps = list(ids), [], None, None
    try:
        if kind is not None:
            for p, _ in saved_grads:
                p.grad = None
        # max_new_tokens 0 still shows stage 12 of the prompt: the token it would choose
        steps = generate_steps(model, idx, max(max_new_tokens, 1), temperature, top_k, top_p,
                               eos_token_id, seed, forward=forward)
        for step, (nxt, last) in enumerate(steps):
            run, rec, logits = passes[step]
            nxt, appended = int(nxt[0]), len(generated) < max_new_tokens
            loss = None
            if step == 0 and kind is not None:   # the backward, now that the choice is known
                if kind == "chosen":
                    targets = np.full(len(ids), -1, dtype=np.int64)
                    targets[-1] = nxt
                loss = _loss_backward(logits, targets, model.device)
            arrays = pass_arrays(rec)
            grads = pass_grads(rec, stage_names(cfg.n_layer), cfg.n_head)
            stages += model_stages(model, tokenizer, arrays, grads, step, run.first_new, top,
                                   tokens)
            if loss is not None:
                bwd = backward_record(model, arrays, grads, loss, targets,
                                      _describe_target(targets, tokenizer, kind, last[0]))
                bwd.kind = kind
                if check:
                    bwd.checks = fd_checks(model, idx, targets, grads, fd_samples)
                    _attach_checks(stages, bwd.checks)
            stages.append(sampling_stage(tokenizer, last[0], nxt, step, temperature, top_k,
                                         top_p, top, appended, tokens))
            if not appended:
                stages[-1].summary += "  (max_new_tokens is 0: not appended)"
                break
            generated.append(nxt)
            context.append(nxt)
            tokens.setdefault(nxt, token_text(tokenizer, nxt))
            if nxt == eos_token_id:
                notes.append(f"generation stopped at the end-of-text token after "
                             f"{len(generated)} tokens")
                break
            if len(generated) == max_new_tokens:
                break
            stages += generated_token_stages(tokenizer, nxt, context, step + 1, tokens)
    finally:
        if steps is not None:
            steps.close()   # the loop gives the model its mode back before we restore ours
        for p, g in saved_grads:
            p.grad = g
        model.train(was_training)

    return TokenTrace(
        text=text, config=cfg.to_dict(), tokenizer=repr(tokenizer),
        sampling=dict(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                      max_new_tokens=max_new_tokens, eos_token_id=eos_token_id),
        prompt_ids=list(ids), tokens=[tokens[i] for i in context], generated=generated,
        generated_text=tokenizer.decode(generated) if generated else "",
        stages=stages, backward=bwd, notes=notes, label=label)


def _attach_checks(stages, checks) -> None:
    """Give each stage of the prompt the verdicts of its outputs."""
    for s in stages:
        prefix = "" if s.layer is None else f"h.{s.layer}."
        s.checks = {n: checks[prefix + n] for n in STAGE_TENSORS.get(s.number, [])
                    if prefix + n in checks}


TARGETS = ("chosen", "continuation")   # the targets named by a rule (any other str: a token)


def _target_kind(target) -> str | None:
    """None (forward only), "chosen", "continuation", "token" or "sequence"."""
    if target is None or target is False:
        return None
    if target is True or (isinstance(target, str) and target in TARGETS):
        return "continuation" if target is True else target
    return "token" if isinstance(target, (str, int, np.integer)) else "sequence"


def _loss_backward(logits, targets, device):
    """GPT.forward's loss (cross-entropy, -1 ignored) on the prompt pass's own logits, and
    its backward through the graph that pass recorded."""
    B, T, _ = logits.shape
    with mg.enable_grad(), mg.stage("loss"):
        loss = F.cross_entropy(logits.reshape(B * T, -1),
                               backend.to_device(targets, device), ignore_index=-1)
    loss.backward()
    return loss


def _targets(tokenizer, ids, target, kind):
    """(T,) target per position, -1 where there is no loss (kind: _target_kind's)."""
    T = len(ids)
    t = np.full(T, -1, dtype=np.int64)
    if kind == "continuation":
        if T < 2:
            raise ConfigError("trace: target='continuation' (the prompt's own continuation) "
                              "needs a prompt of at least 2 tokens; use target='chosen'")
        t[:-1] = ids[1:]
    elif isinstance(target, str):
        enc = tokenizer.encode(target, allowed_special="all")
        if not enc:
            raise ConfigError("trace: target text encodes to no token")
        t[-1] = enc[0]
    elif isinstance(target, (int, np.integer)):
        t[-1] = int(target)
    else:
        t = np.asarray(target, dtype=np.int64)
        if t.shape != (T,):
            raise ConfigError(f"trace: a target sequence must hold one id per prompt token "
                              f"({T}), got shape {t.shape}")
    return t


def _describe_target(targets, tokenizer, kind, last_logits) -> str:
    pos = np.flatnonzero(targets >= 0)
    if len(pos) == 1 and kind in ("chosen", "token") and pos[0] == len(targets) - 1:
        i = int(targets[pos[0]])
        z = last_logits - last_logits.max()
        p = float(np.exp(z[i]) / np.exp(z).sum())
        what = "the chosen next token" if kind == "chosen" else "the next token asked for"
        return (f"-log p({show(token_text(tokenizer, i))}) at position {int(pos[0])}: {what} "
                f"(id {i}, p {p:.3g})")
    if kind == "continuation":
        return f"the prompt's own continuation ({len(pos)} positions)"
    return f"the given targets ({len(pos)} positions)"


__all__ = ["trace", "TARGETS"]
