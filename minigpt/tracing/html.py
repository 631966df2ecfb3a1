"""One self-contained HTML page for a TokenTrace: inline SVG drawn here, no script, no network.

The stages in order, step by step: bytes, BPE merges, ids, embedding heatmaps, per layer and head
the attention scores (before and after the causal mask) and weights, the feed-forward before and
after GELU, residual norms, the logit lens, logits, probability bars; with a target, the gradient
at every stage (|dL/dh| per position and the finite-difference verdict) and a closing section
where the gradient walks back. ``render(a, b)`` puts two traces side by side, stage by stage.
"""
from __future__ import annotations

import html

import numpy as np

from .record import STAGES, TokenTrace
from .report import show

MAX_COLS = 64   # feature columns drawn in an activation heatmap (the rest are summarised)

CSS = """
body { font-family: -apple-system, Helvetica, Arial, sans-serif; margin: 20px; color: #222;
       max-width: 1800px; }
h1 { margin-bottom: 4px; } h2 { border-bottom: 2px solid #08519c; padding-top: 10px; }
section.stage { border: 1px solid #ccc; border-radius: 6px; padding: 8px 12px; margin: 10px 0;
                background: #fafafa; overflow-x: auto; }
section.stage h3 { margin: 2px 0 6px 0; font-size: 16px; }
.num { display: inline-block; background: #08519c; color: white; border-radius: 50%;
       width: 24px; height: 24px; text-align: center; line-height: 24px; margin-right: 6px; }
.summary { font-family: monospace; font-size: 12px; color: #444; white-space: pre-wrap; }
.tok { display: inline-block; border: 1px solid #999; border-radius: 3px; padding: 1px 4px;
       margin: 2px; font-family: monospace; font-size: 13px; background: white; }
.tok small { color: #777; }
.chunk { display: inline-block; vertical-align: top; border: 1px dashed #08519c; margin: 3px;
         padding: 3px; font-size: 12px; }
.merge { font-family: monospace; font-size: 11px; color: #333; }
.figs { display: flex; flex-wrap: wrap; gap: 10px; align-items: flex-start; }
.fig { font-size: 11px; text-align: center; }
.ok { color: #1a7f37; font-weight: bold; } .bad { color: #cf222e; font-weight: bold; }
table.t { border-collapse: collapse; font-size: 12px; font-family: monospace; }
table.t td, table.t th { border: 1px solid #ddd; padding: 2px 6px; }
tr.chosen { background: #ffe8a3; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
.pair > div > h4 { margin: 4px 0; color: #08519c; }
.grad { border-left: 4px solid #cf222e; padding-left: 8px; margin-top: 6px; }
"""


def esc(s) -> str:
    return html.escape(str(s), quote=True)


# ----------------------------------------------------------------------------- SVG helpers
def _color(v: float, kind: str) -> str:
    """kind 'seq': 0 -> white, 1 -> dark blue; 'div': -1 blue, 0 white, +1 red."""
    if not np.isfinite(v):
        return "#d0d0d0"
    if kind == "seq":
        t = min(max(v, 0.0), 1.0)
        r, g, b = (255 + (8 - 255) * t, 255 + (81 - 255) * t, 255 + (156 - 255) * t)
    else:
        t = min(max(v, -1.0), 1.0)
        if t >= 0:
            r, g, b = 255, 255 - 200 * t, 255 - 200 * t
        else:
            r, g, b = 255 + 200 * t, 255 + 120 * t, 255
    return f"#{int(r):02x}{int(g):02x}{int(b):02x}"


