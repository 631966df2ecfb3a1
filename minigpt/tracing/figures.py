"""The pictures of the trace page: heatmaps (inline PNG), legends, bars, line charts, tables.

Every picture explains itself: a heatmap carries its colour legend (the scale it shares, and
with what), its axis labels are token texts (spaces as ·, newlines as ⏎), and sampled rows or
columns are said in its caption. Values are coloured on a ``Scale``: signed ("div", -hi..hi),
magnitudes ("seq", lo..hi) or gradient sizes on a log scale ("log", lo..hi in powers of ten).
"""
from __future__ import annotations

import html
import json
from dataclasses import dataclass

import numpy as np

from .png import GAP, LEVELS, MISSING, css_gradient, data_uri, palette, png

__all__ = ["esc", "label", "Scale", "Page", "pick", "heatmap", "strip", "legend", "bars",
           "lines", "sparkline", "colour_table", "with_gaps"]


def esc(s) -> str:
    return html.escape(str(s), quote=True)


def label(text: str, limit: int | None = None) -> str:
    """A token's text as an axis label: spaces as ·, newlines as ⏎, tabs as ⇥, other control
    characters as \\xNN; cut to ``limit`` characters (with …).

    >>> label(" the\\n")
    '·the⏎'
    """
    out = []
    for c in text:
        out.append({" ": "·", "\n": "⏎", "\t": "⇥", "\r": "␍"}.get(c) or
                   (c if c.isprintable() else f"\\x{ord(c):02x}"))
    s = "".join(out) or "∅"
    return s if limit is None or len(s) <= limit else s[:limit - 1] + "…"


# ----------------------------------------------------------------------------- scales
@dataclass(frozen=True)
class Scale:
    """How values become colours. ``shared`` says which pictures use this same scale."""
    kind: str            # "div": -hi..hi, "seq": lo..hi, "log": 10^lo..10^hi of |v|
    lo: float
    hi: float
    shared: str = ""
    clipped: bool = False   # some values lie beyond the ends (drawn at full colour)

    @classmethod
    def fit(cls, kind: str, arrays, shared: str = "", pct: float = 99.5) -> "Scale":
        """A scale for all of ``arrays``: signed and magnitude scales end at the pct-th
        percentile of |v| (a few outliers would wash everything else out; they saturate);
        log scales span the nonzero |v| down to 10^-6 of the largest."""
        flat = np.concatenate([np.abs(np.asarray(a, dtype=np.float64)).ravel() for a in arrays])
        flat = flat[np.isfinite(flat)]
        if kind == "log":
            nz = flat[flat > 0]
            hi = float(np.log10(nz.max())) if nz.size else 0.0
            lo = max(float(np.log10(nz.min())) if nz.size else hi - 1, hi - 6)
            return cls("log", np.floor(lo), np.ceil(hi) if np.ceil(hi) > lo else lo + 1, shared)
        top = float(np.percentile(flat, pct)) if flat.size else 1.0
        top = top if top > 0 else (float(flat.max()) if flat.size and flat.max() > 0 else 1.0)
        clipped = bool(flat.size and flat.max() > top * 1.0001)
        return cls(kind, 0.0, float(f"{top:.3g}"), shared, clipped)

    def levels(self, a) -> np.ndarray:
        """Palette indices (uint8) of the values ``a``."""
        a = np.asarray(a, dtype=np.float64)
        bad = ~np.isfinite(a)
        a = np.where(bad, 0.0, a)
        if self.kind == "div":
            t = (a / self.hi + 1) / 2
        elif self.kind == "seq":
            t = (a - self.lo) / ((self.hi - self.lo) or 1.0)
        else:
            bad |= a == 0
            t = (np.log10(np.where(a == 0, 1.0, np.abs(a))) - self.lo) / (self.hi - self.lo)
        idx = np.clip(np.round(t * (LEVELS - 1)), 0, LEVELS - 1).astype(np.uint8)
        idx[bad] = MISSING
        return idx

    def ends(self) -> tuple[str, str, str]:
        """The legend's labels: left end, middle, right end."""
        if self.kind == "div":
            return f"−{self.hi:.3g}", "0", f"+{self.hi:.3g}"
        if self.kind == "seq":
            return f"{self.lo:.3g}", "", f"{self.hi:.3g}"
        mid = (self.lo + self.hi) / 2                     # a power of ten, when whole
        return f"1e{self.lo:.0f}", f"1e{mid:.0f}" if mid == int(mid) else "", f"1e{self.hi:.0f}"


