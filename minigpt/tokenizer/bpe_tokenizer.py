"""``Tokenizer``: the byte-level BPE of :mod:`minigpt.tokenizer.bpe`, made a tool.

It adds what the algorithm leaves out: checks of everything it is given (merges, ids, special
tokens, text), special tokens with tiktoken's rules and tiktoken's names
(:mod:`~minigpt.tokenizer.base`), the file formats (:mod:`~minigpt.tokenizer.io`) and the
choice of path: the speedups of :mod:`~minigpt.tokenizer.fast` (the default) or the plain
algorithm, both giving the same merges and ids. :func:`bpe_path` is the one place that
chooses; set ``FAST = False`` to step through the plain code.

    >>> tok = Tokenizer.train("aaabdaaabac", 256 + 3, pattern=None)
    >>> tok.encode("aaabdaaabac")
    [258, 100, 258, 97, 99]
    >>> tok.decode([258, 100])
    'aaabd'
"""
from __future__ import annotations

import warnings
from collections import Counter
from typing import Iterable, Mapping, Sequence

import regex
from numpy import integer as np_integer

from ..errors import TokenizerError, TokenizerFileError
from . import io as _io
from .base import TokenizerBase, _check_ids, _check_text, _special_regex
from .bpe import BPE, PATTERNS, MergeStep, decode
from .fast import FastBPE

FAST = True   # the speedups of fast.py (True) or the plain algorithm of bpe.py: same results


def bpe_path() -> type[BPE]:
    """The one place where the path is chosen: :class:`~minigpt.tokenizer.fast.FastBPE`
    unless ``FAST`` is False, then the plain :class:`~minigpt.tokenizer.bpe.BPE`. Tokenizers
    built afterwards use it."""
    return FastBPE if FAST else BPE


def train_merges(chunk_counts: Mapping[bytes, int], num_merges: int, verbose: bool = False,
                 final: dict | None = None) -> list[tuple[int, int]]:
    """Learn up to ``num_merges`` merges from distinct chunks and their frequencies, by the
    chosen path (:func:`minigpt.tokenizer.bpe.train_merges` explains the algorithm).

    >>> train_merges({b"aaabdaaabac": 1}, 3)
    [(97, 97), (97, 98), (256, 257)]
    """
    return bpe_path().train_merges(chunk_counts, num_merges, verbose, final)


# Limits that keep a hostile or damaged tokenizer file from allocating unbounded memory (a
# few lines of merges (256, 256) -> 257, (257, 257) -> 258, ... double a token's length each
# time). Real vocabularies are far below them: GPT-4's longest token has 128 bytes.
MAX_TOKEN_ID = 2 ** 31 - 1          # ids fit an int32 (and the uint32 token cache)
MAX_TOKEN_BYTES = 2 ** 16           # bytes in one token
_VOCAB_BYTES_BASE = 2 ** 20         # all tokens together: at most 1 MiB + 256 bytes per token


# ----------------------------------------------------------------------------- checks

def _token_id(x, what: str) -> int:
    """``x`` as a token id in 0..MAX_TOKEN_ID, else a TokenizerError naming ``what``."""
    if isinstance(x, bool) or not isinstance(x, (int, np_integer)) or not 0 <= x <= MAX_TOKEN_ID:
        raise TokenizerError(f"Tokenizer: {what} must be an int id in 0..{MAX_TOKEN_ID}, got "
                             f"{x!r}"[:200])
    return int(x)


def _resolve_pattern(pattern: str | None, where: str) -> str:
    """'gpt2' / 'gpt4' as their regex, None as "" (no split); a bad regex is an error."""
    if pattern is None:
        return ""
    if not isinstance(pattern, str):
        raise TokenizerError(f"{where}: pattern must be 'gpt2', 'gpt4', a regex string or None, "
                             f"got {type(pattern).__name__}")
    pattern = PATTERNS.get(pattern, pattern)
    try:
        regex.compile(pattern)
    except regex.error as e:
        raise TokenizerError(f"{where}: pattern is not a valid regex ({e}): {pattern!r}") from None
    return pattern


def _check_byte_ids(byte_ids) -> tuple[int, ...] | None:
    """256 distinct ids (None or the identity: None)."""
    byte_ids = [_token_id(i, "byte_ids entry") for i in (range(256) if byte_ids is None
                                                         else byte_ids)]
    if len(byte_ids) != 256 or len(set(byte_ids)) != 256:
        raise TokenizerError(f"Tokenizer: byte_ids must be 256 distinct ids in "
                             f"0..{MAX_TOKEN_ID}, got {len(set(byte_ids))} distinct of "
                             f"{len(byte_ids)}")
    return None if byte_ids == list(range(256)) else tuple(byte_ids)


