"""The words of the trace page: each stage's title, its summary line (the essential numbers,
readable while the stage is folded), and two or three plain sentences on what happens there
and why, with the shapes in this model's own numbers."""
from __future__ import annotations

import numpy as np

from .figures import esc, label
from .record import stage_name

__all__ = ["stage_name", "intro", "summary", "step_summary", "entropy", "chip"]


def chip(text: str, sub=None, limit: int | None = None) -> str:
    """A token as a chip: its text with visible spaces and newlines, and maybe a small note."""
    small = f"<small>{esc(sub)}</small>" if sub is not None else ""
    return f'<span class="tok">{esc(label(text, limit))}{small}</span>'


def entropy(probs) -> float:
    """Entropy in nats of a probability vector."""
    p = np.asarray(probs, dtype=np.float64)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def _shape(*dims) -> str:
    return "(" + ", ".join(str(d) for d in dims) + ")"


def intro(number: int, t, kind: str) -> str:
    """Two or three sentences on stage ``number`` of trace ``t`` (step 0), as HTML."""
    c = t.config
    T, C, V, L, nh = len(t.prompt_ids), c["n_embd"], c["vocab_size"], c["n_layer"], c["n_head"]
    hs, block = C // nh, c["block_size"]
    d = t.stage(number).data if number not in (6, 7, 8) else t.stage(number, layer=0).data
    if number == 1:
        n_bytes, n_chars = len(t.stage(1).data["bytes"]), len(t.stage(1).data["chars"])
        return (f"A computer stores text as bytes: UTF-8 turns the {n_chars} characters into "
                f"{n_bytes} bytes (one byte for each ASCII character, two to four for others). "
                "The tokenizer works on these bytes, so any text at all can be encoded.")
    if number == 2:
        if kind == "char":
            return (f"A character tokenizer gives every character its own id: the {T} "
                    "characters become {T} tokens. There are no merges, so the model must learn "
                    "words letter by letter.").replace("{T}", str(T))
        chunks = d["chunks"]
        merges = sum(len(ch["merges"]) for ch in chunks)
        n_bytes = sum(len(ch["bytes"]) for ch in chunks)
        return (f"A regular expression first cuts the text into {len(chunks)} chunks (a word "
                "with its leading space, a number, punctuation); merges never cross a chunk. "
                "Inside each chunk the tokenizer starts with one token per byte and applies "
                "its learned merges, lowest rank first, each joining a pair of neighbours into "
                f"a new token: {merges} merges turn {n_bytes} bytes into {T} tokens.")
    if number == 3:
        return (f"Each token is an integer id in [0, {V}): the {T} ids, shape {_shape(1, T)}, "
                "are all the model ever sees of the text. The same text always gives the "
                "same ids, and decoding them gives the text back.")
    if number == 4:
        return (f"Each id picks one row of the token embedding table wte {_shape(V, C)}. The "
                f"result {_shape(1, T, C)} is {T} positions, each a {C}-number vector, one "
                "row of the heatmap per token. Nothing here knows about order: the same token "
                "gets the same vector wherever it stands.")
    if number == 5:
        return (f"Attention by itself ignores order, so position p adds row p of the "
                f"position table wpe {_shape(block, C)}. The sum {_shape(1, T, C)} is the "
                "residual stream that enters block 0; every block reads it and adds to it.")
    if number == 6:
        return (f"Each of the {L} blocks first normalises the stream (ln_1), then turns every "
                f"position into a query, a key and a value: {nh} heads of {hs} numbers, "
                f"{_shape(1, nh, T, hs)} each. A head scores each query against every key "
                f"(q·k/√{hs}), the causal mask hides later positions, and softmax turns each "
                f"row into weights that sum to 1. Each position takes the weighted sum of the "
                f"values, and c_proj mixes the heads back into {_shape(1, T, C)} and adds it to "
                "the stream: this is how information moves between positions.")
    if number == 7:
        return (f"ln_2 normalises the stream again; c_fc widens each position to {4 * C} "
                f"numbers {_shape(1, T, 4 * C)}, GELU lets positive values through and "
                f"squashes negative ones towards 0, and c_proj maps back to {C}. It works on "
                "each position on its own: attention moves information between positions, "
                "the MLP transforms it within one.")
    if number == 8:
        return ("Blocks add to the stream instead of replacing it: x = x + attn(ln_1(x)), then "
                f"x = x + mlp(ln_2(x)), always {_shape(1, T, C)}. The size |x| of each "
                "position's vector shows how much each sub-block writes, and the additions "
                "are why gradients reach the first block easily.")
    if number == 9:
        return (f"The {L} blocks run one after another on the same {_shape(1, T, C)} stream. "
                "The logit lens decodes the stream after each block with ln_f and lm_head, as "
                "if the model stopped there: read along a row to watch a prediction form. (The "
                "emb column mostly predicts each token itself: lm_head shares its weights with "
                "wte.)")
    if number == 10:
        return (f"ln_f normalises the stream after the last block {_shape(1, T, C)}: each "
                "position's vector, now a summary of everything before it, is rescaled to "
                "mean 0 and standard deviation 1 (then its learned gain and bias).")
    if number == 11:
        return (f"lm_head compares each position's vector with every token's embedding (it "
                f"shares its weights with wte) and gives {V} logits per position: "
                f"{_shape(1, T, V)}. Only the last position's logits choose the next token; "
                "the earlier ones predict tokens already in the prompt, which is what training "
                "learns from.")
    s12 = t.stage(12).data
    return (f"Softmax turns the last position's {V} logits into probabilities: exponentiate, "
            f"divide by the sum. The sampling filter ({esc(s12['filter']['rule'])}) keeps "
            f"{s12['filter']['kept']} tokens and draws one: {chip(s12['chosen_token'])} with "
            f"probability {s12['chosen_prob']:.3f}. The chosen token is appended and the "
            "model runs again, reading only the new token (its keys and values are cached).")


