"""gradcheck: compare a function's backward with central finite differences.

For f: inputs -> outputs and a random cotangent v (never just ``.sum()``, which
hides bugs in softmax-like ops whose outputs always sum to a constant), the
analytic vector-Jacobian product ``v^T J`` from backward() must equal
``(<v, f(x + eps e_i)> - <v, f(x - eps e_i)>) / (2 eps)`` for every element i.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import autograd, backend
from .errors import DTypeError, GradcheckError
from .tensor import Tensor


@dataclass
class InputReport:
    """How one input's gradient compared: the worst element and its two values."""
    index: int
    shape: tuple
    max_abs_error: float
    worst_element: tuple
    analytic: float
    numeric: float
    ok: bool


@dataclass
class GradcheckResult:
    ok: bool
    inputs: list = field(default_factory=list)

    def __bool__(self):
        return self.ok

    def __str__(self):
        lines = ["gradcheck " + ("passed" if self.ok else "FAILED")]
        for r in self.inputs:
            lines.append(f"  input {r.index} shape {r.shape}: max |analytic - numeric| = "
                         f"{r.max_abs_error:.3g} at {r.worst_element} (analytic {r.analytic:.6g}, "
                         f"numeric {r.numeric:.6g}) {'ok' if r.ok else 'MISMATCH'}")
        return "\n".join(lines)


def _outputs(out):
    outs = out if isinstance(out, (tuple, list)) else (out,)
    for o in outs:
        if not isinstance(o, Tensor):
            raise TypeError(f"gradcheck: fn must return a Tensor or a tuple of Tensors, got "
                            f"{type(o).__name__}")
    return outs


def gradcheck(fn, inputs, *, eps=1e-6, atol=1e-6, rtol=1e-5, seed=0, raise_exception=True):
    """Check fn's gradients w.r.t. every input that requires grad.

    inputs: a Tensor or a sequence of Tensors (float64 for those requiring grad).
    Returns a GradcheckResult (truthy when all agree); raises GradcheckError naming
    the input and its worst element when they do not and raise_exception is True."""
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad; pass tensors created with "
                         "requires_grad=True")
    for i in checked:
        if inputs[i].dtype != np.float64:
            raise DTypeError(f"gradcheck: input {i} must be float64 for finite differences "
                             f"to be accurate, got {inputs[i].dtype}; use .double()")
    rng = np.random.default_rng(seed)
    outs = _outputs(fn(*inputs))
    cotangents = [rng.standard_normal(o.shape) for o in outs]

    # analytic: one backward of sum(v * f(x)) gives v^T J for every input at once
    saved_grads = [inputs[i].grad for i in checked]
    for i in checked:
        inputs[i].grad = None
    total = None
    for o, v in zip(outs, cotangents):
        if o.requires_grad:
            term = (o * Tensor._make(backend.to_device(v.astype(o.dtype), o.device), False)).sum()
            total = term if total is None else total + term
    analytic = {}
    if total is not None:
        total.backward()
    for i in checked:
        g = inputs[i].grad
        analytic[i] = g.numpy().astype(np.float64) if g is not None else np.zeros(inputs[i].shape)
    for i, g in zip(checked, saved_grads):
        inputs[i].grad = g

    def objective():
        with autograd.no_grad():
            return sum(float((o.numpy().astype(np.float64) * v).sum())
                       for o, v in zip(_outputs(fn(*inputs)), cotangents))

    result = GradcheckResult(ok=True)
    for i in checked:
        x = inputs[i]
        numeric = np.zeros(x.shape)
        for idx in np.ndindex(*x.shape):
            orig = float(x.array[idx])
            x.array[idx] = orig + eps
            plus = objective()
            x.array[idx] = orig - eps
            minus = objective()
            x.array[idx] = orig
            numeric[idx] = (plus - minus) / (2 * eps)
        err = np.abs(analytic[i] - numeric)
        excess = err - (atol + rtol * np.abs(numeric))
        worst = np.unravel_index(int(np.argmax(excess)), x.shape) if x.array.size else ()
        worst = tuple(int(w) for w in worst)
        report = InputReport(i, x.shape, float(err.max()) if err.size else 0.0, worst,
                             float(analytic[i][worst]) if err.size else 0.0,
                             float(numeric[worst]) if err.size else 0.0,
                             bool((excess <= 0).all()))
        result.inputs.append(report)
        result.ok &= report.ok
    if not result.ok and raise_exception:
        bad = next(r for r in result.inputs if not r.ok)
        raise GradcheckError(
            f"gradcheck: the gradient of input {bad.index} (shape {bad.shape}) disagrees with "
            f"finite differences; worst element {bad.worst_element}: analytic {bad.analytic:.8g} "
            f"vs numeric {bad.numeric:.8g} (tolerance atol={atol} + rtol={rtol} * |numeric|)\n"
            f"{result}")
    return result
