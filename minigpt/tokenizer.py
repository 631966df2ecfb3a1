"""Byte-level BPE: stages 1 and 2 of a token's life (text -> chunks -> token ids).

The 256 byte values are the base vocabulary, so every string (and every byte string) encodes,
with no unknown token. Text is first cut into chunks by a regex (the GPT-2 or GPT-4 split
pattern, or your own) and merges never cross a chunk boundary. Training repeatedly merges the
most frequent adjacent pair; encoding replays the learned merges, lowest rank first.

    >>> tok = Tokenizer.train("aaabdaaabac", 256 + 3, pattern=None)
    >>> tok.encode("aaabdaaabac")
    [258, 100, 258, 97, 99]
    >>> tok.decode([258, 100])
    'aaabd'

Tie-break (documented, deterministic): among pairs with the highest count, the smallest pair
``(a, b)`` in lexicographic order wins. The same text and vocab size always give the same merges.

File formats (save/load, tiktoken ranks, GPT-2 ``encoder.json`` + ``vocab.bpe``) live in
:mod:`minigpt.tokenizer_io`.
tiktoken's public names (``n_vocab``, ``encode_ordinary``, ``encode_batch``, ``decode_bytes``,
``decode_single_token_bytes``, ...) and its special-token rules, shared with
:class:`CharTokenizer`, live in :mod:`minigpt.tokenizer_base`.
"""
from __future__ import annotations

import gc
import heapq
import re
import sys
import time
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass
from itertools import chain, repeat
from typing import Iterable, Mapping, Sequence

import regex
from numpy import integer as np_integer

from minigpt import tokenizer_io as _io
from minigpt.bpe_batch import PairRanks, bpe_many
from minigpt.errors import TokenizerError, TokenizerFileError
from minigpt.tokenizer_base import EOT, TokenizerBase, _check_text, _special_regex

__all__ = [
    "GPT2_SPLIT_PATTERN", "GPT4_SPLIT_PATTERN", "PATTERNS", "Tokenizer", "CharTokenizer",
    "MergeStep", "load_tokenizer", "get_stats", "merge", "train_merges", "TokenizerError",
    "TokenizerFileError",
]

