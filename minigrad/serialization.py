"""Saving and loading tensors in the safetensors format (no pickle anywhere).

    minigrad.save(model.state_dict(), "model.safetensors", metadata={"config": json.dumps(cfg)})
    model.load_state_dict(minigrad.load("model.safetensors"))
    cfg = json.loads(minigrad.serialization.load_metadata("model.safetensors")["config"])

    # what training scripts save, as with torch.save / torch.load:
    minigrad.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": 3,
                   "config": {"lr": 3e-4}}, "ckpt.safetensors")
    ckpt = minigrad.load("ckpt.safetensors")
    model.load_state_dict(ckpt["model"]); opt.load_state_dict(ckpt["optimizer"])

A safetensors file is an 8-byte little-endian header length N, N bytes of JSON
(``{"name": {"dtype", "shape", "data_offsets"}, "__metadata__": {str: str}}``),
then the raw little-endian data. The files are read and written by the
``safetensors`` package; around it this module adds:

* what is saved: a flat dict ``{name: Tensor or array}`` is stored as plain safetensors
  (any tool reads it) and loads back as ``{name: Tensor}``. Any other object -- nested
  dicts, lists and tuples of tensors, NumPy arrays, ints, floats (nan and inf included),
  strings, bools and None -- is split by ``minigrad.nested``: its arrays become the file's
  tensors, its structure goes to the reserved metadata key ``__minigrad_tree__``, and it
  loads back as it was (tuples as tuples, int dict keys as ints, NumPy arrays as NumPy
  arrays, tensors as tensors on ``device``). What cannot be stored is an error naming its
  key path;
* atomic writes (``minigrad.fileio.atomic_write``): a temp file in the same directory,
  fsynced, then renamed over the old file; mode as ``open()`` gives (the umask), or the
  replaced file's; a crash mid-write leaves the old file as it was;
* validation before parsing (the header length is checked against the file size
  first, so a corrupt length cannot make us allocate unbounded memory) and a
  CRC-32 of every tensor (name, dtype, shape, bytes) and of the metadata, stored
  under the reserved metadata key ``__minigrad_crc32__`` (next to a format marker
  ``__minigrad_format__``, so damage to one key name is caught by the other), so a
  truncated, bit-flipped or foreign file raises ``SerializationError`` naming the
  file and the problem. Files written by other tools (neither key) still load. Every
  reader (``load``, ``load_arrays``, ``load_metadata``, ``load_with_metadata``) reads the
  file once, from one open file, and verifies that one checksum over all it returns: a
  file replaced while it is read is never returned half old, half new.

Optimizer state (nested dicts of arrays and numbers) is flattened to tensors named
``state.<param index>.<name>`` plus JSON metadata by ``optimizer_state_to_tensors``;
``save_optimizer_state`` / ``load_optimizer_state`` do both steps (``save`` of the state
dict itself works too).
"""
from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import numpy as np
import safetensors
import safetensors.numpy

from . import backend, nested
from .errors import ArgumentError, SerializationError
from .fileio import atomic_write  # noqa: F401  (re-exported: one writer for every file)

CHECKSUM_KEY = "__minigrad_crc32__"
FORMAT_KEY = "__minigrad_format__"   # a second marker: a damaged key name is still caught
TREE_KEY = "__minigrad_tree__"      # the structure of a nested object (minigrad.nested)
FORMAT = "minigrad-safetensors-1"
_RESERVED = (CHECKSUM_KEY, FORMAT_KEY, TREE_KEY)
_MAX_HEADER = 100 * 1024 * 1024   # the safetensors library's own limit on the header size
_DTYPE_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "U64": 8, "I32": 4,
                "U32": 4, "I16": 2, "U16": 2, "I8": 1, "U8": 1, "BOOL": 1, "C64": 8,
                "F8_E4M3": 1, "F8_E5M2": 1}
_NUMPY_DTYPES = {"F64", "F32", "F16", "I64", "U64", "I32", "U32", "I16", "U16", "I8", "U8", "BOOL",
                 "C64"}
_SAVEABLE_KINDS = "biufc"


# ----------------------------------------------------------------------------- save
def _to_host_array(key, value) -> np.ndarray:
    if hasattr(value, "array") and hasattr(value, "grad"):   # a Tensor (or Parameter)
        value = value.array
    if not isinstance(value, np.ndarray):
        value = backend.to_numpy(value)     # CuPy arrays are copied to the host
    if value.dtype.kind not in _SAVEABLE_KINDS or value.dtype.itemsize > 8:
        raise SerializationError(f"save: tensor {key!r} has dtype {value.dtype}, which "
                                 "safetensors cannot store (use a float, int or bool dtype)")
    if value.dtype.byteorder == ">":
        value = value.astype(value.dtype.newbyteorder("<"))   # the format is little-endian
    # safetensors reads the raw buffer (np.ascontiguousarray would turn 0-d into 1-d)
    return value if value.flags.c_contiguous else value.copy(order="C")


