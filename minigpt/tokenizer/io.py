"""Tokenizer file formats: minigpt's own text formats, tiktoken rank files, GPT-2's files.

Every writer is atomic (temp file in the same folder, fsync, ``os.replace``), so a crash never
leaves a half-written tokenizer behind. Every reader checks what it reads and raises
:class:`~minigpt.errors.TokenizerFileError` naming the file, the line and what was expected.
Nothing is pickled or eval'ed.

minigpt BPE format, version 1 (UTF-8, ``\\n`` line ends, JSON strings are ASCII-escaped)::

    minigpt-tokenizer bpe 1                 header: format name, kind, version
    pattern "<JSON string>"                 the split regex ("" = no split)
    special_tokens <N>                      then N lines: <JSON string> <id>
    "<|endoftext|>" 4095
    bytes identity                          or: bytes <256 ids>, the id of byte 0..255
    merges <M>                              then M lines in rank order: <a> <b> <new id>
    97 97 256
    end sha256 <hex>                        sha256 of every byte above this line

minigpt char format, version 1::

    minigpt-tokenizer char 1
    chars <N>
    <JSON array of the N characters, in id order>
    end sha256 <hex>

The last line guards against truncation and corruption; after editing a file by hand, put the
``sha256sum`` of everything above the last line there.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import json
import os
from functools import lru_cache
from typing import Mapping

from minigrad.fileio import atomic_write  # one writer for every file

from ..errors import TokenizerError, TokenizerFileError

MAGIC = "minigpt-tokenizer"
VERSION = 1


def _fail(path, lineno: int | None, msg: str):
    where = f"{os.fspath(path)}:{lineno}" if lineno else os.fspath(path)
    raise TokenizerFileError(f"{where}: {msg}")


def _read_text(path) -> str:
    with open(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        _fail(path, data[:e.start].count(b"\n") + 1, "not UTF-8 text (corrupted or not a "
              "tokenizer file)")


def _with_checksum(lines: list[str]) -> bytes:
    body = "".join(line + "\n" for line in lines).encode("utf-8")
    return body + f"end sha256 {hashlib.sha256(body).hexdigest()}\n".encode()


class _Lines:
    """Reads a minigpt tokenizer file line by line, with precise errors."""

    def __init__(self, path, kind: str):
        self.path = path
        text = _read_text(path)
        self.lines = text.split("\n")
        check_header(path, self.lines[0], kind)
        # the checksum line: the last non-empty line
        if not text.endswith("\n"):
            _fail(path, len(self.lines), "file is truncated (no final newline; expected the "
                  "'end sha256 <hex>' line)")
        self.lines.pop()  # the '' after the final newline
        last = self.lines[-1]
        parts = last.split(" ")
        if len(parts) != 3 or parts[:2] != ["end", "sha256"]:
            _fail(path, len(self.lines), f"file is truncated: expected 'end sha256 <hex>' as the "
                  f"last line, got {last[:60]!r}")
        body = "".join(line + "\n" for line in self.lines[:-1]).encode("utf-8")
        if hashlib.sha256(body).hexdigest() != parts[2]:
            _fail(path, len(self.lines), "checksum mismatch: the file is corrupted (or was edited "
                  "by hand without updating the 'end sha256' line)")
        self.n = len(self.lines) - 1
        self.i = 1  # next line index (0-based); header already read

    def next(self, what: str) -> tuple[int, str]:
        if self.i >= self.n:
            _fail(self.path, self.i + 1, f"unexpected end of file, expected {what}")
        self.i += 1
        return self.i, self.lines[self.i - 1]

    def keyed(self, key: str, what: str) -> tuple[int, str]:
        lineno, line = self.next(f"'{key} {what}'")
        if not line.startswith(key + " "):
            _fail(self.path, lineno, f"expected '{key} {what}', got {line[:60]!r}")
        return lineno, line[len(key) + 1:]

    def count(self, key: str) -> int:
        lineno, rest = self.keyed(key, "<count>")
        if not _is_uint(rest):
            _fail(self.path, lineno, f"expected '{key} <count>', got {self.lines[lineno - 1][:60]!r}")
        return int(rest)

    def done(self) -> None:
        if self.i != self.n:
            _fail(self.path, self.i + 1, f"expected 'end sha256 <hex>', got "
                  f"{self.lines[self.i][:60]!r}")


def check_header(path, line: str, kind: str | None = None) -> str:
    """Parse ``minigpt-tokenizer <kind> <version>``; return the kind."""
    parts = line.split(" ")
    if len(parts) != 3 or parts[0] != MAGIC:
        _fail(path, 1, f"not a minigpt tokenizer file: expected a first line like "
              f"'{MAGIC} bpe {VERSION}', got {line[:60]!r}")
    if parts[1] not in ("bpe", "char") or (kind and parts[1] != kind):
        _fail(path, 1, f"expected a '{kind or 'bpe or char'}' tokenizer, got kind {parts[1]!r}")
    if parts[2] != str(VERSION):
        _fail(path, 1, f"unsupported format version {parts[2]!r} (this minigpt reads version "
              f"{VERSION})")
    return parts[1]


def read_kind(path) -> str:
    """The kind ('bpe' or 'char') named in a minigpt tokenizer file's header."""
    with open(path, "rb") as f:
        first = f.readline(200).decode("utf-8", "replace").rstrip("\n")
    return check_header(path, first)


