"""Tensor: an array (NumPy or CuPy), its gradient, and the Function that made it.

Operators and methods only prepare arguments and call ops; the maths is in
ops.py / fused.py and the graph walking in autograd.py.
"""
from __future__ import annotations

import warnings
import weakref

import math
import numbers

import numpy as np

from . import autograd, backend, devices, dtypes
from . import ops as O
from .errors import (ArgumentError, ConversionError, DTypeError, GraphError, IndexRangeError,
                     ShapeError)
from .everyday import EverydayMixin
from .inplace import InplaceMixin
from .truth import TruthMixin

DEFAULT_FLOAT = dtypes.DEFAULT_FLOAT


def as_dtype(dtype):
    """NumPy dtype from a dtype (mg.float32 is one), a dtype name ("float64") or a type."""
    if dtype is None:
        return None
    if isinstance(dtype, dtypes.UnsupportedDType):
        raise DTypeError(dtype.error())
    try:
        return np.dtype(dtype)
    except TypeError:
        raise DTypeError(f"dtype: expected a NumPy dtype such as mg.float32 (or its name), got "
                         f"{dtype!r}") from None


class Tensor(TruthMixin, InplaceMixin, EverydayMixin):
    """A NumPy/CuPy array (``.array``), its gradient and the op that made it. Truth and
    comparison live in truth.py, the in-place methods in inplace.py, the everyday PyTorch
    methods that forward to reductions.py, shape_ops.py, ... in everyday.py."""

    __slots__ = ("array", "grad", "_rg", "_ctx", "_hooks", "_retain_grad", "name",
                 "_stand_in", "_real", "_vc", "_view", "__weakref__")
    __array_priority__ = 1000   # ndarray + Tensor defers to Tensor.__radd__

    def __init__(self, data, *sizes, dtype=None, device=None, requires_grad=False):
        """Wrap ``data``: a Tensor or NumPy/CuPy array (shared, keeping its dtype, as
        torch.from_numpy does). Python data has torch.Tensor's (legacy) meaning: a nested
        list holds float32 values (a torch.FloatTensor), and ints are sizes: Tensor(2, 3)
        is a (2, 3) float32 tensor of zeros (torch leaves it uninitialised). For the dtype
        of the data (ints: int64), write mg.tensor(data), as torch.tensor."""
        dtype = as_dtype(dtype)
        if isinstance(data, Tensor):
            data = data.array
        elif sizes or (isinstance(data, numbers.Integral) and not isinstance(data, np.generic)):
            data = np.zeros(_legacy_sizes((data,) + sizes), dtype or DEFAULT_FLOAT)
        if device is None:
            device = backend.device_of(data) if _is_array(data) else backend.get_default_device()
        device = backend.check_device(device)
        xp = backend.xp_for(device)
        if not _is_array(data):
            if not isinstance(data, (np.generic, list, tuple)):
                raise DTypeError(f"Tensor: data must be a sequence (a nested list) or an "
                                 f"array, got {type(data).__name__} {data!r}; for a 0-d "
                                 f"tensor write mg.tensor({data!r})")
            from_python = not isinstance(data, np.generic)
            data = np.asarray(data)
            if dtype is None and from_python:
                dtype = DEFAULT_FLOAT
        if data.dtype.kind not in "biuf":
            raise DTypeError(f"tensor: data of dtype {data.dtype} is not numeric")
        data = backend.to_device(data, device)
        if dtype is not None and data.dtype != dtype:
            data = data.astype(dtype)
        self.array = xp.asarray(data)
        self.grad = None
        self._ctx = None
        self._hooks = None
        self._retain_grad = False
        self.name = None
        self._stand_in = self._real = self._vc = self._view = None
        self._rg = False            # requires_grad (the property checks what is set)
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _make(cls, data, requires_grad):
        """Fast path for the engine: wrap an array that is already right."""
        t = object.__new__(cls)
        t.array, t.grad, t._ctx, t._hooks = data, None, None, None
        t._retain_grad, t.name, t._rg = False, None, requires_grad
        t._stand_in = t._real = t._vc = t._view = None
        return t

    def _graph_stand_in(self):
        """What the graph keeps of this non-leaf tensor as an op's input: a tensor with its
        op, hooks, shape and dtype but no data (one zero, broadcast), so that the graph does
        not keep every intermediate result alive (only what the ops saved). It reaches this
        tensor, while it lives, through a weak reference, for retain_grad and its name."""
        s = self._stand_in
        if s is None:
            xp = backend.get_array_module(self.array)
            s = Tensor._make(xp.broadcast_to(xp.zeros((), self.array.dtype), self.array.shape),
                             self._rg)
            if self._hooks is None:
                self._hooks = []          # shared: hooks registered later reach it too
            s._ctx, s._hooks, s._real = self._ctx, self._hooks, weakref.ref(self)
            s._vc = self._vc    # (made later, it is found through _real: version_of)
            self._stand_in = s
        return s

    # ------------------------------------------------------------------ versions and views
    # (the in-place rules: see inplace.py; the version check: autograd.check_saved_versions)
    def _counter(self):
        """This storage's version counter (made on first need, shared with views)."""
        vc = self._vc
        if vc is None:
            vc = self._vc = autograd.Version()
        return vc

    @property
    def _version(self):
        """How many times this tensor's memory was written in place (torch's _version)."""
        return 0 if self._vc is None else self._vc.version

    def _refresh_view(self):
        """Re-derive this view's graph from its base after the base was rewired by an
        in-place op (the memory is already shared; only the graph was stale), as torch does."""
        if not self._view[4]:
            raise GraphError(f"a view (shape {self.shape}) was created in no_grad mode and its "
                             f"base or another view of its base has been modified in place "
                             f"with grad mode enabled; create the view and modify the base "
                             f"both inside no_grad(), or both outside it")
        root, chain = autograd.view_chain(self)
        fresh = root
        with autograd.enable_grad():
            for cls, consts in chain:
                fresh = cls.apply(fresh, **consts)
        if self._stand_in is not None:      # it stands for the old graph from now on
            self._stand_in._real, self._stand_in._vc = None, self._vc
        self._stand_in, self._hooks = None, None
        self._ctx, self._rg = fresh._ctx, fresh._rg
        self._view = fresh._view

    # ------------------------------------------------------------------ properties
    # ``array`` is the raw NumPy/CuPy array (the one name internal code uses); ``data`` is
    # PyTorch's: a tensor sharing that storage, cut from the graph, so that
    # ``p.data -= lr * p.grad`` and ``p.data.copy_(w)`` update the parameter in place.
    @property
    def data(self):
        return Tensor._make(self.array, False)    # its own version counter, as in torch

    @data.setter
    def data(self, value):
        self.array = value.array if isinstance(value, Tensor) else value

    shape = property(lambda self: Size(self.array.shape))   # a tuple (Size: shape_ops.py)
    ndim = property(lambda self: self.array.ndim)
    dtype = property(lambda self: self.array.dtype)
    device = property(lambda self: devices.named(backend.device_of(self.array)))
    is_leaf = property(lambda self: self.grad_fn is None)

    @property
    def grad_fn(self):
        if self._view is not None and self._view[3] != self._vc.gen and autograd._grad_enabled:
            self._refresh_view()
        return self._ctx

    def numel(self):
        return int(self.array.size)

    def __len__(self):
        if self.array.ndim == 0:
            raise ConversionError("len() of a 0-d tensor: it holds one value and has no "
                                  "length; use .item() for the value, .numel() for the count")
        return self.array.shape[0]

    @property
    def requires_grad(self):
        return self._rg

    @requires_grad.setter
    def requires_grad(self, flag):
        self.requires_grad_(flag)

    def requires_grad_(self, flag=True):
        """Record operations on this (leaf) tensor for autograd, or stop (flag False)."""
        if flag and self.array.dtype.kind != "f":
            raise DTypeError(f"requires_grad: only floating-point tensors can require "
                             f"gradients, got dtype {self.array.dtype} (indices never carry "
                             "gradients)")
        if not flag and self._ctx is not None:
            raise GraphError("requires_grad: you can only change requires_grad flags of leaf "
                             "tensors; to use a computed tensor without its graph, write "
                             "y = y.detach()")
        self._rg = bool(flag)
        return self

    def detach(self):
        """The same values, cut from the graph (shares memory and the version counter,
        like torch: writing to it in place is seen by ops that saved this tensor)."""
        out = Tensor._make(self.array, False)
        out._vc = self._counter()
        return out

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def astype(self, dtype):
        dtype = as_dtype(dtype)
        if dtype == self.dtype:
            return self
        if dtype.kind != "f" or self.dtype.kind != "f":
            return Tensor._make(self.array.astype(dtype), False)
        return _Cast.apply(self, dtype=dtype)

    def float(self):
        return self.astype(dtypes.float32)

    def double(self):
        return self.astype(dtypes.float64)

    def clone(self):
        """A copy (its own memory, the same dtype); the gradient flows back to self."""
        if self.array.dtype.kind != "f":            # (no graph for integers and bools)
            return Tensor._make(self.array.copy(order="K"), False)
        return self * 1

    # ------------------------------------------------------------------ autograd
    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None, *,
                 grad=None):
        """Backpropagate from this tensor. ``gradient`` (torch's keyword; ``grad`` is the
        old name) is d(something)/d(self); it may be omitted only for a one-element
        tensor. Leaves' .grad accumulate across calls. The graph is freed unless
        ``retain_graph=True``."""
        if grad is not None:
            if gradient is not None:
                raise ArgumentError("backward: pass the output gradient once, as gradient= "
                                    "(grad= is its old name)")
            gradient = grad
        if create_graph:
            raise GraphError("backward: create_graph=True (higher-order gradients) is not "
                             "supported: minigrad's backward runs on raw arrays and records "
                             "no graph")
        if inputs is not None:
            raise ArgumentError("backward: inputs= is not supported; use "
                                "mg.autograd.grad(output, inputs) to get chosen gradients")
        if self._view is not None and self._view[3] != self._vc.gen:
            self._refresh_view()
        seed = autograd.seed_grad(self, "backward", gradient)
        autograd.backward(self, seed, retain_graph=bool(retain_graph))

    def retain_grad(self):
        """Keep .grad on this non-leaf tensor after backward."""
        self._retain_grad = True
        return self

    def register_hook(self, fn):
        """Call fn(grad) when this tensor's gradient is computed; a returned tensor
        replaces the gradient. Returns a handle with .remove()."""
        if not self.requires_grad:
            raise GraphError("register_hook: cannot register a hook on a tensor that "
                             "does not require grad")
        if self._hooks is None:
            self._hooks = []
        self._hooks.append(fn)
        return _HookHandle(self._hooks, fn)

    # ------------------------------------------------------------------ arithmetic
    def _wrap(self, other):
        """Turn a Python scalar / array into a constant tensor of our dtype and device."""
        if isinstance(other, Tensor):
            return other
        xp = backend.get_array_module(self.array)
        if isinstance(other, numbers.Number):
            dtype = self.dtype
            if isinstance(other, float) and dtype.kind != "f":
                dtype = DEFAULT_FLOAT
            return Tensor._make(xp.asarray(other, dtype=dtype), False)
        return _C.tensor(other, device=self.device)

    def _pair(self, other, float_result=False):
        """self and other as two tensors of one dtype, by PyTorch's promotion (see
        dtypes.py: Python numbers and 0-d tensors are weak); ``float_result``: integer
        results become the default float (true division)."""
        dt = self.array.dtype
        if isinstance(other, Tensor):
            if other.array.dtype == dt and (dt.kind == "f" or not float_result):
                return self, other          # the common case, kept fast
            common = dtypes.result_type(self, other)
        elif type(other) in _SCALARS or isinstance(other, numbers.Number):
            common = dtypes.scalar_type(dt, other)
            if float_result and common.kind != "f":
                common = DEFAULT_FLOAT
            xp = np if type(self.array) is np.ndarray else backend.get_array_module(self.array)
            a = self if common == dt else self.astype(common)
            return a, Tensor._make(xp.asarray(other, dtype=common), False)
        else:   # an array or a (nested) list: a tensor of its own dtype
            return self._pair(_C.tensor(other, device=self.device), float_result)
        if float_result and common.kind != "f":
            common = DEFAULT_FLOAT
        return self.astype(common), other.astype(common)

    def _binary(self, op, other, reverse=False, float_result=False):
        a, b = self._pair(other, float_result)
        if reverse:
            a, b = b, a
        _check_broadcast(op.__name__, a.shape, b.shape)
        return op.apply(a, b)

    def __add__(self, o): return self._binary(O.Add, o)
    def __radd__(self, o): return self._binary(O.Add, o, True)
    def __sub__(self, o): return self._binary(self._sub_op(o), o)
    def __rsub__(self, o): return self._binary(self._sub_op(o), o, True)

    def _sub_op(self, other):
        if self.array.dtype.kind == "b" or isinstance(other, (bool, np.bool_)) or (
                isinstance(other, Tensor) and other.array.dtype.kind == "b"):
            raise DTypeError("subtraction, the `-` operator, with a bool tensor is not "
                             "supported; to invert a mask, use the `~` operator")
        return O.Sub
    def __mul__(self, o): return self._binary(O.Mul, o)
    def __rmul__(self, o): return self._binary(O.Mul, o, True)
    def __truediv__(self, o): return self._binary(O.Div, o, float_result=True)
    def __rtruediv__(self, o): return self._binary(O.Div, o, True, float_result=True)
    def __matmul__(self, o): return self.matmul(o)
    def __rmatmul__(self, o): return self._wrap(o).matmul(self)

    def __neg__(self):
        if self.array.dtype.kind == "b":
            raise DTypeError("negation, the `-` operator, on a bool tensor is not supported; "
                             "to invert a mask, use the `~` operator")
        return O.Neg.apply(self)

    def __pow__(self, exponent):
        if isinstance(exponent, numbers.Number) and not isinstance(exponent, Tensor):
            x = self.astype(dtypes.scalar_type(self.array.dtype, exponent))
            out = O.PowScalar.apply(x, exponent=exponent)
            return out if out.array.dtype == x.array.dtype else out.astype(x.dtype)
        return self._binary(O.Pow, exponent)

    def __rpow__(self, base):
        return self._binary(O.Pow, base, True)

    def matmul(self, other):
        """self @ other, with torch's rules (see functions.matmul)."""
        return _fn.matmul(self, other)

    # ------------------------------------------------------------------ elementwise
    def exp(self): return O.Exp.apply(self._floating())
    def log(self): return O.Log.apply(self._floating())
    def sqrt(self): return O.Sqrt.apply(self._floating())
    def tanh(self): return O.Tanh.apply(self._floating())
    def sigmoid(self): return O.Sigmoid.apply(self._floating())
    def erf(self): return O.Erf.apply(self._floating())
    def relu(self):
        if self.array.dtype == bool:
            raise DTypeError("relu: bool inputs are not supported (as torch); convert: "
                             "x.float().relu()")
        return O.Relu.apply(self)

    def _floating(self):
        """self, or self in the default float dtype when it holds integers or bools (torch
        computes exp, log, sin, ... of an integer tensor in float32)."""
        return self if self.array.dtype.kind == "f" else self.astype(DEFAULT_FLOAT)
    def abs(self):
        if self.array.dtype == bool:
            raise DTypeError("abs: not implemented for bool tensors (as torch)")
        return O.Abs.apply(self)
    __abs__ = abs

    def maximum(self, other):
        return self._binary(O.Maximum, other)

    def minimum(self, other):
        a, b = self._pair(other)
        if a.array.dtype.kind != "f":       # integers, bools: no gradient, no negation
            _check_broadcast("minimum", a.shape, b.shape)
            xp = backend.get_array_module(a.array)
            return Tensor._make(xp.asarray(xp.minimum(a.array, b.array)), False)
        return -((-a).maximum(-b))

    def where(self, condition, other):
        """torch's ``x.where(condition, y)``: x where condition, else y."""
        return where(condition, self, other)

    def _wrap_as(self, value, dtype):
        """A Python number as a 0-d constant of ``dtype`` on this tensor's device."""
        xp = np if type(self.array) is np.ndarray else backend.get_array_module(self.array)
        return Tensor._make(xp.asarray(value, dtype=dtype), False)

    # ------------------------------------------------------------------ reductions
    def _axes(self, name, dim, axis):
        dim = axis if dim is None else dim
        if dim is None:
            return None
        dims = (dim,) if isinstance(dim, numbers.Integral) else tuple(dim)
        for d in dims:
            if not -self.ndim <= d < max(self.ndim, 1):
                raise ShapeError(f"{name}: dim {d} is out of range for a tensor of shape "
                                 f"{self.shape}")
        return tuple(d % max(self.ndim, 1) for d in dims)

    def sum(self, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None):
        x = self if dtype is None else self.astype(dtype)
        if x.array.dtype.kind == "u":     # torch sums unsigned (and all) integers in int64
            x = x.astype(np.int64)
        return O.Sum.apply(x, axis=x._axes("sum", dim, axis), keepdims=bool(keepdim or keepdims))

    def mean(self, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None):
        if dtype is not None:
            return self.astype(dtype).mean(dim, keepdim, axis=axis, keepdims=keepdims)
        if self.array.dtype.kind != "f":
            raise DTypeError(f"mean(): could not infer output dtype. Input dtype must be "
                             f"either a floating point or complex dtype. Got: {self.dtype}; "
                             f"write t.float().mean() (e.g. (pred == y).float().mean())")
        return O.Mean.apply(self, axis=self._axes("mean", dim, axis),
                            keepdims=bool(keepdim or keepdims))

    # ------------------------------------------------------------------ shapes
    def reshape(self, *shape):
        shape = _shape_arg(shape)
        for s in shape:
            if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < -1:
                raise ShapeError(f"reshape: sizes must be ints >= 0 (or one -1), got {shape}")
        if shape.count(-1) > 1:
            raise ShapeError(f"reshape: only one size can be -1 (inferred), got {shape}")
        size = math.prod(s for s in shape if s != -1)
        if (-1 not in shape and size != self.numel()) or (
                -1 in shape and (size == 0 or self.numel() % size)):
            raise ShapeError(f"reshape: cannot reshape a tensor of shape {self.shape} "
                             f"({self.numel()} elements) to {shape}")
        if tuple(shape) == self.shape:
            return self
        return O.Reshape.apply(self, shape=tuple(shape))

    def permute(self, *dims):
        dims = _shape_arg(dims)
        if sorted(d % self.ndim for d in dims) != list(range(self.ndim)):
            raise ShapeError(f"permute: {dims} is not a permutation of the {self.ndim} dims "
                             f"of shape {self.shape}")
        return O.Permute.apply(self, axes=tuple(d % self.ndim for d in dims))

    def _dim(self, name, dim, ndim=None):
        """``dim`` as a non-negative axis of a tensor of ``ndim`` dims, else a ShapeError."""
        ndim = self.ndim if ndim is None else ndim
        if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or \
                not -max(ndim, 1) <= dim < max(ndim, 1):
            raise ShapeError(f"{name}: dim {dim!r} is out of range for a tensor of shape "
                             f"{self.shape} (expected an int in [{-max(ndim, 1)}, "
                             f"{max(ndim, 1) - 1}])")
        return int(dim) % max(ndim, 1)

    def transpose(self, dim0=-2, dim1=-1):
        dim0, dim1 = self._dim("transpose", dim0), self._dim("transpose", dim1)
        axes = list(range(self.ndim))
        axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
        return self.permute(*axes)

    def expand(self, *shape):
        shape = _shape_arg(shape)
        lead = len(shape) - self.ndim
        full = tuple(s if s != -1 else self.shape[i - lead] for i, s in enumerate(shape))
        _check_broadcast("expand", self.shape, full, target=full)
        return O.Expand.apply(self, shape=full)

    def squeeze(self, dim=None):
        if dim is None:
            return self.reshape(tuple(s for s in self.shape if s != 1))
        if isinstance(dim, (tuple, list)):      # several dims (each dropped if of size 1)
            drop = {self._dim("squeeze", d) for d in dim}
            return self.reshape(tuple(s for i, s in enumerate(self.shape)
                                      if i not in drop or s != 1))
        dim = self._dim("squeeze", dim)
        if self.ndim == 0 or self.shape[dim] != 1:
            return self
        return self.reshape(self.shape[:dim] + self.shape[dim + 1:])

    def unsqueeze(self, dim):
        dim = self._dim("unsqueeze", dim, self.ndim + 1)
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def contiguous(self):
        """This tensor if its memory is in row-major order, else a row-major copy."""
        if self.array.flags.c_contiguous:
            return self
        return _S.Contiguous.apply(self)

    def is_contiguous(self):
        return bool(self.array.flags.c_contiguous)

    def __getitem__(self, index):
        arr_index = _index_arg(index)
        try:
            out = O.GetItem.apply(self, index=arr_index)
        except IndexError as exc:   # NumPy's "index 5 is out of bounds for axis 0 with size 2"
            if isinstance(exc, IndexRangeError):
                raise
            raise IndexRangeError(f"index: {exc} (indexing a tensor of shape {self.shape})") \
                from None
        if out._ctx is not None and out._view is None and isinstance(index, (Tensor, tuple)):
            _guard(out, index)      # an index tensor (never in a view's index) is kept
        return out


