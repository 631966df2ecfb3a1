"""See the graph: Graphviz DOT text for the graph behind a tensor.

Tensor nodes (boxes) show name, shape and dtype and, once a gradient is known,
its norm; op nodes (ellipses) show the op and the stage it was recorded in.
The graph must still exist: draw before backward(), or use ``backward_graph``,
which keeps every gradient and the graph for you.
"""
from __future__ import annotations

import numpy as np

from .autograd import _toposort_all
from .errors import GraphError
from .fileio import atomic_write
from .tensor import Tensor


def _label(t: Tensor, names: dict) -> str:
    real = t._real() if t._real is not None else None   # the graph keeps stand-ins of
    real = t if real is None else real                   # non-leaves: name the tensor itself
    name = names.get(id(real)) or real.name or ("leaf" if t.is_leaf else "")
    parts = [p for p in (name, f"{t.shape}", str(t.dtype)) if p]
    if t.grad is not None:
        parts.append(f"|grad| {float(np.linalg.norm(t.grad.numpy().astype(np.float64))):.4g}")
    return "\\n".join(parts).replace('"', "'")


def to_dot(root: Tensor, names: dict | None = None, title: str | None = None) -> str:
    """DOT text of root's graph. ``names`` maps tensors to labels (e.g. a
    module's named_parameters(): ``{p: name for name, p in model.named_parameters()}``)."""
    names = {id(k): v for k, v in (names or {}).items()}
    lines = ["digraph minigrad {", '  rankdir="BT";', '  node [fontname="Helvetica"];']
    if title:
        lines.append(f'  label="{title}";')
    for t in _toposort_all(root):
        tid = f"t{id(t)}"
        color = "lightblue" if t.is_leaf else "white"
        lines.append(f'  {tid} [shape=box, style=filled, fillcolor={color}, '
                     f'label="{_label(t, names)}"];')
        fn = t._ctx
        if fn is None:
            continue
        if fn.inputs is None:
            raise GraphError("to_dot: the graph was freed by backward(); draw before "
                             "backward or use viz.backward_graph(loss)")
        stage = getattr(fn, "stage", None)
        op_label = fn.name + (f"\\n[{stage}]" if stage else "")
        lines.append(f'  f{id(fn)} [shape=ellipse, label="{op_label}"];')
        lines.append(f"  f{id(fn)} -> {tid};")
        for inp in fn.inputs:
            lines.append(f"  t{id(inp)} -> f{id(fn)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def backward_graph(loss: Tensor, names: dict | None = None) -> str:
    """Run loss.backward() keeping every intermediate gradient, then return DOT text
    with the gradient norm on every node."""
    for t in _toposort_all(loss):
        if not t.is_leaf:
            t.retain_grad()
    loss.backward(retain_graph=True)
    return to_dot(loss, names)


def render(dot_text: str, path: str, fmt: str | None = None) -> str:
    """Render DOT text to SVG/PNG/PDF with Graphviz's ``dot`` program; the picture is
    written atomically (minigrad.fileio), never by ``dot`` itself."""
    import shutil       # (here: importing minigrad should not load subprocess)
    import subprocess
    exe = shutil.which("dot")
    if exe is None:
        raise RuntimeError("render: Graphviz's 'dot' program is not installed "
                           "(apt-get install graphviz); the DOT text itself needs nothing")
    fmt = fmt or str(path).rsplit(".", 1)[-1]
    picture = subprocess.run([exe, f"-T{fmt}"], input=dot_text.encode(), check=True,
                             stdout=subprocess.PIPE).stdout
    atomic_write(path, picture)
    return str(path)