def _norms(a) -> str:
    """The range of |row| over the positions of a (T, C) array: "0.62–0.93"."""
    n = np.linalg.norm(np.asarray(a, dtype=np.float64), axis=-1)
    return f"{n.min():.3g}–{n.max():.3g}"


def summary(number: int, t, layers: list | None = None) -> str:
    """The essential numbers of stage ``number`` of step 0, as HTML for the <summary>."""
    c = t.config
    T, C, V = len(t.prompt_ids), c["n_embd"], c["vocab_size"]
    d = t.stage(number).data if number not in (6, 7, 8) else None
    if number == 1:
        n_chars, n_bytes = len(d["chars"]), len(d["bytes"])
        return f"{n_chars} characters → {n_bytes} UTF-8 bytes" + (
            " (all ASCII)" if n_chars == n_bytes else "")
    if number == 2:
        if d["kind"] == "char":
            return f"{T} characters → {T} tokens, one id each (no merges)"
        merges = sum(len(ch["merges"]) for ch in d["chunks"])
        return f"{len(d['chunks'])} chunks, {merges} merges → {T} tokens"
    if number == 3:
        return f"{T} ids in [0, {V}), {len(set(d['ids']))} distinct"
    if number == 4:
        return f"{_shape(1, T, C)} rows of wte; |row| {_norms(d['tok_emb'])}"
    if number == 5:
        return f"{_shape(1, T, C)} rows of wpe; |token + position| {_norms(d['emb'])}"
    if number == 6:
        tops = []
        for s in layers:
            w = s.data["weights"][:, -1].mean(0)           # head-averaged, last query
            tops.append(f"L{s.layer} {chip(t.tokens[int(w.argmax())], limit=12)} "
                        f"{w.max():.2f}")
        return (f"{c['n_layer']} layers × {c['n_head']} heads; the last token "
                f"{chip(t.tokens[T - 1])} attends most to: " + ", ".join(tops))
    if number == 7:
        neg = ", ".join(f"{s.data['negative_fraction']:.0%}" for s in layers)
        return f"{C} → {4 * C} → {C} per position; negative before GELU by layer: {neg}"
    if number == 8:
        norms = [layers[0].data["norm_in"][-1]] + [s.data["norm_after_mlp"][-1] for s in layers]
        return "|x| of the last token through the blocks: " + " → ".join(
            f"{v:.3g}" for v in norms)
    if number == 9:
        lens = d["logit_lens"]
        return "logit lens, last token: " + " → ".join(
            f"{e['layer']} {chip(e['top'][-1][0][1], limit=12)}" for e in lens)
    if number == 10:
        return f"{_shape(1, T, C)}; |x| per position {_norms(d['ln_f'])}"
    if number == 11:
        z = d["logits"][-1]
        top = d["top_last"][0]
        return (f"{_shape(1, T, V)}; last position from {z.min():.3g} to {z.max():.3g} "
                f"({chip(top[1])})")
    return step_summary(t.stage(12).data)


def step_summary(d: dict) -> str:
    """Stage 12 in one line: the chosen token, its probability and rank, the entropy."""
    probs = np.asarray(d["probs"])
    rank = int((probs > probs[d["chosen"]]).sum()) + 1
    alts = ", ".join(f"{chip(r['token'])} {r['prob']:.2f}" for r in d["top"] if not r["chosen"])
    return (f'chose <span class="tok chosen">{esc(label(d["chosen_token"]))}</span> p '
            f"{d['chosen_prob']:.3f} (rank {rank}), entropy {entropy(probs):.2f} nats; "
            f"others: {alts}")