class _HookHandle:
    def __init__(self, hooks, fn):
        self.hooks, self.fn = hooks, fn

    def remove(self):
        if self.fn in self.hooks:
            self.hooks.remove(self.fn)


autograd._tensor_class = Tensor   # the engine wraps every op result in one


@autograd.register
class _Cast(autograd.Function):
    # a dtype change between float types: the gradient is cast back
    saved_inputs = ()
    saves_output = False

    def forward(self, x, dtype):
        self.dtype = x.dtype
        return x.astype(dtype)

    def backward(self, g):
        return g.astype(self.dtype)


@autograd.register
class _ToDevice(autograd.Function):
    # a device move: the gradient moves back
    saved_inputs = ()
    saves_output = False

    def forward(self, x, device):
        self.src = backend.device_of(x)
        return backend.to_device(x, device)

    def backward(self, g):
        return backend.to_device(g, self.src)


# ----------------------------------------------------------------------------- helpers
_SCALARS = (int, float, bool)     # the common numbers, checked before numbers.Number


def _legacy_sizes(sizes):
    """The shape of torch.Tensor(2, 3), checked."""
    for s in sizes:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0:
            raise ArgumentError(f"Tensor: sizes must be ints >= 0 (Tensor(2, 3) is a 2 x 3 "
                                f"tensor), got {sizes}; for values write mg.tensor(data)")
    return tuple(int(s) for s in sizes)


