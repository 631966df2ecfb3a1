"""The engine: Function.apply records the graph, backward() walks it in reverse.

A Function works on raw arrays (NumPy or CuPy). The engine does everything that
is the same for every op, so each op stays a few lines:
- it checks that all inputs live on one device,
- it sums every returned gradient back to its input's shape (broadcasting),
- it orders the graph with an iterative topological sort (no recursion limit),
- it adds up the contributions of a tensor used several times (``a * a``),
- it frees each node's saved arrays right after its backward ran,
- it refuses to backpropagate through an op whose saved tensors were modified in place
  since its forward (version counters, as in PyTorch; see ``Version``).
"""
from __future__ import annotations

import contextlib

import numpy as np

from . import backend
from .errors import AnomalyError, DeviceError, GraphError, ShapeError

OPS: dict[str, type] = {}   # name -> Function class; tests enumerate it

_grad_enabled = True
_anomaly_mode = False
_tensor_class = None    # minigrad.tensor.Tensor; tensor.py (which imports this module) sets it
_current_stage = None   # a label (e.g. "attention") that new graph nodes are tagged with
_inference_mode = False  # inside inference_mode(True)
_epoch = 0              # bumped by every in-place write; graph nodes remember it at forward
_views_rebased = False  # set once an in-place op rewired the graph of a storage with views


def register(cls):
    """Class decorator: put an op in the registry under its class name."""
    OPS[cls.__name__] = cls
    return cls


class Version:
    """The version counter of one storage, shared by a tensor, its views and detach():
    ``version`` counts the in-place writes (``Tensor._version``, as in PyTorch), ``stamp``
    is the global epoch of the last one. A graph node records the epoch at its forward;
    if a tensor it saved has a later stamp at backward, its saved values are stale.
    ``gen`` counts the in-place ops that rewired the graph of this storage (views made
    before then must re-derive their graph from their base, see Tensor._refresh_view)."""

    __slots__ = ("version", "stamp", "history", "gen", "has_views")

    def __init__(self):
        self.version, self.stamp, self.history, self.gen, self.has_views = 0, 0, [], 0, False

    def bump(self):
        global _epoch
        _epoch += 1
        self.version += 1
        self.stamp = _epoch
        self.history.append(_epoch)
        if len(self.history) > 16:        # enough to name the version a node saw
            del self.history[0]

    def version_at(self, epoch):
        """The version this storage had at ``epoch`` (exact for its last 16 writes)."""
        return self.version - sum(1 for s in self.history if s > epoch)


class Function:
    """One differentiable op. Subclasses define forward(*arrays, **consts) -> array
    and backward(grad) -> one gradient per tensor input (None where there is none).
    ``self.xp`` is the array module of the inputs; ``self.needs_grad[i]`` says whether
    input i wants a gradient, so backward can skip work.

    What backward reads is declared per class, for the version check: ``saved_inputs``
    (indices of the inputs whose arrays it keeps; None: all of them; or a dict
    {input: the inputs whose gradients read it}, so ``y * 2`` with only y requiring grad
    does not count as keeping y) and ``saves_output``. The defaults are the conservative
    "everything"; an op that declares less lets ``y = x + 1; y += 1`` through.

    ``view = True`` marks an op whose output can share its first input's memory (reshape,
    permute, expand, basic indexing): the output then shares the input's version counter
    and remembers how it was made."""

    differentiable = True
    saved_inputs = None
    saves_output = True
    view = False

    def __init_subclass__(cls, **kwargs):
        # torch's style, forward(ctx, ...) and backward(ctx, grad) as staticmethods on
        # tensors, gets its own apply (custom_function.py); minigrad's ops keep theirs
        super().__init_subclass__(**kwargs)
        if isinstance(cls.__dict__.get("forward"), staticmethod):
            from .custom_function import ctx_apply
            cls.apply = classmethod(ctx_apply)

    @classmethod
    def apply(cls, *tensors, **consts):
        # (the hot path of every op: kept lean, it is most of the cost of tiny tensors)
        if _views_rebased and _grad_enabled:
            _refresh_views(tensors)
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
            needs = [t._rg for t in tensors]        # (t.requires_grad's slot)
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
            fn.epoch = _epoch
            result._ctx = fn
        if cls.view:    # NumPy and CuPy point a view's base at the array owning the memory
            base = out.base
            if base is not None and (base is first or base is first.base):
                # the view shares its input's version counter and remembers how it was
                # made, to be re-derived from its base (Tensor._refresh_view, inplace.py)
                src = tensors[0]
                vc = src._vc
                if vc is None:
                    vc = src._vc = Version()
                vc.has_views = True
                result._vc, result._view = vc, (src, cls, consts, vc.gen, _grad_enabled)
        return result

    def forward(self, *arrays, **consts):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, grad):  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def name(self) -> str:
        return type(self).__name__


def view_chain(t):
    """(root, [(op class, consts), ...]): the tensor that owns t's memory and the view
    ops that make t from it (``t._view`` is (parent, op class, consts, gen, whether it was
    made in grad mode))."""
    chain = []
    while t._view is not None:
        parent, cls, consts = t._view[:3]
        chain.append((cls, consts))
        t = parent
    chain.reverse()
    return t, chain


