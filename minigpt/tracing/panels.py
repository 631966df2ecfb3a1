"""The body of each stage of the trace page, for one trace: what is drawn, on which scale.

A ``View`` is one trace as the page draws it: the prompt positions it shows (all of them, or
an evenly spaced sample, said in every caption), the shared scales, and the helpers that turn
a stage's arrays into heatmaps packed into strips (one token per row, labelled once).
``stage_body(view, number)`` is stage ``number`` of the prompt; ``grad_block`` its gradients.
"""
from __future__ import annotations

import numpy as np

from .figures import (Page, Scale, bars, colour_table, esc, heatmap, label, lines, pick,
                      sparkline, strip, with_gaps)
from .record import STAGE_TENSORS
from .words import chip

__all__ = ["SCALES", "shared_scales", "View", "stage_body", "grad_block", "param_table",
           "logit_bars", "prob_bars"]

# the shared scales: name -> (kind, the stage data they colour, what shares them)
SCALES = {
    "emb": ("div", ("tok_emb", "pos_emb", "emb"), "stages 4 and 5"),
    "ln": ("div", ("ln_1", "ln_2", "ln_f"), "every LayerNorm output, all layers"),
    "qk": ("div", ("attn.q", "attn.k"), "queries and keys, all layers"),
    "vy": ("div", ("attn.v", "attn.y"), "values and head outputs, all layers"),
    "scores": ("div", ("masked_scores",), "all layers and heads"),
    "weights": ("seq", ("weights",), "all layers and heads"),
    "hidden": ("div", ("mlp.c_fc", "mlp.gelu"), "the MLP hidden layer, all layers"),
    "write": ("div", ("attn.c_proj", "mlp.c_proj"), "what every sub-block adds, all layers"),
    "stream": ("div", ("resid_attn", "resid_mlp"), "the residual stream, all layers"),
    "norms": ("seq", ("resid_norms",), "all layers"),
    "logits": ("div", ("logits",), "all positions"),
}


def shared_scales(traces) -> dict:
    """One Scale per kind of picture, fitted to every trace, step and layer on the page, so
    that pictures of different layers (and of two compared traces) can be compared."""
    scales = {}
    for name, (kind, keys, shared) in SCALES.items():
        arrays = [s.data[k] for t in traces for s in t.stages for k in keys if k in s.data]
        scales[name] = Scale.fit(kind, arrays or [np.zeros(1)], shared)
    grads = [g for t in traces if t.backward for g in t.backward.grad_norms.values()]
    scales["grad"] = Scale.fit("log", grads or [np.ones(1)],
                               "every stage output, all layers (one log scale)")
    params = [np.array(list(t.backward.param_grad_norms.values())) for t in traces
              if t.backward]
    scales["param"] = Scale.fit("log", params or [np.ones(1)], "all parameters")
    return scales


