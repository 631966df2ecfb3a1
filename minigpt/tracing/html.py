"""One self-contained HTML page for a TokenTrace, or for two compared stage by stage.

The page reads top to bottom and opens folded: a header (the model, the prompt's tokens, the
chosen token), then the twelve stages of the prompt, each a <details> whose summary line
already gives the essential numbers and which opens with two or three plain sentences and
its pictures; then one row per generated token (token, probability, alternatives, entropy),
each opening to its full pass; then the gradient walking back. Heatmaps are inline palette
PNGs (figures.py, png.py), so arrays are stored once and compactly; pages of large models
sample rows and columns, and say so. A small inline script adds hover values, a head
selector and open/close-all; without it the page reads the same. Nothing is loaded from
outside. ``render(a, b)`` puts two traces side by side, on shared scales.
"""
from __future__ import annotations

import json

import numpy as np

from .figures import Page, Scale, esc, heatmap, label, lines, pick
from .panels import (View, grad_block, logit_bars, param_table, prob_bars, shared_scales,
                     stage_body)
from .png import COLOURMAPS, LEVELS, palette
from .record import TokenTrace, stage_name
from .words import chip, entropy, intro, summary

__all__ = ["render", "heatmap", "CELL_BUDGET"]

CELL_BUDGET = 1_200_000   # heatmap cells per trace; beyond, features then positions are sampled

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 18px 24px;
       color: #222; max-width: 1360px; line-height: 1.4; font-size: 14px; }
