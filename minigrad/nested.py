"""Nested objects in a safetensors file: what ``minigrad.save`` stores beside flat tensor dicts.

A training script saves what torch.save would take::

    mg.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": 3,
             "config": {"lr": 3e-4, "betas": (0.9, 0.95)}}, "ckpt.safetensors")

``flatten`` splits such an object into its arrays (stored as safetensors tensors, named by
their key path: ``model.wte.weight``, ``optimizer.state.0.exp_avg``) and a JSON structure (stored
in the header's metadata) that says where each array goes; ``unflatten`` puts it back
together. Nothing is pickled. JSON of the structure:

    None, True/False, "text", 3, 2.5     themselves (a float always has a '.' or an 'e')
    {"float": "nan" | "inf" | "-inf"}    a float that JSON cannot spell
    [...]                                a list
    {"tuple": [...]}                     a tuple (loads back as a tuple)
    {"dict": [[key, value], ...]}        a dict, in order; keys are str or int (int keys
                                         stay ints: an optimizer's state is keyed by index)
    {"tensor": name, "requires_grad": b, "parameter": b}
                                         a minigrad Tensor (Parameter)
    {"ndarray": name}                    a NumPy (or CuPy) array: loads back as NumPy
    {"scalar": name}                     a NumPy scalar (np.float32(2.5)): loads back as one

Anything else (a function, a class, an object, a set, bytes, a complex number) is an error
naming its key path: ``obj['config']['fn']: a function cannot be stored``.
"""
from __future__ import annotations

import inspect
import math
import numbers

import numpy as np

from .errors import SerializationError

MAX_DEPTH = 100                 # nesting deeper than this is refused (saving and loading)
_MAX_INT_BITS = 14_000          # about 4,200 digits: below Python's int-to-string limit
_FLOAT_NAMES = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def is_tensor(value) -> bool:
    return hasattr(value, "array") and hasattr(value, "grad")


def is_array(value) -> bool:
    """A NumPy or CuPy array or a NumPy scalar (not a Tensor)."""
    return isinstance(value, (np.ndarray, np.generic)) or \
        hasattr(value, "__cuda_array_interface__")


def _key_text(key) -> str:
    return f"[{key!r}]"


def _kind(value) -> str:
    if inspect.isroutine(value):
        return "a function"
    if isinstance(value, type):
        return f"a class ({value.__name__})"
    return f"a {type(value).__name__} object"


class _Flattener:
    def __init__(self):
        self.arrays: dict = {}          # name -> array (a Tensor's raw array, or an array)

    def name_for(self, keys: list) -> str:
        base = ".".join(str(k) for k in keys) or "obj"
        base = base.encode("utf-8", "backslashreplace").decode("utf-8")   # lone surrogates
        name, n = base, 1
        while name in self.arrays or name == "__metadata__":
            n += 1
            name = f"{base}#{n}"
        return name

    def encode(self, value, keys: list, where: str, on_path: set):
        if len(keys) > MAX_DEPTH:
            raise SerializationError(f"save: {where}: nested more than {MAX_DEPTH} levels deep")
        if value is None or isinstance(value, (bool, str)):
            return value
        if is_tensor(value):
            name = self.name_for(keys)
            self.arrays[name] = value.array
            node = {"tensor": name}
            if getattr(value, "requires_grad", False):
                node["requires_grad"] = True
            if type(value).__name__ == "Parameter":
                node["parameter"] = True
            return node
        if is_array(value):
            name = self.name_for(keys)
            self.arrays[name] = value
            return {"scalar" if isinstance(value, np.generic) else "ndarray": name}
        if isinstance(value, numbers.Integral):
            return self.encode_int(int(value), where)
        if isinstance(value, float):
            return value if math.isfinite(value) else {"float": repr(value)}
        if isinstance(value, (list, tuple, dict)):
            if id(value) in on_path:
                raise SerializationError(f"save: {where}: the object contains itself")
            on_path = on_path | {id(value)}
            if isinstance(value, dict):
                return {"dict": [[self.encode_key(k, where),
                                  self.encode(v, keys + [k], f"{where}{_key_text(k)}", on_path)]
                                 for k, v in value.items()]}
            items = [self.encode(v, keys + [i], f"{where}[{i}]", on_path)
                     for i, v in enumerate(value)]
            return {"tuple": items} if isinstance(value, tuple) else items
        raise SerializationError(f"save: {where}: {_kind(value)} cannot be stored (minigrad.save "
                                 "stores tensors, arrays, int, float, str, bool, None and "
                                 "lists, tuples and dicts of them; no pickle)")

    @staticmethod
    def encode_int(value: int, where: str):
        if value.bit_length() > _MAX_INT_BITS:
            raise SerializationError(f"save: {where}: an int of {value.bit_length()} bits is too "
                                     "large to store (store it as a str)")
        return value

    def encode_key(self, key, where: str):
        if isinstance(key, str):
            return key
        if isinstance(key, numbers.Integral) and not isinstance(key, bool):
            return self.encode_int(int(key), where)
        raise SerializationError(f"save: {where}: a dict key {key!r} of type "
                                 f"{type(key).__name__} cannot be stored (keys must be str or "
                                 "int)"[:300])