GPT2_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
GPT4_SPLIT_PATTERN = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
PATTERNS = {"gpt2": GPT2_SPLIT_PATTERN, "gpt4": GPT4_SPLIT_PATTERN}
# The same two patterns for ASCII-only text, for the standard library's ``re``, which splits
# such text about twice as fast as ``regex``. In ASCII, \p{L} is [A-Za-z], \p{N} is [0-9] and
# (with re.ASCII) \s is [ \t\n\r\f\v], as in ``regex``; the possessive quantifiers can be
# dropped because backtracking into them can never find another match here. The tests check
# the splits are identical on random ASCII text.
_ASCII_SPLITTERS = {
    GPT2_SPLIT_PATTERN: re.compile(
        r"""'(?:[sdmt]|ll|ve|re)| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+""", re.ASCII),
    GPT4_SPLIT_PATTERN: re.compile(
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\nA-Za-z0-9]?[A-Za-z]+|[0-9]{1,3}| ?[^\sA-Za-z0-9]+[\r\n]*"""
        r"""|\s*[\r\n]|\s+(?!\S)|\s+""", re.ASCII),
}
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_MIN_ASCII_STRETCH = 2048  # characters of ASCII between two non-ASCII ones to split it apart
_ASCII_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def _is_cut(text: str, i: int, gpt4: bool) -> bool:
    r"""Whether no chunk of the built-in pattern crosses position i, whatever the rest of the
    text: a newline right after an ASCII letter (a run of letters ends there and the newline
    starts a chunk afresh), or, with GPT-4's pattern, a letter right after a newline (its
    \s*[\r\n] ends a whitespace run at its last newline; GPT-2's \s+(?!\S) would not)."""
    if not 0 < i < len(text):
        return False
    return (text[i] == "\n" and text[i - 1] in _ASCII_LETTERS) or \
        (gpt4 and text[i - 1] == "\n" and text[i] in _ASCII_LETTERS)


def _cut_before(text: str, lo: int, hi: int, gpt4: bool) -> int:
    """The last cut (see _is_cut) in [lo, hi], else lo."""
    c = text.rfind("\n", lo, hi)
    while c != -1:
        if c + 1 <= hi and _is_cut(text, c + 1, gpt4):
            return c + 1
        if _is_cut(text, c, gpt4):
            return c
        c = text.rfind("\n", lo, c)
    return lo


def _cut_after(text: str, lo: int, gpt4: bool) -> int:
    """The first cut (see _is_cut) at or after lo, else len(text)."""
    c = text.find("\n", lo)
    while c != -1:
        if _is_cut(text, c, gpt4):
            return c
        if _is_cut(text, c + 1, gpt4):
            return c + 1
        c = text.find("\n", c + 1)
    return len(text)


_LONG_CHUNK = 256      # chunks longer than this (in bytes) use the O(n log n) heap encoder
_CACHE_MAX = 100_000   # the chunk cache is cleared when it grows past this many entries
_BATCH_MIN = 64        # this many new chunks or more are encoded together by bpe_batch

# Limits that keep a hostile or damaged tokenizer file from allocating unbounded memory (a
# few lines of merges (256, 256) -> 257, (257, 257) -> 258, ... double a token's length each
# time). Real vocabularies are far below them: GPT-4's longest token has 128 bytes.
MAX_TOKEN_ID = 2 ** 31 - 1          # ids fit an int32 (and the uint32 token cache)
MAX_TOKEN_BYTES = 2 ** 16           # bytes in one token
_VOCAB_BYTES_BASE = 2 ** 20         # all tokens together: at most 1 MiB + 256 bytes per token


# ----------------------------------------------------------------------------- pure helpers

def get_stats(ids: Sequence[int], counts: dict | None = None, weight: int = 1) -> dict:
    """Count adjacent pairs (overlapping pairs count too), adding ``weight`` per occurrence.

    >>> get_stats([1, 2, 3, 1, 2])
    {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    >>> get_stats([7, 7, 7])
    {(7, 7): 2}
    """
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + weight
    return counts


def merge(ids: Sequence[int], pair: tuple[int, int], idx: int) -> list[int]:
    """Replace every occurrence of ``pair`` in ``ids``, scanning left to right, with ``idx``.

    >>> merge([1, 2, 3, 1, 2], (1, 2), 4)
    [4, 3, 4]
    >>> merge([7, 7, 7], (7, 7), 8)
    [8, 7]
    """
    a, b = pair
    out, i, n = [], 0, len(ids)
    while i < n:
        if ids[i] == a and i + 1 < n and ids[i + 1] == b:
            out.append(idx)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


NO_RANK = sys.maxsize  # the "rank" of a pair that is not a merge


def _bpe_short(ids: list[int], ranks: dict, rank_to_id: list[int]) -> list[int]:
    """Apply merges to one chunk, lowest rank first (leftmost first), until none applies.

    Keeps the rank of every adjacent pair in a list and updates only the two neighbours of a
    merge, so each step is a C-level ``min`` + ``index``.
    >>> _bpe_short([97, 97, 97, 98], {(97, 97): 0, (256, 97): 1}, [256, 257])
    [257, 98]
    """
    get = ranks.get
    rk = list(map(get, zip(ids, ids[1:]), repeat(NO_RANK)))
    while rk:
        r = min(rk)
        if r == NO_RANK:
            break
        i = rk.index(r)
        z = ids[i] = rank_to_id[r]
        del ids[i + 1], rk[i]
        if i:
            rk[i - 1] = get((ids[i - 1], z), NO_RANK)
        if i < len(rk):
            rk[i] = get((z, ids[i + 1]), NO_RANK)
    return ids


def _bpe_long(ids: list[int], ranks: dict, rank_to_id: list[int]) -> list[int]:
    """Same result as :func:`_bpe_short` in O(n log n): a heap of (rank, position) over a
    linked list. Merging the leftmost lowest-rank pair one at a time equals merging all of its
    occurrences left to right, because every pair a merge creates has a higher rank.

    >>> _bpe_long([97, 97, 97, 98], {(97, 97): 0, (256, 97): 1}, [256, 257])
    [257, 98]
    """
    n = len(ids)
    tok, nxt, prv, alive = list(ids), list(range(1, n + 1)), list(range(-1, n - 1)), [True] * n
    get = ranks.get
    heap = [(r, i) for i, r in enumerate(map(get, zip(ids, ids[1:]), repeat(NO_RANK)))
            if r != NO_RANK]
    heapq.heapify(heap)
    while heap:
        r, i = heapq.heappop(heap)
        j = nxt[i]
        if not alive[i] or j >= n or get((tok[i], tok[j])) != r:
            continue  # stale entry
        tok[i] = rank_to_id[r]
        alive[j] = False
        nxt[i] = k = nxt[j]
        if k < n:
            prv[k] = i
            r = get((tok[i], tok[k]), NO_RANK)
            if r != NO_RANK:
                heapq.heappush(heap, (r, i))
        h = prv[i]
        if h >= 0:
            r = get((tok[h], tok[i]), NO_RANK)
            if r != NO_RANK:
                heapq.heappush(heap, (r, h))
    return [t for t, a in zip(tok, alive) if a]


def _split_token(token: bytes, ranks: Mapping[bytes, int], limit: int):
    """The two parts BPE leaves ``token`` in when it may use only tokens ranked below
    ``limit`` (merging the lowest-ranked adjacent pair first, leftmost on ties), or None.

    The same result as minbpe's rescan loop in O(n log n): a heap of (rank, position) over a
    linked list of parts, so a long token in a hostile rank file cannot take O(n^2) steps.
    >>> _split_token(b"abc", {b"ab": 0, b"bc": 1, b"abc": 2}, 2)
    (b'ab', b'c')
    """
    n = len(token)
    parts = [token[i:i + 1] for i in range(n)]
    nxt, prv, alive = list(range(1, n + 1)), list(range(-1, n - 1)), [True] * n
    get = ranks.get

    def rank_of(i, j):
        r = get(parts[i] + parts[j])
        return r if r is not None and r < limit else None

    heap = [(r, i) for i in range(n - 1) if (r := rank_of(i, i + 1)) is not None]
    heapq.heapify(heap)
    count = n
    while heap and count > 2:
        r, i = heapq.heappop(heap)
        j = nxt[i]
        if not alive[i] or j >= n or rank_of(i, j) != r:
            continue  # stale entry
        parts[i] += parts[j]
        alive[j] = False
        count -= 1
        nxt[i] = k = nxt[j]
        if k < n:
            prv[k] = i
            if (r := rank_of(i, k)) is not None:
                heapq.heappush(heap, (r, i))
        h = prv[i]
        if h >= 0 and (r := rank_of(h, i)) is not None:
            heapq.heappush(heap, (r, h))
    if count != 2:
        return None
    left = alive.index(True)
    return parts[left], parts[nxt[left]]


def train_merges(chunk_counts: Mapping[bytes, int], num_merges: int, verbose: bool = False,
                 final: dict | None = None) -> list[tuple[int, int]]:
    """Learn up to ``num_merges`` merges from distinct chunks and their frequencies.

    Merge ``i`` creates id ``256 + i``. Each distinct chunk is stored once; pair counts are kept
    up to date incrementally, touching only the chunks that contain the merged pair (an index
    pair -> chunk ids). The best pair comes from a max-heap with lazy invalidation: an entry is
    valid only if its count still equals the pair's current count. Ties: highest count, then
    the smallest pair ``(a, b)``. Stops early when no adjacent pair is left. If ``final`` is a
    dict, it receives ``{chunk: its ids after all merges}`` (what encoding the chunk gives).

    >>> train_merges({b"aaabdaaabac": 1}, 3)
    [(97, 97), (97, 98), (256, 257)]
    """
    words = [list(w) for w in chunk_counts if len(w) >= 2]
    freqs = [f for w, f in chunk_counts.items() if len(w) >= 2]
    counts: dict[tuple[int, int], int] = defaultdict(int)
    where: dict[tuple[int, int], set[int]] = defaultdict(set)
    for i, (w, f) in enumerate(zip(words, freqs)):
        for p in zip(w, w[1:]):
            counts[p] += f
            where[p].add(i)
    heap = [(-c, p) for p, c in counts.items()]
    heapq.heapify(heap)
    merges: list[tuple[int, int]] = []
    t0 = time.perf_counter()
    while len(merges) < num_merges:
        while heap and (heap[0][0] != -counts.get(heap[0][1], 0) or heap[0][0] == 0):
            heapq.heappop(heap)  # stale
        if not heap:
            break
        negc, pair = heapq.heappop(heap)
        a, b = pair
        z = 256 + len(merges)
        merges.append(pair)
        changed: set[tuple[int, int]] = set()
        for wi in where.pop(pair):
            w, f = words[wi], freqs[wi]
            out, i, n = [], 0, len(w)
            while i < n:
                if w[i] == a and i + 1 < n and w[i + 1] == b:
                    if out:  # the pair on our left now ends in z
                        left = out[-1]
                        counts[(left, a)] -= f
                        counts[(left, z)] += f
                        where[(left, z)].add(wi)
                        changed.add((left, a)), changed.add((left, z))
                    if i + 2 < n:  # the pair on our right now starts with z
                        right = w[i + 2]
                        counts[(b, right)] -= f
                        counts[(z, right)] += f
                        where[(z, right)].add(wi)
                        changed.add((b, right)), changed.add((z, right))
                    counts[pair] -= f
                    out.append(z)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            words[wi] = out
        counts.pop(pair, None)
        for p in changed:
            c = counts.get(p, 0)
            if c > 0:
                heapq.heappush(heap, (-c, p))
            elif p in counts:
                del counts[p]
        if verbose and (len(merges) % 100 == 0 or len(merges) == num_merges):
            print(f"merge {len(merges)}/{num_merges}: {pair} -> {z} ({-negc} occurrences), "
                  f"{time.perf_counter() - t0:.1f}s")
    if final is not None:
        final.update({w: tuple(w) for w in chunk_counts if len(w) < 2})
        final.update(zip((w for w in chunk_counts if len(w) >= 2), map(tuple, words)))
    return merges


def _token_id(x, what: str) -> int:
    """``x`` as a token id in 0..MAX_TOKEN_ID, else a TokenizerError naming ``what``."""
    if isinstance(x, bool) or not isinstance(x, (int, np_integer)) or not 0 <= x <= MAX_TOKEN_ID:
        raise TokenizerError(f"Tokenizer: {what} must be an int id in 0..{MAX_TOKEN_ID}, got "
                             f"{x!r}"[:200])
    return int(x)


def _check_ids(ids, vocab, size: int) -> None:
    """Raise a TokenizerError naming the first id of ``ids`` that is not an int in ``vocab``
    (the slow path of decode, only to build a precise message)."""
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        raise TokenizerError(f"decode: ids must be an iterable of int, got {type(ids).__name__}")
    for i in ids:
        ok = isinstance(i, (int, np_integer)) and not isinstance(i, bool)
        if not ok or i not in vocab:
            bad = i if ok else f"{i!r} ({type(i).__name__})"
            raise TokenizerError(f"decode: id {bad} is outside the vocabulary (size {size}): "
                                 f"expected an int id in 0..{size - 1}"[:300])


def _resolve_pattern(pattern: str | None, where: str) -> str:
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


def _sanitize(text: str) -> str:
    """Replace lone surrogates by U+FFFD, exactly as tiktoken does (they are not UTF-8)."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


@dataclass(frozen=True)
class MergeStep:
    """One merge applied to a chunk: every occurrence of ``pair`` became ``new_id``."""
    pair: tuple[int, int]      # the two ids merged
    rank: int                  # position of the merge in the merge list (lower merges first)
    new_id: int                # id of the merged token
    tokens_after: list[int]    # the chunk's ids after this step


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
        self._compiled = regex.compile(self.pattern) if self.pattern else None
        self._covering = self.pattern in PATTERNS.values()
        self._ascii_split = _ASCII_SPLITTERS.get(self.pattern)
        if byte_ids is None:
            byte_ids = range(256)
        byte_ids = [_token_id(i, "byte_ids entry") for i in byte_ids]
        if len(byte_ids) != 256 or len(set(byte_ids)) != 256:
            raise TokenizerError(f"Tokenizer: byte_ids must be 256 distinct ids in "
                                 f"0..{MAX_TOKEN_ID}, got {len(set(byte_ids))} distinct of "
                                 f"{len(byte_ids)}")
        self._byte_ids = None if byte_ids == list(range(256)) else tuple(byte_ids)
        vocab = {i: bytes([b]) for b, i in enumerate(byte_ids)}
        if not isinstance(merges, Mapping):
            try:
                merges = {tuple(p): 256 + r for r, p in enumerate(merges)}
            except TypeError:
                raise TokenizerError(f"Tokenizer: merges must be a dict {{(a, b): id}} or a "
                                     f"list of pairs (a, b), got {type(merges).__name__}") from None
        self.merges: dict[tuple[int, int], int] = {}
        total = 256
        for r, (pair, z) in enumerate(merges.items()):
            if not (isinstance(pair, tuple) and len(pair) == 2):
                raise TokenizerError(f"Tokenizer: merge {r} must be a pair of ids (a, b), got "
                                     f"{pair!r}"[:200])
            a, b = (_token_id(x, f"merge {r}") for x in pair)
            z = _token_id(z, f"merge {r} ({a}, {b}) -> new id")
            if a not in vocab or b not in vocab:
                raise TokenizerError(f"Tokenizer: merge {r} ({a}, {b}) uses an id that no earlier "
                                     "byte or merge defines")
            if z in vocab:
                raise TokenizerError(f"Tokenizer: merge {r} ({a}, {b}) -> {z} reuses id {z}")
            if (a, b) in self.merges:
                raise TokenizerError(f"Tokenizer: merge {r} ({a}, {b}) appears twice")
            n = len(vocab[a]) + len(vocab[b])
            total += n
            if n > MAX_TOKEN_BYTES or total > _VOCAB_BYTES_BASE + 256 * (len(vocab) + 1):
                raise TokenizerError(f"Tokenizer: merge {r} ({a}, {b}) makes a token of {n} "
                                     f"bytes ({total} in the whole vocabulary); the limits are "
                                     f"{MAX_TOKEN_BYTES} per token and 1 MiB + 256 per token "
                                     "in all (a damaged or hostile merge list?)")
            self.merges[(a, b)] = z
            vocab[z] = vocab[a] + vocab[b]
        self._ranks = {p: r for r, p in enumerate(self.merges)}
        self._rank_to_id = list(self.merges.values())
        self.special_tokens: dict[str, int] = {}
        for s, i in (special_tokens or {}).items():
            if not isinstance(s, str) or not s:
                raise TokenizerError(f"Tokenizer: a special token must be a non-empty str, got {s!r}")
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i <= MAX_TOKEN_ID \
                    or i in vocab:
                raise TokenizerError(f"Tokenizer: special token {s!r} needs a free non-negative "
                                     f"int id (at most {MAX_TOKEN_ID}), got {i!r}")
            try:
                vocab[i] = s.encode("utf-8")
            except UnicodeEncodeError as exc:   # a lone surrogate: no UTF-8 bytes to emit
                raise TokenizerError(f"Tokenizer: special token {s[:60]!r} holds "
                                     f"{s[exc.start]!r} at index {exc.start}, a lone surrogate "
                                     "that is not text (it has no UTF-8 encoding)") from None
            self.special_tokens[s] = i
        self.vocab: dict[int, bytes] = vocab   # every id -> its bytes (special tokens: UTF-8)
        self._cache: dict[str, tuple[int, ...]] = {}
        self._pair_ranks: PairRanks | None = None  # built on the first batch encode

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
        counts: Counter = Counter()
        if pattern:
            # the built-in patterns split as encode does (ASCII stretches by the fast splitter)
            split = Tokenizer(pattern=pattern)._split if pattern in _ASCII_SPLITTERS \
                else regex.compile(pattern).findall
            for piece in pieces:
                counts.update(split(piece))
        else:
            counts.update(p for p in pieces if p)
        chunk_counts: dict[bytes, int] = {}
        for chunk, c in counts.items():
            b = chunk.encode("utf-8")
            chunk_counts[b] = chunk_counts.get(b, 0) + c
        final: dict[bytes, tuple[int, ...]] = {}
        merges = train_merges(chunk_counts, num_merges, verbose=verbose, final=final)
        if isinstance(special_tokens, Mapping):
            special_map = dict(special_tokens)
        else:
            special_map = {s: 256 + len(merges) + k for k, s in enumerate(specials)}
        tok = cls(merges, pattern, special_map)
        if len(merges) < num_merges:
            warnings.warn(f"train: the text has only enough pairs for {len(merges)} merges, "
                          f"not {num_merges}; vocab_size is {tok.vocab_size}", stacklevel=2)
        # seed the chunk cache with what training already computed (most frequent first)
        for chunk, _ in counts.most_common(_CACHE_MAX // 2):
            tok._cache[chunk] = final[chunk.encode("utf-8")]
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
        return self._split(text)

    def _split(self, text: str) -> list[str]:
        c = self._compiled
        if c is None:
            return [text] if text else []
        if self._ascii_split is not None:
            return self._ascii_split.findall(text) if text.isascii() else self._split_mixed(text)
        if c.groups == 0:
            chunks = c.findall(text)
            if self._covering or sum(map(len, chunks)) == len(text):
                return chunks
        # a custom pattern with groups or gaps: keep the unmatched text as chunks too
        chunks, pos = [], 0
        for m in c.finditer(text):
            if m.start() > pos:
                chunks.append(text[pos:m.start()])
            if m.end() > m.start():
                chunks.append(m.group())
            pos = m.end()
        if pos < len(text):
            chunks.append(text[pos:])
        return chunks

    def _split_mixed(self, text: str) -> list[str]:
        """Split text with a built-in pattern: the stretches around non-ASCII characters
        with ``regex``, the ASCII stretches between them with the fast stdlib splitter.
        Stretches are cut only where no chunk can cross (see _is_cut), so the chunks are
        those of ``regex`` on the whole text (tested)."""
        fast, slow = self._ascii_split.findall, self._compiled.findall
        gpt4 = self.pattern == GPT4_SPLIT_PATTERN
        chunks: list[str] = []
        pos = 0
        while (m := _NON_ASCII.search(text, pos)) is not None:
            a, b = _cut_before(text, pos, m.start(), gpt4), _cut_after(text, m.end(), gpt4)
            # a short stretch of ASCII is not worth its own call: keep going
            while (m := _NON_ASCII.search(text, b)) is not None and \
                    m.start() - b < _MIN_ASCII_STRETCH:
                b = _cut_after(text, m.end(), gpt4)
            chunks += fast(text[pos:a])
            chunks += slow(text[a:b])
            pos = b
        chunks += fast(text[pos:])
        return chunks

    def _encode_chunk(self, chunk: str) -> tuple[int, ...]:
        b = chunk.encode("utf-8", "surrogateescape")
        ids = list(b) if self._byte_ids is None else [self._byte_ids[x] for x in b]
        bpe = _bpe_short if len(ids) <= _LONG_CHUNK else _bpe_long
        return tuple(bpe(ids, self._ranks, self._rank_to_id))

    def _encode_chunks(self, chunks: list[str]) -> list[int]:
        cache = self._cache
        try:  # fast path: every chunk already cached (runs in C)
            return list(chain.from_iterable(map(cache.__getitem__, chunks)))
        except KeyError:
            pass
        # cold path: run BPE once per distinct new chunk, then take the fast path
        new = set(chunks).difference(cache)
        if len(cache) + len(new) > _CACHE_MAX:
            cache.clear()
            new = set(chunks)
        if len(new) > _CACHE_MAX:  # too many distinct chunks to cache them all: stream
            return list(chain.from_iterable(map(self._encode_chunk, chunks)))
        byte_ids = self._byte_ids
        batch, batch_bytes = [], []   # (most new chunks go to bpe_batch, all at once)
        for chunk in new:
            b = chunk.encode("utf-8", "surrogateescape")
            if len(b) == 1 and byte_ids is None:
                cache[chunk] = (b[0],)
            elif len(new) >= _BATCH_MIN and len(b) <= _LONG_CHUNK:
                batch.append(chunk)
                batch_bytes.append(b)
            else:
                cache[chunk] = self._encode_chunk(chunk)
        if batch:
            if self._pair_ranks is None:
                self._pair_ranks = PairRanks(self._ranks, self._rank_to_id, byte_ids)
            # thousands of new tuples of ints would set off garbage collections that cannot
            # find anything (~10% of a first encode): pause the collector while making them
            collecting = gc.isenabled()
            gc.disable()
            try:
                cache.update(zip(batch, bpe_many(batch_bytes, self._pair_ranks)))
            finally:
                if collecting:
                    gc.enable()
        return list(chain.from_iterable(map(cache.__getitem__, chunks)))

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode ``text`` treating special-token strings as ordinary text."""
        _check_text(text, "encode_ordinary")
        return self._encode_chunks(self._split(_sanitize(text)))

    def encode_bytes(self, data: bytes) -> list[int]:
        """Encode arbitrary bytes (not necessarily UTF-8); ``decode_bytes`` gives them back.

        Invalid UTF-8 bytes become lone surrogates (``surrogateescape``) for the regex split and
        turn back into the same bytes inside each chunk.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TokenizerError(f"encode_bytes: data must be bytes, got {type(data).__name__}")
        return self._encode_chunks(self._split(bytes(data).decode("utf-8", "surrogateescape")))

    # --------------------------------------------------------------------- decoding
    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """Concatenate the bytes of ``ids``. An unknown id is a TokenizerError."""
        try:
            return b"".join(map(self.vocab.__getitem__, ids))
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
        b = chunk.encode("utf-8", "surrogateescape")
        ids = list(b) if self._byte_ids is None else [self._byte_ids[x] for x in b]
        steps, ranks = [], self._ranks
        while len(ids) >= 2:
            pair = min(zip(ids, ids[1:]), key=lambda p: ranks.get(p, NO_RANK))
            if pair not in ranks:
                break
            ids = merge(ids, pair, self.merges[pair])
            steps.append(MergeStep(pair, ranks[pair], self.merges[pair], list(ids)))
        return steps

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
        byte_ids = [ranks.get(bytes([b])) for b in range(256)]
        missing = [b for b, i in enumerate(byte_ids) if i is None]
        if missing:
            raise TokenizerError(f"from_ranks: the ranks lack {len(missing)} single bytes "
                                 f"(e.g. {bytes([missing[0]])!r}); all 256 are needed")
        merges: dict[tuple[int, int], int] = {}
        for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
            if len(token) < 2:
                continue
            if len(token) > MAX_TOKEN_BYTES:
                raise TokenizerError(f"from_ranks: token of rank {rank} has {len(token)} bytes, "
                                     f"more than the limit of {MAX_TOKEN_BYTES}")
            parts = _split_token(token, ranks, rank)
            if parts is None:
                raise TokenizerError(f"from_ranks: token {token[:60]!r} (rank {rank}) is not the "
                                     "merge of two lower-ranked tokens")
            merges[(ranks[parts[0]], ranks[parts[1]])] = rank
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


# ----------------------------------------------------------------------------- characters

class CharTokenizer(TokenizerBase):
    """One id per character, vocab = sorted set of the training text's characters
    (like nanoGPT's shakespeare_char).

    >>> tok = CharTokenizer.train("hello")
    >>> tok.encode("hole"), tok.vocab_size
    ([1, 3, 2, 0], 4)
    """

    @property
    def special_tokens(self) -> dict[str, int]:
        """Always empty: a character vocabulary has no special tokens."""
        return {}

    def __init__(self, chars: Iterable[str]):
        chars = list(chars)
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise TokenizerError(f"CharTokenizer: each vocabulary entry must be one character, "
                                     f"got {c!r}")
        if len(set(chars)) != len(chars):
            raise TokenizerError("CharTokenizer: the vocabulary has repeated characters")
        self.chars = chars
        self.stoi = {c: i for i, c in enumerate(chars)}
        self._itos = dict(enumerate(chars))
        self.vocab = {i: c.encode("utf-8", "surrogatepass") for i, c in enumerate(chars)}

    @classmethod
    def train(cls, text: str) -> "CharTokenizer":
        _check_text(text, "train")
        if not text:
            raise TokenizerError("train: text must not be empty")
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"

    def encode_ordinary(self, text: str) -> list[int]:
        """The id of each character; one outside the vocabulary is a TokenizerError."""
        _check_text(text, "encode_ordinary")
        try:
            return list(map(self.stoi.__getitem__, text))
        except KeyError:
            for k, c in enumerate(text):
                if c not in self.stoi:
                    raise TokenizerError(f"encode: character {c!r} (U+{ord(c):04X}) at index {k} "
                                         "is not in the vocabulary") from None
            raise

    def split(self, text: str) -> list[str]:
        _check_text(text, "split")
        return list(text)

    def decode(self, ids: Iterable[int], errors: str = "replace") -> str:
        if not isinstance(ids, (str, bytes)):
            try:
                return "".join(map(self._itos.__getitem__, ids))
            except (KeyError, TypeError):
                pass
        _check_ids(ids, self._itos, len(self.chars))
        raise TokenizerError(f"decode: ids must be an iterable of int, got {type(ids).__name__}")

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        return self.decode(ids).encode("utf-8", "surrogatepass")

    def save(self, path) -> None:
        """Save in the ``minigpt-tokenizer char 1`` text format (atomically)."""
        _io.write_char(path, self.chars)

    @classmethod
    def load(cls, path) -> "CharTokenizer":
        chars = _io.read_char(path)
        try:
            return cls(chars)
        except TokenizerError as e:
            raise TokenizerFileError(f"{path}: {e}") from None


def load_tokenizer(path) -> Tokenizer | CharTokenizer:
    """Load either kind of tokenizer, dispatching on the file's header line."""
    kind = _io.read_kind(path)
    return Tokenizer.load(path) if kind == "bpe" else CharTokenizer.load(path)
