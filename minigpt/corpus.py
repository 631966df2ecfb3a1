"""The built-in training corpus that ships inside the package.

``minigpt/assets/corpus.txt`` is the first ~350 KB of Karpathy's tinyshakespeare (the works of
Shakespeare are in the public domain), cut at the blank line between two speeches, so that
tokenizers and small models can be trained with no download.
"""
from __future__ import annotations

from importlib import resources


def builtin_corpus() -> str:
    """The built-in corpus as one string (about 350 KB of Shakespeare).

    >>> builtin_corpus()[:14]
    'First Citizen:'
    """
    return resources.files("minigpt").joinpath("assets/corpus.txt").read_text(encoding="utf-8")