def heatmap(m, title="", rows=None, cols=None, kind="seq", vmax=None, row_scaled=False) -> str:
    """An SVG heatmap of a 2-D array (NaN and -inf drawn grey); small maps carry tooltips.
    row_scaled: each row coloured against its own max |value| (rows of different scales)."""
    m = np.asarray(m, dtype=np.float64)
    if m.ndim == 1:
        m = m[None]
    if row_scaled:
        fin = np.where(np.isfinite(m), np.abs(m), 0)
        scale = fin.max(axis=1, keepdims=True)
        scale[scale == 0] = 1.0
    note = ""
    if m.shape[1] > MAX_COLS:
        note = f" (first {MAX_COLS} of {m.shape[1]} columns)"
        m, cols = m[:, :MAX_COLS], (cols[:MAX_COLS] if cols else None)
    n_r, n_c = m.shape
    cw = max(5, min(16, 480 // max(n_c, 1)))
    ch = max(cw, 12) if rows else cw
    fin = m[np.isfinite(m)]
    if vmax is None:
        vmax = float(np.abs(fin).max()) if fin.size else 1.0
    vmax = vmax or 1.0
    left = 8 + 6 * max((len(r) for r in rows), default=0) if rows else 4
    top = 8 + 5 * min(max((len(c) for c in cols), default=0), 14) if cols else 4
    w, h = left + n_c * cw + 4, top + n_r * ch + 4
    tips = n_r * n_c <= 1024
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
             f'font-family="monospace" font-size="10">']
    for i in range(n_r):
        for j in range(n_c):
            v = m[i, j]
            tip = f"<title>{esc(_cell_name(rows, cols, i, j))}{v:.4g}</title>" if tips else ""
            frac = v / scale[i, 0] if row_scaled else v / vmax
            parts.append(f'<rect x="{left + j * cw}" y="{top + i * ch}" width="{cw}" '
                         f'height="{ch}" fill="{_color(frac, kind)}">{tip}</rect>')
    if rows:
        for i, r in enumerate(rows):
            parts.append(f'<text x="{left - 3}" y="{top + i * ch + ch * 0.75}" '
                         f'text-anchor="end">{esc(r)}</text>')
    if cols:
        for j, c in enumerate(cols):
            x, y = left + j * cw + cw * 0.7, top - 3
            parts.append(f'<text x="{x}" y="{y}" transform="rotate(-60 {x} {y})">'
                         f'{esc(c[:14])}</text>')
    parts.append("</svg>")
    scale_note = "each row scaled to its own max" if row_scaled else f"max |v| {vmax:.3g}"
    return (f'<div class="fig" style="max-width:{max(w, 150)}px">{"".join(parts)}<br>'
            f'{esc(title)}{esc(note)} <span style="color:#888">({scale_note})</span></div>')


def _cell_name(rows, cols, i, j):
    r = rows[i] if rows else str(i)
    c = cols[j] if cols else str(j)
    return f"{r} / {c}: "


def bars(labels, values, title="", highlight=None, second=None, width=260, color="#08519c"):
    """Horizontal bars (values >= 0), an optional second series drawn thin in orange."""
    values = np.asarray(values, dtype=np.float64)
    vmax = float(max(values.max(initial=0), 0 if second is None else np.max(second))) or 1.0
    left = 10 + 7 * max((len(lb) for lb in labels), default=0)
    row = 16
    h = row * len(labels) + 6
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 70}" height="{h}" '
             f'font-family="monospace" font-size="11">']
    for i, (lb, v) in enumerate(zip(labels, values)):
        y = 3 + i * row
        if highlight is not None and i == highlight:
            parts.append(f'<rect x="0" y="{y - 1}" width="{left + width + 70}" height="{row}" '
                         f'fill="#ffe8a3"/>')
        parts.append(f'<text x="{left - 4}" y="{y + 11}" text-anchor="end">{esc(lb)}</text>')
        parts.append(f'<rect x="{left}" y="{y}" width="{width * v / vmax:.1f}" height="{row - 4}"'
                     f' fill="{color}"><title>{v:.4g}</title></rect>')
        if second is not None:
            w2 = width * second[i] / vmax
            parts.append(f'<rect x="{left}" y="{y + row - 6}" width="{w2:.1f}" height="3" '
                         f'fill="#f28e2b"/>')
        parts.append(f'<text x="{left + width * v / vmax + 4:.1f}" y="{y + 11}">{v:.3g}</text>')
    parts.append("</svg>")
    return f'<div class="fig">{"".join(parts)}<br>{esc(title)}</div>'


