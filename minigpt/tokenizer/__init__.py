"""Byte-level BPE: stages 1 and 2 of a token's life (text -> chunks -> token ids).

    from minigpt.tokenizer import Tokenizer, load_tokenizer
    tok = Tokenizer.train(text, 4096, pattern="gpt4", special_tokens=["<|endoftext|>"])
    ids = tok.encode("To be, or not to be")
    tok.decode(ids), tok.split("To be, or"), tok.explain(" Hamlet")

Where things are:

- ``bpe.py``: **the algorithm**, plain, as minbpe teaches it (get_stats, merge, training, the
  encoder and the decoder, with worked examples). Start here.
- ``fast.py``: the speedups, a faster twin of each step of bpe.py (ASCII ``re`` splitting,
  incremental training, the chunk cache and the NumPy batch encoder); each is tested equal
  to the plain path.
- ``bpe_tokenizer.py``: :class:`Tokenizer`, the algorithm made a tool: input checks, special
  tokens, file formats, and :func:`~minigpt.tokenizer.bpe_tokenizer.bpe_path`, the one place
  that picks the fast or the plain path.
- ``char.py``: :class:`CharTokenizer`, one id per character.
- ``base.py``: what both share: tiktoken's names (``n_vocab``, ``encode_ordinary``,
  ``encode_batch``, ``decode_bytes``, ...) and its rules for special tokens.
- ``io.py``: the file formats: minigpt's own (checksummed text), tiktoken rank files, GPT-2's
  ``encoder.json`` + ``vocab.bpe``.

Importing this package loads no model, trainer, tracer or benchmark code.
"""
from ..errors import TokenizerError, TokenizerFileError
from . import io as _io
from .base import EOT
from .bpe import GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN, PATTERNS, MergeStep, get_stats, merge
from .bpe_tokenizer import Tokenizer, train_merges
from .char import CharTokenizer


def load_tokenizer(path) -> Tokenizer | CharTokenizer:
    """Load either kind of tokenizer, dispatching on the file's header line."""
    kind = _io.read_kind(path)
    return Tokenizer.load(path) if kind == "bpe" else CharTokenizer.load(path)


__all__ = [
    "GPT2_SPLIT_PATTERN", "GPT4_SPLIT_PATTERN", "PATTERNS", "Tokenizer", "CharTokenizer",
    "MergeStep", "load_tokenizer", "get_stats", "merge", "train_merges", "TokenizerError",
    "TokenizerFileError", "EOT",
]