def _is_array(x):
    return isinstance(x, np.ndarray) or backend.device_of(x) == "cuda"


def _guard(out, index):
    """Let backward check that the tensors in ``index`` (a mask or index tensor, which
    the op keeps as a raw constant) were not modified in place since this forward."""
    fn = out._ctx
    items = index if isinstance(index, tuple) else (index,)
    tensors = tuple(t for t in items if isinstance(t, Tensor))
    if fn is not None and tensors:
        fn.guards = getattr(fn, "guards", ()) + tensors
    return out


def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def _check_broadcast(op, a, b, target=None):
    """Raise a ShapeError naming the op and both shapes when they cannot broadcast."""
    for x, y in zip(reversed(a), reversed(b)):
        if x != y and x != 1 and (y != 1 or target is not None):
            raise ShapeError(f"{op}: shapes {a} and {b} cannot be broadcast together "
                             f"(sizes {x} and {y} differ and neither is 1)")


def _index_arg(index):
    """Validate an index: slices, ints, None, Ellipsis and integer/bool arrays."""
    items = index if isinstance(index, tuple) else (index,)
    out = []
    for i in items:
        if isinstance(i, Tensor):
            i = i.array
        elif isinstance(i, list):
            i = np.asarray(i)
        if not (i is None or i is Ellipsis or isinstance(i, (slice, numbers.Integral))
                or hasattr(i, "dtype")):
            raise DTypeError(f"index: expected ints, slices, None, ... or integer/boolean "
                             f"arrays, got {type(i).__name__} {i!r}")
        if hasattr(i, "dtype") and not isinstance(i, numbers.Number):   # an index array
            if i.dtype.kind not in "iub":
                raise DTypeError(f"index: index arrays must be integers or booleans, got "
                                 f"dtype {i.dtype}")
            if i.dtype == np.uint8:     # torch reads a uint8 index as a mask (deprecated)
                warnings.warn("indexing with dtype uint8 is deprecated (it is a mask, as in "
                              "torch); use a bool tensor instead", UserWarning, stacklevel=3)
                i = i.astype(bool)
        elif isinstance(i, slice) and i.step is not None and i.step <= 0:
            raise ArgumentError(f"index: step must be greater than zero, got the slice {i} "
                                f"(tensors have no negative strides); to reverse, write "
                                f"x.flip(dim)")
        out.append(i)
    return tuple(out) if isinstance(index, tuple) else out[0]


