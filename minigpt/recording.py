"""Reading the real forward pass: ``record()`` and ``Recorder``.

Every stage of GPT.forward hands its output to ``record(name, tensor)``; the attention also
hands over the arrays its one fused op computed (``intermediates``). With no Recorder
active, both cost one global lookup: record() returns its input, intermediates() None.

    with Recorder() as rec:
        logits, _ = model(idx)
    rec["h.0.attn.c_attn"]    # (B, T, 3C): a stage output, a Tensor of the graph
    rec["h.0.attn.weights"]   # (B, nh, T, T): what the attention op computed, a constant

minigpt.tracing and minigpt.health read the model this way.
"""
from __future__ import annotations

import minigrad as mg

_recorder = None   # the active Recorder (the innermost ``with``), or None


def record(name: str, t, layer: int | None = None):
    """Hand one stage's output to the active Recorder; returns the tensor to use next.
    Names are module-like: "tok_emb", "h.0.attn.c_attn", "h.1.mlp.c_fc", "ln_f", "logits"."""
    if _recorder is None:
        return t
    return _recorder.record(name if layer is None else f"h.{layer}.{name}", t)


def intermediates(name: str, layer: int | None = None) -> dict | None:
    """The dict an op fills with what it computes (e.g. multi_head_attention's
    ``intermediates=``), kept by the active Recorder under ``name``; None when none is
    active, so the op keeps nothing."""
    if _recorder is None:
        return None
    into: dict = {}
    _recorder.intermediates[name if layer is None else f"h.{layer}.{name}"] = into
    return into


def recorded_names(n_layer: int) -> list[str]:
    """The stage outputs GPT.forward records, in forward order.

    >>> recorded_names(1)[:5]
    ['tok_emb', 'pos_emb', 'emb', 'h.0.ln_1', 'h.0.attn.c_attn']
    """
    names = ["tok_emb", "pos_emb", "emb"]
    for i in range(n_layer):
        names += [f"h.{i}.{n}" for n in ("ln_1", "attn.c_attn", "attn.y", "attn.c_proj",
                                          "resid_attn", "ln_2", "mlp.c_fc", "mlp.gelu",
                                          "mlp.c_proj", "resid_mlp")]
    return names + ["ln_f", "logits"]


class Recorder:
    """While active, keep every stage output the model's forward record()s, by name, and
    the arrays its ops computed (``intermediates``: "h.0.attn" -> {"q": ..., "weights": ...}).

    ``rec[name]`` gives a stage output, or one op array as a constant Tensor
    ("h.0.attn.q", "h.0.attn.scores", ...; see minigrad.functional.multi_head_attention).
    retain_grad=True keeps each stage output's gradient after backward (``rec[name].grad``).
    overrides maps a stage output's name to fn(tensor) -> tensor, which replaces that output
    downstream. A second forward inside one Recorder overwrites the first one's entries."""

    def __init__(self, retain_grad: bool = False, overrides: dict | None = None):
        self.retain_grad = retain_grad
        self.overrides = dict(overrides or {})
        self.tensors: dict[str, mg.Tensor] = {}     # name -> stage output, in forward order
        self.intermediates: dict[str, dict] = {}    # op name -> {array name: array}

    def record(self, name: str, t):
        fn = self.overrides.get(name)
        if fn is not None:
            t = fn(t)
        if self.retain_grad and t.requires_grad:
            t.retain_grad()
        self.tensors[name] = t
        return t

    def __getitem__(self, name: str):
        if name in self.tensors:
            return self.tensors[name]
        op, _, key = name.rpartition(".")
        if key in self.intermediates.get(op, {}):
            return mg.as_tensor(self.intermediates[op][key])
        raise KeyError(f"Recorder: nothing recorded as {name!r}; stage outputs: "
                       f"{', '.join(self.tensors) or 'none'}")

    def __contains__(self, name: str) -> bool:
        op, _, key = name.rpartition(".")
        return name in self.tensors or key in self.intermediates.get(op, {})

    def __enter__(self) -> "Recorder":
        global _recorder
        self._prev, _recorder = _recorder, self
        return self

    def __exit__(self, *exc):
        global _recorder
        _recorder = self._prev


__all__ = ["Recorder", "record", "intermediates", "recorded_names"]
