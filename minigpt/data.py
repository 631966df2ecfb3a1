"""Data for training: text -> train/val split -> tokenizer -> token ids on disk -> batches.

    data = prepare_data(None, "bpe", vocab_size=512, cache_dir="out/cache")  # built-in corpus
    batches = BatchSampler(data.train_ids, block_size=64, batch_size=32, seed=1337)
    x, y = batches.next()          # (B, T) int64 each; y is x shifted left by one token

The text is split by characters (the first ``1 - val_fraction`` is the training split), the
tokenizer is trained on the training split only (BPE) or on the whole text (characters, like
nanoGPT's shakespeare_char, so that every validation character has an id), and each split's
token ids are cached as a flat ``np.memmap`` file (uint16 when the vocabulary fits, else
uint32). Every cached file has a small JSON sidecar with the key it was built from (a sha256
of the data bytes, the tokenizer file and the split), its length, dtype and content hash; a
cache whose key differs or whose files are damaged is rebuilt, never silently reused. All
writes are atomic (temp file, fsync, rename), so a killed run never leaves a half-written
cache behind.

Batches are drawn like nanoGPT's ``get_batch`` (random offsets), from a dedicated
``np.random.Generator(PCG64(seed))`` whose state is the *data cursor* that a checkpoint saves,
so a resumed run draws exactly the batches the uninterrupted run would have drawn.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from minigrad.fileio import atomic_write

from .corpus import builtin_corpus
from .errors import DataError, TokenizerError, TokenizerFileError
from .tokenizer import CharTokenizer, Tokenizer, load_tokenizer

CACHE_VERSION = 1
EOT = "<|endoftext|>"
TOKENIZERS = ("bpe", "char")
BPE_PATTERN = "gpt4"


# ----------------------------------------------------------------------------- text
def read_text(path: str | os.PathLike | None) -> tuple[str, bytes]:
    """(text, raw bytes) of a UTF-8 file, or of the built-in corpus when ``path`` is None.

    An empty file, a file that is not UTF-8 or a missing file is a DataError naming it.
    """
    if path is None:
        text = builtin_corpus()
        return text, text.encode("utf-8")
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"data file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise DataError(f"data path {str(path)!r} is a directory; expected a UTF-8 text "
                        "file") from None
    except OSError as exc:
        raise DataError(f"data file {str(path)!r} cannot be read: {exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise DataError(f"data file {str(path)!r} is not UTF-8 text: byte {exc.start} (line "
                        f"{line}) is {raw[exc.start:exc.start + 1]!r}; convert it, e.g. "
                        f"iconv -f latin1 -t utf-8") from None
    if text.startswith("\ufeff"):   # a byte-order mark is not part of the text
        text = text[1:]
    if not text.strip():
        raise DataError(f"data file {str(path)!r} is empty (it holds no text to train on)")
    return text, raw


def split_text(text: str, val_fraction: float) -> tuple[str, str]:
    """The first ``1 - val_fraction`` of the characters, and the rest.

    >>> split_text("abcdefghij", 0.2)
    ('abcdefgh', 'ij')
    """
    if not 0 < val_fraction < 1:
        raise DataError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    n = int(len(text) * (1 - val_fraction))
    return text[:n], text[n:]


def sha256_hex(*parts) -> str:
    """sha256 of the parts (bytes, or str encoded as UTF-8), each prefixed by its length so
    that ("ab", "c") and ("a", "bc") differ.

    >>> sha256_hex(b"a", "bc") != sha256_hex(b"ab", "c")
    True
    """
    h = hashlib.sha256()
    for p in parts:
        b = p if isinstance(p, (bytes, bytearray, memoryview)) else str(p).encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


# ----------------------------------------------------------------------------- tokenizers
def train_tokenizer(kind: str, train_text: str, full_text: str, vocab_size: int):
    """A new tokenizer: BPE (GPT-4 split pattern, ``<|endoftext|>`` as the last id) trained on
    the training split, or characters of the whole text."""
    if kind == "bpe":
        with warnings.catch_warnings():   # a tiny text may run out of pairs: vocab is smaller
            warnings.simplefilter("ignore")
            return Tokenizer.train(train_text, vocab_size, pattern=BPE_PATTERN,
                                   special_tokens=[EOT])
    if kind == "char":
        return CharTokenizer.train(full_text)
    raise DataError(f"tokenizer must be one of {TOKENIZERS}, got {kind!r}")


def tokenizer_to_text(tok) -> str:
    """The tokenizer's file contents (its ``save`` format), as a string."""
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "tokenizer.txt"
        tok.save(p)
        return p.read_text(encoding="utf-8")