def grouped_lines(series: dict, labels, title="") -> str:
    """One polyline per series over positions (e.g. residual norms)."""
    n = len(labels)
    vals = np.array([np.asarray(v, dtype=np.float64) for v in series.values()])
    vmax = float(vals.max()) or 1.0
    w, h, left, top = max(200, 30 * n + 60), 140, 40, 22
    colors = ["#08519c", "#f28e2b", "#1a7f37", "#cf222e", "#6f42c1"]
    x = [left + (i + 0.5) * (w - left - 10) / max(n, 1) for i in range(n)]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h + 60}" '
             f'font-family="monospace" font-size="10">',
             f'<line x1="{left}" y1="{top + h}" x2="{w - 5}" y2="{top + h}" stroke="#999"/>',
             f'<text x="2" y="{top + 8}">{vmax:.3g}</text><text x="2" y="{top + h}">0</text>']
    for k, (name, v) in enumerate(series.items()):
        c = colors[k % len(colors)]
        pts = " ".join(f"{x[i]:.1f},{top + h - h * float(v[i]) / vmax:.1f}" for i in range(n))
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{c}" stroke-width="2"/>')
        for i in range(n):
            parts.append(f'<circle cx="{x[i]:.1f}" cy="{top + h - h * float(v[i]) / vmax:.1f}" '
                         f'r="2.5" fill="{c}"><title>{esc(name)} {labels[i]}: {float(v[i]):.4g}'
                         f'</title></circle>')
        parts.append(f'<text x="{left + 8 + 90 * k}" y="12" fill="{c}">{esc(name)}</text>')
    for i, lb in enumerate(labels):
        parts.append(f'<text x="{x[i]:.1f}" y="{top + h + 12}" transform="rotate(-45 {x[i]:.1f} '
                     f'{top + h + 12})" text-anchor="end">{esc(lb[:10])}</text>')
    parts.append("</svg>")
    return f'<div class="fig">{"".join(parts)}<br>{esc(title)}</div>'


# ----------------------------------------------------------------------------- stages
def _tok(text, sub=None):
    small = f" <small>{esc(sub)}</small>" if sub is not None else ""
    return f'<span class="tok">{esc(show(text)[1:-1]) or "&nbsp;"}{small}</span>'


def _positions(t: TokenTrace, s) -> list[str]:
    """Labels of the query positions a stage shows."""
    if s.step == 0:
        return [show(t.tokens[i])[1:-1] for i in range(len(t.prompt_ids))]
    i = len(t.prompt_ids) + s.step - 1
    return [show(t.tokens[i])[1:-1]]


def _keys(t: TokenTrace, s, n_keys) -> list[str]:
    end = len(t.prompt_ids) + s.step
    return [show(x)[1:-1] for x in t.tokens[end - n_keys:end]]


def _grad_block(t: TokenTrace, s, pos) -> str:
    """|dL/dh| per position of each recorded output, one strip each, with its verdict."""
    if not s.grads:
        return ""
    rows, verdicts = [], []
    for name in s.grads:
        full = name if s.layer is None else f"h.{s.layer}.{name}"
        rows.append(t.backward.grad_norms[full])
        c = s.checks.get(name)
        if c is not None:
            verdicts.append(f'{esc(full)}: <span class="{"ok" if c.ok else "bad"}">finite '
                            f"differences {c.verdict}</span> (max err {c.max_abs_error:.2g}, "
                            f"|g| max {c.scale:.2g})")
    return ('<div class="grad"><b>backward</b> '
            + heatmap(np.array(rows), "|d loss / d h| per position", list(s.grads), pos,
                      row_scaled=True)
            + ("<br>" + "<br>".join(verdicts) if verdicts else "") + "</div>")


