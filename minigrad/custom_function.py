"""Custom autograd functions written as PyTorch users write them:

    class Cube(mg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, grad_output):
            x, = ctx.saved_tensors
            return 3 * x ** 2 * grad_output

    y = Cube.apply(x)

forward runs on tensors with grad recording off; its result becomes one graph node whose
backward calls the class's backward (again on tensors, recording off) and hands one
gradient per tensor input to the engine. ``ctx`` has torch's ``save_for_backward``,
``saved_tensors`` (checked against in-place changes since they were saved, as in torch),
``needs_input_grad``, ``mark_non_differentiable`` and ``set_materialize_grads``; any other
attribute can be set on it. The newer style, forward without ctx plus a ``setup_context``
staticmethod, works too. One difference: forward returns one tensor (minigrad's graph
nodes have one output); a tuple is refused with a clear error.

(minigrad's own ops subclass the same Function with forward/backward on raw arrays: a
class whose forward is a staticmethod is a torch-style function; autograd.Function's
``__init_subclass__`` gives it ``ctx_apply`` as its apply.)
"""
from __future__ import annotations

import weakref

import numpy as np

from . import autograd
from .errors import GraphError, ShapeError


class FunctionCtx:
    """What forward leaves for backward (torch.autograd.function.FunctionCtx)."""

    def __init__(self, needs_input_grad):
        self.needs_input_grad = needs_input_grad
        self.materialize_grads = True
        self._saved = ()
        self._non_differentiable = ()

    def save_for_backward(self, *tensors):
        """Keep these tensors (or None) for backward, as ctx.saved_tensors."""
        from .tensor import Tensor
        for i, t in enumerate(tensors):
            if t is not None and not isinstance(t, Tensor):
                raise GraphError(f"save_for_backward: argument {i} is a "
                                 f"{type(t).__name__}; only tensors (or None) can be saved; "
                                 f"store other values as attributes: ctx.k = k")
        self._saved = tuple((t, None if t is None else t._version) for t in tensors)

    @property
    def saved_tensors(self):
        for i, (t, version) in enumerate(self._saved):
            if t is not None and t._version != version:
                raise GraphError(
                    f"backward: one of the variables needed for gradient computation has "
                    f"been modified by an inplace operation: saved tensor {i} (shape "
                    f"{tuple(t.shape)}) is at version {t._version}; expected version "
                    f"{version} instead (when save_for_backward saved it). Don't modify it "
                    f"in place before backward(), or .clone() it before saving.")
        return tuple(t for t, _ in self._saved)

    def mark_non_differentiable(self, *tensors):
        self._non_differentiable = tensors

    def set_materialize_grads(self, value: bool):
        self.materialize_grads = bool(value)


class _CtxNode(autograd.Function):
    """The graph node of one call of a torch-style function (not a registered op: its
    maths is the user's; the ctx checks its own saved tensors)."""

    saved_inputs = ()
    saves_output = False

    def backward(self, g):
        from .tensor import Tensor
        cls, ctx = self.cls, self.ctx
        with autograd.no_grad():
            grads = cls.backward(ctx, Tensor._make(g, False))
        if not isinstance(grads, tuple):
            grads = (grads,)
        if len(grads) != self.n_args:
            raise GraphError(f"{cls.__name__}.backward returned an incorrect number of "
                             f"gradients (expected {self.n_args}, one per forward argument "
                             f"(None for those without), got {len(grads)})")
        out = []
        for position, inp in zip(self.positions, self.inputs):
            grad = grads[position]
            if grad is None:
                out.append(None)
                continue
            if not isinstance(grad, Tensor):
                raise GraphError(f"{cls.__name__}.backward: the gradient of argument "
                                 f"{position} must be a Tensor or None, got "
                                 f"{type(grad).__name__}")
            try:
                fits = np.broadcast_shapes(tuple(inp.shape), grad.shape) == grad.shape
            except ValueError:
                fits = False
            if not fits:
                raise ShapeError(f"{cls.__name__}.backward returned an invalid gradient at "
                                 f"index {position}: got shape {tuple(grad.shape)} but "
                                 f"expected shape compatible with {tuple(inp.shape)}")
            out.append(grad.array)
        return tuple(out)


_NODE_CLASSES = weakref.WeakKeyDictionary()


def _node_class(cls):
    """The node class of one torch-style function, named after it (a tensor's repr shows
    ``grad_fn=<NameBackward>``, as torch's; the name outlives the node's freed state)."""
    node = _NODE_CLASSES.get(cls)
    if node is None:
        node = _NODE_CLASSES[cls] = type(cls.__name__, (_CtxNode,), {})
    return node


def ctx_apply(cls, *args, **kwargs):
    """``Function.apply`` of a torch-style function: run forward, record one node."""
    from .tensor import Tensor
    positions = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
    tensors = [args[i] for i in positions]
    record = autograd._grad_enabled and any(t.requires_grad for t in tensors)
    ctx = FunctionCtx(tuple(isinstance(a, Tensor) and a.requires_grad for a in args))
    setup = cls.__dict__.get("setup_context")
    with autograd.no_grad():
        out = cls.forward(*args, **kwargs) if setup is not None else \
            cls.forward(ctx, *args, **kwargs)
        if setup is not None:
            cls.setup_context(ctx, args, out)
    if isinstance(out, (tuple, list)):
        raise GraphError(f"{cls.__name__}.forward returned {len(out)} outputs; minigrad's "
                         f"custom functions return one tensor (its graph nodes have one "
                         f"output): split it into one Function per output")
    if not isinstance(out, Tensor):
        raise GraphError(f"{cls.__name__}.forward must return a Tensor, got "
                         f"{type(out).__name__}")
    result = Tensor._make(out.array, False)
    result._vc = out._counter()     # one storage: writing to result shows in saved_tensors
    if record and not any(out is t for t in ctx._non_differentiable):
        node = _node_class(cls)()
        node.cls, node.ctx, node.n_args, node.positions = cls, ctx, len(args), positions
        node.needs_grad = [t.requires_grad for t in tensors]
        node.inputs = tuple(t if t._ctx is None else t._graph_stand_in() for t in tensors)
        node.epoch = autograd._epoch
        node.xp = None
        result._rg, result._ctx = True, node
    return result