def where(condition, a=None, b=None):
    """Elementwise ``a if condition else b``; gradients flow to a and b only. a and b may
    be numbers; the result's dtype is PyTorch's promotion of the two. With the condition
    alone: the indices where it holds, one tensor per dim (nonzero(as_tuple=True))."""
    if a is None and b is None:
        return _I.nonzero(condition if isinstance(condition, Tensor) else _C.tensor(condition),
                          as_tuple=True)
    cond = condition.array if isinstance(condition, Tensor) else condition
    if not hasattr(cond, "dtype"):
        cond = np.asarray(cond)
    if cond.dtype != bool:
        raise DTypeError(f"where: condition must be a bool tensor, got dtype {cond.dtype}; "
                         f"write the test, e.g. mg.where(c != 0, a, b), or c.bool()")
    if isinstance(a, Tensor):
        a, b = a._pair(b)
    elif isinstance(b, Tensor):
        b, a = b._pair(a)
    else:   # two numbers: each has its Python type's dtype
        dtype = dtypes.promote_types(dtypes.python_scalar_type(a), dtypes.python_scalar_type(b))
        xp = backend.get_array_module(cond)
        a, b = (Tensor._make(xp.asarray(v, dtype=dtype), False) for v in (a, b))
    cond_shape = tuple(cond.shape)
    _check_broadcast("where", a.shape, b.shape)
    _check_broadcast("where", cond_shape, np.broadcast_shapes(a.shape, b.shape))
    return _guard(O.Where.apply(a, b, condition=cond), condition)


# the modules with the bodies of everyday.py's methods import Tensor, so they come last
from . import creation as _C  # noqa: E402
from . import elementwise as _E  # noqa: E402
from . import functional as _F  # noqa: E402
from . import functions as _fn  # noqa: E402
from . import indexing as _I  # noqa: E402
from . import reductions as _R  # noqa: E402
from . import shape_ops as _S  # noqa: E402
from .shape_ops import Size  # noqa: E402