def legend(scale: Scale, what: str = "") -> str:
    """A small colour bar with its end values, and what shares the scale."""
    left, mid, right = scale.ends()
    extra = []
    if scale.clipped:
        extra.append("beyond: full colour")
    if scale.kind == "log":
        extra.append("grey: exactly 0")
    if scale.shared:
        extra.append(f"scale shared by {scale.shared}")
    return (f'<span class="legend">{esc(what)} <span class="lg-end">{left}</span>'
            f'<span class="lg-bar" style="background:{css_gradient(scale.kind)}">'
            f'<i>{mid}</i></span><span class="lg-end">{right}</span></span>'
            + (f'<br><small class="shared">{esc("; ".join(extra))}</small>' if extra else ""))


# ----------------------------------------------------------------------------- sampling
def pick(n: int, cap: int) -> tuple[np.ndarray, str]:
    """Indices of at most ``cap`` of n rows or columns, evenly spaced and always with the
    last one, and a note saying so ("" when all are kept).

    >>> pick(10, 4)
    (array([0, 3, 6, 9]), '4 of 10, evenly spaced')
    """
    if n <= cap:
        return np.arange(n), ""
    idx = np.unique(np.linspace(0, n - 1, cap).round().astype(int))
    return idx, f"{len(idx)} of {n}, evenly spaced"


def with_gaps(parts: list) -> np.ndarray:
    """Arrays (rows, k) joined side by side with one GAP column between them, as indices."""
    out = []
    for i, p in enumerate(parts):
        if i:
            out.append(np.full((p.shape[0], 1), GAP, np.uint8))
        out.append(p)
    return np.hstack(out)


# ----------------------------------------------------------------------------- heatmaps
class Page:
    """What the pictures of one page share: the label lists (stored once, read by the hover
    script), the width available to one trace's figures, and the sampling caps."""

    def __init__(self, width: int, max_rows: int, max_cols: int):
        self.width, self.max_rows, self.max_cols = width, max_rows, max_cols
        self._labels: dict[tuple, str] = {}

    def labels_key(self, labels) -> str:
        key = tuple(labels)
        if key not in self._labels:
            self._labels[key] = f"L{len(self._labels)}"
        return self._labels[key]

    def labels_json(self) -> str:
        data = {k: list(v) for v, k in self._labels.items()}
        return json.dumps(data, ensure_ascii=False).replace("</", "<\\/")