def _stage_body(t: TokenTrace, s) -> str:
    d, n = s.data, s.number
    pos = _positions(t, s)
    parts = []
    if n == 1:
        if "chars" in d:
            parts.append("".join(_tok(c, " ".join(f"{x:02x}" for x in b)) for c, b in d["chars"]))
        else:
            parts.append(_tok(d["text"], " ".join(f"{x:02x}" for x in d["bytes"])))
    elif n == 2:
        if d["kind"] == "sampled":
            parts.append(f"<p>id {d['id']} came from the sampler at step {s.step - 1}, not from "
                         "the tokenizer.</p>")
        else:
            for ch in d["chunks"]:
                merges = "".join(
                    f'<div class="merge">rank {m["rank"]}: ({a} {esc(show(ta))}, {b} '
                    f'{esc(show(tb))}) &rarr; {m["new_id"]} {esc(show(m["new_text"]))}</div>'
                    for m in ch["merges"] for (a, b), (ta, tb) in [(m["pair"], m["pair_text"])])
                if not ch["merges"]:
                    merges = '<div class="merge">' + ("no merges (one id per character)"
                                                      if d["kind"] == "char" else
                                                      "no merge applies") + "</div>"
                parts.append(f'<div class="chunk">{_tok(ch["text"])}<br>{merges}'
                             f'<div class="merge">ids {ch["ids"]}</div></div>')
            if "note" in d:
                parts.append(f"<p>{esc(d['note'])}</p>")
    elif n == 3:
        ids = d["ids"] if s.step == 0 else d["ids"][-1:]
        parts.append("".join(_tok(t.tokens[len(d["ids"]) - len(ids) + k], i)
                             for k, i in enumerate(ids)))
    elif n == 4:
        parts.append(heatmap(d["tok_emb"], "token embeddings (wte rows)", pos, kind="div"))
    elif n == 5:
        parts.append(heatmap(d["pos_emb"], "positional embeddings (wpe rows)", pos, kind="div"))
        parts.append(heatmap(d["emb"], "their sum: the residual stream enters", pos, kind="div"))
    elif n == 6:
        keys = _keys(t, s, d["weights"].shape[-1])
        parts.append(grouped_lines({"std": d["ln_in_std"], "|mean|": np.abs(d["ln_in_mean"])},
                                   pos, "ln_1 input statistics per position"))
        for h in range(d["weights"].shape[0]):   # one row per head
            parts.append('<div class="figs">'
                         + heatmap(d["scores"][h], f"head {h}: scores q k^T/sqrt(hs)", pos, keys,
                                   kind="div")
                         + heatmap(d["masked_scores"][h], f"head {h}: after the causal mask",
                                   pos, keys, kind="div")
                         + heatmap(d["weights"][h], f"head {h}: attention weights", pos, keys,
                                   vmax=1.0)
                         + "</div>")
        qkv = [heatmap(d[k].transpose(1, 0, 2).reshape(d[k].shape[1], -1),
                       k + " (heads side by side)", pos if k == "attn.q" else keys, kind="div")
               for k in ("attn.q", "attn.k", "attn.v")]
        parts.append('<div class="figs">' + "".join(qkv)
                     + heatmap(d["attn.c_proj"], "attention output after c_proj", pos, kind="div")
                     + "</div>")
    elif n == 7:
        parts.append('<div class="figs">'
                     + grouped_lines({"std": d["ln_in_std"], "|mean|": np.abs(d["ln_in_mean"])},
                                     pos, "ln_2 input statistics per position")
                     + heatmap(d["mlp.c_fc"], f"c_fc: before GELU ({d['negative_fraction']:.0%} "
                               "negative)", pos, kind="div")
                     + heatmap(d["mlp.gelu"], "after GELU", pos, kind="div")
                     + heatmap(d["mlp.c_proj"], "c_proj (added to the stream)", pos, kind="div")
                     + "</div>")
    elif n == 8:
        parts.append(grouped_lines({"in": d["norm_in"], "after attn": d["norm_after_attn"],
                                    "after mlp": d["norm_after_mlp"]}, pos,
                                   "|residual stream| per position"))
    elif n == 9:
        parts.append(heatmap(d["resid_norms"], "|residual stream|: rows = embedding, then after "
                             "each block", d["layers"], pos))
        rows = "".join(f"<tr><th>{esc(e['layer'])}</th>{_lens_cells(e['top'])}</tr>"
                       for e in d["logit_lens"])
        parts.append("<p><b>logit lens</b>: the top token each layer's residual stream predicts "
                     "through ln_f and lm_head (hover for the top list)</p>"
                     f'<table class="t"><tr><th></th>{"".join(f"<th>{esc(p)}</th>" for p in pos)}'
                     f"</tr>{rows}</table>")
    elif n == 10:
        parts.append(heatmap(d["ln_f"], "final contextual embedding (ln_f output)", pos,
                             kind="div"))
    elif n == 11:
        top = d["top_last"]
        low = float(d["logits"][-1].min())
        parts.append(bars([show(x[1])[1:-1] for x in top], [x[2] - low for x in top],
                          f"largest logits at the last position, minus the smallest ({low:.3g})"))
    elif n == 12:
        top = d["top"]
        chosen = next((k for k, r in enumerate(top) if r["chosen"]), None)
        parts.append('<div class="figs">'
                     + bars([show(r["token"])[1:-1] for r in top], [r["prob"] for r in top],
                            "softmax probabilities (orange: after the sampling filter)",
                            highlight=chosen, second=[r["filtered_prob"] for r in top])
                     + "</div>")
        f = d["filter"]
        parts.append(f"<p>filter: {esc(f['rule'])}, keeps {f['kept']} tokens. Chosen: "
                     f"{_tok(d['chosen_token'], d['chosen'])} p = {d['chosen_prob']:.4f}, "
                     f"filtered p = {d['chosen_filtered_prob']:.4f}"
                     f"{'' if d['generated'] else ' (not appended)'}</p>")
    if s.step == 0 and t.backward is not None:
        parts.append(_grad_block(t, s, pos))
    return "".join(parts)


