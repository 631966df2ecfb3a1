r"""Byte-level BPE, the algorithm: stages 1 and 2 of a token's life (text -> chunks -> ids).

This file is the whole algorithm as minbpe teaches it, plain, for reading top to bottom.
:mod:`minigpt.tokenizer.fast` holds faster twins of its steps (the same results, tested);
:class:`minigpt.tokenizer.Tokenizer` uses them, and adds special tokens, tiktoken's names,
input checks and file formats.

**The vocabulary** starts as the 256 byte values, so every string (and every byte string)
encodes, with no unknown token. Each merge adds one id: the two ids of an adjacent pair
become one new id whose bytes are theirs, concatenated.

**Training** counts every adjacent pair of ids in the text, merges the most frequent pair
into a new id (256, 257, ...) everywhere, and repeats until the vocabulary is as large as
asked. Ties go to the smallest pair ``(a, b)``, so the same text always gives the same merges.

**Encoding** replays the merges on new text: among the adjacent pairs that are merges, the
one learned first is merged everywhere, until no adjacent pair is a merge.

**Decoding** concatenates each id's bytes.

The Wikipedia example, ``aaabdaaabac``, learns aa -> 256, ab -> 257, then (aa)(ab) -> 258::

    >>> merges = train_merges({b"aaabdaaabac": 1}, 3)
    >>> merges
    [(97, 97), (97, 98), (256, 257)]
    >>> bpe = BPE(merges, pattern="")
    >>> bpe.encode("aaabdaaabac")
    [258, 100, 258, 97, 99]
    >>> bpe.decode([258, 100])
    b'aaabd'

**Chunks.** Text is first cut into chunks by a regex (GPT-2's or GPT-4's split pattern) and
merges never cross a chunk boundary: " dog", " dog." and " dog!" share the token " dog"
rather than learning "g." and "g!". Training counts each distinct chunk once, weighted by how
often it occurs.
"""
from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import regex

GPT2_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
GPT4_SPLIT_PATTERN = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
PATTERNS = {"gpt2": GPT2_SPLIT_PATTERN, "gpt4": GPT4_SPLIT_PATTERN}

NO_RANK = sys.maxsize  # the "rank" of a pair that is not a merge: after every real one


# ----------------------------------------------------------------------------- the two steps

