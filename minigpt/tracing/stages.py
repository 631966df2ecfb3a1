"""The Stage records of one step: the tokenizer's (1-3), one forward pass's (4-11) and the
sampling's (12).

A pass's stage outputs come from its Recorder (``pass_arrays``): the recorded tensors, and
for the attention the arrays the fused op computed (q, k, v, y per head, scores, mask,
weights). Their gradients (``pass_grads``) are those of the recorded tensors; attn.q/k/v and
attn.y are views of c_attn's output and of the merged y (``stage_view``).
"""
from __future__ import annotations

import numpy as np

import minigrad as mg
from minigrad import backend

from ..generate import filter_logits
from .record import HEADS_FIRST, STAGE_TENSORS, Stage
from .report import fmt, show

# the per-head stage outputs that are views of a recorded tensor: (recorded name, part,
# parts): attn.q/k/v are c_attn's (B, T, 3C) in three, attn.y the merged (B, T, C)
VIEWS = {"attn.q": ("attn.c_attn", 0, 3), "attn.k": ("attn.c_attn", 1, 3),
         "attn.v": ("attn.c_attn", 2, 3), "attn.y": ("attn.y", 0, 1)}
OP_ARRAYS = ("q", "k", "v", "y", "scores", "mask", "weights")   # from the attention op


def _short(name: str) -> tuple[str, str]:
    """("h.0.", "attn.q") for "h.0.attn.q"; ("", "ln_f") for "ln_f"."""
    parts = name.split(".", 2)
    return (f"{parts[0]}.{parts[1]}.", parts[2]) if parts[0] == "h" else ("", name)


def stage_view(name: str, n_head: int):
    """(recorded name, view) for a stage output: view(a) gives the stage's array as a view
    of the recorded array a (writes to it reach a), (B, T, kC) -> (B, n_head, T, hs) for
    attn.q/k/v/y, a itself for every other stage."""
    prefix, short = _short(name)
    if short not in VIEWS:
        return name, lambda a: a
    recorded, part, parts = VIEWS[short]

    def view(a):
        B, T, width = a.shape
        C = width // parts
        return a[..., part * C:(part + 1) * C].reshape(B, T, n_head, -1).transpose(0, 2, 1, 3)
    return prefix + recorded, view


def _np(a) -> np.ndarray:
    """A NumPy copy (a recorded k/v may be a view into the KV cache)."""
    return np.array(backend.to_numpy(a.array if isinstance(a, mg.Tensor) else a))


def pass_arrays(rec) -> dict:
    """Stage outputs of one forward pass, by name, as NumPy copies: the recorded tensors,
    and per layer the attention op's q, k, v, y (B, nh, T, hs), scores, weights
    (B, nh, Tq, Tk) and mask (Tq, Tk) as "h.{i}.attn.q", ... (attn.y: the per-head y)."""
    arrays = {name: _np(t) for name, t in rec.tensors.items()}
    for op, seen in rec.intermediates.items():   # (attn.y: the op's y replaces the merged)
        arrays.update({f"{op}.{k}": _np(seen[k]) for k in OP_ARRAYS})
    return arrays


def pass_grads(rec, names, n_head: int) -> dict:
    """d loss / d (stage output) for the stage ``names`` whose recorded tensor holds a
    gradient (per head for attn.q/k/v/y), as NumPy copies."""
    grads = {}
    for name in names:
        recorded, view = stage_view(name, n_head)
        t = rec.tensors.get(recorded)
        if t is not None and t.grad is not None:
            grads[name] = np.ascontiguousarray(view(_np(t.grad)))
    return grads


# ----------------------------------------------------------------------------- stages 1-3
def token_text(tokenizer, i: int) -> str:
    """The text of one id; bytes that are not whole UTF-8 characters show as \\xNN."""
    return tokenizer.decode_bytes([int(i)]).decode("utf-8", "backslashreplace")


def tokenizer_stages(tokenizer, text: str):
    """(ids, stages 1-3 of the prompt): its bytes, the tokenizer's chunks and merges, the ids."""
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
                       "pair_text": [token_text(tokenizer, st.pair[0]),
                                     token_text(tokenizer, st.pair[1])],
                       "new_text": token_text(tokenizer, st.new_id),
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
               {"ids": list(ids), "tokens": [token_text(tokenizer, i) for i in ids]})
    return list(ids), [s1, s2, s3]


def generated_token_stages(tokenizer, nxt, context, step, tokens):
    """Stages 1-3 of a generated token: its bytes, where it came from, the context."""
    b = tokenizer.decode_bytes([nxt])
    return [
        Stage(1, step, None, f"generated token {show(tokens[nxt])}: {len(b)} bytes {b.hex(' ')}",
              {"bytes": list(b), "text": tokens[nxt]}),
        Stage(2, step, None, f"no tokenization: id {nxt} was sampled at step {step - 1}",
              {"kind": "sampled", "id": nxt}),
        Stage(3, step, None, f"context of {len(context)} ids; the model reads id {nxt} at "
              f"position {len(context) - 1}", {"ids": list(context), "new_id": nxt}),
    ]


def _ln_stats(x):
    """Mean and (biased, as LayerNorm uses) std over the features, per position."""
    return x.mean(-1), x.std(-1)


def position_norms(name, a):
    """|a| per position: a is (T, ...) or, for q/k/v/attn.y, (nh, T, hs)."""
    a = a.astype(np.float64)
    if name.split(".", 2)[-1] in HEADS_FIRST:
        return np.sqrt((a ** 2).sum(axis=(0, 2)))
    return np.sqrt((a ** 2).reshape(a.shape[0], -1).sum(-1))


