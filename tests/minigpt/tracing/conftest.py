"""The byte-level BPE that the trace tests share."""
import pytest

from minigpt.tokenizer import Tokenizer
from trace_models import TEXT


@pytest.fixture(scope="module")
def bpe():
    """A byte-level BPE with 16 merges learnt from TEXT."""
    return Tokenizer.train(TEXT * 4, 256 + 16)