def _check_merges(merges, byte_ids) -> dict[tuple[int, int], int]:
    """``merges`` (a dict {(a, b): id} in rank order, or a list of pairs creating 256, 257,
    ...) as a checked dict: every id defined before it is used, no id twice, and tokens
    within the size limits."""
    if not isinstance(merges, Mapping):
        try:
            merges = {tuple(p): 256 + r for r, p in enumerate(merges)}
        except TypeError:
            raise TokenizerError(f"Tokenizer: merges must be a dict {{(a, b): id}} or a "
                                 f"list of pairs (a, b), got {type(merges).__name__}") from None
    length = dict.fromkeys(byte_ids or range(256), 1)   # id -> bytes in its token
    checked: dict[tuple[int, int], int] = {}
    total = 256
    for r, (pair, z) in enumerate(merges.items()):
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise TokenizerError(f"Tokenizer: merge {r} must be a pair of ids (a, b), got "
                                 f"{pair!r}"[:200])
        a, b = (_token_id(x, f"merge {r}") for x in pair)
        z = _token_id(z, f"merge {r} ({a}, {b}) -> new id")
        if a not in length or b not in length:
            raise TokenizerError(f"Tokenizer: merge {r} ({a}, {b}) uses an id that no earlier "
                                 "byte or merge defines")
        if z in length:
            raise TokenizerError(f"Tokenizer: merge {r} ({a}, {b}) -> {z} reuses id {z}")
        if (a, b) in checked:
            raise TokenizerError(f"Tokenizer: merge {r} ({a}, {b}) appears twice")
        n = length[a] + length[b]
        total += n
        if n > MAX_TOKEN_BYTES or total > _VOCAB_BYTES_BASE + 256 * (len(length) + 1):
            raise TokenizerError(f"Tokenizer: merge {r} ({a}, {b}) makes a token of {n} "
                                 f"bytes ({total} in the whole vocabulary); the limits are "
                                 f"{MAX_TOKEN_BYTES} per token and 1 MiB + 256 per token "
                                 "in all (a damaged or hostile merge list?)")
        checked[(a, b)] = z
        length[z] = n
    return checked


def _check_special(s, i, vocab) -> bytes:
    """The UTF-8 bytes of special token ``s`` with id ``i`` (free in ``vocab``), else an error."""
    if not isinstance(s, str) or not s:
        raise TokenizerError(f"Tokenizer: a special token must be a non-empty str, got {s!r}")
    if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i <= MAX_TOKEN_ID or i in vocab:
        raise TokenizerError(f"Tokenizer: special token {s!r} needs a free non-negative "
                             f"int id (at most {MAX_TOKEN_ID}), got {i!r}")
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError as exc:   # a lone surrogate: no UTF-8 bytes to emit
        raise TokenizerError(f"Tokenizer: special token {s[:60]!r} holds "
                             f"{s[exc.start]!r} at index {exc.start}, a lone surrogate "
                             "that is not text (it has no UTF-8 encoding)") from None