def _top(probs, tokenizer, k, tokens):
    order = np.argsort(-probs, kind="stable")[:k]
    return [(int(i), tokens.get(int(i)) or token_text(tokenizer, i), float(probs[i]))
            for i in order]


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def model_stages(model, tokenizer, arrays, grads, step, q_start, top, tokens):
    """Stages 4-11 of one forward pass from its stage outputs (``pass_arrays``, batch row
    0) and their gradients (``pass_grads``). Positions before q_start are dropped (a
    generated token's pass shows its own position only)."""
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
                     f"{fmt(np.linalg.norm(tok_emb, axis=-1))}", {"tok_emb": tok_emb}))
    out.append(stage(5, None, f"wpe rows {pos_emb.shape}; |sum| per position "
                     f"{fmt(np.linalg.norm(emb, axis=-1))}",
                     {"pos_emb": pos_emb, "emb": emb}))
    stream = [emb]
    x_in = emb
    for i in range(L):
        p = f"h.{i}."
        mean, std = _ln_stats(x_in)
        q, k, v, y = rows(p + "attn.q"), rows(p + "attn.k"), rows(p + "attn.v"), rows(p + "attn.y")
        scores, weights = rows(p + "attn.scores"), rows(p + "attn.weights")   # as computed
        masked = np.where(arrays[p + "attn.mask"][q_start:], scores, -np.inf)
        top_key = weights.argmax(-1)                          # (nh, Tq)
        out.append(stage(6, i, f"ln_1 input mean {fmt(mean)} std {fmt(std)}; "
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
        out.append(stage(7, i, f"ln_2 input mean {fmt(mean2)} std {fmt(std2)}; c_fc "
                         f"{pre.shape}, {np.mean(pre < 0):.0%} negative before GELU; |GELU out| "
                         f"{fmt(np.linalg.norm(post, axis=-1))}",
                         {"ln_in_mean": mean2, "ln_in_std": std2, "ln_2": rows(p + "ln_2"),
                          "mlp.c_fc": pre, "mlp.gelu": post, "mlp.c_proj": rows(p + "mlp.c_proj"),
                          "negative_fraction": float(np.mean(pre < 0))}))
        resid_mlp = rows(p + "resid_mlp")
        norms = [np.linalg.norm(a, axis=-1) for a in (x_in, resid_attn, resid_mlp)]
        out.append(stage(8, i, f"|x| per position: in {fmt(norms[0])} -> after attn "
                         f"{fmt(norms[1])} -> after mlp {fmt(norms[2])}",
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
                     f"{fmt(norms[:, -1])}; logit lens at the last position: "
                     + ", ".join(f"{e['layer']} {show(e['top'][-1][0][1])}" for e in lens)
                     + f" (final {show(final[1])})",
                     {"resid_norms": norms, "layers": [e["layer"] for e in lens],
                      "logit_lens": lens}))
    ln_f = rows("ln_f")
    mean, std = _ln_stats(x_in)
    out.append(stage(10, None, f"ln_f input mean {fmt(mean)} std {fmt(std)}; output "
                     f"{ln_f.shape}", {"ln_in_mean": mean, "ln_in_std": std, "ln_f": ln_f}))
    logits = rows("logits")
    out.append(stage(11, None, f"logits {logits.shape}; last position min/max "
                     f"{logits[-1].min():.3g}/{logits[-1].max():.3g}, argmax per position "
                     f"{logits.argmax(-1).tolist()[:16]}",
                     {"logits": logits, "argmax": logits.argmax(-1),
                      "top_last": [(i, text, float(logits[-1, i]))
                                   for i, text, _ in _top(logits[-1], tokenizer, 10, tokens)]}))
    return out


def sampling_stage(tokenizer, last, nxt, step, temperature, top_k, top_p, top, generated,
                   tokens):
    """Stage 12: the probabilities of the last position's logits, the sampling filter and
    the chosen token (``generated``: whether it is appended to the text)."""
    probs = _softmax(last)
    filtered = probs if temperature == 0 else filter_logits(last[None], temperature, top_k,
                                                            top_p)[0]
    if temperature == 0:   # greedy: all the mass on the argmax
        filtered = np.zeros_like(probs)
        filtered[int(last.argmax())] = 1.0
    order = np.argsort(-probs, kind="stable")[:top]
    rows = [{"id": int(i), "token": tokens.get(int(i)) or token_text(tokenizer, i),
             "logit": float(last[i]), "prob": float(probs[i]),
             "filtered_prob": float(filtered[i]), "chosen": int(i) == nxt} for i in order]
    rule = ("greedy (temperature 0): argmax" if temperature == 0 else
            f"temperature {temperature}" + (f", top_k {top_k}" if top_k else "")
            + (f", top_p {top_p}" if top_p is not None and top_p < 1 else ""))
    nxt_text = tokens.get(nxt) or token_text(tokenizer, nxt)
    summary = ("top: " + ", ".join(f"{show(r['token'])} {r['prob']:.3f}" for r in rows)
               + f"; filter {rule} keeps {int((filtered > 0).sum())} tokens; chose "
               f"{show(nxt_text)} (id {nxt}, p {probs[nxt]:.3f}, filtered p {filtered[nxt]:.3f})")
    return Stage(12, step, None, summary, {
        "probs": probs, "filtered": filtered, "top": rows,
        "filter": {"temperature": temperature, "top_k": top_k, "top_p": top_p, "rule": rule,
                   "kept": int((filtered > 0).sum())},
        "chosen": nxt, "chosen_token": nxt_text, "chosen_prob": float(probs[nxt]),
        "chosen_filtered_prob": float(filtered[nxt]), "generated": generated})
