"""A TokenTrace as text (the terminal report) and as JSON values."""
from __future__ import annotations

import textwrap

import numpy as np

__all__ = ["text_report", "show", "fmt", "jsonable"]


# ----------------------------------------------------------------------------- text report
def fmt(a, n: int = 8) -> str:
    """The first n values of an array, 3 significant digits each."""
    a = np.asarray(a, dtype=np.float64).ravel()
    body = " ".join(f"{v:.3g}" for v in a[:n])
    return f"[{body}{' ...' if a.size > n else ''}]"


def text_report(t, width: int = 100) -> str:
    """A TokenTrace as text: every stage's summary line, step by step, then the backward."""
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
            lines.append(_wrap(f"   {name:<16} {fmt(b.grad_norms[name], 6)}{verdict}", width))
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
def jsonable(x, max_elements: int):
    """x with NumPy arrays and scalars made JSON values: arrays of more than max_elements
    values summarised (shape, min, max, mean, std), the others rounded to 5 significant
    digits, non-finite numbers as null."""
    if isinstance(x, dict):
        return {str(k): jsonable(v, max_elements) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v, max_elements) for v in x]
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
