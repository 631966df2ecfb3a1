"""What both tokenizers share: tiktoken's public names and its rules for special tokens.

A user who knows ``tiktoken.Encoding`` finds the same names with the same meaning on
:class:`~minigpt.tokenizer.Tokenizer` and :class:`~minigpt.tokenizer.CharTokenizer` (both
derive from :class:`TokenizerBase` here):
``n_vocab``, ``max_token_value``, ``eot_token``, ``special_tokens_set``, ``is_special_token``,
``encode(text, allowed_special=..., disallowed_special=...)``, ``encode_ordinary``,
``encode_batch``, ``encode_ordinary_batch``, ``decode``, ``decode_bytes``, ``decode_batch``,
``decode_single_token_bytes`` and ``decode_tokens_bytes``.

Special tokens follow tiktoken exactly: by default a special-token string found in the text is
an error (``disallowed_special="all"``); ``allowed_special`` ("all" or a set) encodes those as
their ids; ``disallowed_special=()`` encodes the rest as ordinary text; a string that is in
``disallowed_special`` (special token or not) raises when the text contains it. minbpe's
spellings ``allowed_special="none_raise"`` (the default) and ``"none"`` (=
``disallowed_special=()``) are accepted too.

Deliberate differences from tiktoken, each a clear error or a documented value, never another
encoding:

- ``allowed_special`` naming a string that is not a special token of this tokenizer raises
  :class:`TokenizerError` (tiktoken ignores it, so a misspelt name goes unnoticed);
- a bare string other than "all" as ``allowed_special`` or ``disallowed_special`` raises
  (tiktoken reads ``disallowed_special="abc"`` as the set of characters a, b, c);
- ``allowed_special`` may also be a list or tuple, and may be passed by position (minbpe);
- ``eot_token`` is None when there is no ``<|endoftext|>`` (tiktoken raises KeyError);
- errors are :class:`TokenizerError` (a ``ValueError``), also for an unknown id in
  ``decode_single_token_bytes`` (tiktoken: KeyError);
- ``num_threads`` of the batch methods is accepted and checked, but encoding runs in the
  calling thread: the encoder is Python, which threads would not speed up. Results are the same.
"""
from __future__ import annotations

from collections.abc import Collection, Iterable
from functools import lru_cache

import regex
from numpy import integer as np_integer

from ..errors import TokenizerError

EOT = "<|endoftext|>"


def _check_text(text, where: str, name: str = "text") -> None:
    if not isinstance(text, str):
        hint = " (use encode_bytes for bytes)" if isinstance(text, (bytes, bytearray)) else ""
        raise TokenizerError(f"{where}: {name} must be str, got {type(text).__name__}{hint}")


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


@lru_cache(maxsize=128)
def _special_regex(tokens: frozenset) -> regex.Pattern:
    """One capturing group matching any of ``tokens``, longest first, so that a special token
    that is a prefix of another never wins."""
    alts = sorted(tokens, key=lambda s: (-len(s), s))
    return regex.compile("(" + "|".join(regex.escape(s) for s in alts) + ")")


def _check_num_threads(num_threads, where: str) -> None:
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
        raise TokenizerError(f"{where}: num_threads must be a positive int, got {num_threads!r}")