def _lens_cells(tops) -> str:
    """One cell per position: its top token, shaded by its probability (top list on hover)."""
    best = max(1e-9, max(p[0][2] for p in tops))
    return "".join(
        f'<td style="background:{_color(p[0][2] / best, "seq")}40" '
        f'title="{esc(", ".join(f"{show(x[1])} {x[2]:.3f}" for x in p))}">'
        f"{esc(show(p[0][1]))}</td>" for p in tops)


def _section(t: TokenTrace, s) -> str:
    where = f" &middot; layer {s.layer}" if s.layer is not None else ""
    return (f'<section class="stage" id="s{s.step}-{s.number}-{s.layer}" data-stage="{s.number}">'
            f'<h3><span class="num">{s.number}</span>{esc(STAGES[s.number])}{where}</h3>'
            f'<div class="summary">{esc(s.summary)}</div>{_stage_body(t, s)}</section>')


def _backward_section(t: TokenTrace) -> str:
    b = t.backward
    if b is None:
        return "<p>No target was given: forward only.</p>"
    names = list(reversed(list(b.grad_norms)))
    pos = [show(t.tokens[i])[1:-1] for i in range(len(t.prompt_ids))]
    norms = np.array([b.grad_norms[n] for n in names])
    rows = []
    for n in names:
        c = b.checks.get(n)
        v = "" if c is None else (f'<span class="{"ok" if c.ok else "bad"}">{c.verdict}</span>')
        err = "" if c is None else f"{c.max_abs_error:.2g}"
        scale = "" if c is None else f"{c.scale:.3g}"
        f32 = "" if c is None or c.float32_rel_diff is None else f"{c.float32_rel_diff:.2g}"
        rows.append(f"<tr><td>{esc(n)}</td><td>{v}</td><td>{err}</td><td>{scale}</td>"
                    f"<td>{f32}</td></tr>")
    bad = b.first_disagreement
    verdict = ("" if not b.checks else
               '<p class="ok">Every stage\'s backward agrees with the finite differences.</p>'
               if bad is None else
               f'<p class="bad">First disagreement walking back: {esc(bad)} (the faulty backward '
               "is between it and the stage after it).</p>")
    pg = sorted(b.param_grad_norms.items(), key=lambda kv: -kv[1])
    sal = np.asarray(b.saliency)
    smax = float(np.abs(sal).max()) or 1.0
    saliency = "".join(
        f'<span class="tok" style="background:{_color(v / smax, "div")}" title="{v:.4g}">'
        f'{esc(show(t.tokens[i])[1:-1])}</span>' for i, v in enumerate(sal))
    return (f"<p>loss {b.loss:.4f}; target: {esc(b.description)}</p>"
            + heatmap(norms, "|d loss / d h| per position, from the loss (top) back to the "
                      "embeddings (bottom)", names, pos, row_scaled=True)
            + verdict
            + '<table class="t"><tr><th>stage output</th><th>float64 finite differences</th>'
              "<th>max |error|</th><th>max |grad|</th><th>float32 vs float64 (rel)</th></tr>"
            + "".join(rows) + "</table>"
            + f"<p><b>gradient &times; input saliency</b> of each prompt token (red: raises the "
              f"loss, blue: lowers it)</p><p>{saliency}</p>"
            + bars([n.replace("transformer.", "") for n, _ in pg[:24]], [v for _, v in pg[:24]],
                   "parameter gradient norms (largest 24)", color="#cf222e"))