def flatten(obj) -> tuple[dict, object]:
    """``(arrays by name, JSON-able structure)`` of ``obj``; SerializationError naming the
    key path of anything that cannot be stored."""
    f = _Flattener()
    tree = f.encode(obj, [], "obj", set())
    return f.arrays, tree


def unflatten(tree, arrays: dict, make_tensor, where_file: str):
    """The object that ``flatten`` split: ``arrays`` maps names to NumPy arrays,
    ``make_tensor(array, requires_grad, parameter)`` builds a Tensor. Every array must be used
    exactly once; anything else in ``tree`` is a SerializationError naming ``where_file``."""
    used: set = set()

    def bad(where, what):
        raise SerializationError(f"{where_file}: corrupted structure at {where}: {what}"[:400])

    def array(node, key, where):
        name = node.get(key)
        if not isinstance(name, str) or name not in arrays:
            bad(where, f"refers to a tensor {str(name)[:60]!r} that the file does not hold")
        if name in used:
            bad(where, f"refers to tensor {name[:60]!r} twice")
        used.add(name)
        return arrays[name]

    def decode(node, where, depth):
        if depth > MAX_DEPTH:
            bad(where, f"nested more than {MAX_DEPTH} levels deep")
        if node is None or isinstance(node, (bool, str)):
            return node
        if isinstance(node, int):
            return node
        if isinstance(node, float):
            return node
        if isinstance(node, list):
            return [decode(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(node)]
        if not isinstance(node, dict) or len(node) == 0:
            bad(where, f"unexpected {type(node).__name__}")
        tag = next(iter(node))
        if "tensor" in node and set(node) <= {"tensor", "requires_grad", "parameter"}:
            flags = [node.get(k, False) for k in ("requires_grad", "parameter")]
            if not all(isinstance(b, bool) for b in flags):
                bad(where, "tensor flags must be true or false")
            return make_tensor(array(node, "tensor", where), *flags)
        if len(node) != 1:
            bad(where, f"an object with the keys {sorted(node)[:5]}")
        value = node[tag]
        if tag == "ndarray":
            return np.array(array(node, tag, where))        # own, writable memory
        if tag == "scalar":
            arr = array(node, tag, where)
            if arr.shape != ():
                bad(where, f"a scalar of shape {arr.shape}")
            return arr[()]
        if tag == "float" and value in _FLOAT_NAMES:
            return _FLOAT_NAMES[value]
        if tag == "tuple" and isinstance(value, list):
            return tuple(decode(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value))
        if tag == "dict" and isinstance(value, list):
            out = {}
            for item in value:
                if not (isinstance(item, list) and len(item) == 2 and
                        isinstance(item[0], (str, int)) and not isinstance(item[0], bool)):
                    bad(where, f"a dict item {str(item)[:60]} is not a [str or int key, value] "
                               "pair")
                key = item[0]
                if key in out:
                    bad(where, f"the key {key!r} appears twice")
                out[key] = decode(item[1], f"{where}{_key_text(key)}", depth + 1)
            return out
        bad(where, f"unknown entry {tag[:40]!r}")

    obj = decode(tree, "obj", 0)
    unused = sorted(set(arrays) - used)
    if unused:
        raise SerializationError(f"{where_file}: corrupted structure: the tensors "
                                 f"{unused[:3]} are not part of the saved object"[:400])
    return obj
