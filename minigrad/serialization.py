"""Saving and loading tensors in the safetensors format (no pickle anywhere).

    minigrad.save(model.state_dict(), "model.safetensors", metadata={"config": json.dumps(cfg)})
    model.load_state_dict(minigrad.load("model.safetensors"))
    cfg = json.loads(minigrad.serialization.load_metadata("model.safetensors")["config"])

A safetensors file is an 8-byte little-endian header length N, N bytes of JSON
(``{"name": {"dtype", "shape", "data_offsets"}, "__metadata__": {str: str}}``),
then the raw little-endian data. The files are read and written by the
``safetensors`` package; around it this module adds:

* atomic writes: a temp file in the same directory, flushed and fsynced, then
  ``os.replace``; a crash mid-write leaves the old file as it was;
* validation before parsing (the header length is checked against the file size
  first, so a corrupt length cannot make us allocate unbounded memory) and a
  CRC-32 of every tensor (name, dtype, shape, bytes) and of the metadata, stored
  under the reserved metadata key ``__minigrad_crc32__`` (next to a format marker
  ``__minigrad_format__``, so damage to one key name is caught by the other), so a
  truncated, bit-flipped or foreign file raises ``SerializationError`` naming the
  file and the problem. Files written by other tools (neither key) still load.

Optimizer state (nested dicts of arrays and numbers) is flattened to tensors named
``state.<param index>.<name>`` plus JSON metadata by ``optimizer_state_to_tensors``;
``save_optimizer_state`` / ``load_optimizer_state`` do both steps.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import zlib
from pathlib import Path

import numpy as np
import safetensors
import safetensors.numpy

from . import backend
from .errors import SerializationError

CHECKSUM_KEY = "__minigrad_crc32__"
FORMAT_KEY = "__minigrad_format__"   # a second marker: a damaged key name is still caught
FORMAT = "minigrad-safetensors-1"
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


def _write_all(f, data: bytes) -> None:
    """Write ``data`` to the open file (a seam the tests use to simulate a crash)."""
    f.write(data)


def atomic_write(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temp file next to it, fsynced, then renamed
    over it (and the folder fsynced), so a crash leaves either the old file or the new one.
    Every file the two packages write goes through here."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            _write_all(f, data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:   # make the rename itself durable (POSIX; best effort elsewhere)
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def save(tensors: dict, path, metadata: dict[str, str] | None = None) -> None:
    """Save ``{name: Tensor | NumPy/CuPy array}`` to ``path`` in safetensors format, atomically.

    ``metadata`` is a dict of strings stored in the header (e.g. a JSON model config);
    read it back with ``load_metadata``. Tied weights saved under two names are stored
    twice (safetensors has no aliasing), and load back as two separate tensors.
    """
    path = Path(path)
    if not isinstance(tensors, dict):
        raise TypeError(f"save: expected a dict of name -> tensor, got {type(tensors).__name__}")
    metadata = dict(metadata or {})
    for k, v in metadata.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"save: metadata must map str to str, got {k!r}: "
                            f"{type(v).__name__} (json.dumps non-string values)")
    for key in (CHECKSUM_KEY, FORMAT_KEY):
        if key in metadata:
            raise ValueError(f"save: metadata key {key!r} is reserved")
    arrays = {}
    for key, value in tensors.items():
        if not isinstance(key, str):
            raise TypeError(f"save: tensor names must be str, got {key!r}")
        arrays[key] = _to_host_array(key, value)
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


def _read(path):
    """(arrays, metadata without the checksum) of a validated file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"load: no such file {str(path)!r}") from None
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


def load_arrays(path) -> dict[str, np.ndarray]:
    """``{name: NumPy array}`` from a safetensors file (validated; arrays are writable)."""
    arrays, _ = _read(path)
    return {k: np.array(v) for k, v in arrays.items()}


def load(path, device: str | None = None) -> dict:
    """``{name: Tensor}`` from a safetensors file, on ``device`` (None: minigrad's default
    device, "cpu" unless MINIGRAD_DEVICE / set_default_device say otherwise).

    Raises SerializationError when the file is truncated, corrupted or not safetensors.
    The metadata is read separately with ``load_metadata(path)``.
    """
    from .tensor import Tensor
    device = backend.check_device(device)
    arrays, _ = _read(path)
    out = {}
    for key in list(arrays):
        arr = np.array(arrays.pop(key))      # own, writable memory (not the file buffer)
        out[key] = Tensor(backend.to_device(arr, device), dtype=arr.dtype)
    return out


def load_metadata(path) -> dict[str, str]:
    """The string metadata saved with ``save(..., metadata=)``; reads only the header."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise FileNotFoundError(f"load_metadata: no such file {str(path)!r}") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        header = _parse_header(path, size, f.read(8), f.read)
    metadata = dict(header.get("__metadata__") or {})
    metadata.pop(CHECKSUM_KEY, None)
    metadata.pop(FORMAT_KEY, None)
    return metadata


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
    arrays, metadata = _read(path)
    return tensors_to_optimizer_state({k: np.array(v) for k, v in arrays.items()}, metadata)


__all__ = ["save", "load", "load_metadata", "load_arrays", "optimizer_state_to_tensors",
           "tensors_to_optimizer_state", "save_optimizer_state", "load_optimizer_state",
           "CHECKSUM_KEY", "FORMAT_KEY"]