h1 { margin: 0 0 4px 0; font-size: 26px; } h2 { font-size: 18px; margin: 22px 0 6px 0; }
p { margin: 6px 0; } .mono, .tok { font-family: ui-monospace, Menlo, Consolas, monospace; }
nav { font-size: 13px; margin: 8px 0; } nav a { margin-right: 4px; white-space: nowrap; }
details.stage { border: 1px solid #cfd6df; border-radius: 6px; margin: 6px 0; background: #fff; }
details.stage > summary { padding: 6px 10px; cursor: pointer; background: #f3f6fa;
                          border-radius: 6px; }
details.stage[open] > summary { border-bottom: 1px solid #cfd6df; border-radius: 6px 6px 0 0; }
details.stage > .body { padding: 6px 12px 10px 12px; overflow-x: auto; }
summary .name { font-weight: 600; } summary .sum { color: #444; font-size: 13px; }
.num { display: inline-block; background: #08519c; color: #fff; border-radius: 50%;
       width: 22px; height: 22px; text-align: center; line-height: 22px; margin-right: 6px;
       font-size: 12px; }
details.layer { margin: 6px 0 6px 10px; border-left: 3px solid #9ecae1; padding-left: 8px; }
details.layer > summary { cursor: pointer; font-size: 13px; }
.intro { max-width: 920px; color: #333; background: #fffdf3; border-left: 3px solid #f2c94c;
         padding: 4px 10px; }
.tok { display: inline-block; border: 1px solid #aaa; border-radius: 3px; padding: 0 3px;
       margin: 1px; font-size: 12px; background: #fff; white-space: pre; }
.tok small { color: #777; margin-left: 3px; font-size: 10px; }
.tok.chosen { background: #ffe8a3; border-color: #c90; }
.chunks { display: flex; flex-wrap: wrap; gap: 4px; } .merge { font-size: 11px; }
.chunk { border: 1px dashed #6baed6; padding: 2px 4px; font-size: 12px; }
.strip-title { font-weight: 600; font-size: 12px; margin-top: 8px; }
.strip { display: flex; gap: 14px; align-items: flex-start; margin: 6px 0; }
.rlw { flex: none; } .rl span, .cl span { overflow: hidden; white-space: pre;
       font: 9px/1 ui-monospace, Menlo, Consolas, monospace; }
.rl span { max-width: 110px; height: var(--c); display: flex; align-items: center;
           justify-content: flex-end; }
.cl { display: flex; height: 62px; align-items: flex-end; }
.cl span { display: block; width: var(--c); flex: none; writing-mode: vertical-rl;
           transform: rotate(180deg); max-height: 60px; }
figure { margin: 0; } figure.hm img { display: block; image-rendering: pixelated; }
figcaption { font-size: 11px; color: #333; margin-top: 2px; } .note { color: #a15c00; }
small.shared { color: #666; font-size: 10px; }
.legend { white-space: nowrap; font-size: 11px; display: inline-block; padding-bottom: 9px; }
.lg-end { font-family: monospace; }
.lg-bar { display: inline-block; width: 110px; height: 10px; margin: 0 4px;
          vertical-align: middle; position: relative; border: 1px solid #bbb; }
.lg-bar i { position: absolute; left: 50%; top: 10px; font-size: 9px; font-style: normal;
            transform: translateX(-50%); }
figure.chart { display: inline-block; vertical-align: top; margin: 4px 12px 4px 0; }
.stats { font-size: 12px; } svg.spark { vertical-align: middle; }
table.t { border-collapse: collapse; font-size: 11px; margin: 6px 0; }
table.t td, table.t th { border: 1px solid #ddd; padding: 1px 5px; white-space: pre; }
table.t th { background: #f6f6f6; font-family: monospace; font-weight: normal; }
td.lens { background: rgba(33, 113, 181, calc(var(--p) * 0.6)); font-family: monospace; }
td.lens.hit { outline: 2px solid #1a7f37; outline-offset: -2px; }
.grad { border-left: 4px solid #e31a1c; padding-left: 8px; margin-top: 10px; font-size: 12px; }
.ok { color: #1a7f37; font-weight: 600; } .bad { color: #cf222e; font-weight: 600; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 14px; }
.pair > div { min-width: 0; overflow-x: auto; }
.steprow { display: inline-grid; width: calc(100% - 24px); vertical-align: middle;
           grid-template-columns: 56px 140px 150px 70px 1fr 100px; gap: 6px;
           align-items: baseline; font-size: 13px; }
.tip { position: absolute; display: none; background: #222; color: #fff; font: 11px monospace;
       padding: 3px 6px; border-radius: 3px; pointer-events: none; z-index: 9; white-space: pre; }
.tools button, .headsel button { font-size: 11px; margin-right: 4px; }
.headsel button.on { background: #08519c; color: #fff; }
"""

# hover values read back from the heatmap's own pixels; a head selector; open/close all
SCRIPT = """
(function () {
  var labels = JSON.parse(document.getElementById('labels').textContent);
  var pal = JSON.parse(document.getElementById('palettes').textContent), N = pal.levels;
  var look = {};
  Object.keys(pal.maps).forEach(function (k) {
    look[k] = {}; pal.maps[k].forEach(function (c, i) { look[k][c.join(',')] = i; });
  });
  var tip = document.createElement('div'); tip.className = 'tip'; document.body.appendChild(tip);
  function pixels(img) {
    if (!img._px) {
      var c = document.createElement('canvas'); c.width = img.naturalWidth;
      c.height = img.naturalHeight; var x = c.getContext('2d'); x.drawImage(img, 0, 0);
      img._px = x.getImageData(0, 0, c.width, c.height).data;
    }
    return img._px;
  }
  function value(img, lvl) {
    if (lvl === undefined || lvl >= N) return 'no value';
    var t = lvl / (N - 1), lo = +img.dataset.lo, hi = +img.dataset.hi, k = img.dataset.k;
    var v = k === 'div' ? (2 * t - 1) * hi : k === 'seq' ? lo + t * (hi - lo)
                        : Math.pow(10, lo + t * (hi - lo));
    return '\\u2248 ' + v.toPrecision(3);
  }
  document.addEventListener('mousemove', function (e) {
    var img = e.target;
    if (!img.classList || !img.classList.contains('hm')) { tip.style.display = 'none'; return; }
    var r = img.getBoundingClientRect(), W = img.naturalWidth, H = img.naturalHeight;
    var col = Math.min(W - 1, Math.floor((e.clientX - r.left) / r.width * W));
    var row = Math.min(H - 1, Math.floor((e.clientY - r.top) / r.height * H));
    var d = pixels(img), o = 4 * (row * W + col);
    var lvl = look[img.dataset.k][d[o] + ',' + d[o + 1] + ',' + d[o + 2]];
    var rl = img.dataset.r ? labels[img.dataset.r][row] : 'row ' + row;
    var cl = img.dataset.c ? labels[img.dataset.c][col] : 'column ' + col;
    tip.textContent = rl + '  /  ' + cl + ':  ' + value(img, lvl);
    tip.style.left = (e.pageX + 14) + 'px'; tip.style.top = (e.pageY + 12) + 'px';
    tip.style.display = 'block';
  });
  document.querySelectorAll('.heads').forEach(function (box) {
    var heads = box.querySelectorAll(':scope > .head'), bar = document.createElement('div');
    bar.className = 'headsel'; bar.textContent = 'show head: ';
    function show(h, b) {
      heads.forEach(function (x) {
        x.style.display = (h < 0 || +x.dataset.head === h) ? '' : 'none';
      });
      bar.querySelectorAll('button').forEach(function (y) { y.classList.toggle('on', y === b); });
    }
    [-1].concat(Array.from(heads, function (x) { return +x.dataset.head; })).forEach(function (h) {
      var b = document.createElement('button'); b.textContent = h < 0 ? 'all' : h;
      b.onclick = function () { show(h, b); }; bar.appendChild(b);
    });
    box.insertBefore(bar, box.firstChild); show(-1, bar.firstChild.nextSibling);
  });
  var tools = document.getElementById('tools');
  [['open every stage', true], ['fold everything', false]].forEach(function (a) {
    var b = document.createElement('button'); b.textContent = a[0];
    b.onclick = function () {
      document.querySelectorAll('details').forEach(function (d) { d.open = a[1]; });
    };
    tools.appendChild(b);
  });
})();
"""


def _caps(traces) -> tuple[int, int]:
    """(positions, features) drawn per heatmap: everything, unless the heatmaps of a trace
    would exceed CELL_BUDGET cells; then fewer features, then fewer positions."""
    def cells(P, F):
        worst = 0
        for t in traces:
            c = t.config
            p, C, L, nh = min(len(t.prompt_ids), P), c["n_embd"], c["n_layer"], c["n_head"]
            fc, f4, fv = min(C, F), min(4 * C, F), min(c["vocab_size"], F)
            worst = max(worst, p * (fc * (4 + 10 * L) + 2 * L * f4 + fv) + 2 * L * nh * p * p)
        return worst
    P, F = 64, 512
    while cells(P, F) > CELL_BUDGET and F > 64:
        F //= 2
    while cells(P, F) > CELL_BUDGET and P > 16:
        P = P * 3 // 4
    return P, F


# ----------------------------------------------------------------------------- sections
def _title(number: int, kind: str) -> str:
    return stage_name(number, kind).replace("->", "→")


def _stage_summary(number: int, views) -> str:
    parts = []
    for v in views:
        layers = ([v.t.stage(number, layer=i) for i in range(v.t.config["n_layer"])]
                  if number in (6, 7, 8) else None)
        parts.append(_named(v, views, summary(number, v.t, layers)))
    verdict = _verdicts(views[0], number)
    return (f'<span class="num">{number}</span><span class="name">'
            f'{esc(_title(number, views[0].kind))}</span> <span class="sum">— '
            + " &nbsp;|&nbsp; ".join(parts) + f"</span>{verdict}")


def _named(v: View, views, text: str) -> str:
    """A summary, headed by its trace's name when two traces share the line."""
    return text if len(views) == 1 else f"<b>{esc(v.name)}</b>: {text}"


def _verdicts(v: View, number: int) -> str:
    """' ✓ gradients agree' when every output of the stage passed its finite differences."""
    checks = [c for s in v.t.stages if s.step == 0 and s.number == number
              for c in s.checks.values()]
    if not checks:
        return ""
    bad = [c.name for c in checks if not c.ok]
    return (' <small class="ok">✓ gradients agree</small>' if not bad else
            f' <small class="bad">✗ gradients disagree at {esc(", ".join(bad))}</small>')


def _layer_summary(v: View, number: int, layer: int) -> str:
    d = v.t.stage(number, layer=layer).data
    if number == 6:
        w = d["weights"][:, -1].mean(0)
        i = int(w.argmax())
        return (f"the last token attends most to #{i} {esc(label(v.t.tokens[i], 12))} "
                f"(weight {w[i]:.2f}, mean over heads); ln_1 input std "
                f"{d['ln_in_std'].min():.3g}–{d['ln_in_std'].max():.3g}")
    if number == 7:
        return (f"{d['negative_fraction']:.0%} of c_fc negative before GELU; |GELU out| "
                f"{np.linalg.norm(d['mlp.gelu'], axis=-1).mean():.3g} on average")
    return (f"|x| of the last token {d['norm_in'][-1]:.3g} → {d['norm_after_attn'][-1]:.3g} → "
            f"{d['norm_after_mlp'][-1]:.3g}")


def _one_body(v: View, number: int) -> str:
    if number not in (6, 7, 8):
        return stage_body(v, number) + grad_block(v, number)
    return "".join(
        f'<details class="layer" id="{_id(v, number)}-{i}"><summary>layer {i}: '
        f"{_layer_summary(v, number, i)}</summary>{stage_body(v, number, i)}"
        f"{grad_block(v, number, i)}</details>" for i in range(v.t.config["n_layer"]))


def _id(v: View, number) -> str:
    return f"{v.tag}stage-{number}"


def _stage(number: int, views) -> str:
    body = [f'<p class="intro">{intro(number, views[0].t, views[0].kind)}</p>']
    if len(views) == 1:
        body.append(_one_body(views[0], number))
    else:
        body.append('<div class="pair">' + "".join(
            f"<div><b>{esc(v.name)}</b>{_one_body(v, number)}</div>" for v in views) + "</div>")
    return (f'<details class="stage" id="stage-{number}" data-stage="{number}">'
            f"<summary>{_stage_summary(number, views)}</summary>"
            f'<div class="body">{"".join(body)}</div></details>')


def _header(v: View) -> str:
    t, c = v.t, v.t.config
    d12 = t.stage(12).data
    toks = "".join(chip(x) for x in t.tokens[:v.T])
    more = "".join(chip(x) for x in t.tokens[v.T + 1:])
    first = f'<span class="tok chosen">{esc(label(d12["chosen_token"]))}</span>'
    kind = "character" if v.kind == "char" else "BPE"
    return (f"<p><b>{esc(v.name)}</b>: GPT with {c['n_layer']} layers, {c['n_head']} heads of "
            f"{c['n_embd'] // c['n_head']}, width n_embd {c['n_embd']}, context {c['block_size']}"
            f" tokens, vocabulary {c['vocab_size']} ({kind} tokenizer).</p>"
            f"<p>The prompt, {v.T} tokens: {toks} → next token {first} "
            f"(p {d12['chosen_prob']:.3f}){' then ' + more if more else ''}</p>"
            + "".join(f'<p class="note">{esc(n)}</p>' for n in t.notes))


def _how_to_read(views) -> str:
    v = views[0]
    sampled = ""
    c = v.t.config
    if v.rows_note or v.page.max_cols < max(4 * c["n_embd"], c["vocab_size"]):
        sampled = (" This model is large, so heatmaps show a sample of the positions or "
                   "features; each caption says which.")
    return ("<p>Each numbered stage is folded: its line gives the essential numbers; click it "
            "to open the pictures. In heatmaps each row is a token of the prompt (· is a space, "
            "⏎ a newline); colours follow the legend under each picture, and scales shared "
            "across layers say so, so layers can be compared. Hovering a heatmap shows its "
            f"values.{sampled}</p>")


def _nav(views) -> str:
    kind = views[0].kind
    links = [f'<a href="#stage-{n}">{n} {esc(_title(n, kind))}</a>' for n in range(1, 13)]
    links += ['<a href="#generated">generated tokens</a>', '<a href="#backward">backward</a>']
    return "<nav>" + " · ".join(links) + '</nav><div id="tools" class="tools"></div>'


# ----------------------------------------------------------------------------- generated tokens
def _step_rows(v: View) -> str:
    rows = []
    for step in range(1, v.t.n_steps):
        d = v.t.stage(12, step=step).data
        read = v.t.stage(1, step=step).data["text"]
        alts = ", ".join(f"{chip(r['token'], limit=10)} {r['prob']:.2f}" for r in d["top"]
                         if not r["chosen"])
        rows.append(
            f'<details class="stage step" data-step="{step}"><summary><span class="steprow">'
            f"<span>step {step}</span><span>reads {chip(read, limit=14)}</span>"
            f'<span>→ <span class="tok chosen">{esc(label(d["chosen_token"], 14))}</span></span>'
            f"<span>p {d['chosen_prob']:.3f}</span><span>others: {alts}</span>"
            f"<span>entropy {entropy(d['probs']):.2f}</span></span></summary>"
            f'<div class="body">{_step_body(v, step)}</div></details>')
    if not rows:
        return "<p>No further steps (max_new_tokens ≤ 1, or generation stopped).</p>"
    return "".join(rows)


def _step_body(v: View, step: int) -> str:
    """The full pass of a generated token, compactly: one row per layer in each picture."""
    t, L = v.t, v.t.config["n_layer"]

    def g(n, layer=None):
        return t.stage(n, step=step, layer=layer).data
    ctx = g(3)["ids"]
    at = [g(6, i) for i in range(L)]
    fw = [g(7, i) for i in range(L)]
    rs = [g(8, i) for i in range(L)]
    layer_names = [f"layer {i}" for i in range(L)]
    lkey = v.page.labels_key(layer_names)
    rows = np.arange(L)

    def stack(key, src):
        return np.concatenate([d[key] for d in src])        # (L, features)
    emb = np.concatenate([g(4)["tok_emb"], g(5)["pos_emb"], g(5)["emb"]])
    ekey = v.page.labels_key(["wte row", "wpe row", "sum"])
    out = [f"<p>{_reads(t, step)}</p>",
           v.strips([v.fmap(emb, "emb", "stages 4-5: embeddings", rows=np.arange(3),
                            row_names=ekey)], ["wte row", "wpe row", "sum"])]
    feats = [v.fmap(stack("ln_1", at), "ln", "ln_1", rows, lkey),
             v.fmap(np.concatenate([d["attn.q"] for d in at], axis=1), "qk", "q", rows, lkey),
             v.fmap(stack("attn.c_proj", at), "write", "attention adds", rows, lkey),
             v.fmap(stack("mlp.c_fc", fw), "hidden", "c_fc", rows, lkey),
             v.fmap(stack("mlp.gelu", fw), "hidden", "GELU", rows, lkey),
             v.fmap(stack("mlp.c_proj", fw), "write", "MLP adds", rows, lkey),
             v.fmap(stack("resid_mlp", rs), "stream", "stream after the block", rows, lkey)]
    out.append('<p class="strip-title">stages 6-8, one row per layer</p>'
               + v.strips(feats, layer_names))
    # attention of this token over the keys it sees, every head of every layer
    w = np.concatenate([d["weights"][:, -1] for d in at])     # (L * nh, K)
    K = w.shape[1]
    keys = [t.tokens[i] for i in range(len(ctx) - K, len(ctx))]
    cols, note = pick(K, 2 * v.page.max_rows)
    names = [f"L{i} h{h}" for i in range(L) for h in range(at[0]["weights"].shape[0])]
    att = heatmap(v.page, v.scales["weights"].levels(w[:, cols]), v.scales["weights"],
                  "attention weights of this token over the keys it sees",
                  v.rh, v.rh, v.page.labels_key(names), cols=[keys[c] for c in cols],
                  cols_key=v.page.labels_key([f"#{len(ctx) - K + c} {label(keys[c])}"
                                              for c in cols]), note=note and f"keys: {note}")
    out.append(v.strips([(att, len(cols) * v.rh)], names))
    lens = " → ".join(f"{esc(e['layer'])} {chip(e['top'][-1][0][1], limit=12)}"
                      for e in g(9)["logit_lens"])
    d11, d12 = g(11), g(12)
    out.append(f"<p>Stage 9, logit lens: {lens}</p>"
               + logit_bars(d11["logits"][-1], d11["top_last"], d12["chosen"],
                            d12["chosen_token"]) + prob_bars(d12))
    return "".join(out)


def _reads(t, step: int) -> str:
    """Stages 1-3 of a generated token's pass, in one sentence."""
    d1, d3 = t.stage(1, step=step).data, t.stage(3, step=step).data
    n, block = len(d3["ids"]), t.config["block_size"]
    window = (f"; the text is longer than the model's {block} positions, so this pass re-reads "
              f"the last {block} tokens" if n > block else
              "; the keys and values of the earlier positions come from the cache")
    return (f"Stages 1-3: this pass reads {chip(d1['text'])} (bytes "
            f"{bytes(d1['bytes']).hex(' ')}, id {d3['new_id']}, drawn at step {step - 1}), "
            f"token {n} of the text{window}.")


# ----------------------------------------------------------------------------- backward
def _backward_summary(v: View) -> str:
    b = v.t.backward
    if b is None:
        return "no backward (forward only)"
    n, bad = len(b.checks), b.first_disagreement
    checks = ("" if not n else f"; finite differences agree at all {n} stage outputs"
              if bad is None else f"; <b class='bad'>first disagreement: {esc(bad)}</b>")
    return f"loss {b.loss:.4f} = {esc(b.description)}{checks}"


def _backward_body(v: View) -> str:
    b, t = v.t.backward, v.t
    if b is None:
        return "<p>No target was given: forward only.</p>"
    names = list(reversed(list(b.grad_norms)))
    total = np.array([np.sqrt((np.asarray(b.grad_norms[n], dtype=np.float64) ** 2).sum())
                      for n in names])
    stream = np.where([n == "emb" or n.endswith(("resid_attn", "resid_mlp")) for n in names],
                      total, np.nan)
    depth = lines({"residual stream": stream, "every stage output": total}, names,
                  "|d loss / d h| of each stage output (its whole tensor), walking back from "
                  "the loss (left) to the embeddings (right), on a log scale",
                  log=True, width=min(v.page.width - 40, 1100), colours=["#e31a1c", "#aaa"])
    norms = np.array([b.grad_norms[n][v.rows] for n in names])
    heat = heatmap(v.page, v.scales["grad"].levels(norms), v.scales["grad"],
                   "|d loss / d h| per position, every stage output", v.rh, v.rh,
                   v.page.labels_key(names), cols=v.row_labels, cols_key=v.rows_key,
                   note=v.rows_note and f"positions: {v.rows_note}")
    sal = np.asarray(b.saliency)
    top = float(np.abs(sal).max()) or 1.0
    chips = "".join(
        f'<span class="tok" style="background:{_div_colour(x / top)}" title="{x:+.4g}">'
        f"{esc(label(t.tokens[i]))}</span>" for i, x in enumerate(sal))
    order = np.argsort(-np.abs(sal))[:5]
    strongest = ", ".join(f"{chip(t.tokens[i])} {sal[i]:+.3g}" for i in order)
    rows = "".join(
        f"<tr><td>{esc(n)}</td><td class='{'ok' if c.ok else 'bad'}'>"
        f"{'agree' if c.ok else 'disagree'}</td><td>{c.max_abs_error:.1e}</td>"
        f"<td>{c.scale:.2g}</td><td>{_maybe(c.float32_rel_diff)}</td></tr>"
        for n, c in ((n, b.checks[n]) for n in names if n in b.checks))
    fd = ("" if not rows else
          f"<details><summary>finite-difference checks of all {len(b.checks)} stage outputs"
          "</summary><table class='t'><tr><th>stage output</th><th>float64 finite differences"
          "</th><th>max |error|</th><th>largest |gradient|</th><th>float32 vs float64 "
          f"(relative)</th></tr>{rows}</table></details>")
    return (f'<p class="intro">The backward pass walks the gradient of the loss back through '
            f"every stage. Here the loss is {esc(b.description)}. A gradient says how a small "
            "change of a stage's output would change the loss; each one is checked against "
            "float64 finite differences (a few elements nudged through the real forward). "
            "Yellow to dark red are gradient sizes on one log scale across depth, so gradients "
            "that vanish or explode with depth show as a trend; grey is exactly 0 (a position "
            "the loss cannot see: with one target, the last block matters only at the last "
            "position).</p>"
            + depth + v.strips([(heat, len(v.rows) * v.rh)], names)
            + "<p><b>Gradient × input saliency</b> of each prompt token (the sum over its "
              "embedding of gradient × value): blue lowers the loss (pushes towards the target), "
              f"red raises it.</p><p>{chips}</p><p>Strongest: {strongest}</p>"
            + "<p><b>Parameter gradient norms</b> (log colour scale):</p>" + param_table(v) + fd)


def _maybe(x) -> str:
    return "" if x is None else f"{x:.1e}"


def _div_colour(x: float) -> str:
    """The CSS colour of x in [-1, 1] on the signed colour map."""
    rgb = palette("div")[Scale("div", 0.0, 1.0).levels([x])[0]]
    return f"rgb({rgb[0]},{rgb[1]},{rgb[2]})"


def _section(key: str, title: str, views, summary_fn, body_fn, open_=False) -> str:
    summary = " &nbsp;|&nbsp; ".join(_named(v, views, summary_fn(v)) for v in views)
    body = body_fn(views[0]) if len(views) == 1 else (
        '<div class="pair">' + "".join(f"<div><b>{esc(v.name)}</b>{body_fn(v)}</div>"
                                       for v in views) + "</div>")
    return (f'<details class="stage" id="{key}"{" open" if open_ else ""}><summary>'
            f'<span class="name">{title}</span> <span class="sum">— {summary}</span></summary>'
            f'<div class="body">{body}</div></details>')


# ----------------------------------------------------------------------------- page
def render(a: TokenTrace, b: TokenTrace | None = None) -> str:
    """The page for one trace, or two side by side (two checkpoints, or two prompts): stage
    by stage, aligned, every picture on scales shared by both."""
    traces = [a] if b is None else [a, b]
    rows, cols = _caps(traces)
    page = Page(1300 if b is None else 640, rows, cols)
    scales = shared_scales(traces)
    views = [View(t, page, scales, t.label or "trace") if b is None else
             View(t, page, scales, t.label or f"trace {'ab'[i]}", f"t{i}-")
             for i, t in enumerate(traces)]
    heads = "".join(_header(v) for v in views)
    body = [f"<h1>The life of a token</h1>{heads}{_how_to_read(views)}{_nav(views)}",
            "<h2>The prompt, stage by stage</h2>"]
    body += [_stage(n, views) for n in range(1, 13)]
    body.append('<h2 id="generated">Generated tokens, one forward pass each</h2>')
    if b is None:
        body.append(_step_rows(views[0]))
    else:
        body.append('<div class="pair">' + "".join(f"<div><b>{esc(v.name)}</b>{_step_rows(v)}"
                                                   "</div>" for v in views) + "</div>")
    body.append("<h2>The gradient walking back</h2>")
    body.append(_section("backward", "backward", views, _backward_summary, _backward_body))
    palettes = {"levels": LEVELS, "maps": {k: palette(k)[:LEVELS].tolist() for k in COLOURMAPS}}
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>The life of a token: {esc(a.text[:40])}</title><style>{CSS}</style>"
            "</head><body>" + "\n".join(body)
            + f'<script type="application/json" id="labels">{page.labels_json()}</script>'
            + f'<script type="application/json" id="palettes">{json.dumps(palettes)}</script>'
            + f"<script>{SCRIPT}</script></body></html>\n")
