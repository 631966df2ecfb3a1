"""The life of a token, recorded: every stage of a forward pass, and the gradient walking back.

    from minigpt import trace
    t = trace(model, tokenizer, "First Citizen:", max_new_tokens=3, target=True)
    print(t.report())                # the twelve stages, as text
    t.to_html("trace.html")          # one self-contained page: heatmaps, bars, gradients
    t.to_json("trace.json")

The twelve stages (STAGES) of the founding document, for the prompt (step 0) and then for the
forward pass that reads each generated token (step s reads the token chosen at step s - 1):

     1 text -> bytes                 UTF-8 bytes of the text
     2 tokenization (BPE)            regex chunks and every merge applied (pair, rank, new id)
     3 token ids                     the ids the model reads
     4 token embeddings              rows of wte
     5 positional embeddings         rows of wpe, and their sum with the token rows
     6 multi-head self-attention     per layer: LayerNorm stats, q/k/v, scores, weights, output
     7 feed-forward network + LN     per layer: ln_2, c_fc (pre-GELU), GELU, c_proj
     8 residual connections          per layer: the residual stream's norm per position
     9 stacked layers                norms through the stack, and the logit lens
    10 final contextual embedding    ln_f
    11 projection to vocabulary      logits
    12 softmax + next token          probabilities, top-k table, sampling filter, chosen token

The trace reads the model's real forward pass through minigpt.model.record() (a Recorder keeps
each stage's output); nothing is recomputed beside it, except the attention scores and weights,
which are rebuilt from the recorded q and k with the formula of the fused op
(minigrad.fused.Attention: softmax(q k^T / sqrt(hs)) under the causal mask). A test checks that
weights @ v equals the recorded attention output, and that the trace's logits are model(idx)'s.

With a target, the trace also runs backward and keeps d loss / d (every stage's output), each
parameter's gradient norm, gradient x input saliency per prompt token, and a float64
finite-difference spot-check per stage: a few elements of that stage's output are perturbed
(the Recorder's ``overrides``) and the change in the loss is compared with the gradient.
The model runs in eval mode (no dropout) during the trace; its training mode and any
gradients it held are restored afterwards.
"""
from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import minigrad as mg
from minigrad import backend
from minigrad.fileio import atomic_write

from .cli import ArgumentParser, add_sampling_flags, check_sampling_flags, command
from .errors import ConfigError
from .model import GPT, KVCache, Recorder, _check_sampling, filter_logits, sample_next
from .sampling import TRACE_MAX_NEW_TOKENS, check_prompt

__all__ = ["STAGES", "Stage", "FDCheck", "Backward", "TokenTrace", "trace", "block_graph",
           "fresh_model", "main"]

STAGES = {
    1: "text -> bytes",
    2: "tokenization (BPE)",
    3: "token ids",
    4: "token embeddings",
    5: "positional embeddings",
    6: "multi-head self-attention",
    7: "feed-forward network + layer norm",
    8: "residual connections",
    9: "stacked layers",
    10: "final contextual embedding",
    11: "projection to vocabulary (logits)",
    12: "softmax + next token",
}

# the recorded outputs of each stage (layer stages: names relative to "h.{layer}.")
STAGE_TENSORS = {
    4: ["tok_emb"],
    5: ["pos_emb", "emb"],
    6: ["ln_1", "attn.q", "attn.k", "attn.v", "attn.y", "attn.c_proj"],
    7: ["ln_2", "mlp.c_fc", "mlp.gelu", "mlp.c_proj"],
    8: ["resid_attn", "resid_mlp"],
    10: ["ln_f"],
    11: ["logits"],
}
HEADS_FIRST = ("attn.q", "attn.k", "attn.v", "attn.y")   # (nh, T, hs); the others are (T, ...)


def stage_names(n_layer: int) -> list[str]:
    """Every recorded stage output, in forward order.

    >>> stage_names(1)[:4]
    ['tok_emb', 'pos_emb', 'emb', 'h.0.ln_1']
    """
    names = ["tok_emb", "pos_emb", "emb"]
    for i in range(n_layer):
        names += [f"h.{i}.{n}" for n in ("ln_1", "attn.q", "attn.k", "attn.v", "attn.y",
                                          "attn.c_proj", "resid_attn", "ln_2", "mlp.c_fc",
                                          "mlp.gelu", "mlp.c_proj", "resid_mlp")]
    return names + ["ln_f", "logits"]


# ----------------------------------------------------------------------------- records
@dataclass
class FDCheck:
    """A float64 finite-difference spot-check of dL/d(one stage output)."""
    name: str                  # the stage output, e.g. "h.0.mlp.c_fc"
    verdict: str               # "agrees" or "disagrees"
    max_abs_error: float       # max over the sampled elements of |analytic - numeric|
    scale: float               # max |dL/dh| over the whole stage (the error is judged against it)
    elements: list             # [(index, analytic, numeric)] of the sampled elements
    float32_rel_diff: float | None = None   # the trace's float32 gradient vs float64, / scale

    @property
    def ok(self) -> bool:
        return self.verdict == "agrees"


@dataclass
class Stage:
    """One stage of one step. ``data`` holds what the stage computed (NumPy arrays for batch
    row 0: (T, ...) or (nh, T, hs) for q/k/v/attn.y); ``grads`` the gradient of the loss with
    respect to each recorded output (when the trace has a target); ``checks`` their verdicts."""
    number: int                      # 1..12 (STAGES)
    step: int                        # 0: the prompt; s: the pass that reads generated token s
    layer: int | None                # the block, for stages 6, 7 and 8
    summary: str                     # one line for the report
    data: dict = field(default_factory=dict)
    grads: dict = field(default_factory=dict)
    checks: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return STAGES[self.number]

    @property
    def title(self) -> str:
        where = f" - layer {self.layer}" if self.layer is not None else ""
        return f"{self.number} {self.name}{where}"

    @property
    def key(self) -> tuple:
        return (self.step, self.number, -1 if self.layer is None else self.layer)