def _axis(labels, cell: int, vertical: bool, limit: int = 10, tokens: bool = True) -> str:
    """Row labels (right-aligned, one per row) or column labels (written upwards): token
    texts (spaces and newlines made visible) or, with tokens=False, names as they are; when
    the cells are smaller than a line of text, every k-th label spans k cells."""
    k = max(1, -(-9 // cell))
    spans = "".join(f"<span>{esc(label(labels[i], limit) if tokens else labels[i])}</span>"
                    for i in range(0, len(labels), k))
    return f'<div class="{"cl" if vertical else "rl"}" style="--c:{cell * k}px">{spans}</div>'


def heatmap(page: Page, indices, scale: Scale, title: str, rh: int, cw: int,
            rows_key: str = "", cols: list | None = None, cols_key: str = "",
            note: str = "", show_legend: bool = True) -> str:
    """One heatmap figure: an image of palette ``indices`` (scale.levels of the values, maybe
    with gaps), cells rh x cw px, optional column labels (token texts), a caption with the
    legend and a sampling ``note``. Row labels are drawn by ``strip``."""
    idx = np.asarray(indices, dtype=np.uint8)
    if idx.ndim == 1:
        idx = idx[None]
    h, w = idx.shape
    uri = data_uri(png(idx, palette(scale.kind)))
    attrs = (f'data-k="{scale.kind}" data-lo="{scale.lo:.6g}" data-hi="{scale.hi:.6g}"'
             + (f' data-r="{rows_key}"' if rows_key else "")
             + (f' data-c="{cols_key}"' if cols_key else ""))
    img = (f'<img class="hm" src="{uri}" width="{w * cw}" height="{h * rh}" {attrs} '
           f'alt="{esc(title)}">')
    top = _axis(cols, cw, True) if cols else ""
    cap = (f'<b>{esc(title)}</b>' + (f' <span class="note">{esc(note)}</span>' if note else "")
           + (f"<br>{legend(scale)}" if show_legend else ""))
    return (f'<figure class="hm" style="width:{max(w * cw, 200)}px">{top}{img}'
            f"<figcaption>{cap}</figcaption></figure>")


def strip(row_labels, figures: list, rh: int, limit: int = 10, tokens: bool = True) -> str:
    """Heatmaps side by side that share their rows, labelled once: by tokens (``limit``
    characters each) or, with tokens=False, by names (layers, stage outputs)."""
    pad = ' style="padding-top:62px"' if any('class="cl"' in f for f in figures) else ""
    return (f'<div class="strip"><div class="rlw"{pad}>'
            f'{_axis(row_labels, rh, False, limit, tokens)}</div>{"".join(figures)}</div>')


# ----------------------------------------------------------------------------- SVG charts
def bars(labels, values, title: str = "", highlight=(), second=None, width: int = 260,
         colour: str = "#2171b5", fmt: str = "{:.3g}", notes=None) -> str:
    """Horizontal bars of true values (negative ones to the left of a zero line); rows in
    ``highlight`` shaded; ``second``: a thin orange bar per row (e.g. after a filter);
    ``notes``: text after each value."""
    values = np.asarray(values, dtype=np.float64)
    lo = min(0.0, float(values.min(initial=0)))
    hi = max(0.0, float(values.max(initial=0)), float(np.max(second, initial=0))
             if second is not None else 0.0)
    span = (hi - lo) or 1.0
    left = 12 + 7 * max((len(lb) for lb in labels), default=1)
    zero = left + width * (-lo) / span
    row, right = 17, 150
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + right}" '
             f'height="{row * len(labels) + 8}" font-family="monospace" font-size="11">']
    for i, (lb, v) in enumerate(zip(labels, values)):
        y = 4 + i * row
        if i in highlight:
            parts.append(f'<rect x="0" y="{y - 2}" width="{left + width + right}" '
                         f'height="{row}" fill="#ffe8a3"/>')
        x0, x1 = sorted((zero, zero + width * v / span))
        parts.append(f'<text x="{left - 5}" y="{y + 10}" text-anchor="end" '
                     f'xml:space="preserve">{esc(lb)}</text>'
                     f'<rect x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 0.5):.1f}" '
                     f'height="{row - 5}" fill="{colour}"><title>{v:.6g}</title></rect>')
        if second is not None:
            parts.append(f'<rect x="{zero:.1f}" y="{y + row - 7}" '
                         f'width="{width * second[i] / span:.1f}" height="3" fill="#f28e2b"/>')
        text = fmt.format(v) + (f"  {notes[i]}" if notes and notes[i] else "")
        parts.append(f'<text x="{max(x1, zero) + 4:.1f}" y="{y + 10}">{esc(text)}</text>')
    parts.append(f'<line x1="{zero:.1f}" y1="0" x2="{zero:.1f}" '
                 f'y2="{row * len(labels) + 4}" stroke="#555"/></svg>')
    return f'<figure class="chart">{"".join(parts)}<figcaption>{title}</figcaption></figure>'