def _is_text(s: str) -> bool:
    """True unless ``s`` holds a lone surrogate (which has no UTF-8 encoding)."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_uint(s: str) -> bool:
    """ASCII digits only, at most 10 of them (ids and counts are < 2**31; int() is never
    asked to parse a huge number)."""
    return 0 < len(s) <= 10 and s.isascii() and s.isdigit()


def _json(s: str):
    """json.loads, with every way it can fail (bad syntax, a number of more than 4300 digits,
    nesting deeper than the recursion limit) turned into ValueError."""
    try:
        return json.loads(s)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _json_str(L: _Lines, lineno: int, s: str, what: str):
    try:
        v = _json(s)
    except ValueError:
        v = None
    if not isinstance(v, str):
        _fail(L.path, lineno, f"expected {what} as a JSON string, got {s[:60]!r}")
    return v


def _ints(L: _Lines, lineno: int, s: str, n: int, what: str) -> list[int]:
    parts = s.split(" ")
    if len(parts) != n or not all(_is_uint(p) for p in parts):
        _fail(L.path, lineno, f"expected {what}, got {s[:60]!r}")
    return [int(p) for p in parts]


# ----------------------------------------------------------------------------- bpe

def write_bpe(path, pattern: str, special_tokens: dict, byte_ids, merges: dict) -> None:
    lines = [f"{MAGIC} bpe {VERSION}", "pattern " + json.dumps(pattern),
             f"special_tokens {len(special_tokens)}"]
    lines += [f"{json.dumps(s)} {i}" for s, i in special_tokens.items()]
    lines.append("bytes identity" if byte_ids is None else "bytes " + " ".join(map(str, byte_ids)))
    lines.append(f"merges {len(merges)}")
    lines += [f"{a} {b} {z}" for (a, b), z in merges.items()]
    atomic_write(path, _with_checksum(lines))


def read_bpe(path):
    """Return ``(pattern, special_tokens, byte_ids or None, merges)`` from a bpe file."""
    L = _Lines(path, "bpe")
    lineno, rest = L.keyed("pattern", '"<JSON string>"')
    pattern = _json_str(L, lineno, rest, "the pattern")
    specials = {}
    for _ in range(L.count("special_tokens")):
        lineno, line = L.next("'<JSON string> <id>'")
        s, _, i = line.rpartition(" ")
        tok = _json_str(L, lineno, s, "a special token")
        specials[tok] = _ints(L, lineno, i, 1, "'<JSON string> <id>'")[0]
    lineno, rest = L.keyed("bytes", "identity' or 'bytes <256 ids>")
    byte_ids = None if rest == "identity" else _ints(L, lineno, rest, 256, "256 byte ids")
    merges = {}
    for _ in range(L.count("merges")):
        lineno, line = L.next("a merge '<a> <b> <id>'")
        a, b, z = _ints(L, lineno, line, 3, "a merge '<a> <b> <id>'")
        merges[(a, b)] = z
    L.done()
    return pattern, specials, byte_ids, merges


# ----------------------------------------------------------------------------- char

def write_char(path, chars: list[str]) -> None:
    lines = [f"{MAGIC} char {VERSION}", f"chars {len(chars)}", json.dumps(chars)]
    atomic_write(path, _with_checksum(lines))


def read_char(path) -> list[str]:
    L = _Lines(path, "char")
    n = L.count("chars")
    lineno, line = L.next("a JSON array of characters")
    try:
        chars = _json(line)
    except ValueError:
        chars = None
    if not isinstance(chars, list) or len(chars) != n:
        _fail(path, lineno, f"expected a JSON array of {n} characters, got {line[:60]!r}")
    L.done()
    return chars


# ----------------------------------------------------------------------------- tiktoken

def read_tiktoken(path) -> dict[bytes, int]:
    """Read a tiktoken rank file: one ``<base64 token> <rank>`` per line."""
    with open(path, "rb") as f:
        data = f.read()
    ranks: dict[bytes, int] = {}
    seen: set[int] = set()
    for lineno, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            if len(parts) != 2 or not parts[1].isdigit():
                raise ValueError
            token, rank = base64.b64decode(parts[0], validate=True), int(parts[1])
        except (ValueError, binascii.Error):
            _fail(path, lineno, f"expected '<base64 token> <rank>', got {line[:60]!r}")
        if not token or token in ranks or rank in seen:
            _fail(path, lineno, f"empty or repeated token/rank: {line[:60]!r}")
        ranks[token] = rank
        seen.add(rank)
    if not ranks:
        _fail(path, None, "empty tiktoken rank file")
    return ranks


def write_tiktoken(path, ranks: dict[bytes, int]) -> None:
    lines = [base64.b64encode(t) + b" " + str(r).encode() + b"\n"
             for t, r in sorted(ranks.items(), key=lambda kv: kv[1])]
    atomic_write(path, b"".join(lines))


def merges_from_ranks(ranks: Mapping[bytes, int], max_token_bytes: int):
    """``(byte_ids, merges)`` from tiktoken-style ``{token bytes: rank}`` (rank = id): each
    multi-byte token is the merge of the two parts that BPE with only lower-ranked tokens
    leaves it in (as minbpe does). A TokenizerError when a byte is missing, a token is longer
    than ``max_token_bytes`` or is not the merge of two lower-ranked tokens."""
    byte_ids = [ranks.get(bytes([b])) for b in range(256)]
    missing = [b for b, i in enumerate(byte_ids) if i is None]
    if missing:
        raise TokenizerError(f"from_ranks: the ranks lack {len(missing)} single bytes "
                             f"(e.g. {bytes([missing[0]])!r}); all 256 are needed")
    merges: dict[tuple[int, int], int] = {}
    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(token) < 2:
            continue
        if len(token) > max_token_bytes:
            raise TokenizerError(f"from_ranks: token of rank {rank} has {len(token)} bytes, "
                                 f"more than the limit of {max_token_bytes}")
        parts = _split_token(token, ranks, rank)
        if parts is None:
            raise TokenizerError(f"from_ranks: token {token[:60]!r} (rank {rank}) is not the "
                                 "merge of two lower-ranked tokens")
        merges[(ranks[parts[0]], ranks[parts[1]])] = rank
    return byte_ids, merges


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


# ----------------------------------------------------------------------------- GPT-2

@lru_cache(maxsize=None)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map.

    Printable bytes map to themselves; the other 68 (control chars, space, ...) to chr(256 + n).
    >>> bytes_to_unicode()[ord("a")], bytes_to_unicode()[ord(" ")]
    ('a', 'Ġ')
    """
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def _to_unicode(b: bytes) -> str:
    m = bytes_to_unicode()
    return "".join(m[x] for x in b)