@dataclass
class Backward:
    """The gradient walking back from the loss through every stage (step 0 only)."""
    loss: float
    description: str                 # what the loss predicts
    targets: np.ndarray              # (T,) target id per position, -1 = no loss there
    grad_norms: dict                 # stage output name -> (T,) |dL/dh| per position
    param_grad_norms: dict           # parameter name -> |dL/dp|
    saliency: np.ndarray             # (T,) sum_c dL/d tok_emb * tok_emb per prompt token
    checks: dict                     # stage output name -> FDCheck (empty when check=False)

    @property
    def first_disagreement(self) -> str | None:
        """Walking back from the loss, the first stage whose gradient disagrees with finite
        differences: the faulty backward sits between it and the stage after it."""
        for name in reversed(list(self.checks)):
            if not self.checks[name].ok:
                return name
        return None


@dataclass
class TokenTrace:
    """Everything a token's life recorded; see the module docstring."""
    text: str
    config: dict
    tokenizer: str
    sampling: dict                   # temperature, top_k, top_p, seed, max_new_tokens, eos
    prompt_ids: list
    tokens: list                     # display text of every id read or generated
    generated: list                  # ids generated (up to max_new_tokens or eos)
    generated_text: str
    stages: list                     # [Stage] in order: step 0's twelve stages, then step 1's...
    backward: Backward | None = None
    notes: list = field(default_factory=list)
    label: str = ""                  # a name for the page (e.g. the checkpoint)

    # -------------------------------------------------------------- access
    def stage(self, number: int, step: int = 0, layer: int | None = None) -> Stage:
        for s in self.stages:
            if s.number == number and s.step == step and s.layer == layer:
                return s
        raise KeyError(f"no stage {number} at step {step}, layer {layer}")

    @property
    def n_steps(self) -> int:
        return 1 + max(s.step for s in self.stages)

    @property
    def logits(self) -> np.ndarray:
        """The prompt's logits (T, vocab), as the model's forward returned them."""
        return self.stage(11).data["logits"]

    @property
    def logit_lens(self) -> list:
        """Step 0's logit lens: per layer, the top tokens of its residual stream at each
        position, decoded through ln_f and lm_head."""
        return self.stage(9).data["logit_lens"]

    # -------------------------------------------------------------- outputs
    def report(self, width: int = 100) -> str:
        return _report(self, width)

    def to_dict(self, max_elements: int = 4096) -> dict:
        """A JSON-serialisable dict; arrays of more than max_elements values are summarised
        (shape, min, max, mean, std), the others rounded to 5 significant digits."""
        return _jsonable({
            "text": self.text, "label": self.label, "config": self.config,
            "tokenizer": self.tokenizer, "sampling": self.sampling,
            "prompt_ids": self.prompt_ids, "tokens": self.tokens, "generated": self.generated,
            "generated_text": self.generated_text, "notes": self.notes,
            "stages": [{"number": s.number, "name": s.name, "step": s.step, "layer": s.layer,
                        "summary": s.summary, "data": s.data, "grads": s.grads,
                        "checks": {k: vars(c) for k, c in s.checks.items()}}
                       for s in self.stages],
            "backward": None if self.backward is None else {
                **{k: v for k, v in vars(self.backward).items() if k != "checks"},
                "checks": {k: vars(c) for k, c in self.backward.checks.items()},
                "first_disagreement": self.backward.first_disagreement},
        }, max_elements)

    def to_json(self, path=None, max_elements: int = 4096) -> str:
        text = json.dumps(self.to_dict(max_elements), allow_nan=False)
        if path is not None:
            atomic_write(path, text.encode("utf-8"))
        return text

    def to_html(self, path=None, compare: "TokenTrace | None" = None) -> str:
        """One self-contained HTML page (inline SVG, no network); with ``compare``, the two
        traces side by side, stage by stage. Returns the HTML (and writes it to path)."""
        from .trace_html import render
        page = render(self, compare)
        if path is not None:
            atomic_write(path, page.encode("utf-8"))
        return page