def _header(t: TokenTrace) -> str:
    c = t.config
    return (f"<p><b>{esc(t.label or 'trace')}</b>: prompt {_tok(t.text)} &rarr; GPT(n_layer="
            f"{c['n_layer']}, n_head={c['n_head']}, n_embd={c['n_embd']}, vocab_size="
            f"{c['vocab_size']}), {esc(t.tokenizer)}; generated {_tok(t.generated_text)}</p>"
            + "".join(f"<p><i>{esc(n)}</i></p>" for n in t.notes))


def render(a: TokenTrace, b: TokenTrace | None = None) -> str:
    """The page for one trace, or for two side by side (stages paired by step, number, layer)."""
    body = ["<h1>The life of a token</h1>"]
    if b is None:
        body.append(_header(a))
    else:
        body.append(f'<div class="pair"><div>{_header(a)}</div><div>{_header(b)}</div></div>')
    nav = ", ".join(f'<a href="#s0-{s.number}-{s.layer}">{s.number}'
                    f'{"" if s.layer is None else "." + str(s.layer)}</a>'
                    for s in a.stages if s.step == 0)
    body.append(f"<p>stages of the prompt: {nav}; <a href='#backward'>the gradient walking "
                "back</a></p>")
    other = {} if b is None else {s.key: s for s in b.stages}
    steps = sorted({s.step for s in a.stages} | ({s.step for s in b.stages} if b else set()))
    for step in steps:
        body.append(f"<h2>Step {step}: " + ("the prompt" if step == 0 else
                    f"the forward pass that reads generated token {step}") + "</h2>")
        mine = [s for s in a.stages if s.step == step]
        if b is None:
            body += [_section(a, s) for s in mine]
            continue
        keys = [s.key for s in mine] + [s.key for s in b.stages
                                        if s.step == step and s.key not in {m.key for m in mine}]
        own = {s.key: s for s in mine}
        for k in keys:
            left = _section(a, own[k]) if k in own else ""
            right = _section(b, other[k]) if k in other else ""
            body.append(f'<div class="pair"><div>{left}</div><div>{right}</div></div>')
    body.append('<h2 id="backward">The gradient walking back</h2>')
    if b is None:
        body.append(_backward_section(a))
    else:
        body.append(f'<div class="pair"><div><h4>{esc(a.label)}</h4>{_backward_section(a)}</div>'
                    f'<div><h4>{esc(b.label)}</h4>{_backward_section(b)}</div></div>')
    return ("<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>The life of a token: "
            f"{esc(a.text[:40])}</title><style>{CSS}</style></head><body>"
            + "\n".join(body) + "</body></html>\n")