def _sanitize(text: str) -> str:
    """Replace lone surrogates by U+FFFD, exactly as tiktoken does (they are not UTF-8)."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


# ----------------------------------------------------------------------------- Tokenizer

class Tokenizer(TokenizerBase):
    """A byte-level BPE tokenizer: merges + split pattern + special tokens.

    ``merges`` maps a pair of ids to the id it creates, ordered by rank (a dict, or a sequence
    of pairs that then create ids 256, 257, ...). ``byte_ids[b]`` is the id of the single byte
    ``b`` (identity by default; GPT-2 and tiktoken files use a permutation). ``pattern`` is
    'gpt2', 'gpt4', a regex, or None/'' for "no split: the whole text is one chunk".
    """

    def __init__(self, merges: Mapping[tuple[int, int], int] | Sequence[tuple[int, int]] = (),
                 pattern: str | None = "gpt4",
                 special_tokens: Mapping[str, int] | None = None,
                 byte_ids: Sequence[int] | None = None):
        self.pattern = _resolve_pattern(pattern, "Tokenizer")
        self._byte_ids = _check_byte_ids(byte_ids)
        self.merges: dict[tuple[int, int], int] = _check_merges(merges, self._byte_ids)
        self._bpe = bpe_path()(self.merges, self.pattern, self._byte_ids)
        vocab = dict(self._bpe.vocab)
        self.special_tokens: dict[str, int] = {}
        for s, i in (special_tokens or {}).items():
            vocab[i] = _check_special(s, i, vocab)
            self.special_tokens[s] = i
        self.vocab: dict[int, bytes] = vocab   # every id -> its bytes (special tokens: UTF-8)

    # --------------------------------------------------------------------- training
    @classmethod
    def train(cls, text: str, vocab_size: int, pattern: str | None = "gpt4",
              special_tokens: Mapping[str, int] | Sequence[str] | None = None,
              verbose: bool = False) -> "Tokenizer":
        """Learn ``vocab_size - 256 - len(special_tokens)`` merges from ``text``.

        Special tokens given as a list get the ids right after the merges; given as a dict they
        keep their ids (which must not collide). Special-token strings in ``text`` are cut out
        before training, so no merge learns them. If the text runs out of pairs first, training
        stops early (with a warning) and the vocabulary is smaller.
        """
        _check_text(text, "train")
        pattern = _resolve_pattern(pattern, "train")
        specials = [] if special_tokens is None else list(special_tokens)
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
            raise TokenizerError(f"train: vocab_size must be an int, got {type(vocab_size).__name__}")
        if vocab_size < 256 + len(specials):
            raise TokenizerError(f"train: vocab_size must be >= 256 (+ {len(specials)} special "
                                 f"tokens) = {256 + len(specials)}, got {vocab_size}")
        for s in specials:
            if not isinstance(s, str) or not s:
                raise TokenizerError(f"train: special tokens must be non-empty str, got {s!r}")
        num_merges = vocab_size - 256 - len(specials)
        text = _sanitize(text)  # lone surrogates -> U+FFFD, as encode does
        pieces = _special_regex(frozenset(specials)).split(text)[::2] if specials else [text]
        path = bpe_path()
        splitter = path(pattern=pattern)
        counts: Counter = Counter()
        for piece in pieces:
            counts.update(splitter.training_chunks(piece))
        chunk_counts: dict[bytes, int] = {}
        for chunk, c in counts.items():
            b = chunk.encode("utf-8")
            chunk_counts[b] = chunk_counts.get(b, 0) + c
        final: dict[bytes, tuple[int, ...]] = {}
        merges = path.train_merges(chunk_counts, num_merges, verbose, final)
        if isinstance(special_tokens, Mapping):
            special_map = dict(special_tokens)
        else:
            special_map = {s: 256 + len(merges) + k for k, s in enumerate(specials)}
        tok = cls(merges, pattern, special_map)
        if len(merges) < num_merges:
            warnings.warn(f"train: the text has only enough pairs for {len(merges)} merges, "
                          f"not {num_merges}; vocab_size is {tok.vocab_size}", stacklevel=2)
        tok._bpe.remember(counts, final)
        return tok

    # --------------------------------------------------------------------- properties
    @property
    def vocab_size(self) -> int:
        """Largest id + 1 (like tiktoken's ``n_vocab``)."""
        return max(self.vocab) + 1

    def __repr__(self) -> str:
        return (f"Tokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)}, "
                f"special_tokens={self.special_tokens})")

    # --------------------------------------------------------------------- encoding
    def split(self, text: str) -> list[str]:
        """The regex chunks of ``text``; merges never cross them.

        >>> Tokenizer(pattern="gpt4").split("Hello world!!")
        ['Hello', ' world', '!!']
        """
        _check_text(text, "split")
        return self._bpe.split(text)

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode ``text`` treating special-token strings as ordinary text."""
        _check_text(text, "encode_ordinary")
        return self._bpe.encode(_sanitize(text))

    def encode_bytes(self, data: bytes) -> list[int]:
        """Encode arbitrary bytes (not necessarily UTF-8); ``decode_bytes`` gives them back.

        Invalid UTF-8 bytes become lone surrogates (``surrogateescape``) for the regex split and
        turn back into the same bytes inside each chunk.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TokenizerError(f"encode_bytes: data must be bytes, got {type(data).__name__}")
        return self._bpe.encode(bytes(data).decode("utf-8", "surrogateescape"))

    # --------------------------------------------------------------------- decoding
    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """Concatenate the bytes of ``ids``. An unknown id is a TokenizerError."""
        try:
            return decode(ids, self.vocab)
        except (KeyError, TypeError):
            pass
        _check_ids(ids, self.vocab, self.vocab_size)
        raise TokenizerError(f"decode: ids must be an iterable of int, got {type(ids).__name__}")

    def decode(self, ids: Iterable[int], errors: str = "replace") -> str:
        """Decode ids to text; byte sequences that are not UTF-8 become U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors=errors)

    # --------------------------------------------------------------------- show your work
    def explain(self, chunk: str) -> list[MergeStep]:
        """Each merge encode applies to ``chunk`` (treated as one chunk), in order.

        >>> tok = Tokenizer.train("aaabdaaabac", 259, pattern=None)
        >>> [(s.pair, s.rank, s.new_id) for s in tok.explain("aaab")]
        [((97, 97), 0, 256), ((97, 98), 1, 257), ((256, 257), 2, 258)]
        """
        _check_text(chunk, "explain", "chunk")
        return list(self._bpe.merge_steps(self._bpe.chunk_ids(chunk)))

    # --------------------------------------------------------------------- interop
    def mergeable_ranks(self) -> dict[bytes, int]:
        """tiktoken's ``{token bytes: rank}`` for the non-special tokens (rank = id)."""
        ranks: dict[bytes, int] = {}
        specials = set(self.special_tokens.values())
        for i, b in sorted(self.vocab.items()):
            if i in specials:
                continue
            if b in ranks:
                raise TokenizerError(f"mergeable_ranks: ids {ranks[b]} and {i} both decode to "
                                     f"{b!r}; tiktoken needs one id per byte string")
            ranks[b] = i
        return ranks

    @classmethod
    def from_ranks(cls, ranks: Mapping[bytes, int], pattern: str | None = "gpt4",
                   special_tokens: Mapping[str, int] | None = None) -> "Tokenizer":
        """Rebuild merges from tiktoken-style ranks: each multi-byte token is the merge of the two
        parts that BPE with only lower-ranked tokens leaves it in (as minbpe does)."""
        byte_ids, merges = _io.merges_from_ranks(ranks, MAX_TOKEN_BYTES)
        return cls(merges, pattern, special_tokens, byte_ids=byte_ids)

    @classmethod
    def from_tiktoken(cls, path_or_ranks, pattern: str | None = "gpt4",
                      special_tokens: Mapping[str, int] | None = None) -> "Tokenizer":
        """From a tiktoken rank file (``base64token rank`` per line) or a ``{bytes: rank}`` dict."""
        if isinstance(path_or_ranks, Mapping):
            return cls.from_ranks(path_or_ranks, pattern, special_tokens)
        ranks = _io.read_tiktoken(path_or_ranks)
        try:
            return cls.from_ranks(ranks, pattern, special_tokens)
        except TokenizerFileError:
            raise
        except TokenizerError as e:
            raise TokenizerFileError(f"{path_or_ranks}: {e}") from None

    def save_tiktoken(self, path) -> None:
        """Write a tiktoken rank file (special tokens and pattern are not part of that format)."""
        _io.write_tiktoken(path, self.mergeable_ranks())

    def to_tiktoken(self, name: str = "minigpt"):
        """A ``tiktoken.Encoding`` with the same ranks, pattern and special tokens."""
        import tiktoken
        return tiktoken.Encoding(name, pat_str=self.pattern, mergeable_ranks=self.mergeable_ranks(),
                                 special_tokens=dict(self.special_tokens))

    @classmethod
    def from_gpt2(cls, encoder_json_path, vocab_bpe_path, pattern: str | None = "gpt2") -> "Tokenizer":
        """From GPT-2's ``encoder.json`` + ``vocab.bpe`` (byte-to-unicode mapped strings).
        Entries of encoder.json that are neither bytes nor merges become special tokens."""
        byte_ids, merges, specials = _io.read_gpt2(encoder_json_path, vocab_bpe_path)
        try:
            return cls(merges, pattern, specials, byte_ids=byte_ids)
        except TokenizerError as e:
            raise TokenizerFileError(f"{vocab_bpe_path}: {e}") from None

    def save_gpt2(self, encoder_json_path, vocab_bpe_path) -> None:
        """Write GPT-2's ``encoder.json`` + ``vocab.bpe`` (the pattern is not part of it)."""
        byte_ids = self._byte_ids or tuple(range(256))
        _io.write_gpt2(encoder_json_path, vocab_bpe_path, byte_ids, self.merges, self.vocab,
                       self.special_tokens)

    # --------------------------------------------------------------------- own format
    def save(self, path) -> None:
        """Save in the documented ``minigpt-tokenizer bpe 1`` text format (atomically)."""
        _io.write_bpe(path, self.pattern, self.special_tokens, self._byte_ids, self.merges)

    @classmethod
    def load(cls, path) -> "Tokenizer":
        """Load a file written by :meth:`save`; a broken file raises TokenizerFileError."""
        pattern, specials, byte_ids, merges = _io.read_bpe(path)
        try:
            return cls(merges, pattern, specials, byte_ids=byte_ids)
        except TokenizerError as e:
            raise TokenizerFileError(f"{path}: {e}") from None


__all__ = ["Tokenizer", "FAST", "bpe_path", "train_merges", "MAX_TOKEN_ID", "MAX_TOKEN_BYTES"]
