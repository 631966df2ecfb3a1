"""dtypes as in PyTorch: their names and the promotion of mixed operands.

A minigrad dtype *is* a NumPy dtype object: ``mg.float32 is np.dtype("float32")``, so
``t.dtype == mg.float32``, ``t.dtype == np.float32`` and ``np.zeros(3, mg.float32)`` all
hold, and a tensor's dtype is what NumPy says it is. (PyTorch prints ``torch.float32``;
minigrad prints ``float32``.) Aliases as in torch: ``mg.float`` (float32), ``mg.double``
(float64), ``mg.half`` (float16), ``mg.long`` (int64), ``mg.int`` (int32), ``mg.short``.

Promotion (``result_type``) follows PyTorch, which differs from NumPy's:

* categories bool < integer < floating; an operand of a higher category decides the
  category, and int64 + float32 is float32 (NumPy: float64);
* within a category, the wider type wins (int32 + int64 -> int64, float32 + float64 ->
  float64), among tensors *with dimensions*;
* 0-d tensors and Python numbers are "weak": they only matter when their category is
  higher. float32 tensor + 0-d float64 tensor -> float32; int tensor + 2.5 -> float32
  (the default float); bool tensor + 1 -> int64; 0-d with 0-d promotes normally.
"""
from __future__ import annotations

import numbers

import numpy as np

bool_ = np.dtype(np.bool_)
uint8 = np.dtype(np.uint8)
int8 = np.dtype(np.int8)
int16 = np.dtype(np.int16)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
float16 = np.dtype(np.float16)
float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)

short, half, double, long = int16, float16, float64, int64


class UnsupportedDType:
    """A torch dtype name that NumPy (so minigrad) has no dtype for: it exists, so that a
    script's table of dtypes (nanoGPT's {'bfloat16': torch.bfloat16, ...}) loads, and any
    use of it is an error saying what to use instead."""

    def __init__(self, name, advice):
        self.name, self.advice = name, advice

    def __repr__(self):
        return self.name

    def error(self):
        return f"dtype {self.name} is not supported: {self.advice}"


bfloat16 = UnsupportedDType("bfloat16", "NumPy has no bfloat16; use mg.float32 (or "
                                        "mg.float16 for half precision)")
DEFAULT_FLOAT = float32     # what Python floats, and true division of integers, become

# torch's names (module attributes of minigrad; float/int/bool shadow builtins only there)
NAMES = {"bool": bool_, "uint8": uint8, "int8": int8, "int16": int16, "short": int16,
         "int32": int32, "int": int32, "int64": int64, "long": int64, "float16": float16,
         "half": float16, "float32": float32, "float": float32, "float64": float64,
         "double": float64}

_RANK = {"b": 0, "u": 1, "i": 1, "f": 2}     # bool < integer < floating


def category(dtype) -> int:
    return _RANK.get(dtype.kind, 3)


def promote_types(a, b):
    """torch.promote_types: the dtype two tensors of dtypes a and b combine into."""
    if a == b:
        return a
    ra, rb = category(a), category(b)
    if ra != rb:
        return a if ra > rb else b
    return np.promote_types(a, b)


def result_type(a, b):
    """The dtype of an elementwise op on tensors ``a`` and ``b`` (0-d tensors weak)."""
    da, db = a.array.dtype, b.array.dtype
    if da == db:
        return da
    a0, b0 = a.array.ndim == 0, b.array.ndim == 0
    if a0 == b0:
        return promote_types(da, db)
    dim, zero = (db, da) if a0 else (da, db)
    return _combine(dim, zero)


def _combine(higher, lower):
    """c10's combine_categories: a weaker operand counts only in a higher category."""
    if higher.kind == "f":
        return higher
    if higher.kind == "b" or category(lower) > category(higher):
        return promote_types(higher, lower)
    return higher


def scalar_type(dtype, value):
    """The dtype of an elementwise op on a tensor of ``dtype`` and the Python number
    ``value`` (bool -> bool, int -> int64, float -> the default float, all weak)."""
    kind = dtype.kind
    if kind == "f":
        if isinstance(value, complex):
            raise TypeError("complex numbers are not supported by minigrad tensors")
        return dtype
    if isinstance(value, (bool, np.bool_)):
        return dtype
    if isinstance(value, numbers.Integral):
        return dtype if kind in "iu" else int64
    if isinstance(value, numbers.Real):
        return DEFAULT_FLOAT
    raise TypeError(f"expected a number, got {type(value).__name__} {value!r}")


def python_scalar_type(value):
    """The dtype torch gives a Python number on its own: bool, int64 or the default float."""
    if isinstance(value, (bool, np.bool_)):
        return bool_
    if isinstance(value, numbers.Integral):
        return int64
    return DEFAULT_FLOAT


def python_default(data):
    """The dtype torch.tensor gives Python data (lists, numbers) that NumPy read as
    ``data``: floats become float32 and ints int64; arrays keep their own dtype."""
    kind = data.dtype.kind
    return DEFAULT_FLOAT if kind == "f" else int64 if kind in "iu" else None


def can_cast(src, dst) -> bool:
    """Whether an in-place op may write a result of dtype ``src`` into a tensor of dtype
    ``dst`` (torch's canCast: never down a category, e.g. float into int)."""
    return category(src) <= category(dst)


__all__ = ["bool_", "uint8", "int8", "int16", "int32", "int64", "float16", "float32",
           "float64", "DEFAULT_FLOAT", "NAMES", "promote_types", "result_type",
           "scalar_type", "can_cast"]