# ----------------------------------------------------------------------------- the trace
def trace(model: GPT, tokenizer, text: str, max_new_tokens: int = 0, temperature: float = 1.0,
          top_k: int | None = None, top_p: float | None = None, seed: int | None = 0,
          target=None, top: int = 5, check: bool = True, fd_samples: int = 3,
          eos_token_id: int | None = None, label: str = "") -> TokenTrace:
    """Record the life of ``text``'s tokens through ``model``, then of each generated token.

    Sampling follows GPT.generate_steps exactly (same filter, same KV-cache path, same seeded
    generator), so ``seed`` gives the tokens model.generate(..., seed=seed) gives.
    ``target`` turns on the backward pass:
      - None: forward only;
      - an int id, or a str whose first token is used: the actual next token after the prompt;
      - True: the prompt's own continuation (position t predicts prompt token t + 1);
      - a sequence of T ints: the target at each prompt position (-1: no loss there).
    ``check`` adds the float64 finite-difference spot-check (``fd_samples`` elements per stage).
    ``top``: rows of the top-k tables and the logit lens. ``eos_token_id`` defaults to the
    tokenizer's end-of-text token; generation stops once it is chosen.
    """
    if not isinstance(text, str) or not text:
        raise ValueError(f"trace: text must be a non-empty str, got {text!r}")
    _check_sampling(max_new_tokens, temperature, top_k, top_p, seed, eos_token_id)
    cfg = model.config
    if eos_token_id is None:
        eos_token_id = getattr(tokenizer, "eot_token", None)
    stages: list[Stage] = []
    notes: list[str] = []

    # stages 1-3: the tokenizer's work
    ids, tok_stages = _tokenize(tokenizer, text)
    if len(ids) > cfg.block_size:
        notes.append(f"the prompt has {len(ids)} tokens; the model reads at most "
                     f"{cfg.block_size}, so the trace keeps the last {cfg.block_size}")
        ids = ids[-cfg.block_size:]
        tok_stages[2].data["ids"] = list(ids)
    stages += tok_stages
    tokens = {i: _token_text(tokenizer, i) for i in ids}
    targets = _targets(tokenizer, ids, target)

    was_training = model.training
    saved_grads = [(p, p.grad) for p in model.parameters()]
    model.eval()
    try:
        # step 0: the prompt, with the graph when there is a backward pass
        idx = np.array([ids], dtype=np.int64)
        bwd = None
        if targets is not None:
            for p, _ in saved_grads:
                p.grad = None
            with Recorder(retain_grad=True) as rec:
                _, loss = model(idx, backend.to_device(targets[None], model.device))
            loss.backward()
            bwd = _backward(model, rec, loss, targets, _describe_target(targets, tokens,
                                                                        tokenizer))
        else:
            with mg.no_grad(), Recorder() as rec:
                model(idx)
        arrays = {k: _np(t) for k, t in rec.tensors.items()}
        grads = {k: _np(t.grad) for k, t in rec.tensors.items() if t.grad is not None}
        stages += _model_stages(model, tokenizer, arrays, grads, step=0, q_start=0,
                                top=top, tokens=tokens)
        if bwd is not None and check:
            bwd.checks = _fd_checks(model, idx, targets, grads, fd_samples)
            for s in stages:
                prefix = "" if s.layer is None else f"h.{s.layer}."
                s.checks = {n: bwd.checks[prefix + n] for n in STAGE_TENSORS.get(s.number, [])
                            if prefix + n in bwd.checks}

        # step 12 of each step, then the next forward pass (the one generate_steps makes)
        rng = np.random.default_rng(seed) if seed is not None else backend.rng("cpu")
        context, generated = list(ids), []
        cache, fed = None, 0
        last = arrays["logits"][0, -1].astype(np.float64)
        step = 0
        while True:
            nxt = int(sample_next(last[None], temperature, top_k, top_p, rng)[0])
            is_generated = len(generated) < max_new_tokens
            stages.append(_sampling_stage(tokenizer, last, nxt, step, temperature, top_k, top_p,
                                          top, is_generated, tokens))
            if not is_generated:
                stages[-1].summary += "  (max_new_tokens is 0: not appended)"
                break
            generated.append(nxt)
            context.append(nxt)
            tokens.setdefault(nxt, _token_text(tokenizer, nxt))
            if nxt == eos_token_id:
                notes.append(f"generation stopped at the end-of-text token after "
                             f"{len(generated)} tokens")
                break
            if len(generated) == max_new_tokens:
                break
            step += 1
            stages += _generated_token_stages(tokenizer, nxt, context, step, tokens)
            with mg.no_grad(), Recorder() as rec:
                if len(context) <= cfg.block_size:   # the KV-cache path, as generate_steps
                    if cache is None:
                        cache = KVCache(cfg, 1, model.transformer.wte.weight.dtype,
                                        model.device)
                        with Recorder():             # fill the cache, recording nothing
                            model(np.array([context[:-1]]), cache=cache)
                        fed = len(context) - 1
                    model(np.array([context[fed:]]), cache=cache)
                    fed = len(context)
                    q_start = 0
                else:                                # window slid past block_size
                    model(np.array([context[-cfg.block_size:]]))
                    q_start = cfg.block_size - 1
            arrays = {k: _np(t) for k, t in rec.tensors.items()}
            stages += _model_stages(model, tokenizer, arrays, {}, step=step, q_start=q_start,
                                    top=top, tokens=tokens)
            last = arrays["logits"][0, -1].astype(np.float64)
    finally:
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


# ----------------------------------------------------------------------------- stages 1-3
def _token_text(tokenizer, i: int) -> str:
    """The text of one id; bytes that are not whole UTF-8 characters show as \\xNN."""
    return tokenizer.decode_bytes([int(i)]).decode("utf-8", "backslashreplace")


def _tokenize(tokenizer, text: str):
    raw = text.encode("utf-8", "surrogatepass")
    chars = [(c, list(c.encode("utf-8", "surrogatepass"))) for c in text]
    s1 = Stage(1, 0, None, f"{len(text)} characters -> {len(raw)} UTF-8 bytes: "
               f"{raw[:24].hex(' ')}{' ...' if len(raw) > 24 else ''}",
               {"bytes": list(raw), "chars": chars})
    ids = tokenizer.encode(text, allowed_special="all")
    chunks = tokenizer.split(text)
    if not hasattr(tokenizer, "explain"):   # CharTokenizer: one id per character
        s2 = Stage(2, 0, None, f"character tokenizer: {len(chunks)} characters, one id each; "
                   "no merges (no BPE)",
                   {"kind": "char", "chunks": [{"text": c, "ids": tokenizer.encode(c),
                                                "merges": []} for c in chunks]})
    else:
        single = {v[0]: k for k, v in tokenizer.vocab.items()
                  if len(v) == 1 and k not in tokenizer.special_tokens.values()}
        out, n_merges = [], 0
        for c in chunks:
            b = c.encode("utf-8", "surrogateescape")
            steps = tokenizer.explain(c)
            merges = [{"pair": list(st.pair), "rank": st.rank, "new_id": st.new_id,
                       "pair_text": [_token_text(tokenizer, st.pair[0]),
                                     _token_text(tokenizer, st.pair[1])],
                       "new_text": _token_text(tokenizer, st.new_id),
                       "tokens_after": list(st.tokens_after)} for st in steps]
            n_merges += len(merges)
            start = [single[x] for x in b]
            out.append({"text": c, "bytes": list(b), "start_ids": start, "merges": merges,
                        "ids": merges[-1]["tokens_after"] if merges else start})
        s2 = Stage(2, 0, None, f"{len(chunks)} regex chunks, {n_merges} BPE merges applied: "
                   + " | ".join(repr(c) for c in chunks[:8]) + (" ..." if len(chunks) > 8
                                                                else ""),
                   {"kind": "bpe", "chunks": out})
        if [i for ch in out for i in ch["ids"]] != ids:
            s2.data["note"] = ("special tokens in the text are encoded whole, outside the "
                               "chunks above")
    s3 = Stage(3, 0, None, f"{len(ids)} token ids: {ids[:16]}{' ...' if len(ids) > 16 else ''}",
               {"ids": list(ids), "tokens": [_token_text(tokenizer, i) for i in ids]})
    return list(ids), [s1, s2, s3]