def tokenizer_from_text(text: str, where: str = "tokenizer"):
    """The inverse of ``tokenizer_to_text`` (the file's checksum is verified)."""
    import tempfile
    try:
        raw = text.encode("utf-8")
    except (AttributeError, UnicodeEncodeError):   # not str; lone surrogates
        raise TokenizerFileError(f"{where}: expected the text of a tokenizer file, got "
                                 f"{type(text).__name__} {str(text)[:40]!r}") from None
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "tokenizer.txt"
        p.write_bytes(raw)
        try:
            return load_tokenizer(p)
        except TokenizerFileError as exc:
            raise TokenizerFileError(f"{where}: {str(exc).replace(str(p), 'tokenizer file')}") \
                from None


_SIDECAR_MAX_BYTES = 64 * 1024      # a real sidecar is a few hundred bytes
_MAX_CACHED_IDS = 2 ** 40


def _read_sidecar(path: Path) -> dict | None:
    """A cache sidecar's JSON object, or None when it is missing or damaged in any way (too
    large, not UTF-8, not JSON, nested too deeply, a number of more than 4300 digits, not an
    object): a damaged sidecar means a stale cache, which is rebuilt."""
    try:
        with open(path, "rb") as f:
            raw = f.read(_SIDECAR_MAX_BYTES + 1)
        if len(raw) > _SIDECAR_MAX_BYTES:
            return None
        meta = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError, RecursionError):   # ValueError: UnicodeDecodeError,
        return None                                 # JSONDecodeError, int digit limit
    return meta if isinstance(meta, dict) else None


def _field(meta: dict, name: str, kind: type):
    """``meta[name]`` when it is a ``kind`` (an int field: not a bool), else None."""
    value = meta.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        return None
    return value


def _write_json(path: Path, obj: dict) -> None:
    atomic_write(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode("utf-8"))


def cached_tokenizer(cache_dir: Path, data_hash: str, kind: str, vocab_size: int,
                     val_fraction: float, train_text: str, full_text: str, log=None):
    """Load the cached tokenizer when its key matches, else train and cache a new one.

    Key: sha256 of (data hash, kind, vocab size, split pattern, val fraction). Returns
    (tokenizer, file text).
    """
    key = sha256_hex("tokenizer", CACHE_VERSION, data_hash, kind,
                     vocab_size if kind == "bpe" else 0,
                     BPE_PATTERN if kind == "bpe" else "", repr(float(val_fraction)))
    path, side = cache_dir / f"tokenizer-{kind}.txt", cache_dir / f"tokenizer-{kind}.json"
    meta = _read_sidecar(side)
    if meta is not None and _field(meta, "key", str) == key and path.is_file():
        try:
            raw = path.read_bytes()
            if hashlib.sha256(raw).hexdigest() == _field(meta, "sha256", str):
                return load_tokenizer(path), raw.decode("utf-8")
        except (OSError, UnicodeDecodeError, TokenizerFileError):
            pass
        if log:
            log(f"cache: {path} is damaged; training the tokenizer again")
    if log:
        what = f"BPE, vocab {vocab_size}" if kind == "bpe" else "characters"
        log(f"training the tokenizer ({what}) on {len(train_text if kind == 'bpe' else full_text):,}"
            " characters")
    tok = train_tokenizer(kind, train_text, full_text, vocab_size)
    text = tokenizer_to_text(tok)
    _cache_tokenizer(cache_dir, kind, key, text)
    return tok, text


def _cache_tokenizer(cache_dir: Path, kind: str, key: str, text: str) -> None:
    path, side = cache_dir / f"tokenizer-{kind}.txt", cache_dir / f"tokenizer-{kind}.json"
    raw = text.encode("utf-8")
    side.unlink(missing_ok=True)   # a sidecar never describes a file it was not written for
    atomic_write(path, raw)
    _write_json(side, {"key": key, "sha256": hashlib.sha256(raw).hexdigest(),
                       "version": CACHE_VERSION})


