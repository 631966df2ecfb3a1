"""The engine: Function.apply records the graph, backward() walks it in reverse.

A Function works on raw arrays (NumPy or CuPy). The engine does everything that
is the same for every op, so each op stays a few lines:
- it checks that all inputs live on one device,
- it sums every returned gradient back to its input's shape (broadcasting),
- it orders the graph with an iterative topological sort (no recursion limit),
- it adds up the contributions of a tensor used several times (``a * a``),
- it frees each node's saved arrays right after its backward ran.
"""
from __future__ import annotations

import contextlib

import numpy as np

from . import backend
from .errors import AnomalyError, DeviceError, GraphError

OPS: dict[str, type] = {}   # name -> Function class; tests enumerate it

_grad_enabled = True
_anomaly_mode = False
_tensor_class = None    # minigrad.tensor.Tensor; tensor.py (which imports this module) sets it
_current_stage = None   # a label (e.g. "attention") that new graph nodes are tagged with


def register(cls):
    """Class decorator: put an op in the registry under its class name."""
    OPS[cls.__name__] = cls
    return cls


class Function:
    """One differentiable op. Subclasses define forward(*arrays, **consts) -> array
    and backward(grad) -> one gradient per tensor input (None where there is none).
    ``self.xp`` is the array module of the inputs; ``self.needs_grad[i]`` says whether
    input i wants a gradient, so backward can skip work."""

    differentiable = True

    @classmethod
    def apply(cls, *tensors, **consts):
        # (the hot path of every op: kept lean, it is most of the cost of tiny tensors)
        arrays = [t.array for t in tensors]
        first = arrays[0]
        kind = type(first)
        for t, a in zip(tensors, arrays):
            if type(a) is not kind and backend.device_of(a) != backend.device_of(first):
                raise DeviceError(
                    f"{cls.__name__}: expected all tensors on the same device, got "
                    f"{tensors[0].device} and {t.device}; move one with .to({tensors[0].device!r}) "
                    f"or .to({t.device!r}) before combining them")
        fn = cls()
        fn.xp = np if kind is np.ndarray else backend.get_array_module(first)
        if _current_stage is not None:
            fn.stage = _current_stage
        requires_grad = False
        if _grad_enabled and cls.differentiable:
            needs = [t.requires_grad for t in tensors]
            if True in needs:
                requires_grad, fn.needs_grad = True, needs
        out = fn.forward(*arrays, **consts)
        if isinstance(out, np.generic):   # NumPy turns 0-d results into scalars
            out = np.asarray(out)
        if _anomaly_mode:
            _check_finite(out, f"forward of {cls.__name__}", getattr(fn, "stage", None))
        result = _tensor_class._make(out, requires_grad)
        if requires_grad:   # non-leaf inputs by their data-less stand-ins (Tensor)
            fn.inputs = tuple(t if t._ctx is None else t._graph_stand_in() for t in tensors)
            result._ctx = fn
        return result

    def forward(self, *arrays, **consts):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, grad):  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def name(self) -> str:
        return type(self).__name__


def unbroadcast(grad, shape):
    """Sum ``grad`` down to ``shape``: the backward of NumPy broadcasting.
    (2, 3, 4) -> (3, 1): sum axis 0 (added leading dim) and axis 2 (stretched 1)."""
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


def _toposort(root):
    """Tensors that need a gradient, outputs before inputs (iterative DFS post-order)."""
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        fn = node._ctx
        if fn is not None:
            if fn.inputs is None:
                raise GraphError(
                    f"backward through a freed graph: the graph of {fn.name} was freed by an "
                    "earlier backward(); pass retain_graph=True to the first backward() to "
                    "backpropagate through it twice")
            for inp in fn.inputs:
                if inp.requires_grad and id(inp) not in visited:
                    stack.append((inp, False))
    order.reverse()
    return order