def _generated_token_stages(tokenizer, nxt, context, step, tokens):
    b = tokenizer.decode_bytes([nxt])
    return [
        Stage(1, step, None, f"generated token {show(tokens[nxt])}: {len(b)} bytes {b.hex(' ')}",
              {"bytes": list(b), "text": tokens[nxt]}),
        Stage(2, step, None, f"no tokenization: id {nxt} was sampled at step {step - 1}",
              {"kind": "sampled", "id": nxt}),
        Stage(3, step, None, f"context of {len(context)} ids; the model reads id {nxt} at "
              f"position {len(context) - 1}", {"ids": list(context), "new_id": nxt}),
    ]


def _targets(tokenizer, ids, target):
    """(T,) target per position, -1 where there is no loss; None without a target."""
    T = len(ids)
    if target is None or target is False:
        return None
    t = np.full(T, -1, dtype=np.int64)
    if target is True:
        if T < 2:
            raise ValueError("trace: target=True (the prompt's own continuation) needs a "
                             "prompt of at least 2 tokens")
        t[:-1] = ids[1:]
    elif isinstance(target, str):
        enc = tokenizer.encode(target, allowed_special="all")
        if not enc:
            raise ValueError("trace: target text encodes to no token")
        t[-1] = enc[0]
    elif isinstance(target, (int, np.integer)):
        t[-1] = int(target)
    else:
        t = np.asarray(target, dtype=np.int64)
        if t.shape != (T,):
            raise ValueError(f"trace: a target sequence must hold one id per prompt token "
                             f"({T}), got shape {t.shape}")
    return t


def _describe_target(targets, tokens, tokenizer):
    pos = np.flatnonzero(targets >= 0)
    if len(pos) == 1:
        return (f"next token {show(_token_text(tokenizer, targets[pos[0]]))} "
                f"(id {int(targets[pos[0]])}) at position {int(pos[0])}")
    return f"the prompt's own continuation ({len(pos)} positions)"


# ----------------------------------------------------------------------------- stages 4-12
def _np(t) -> np.ndarray:
    """A NumPy copy (a recorded k/v may be a view into the KV cache)."""
    return np.array(backend.to_numpy(t.array))


def _ln_stats(x):
    """Mean and (biased, as LayerNorm uses) std over the features, per position."""
    return x.mean(-1), x.std(-1)


def _attention_from_qk(q, k):
    """Scores, masked scores and weights (nh, Tq, Tk) from the recorded q (nh, Tq, hs) and
    k (nh, Tk, hs): the fused op's formula, softmax(q k^T / sqrt(hs)), query i seeing keys
    j <= i + (Tk - Tq)."""
    q, k = q.astype(np.float64), k.astype(np.float64)
    tq, tk = q.shape[-2], k.shape[-2]
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    allowed = np.tril(np.ones((tq, tk), dtype=bool), k=tk - tq)
    masked = np.where(allowed, scores, -np.inf)
    w = np.exp(masked - masked.max(-1, keepdims=True))
    return scores, masked, w / w.sum(-1, keepdims=True)


def _position_norms(name, a):
    """|a| per position: a is (T, ...) or, for q/k/v/attn.y, (nh, T, hs)."""
    a = a.astype(np.float64)
    if name.split(".", 2)[-1] in HEADS_FIRST:
        return np.sqrt((a ** 2).sum(axis=(0, 2)))
    return np.sqrt((a ** 2).reshape(a.shape[0], -1).sum(-1))