# ----------------------------------------------------------------------------- token ids
def ids_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id fits, else uint32.

    >>> ids_dtype(512), ids_dtype(70000)
    (dtype('uint16'), dtype('uint32'))
    """
    return np.dtype(np.uint16 if vocab_size <= 65536 else np.uint32)


def encode_text(tok, text: str) -> list[int]:
    """Token ids of a training text (``<|endoftext|>`` in the text is the special token)."""
    if isinstance(tok, Tokenizer) and tok.special_tokens:
        return tok.encode(text, allowed_special="all")
    return tok.encode(text)


def cached_ids(cache_dir: Path, split: str, text: str, tok, key: str, log=None) -> np.memmap:
    """The token ids of ``text`` as a read-only memmap, from the cache when its sidecar's key,
    length, dtype and content hash match; otherwise encoded and written again."""
    path, side = cache_dir / f"{split}.bin", cache_dir / f"{split}.json"
    meta = _read_sidecar(side)
    if meta is not None and _field(meta, "key", str) == key:
        arr = _open_checked(path, meta)
        bad_id = None if arr is None else _first_id_outside(arr, tok.vocab_size)
        if arr is not None and bad_id is None:
            return arr
        if log and arr is None:
            log(f"cache: {path} does not match its sidecar; encoding the {split} split again")
        elif log:
            log(f"cache: {path} holds token id {bad_id}, outside the vocabulary (size "
                f"{tok.vocab_size}); encoding the {split} split again")
        del arr
    dtype = ids_dtype(tok.vocab_size)
    ids = np.asarray(encode_text(tok, text), dtype=dtype)
    side.unlink(missing_ok=True)
    atomic_write(path, ids.tobytes())
    _write_json(side, {"key": key, "length": int(ids.size), "dtype": dtype.name,
                       "sha256": hashlib.sha256(ids.tobytes()).hexdigest(),
                       "version": CACHE_VERSION})
    arr = _open_checked(path, _read_sidecar(side) or {})
    if arr is None:   # pragma: no cover - the file we just wrote cannot be read back
        raise DataError(f"cache: {path} could not be read back after writing it")
    return arr


def _first_id_outside(ids: np.ndarray, vocab_size: int) -> int | None:
    """The largest id of ``ids`` when it is >= ``vocab_size`` (a cache the tokenizer cannot
    have written), else None."""
    if ids.size == 0:
        return None
    top = int(ids.max())
    return top if top >= vocab_size else None


def _open_checked(path: Path, meta: dict) -> np.memmap | None:
    """The cached ids as a read-only memmap when the file matches its sidecar's dtype,
    length and sha256 (every field of the right type), else None."""
    dtype_name, length = _field(meta, "dtype", str), _field(meta, "length", int)
    if dtype_name not in ("uint16", "uint32") or length is None or \
            not 0 <= length <= _MAX_CACHED_IDS:
        return None
    try:
        dtype = np.dtype(dtype_name)
        if path.stat().st_size != length * dtype.itemsize:
            return None
        if length == 0:
            return np.zeros(0, dtype=dtype)   # mmap cannot map an empty file
        arr = np.memmap(path, dtype=dtype, mode="r", shape=(length,))
        if hashlib.sha256(memoryview(arr).cast("B")).hexdigest() != _field(meta, "sha256", str):
            return None
        return arr
    except (TypeError, ValueError, OSError):
        return None


# ----------------------------------------------------------------------------- everything
@dataclass
class PreparedData:
    """What training needs from the data: the tokenizer and each split's token ids."""
    tokenizer: object                 # Tokenizer or CharTokenizer
    tokenizer_text: str               # the tokenizer's file contents (saved in checkpoints)
    train_ids: np.ndarray             # token ids of the training split (memmap)
    val_ids: np.ndarray               # token ids of the validation split (memmap)
    data_sha256: str                  # sha256 of the data file's bytes
    source: str                       # the data path, or "built-in corpus"
    stats: dict = field(default_factory=dict)   # characters and tokens per split


def prepare_data(data: str | os.PathLike | None, tokenizer: str = "bpe", vocab_size: int = 512,
                 val_fraction: float = 0.1, cache_dir: str | os.PathLike = "out/cache",
                 tokenizer_text: str | None = None, log=None) -> PreparedData:
    """Read, split, tokenize and cache. ``tokenizer_text`` (a saved tokenizer's file
    contents, e.g. from a checkpoint) is used as is instead of training one."""
    if tokenizer not in TOKENIZERS:
        raise DataError(f"tokenizer must be one of {TOKENIZERS}, got {tokenizer!r}")
    text, raw = read_text(data)
    train_text, val_text = split_text(text, val_fraction)
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    data_hash = hashlib.sha256(raw).hexdigest()
    if tokenizer_text is None:
        tok, tokenizer_text = cached_tokenizer(cache_dir, data_hash, tokenizer, vocab_size,
                                               val_fraction, train_text, text, log)
    else:
        tok = tokenizer_from_text(tokenizer_text, "checkpoint tokenizer")
    tok_hash = hashlib.sha256(tokenizer_text.encode("utf-8")).hexdigest()
    splits = {}
    for split, part in (("train", train_text), ("val", val_text)):
        key = sha256_hex("ids", CACHE_VERSION, data_hash, tok_hash, split,
                         repr(float(val_fraction)))
        try:
            splits[split] = cached_ids(cache_dir, split, part, tok, key, log)
        except TokenizerError as exc:   # e.g. a character the char vocabulary lacks
            raise DataError(f"cannot encode the {split} split of "
                            f"{data if data is not None else 'the built-in corpus'} with "
                            f"this tokenizer: {exc}") from None
    return PreparedData(tok, tokenizer_text, splits["train"], splits["val"], data_hash,
                        str(data) if data is not None else "built-in corpus",
                        {"train_chars": len(train_text), "val_chars": len(val_text),
                         "train_tokens": int(splits["train"].size),
                         "val_tokens": int(splits["val"].size)})