def read_gpt2(encoder_json_path, vocab_bpe_path):
    """Return ``(byte_ids, merges, special_tokens)`` from GPT-2's two files."""
    try:
        encoder = _json(_read_text(encoder_json_path))
    except ValueError as e:
        _fail(encoder_json_path, getattr(e, "lineno", None), f"not valid JSON ({e})")
    if not isinstance(encoder, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0
            for k, v in encoder.items()):
        _fail(encoder_json_path, None, "expected a JSON object {token string: id}")
    for k in encoder:   # JSON's \ud800 escapes can spell strings that are not text
        if not _is_text(k):
            _fail(encoder_json_path, None, f"the token {k[:60]!r} holds a lone surrogate, "
                  "which is not text (a special token must have a UTF-8 encoding)")
    m = bytes_to_unicode()
    missing = [b for b in range(256) if m[b] not in encoder]
    if missing:
        _fail(encoder_json_path, None, f"lacks {len(missing)} single-byte tokens, e.g. "
              f"{m[missing[0]]!r} (byte {missing[0]})")
    byte_ids = [encoder[m[b]] for b in range(256)]
    lines = _read_text(vocab_bpe_path).split("\n")
    merges: dict[tuple[int, int], int] = {}
    for lineno, line in enumerate(lines, 1):
        if not line or (lineno == 1 and line.startswith("#version")):
            continue
        parts = line.split(" ")
        if len(parts) != 2 or not all(parts):
            _fail(vocab_bpe_path, lineno, f"expected a merge '<token> <token>', got {line[:60]!r}")
        a, b = parts
        for t in (a, b, a + b):
            if t not in encoder:
                _fail(vocab_bpe_path, lineno, f"token {t!r} of merge {line[:60]!r} is not in "
                      f"{os.fspath(encoder_json_path)}")
        merges[(encoder[a], encoder[b])] = encoder[a + b]
    used = set(byte_ids) | set(merges.values())
    specials = {k: v for k, v in encoder.items() if v not in used}
    return byte_ids, merges, specials


def write_gpt2(encoder_json_path, vocab_bpe_path, byte_ids, merges, vocab, special_tokens) -> None:
    encoder: dict[str, int] = {}
    for i in list(byte_ids) + list(merges.values()):
        s = _to_unicode(vocab[i])
        if s in encoder:
            raise TokenizerFileError(f"save_gpt2: ids {encoder[s]} and {i} both decode to "
                                     f"{vocab[i]!r}; GPT-2's encoder.json needs one id per string")
        encoder[s] = i
    for s, i in special_tokens.items():
        if s in encoder:
            raise TokenizerFileError(f"save_gpt2: special token {s!r} collides with a token")
        encoder[s] = i
    encoder = dict(sorted(encoder.items(), key=lambda kv: kv[1]))
    bpe = "#version: 0.2\n" + "".join(f"{_to_unicode(vocab[a])} {_to_unicode(vocab[b])}\n"
                                       for a, b in merges)
    atomic_write(encoder_json_path, json.dumps(encoder).encode())
    atomic_write(vocab_bpe_path, bpe.encode("utf-8"))
