"""The tokenizer's speedups: a faster twin of each step of :mod:`minigpt.tokenizer.bpe`.

Each function or method here gives exactly the result of the plain one it replaces (the
tests compare them with Hypothesis on random text and merges, and with tiktoken when it is
installed); only the time differs. :func:`minigpt.tokenizer.bpe_tokenizer.bpe_path` picks
:class:`FastBPE` unless ``bpe_tokenizer.FAST`` is False.

============================  ===========================================  ===================
plain (bpe.py)                fast (here)                                  why it is faster
============================  ===========================================  ===================
``split`` with ``regex``      ASCII stretches by a stdlib ``re`` twin of   ``re`` splits ASCII
                              the pattern, cut where no chunk can cross    about twice as fast
``train_merges``, a recount   :func:`train_merges`: counts updated only    O(changes) a merge,
per merge                     where the merged pair occurs, a lazy heap    not O(text)
``BPE.encode_chunk``, a scan  :func:`_bpe_short` (ranks of neighbours      C-level ``min``;
per merge                     updated in place), :func:`_bpe_long` (heap)  O(n log n) when long
every chunk encoded           a chunk cache; new chunks encoded all        a repeated word is
                              together in NumPy rounds (:func:`bpe_many`)  one dict lookup
                              with the garbage collector paused
============================  ===========================================  ===================
"""
from __future__ import annotations

import gc
import heapq
import re
import time
from collections import defaultdict
from itertools import chain, repeat
from typing import Mapping, Sequence

import numpy as np

from .bpe import BPE, GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN, NO_RANK

_LONG_CHUNK = 256      # chunks longer than this (in bytes) use the O(n log n) heap encoder
_CACHE_MAX = 100_000   # the chunk cache is cleared when it grows past this many entries
_BATCH_MIN = 64        # this many new chunks or more are encoded together by bpe_many