def _top(probs, tokenizer, k, tokens):
    order = np.argsort(-probs, kind="stable")[:k]
    return [(int(i), tokens.get(int(i)) or _token_text(tokenizer, i), float(probs[i]))
            for i in order]


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _model_stages(model, tokenizer, arrays, grads, step, q_start, top, tokens):
    """Stages 4-11 of one forward pass from the recorded outputs (batch row 0). Positions
    before q_start are dropped (a generated token's pass shows its own position only)."""
    L = model.config.n_layer

    def rows(name):                 # the recorded output, batch row 0, query positions kept
        a = arrays[name]
        a = a if name == "pos_emb" else a[0]
        if name.split(".", 2)[-1] in HEADS_FIRST:
            return a if name.endswith((".k", ".v")) else a[:, q_start:]
        return a[q_start:]

    def grad(name):                 # its gradient, batch row 0 (None without a backward)
        g = grads.get(name)
        return g if g is None or name == "pos_emb" else g[0]

    def stage(number, layer, summary, data):
        s = Stage(number, step, layer, summary, data)
        prefix = "" if layer is None else f"h.{layer}."
        for n in STAGE_TENSORS.get(number, []):
            g = grad(prefix + n)
            if g is not None:
                s.grads[n] = g
        return s

    out = []
    tok_emb, pos_emb, emb = rows("tok_emb"), rows("pos_emb"), rows("emb")
    out.append(stage(4, None, f"wte rows {tok_emb.shape}; |row| per position "
                     f"{_fmt(np.linalg.norm(tok_emb, axis=-1))}", {"tok_emb": tok_emb}))
    out.append(stage(5, None, f"wpe rows {pos_emb.shape}; |sum| per position "
                     f"{_fmt(np.linalg.norm(emb, axis=-1))}",
                     {"pos_emb": pos_emb, "emb": emb}))
    stream = [emb]
    x_in = emb
    for i in range(L):
        p = f"h.{i}."
        mean, std = _ln_stats(x_in)
        q, k, v, y = rows(p + "attn.q"), rows(p + "attn.k"), rows(p + "attn.v"), rows(p + "attn.y")
        scores, masked, weights = _attention_from_qk(q, k)
        top_key = weights.argmax(-1)                          # (nh, Tq)
        out.append(stage(6, i, f"ln_1 input mean {_fmt(mean)} std {_fmt(std)}; "
                         f"{q.shape[0]} heads, q/k/v {q.shape[1:]}; each query's most "
                         f"attended key (head 0) {top_key[0].tolist()}",
                         {"ln_in_mean": mean, "ln_in_std": std, "ln_1": rows(p + "ln_1"),
                          "attn.q": q, "attn.k": k, "attn.v": v, "scores": scores,
                          "masked_scores": masked, "weights": weights,
                          "key_offset": k.shape[1] - q.shape[1], "attn.y": y,
                          "attn.c_proj": rows(p + "attn.c_proj")}))
        resid_attn = rows(p + "resid_attn")
        mean2, std2 = _ln_stats(resid_attn)
        pre, post = rows(p + "mlp.c_fc"), rows(p + "mlp.gelu")
        out.append(stage(7, i, f"ln_2 input mean {_fmt(mean2)} std {_fmt(std2)}; c_fc "
                         f"{pre.shape}, {np.mean(pre < 0):.0%} negative before GELU; |GELU out| "
                         f"{_fmt(np.linalg.norm(post, axis=-1))}",
                         {"ln_in_mean": mean2, "ln_in_std": std2, "ln_2": rows(p + "ln_2"),
                          "mlp.c_fc": pre, "mlp.gelu": post, "mlp.c_proj": rows(p + "mlp.c_proj"),
                          "negative_fraction": float(np.mean(pre < 0))}))
        resid_mlp = rows(p + "resid_mlp")
        norms = [np.linalg.norm(a, axis=-1) for a in (x_in, resid_attn, resid_mlp)]
        out.append(stage(8, i, f"|x| per position: in {_fmt(norms[0])} -> after attn "
                         f"{_fmt(norms[1])} -> after mlp {_fmt(norms[2])}",
                         {"resid_attn": resid_attn, "resid_mlp": resid_mlp,
                          "norm_in": norms[0], "norm_after_attn": norms[1],
                          "norm_after_mlp": norms[2]}))
        stream.append(resid_mlp)
        x_in = resid_mlp

    # stage 9: the stack, and the logit lens (each layer's stream through ln_f and lm_head)
    lens = []
    with mg.no_grad():
        for j, x in enumerate(stream):
            xt = mg.Tensor(x, device=model.device, dtype=model.transformer.wte.weight.dtype)
            z = model.lm_head(model.transformer.ln_f(xt)).numpy().astype(np.float64)
            probs = _softmax(z)
            lens.append({"layer": "emb" if j == 0 else f"h.{j - 1}",
                         "top": [_top(p_, tokenizer, top, tokens) for p_ in probs]})
    norms = np.stack([np.linalg.norm(x, axis=-1) for x in stream])      # (L + 1, T)
    final = lens[-1]["top"][-1][0]
    out.append(Stage(9, step, None, f"{L} blocks; |x| at the last position through the stack "
                     f"{_fmt(norms[:, -1])}; logit lens at the last position: "
                     + ", ".join(f"{e['layer']} {show(e['top'][-1][0][1])}" for e in lens)
                     + f" (final {show(final[1])})",
                     {"resid_norms": norms, "layers": [e["layer"] for e in lens],
                      "logit_lens": lens}))
    ln_f = rows("ln_f")
    mean, std = _ln_stats(x_in)
    out.append(stage(10, None, f"ln_f input mean {_fmt(mean)} std {_fmt(std)}; output "
                     f"{ln_f.shape}", {"ln_in_mean": mean, "ln_in_std": std, "ln_f": ln_f}))
    logits = rows("logits")
    out.append(stage(11, None, f"logits {logits.shape}; last position min/max "
                     f"{logits[-1].min():.3g}/{logits[-1].max():.3g}, argmax per position "
                     f"{logits.argmax(-1).tolist()[:16]}",
                     {"logits": logits, "argmax": logits.argmax(-1),
                      "top_last": [(i, text, float(logits[-1, i]))
                                   for i, text, _ in _top(logits[-1], tokenizer, 10, tokens)]}))
    return out