def get_stats(ids: Sequence[int], counts: dict | None = None, weight: int = 1) -> dict:
    """Count adjacent pairs (overlapping pairs count too), adding ``weight`` per occurrence
    to ``counts`` (a new dict if None).

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


# ----------------------------------------------------------------------------- training

def train_merges(chunk_counts: Mapping[bytes, int], num_merges: int, verbose: bool = False,
                 final: dict | None = None) -> list[tuple[int, int]]:
    """Learn up to ``num_merges`` merges from distinct chunks and how often each occurs.

    Each round counts the adjacent pairs of every chunk (a chunk that occurs 5 times counts
    each of its pairs 5 times), takes the most frequent pair (ties: the smallest pair
    ``(a, b)``), gives it the next id (merge ``i`` creates ``256 + i``) and merges it in every
    chunk. Stops early when no adjacent pair is left. If ``final`` is a dict, it receives
    ``{chunk: its ids after all merges}`` (what encoding the chunk gives).

    >>> train_merges({b"aaabdaaabac": 1}, 3)
    [(97, 97), (97, 98), (256, 257)]
    >>> train_merges({b"dcba": 1, b"abcd": 1}, 1)     # a tie: every pair occurs once
    [(97, 98)]
    """
    chunks = {chunk: list(chunk) for chunk in chunk_counts}   # each chunk's ids so far
    merges: list[tuple[int, int]] = []
    t0 = time.perf_counter()
    while len(merges) < num_merges:
        stats: dict[tuple[int, int], int] = {}
        for chunk, ids in chunks.items():
            get_stats(ids, stats, chunk_counts[chunk])
        if not stats:
            break                                  # every chunk is a single token
        pair = max(stats, key=lambda p: (stats[p], -p[0], -p[1]))
        if stats[pair] <= 0:
            break                                  # what is left never occurs
        new_id = 256 + len(merges)
        merges.append(pair)
        chunks = {chunk: merge(ids, pair, new_id) for chunk, ids in chunks.items()}
        if verbose and (len(merges) % 100 == 0 or len(merges) == num_merges):
            print(f"merge {len(merges)}/{num_merges}: {pair} -> {new_id} ({stats[pair]} "
                  f"occurrences), {time.perf_counter() - t0:.1f}s")
    if final is not None:
        final.update((chunk, tuple(ids)) for chunk, ids in chunks.items())
    return merges


# ----------------------------------------------------------------------------- encoding

@dataclass(frozen=True)
class MergeStep:
    """One merge applied to a chunk: every occurrence of ``pair`` became ``new_id``."""
    pair: tuple[int, int]      # the two ids merged
    rank: int                  # position of the merge in the merge list (lower merges first)
    new_id: int                # id of the merged token
    tokens_after: list[int]    # the chunk's ids after this step


def split(text: str, pattern: regex.Pattern | None) -> list[str]:
    r"""Stage 1: the chunks of ``text``, in order. ``pattern`` None: the whole text is one
    chunk. Text the pattern does not match (a custom pattern may leave gaps) is kept as
    chunks of its own, so that no character is lost.

    >>> split("Hello world!! 12345", regex.compile(GPT4_SPLIT_PATTERN))
    ['Hello', ' world', '!!', ' ', '123', '45']
    >>> split("hi, you!", regex.compile(r"\w+"))
    ['hi', ', ', 'you', '!']
    """
    if pattern is None:
        return [text] if text else []
    chunks, pos = [], 0
    for m in pattern.finditer(text):
        if m.start() > pos:
            chunks.append(text[pos:m.start()])    # a gap between two matches
        if m.end() > m.start():
            chunks.append(m.group())
        pos = m.end()
    if pos < len(text):
        chunks.append(text[pos:])
    return chunks


class BPE:
    """Merges and a split pattern: the algorithm in one object (no special tokens, no
    checks, no files; :class:`minigpt.tokenizer.Tokenizer` adds those).

    ``merges`` maps a pair of ids to the id it creates, in the order the merges were learned
    (a dict keeps that order; a list of pairs means ids 256, 257, ...). ``pattern`` is the
    split regex ("": no split). ``byte_ids[b]`` is the id of the single byte ``b`` (None: b
    itself; GPT-2 and tiktoken files number the bytes otherwise).
    """

    train_merges = staticmethod(train_merges)   # this path's trainer (fast.FastBPE: its own)

    def __init__(self, merges: Mapping[tuple[int, int], int] | Sequence[tuple[int, int]] = (),
                 pattern: str = GPT4_SPLIT_PATTERN, byte_ids: Sequence[int] | None = None):
        if not isinstance(merges, Mapping):
            merges = {tuple(pair): 256 + rank for rank, pair in enumerate(merges)}
        self.merges: dict[tuple[int, int], int] = dict(merges)
        self.ranks = {pair: rank for rank, pair in enumerate(self.merges)}   # 0: learned first
        self.rank_to_id = list(self.merges.values())
        self.byte_ids = None if byte_ids is None else tuple(byte_ids)
        self.pattern = pattern
        self.regex = regex.compile(pattern) if pattern else None
        # the bytes of every id: a byte is itself, a merge is its two parts joined
        self.vocab = {i: bytes([b]) for b, i in enumerate(self.byte_ids or range(256))}
        for (a, b), new_id in self.merges.items():
            self.vocab[new_id] = self.vocab[a] + self.vocab[b]

    # --------------------------------------------------------------------- stage 1
    def split(self, text: str) -> list[str]:
        """The chunks of ``text`` (see :func:`split`)."""
        return split(text, self.regex)

    def training_chunks(self, text: str) -> list[str]:
        """The chunks training counts: those of :meth:`split`, except that what a custom
        pattern leaves between its matches is encoded but never learned from."""
        if self.regex is None or self.pattern in PATTERNS.values():
            return self.split(text)                # the built-in patterns leave no gaps
        return [m.group() for m in self.regex.finditer(text) if m.group()]

    # --------------------------------------------------------------------- stage 2
    def chunk_ids(self, chunk: str) -> list[int]:
        """The ids of a chunk's bytes, before any merge. (Bytes that are not UTF-8, from
        ``encode_bytes``, travel as lone surrogates and turn back into themselves here.)"""
        data = chunk.encode("utf-8", "surrogateescape")
        return list(data) if self.byte_ids is None else [self.byte_ids[b] for b in data]

    def merge_steps(self, ids: list[int]) -> Iterable[MergeStep]:
        """minbpe's encoder, one merge at a time: of the adjacent pairs that are merges, the
        one learned first is merged everywhere; repeat until no adjacent pair is a merge.

        >>> bpe = BPE([(97, 97), (97, 98), (256, 257)], pattern="")
        >>> [(s.pair, s.new_id, s.tokens_after) for s in bpe.merge_steps(list(b"aaab"))]
        [((97, 97), 256, [256, 97, 98]), ((97, 98), 257, [256, 257]), ((256, 257), 258, [258])]
        """
        while len(ids) >= 2:
            pair = min(get_stats(ids), key=lambda p: self.ranks.get(p, NO_RANK))
            if pair not in self.ranks:
                return                             # no adjacent pair is a merge: done
            ids = merge(ids, pair, self.merges[pair])
            yield MergeStep(pair, self.ranks[pair], self.merges[pair], ids)

    def encode_chunk(self, ids: list[int]) -> list[int]:
        """The ids of one chunk after every merge that applies (the last of
        :meth:`merge_steps`).

        >>> BPE([(97, 97), (97, 98), (256, 257)], pattern="").encode_chunk(list(b"aaabd"))
        [258, 100]
        """
        for step in self.merge_steps(ids):
            ids = step.tokens_after
        return ids

    def encode_chunks(self, chunks: Iterable[str]) -> list[int]:
        """The ids of each chunk, one after the other."""
        return [i for chunk in chunks for i in self.encode_chunk(self.chunk_ids(chunk))]

    def encode(self, text: str) -> list[int]:
        """Stages 1 and 2: split ``text`` into chunks, encode each one."""
        return self.encode_chunks(self.split(text))

    def remember(self, chunk_counts: Counter, final: Mapping[bytes, tuple]) -> None:
        """After training: ``chunk_counts`` (a Counter of the chunks trained on) and ``final``
        (``{chunk bytes: its ids}``, what training computed). The plain path keeps nothing;
        fast.FastBPE seeds its chunk cache."""

    # --------------------------------------------------------------------- decoding
    def decode(self, ids: Iterable[int]) -> bytes:
        """The bytes of ``ids`` (see :func:`decode`)."""
        return decode(ids, self.vocab)


def decode(ids: Iterable[int], vocab: Mapping[int, bytes]) -> bytes:
    """Concatenate the bytes of each id (a KeyError for an id outside ``vocab``).

    >>> decode([104, 105], {104: b"h", 105: b"i"})
    b'hi'
    """
    return b"".join(map(vocab.__getitem__, ids))


__all__ = ["GPT2_SPLIT_PATTERN", "GPT4_SPLIT_PATTERN", "PATTERNS", "NO_RANK", "get_stats",
           "merge", "train_merges", "MergeStep", "split", "BPE", "decode"]
