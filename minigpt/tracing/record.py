"""The records of a token's life: what ``minigpt.trace`` returns.

A TokenTrace holds, for the prompt (step 0) and then for the forward pass that reads each
generated token (step s reads the token chosen at step s - 1), one Stage per stage of
STAGES, and with a target the Backward record: the gradient walking back, checked against
finite differences (FDCheck). ``report()``, ``to_json()`` and ``to_html()`` present it
(tracing.report, tracing.html); tracing.tracer builds it.

The stage outputs (``stage_names``) are the model's recorded outputs
(minigpt.recording.recorded_names) with the attention seen per head: attn.q, attn.k and
attn.v are c_attn's output split into heads, attn.y the attention's output before the heads
are merged; their values are those the fused attention op computed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from minigrad.fileio import atomic_write

from .report import jsonable, text_report

__all__ = ["STAGES", "STAGE_TENSORS", "HEADS_FIRST", "stage_name", "stage_names", "FDCheck",
           "Stage", "Backward", "TokenTrace"]

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
# per head: q/k/v/attn.y (nh, T, hs), scores and weights (nh, Tq, Tk); the others (T, ...)
HEADS_FIRST = ("attn.q", "attn.k", "attn.v", "attn.y", "attn.scores", "attn.weights")


def stage_name(number: int, tokenizer_kind: str = "bpe") -> str:
    """A stage's name (STAGES); stage 2 of a character tokenizer is not BPE.

    >>> stage_name(2, "char")
    'tokenization (characters)'
    """
    if number == 2 and tokenizer_kind == "char":
        return "tokenization (characters)"
    return STAGES[number]


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
        return stage_name(self.number, self.data.get("kind", "bpe"))

    @property
    def title(self) -> str:
        where = f" - layer {self.layer}" if self.layer is not None else ""
        return f"{self.number} {self.name}{where}"

    @property
    def key(self) -> tuple:
        return (self.step, self.number, -1 if self.layer is None else self.layer)


@dataclass
class Backward:
    """The gradient walking back from the loss through every stage (step 0 only). The loss is
    the cross-entropy on ``targets``: with one target (kind "chosen" or "token") it is
    -log p(that token) at the last position, so its gradient says what made that token
    likely (a step against the gradient makes it likelier)."""
    loss: float
    description: str                 # what the loss predicts
    targets: np.ndarray              # (T,) target id per position, -1 = no loss there
    grad_norms: dict                 # stage output name -> (T,) |dL/dh| per position
    param_grad_norms: dict           # parameter name -> |dL/dp|
    saliency: np.ndarray             # (T,) sum_c dL/d tok_emb * tok_emb per prompt token
    checks: dict                     # stage output name -> FDCheck (empty when check=False)
    kind: str = "token"              # "chosen", "token", "continuation" or "sequence" (TARGETS)

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
        """The twelve stages of every step, and the backward pass, as text."""
        return text_report(self, width)

    def to_dict(self, max_elements: int = 4096) -> dict:
        """A JSON-serialisable dict; arrays of more than max_elements values are summarised
        (shape, min, max, mean, std), the others rounded to 5 significant digits."""
        return jsonable({
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
        """One self-contained HTML page (inline images and SVG, nothing loaded from outside),
        folded stage by stage (docs/trace.md); with ``compare`` (another checkpoint, or
        another prompt) the two traces side by side, stage by stage, on shared scales.
        Returns the HTML (and writes it to path)."""
        from .html import render
        page = render(self, compare)
        if path is not None:
            atomic_write(path, page.encode("utf-8"))
        return page