# ----------------------------------------------------------------------------- batches
class BatchSampler:
    """Random (B, T) windows of a token array, as nanoGPT's get_batch.

    The offsets come from ``np.random.Generator(PCG64(seed))``; ``state()`` returns the
    generator's state and the number of batches drawn (the data cursor), ``set_state`` puts
    the sampler back there.

    >>> s = BatchSampler(np.arange(10), block_size=3, batch_size=2, seed=0)
    >>> x, y = s.next(); bool((y[:, :-1] == x[:, 1:]).all()), x.shape
    (True, (2, 3))
    """

    def __init__(self, ids: np.ndarray, block_size: int, batch_size: int, seed: int,
                 name: str = "train"):
        for arg, value, low in (("block_size", block_size, 1), ("batch_size", batch_size, 1),
                                ("seed", seed, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise DataError(f"BatchSampler: {arg} must be an int >= {low}, got "
                                f"{type(value).__name__} {value!r}")
        if not (hasattr(ids, "dtype") and hasattr(ids, "ndim")):
            ids = np.asarray(ids)
        if ids.ndim != 1 or ids.dtype.kind not in "iu":
            raise DataError(f"BatchSampler: ids must be a 1-D array of integer token ids, got "
                            f"shape {tuple(ids.shape)} and dtype {ids.dtype}")
        if len(ids) <= block_size:
            raise DataError(f"the {name} split has {len(ids)} tokens, fewer than block_size + 1 "
                            f"= {block_size + 1}; use more data, a smaller block_size or a "
                            f"larger val_fraction")
        self.ids, self.block_size, self.batch_size = ids, block_size, batch_size
        self.seed = seed
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.batches_drawn = 0

    def next(self) -> tuple[np.ndarray, np.ndarray]:
        """(x, y), both (batch_size, block_size) int64; y[b, t] is the token after x[b, t]."""
        T = self.block_size
        offsets = self.rng.integers(0, len(self.ids) - T, size=self.batch_size)
        rows = offsets[:, None] + np.arange(T + 1)[None, :]             # (B, T + 1)
        window = np.asarray(self.ids[rows], dtype=np.int64)             # (B, T + 1)
        self.batches_drawn += 1
        return window[:, :-1], window[:, 1:]

    def reseed(self, seed: int | None = None) -> None:
        """Start the sequence again (validation re-seeds before every evaluation)."""
        self.rng = np.random.Generator(np.random.PCG64(self.seed if seed is None else seed))
        self.batches_drawn = 0

    def state(self) -> dict:
        """JSON-able: {"bit_generator": PCG64 state, "batches_drawn": n}."""
        return {"bit_generator": self.rng.bit_generator.state,
                "batches_drawn": self.batches_drawn}

    def set_state(self, state: dict) -> None:
        """Put the sampler back at a ``state()`` (e.g. a checkpoint's data cursor); a state
        that is not one is a DataError (nothing changes)."""
        check_sampler_state(state)
        bg = np.random.PCG64()
        bg.state = state["bit_generator"]
        self.rng = np.random.Generator(bg)
        self.batches_drawn = int(state["batches_drawn"])


def check_sampler_state(state) -> None:
    """DataError unless ``state`` is a ``BatchSampler.state()``: {"bit_generator": a PCG64
    state, "batches_drawn": int >= 0}."""
    try:
        if not isinstance(state, dict) or set(state) != {"bit_generator", "batches_drawn"}:
            raise ValueError("expected the keys ['batches_drawn', 'bit_generator']")
        n = state["batches_drawn"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"batches_drawn must be an int >= 0, got {n!r}")
        bg = state["bit_generator"]
        if not isinstance(bg, dict) or bg.get("bit_generator") != "PCG64":
            raise ValueError("bit_generator must be a PCG64 state")
        np.random.PCG64().state = bg   # NumPy checks the fields and their ranges
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise DataError(f"BatchSampler.set_state: not a sampler state ({exc}): "
                        f"{str(state)[:120]}") from None


__all__ = ["DataError", "PreparedData", "BatchSampler", "check_sampler_state", "prepare_data", "read_text",
           "split_text", "cached_ids", "cached_tokenizer", "tokenizer_to_text",
           "tokenizer_from_text", "ids_dtype", "sha256_hex", "encode_text"]