def lines(series: dict, xlabels, title: str = "", log: bool = False, width: int = 560,
          height: int = 150, colours=None, points: bool = True) -> str:
    """One line per series over x (positions, layers, stages); ``log``: a log10 y-axis with a
    gridline per power of ten. ``points``: dots that give their value on hover."""
    n = len(xlabels)
    vals = {k: np.asarray(v, dtype=np.float64) for k, v in series.items()}
    allv = np.concatenate(list(vals.values()))
    allv = allv[np.isfinite(allv) & ((allv > 0) if log else True)]
    f = (lambda v: np.log10(v)) if log else (lambda v: v)
    lo = np.floor(f(allv.min())) if log else min(0.0, float(allv.min(initial=0)))
    hi = np.ceil(f(allv.max())) if log else float(allv.max(initial=1)) or 1.0
    hi = hi if hi > lo else lo + 1
    left, top, bottom = 52, 18, 80
    dx = (width - left - 8) / max(n, 1)
    xs = [left + (i + 0.5) * dx for i in range(n)]

    def y(v):
        return top + height * (1 - (f(v) - lo) / (hi - lo))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
             f'height="{top + height + bottom}" font-family="monospace" font-size="10">']
    ticks = (range(int(lo), int(hi) + 1) if log else [lo, (lo + hi) / 2, hi])
    for tk in ticks:
        ty = top + height * (1 - (tk - lo) / (hi - lo))
        text = f"1e{tk}" if log else f"{tk:.3g}"
        parts.append(f'<line x1="{left}" y1="{ty:.1f}" x2="{width - 4}" y2="{ty:.1f}" '
                     f'stroke="#e4e4e4"/><text x="{left - 4}" y="{ty + 3:.1f}" '
                     f'text-anchor="end">{text}</text>')
    colours = colours or ["#2171b5", "#f28e2b", "#1a7f37", "#b2182b", "#6f42c1"]
    for k, (name, v) in enumerate(vals.items()):
        c = colours[k % len(colours)]
        ok = [i for i in range(n) if np.isfinite(v[i]) and (v[i] > 0 or not log)]
        pts = " ".join(f"{xs[i]:.1f},{y(v[i]):.1f}" for i in ok)
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{c}" stroke-width="1.6"/>')
        if points:
            parts += [f'<circle cx="{xs[i]:.1f}" cy="{y(v[i]):.1f}" r="2.2" fill="{c}"><title>'
                      f'{esc(name)} at {esc(label(str(xlabels[i])))}: {v[i]:.4g}</title>'
                      "</circle>" for i in ok]
        parts.append(f'<text x="{left + 6 + 110 * k}" y="11" fill="{c}">■ {esc(name)}</text>')
    step = max(1, -(-n * 11 // (width - left)))
    for i in range(0, n, step):
        parts.append(f'<text x="{xs[i]:.1f}" y="{top + height + 10}" text-anchor="end" '
                     f'transform="rotate(-65 {xs[i]:.1f} {top + height + 10})" '
                     f'xml:space="preserve">{esc(label(str(xlabels[i]), 14))}</text>')
    parts.append("</svg>")
    return f'<figure class="chart">{"".join(parts)}<figcaption>{title}</figcaption></figure>'


def sparkline(values, width: int = 120, height: int = 22) -> str:
    """A tiny line of values (e.g. per position), its min and max as text after it."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return ""
    lo, hi = float(v.min()), float(v.max())
    span = (hi - lo) or 1.0
    xs = np.linspace(1, width - 1, v.size) if v.size > 1 else np.array([width / 2])
    pts = " ".join(f"{x:.1f},{height - 2 - (height - 4) * (a - lo) / span:.1f}"
                   for x, a in zip(xs, v))
    return (f'<svg class="spark" xmlns="http://www.w3.org/2000/svg" width="{width}" '
            f'height="{height}"><polyline points="{pts}" fill="none" stroke="#2171b5" '
            f'stroke-width="1.3"/></svg> <small>{lo:.3g}…{hi:.3g}</small>')


def colour_table(row_names, col_names, values, scale: Scale, fmt: str = "{:.2g}") -> str:
    """A table whose cells are coloured on ``scale`` and show their value (NaN: empty)."""
    colours = palette(scale.kind)
    head = "".join(f"<th>{esc(c)}</th>" for c in col_names)
    body = []
    for r, row in zip(row_names, values):
        cells = []
        for v in row:
            if v is None or not np.isfinite(v):
                cells.append("<td></td>")
                continue
            rgb = colours[int(scale.levels([v])[0])]
            ink = "#fff" if rgb.astype(int).sum() < 330 else "#000"
            cells.append(f'<td style="background:rgb({rgb[0]},{rgb[1]},{rgb[2]});color:{ink}">'
                         f"{fmt.format(v)}</td>")
        body.append(f"<tr><th>{esc(r)}</th>{''.join(cells)}</tr>")
    return f'<table class="t"><tr><th></th>{head}</tr>{"".join(body)}</table>'