def _refresh_views(tensors):
    for t in tensors:
        if t._view is not None and t._view[3] != t._vc.gen:
            t._refresh_view()


def version_of(t):
    """t's version counter: a graph stand-in made before its tensor had one reaches it
    through the tensor (None: never written in place, nor viewed)."""
    vc = t._vc
    if vc is None and t._real is not None:
        real = t._real()
        vc = real._vc if real is not None else None
    return vc


def check_saved_versions(node, fn):
    """Raise a GraphError if a tensor ``fn`` saved for backward (an input, or ``node``,
    its output) was modified in place after fn's forward (PyTorch's check)."""
    cls = type(fn)
    saved = cls.saved_inputs
    if saved is None:
        indices = range(len(fn.inputs))
    elif isinstance(saved, dict):
        indices = [i for i, users in saved.items() if any(fn.needs_grad[j] for j in users)]
    else:
        indices = saved
    suspects = [(f"input {i}", fn.inputs[i]) for i in indices]
    if cls.saves_output:
        suspects.append(("output 0", node))
    suspects += [("a tensor it indexes or masks with", t) for t in getattr(fn, "guards", ())]
    own = getattr(fn, "own_counter", None)     # an in-place op's target: saved as a copy
    for what, t in suspects:
        vc = version_of(t)
        if vc is not None and vc is not own and vc.stamp > fn.epoch:
            raise GraphError(
                f"backward: one of the variables needed for gradient computation has been "
                f"modified by an inplace operation: the tensor of shape {tuple(t.shape)} and "
                f"dtype {t.dtype}, {what} of {fn.name}, is at version {vc.version}; expected "
                f"version {vc.version_at(fn.epoch)} instead (the version {fn.name} saved it "
                f"at). Don't modify it in place between the forward and backward(): write "
                f"the out-of-place form (y = y + 1 instead of y += 1, x.masked_fill(...) "
                f"instead of x.masked_fill_(...)), or .clone() it before the in-place op.")


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


def _toposort(roots):
    """Tensors that need a gradient, outputs before inputs (iterative DFS post-order)."""
    order, visited = [], set()
    stack = [(root, False) for root in reversed(roots)]
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
                if inp._rg and id(inp) not in visited:
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


def backward(root, grad, retain_graph=False, inputs=None):
    """Accumulate d(root)/d(leaf) * grad into every leaf's .grad.

    Leaves accumulate across calls (``.grad`` is added to, as in PyTorch; call
    zero_grad() between steps). Non-leaves keep no gradient unless retain_grad().
    ``root`` may be a list of tensors, with ``grad`` the list of their gradients. With
    ``inputs`` (a dict id -> None, see grad()), the gradients of those tensors are
    collected into that dict instead, and no .grad is touched."""
    from .tensor import Tensor
    roots, seeds = (root, grad) if isinstance(root, list) else ([root], [grad])
    # a root that is also an input of another op (or root) is reached as its stand-in
    # there: start from the stand-in too, so that its op runs once
    roots = [r if r._stand_in is None else r._stand_in for r in roots]
    grads = {}
    for r, g in zip(roots, seeds):
        grads[id(r)] = g if id(r) not in grads else grads[id(r)] + g
    for node in _toposort(roots):
        g = grads.pop(id(node), None)
        if g is None:
            continue
        if node._hooks:
            for hook in node._hooks:
                replaced = hook(Tensor._make(g, False))
                if replaced is not None:
                    g = replaced.array if isinstance(replaced, Tensor) else replaced
        fn = node._ctx
        if inputs is not None:
            key = id(node._real()) if node._real is not None else id(node)
            if key in inputs:
                inputs[key] = g if inputs[key] is None else inputs[key] + g
            if fn is None:
                continue
        elif fn is None:  # a leaf: accumulate, owning the array (it may be shared)
            if node.grad is None:
                node.grad = Tensor._make(g.copy(), False)
            else:
                node.grad.array += g
            continue
        if inputs is None:
            if node._retain_grad:
                node.grad = Tensor._make(g.copy(), False)
            real = node._real() if node._real is not None else None    # node is a stand-in
            if real is not None and real._retain_grad:
                real.grad = node.grad if node._retain_grad else Tensor._make(g.copy(), False)
        if fn.epoch != _epoch:    # something was written in place since this forward
            check_saved_versions(node, fn)
        in_grads = fn.backward(g)
        if not isinstance(in_grads, tuple):
            in_grads = (in_grads,)
        if _anomaly_mode:
            for ig in in_grads:
                if ig is not None:
                    _check_finite(ig, f"backward of {fn.name}", getattr(fn, "stage", None))
        for inp, ig in zip(fn.inputs, in_grads):
            if ig is None or not inp._rg:
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
    """Context manager / decorator (``@no_grad()``, or bare ``@no_grad`` as torch allows):
    ops record no graph inside it."""

    def __new__(cls, func=None):
        if func is not None:            # used bare: @no_grad
            return cls()(func)
        return super().__new__(cls)

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