def _string_set(value, where: str, name: str) -> frozenset:
    """A collection of special-token strings as a frozenset; a bare str is an error (it would
    be read as a set of characters)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Collection):
        raise TokenizerError(
            f"{where}: {name} must be 'all' or a set of special-token strings such as "
            f"{{'<|endoftext|>'}}, got {value!r}"[:300])
    out = frozenset(value)
    for s in out:
        if not isinstance(s, str) or not s:
            raise TokenizerError(f"{where}: {name} must hold non-empty str, got {s!r}"[:300])
    return out


class TokenizerBase:
    """tiktoken's names over what every tokenizer here has: ``vocab`` (id -> bytes),
    ``special_tokens`` (str -> id), ``vocab_size``, ``encode_ordinary(text)``,
    ``decode(ids, errors)`` and ``decode_bytes(ids)``."""

    # --------------------------------------------------------------------- sizes and names
    @property
    def n_vocab(self) -> int:
        """tiktoken's name for ``vocab_size``: the largest id + 1."""
        return self.vocab_size

    @property
    def max_token_value(self) -> int:
        """The largest id (special tokens included)."""
        return self.vocab_size - 1

    @property
    def eot_token(self) -> int | None:
        """The id of ``<|endoftext|>``, or None when there is none (tiktoken: KeyError)."""
        return self.special_tokens.get(EOT)

    @property
    def special_tokens_set(self) -> set[str]:
        """The special-token strings, as a set."""
        return set(self.special_tokens)

    def is_special_token(self, token: int) -> bool:
        """Whether ``token`` is the id of a special token."""
        return not isinstance(token, bool) and token in self.special_tokens.values()

    # --------------------------------------------------------------------- encoding
    def encode(self, text: str, allowed_special="none_raise", *,
               disallowed_special="all") -> list[int]:
        """Encode ``text`` to ids, with tiktoken's rules for special tokens:

        - ``allowed_special``: "all" or a set of special tokens to encode as their ids
          (default: none; minbpe's "none_raise" means the same, its "none" means
          ``disallowed_special=()``); naming a string that is not a special token is an error;
        - ``disallowed_special``: "all" (default: every special token not allowed) or a set of
          strings; finding one of them in the text raises TokenizerError. Special tokens that
          are neither allowed nor disallowed are encoded as ordinary text.

        >>> from minigpt.tokenizer import Tokenizer
        >>> tok = Tokenizer(pattern="gpt2", special_tokens={"<|endoftext|>": 256})
        >>> tok.encode("hi<|endoftext|>", allowed_special="all")
        [104, 105, 256]
        >>> len(tok.encode("hi<|endoftext|>", disallowed_special=()))
        15
        """
        _check_text(text, "encode")
        allowed, disallowed = self._special_sets(allowed_special, disallowed_special, "encode")
        return self._encode_checked(text, allowed, disallowed, "encode")

    def encode_batch(self, text: Iterable[str], allowed_special="none_raise", *,
                     disallowed_special="all", num_threads: int = 8) -> list[list[int]]:
        """``[encode(t, ...) for t in text]`` (one chunk cache shared by all of them)."""
        texts = self._texts(text, "encode_batch")
        _check_num_threads(num_threads, "encode_batch")
        allowed, disallowed = self._special_sets(allowed_special, disallowed_special,
                                                 "encode_batch")
        return [self._encode_checked(t, allowed, disallowed, "encode_batch") for t in texts]

    def encode_ordinary_batch(self, text: Iterable[str], *, num_threads: int = 8) -> list[list[int]]:
        """``[encode_ordinary(t) for t in text]``."""
        texts = self._texts(text, "encode_ordinary_batch")
        _check_num_threads(num_threads, "encode_ordinary_batch")
        return [self.encode_ordinary(t) for t in texts]

    def _special_sets(self, allowed_special, disallowed_special, where: str):
        """(allowed, disallowed) as frozensets, resolved as tiktoken resolves them."""
        specials = self.special_tokens
        if isinstance(allowed_special, str) and allowed_special in ("all", "none", "none_raise"):
            allowed = frozenset(specials) if allowed_special == "all" else frozenset()
            if allowed_special == "none" and disallowed_special == "all":
                return allowed, frozenset()
        elif isinstance(allowed_special, str):
            raise TokenizerError(f"{where}: allowed_special must be 'all', a set of special "
                                 f"tokens, or minbpe's 'none_raise' / 'none', got "
                                 f"{allowed_special!r}"[:300])
        else:
            allowed = _string_set(allowed_special, where, "allowed_special")
            unknown = allowed - specials.keys()
            if unknown:
                raise TokenizerError(f"{where}: allowed_special names unknown special tokens "
                                     f"{sorted(unknown)}; known: {sorted(specials)}"[:300])
        if isinstance(disallowed_special, str) and disallowed_special == "all":
            return allowed, frozenset(specials) - allowed
        return allowed, _string_set(disallowed_special, where, "disallowed_special")

    def _encode_checked(self, text: str, allowed: frozenset, disallowed: frozenset,
                        where: str) -> list[int]:
        if disallowed:
            m = _special_regex(disallowed).search(text)
            if m:
                s = m.group()
                kind = "the special token" if s in self.special_tokens else "the string"
                if s in self.special_tokens and s not in allowed:
                    fix = (f"pass allowed_special={{{s!r}}} or 'all' to encode it as a special "
                           "token, or disallowed_special=() to encode it as ordinary text")
                else:
                    fix = "leave it out of disallowed_special to encode it"
                raise TokenizerError(f"{where}: the text contains {kind} {s!r} at index "
                                     f"{m.start()}, which is disallowed; {fix}")
        if not allowed:
            return self.encode_ordinary(text)
        out: list[int] = []
        for k, part in enumerate(_special_regex(allowed).split(text)):
            if k % 2:
                out.append(self.special_tokens[part])
            elif part:
                out += self.encode_ordinary(part)
        return out

    @staticmethod
    def _texts(text, where: str) -> list[str]:
        if isinstance(text, (str, bytes)) or not isinstance(text, Iterable):
            raise TokenizerError(f"{where}: text must be a list of str, got "
                                 f"{type(text).__name__}; for one string call "
                                 f"{where.replace('_batch', '')}")
        texts = list(text)
        for k, t in enumerate(texts):
            _check_text(t, where, f"text[{k}]")
        return texts

    # --------------------------------------------------------------------- decoding
    def decode_single_token_bytes(self, token: int) -> bytes:
        """The bytes of one id (a special token: its UTF-8 string)."""
        if isinstance(token, (int, np_integer)) and not isinstance(token, bool):
            b = self.vocab.get(int(token))
            if b is not None:
                return b
        raise TokenizerError(f"decode_single_token_bytes: token must be an int id of the "
                             f"vocabulary (0..{self.max_token_value}), got {token!r}"[:300])

    token_bytes = decode_single_token_bytes   # the older name

    def decode_tokens_bytes(self, tokens: Iterable[int]) -> list[bytes]:
        """The bytes of each id: ``[decode_single_token_bytes(t) for t in tokens]``."""
        if isinstance(tokens, (str, bytes)) or not isinstance(tokens, Iterable):
            raise TokenizerError(f"decode_tokens_bytes: tokens must be an iterable of int, got "
                                 f"{type(tokens).__name__}")
        return [self.decode_single_token_bytes(t) for t in tokens]

    def decode_batch(self, batch: Iterable[Iterable[int]], *, errors: str = "replace",
                     num_threads: int = 8) -> list[str]:
        """``[decode(ids, errors) for ids in batch]``."""
        _check_num_threads(num_threads, "decode_batch")
        return [self.decode(ids, errors=errors) for ids in batch]