def _sampling_stage(tokenizer, last, nxt, step, temperature, top_k, top_p, top, generated,
                    tokens):
    probs = _softmax(last)
    filtered = probs if temperature == 0 else filter_logits(last[None], temperature, top_k,
                                                            top_p)[0]
    if temperature == 0:   # greedy: all the mass on the argmax
        filtered = np.zeros_like(probs)
        filtered[int(last.argmax())] = 1.0
    order = np.argsort(-probs, kind="stable")[:top]
    rows = [{"id": int(i), "token": tokens.get(int(i)) or _token_text(tokenizer, i),
             "logit": float(last[i]), "prob": float(probs[i]),
             "filtered_prob": float(filtered[i]), "chosen": int(i) == nxt} for i in order]
    rule = ("greedy (temperature 0): argmax" if temperature == 0 else
            f"temperature {temperature}" + (f", top_k {top_k}" if top_k else "")
            + (f", top_p {top_p}" if top_p is not None and top_p < 1 else ""))
    nxt_text = tokens.get(nxt) or _token_text(tokenizer, nxt)
    summary = ("top: " + ", ".join(f"{show(r['token'])} {r['prob']:.3f}" for r in rows)
               + f"; filter {rule} keeps {int((filtered > 0).sum())} tokens; chose "
               f"{show(nxt_text)} (id {nxt}, p {probs[nxt]:.3f}, filtered p {filtered[nxt]:.3f})")
    return Stage(12, step, None, summary, {
        "probs": probs, "filtered": filtered, "top": rows,
        "filter": {"temperature": temperature, "top_k": top_k, "top_p": top_p, "rule": rule,
                   "kept": int((filtered > 0).sum())},
        "chosen": nxt, "chosen_token": nxt_text, "chosen_prob": float(probs[nxt]),
        "chosen_filtered_prob": float(filtered[nxt]), "generated": generated})


# ----------------------------------------------------------------------------- backward
def _backward(model, rec, loss, targets, description) -> Backward:
    names = {id(p): n for n, p in model.named_parameters()}
    grads = {k: _np(t.grad) for k, t in rec.tensors.items() if t.grad is not None}
    tok_emb = _np(rec["tok_emb"])[0].astype(np.float64)
    saliency = (grads["tok_emb"][0].astype(np.float64) * tok_emb).sum(-1)
    return Backward(
        loss=float(loss.item()), description=description, targets=targets,
        grad_norms={k: _position_norms(k, g if k == "pos_emb" else g[0])
                    for k, g in grads.items()},
        param_grad_norms={names[id(p)]: float(np.linalg.norm(
            backend.to_numpy(p.grad.array).astype(np.float64)))
            for p in model.parameters() if p.grad is not None},
        saliency=saliency, checks={})


def _float64_copy(model: GPT) -> GPT:
    """A float64 CPU copy of the model (tied weights stay tied)."""
    saved = [(p, p.grad) for p in model.parameters()]
    for p, _ in saved:
        p.grad = None
    try:
        m = copy.deepcopy(model)
    finally:
        for p, g in saved:
            p.grad = g
    for t in list(m.parameters()) + list(m.buffers()):
        a = backend.to_numpy(t.array)
        t.array = a.astype(np.float64) if a.dtype.kind == "f" else a
    return m


def _fd_checks(model, idx, targets, grads32, samples, eps=1e-5, atol=1e-9, rtol=1e-5,
               seed=0) -> dict:
    """For each stage output h: dL/dh from backward (float64) at ``samples`` elements (the
    largest |dL/dh| and random others) against (L(h + eps e) - L(h - eps e)) / (2 eps),
    L recomputed by the real forward with h replaced (Recorder overrides). Agrees when
    max |error| <= atol + rtol * max |dL/dh| over the stage."""
    m64 = _float64_copy(model)
    m64.eval()
    with Recorder(retain_grad=True) as rec:
        _, loss = m64(idx, targets[None])
    loss.backward()
    rng = np.random.default_rng(seed)

    def loss_with(name, delta):
        over = {name: lambda t: mg.Tensor._make(t.array + delta, False)}
        with mg.no_grad(), Recorder(overrides=over):
            return m64(idx, targets[None])[1].item()

    checks = {}
    for name in stage_names(m64.config.n_layer):
        t = rec[name]
        g = t.grad.numpy()
        scale = float(np.abs(g).max())
        picks = [int(np.abs(g).argmax())]
        picks += [int(e) for e in rng.choice(g.size, size=min(samples - 1, g.size),
                                             replace=False) if int(e) not in picks]
        elements, err = [], 0.0
        for e in picks[:samples]:
            delta = np.zeros_like(t.array)
            delta.flat[e] = eps
            numeric = (loss_with(name, delta) - loss_with(name, -delta)) / (2 * eps)
            analytic = float(g.flat[e])
            err = max(err, abs(analytic - numeric))
            elements.append((list(np.unravel_index(e, g.shape)), analytic, numeric))
        f32 = None
        if name in grads32:
            f32 = float(np.abs(grads32[name].astype(np.float64) - g).max() / max(scale, 1e-30))
        checks[name] = FDCheck(name, "agrees" if err <= atol + rtol * scale else "disagrees",
                               err, scale, elements, f32)
    return checks


# ----------------------------------------------------------------------------- block graph
def block_graph(model: GPT, tokenizer, text: str, layer: int = 0, seed: int = 0) -> str:
    """Graphviz DOT text of one block's forward and backward graph: the residual stream
    entering block ``layer`` (as a leaf), the block, and a loss sum(out * r) with a random r.
    Every op node shows the stage it belongs to ([h.0.ln_1], [h.0.attn], ...) and every tensor
    its gradient norm (minigrad.viz.backward_graph). Render with minigrad.viz.render."""
    from minigrad import viz
    if not 0 <= layer < model.config.n_layer:
        raise ValueError(f"block_graph: layer must be in [0, {model.config.n_layer}), "
                         f"got {layer}")
    ids = tokenizer.encode(text, allowed_special="all")[-model.config.block_size:]
    name_in = "emb" if layer == 0 else f"h.{layer - 1}.resid_mlp"
    was_training = model.training
    model.eval()
    saved = [(p, p.grad) for p in model.parameters()]
    try:
        with mg.no_grad(), Recorder() as rec:
            model(np.array([ids]))
        x = mg.Tensor(rec[name_in].array, dtype=rec[name_in].dtype, requires_grad=True)
        x.name = f"x ({name_in})"
        out = model.transformer.h[layer](x, None, layer)
        r = np.random.default_rng(seed).standard_normal(out.shape).astype(out.dtype)
        with mg.stage("loss"):
            loss = (out * mg.Tensor(r, device=out.device)).sum()
        names = {p: n for n, p in model.named_parameters() if f"h.{layer}." in n}
        return viz.backward_graph(loss, names)
    finally:
        for p, g in saved:
            p.grad = g
        model.train(was_training)