class set_grad_enabled(contextlib.ContextDecorator):
    """torch.set_grad_enabled(mode): called, it sets grad mode at once; used as a context
    manager (``with set_grad_enabled(False):``) it also restores the previous mode on exit."""

    def __init__(self, mode: bool):
        global _grad_enabled
        self._prev, _grad_enabled = _grad_enabled, bool(mode)
        self.mode = bool(mode)

    def __enter__(self):
        global _grad_enabled
        _grad_enabled = self.mode

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._prev


class inference_mode(contextlib.ContextDecorator):
    """torch.inference_mode: a context manager / decorator (``@inference_mode`` or
    ``@inference_mode()``) in which ops record no graph, like no_grad. ``mode=False``
    turns grad mode on instead, as in torch. One difference: tensors made inside are
    ordinary tensors (torch marks them as inference tensors, which autograd refuses
    later); minigrad has no separate inference path, so there is nothing to refuse."""

    def __new__(cls, mode=True):
        if callable(mode):                  # used bare: @inference_mode
            return cls()(mode)
        return super().__new__(cls)

    def __init__(self, mode=True):
        self.mode = bool(mode)

    def __enter__(self):
        global _grad_enabled, _inference_mode
        self._prev = _grad_enabled, _inference_mode
        _grad_enabled, _inference_mode = not self.mode, self.mode

    def __exit__(self, *exc):
        global _grad_enabled, _inference_mode
        _grad_enabled, _inference_mode = self._prev


def is_inference_mode_enabled() -> bool:
    return _inference_mode


def seed_grad(t, fn, gradient):
    """The output gradient backward starts from: ``gradient`` as an array of t's shape
    (a tensor of ones for a one-element t when it is None)."""
    if not t.requires_grad:
        raise GraphError(f"{fn}: this tensor does not require grad and has no graph "
                         "(did you compute it under no_grad(), or from tensors without "
                         "requires_grad=True?)")
    xp = backend.get_array_module(t.array)
    if gradient is None:
        if t.array.size != 1:
            raise GraphError(f"{fn}: grad can be implicitly created only for a scalar "
                             f"output, got shape {t.shape}; pass gradient= of that "
                             f"shape (e.g. mg.ones_like(out))")
        return xp.ones_like(t.array)
    gradient = gradient.array if isinstance(gradient, _tensor_class) else xp.asarray(
        gradient, dtype=t.dtype)
    if tuple(gradient.shape) != t.shape:
        raise ShapeError(f"{fn}: gradient must have the output's shape {t.shape}, "
                         f"got {tuple(gradient.shape)}")
    return gradient


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False):
    """torch.autograd.grad: the gradients of ``outputs`` with respect to ``inputs``, as a
    tuple (one per input), without touching any ``.grad``. ``grad_outputs`` gives
    d(something)/d(output) for each output (needed unless the output has one element);
    the graph is freed unless ``retain_graph=True``. An input the outputs do not depend
    on is an error, or None with ``allow_unused=True``."""
    from .tensor import Tensor
    if create_graph:
        raise GraphError("autograd.grad: create_graph=True (higher-order gradients) is not "
                         "supported: minigrad's backward runs on raw arrays and records no "
                         "graph; compute second derivatives by finite differences of "
                         "first-order gradients instead")
    single = isinstance(outputs, Tensor)
    outputs = [outputs] if single else list(outputs)
    inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs]
    grad_outputs = list(grad_outputs)
    if len(grad_outputs) != len(outputs):
        raise GraphError(f"autograd.grad: grad_outputs must hold one gradient per output "
                         f"({len(outputs)}), got {grad_outputs!r}"[:300])
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor):
            raise GraphError(f"autograd.grad: inputs[{i}] must be a Tensor, got "
                             f"{type(t).__name__}")
        if not t.requires_grad:
            raise GraphError(f"autograd.grad: inputs[{i}] (shape {t.shape}) does not "
                             f"require grad; create it with requires_grad=True")
    seeds = [seed_grad(out, "autograd.grad", g) for out, g in zip(outputs, grad_outputs)]
    found = {id(t): None for t in inputs}
    backward(outputs, seeds, retain_graph=bool(retain_graph), inputs=found)
    result = []
    for i, t in enumerate(inputs):
        g = found[id(t)]
        if g is None and not allow_unused:
            raise GraphError(f"autograd.grad: the differentiated tensor at index {i} (shape "
                             f"{t.shape}) appears to not have been used in the graph; pass "
                             f"allow_unused=True to get None for it")
        if g is not None and g.shape != t.array.shape:
            g = unbroadcast(g, t.array.shape)
        result.append(None if g is None else Tensor._make(g.copy(), False))
    return tuple(result)


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


def Variable(data, requires_grad=False, volatile=False):     # noqa: N802  (torch's name)
    """torch.autograd.Variable, from before tensors carried gradients: the tensor itself,
    with requires_grad set as asked (``volatile`` is ignored, as in torch 0.4 on)."""
    if requires_grad:
        data.requires_grad_(True)
    return data
