"""``trace()``: record the life of a prompt's tokens through a GPT, then of each generated token.

The trace drives the one sampling loop (minigpt.generate.generate_steps) with a ``forward``
hook that runs each pass inside a Recorder: the same KV cache, the same sliding window, the
same seeded draws, so it picks exactly the tokens GPT.generate and ``minigpt sample`` pick.
Nothing is recomputed beside the model: the stage outputs are the tensors its forward
recorded and the arrays its fused attention op computed.
"""
from __future__ import annotations

import numpy as np

import minigrad as mg
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
          target=None, top: int = 5, check: bool = True, fd_samples: int = 3,
          eos_token_id: int | None = None, label: str = "") -> TokenTrace:
    """Record the life of ``text``'s tokens through ``model``, then of each generated token.

    Sampling is GPT.generate's own loop (same filter, same KV cache, same seeded generator),
    so ``seed`` gives the tokens model.generate(..., seed=seed) gives.
    ``target`` turns on the backward pass:
      - None: forward only;
      - an int id, or a str whose first token is used: the actual next token after the prompt;
      - True: the prompt's own continuation (position t predicts prompt token t + 1);
      - a sequence of T ints: the target at each prompt position (-1: no loss there).
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
    targets = _targets(tokenizer, ids, target)
    passes = []   # (Pass, Recorder, loss) of every forward pass the loop ran

    def forward(model, run):   # the loop's pass, recorded; the prompt's with its backward
        if run.step == 0 and targets is not None:
            with mg.enable_grad(), Recorder(retain_grad=True) as rec:
                logits, loss = model(run.ids, backend.to_device(targets[None], model.device),
                                     cache=run.cache)
                loss.backward()
        else:
            with Recorder() as rec:
                logits, loss = model(run.ids, cache=run.cache)
        passes.append((run, rec, loss))
        return logits

    was_training = model.training
    saved_grads = [(p, p.grad) for p in model.parameters()]
    model.eval()
    idx = np.array([ids], dtype=np.int64)
    context, generated, bwd, steps = list(ids), [], None, None
    try:
        if targets is not None:
            for p, _ in saved_grads:
                p.grad = None
        # max_new_tokens 0 still shows stage 12 of the prompt: the token it would choose
        steps = generate_steps(model, idx, max(max_new_tokens, 1), temperature, top_k, top_p,
                               eos_token_id, seed, forward=forward)
        for step, (nxt, last) in enumerate(steps):
            run, rec, loss = passes[step]
            arrays = pass_arrays(rec)
            grads = pass_grads(rec, stage_names(cfg.n_layer), cfg.n_head)
            stages += model_stages(model, tokenizer, arrays, grads, step, run.first_new, top,
                                   tokens)
            if step == 0 and targets is not None:
                bwd = backward_record(model, arrays, grads, loss, targets,
                                      _describe_target(targets, tokenizer))
                if check:
                    bwd.checks = fd_checks(model, idx, targets, grads, fd_samples)
                    _attach_checks(stages, bwd.checks)
            nxt, appended = int(nxt[0]), len(generated) < max_new_tokens
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


def _targets(tokenizer, ids, target):
    """(T,) target per position, -1 where there is no loss; None without a target."""
    T = len(ids)
    if target is None or target is False:
        return None
    t = np.full(T, -1, dtype=np.int64)
    if target is True:
        if T < 2:
            raise ConfigError("trace: target=True (the prompt's own continuation) needs a "
                              "prompt of at least 2 tokens")
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


def _describe_target(targets, tokenizer) -> str:
    pos = np.flatnonzero(targets >= 0)
    if len(pos) == 1:
        return (f"next token {show(token_text(tokenizer, targets[pos[0]]))} "
                f"(id {int(targets[pos[0]])}) at position {int(pos[0])}")
    return f"the prompt's own continuation ({len(pos)} positions)"


__all__ = ["trace"]