# ----------------------------------------------------------------------------- text report
def _fmt(a, n: int = 8) -> str:
    a = np.asarray(a, dtype=np.float64).ravel()
    body = " ".join(f"{v:.3g}" for v in a[:n])
    return f"[{body}{' ...' if a.size > n else ''}]"


def _report(t: TokenTrace, width: int) -> str:
    cfg = t.config
    lines = [f"The life of a token{' - ' + t.label if t.label else ''}",
             f"prompt {t.text!r} -> GPT(n_layer={cfg['n_layer']}, n_head={cfg['n_head']}, "
             f"n_embd={cfg['n_embd']}, vocab_size={cfg['vocab_size']}), {t.tokenizer}",
             f"generated {show(t.generated_text)} (ids {t.generated})", ""]
    lines += [f"note: {n}" for n in t.notes]
    for s in t.stages:
        if s.number == 1:
            lines.append(f"--- step {s.step}: " + ("the prompt" if s.step == 0 else
                         f"the pass that reads generated token {s.step} "
                         f"{show(t.tokens[len(t.prompt_ids) + s.step - 1])}"))
        head = f"{s.number:>2} {s.name}{'' if s.layer is None else f' [layer {s.layer}]'}: "
        lines.append(_wrap(head + s.summary, width))
        if s.number == 9 and s.step == 0:
            lines.append("   logit lens (top tokens at each position):")
            for e in s.data["logit_lens"]:
                tops = " ".join(f"{show(p[0][1])}" for p in e["top"])
                lines.append(_wrap(f"     {e['layer']:>5}: {tops}", width))
        if s.number == 12:
            lines.append(f"   {'id':>6} {'token':<16} {'logit':>8} {'p':>7} {'filtered':>8}")
            for r in s.data["top"]:
                mark = "  <- chosen" if r["chosen"] else ""
                lines.append(f"   {r['id']:>6} {r['token']!r:<16} {r['logit']:>8.3f} "
                             f"{r['prob']:>7.4f} {r['filtered_prob']:>8.4f}{mark}")
    b = t.backward
    if b is not None:
        lines += ["", f"--- backward: loss {b.loss:.4f}, target: {b.description}",
                  "   d loss / d (stage output), |grad| per position, walking back:"]
        for name in reversed(list(b.grad_norms)):
            c = b.checks.get(name)
            verdict = "" if c is None else (f"  finite differences {c.verdict} "
                                            f"(max err {c.max_abs_error:.2g}, "
                                            f"|grad| max {c.scale:.2g})")
            lines.append(_wrap(f"   {name:<16} {_fmt(b.grad_norms[name], 6)}{verdict}", width))
        if b.checks:
            bad = b.first_disagreement
            lines.append("   every stage's backward agrees with the numbers" if bad is None
                         else f"   FIRST DISAGREEMENT walking back: {bad} (the faulty backward "
                              f"is between it and the stage after it)")
        pg = sorted(b.param_grad_norms.items(), key=lambda kv: -kv[1])
        lines.append("   largest parameter gradient norms: "
                     + ", ".join(f"{n} {v:.3g}" for n, v in pg[:6]))
        sal = " ".join(f"{show(t.tokens[i])}:{v:+.3g}" for i, v in enumerate(b.saliency))
        lines.append(_wrap(f"   gradient x input saliency per prompt token: {sal}", width))
    return "\n".join(lines) + "\n"


def _wrap(line: str, width: int) -> str:
    return textwrap.fill(line, width, subsequent_indent="      ", break_long_words=False,
                         break_on_hyphens=False, replace_whitespace=False, drop_whitespace=False)


def show(s: str) -> str:
    r"""A token's text in quotes, with newlines, tabs and other control characters escaped.

    >>> show(" the\n")
    "' the\\n'"
    """
    out = []
    for c in s:
        if c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif c.isprintable():
            out.append(c)
        else:
            out.append(f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}")
    return "'" + "".join(out) + "'"


# ----------------------------------------------------------------------------- JSON
def _jsonable(x, max_elements):
    if isinstance(x, dict):
        return {str(k): _jsonable(v, max_elements) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v, max_elements) for v in x]
    if isinstance(x, np.ndarray):
        if x.dtype.kind in "iub":
            return x.tolist() if x.size <= max_elements else _summary(x)
        if x.size > max_elements:
            return _summary(x)
        flat = [float(v) for v in np.char.mod("%.5g", x.astype(np.float64).ravel())]
        flat = [v if np.isfinite(v) else None for v in flat]   # -inf (masked) -> null
        return np.array(flat, dtype=object).reshape(x.shape).tolist()
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if np.isfinite(v) else None
    if isinstance(x, (np.integer, np.bool_)):
        return x.item()
    return x


def _summary(x):
    f = x.astype(np.float64)
    fin = f[np.isfinite(f)]
    return {"shape": list(x.shape), "omitted": True,
            **({"min": float(fin.min()), "max": float(fin.max()), "mean": float(fin.mean()),
                "std": float(fin.std())} if fin.size else {})}


# ----------------------------------------------------------------------------- command line
def fresh_model(vocab_size: int = 512, n_layer: int = 2, n_head: int = 4, n_embd: int = 64,
                block_size: int = 64, seed: int = 0):
    """A freshly initialised GPT and a BPE tokenizer trained (in well under a second) on the
    built-in corpus: something to trace before any training."""
    from .corpus import builtin_corpus
    from .model import GPTConfig
    from .tokenizer import Tokenizer
    tok = Tokenizer.train(builtin_corpus(), vocab_size)
    mg.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=block_size, n_layer=n_layer,
                          n_head=n_head, n_embd=n_embd))
    return model, tok