def _checksum(arrays: dict, metadata: dict) -> str:
    """CRC-32 over every tensor's name, dtype, shape and bytes and over the metadata."""
    crc = 0
    for name in sorted(arrays):
        arr = arrays[name]
        crc = zlib.crc32(f"{name}|{arr.dtype.str}|{arr.shape}|".encode(), crc)
        crc = zlib.crc32(arr.reshape(-1).view(np.uint8), crc)
    crc = zlib.crc32(json.dumps(sorted(metadata.items())).encode(), crc)
    return f"{crc:08x}"


def _is_flat(obj) -> bool:
    """A dict of str -> tensor or array: stored as plain safetensors (no structure key)."""
    return isinstance(obj, dict) and all(isinstance(k, str) for k in obj) and all(
        nested.is_tensor(v) or nested.is_array(v) for v in obj.values())


def _check_utf8(text: str) -> None:
    """The header is UTF-8 JSON: a name or metadata string with a lone surrogate cannot be
    stored."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise SerializationError(f"save: {text[:60]!r} holds {text[exc.start]!r}, a lone "
                                 "surrogate, which the file's UTF-8 header cannot hold (a "
                                 "tensor name or metadata string must be text)") from None


def save(obj, path, metadata: dict[str, str] | None = None) -> None:
    """Save ``obj`` to ``path`` in safetensors format, atomically (torch.save's role).

    ``obj`` is a dict ``{name: Tensor | NumPy/CuPy array}`` (a model's ``state_dict()``),
    stored as plain safetensors, or any nesting of dicts (str or int keys), lists and tuples
    of tensors, arrays, ints, floats, strings, bools and None (see the module docstring).
    ``metadata`` is a dict of strings stored in the header (e.g. a JSON model config); read
    it back with ``load_metadata``. Tied weights saved under two names are stored twice
    (safetensors has no aliasing), and load back as two separate tensors.
    """
    path = Path(path)
    metadata = dict(metadata or {})
    for k, v in metadata.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"save: metadata must map str to str, got {k!r}: "
                            f"{type(v).__name__} (json.dumps non-string values)")
    for key in _RESERVED:
        if key in metadata:
            raise ValueError(f"save: metadata key {key!r} is reserved")
    for text in [*metadata, *metadata.values(), *(obj if _is_flat(obj) else ())]:
        _check_utf8(text)
    if _is_flat(obj):
        named = obj
    else:
        named, tree = nested.flatten(obj)
        metadata[TREE_KEY] = json.dumps(tree, allow_nan=False)
    arrays = {key: _to_host_array(key, value) for key, value in named.items()}
    header_meta = dict(metadata)
    header_meta[CHECKSUM_KEY] = _checksum(arrays, metadata)
    header_meta[FORMAT_KEY] = FORMAT
    data = safetensors.numpy.save(arrays, metadata=header_meta)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"save: directory {str(path.parent)!r} does not exist")
    atomic_write(path, data)


# ----------------------------------------------------------------------------- load
def _parse_header(path, size: int, first8: bytes, read_header) -> dict:
    """Validate the length field against the file size, then parse and check the header."""
    if size < 8:
        raise SerializationError(f"{path}: truncated or not a safetensors file: {size} bytes, "
                                 "shorter than the 8-byte header length")
    n = int.from_bytes(first8, "little")
    if n > size - 8 or n > _MAX_HEADER:
        raise SerializationError(f"{path}: truncated or not a safetensors file: the header "
                                 f"length field says {n} bytes but the file has {size - 8} "
                                 "bytes after it")
    raw = read_header(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:   # not UTF-8, not JSON, nested too deeply
        raise SerializationError(f"{path}: corrupted or not a safetensors file: the header is "
                                 f"not valid JSON ({type(exc).__name__}: {str(exc)[:200]})") \
            from None
    if not isinstance(header, dict):
        raise SerializationError(f"{path}: corrupted or not a safetensors file: the header is a "
                                 f"JSON {type(header).__name__}, not an object")
    data_size = size - 8 - n
    end_max = 0
    for name, info in header.items():
        if name == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                raise SerializationError(f"{path}: corrupted header: __metadata__ must map str "
                                         "to str")
            continue
        try:
            dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
            nbytes = _DTYPE_SIZES[dtype]
            for s in shape:
                if not isinstance(s, int) or s < 0:
                    raise ValueError
            if not (isinstance(begin, int) and isinstance(end, int)):
                raise ValueError
        except (KeyError, TypeError, ValueError):
            raise SerializationError(f"{path}: corrupted header: bad entry for tensor {name!r}: "
                                     f"{info!r}") from None
        expected = nbytes * math.prod(shape)
        if not 0 <= begin <= end or end - begin != expected:
            raise SerializationError(f"{path}: corrupted header: tensor {name!r} of dtype {dtype} "
                                     f"and shape {shape} needs {expected} bytes, its offsets "
                                     f"[{begin}, {end}] give {end - begin}")
        if end > data_size:
            raise SerializationError(f"{path}: truncated: tensor {name!r} ends at byte {end} of "
                                     f"the data section, which has only {data_size} bytes")
        end_max = max(end_max, end)
    if end_max != data_size:
        raise SerializationError(f"{path}: corrupted: the tensors cover {end_max} bytes of "
                                 f"data but the file holds {data_size} (extra bytes at the end)")
    return header


def _read(path, caller: str = "load"):
    """(arrays, metadata without the checksum and format keys) of a validated file: one
    open, one read, one checksum over everything returned."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"{caller}: no such file {str(path)!r}") from None
    header = _parse_header(path, len(data), data[:8], lambda n: data[8:8 + n])
    metadata = dict(header.get("__metadata__") or {})
    for name, info in header.items():
        if name != "__metadata__" and info["dtype"] not in _NUMPY_DTYPES:
            raise SerializationError(f"{path}: tensor {name!r} has dtype {info['dtype']}, which "
                                     f"NumPy cannot load (supported: {sorted(_NUMPY_DTYPES)})")
    try:
        arrays = safetensors.numpy.load(data)
    except (safetensors.SafetensorError, KeyError, ValueError) as exc:
        raise SerializationError(f"{path}: corrupted or not a readable safetensors file: "
                                 f"{exc}") from None
    stored, fmt = metadata.pop(CHECKSUM_KEY, None), metadata.pop(FORMAT_KEY, None)
    if (stored is None) != (fmt is None) or (fmt is not None and fmt != FORMAT):
        raise SerializationError(f"{path}: corrupted header: the metadata keys "
                                 f"{CHECKSUM_KEY!r} and {FORMAT_KEY!r} must both be present "
                                 f"(format {FORMAT!r}), got {stored!r} and {fmt!r}")
    if stored is not None:
        actual = _checksum(arrays, metadata)
        if actual != stored:
            raise SerializationError(f"{path}: corrupted: checksum mismatch (stored {stored}, "
                                     f"computed {actual}); the file was modified or damaged "
                                     "after it was written")
    return arrays, metadata


def load_with_metadata(path, caller: str = "load_with_metadata") -> tuple[dict, dict]:
    """``(arrays, metadata)``: ``load_arrays`` and ``load_metadata`` of one read of the file,
    verified by one checksum, so the two always come from the same file (a reader racing a
    writer that replaces the file gets the old file or the new one, never a mix)."""
    arrays, metadata = _read(path, caller)
    metadata.pop(TREE_KEY, None)
    return {k: np.array(v) for k, v in arrays.items()}, metadata


def load_arrays(path) -> dict[str, np.ndarray]:
    """``{name: NumPy array}`` from a safetensors file (validated; arrays are writable)."""
    return load_with_metadata(path, "load_arrays")[0]


def _tensor_on(device):
    """A function making a Tensor (or Parameter) on ``device`` from a loaded array."""
    def make(arr, requires_grad=False, parameter=False):
        from .tensor import Tensor
        arr = backend.to_device(arr, device)
        if parameter:
            from .nn import Parameter
            return Parameter(arr, requires_grad=requires_grad)
        return Tensor(arr, dtype=arr.dtype, requires_grad=requires_grad)
    return make


def load(path, device: str | None = None, *, map_location: str | None = None,
         weights_only: bool = True):
    """What ``save`` stored (torch.load's role): ``{name: Tensor}`` for a flat file (one
    written by ``save(state_dict, ...)`` or by another safetensors tool), else the saved
    object. Tensors go to ``device`` (None: minigrad's default device, "cpu" unless
    MINIGRAD_DEVICE / set_default_device say otherwise); NumPy arrays stay NumPy.

    ``map_location`` is torch's name for ``device`` (a device string). ``weights_only`` is
    accepted for torch's spelling and changes nothing: minigrad never unpickles. Raises
    SerializationError when the file is truncated, corrupted or not safetensors. The
    metadata is read separately with ``load_metadata(path)``.
    """
    if map_location is not None:
        if device is not None and device != map_location:
            raise ArgumentError(f"load: device={device!r} and map_location={map_location!r} "
                                "disagree; pass one of them")
        if not isinstance(map_location, str):
            raise ArgumentError(f"load: map_location must be a device string such as 'cpu' "
                                f"or 'cuda', got {type(map_location).__name__} (a dict or a "
                                "function is not supported)")
        device = map_location
    device = backend.check_device(device)
    arrays, metadata = _read(path)
    make = _tensor_on(device)
    if TREE_KEY in metadata:
        try:
            tree = json.loads(metadata[TREE_KEY])
        except (ValueError, RecursionError) as exc:
            raise SerializationError(f"{path}: corrupted structure ({type(exc).__name__}: "
                                     f"{str(exc)[:200]})") from None
        return nested.unflatten(tree, arrays, make, str(path))
    out = {}
    for key in list(arrays):
        out[key] = make(np.array(arrays.pop(key)))    # own, writable memory (not the buffer)
    return out


def load_metadata(path) -> dict[str, str]:
    """The string metadata saved with ``save(..., metadata=)``. The whole file is read and
    its checksum verified, as ``load`` does: metadata that was changed raises."""
    return load_with_metadata(path, "load_metadata")[1]


# ----------------------------------------------------------------------------- optimizer state
def _jsonable(value):
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def optimizer_state_to_tensors(state_dict: dict) -> tuple[dict, dict[str, str]]:
    """Flatten ``Optimizer.state_dict()`` to ``(tensors, metadata)`` for ``save``.

    Arrays become tensors named ``state.<index>.<name>`` (e.g. ``state.3.exp_avg``);
    numbers (step counts) and the param groups go to ``metadata["optimizer"]`` as JSON:

        {"state": {"0": {"step": 3}}, "param_groups": [{"lr": 0.001, ..., "params": [0, 1]}]}
    """
    tensors, scalars = {}, {}
    for index, state in state_dict["state"].items():
        for name, value in state.items():
            if hasattr(value, "array") and hasattr(value, "grad"):
                value = value.array
            if hasattr(value, "shape") and hasattr(value, "dtype") and value.ndim > 0:
                tensors[f"state.{index}.{name}"] = value
            else:
                scalars.setdefault(str(index), {})[name] = _jsonable(
                    value.item() if hasattr(value, "item") else value)
    meta = {"state": scalars, "param_groups": _jsonable(state_dict["param_groups"])}
    try:
        text = json.dumps(meta, allow_nan=True)
    except TypeError as exc:
        raise TypeError(f"optimizer_state_to_tensors: a hyperparameter is not JSON-able "
                        f"({exc})") from None
    return tensors, {"optimizer": text}


def tensors_to_optimizer_state(tensors: dict, metadata: dict[str, str]) -> dict:
    """The inverse of ``optimizer_state_to_tensors``: a dict for ``Optimizer.load_state_dict``
    (arrays stay on the host; load_state_dict moves them to each parameter's device)."""
    if "optimizer" not in metadata:
        raise SerializationError(f"optimizer state: metadata has no 'optimizer' key (keys: "
                                 f"{sorted(metadata)})")
    try:
        meta = json.loads(metadata["optimizer"])
        state = {int(i): dict(s) for i, s in meta["state"].items()}
        groups = meta["param_groups"]
        if not isinstance(groups, list):
            raise TypeError(f"param_groups is a {type(groups).__name__}, not a list")
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
        raise SerializationError(f"optimizer state: metadata['optimizer'] is not a saved "
                                 f"optimizer state ({exc})") from None
    for key, value in tensors.items():
        parts = key.split(".")
        if len(parts) != 3 or parts[0] != "state" or not (
                parts[1].isascii() and parts[1].isdigit() and len(parts[1]) < 10):
            raise SerializationError(f"optimizer state: unexpected tensor name {key!r} "
                                     "(expected state.<index>.<name>)")
        if hasattr(value, "array") and hasattr(value, "grad"):
            value = value.array
        state.setdefault(int(parts[1]), {})[parts[2]] = value
    return {"state": state, "param_groups": groups}


def save_optimizer_state(state_dict: dict, path, metadata: dict[str, str] | None = None) -> None:
    """Save ``Optimizer.state_dict()`` (moments, steps, hyperparameters) to a safetensors file."""
    tensors, meta = optimizer_state_to_tensors(state_dict)
    if metadata and "optimizer" in metadata:
        raise ValueError("save_optimizer_state: metadata key 'optimizer' is reserved")
    save(tensors, path, {**(metadata or {}), **meta})


def load_optimizer_state(path) -> dict:
    """Read a file written by ``save_optimizer_state``; pass the result to
    ``Optimizer.load_state_dict``."""
    arrays, metadata = _read(path, "load_optimizer_state")
    return tensors_to_optimizer_state({k: np.array(v) for k, v in arrays.items()}, metadata)


__all__ = ["save", "load", "load_metadata", "load_arrays", "load_with_metadata",
           "optimizer_state_to_tensors", "tensors_to_optimizer_state", "save_optimizer_state",
           "load_optimizer_state", "atomic_write", "CHECKSUM_KEY", "FORMAT_KEY", "TREE_KEY"]
