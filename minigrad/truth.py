"""Truth, comparison and conversion to Python values, as in PyTorch: ``==`` and friends
are elementwise and give bool tensors (with PyTorch's type promotion), ``bool(t)`` is the
value of a one-element tensor and an error for more, ``float``/``int``/``format``/
``np.asarray`` give the numbers, ``&``/``|``/``^``/``~`` work on bool and integer tensors.
Tensor derives from ``TruthMixin``; tensors stay hashable by identity (dict keys)."""
from __future__ import annotations

import numbers
import operator

import numpy as np

from . import backend, dtypes
from . import tensor as T       # (a cycle: tensor.py imports this module; used at call time)
from .errors import ArgumentError, ConversionError, DeviceError, DTypeError


_DEFAULT_DTYPES = (np.dtype(np.float32), np.dtype(np.int64), np.dtype(bool))   # unnamed in a repr
# how tensors print (mg.set_printoptions changes them; torch's defaults: 4 digits, a
# summary beyond 1000 elements)
PRINT_OPTIONS = {"precision": 4, "threshold": 1000, "edgeitems": 3, "max_line_width": 80}


class TruthMixin:
    """Tensor's truth, comparison and conversion methods (repr, numpy, item, tolist;
    dtype and device too)."""

    __slots__ = ()

    def __repr__(self):
        extra = f", device='{self.device}'" if self.device != "cpu" else ""
        grad = f", grad_fn=<{self._ctx.name}Backward>" if self._ctx is not None else (
            ", requires_grad=True" if self.requires_grad else "")
        body = np.array2string(backend.to_numpy(self.array), separator=", ", prefix="tensor(",
                               **PRINT_OPTIONS)
        # torch names the dtype unless it is a default one (float32, int64, bool)
        dtype = "" if self.dtype in _DEFAULT_DTYPES else f", dtype={self.dtype}"
        return f"tensor({body}{dtype}{extra}{grad})"

    def numpy(self, *, force=False) -> np.ndarray:
        """A NumPy array of the values (sharing memory on the CPU; copied off the GPU).
        As in torch, a tensor that requires grad must be detached first (``force=True``
        does that)."""
        if self.requires_grad and not force:
            raise ConversionError(f"numpy(): can't call numpy() on a tensor that requires "
                                  f"grad (shape {self.shape}); use tensor.detach().numpy() "
                                  f"instead")
        return backend.to_numpy(self.array)

    def item(self):
        """The value of a one-element tensor as a Python number."""
        if self.array.size != 1:
            raise ConversionError(f"item: a Tensor with {self.array.size} elements (shape "
                                  f"{self.shape}) cannot be converted to a Python number; "
                                  f"only one-element tensors can (reduce it first: .sum(), "
                                  f".mean(), or index one element)")
        return self.array.reshape(()).item()

    def tolist(self):
        """The values as (nested lists of) Python numbers; a 0-d tensor gives a number."""
        return backend.to_numpy(self.array).tolist()

    def __iter__(self):
        """The sub-tensors along dim 0 (views, as in torch)."""
        if self.array.ndim == 0:
            raise ConversionError("iteration over a 0-d tensor: it holds one value; use "
                                  ".item() for it")
        return (self[i] for i in range(self.array.shape[0]))

    def __contains__(self, value):
        return bool((self == value).any())

    def _one_value(self, what):
        if self.array.size != 1:
            raise ConversionError(f"{what}: only one element tensors can be converted to "
                                  f"Python scalars, got shape {self.shape}; reduce it first "
                                  f"(.sum(), .mean()) or index one element")
        return self.array.reshape(()).item()

    def __bool__(self):
        n = self.array.size
        if n == 1:
            return bool(self.array.reshape(()).item())
        what = "no values" if n == 0 else "more than one value"
        raise ConversionError(f"Boolean value of Tensor with {what} is ambiguous (shape "
                              f"{self.shape}); reduce it to one value with .any() or .all() "
                              f"(e.g. `if (a == b).all():`)")

    def __float__(self):
        return float(self._one_value("float()"))

    def __int__(self):
        return int(self._one_value("int()"))

    def __index__(self):
        if self.array.dtype.kind not in "iub" or self.array.size != 1:
            raise DTypeError(f"only integer tensors of a single element can be converted to "
                             f"an index, got dtype {self.dtype} and shape {self.shape}; use "
                             f"int(t) to truncate a float")
        return int(self.array.reshape(()).item())

    def __format__(self, spec):
        """f"{loss:.3f}" for a 0-d tensor (as torch); an empty spec gives str(t)."""
        if self.array.ndim == 0:
            return format(self.array.item(), spec)
        if not spec:
            return str(self)
        raise ConversionError(f"unsupported format string {spec!r} passed to Tensor.__format__ "
                              f"for a tensor of shape {self.shape}: only 0-d tensors format "
                              f"as numbers; use f\"{{t.item():{spec}}}\" for a one-element "
                              f"tensor")

    def __array__(self, dtype=None, copy=None):
        """np.asarray(t): the values (sharing memory, as torch's .numpy())."""
        if backend.device_of(self.array) != "cpu":
            raise DeviceError(f"np.asarray: this tensor (shape {self.shape}) lives on "
                              f"{self.device}; copy it to the host first: np.asarray(t.cpu())")
        a = self.array
        if dtype is not None and np.dtype(dtype) != a.dtype:
            return a.astype(dtype)
        return a.copy() if copy else a

    # comparisons give boolean tensors without gradients (promoted as arithmetic is)
    def _compare(self, op, other):
        if isinstance(other, T.Tensor) and other.array.dtype == self.array.dtype:
            a, b = self.array, other.array
        elif other is None or isinstance(other, str):
            return NotImplemented
        else:
            x, y = self._pair(other)
            a, b = x.array, y.array
        try:
            out = op(a, b)
        except ValueError:
            T._check_broadcast(op.__name__, tuple(a.shape), tuple(b.shape))
            raise
        if type(out) is not type(a):     # NumPy gives 0-d results as scalars
            out = backend.get_array_module(a).asarray(out)
        return T.Tensor._make(out, False)

    def __eq__(self, o): return self._compare(operator.eq, o)
    def __ne__(self, o): return self._compare(operator.ne, o)
    def __lt__(self, o): return self._compare(operator.lt, o)
    def __le__(self, o): return self._compare(operator.le, o)
    def __gt__(self, o): return self._compare(operator.gt, o)
    def __ge__(self, o): return self._compare(operator.ge, o)
    eq, ne, lt, le, gt, ge = __eq__, __ne__, __lt__, __le__, __gt__, __ge__
    __hash__ = object.__hash__      # hashable by identity (dict keys), as in torch

    # logical / bitwise: bool and integer tensors only, as in torch
    def _bitwise(self, ufunc, other, reverse=False):
        if not isinstance(other, (T.Tensor, numbers.Number)) and not hasattr(other, "dtype"):
            return NotImplemented
        a, b = self._pair(other)
        if a.dtype.kind not in "biu":
            raise DTypeError(f"{ufunc.__name__}: only bool and integer tensors, got dtype "
                             f"{a.dtype}; to combine conditions, compare first: "
                             f"(a > 0) & (b > 0)")
        if reverse:
            a, b = b, a
        T._check_broadcast(ufunc.__name__, a.shape, b.shape)
        xp = backend.get_array_module(a.array)
        return T.Tensor._make(xp.asarray(getattr(xp, ufunc.__name__)(a.array, b.array)), False)

    def __and__(self, o): return self._bitwise(np.bitwise_and, o)
    def __rand__(self, o): return self._bitwise(np.bitwise_and, o, True)
    def __or__(self, o): return self._bitwise(np.bitwise_or, o)
    def __ror__(self, o): return self._bitwise(np.bitwise_or, o, True)
    def __xor__(self, o): return self._bitwise(np.bitwise_xor, o)
    def __rxor__(self, o): return self._bitwise(np.bitwise_xor, o, True)

    def __invert__(self):
        if self.array.dtype.kind not in "biu":
            raise DTypeError(f"~ (operator.invert) is only implemented on integer and bool "
                             f"tensors, got dtype {self.dtype}; for a float mask, compare "
                             f"first: ~(x > 0)")
        return T.Tensor._make(~self.array, False)

    def any(self, dim=None, keepdim=False):
        """Whether any element is nonzero (along ``dim``): a bool tensor."""
        return self._truth("any", dim, keepdim)

    def all(self, dim=None, keepdim=False):
        """Whether every element is nonzero (along ``dim``): a bool tensor."""
        return self._truth("all", dim, keepdim)

    def _truth(self, name, dim, keepdim):
        axis = self._axes(name, dim, None)
        xp = backend.get_array_module(self.array)
        out = getattr(self.array, name)(axis=axis, keepdims=bool(keepdim))
        return T.Tensor._make(xp.asarray(out), False)

    # ------------------------------------------------------------------ dtype and device
    def to(self, *args, device=None, dtype=None, non_blocking=False, copy=False):
        """torch's forms: .to(dtype), .to(device), .to(device, dtype), .to(other_tensor)
        (its device and dtype), .to(device=..., dtype=...). Returns self when nothing
        changes (unless copy=True); the graph is kept, so gradients flow back."""
        for a in args:
            if isinstance(a, T.Tensor):
                device, dtype = a.device, a.dtype
            elif isinstance(a, str) and a.split(":")[0] not in backend.DEVICES:
                hint = f"; for a dtype write .to(mg.{a})" if a in dtypes.NAMES else ""
                raise ArgumentError(f"to: {a!r} is not a device (expected one of "
                                    f"{backend.DEVICES}){hint}")
            elif isinstance(a, str):
                device = a
            elif a is not None:
                dtype = a
        out = self if dtype is None else self.astype(dtype)
        if device is not None and backend.check_device(device) != out.device:
            out = T._ToDevice.apply(out, device=backend.check_device(device))
        return out.clone() if copy and out is self else out

    def half(self):
        return self.astype(dtypes.float16)

    def long(self):
        return self.astype(dtypes.int64)

    def int(self):
        return self.astype(dtypes.int32)

    def bool(self):
        return self.astype(dtypes.bool_)

    def type_as(self, other):
        """This tensor in ``other``'s dtype."""
        return self.astype(other.dtype)

    def is_floating_point(self):
        return self.array.dtype.kind == "f"
