"""``CharTokenizer``: one id per character, the vocabulary is the training text's
characters (nanoGPT's shakespeare_char). tiktoken's names come from
:class:`~minigpt.tokenizer.base.TokenizerBase`.
"""
from __future__ import annotations

from typing import Iterable

from ..errors import TokenizerError, TokenizerFileError
from . import io as _io
from .base import TokenizerBase, _check_ids, _check_text


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


__all__ = ["CharTokenizer"]