def _toposort_all(root):
    """Every tensor of root's graph, constants included (for drawing)."""
    order, seen, stack = [], set(), [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        order.append(node)
        if node._ctx is not None and node._ctx.inputs is not None:
            stack.extend(node._ctx.inputs)
    return order


def backward(root, grad, retain_graph=False):
    """Accumulate d(root)/d(leaf) * grad into every leaf's .grad.

    Leaves accumulate across calls (``.grad`` is added to, as in PyTorch; call
    zero_grad() between steps). Non-leaves keep no gradient unless retain_grad()."""
    from .tensor import Tensor
    grads = {id(root): grad}
    for node in _toposort(root):
        g = grads.pop(id(node), None)
        if g is None:
            continue
        if node._hooks:
            for hook in node._hooks:
                replaced = hook(Tensor._make(g, False))
                if replaced is not None:
                    g = replaced.array if isinstance(replaced, Tensor) else replaced
        fn = node._ctx
        if fn is None:  # a leaf: accumulate, owning the array (it may be shared)
            if node.grad is None:
                node.grad = Tensor._make(g.copy(), False)
            else:
                node.grad.array += g
            continue
        if node._retain_grad:
            node.grad = Tensor._make(g.copy(), False)
        real = node._real() if node._real is not None else None    # node is a stand-in
        if real is not None and real._retain_grad:
            real.grad = node.grad if node._retain_grad else Tensor._make(g.copy(), False)
        in_grads = fn.backward(g)
        if not isinstance(in_grads, tuple):
            in_grads = (in_grads,)
        if _anomaly_mode:
            for ig in in_grads:
                if ig is not None:
                    _check_finite(ig, f"backward of {fn.name}", getattr(fn, "stage", None))
        for inp, ig in zip(fn.inputs, in_grads):
            if ig is None or not inp.requires_grad:
                continue
            if ig.shape != inp.array.shape:
                ig = unbroadcast(ig, inp.array.shape)
            if ig.dtype != inp.array.dtype:
                ig = ig.astype(inp.array.dtype)
            key = id(inp)
            prev = grads.get(key)
            grads[key] = ig if prev is None else prev + ig
        if not retain_graph:  # free saved arrays now: memory goes back during backward
            fn.__dict__.clear()
            fn.inputs = None


# ----------------------------------------------------------------------------- modes
class no_grad(contextlib.ContextDecorator):
    """Context manager / decorator: ops record no graph inside it."""

    def __enter__(self):
        global _grad_enabled
        self._prev, _grad_enabled = _grad_enabled, False

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._prev


class enable_grad(contextlib.ContextDecorator):
    def __enter__(self):
        global _grad_enabled
        self._prev, _grad_enabled = _grad_enabled, True

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._prev


def is_grad_enabled() -> bool:
    return _grad_enabled


class detect_anomaly(contextlib.ContextDecorator):
    """Check every forward output and backward gradient for NaN/Inf and raise an
    AnomalyError naming the op (and its stage tag, when the op carries one)."""

    def __enter__(self):
        global _anomaly_mode
        self._prev, _anomaly_mode = _anomaly_mode, True

    def __exit__(self, *exc):
        global _anomaly_mode
        _anomaly_mode = self._prev


class stage(contextlib.ContextDecorator):
    """Tag every op recorded inside with a stage name (viz and detect_anomaly show it)."""

    def __init__(self, name):
        self.label = name

    def __enter__(self):
        global _current_stage
        self._prev, _current_stage = _current_stage, self.label

    def __exit__(self, *exc):
        global _current_stage
        _current_stage = self._prev


def _check_finite(array, where, stage=None):
    xp = backend.get_array_module(array)
    if array.dtype.kind == "f" and not bool(xp.isfinite(array).all()):
        bad = "NaN" if bool(xp.isnan(array).any()) else "Inf"
        at = f" (stage {stage!r})" if stage else ""
        raise AnomalyError(f"detect_anomaly: {bad} first appeared in the {where}{at}, "
                           f"output shape {tuple(array.shape)}")