class View:
    """One trace on the page: its sampled prompt positions, scales and figure helpers."""

    def __init__(self, t, page: Page, scales: dict, name: str = "trace", tag: str = ""):
        self.t, self.page, self.scales = t, page, scales
        self.name, self.tag = name, tag          # tag: the prefix of its element ids
        self.T = len(t.prompt_ids)
        self.rows, self.rows_note = pick(self.T, page.max_rows)
        self.row_labels = [t.tokens[i] for i in self.rows]
        self.rows_key = page.labels_key([f"#{i} {label(t.tokens[i])}" for i in self.rows])
        avail = page.width - 90
        wide = avail >= 1000
        self.rh = max(4, min(9, (avail // (2 if wide else 1) - 16) // max(len(self.rows), 1)))
        self.kind = t.stage(2).data["kind"]

    # -------------------------------------------------------------- heatmaps
    def fmap(self, a, scale: str, title: str, rows=None, row_names=None):
        """(html, width) of a (positions, features) map, or of a heads-first (nh, T, hs)
        array drawn as the heads side by side; positions and features sampled to the caps."""
        rows = self.rows if rows is None else rows
        a = np.asarray(a)
        heads = a.ndim == 3
        per = a.shape[-1]
        cap = max(8, self.page.max_cols // (a.shape[0] if heads else 1))
        cols, cnote = pick(per, cap)
        sc = self.scales[scale]
        if heads:
            idx = with_gaps([sc.levels(a[h][rows][:, cols]) for h in range(a.shape[0])])
            names = [n for h in range(a.shape[0]) for n in
                     ([""] if h else []) + [f"head {h}, feature {j}" for j in cols]]
        else:
            idx = sc.levels(a[rows][:, cols])
            names = [f"feature {j}" for j in cols]
        cw = max(1, min(4, 256 // (len(cols) * (a.shape[0] if heads else 1))))
        notes = [n for n in (self._row_note(rows), cnote and f"features: {cnote}") if n]
        if heads:
            title += f" ({a.shape[0]} heads side by side)"
        fig = heatmap(self.page, idx, sc, title, self.rh, cw, row_names or self.rows_key,
                      cols_key=self.page.labels_key(names), note="; ".join(notes))
        return fig, idx.shape[1] * cw

    def _row_note(self, rows):
        return f"positions: {self.rows_note}" if rows is self.rows and self.rows_note else ""

    def amap(self, m, scale: str, title: str):
        """(html, width) of a (queries, keys) map over the prompt: both axes sampled alike,
        keys labelled with their tokens."""
        r = self.rows
        fig = heatmap(self.page, self.scales[scale].levels(m[r][:, r]), self.scales[scale],
                      title, self.rh, self.rh, self.rows_key, cols=self.row_labels,
                      cols_key=self.rows_key,
                      note=self.rows_note and f"queries and keys: {self.rows_note}")
        return fig, len(r) * self.rh

    def strips(self, figs, row_labels=None, rh=None) -> str:
        """Figures (html, width) packed into as few strips as fit the page width, each
        strip's rows labelled (by the sampled prompt tokens, or ``row_labels``)."""
        avail, out, cur, used = self.page.width - 90, [], [], 0
        for html, w in figs:
            w = max(w, 200)                        # (a figure is at least 200 px wide)
            if cur and used + w + 14 > avail:
                out.append(cur)
                cur, used = [], 0
            cur.append(html)
            used += w + 14
        if cur:
            out.append(cur)
        labels = self.row_labels if row_labels is None else row_labels
        return "".join(strip(labels, c, rh or self.rh, tokens=row_labels is None) for c in out)


# ----------------------------------------------------------------------------- stages
def _bytes_chips(d) -> str:
    return "".join(chip(c, " ".join(f"{x:02x}" for x in b)) for c, b in d["chars"])


def _tokenizer_body(v: View, d) -> str:
    if d["kind"] == "char":
        return ("<p>Each character and its id:</p><p>"
                + "".join(chip(ch["text"], ch["ids"][0]) for ch in d["chunks"]) + "</p>")
    boxes = []
    for ch in d["chunks"]:
        steps = "".join(f'<div class="merge">rank {m["rank"]}: {chip(m["pair_text"][0])} + '
                        f'{chip(m["pair_text"][1])} → {chip(m["new_text"], m["new_id"])}</div>'
                        for m in ch["merges"])
        n = len(ch["bytes"])
        boxes.append(f'<div class="chunk">{chip(ch["text"])} <small>{n} byte{"s" * (n != 1)}'
                     f'</small>{steps or "<div class=merge>no merge applies</div>"}'
                     f'<div class="merge">ids {ch["ids"]}</div></div>')
    note = f"<p>{esc(d['note'])}</p>" if "note" in d else ""
    return f'<div class="chunks">{"".join(boxes)}</div>{note}'


def _ln_stats(d, which: str) -> str:
    return (f'<p class="stats">{which} input per position: mean {sparkline(d["ln_in_mean"])}'
            f' &nbsp; std {sparkline(d["ln_in_std"])}</p>')


def _attention(v: View, d, layer: int) -> str:
    nh = d["weights"].shape[0]
    figs = [v.fmap(d["ln_1"], "ln", "ln_1 output"), v.fmap(d["attn.q"], "qk", "q"),
            v.fmap(d["attn.k"], "qk", "k"), v.fmap(d["attn.v"], "vy", "v")]
    heads = []
    for h in range(nh):
        pair = [v.amap(d["masked_scores"][h], "scores", f"head {h}: scores q·k/√hs (grey: "
                       "masked, later positions)"),
                v.amap(d["weights"][h], "weights", f"head {h}: attention weights (each row "
                       "sums to 1)")]
        heads.append(f'<div class="head" data-head="{h}">{v.strips(pair)}</div>')
    out = [v.fmap(d["attn.y"], "vy", "weighted sum of values"),
           v.fmap(d["attn.c_proj"], "write", "c_proj: added to the stream")]
    return (_ln_stats(d, "ln_1") + v.strips(figs)
            + f'<div class="heads" data-layer="{layer}">{"".join(heads)}</div>'
            + v.strips(out))


def _mlp(v: View, d) -> str:
    figs = [v.fmap(d["ln_2"], "ln", "ln_2 output"),
            v.fmap(d["mlp.c_fc"], "hidden", f"c_fc, before GELU ({d['negative_fraction']:.0%}"
                   " negative)"),
            v.fmap(d["mlp.gelu"], "hidden", "after GELU"),
            v.fmap(d["mlp.c_proj"], "write", "c_proj: added to the stream")]
    return _ln_stats(d, "ln_2") + v.strips(figs)


def _residual(v: View, d) -> str:
    r = v.rows
    chart = lines({"in": d["norm_in"][r], "after attn": d["norm_after_attn"][r],
                   "after mlp": d["norm_after_mlp"][r]}, v.row_labels,
                  "|x| per position: entering the block, after attention, after the MLP"
                  + (f" (positions: {v.rows_note})" if v.rows_note else ""), points=False)
    return chart + v.strips([v.fmap(d["resid_attn"], "stream", "x + attn(ln_1(x))"),
                             v.fmap(d["resid_mlp"], "stream", "… + mlp(ln_2(…)): leaves "
                                    "the block")])


def _logit_lens(v: View, d) -> str:
    t, T = v.t, v.T
    nxt = t.prompt_ids[1:] + [None]
    head = "".join(f"<th>{esc(e['layer'])}</th>" for e in d["logit_lens"])
    rows = []
    for i in v.rows:
        cells = []
        for e in d["logit_lens"]:
            top = e["top"][i]
            hit = " hit" if nxt[i] is not None and top[0][0] == nxt[i] else ""
            tip = ", ".join(f"{label(x[1])} {x[2]:.3f}" for x in top)
            cells.append(f'<td class="lens{hit}" style="--p:{top[0][2]:.2f}" '
                         f'title="{esc(tip)}">{esc(label(top[0][1], 12))}</td>')
        truth = label(t.tokens[i + 1], 12) if i + 1 < T else "?"
        rows.append(f"<tr><th>#{i} {esc(label(t.tokens[i], 12))}</th><td>{esc(truth)}</td>"
                    f"{''.join(cells)}</tr>")
    return ("<p><b>Logit lens</b>: the top token each layer's stream predicts at each position "
            "(shade: its probability; green: it is the prompt's actual next token; hover: the "
            "top list)." + (f" Positions: {esc(v.rows_note)}." if v.rows_note else "") + "</p>"
            f'<table class="t lens"><tr><th>position</th><th>next in prompt</th>{head}</tr>'
            f"{''.join(rows)}</table>")


def logit_bars(z, top_last, chosen: int, chosen_text: str) -> str:
    """The largest logits of one position as true values, with the chosen token always."""
    rows = list(top_last)
    if chosen not in [r[0] for r in rows]:
        rows.append((chosen, chosen_text, float(z[chosen])))
    hl = {i for i, r in enumerate(rows) if r[0] == chosen}
    return bars([label(r[1], 14) for r in rows], [r[2] for r in rows],
                "largest logits at the last position (true values; yellow: the chosen token)",
                highlight=hl)


def prob_bars(d) -> str:
    """Softmax probabilities of the top tokens (orange: after the sampling filter), with the
    chosen token always shown, and its rank when it is not among the top rows."""
    rows = list(d["top"])
    probs = np.asarray(d["probs"])
    notes = ["← chosen" if r["chosen"] else "" for r in rows]
    if not any(r["chosen"] for r in rows):
        c = d["chosen"]
        rank = int((probs > probs[c]).sum()) + 1
        rows.append({"token": d["chosen_token"], "prob": float(probs[c]),
                     "filtered_prob": d["chosen_filtered_prob"], "chosen": True})
        notes.append(f"← chosen (rank {rank})")
    hl = {i for i, r in enumerate(rows) if r["chosen"]}
    return bars([label(r["token"], 14) for r in rows], [r["prob"] for r in rows],
                "softmax probabilities (thin orange: after the sampling filter)", highlight=hl,
                second=[r["filtered_prob"] for r in rows], fmt="{:.3f}", notes=notes)


def stage_body(v: View, number: int, layer: int | None = None) -> str:
    """The pictures of stage ``number`` of the prompt (for stages 6-8: of one layer)."""
    t = v.t
    s = t.stage(number, layer=layer)
    d = s.data
    if number == 1:
        return f"<p>{_bytes_chips(d)}</p>"
    if number == 2:
        return _tokenizer_body(v, d)
    if number == 3:
        return ("<p>" + "".join(chip(t.tokens[i], x) for i, x in enumerate(d["ids"])) + "</p>"
                f'<p class="mono">{esc(d["ids"])}</p>')
    if number == 4:
        return v.strips([v.fmap(d["tok_emb"], "emb", "token embeddings: rows of wte")])
    if number == 5:
        return v.strips([v.fmap(d["pos_emb"], "emb", "position embeddings: rows of wpe"),
                         v.fmap(d["emb"], "emb", "token + position: the residual stream")])
    if number == 6:
        return _attention(v, d, layer)
    if number == 7:
        return _mlp(v, d)
    if number == 8:
        return _residual(v, d)
    if number == 9:
        norms = heatmap(v.page, v.scales["norms"].levels(d["resid_norms"][:, v.rows]),
                        v.scales["norms"], "|x| per position (columns) after each block (rows)",
                        v.rh + 3, v.rh, cols=v.row_labels, cols_key=v.rows_key)
        return strip(list(d["layers"]), [norms], v.rh + 3, tokens=False) + _logit_lens(v, d)
    if number == 10:
        return _ln_stats(d, "ln_f") + v.strips([v.fmap(d["ln_f"], "ln", "ln_f output")])
    if number == 11:
        d12 = t.stage(12).data
        vocab = v.fmap(d["logits"], "logits", "logits: one column per vocabulary token")
        return (v.strips([vocab])
                + logit_bars(d["logits"][-1], d["top_last"], d12["chosen"], d12["chosen_token"]))
    f = d["filter"]
    return (prob_bars(d) + f"<p>Filter: {esc(f['rule'])}; it keeps {f['kept']} tokens. Chosen: "
            f"{chip(d['chosen_token'], d['chosen'])} with p = {d['chosen_prob']:.4f} (after the "
            f"filter {d['chosen_filtered_prob']:.4f})"
            f"{'' if d['generated'] else ' (not appended: max_new_tokens is 0)'}.</p>")


def grad_block(v: View, number: int, layer: int | None = None) -> str:
    """|d loss / d h| per position for each output of the stage, on the page's one log
    scale, and each output's finite-difference verdict."""
    t = v.t
    if t.backward is None or number not in STAGE_TENSORS:
        return ""
    s = t.stage(number, layer=layer)
    prefix = "" if layer is None else f"h.{layer}."
    names = [n for n in STAGE_TENSORS[number] if prefix + n in t.backward.grad_norms]
    if not names:
        return ""
    norms = np.array([t.backward.grad_norms[prefix + n][v.rows] for n in names])
    fig = heatmap(v.page, v.scales["grad"].levels(norms), v.scales["grad"],
                  "|d loss / d h| per position", v.rh + 3, v.rh, cols=v.row_labels,
                  cols_key=v.rows_key)
    checks = []
    for n in names:
        c = s.checks.get(n)
        if c is not None:
            cls = "ok" if c.ok else "bad"
            checks.append(f'<span class="{cls}">{esc(prefix + n)}: finite differences '
                          f'{"agree" if c.ok else "disagree"}</span> <small>(max error '
                          f'{c.max_abs_error:.1e}, largest |gradient| {c.scale:.2g})</small>')
    return (f'<div class="grad"><b>Backward</b>: how much the loss ({esc(t.backward.description)}'
            f") changes per unit change of each output, per position."
            f"{strip(names, [fig], v.rh + 3, tokens=False)}"
            + "<br>".join(checks) + "</div>")


def param_table(v: View) -> str:
    """Parameter gradient norms as a layer x parameter table on a log scale."""
    pg = {n.replace("transformer.", ""): g for n, g in v.t.backward.param_grad_norms.items()}
    L = v.t.config["n_layer"]
    kinds = sorted({n.split(".", 2)[2] for n in pg if n.startswith("h.")},
                   key=lambda k: list(pg).index(f"h.0.{k}") if f"h.0.{k}" in pg else 0)
    rows = [[pg.get(f"h.{i}.{k}", np.nan) for k in kinds] for i in range(L)]
    table = colour_table([f"h.{i}" for i in range(L)], kinds, rows, v.scales["param"])
    rest = {n: g for n, g in pg.items() if not n.startswith("h.")}
    extra = colour_table(["outside the blocks"], list(rest), [list(rest.values())],
                         v.scales["param"])
    return table + extra