# ----------------------------------------------------------------------------- splitting
# The two built-in patterns for ASCII-only text, for the standard library's ``re``, which
# splits such text about twice as fast as ``regex``. In ASCII, \p{L} is [A-Za-z], \p{N} is
# [0-9] and (with re.ASCII) \s is [ \t\n\r\f\v], as in ``regex``; the possessive quantifiers
# can be dropped because backtracking into them can never find another match here. The
# tests check the splits are identical on random ASCII text.
ASCII_SPLITTERS = {
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


def split_mixed(text: str, fast, slow, gpt4: bool) -> list[str]:
    """Split text with a built-in pattern: the stretches around non-ASCII characters with
    ``slow`` (``regex``'s findall), the ASCII stretches between them with ``fast`` (the
    stdlib twin's). Stretches are cut only where no chunk can cross (see _is_cut), so the
    chunks are those of ``regex`` on the whole text (tested)."""
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


# ----------------------------------------------------------------------------- training

def train_merges(chunk_counts: Mapping[bytes, int], num_merges: int, verbose: bool = False,
                 final: dict | None = None) -> list[tuple[int, int]]:
    """:func:`minigpt.tokenizer.bpe.train_merges`'s merges (and ``final``), without
    recounting every pair after each merge.

    Each distinct chunk is stored once; pair counts are kept up to date incrementally,
    touching only the chunks that contain the merged pair (an index pair -> chunk ids). The
    best pair comes from a max-heap with lazy invalidation: an entry is valid only if its
    count still equals the pair's current count. Ties: highest count, then the smallest pair
    ``(a, b)`` (the heap's order on ``(-count, pair)``).

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
        while heap and (heap[0][0] != -counts.get(heap[0][1], 0) or heap[0][0] >= 0):
            heapq.heappop(heap)  # stale, or a pair that no longer occurs
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


# ----------------------------------------------------------------------------- one chunk

def _bpe_short(ids: list[int], ranks: dict, rank_to_id: list[int]) -> list[int]:
    """:meth:`BPE.encode_chunk`'s ids: merges applied lowest rank first (leftmost first),
    until none applies.

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


# ----------------------------------------------------------------------------- many chunks
# Byte-pair encoding of many chunks at once, with NumPy. The per-chunk encoder above is a
# Python loop: about 7 µs a chunk, which dominates the first encode of a text full of words
# not yet in the chunk cache. bpe_many encodes all those new chunks together, in rounds.
# Each round, every unfinished chunk merges *all* occurrences of its lowest-ranked pair at
# once (left to right, without overlap); a chunk with no mergeable pair is finished and
# leaves the batch.
#
# That gives exactly the tokens of merging the leftmost lowest-ranked pair one at a time,
# because every pair a merge creates contains the new id, which only later merges use, so
# it ranks above the merge that made it: the lowest rank in a chunk stays the same until
# every occurrence of its pair is merged. Occurrences overlap only when the pair is (a, a)
# in a run of a's: merged left to right, a run of k+1 a's merges the pairs starting at its
# 1st, 3rd, 5th ... a. The tests compare this with the per-chunk encoder on random chunks
# and merges.

# ids and ranks fit int32 (the tokenizer caps ids at 2**31 - 1): half the memory traffic of int64
NO_MERGE = np.iinfo(np.int32).max  # the rank of a pair that is not a merge


class PairRanks:
    """The merge table for a vectorised lookup: a dense rank matrix for pairs of ids below
    ``dense`` (most pairs: bytes and early merges; 1024 makes a 4 MiB int32 matrix), sorted
    int64 keys ``a * base + b`` for the rest."""

    def __init__(self, ranks: dict, rank_to_id: Sequence[int], byte_ids: Sequence[int] | None,
                 dense: int = 1024):
        pairs = np.array(list(ranks), dtype=np.int64).reshape(-1, 2)
        values = np.array(list(ranks.values()), dtype=np.int64)
        self.base = 1 + int(max(pairs.max(initial=255), max(rank_to_id, default=255),
                                max(byte_ids if byte_ids is not None else [255])))
        keys = pairs[:, 0] * self.base + pairs[:, 1]
        order = np.argsort(keys)
        # a trailing sentinel key, so searchsorted never points past the end
        self.keys = np.append(keys[order], NO_MERGE)
        self.ranks = np.append(values[order], NO_MERGE).astype(np.int32)
        self.dense_size = d = min(dense, self.base)
        small = (pairs < d).all(axis=1)
        self.dense = np.full(d * d, NO_MERGE, dtype=np.int32)
        self.dense[pairs[small, 0] * d + pairs[small, 1]] = values[small]
        self.rank_to_id = np.array(rank_to_id, dtype=np.int32)
        self.byte_ids = None if byte_ids is None else np.array(byte_ids, dtype=np.int32)

    def lookup(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Rank of each pair (left[i], right[i]) of int32 ids; NO_MERGE where it is not a merge."""
        d = self.dense_size
        small = (left < d) & (right < d)
        if small.all():
            return self.dense[left * d + right]
        rank = self.dense[np.where(small, left * d + right, 0)]
        big = np.flatnonzero(~small)
        k = left[big].astype(np.int64) * self.base + right[big]
        pos = np.searchsorted(self.keys, k)
        rank[big] = np.where(self.keys[pos] == k, self.ranks[pos], NO_MERGE)
        return rank


def bpe_many(chunks: Sequence[bytes], table: PairRanks) -> list[tuple[int, ...]]:
    """The BPE ids of every chunk in ``chunks`` (each non-empty), in order."""
    n = len(chunks)
    if n == 0:
        return []
    lens = np.fromiter(map(len, chunks), dtype=np.int64, count=n)
    ids = np.frombuffer(b"".join(chunks), dtype=np.uint8).astype(np.int32)  # (N,) all bytes
    if table.byte_ids is not None:
        ids = table.byte_ids[ids]
    alive = np.arange(n)                       # original index of each chunk still merging
    owner = np.repeat(np.arange(n), lens)      # (N,) which live chunk each id belongs to
    done_ids, done_owner = [], []              # finished chunks, by original index
    while ids.size:
        starts = np.concatenate(([0], np.cumsum(lens)[:-1]))
        # rank of the pair starting at each position; the last position of a chunk has none
        rank = np.empty_like(ids)
        rank[:-1] = table.lookup(ids[:-1], ids[1:])
        rank[starts[1:] - 1] = NO_MERGE
        rank[-1] = NO_MERGE
        best = np.minimum.reduceat(rank, starts)  # (chunks,) lowest rank in each chunk
        finished = best == NO_MERGE
        if finished.any():
            out = finished[owner]
            done_ids.append(ids[out])
            done_owner.append(alive[owner[out]])
            keep = ~finished
            if not keep.any():
                break
            renumber = np.cumsum(keep) - 1
            ids, owner = ids[~out], renumber[owner[~out]]
            alive, lens, best = alive[keep], lens[keep], best[keep]
            starts = np.concatenate(([0], np.cumsum(lens)[:-1]))
            rank = rank[~out]
        hit = np.flatnonzero(rank == best[owner])  # every occurrence of each chunk's best pair
        # overlapping occurrences (runs of a's): keep the 1st, 3rd, ... of each run
        run_start = np.ones(hit.size, dtype=bool)
        run_start[1:] = hit[1:] != hit[:-1] + 1
        first = np.maximum.accumulate(np.where(run_start, np.arange(hit.size), 0))
        hit = hit[(np.arange(hit.size) - first) % 2 == 0]
        ids[hit] = table.rank_to_id[rank[hit]]
        kept = np.ones(ids.size, dtype=bool)
        kept[hit + 1] = False                      # the right half of each merged pair goes
        lens = lens - np.bincount(owner[hit], minlength=lens.size)
        ids, owner = ids[kept], owner[kept]
    return _tuples(np.concatenate(done_ids), np.concatenate(done_owner), n)


def _tuples(ids: np.ndarray, owner: np.ndarray, n: int) -> list[tuple[int, ...]]:
    """One tuple of ids per chunk 0..n-1, from the ids and their (unsorted) chunk numbers."""
    flat = ids[np.argsort(owner, kind="stable")].tolist()
    bounds = np.concatenate(([0], np.cumsum(np.bincount(owner, minlength=n)))).tolist()
    return [tuple(flat[bounds[i]:bounds[i + 1]]) for i in range(n)]


# ----------------------------------------------------------------------------- the fast path

class FastBPE(BPE):
    """:class:`~minigpt.tokenizer.bpe.BPE` with every speedup above: the same chunks, merges
    and ids. Encoding keeps a cache ``{chunk: ids}`` (cleared when it passes ``_CACHE_MAX``
    entries), so a repeated word costs one dict lookup."""

    train_merges = staticmethod(train_merges)

    def __init__(self, merges=(), pattern: str = GPT4_SPLIT_PATTERN, byte_ids=None):
        super().__init__(merges, pattern, byte_ids)
        self.ascii_split = ASCII_SPLITTERS.get(pattern)   # None: a custom pattern
        self.cache: dict[str, tuple[int, ...]] = {}
        self.pair_ranks: PairRanks | None = None         # built on the first batch encode

    def split(self, text: str) -> list[str]:
        if self.ascii_split is None:
            return super().split(text)
        if text.isascii():
            return self.ascii_split.findall(text)
        return split_mixed(text, self.ascii_split.findall, self.regex.findall,
                           self.pattern == GPT4_SPLIT_PATTERN)

    def encode_chunk(self, ids: list[int]) -> list[int]:
        bpe = _bpe_short if len(ids) <= _LONG_CHUNK else _bpe_long
        return bpe(ids, self.ranks, self.rank_to_id)

    def _encode_one(self, chunk: str) -> tuple[int, ...]:
        return tuple(self.encode_chunk(self.chunk_ids(chunk)))

    def encode_chunks(self, chunks: list[str]) -> list[int]:
        cache = self.cache
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
            return list(chain.from_iterable(map(self._encode_one, chunks)))
        batch, batch_bytes = [], []   # (most new chunks go to bpe_many, all at once)
        for chunk in new:
            b = chunk.encode("utf-8", "surrogateescape")
            if len(b) == 1 and self.byte_ids is None:
                cache[chunk] = (b[0],)
            elif len(new) >= _BATCH_MIN and len(b) <= _LONG_CHUNK:
                batch.append(chunk)
                batch_bytes.append(b)
            else:
                cache[chunk] = self._encode_one(chunk)
        if batch:
            if self.pair_ranks is None:
                self.pair_ranks = PairRanks(self.ranks, self.rank_to_id, self.byte_ids)
            # thousands of new tuples of ints would set off garbage collections that cannot
            # find anything (~10% of a first encode): pause the collector while making them
            collecting = gc.isenabled()
            gc.disable()
            try:
                cache.update(zip(batch, bpe_many(batch_bytes, self.pair_ranks)))
            finally:
                if collecting:
                    gc.enable()
        return list(chain.from_iterable(map(cache.__getitem__, chunks)))

    def remember(self, chunk_counts, final) -> None:
        """Seed the chunk cache with the ids training computed, most frequent chunks first."""
        for chunk, _ in chunk_counts.most_common(_CACHE_MAX // 2):
            self.cache[chunk] = final[chunk.encode("utf-8")]

    def clear_cache(self) -> None:
        """Forget every cached chunk (the next encode is a first, "cold" one)."""
        self.cache.clear()


__all__ = ["FastBPE", "train_merges", "split_mixed", "PairRanks", "bpe_many", "ASCII_SPLITTERS"]