def _load(path):
    from .sample import load_checkpoint
    model, tok, _meta = load_checkpoint(path)
    return model, tok


def _size(lo: int, hi: int):
    """An argparse type: an int in [lo, hi] (a fresh model to trace should stay small)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an int, got {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"expected an int in [{lo}, {hi}], got {value}")
        return value
    return parse


def build_parser():
    """The flags of ``minigpt trace`` (sampling flags and defaults shared with ``sample``)."""
    p = ArgumentParser(
        prog="minigpt trace", description="Record every stage of a token's life through a "
        "GPT, forward and backward: a terminal report, trace.json and a self-contained "
        "trace.html. With the same settings it picks the tokens `minigpt sample` prints first.")
    p.add_argument("prompt", help="the text to trace (not empty)")
    p.add_argument("--ckpt", help="checkpoint directory (default: a freshly initialised model)")
    p.add_argument("--compare", metavar="OTHER_CKPT",
                   help="trace the prompt through a second checkpoint too and show both side "
                        "by side (e.g. before/after training)")
    p.add_argument("--out", default="trace_out", help="output directory (default: trace_out)")
    add_sampling_flags(p, max_new_tokens=TRACE_MAX_NEW_TOKENS, num_samples=False,
                       short_max_new_tokens="-n")
    p.add_argument("--top", type=_size(1, 100), default=5,
                   help="rows of the top-k tables (default: 5)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--target", help="the actual next token (its text); default: the prompt's "
                                    "own continuation")
    g.add_argument("--no_backward", action="store_true", help="forward only")
    p.add_argument("--no_check", action="store_true", help="skip the finite-difference check")
    p.add_argument("--graph_layer", type=int, default=0,
                   help="write the forward/backward graph of this block as block.dot "
                        "(default: 0)")
    p.add_argument("--quiet", "-q", action="store_true", help="do not print the report")
    init = p.add_argument_group("fresh model (without --ckpt)")
    for flag, (lo, hi), default, what in (
            ("--init_vocab", (257, 65536), 512, "BPE vocabulary size"),
            ("--init_layers", (1, 48), 2, "transformer blocks"),
            ("--init_heads", (1, 64), 4, "attention heads"),
            ("--init_embd", (1, 2048), 64, "width of the residual stream"),
            ("--init_block", (1, 4096), 64, "context length in tokens"),
            ("--init_seed", (0, 2**32 - 1), 0, "seed of the initial weights")):
        init.add_argument(flag, type=_size(lo, hi), default=default,
                          help=f"{what}, in [{lo}, {hi}] (default: {default})")
    return p


def write_trace_files(out, trace: TokenTrace, dot: str, compare: TokenTrace | None = None):
    """trace.html, trace.json (trace_compare.json with ``compare``), block.dot and, with
    Graphviz installed, block.svg in the folder ``out`` (created). Each file is written
    atomically (minigrad.fileio): a link planted at its path is replaced, never followed."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    trace.to_html(out / "trace.html", compare=compare)
    trace.to_json(out / "trace.json")
    if compare is not None:
        compare.to_json(out / "trace_compare.json")
    atomic_write(out / "block.dot", dot.encode("utf-8"))
    if shutil.which("dot"):                      # Graphviz installed: draw it too
        from minigrad import viz
        viz.render(dot, out / "block.svg")


def parse_args(argv=None) -> argparse.Namespace:
    """The parsed flags of ``minigpt trace``; their values are checked by ``main``."""
    return build_parser().parse_args(argv)


def _check_args(args) -> None:
    """ConfigError naming the flag for a value out of range, before anything is loaded."""
    if not args.prompt:
        raise ConfigError("the prompt to trace must be non-empty text, got ''")
    check_sampling_flags(args, prompt="the prompt to trace")
    if args.target is not None:
        check_prompt(args.target, "--target")


def _check_graph_layer(args, model) -> None:
    n_layer = model.config.n_layer
    if not 0 <= args.graph_layer < n_layer:
        raise ConfigError(f"--graph_layer must be a block of the model, in [0, {n_layer - 1}], "
                          f"got {args.graph_layer}")


@command("trace")
def main(argv=None) -> int:
    """``minigpt trace`` / ``scripts/trace.py``: errors are one line and an exit status
    (minigpt.cli); nothing is written unless every flag is in range."""
    args = parse_args(argv)
    _check_args(args)
    return _run(args)


def _run(args) -> int:
    if args.ckpt:
        model, tok = _load(args.ckpt)
        label = str(args.ckpt)
    else:
        model, tok = fresh_model(args.init_vocab, args.init_layers, args.init_heads,
                                 args.init_embd, args.init_block, args.init_seed)
        label = "freshly initialised"
    _check_graph_layer(args, model)
    kw = dict(max_new_tokens=args.max_new_tokens, temperature=args.temperature,
              top_k=args.top_k, top_p=args.top_p, seed=args.seed, top=args.top,
              check=not args.no_check)

    def run(model, tok, label):
        target = None if args.no_backward else (args.target if args.target else True)
        if target is True and len(tok.encode(args.prompt, allowed_special="all")) < 2:
            target = None   # one token has no continuation to learn from
        return trace(model, tok, args.prompt, target=target, label=label, **kw)

    t = run(model, tok, label)
    other = run(*_load(args.compare), str(args.compare)) if args.compare else None
    out = Path(args.out)
    write_trace_files(out, t, block_graph(model, tok, args.prompt, args.graph_layer), other)
    if not args.quiet:
        print(t.report(), end="")
        if other is not None:
            print(other.report(), end="")
    print(f"wrote {out / 'trace.html'}, {out / 'trace.json'} and {out / 'block.dot'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
