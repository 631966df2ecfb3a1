"""minigpt.tokenizer.fast against minigpt.tokenizer.bpe: every speedup gives the plain path's
chunks, merges and ids (Hypothesis), and the plain path gives tiktoken's ids (when installed).

The per-piece checks of fast.py's parts against independent references (regex.findall for the
ASCII splitter, a rescanning trainer and encoder, the per-chunk encoder for the NumPy batch
encoder) are in test_tokenizer.py; here the two paths are compared whole.
"""
from __future__ import annotations

import gc
import random
import warnings

import pytest
import regex
from hypothesis import example, given, settings
from hypothesis import strategies as st

import minigpt.tokenizer.bpe_tokenizer as bt
from minigpt.corpus import builtin_corpus
from minigpt.tokenizer import Tokenizer, train_merges
from minigpt.tokenizer import bpe, fast
from minigpt.tokenizer.bpe import BPE
from minigpt.tokenizer.fast import FastBPE

TEXT = st.text(alphabet="ab c\n1é😀'!\t", max_size=150) | st.text(max_size=60)
PATTERNS = st.sampled_from([bpe.GPT2_SPLIT_PATTERN, bpe.GPT4_SPLIT_PATTERN, "", r"\w+|\s"])


def _quiet_train(text, vocab_size, pattern):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # a short text may run out of pairs: fewer merges
        return Tokenizer.train(text, vocab_size, pattern=pattern or None)


@pytest.fixture
def plain(monkeypatch):
    """Tokenizers built in the test take the plain path."""
    monkeypatch.setattr(bt, "FAST", False)


def test_the_switch_picks_the_path(monkeypatch):
    assert bt.bpe_path() is FastBPE and type(Tokenizer()._bpe) is FastBPE
    monkeypatch.setattr(bt, "FAST", False)
    assert bt.bpe_path() is BPE and type(Tokenizer()._bpe) is BPE
    assert train_merges({b"aaabdaaabac": 1}, 3) == [(97, 97), (97, 98), (256, 257)]


# ----------------------------------------------------------------------------- training
@given(chunks=st.dictionaries(st.binary(max_size=12) | st.text("aab c", max_size=12).map(str.encode),
                              st.integers(1, 5), max_size=25),
       num_merges=st.integers(0, 40))
@example(chunks={b"aaaa": 3, b"aaa": 2, b"abab": 1, b"a": 9}, num_merges=10)   # runs of a's
@example(chunks={b"dcba": 1, b"abcd": 1}, num_merges=3)                      # ties
def test_fast_trainer_equals_plain_trainer(chunks, num_merges):
    plain_final, fast_final = {}, {}
    want = bpe.train_merges(chunks, num_merges, final=plain_final)
    assert fast.train_merges(chunks, num_merges, final=fast_final) == want
    assert fast_final == plain_final


@settings(deadline=None)
@given(text=TEXT, extra=st.integers(0, 30), pattern=PATTERNS)
def test_both_paths_train_the_same_tokenizer_and_encode_alike(text, extra, pattern):
    fast_tok = _quiet_train(text, 256 + extra, pattern)
    bt.FAST = False
    try:
        plain_tok = _quiet_train(text, 256 + extra, pattern)
    finally:
        bt.FAST = True
    assert type(plain_tok._bpe) is BPE and type(fast_tok._bpe) is FastBPE
    assert plain_tok.merges == fast_tok.merges
    assert plain_tok.split(text) == fast_tok.split(text)
    assert plain_tok.encode_ordinary(text) == fast_tok.encode_ordinary(text)   # seeded cache
    fast_tok._bpe.clear_cache()
    assert plain_tok.encode_ordinary(text) == fast_tok.encode_ordinary(text)   # cold
    for chunk in set(plain_tok.split(text)):
        assert plain_tok.explain(chunk) == fast_tok.explain(chunk)


# ----------------------------------------------------------------------------- splitting
@given(s=st.text(alphabet="aZs'\u2019 \n\r\t1!é日😀\u0301", max_size=200) | st.text(max_size=80),
       pattern=PATTERNS)
@example(s="Hello\nWörld\nagain\n  x'S\nend", pattern=bpe.GPT4_SPLIT_PATTERN)
@example(s="é \n\nab", pattern=bpe.GPT2_SPLIT_PATTERN)
def test_fast_split_equals_plain_split(s, pattern):
    want = BPE(pattern=pattern).split(s)
    assert FastBPE(pattern=pattern).split(s) == want
    default, fast._MIN_ASCII_STRETCH = fast._MIN_ASCII_STRETCH, 0   # every ASCII stretch apart
    try:
        assert FastBPE(pattern=pattern).split(s) == want
    finally:
        fast._MIN_ASCII_STRETCH = default


def test_custom_pattern_with_groups_trains_on_whole_matches():
    """Training counts what the pattern matches (not its groups), as encoding cuts it."""
    text = "ab abab ba " * 20
    grouped = Tokenizer.train(text, 258, pattern=r"(?:(a)(b))+|\s")
    plain = Tokenizer.train(text, 258, pattern=r"(?:ab)+|\s")
    assert grouped.merges == plain.merges == {(97, 98): 256, (256, 256): 257}


# ----------------------------------------------------------------------------- encoding
@settings(deadline=None)
@given(corpus=st.text(alphabet="aab c'\n1é", min_size=2, max_size=150),
       chunks=st.lists(st.text("aab c1é\n", min_size=1, max_size=300), min_size=1, max_size=80),
       permute=st.booleans())
@example(corpus="aaaaaaa aaaa abab", chunks=["a" * 600, "aaa", "ab" * 200], permute=False)
@example(corpus="aab aab c1", chunks=[f"a{k}ab" for k in range(70)], permute=True)  # a batch
def test_fast_chunk_encoders_equal_the_plain_one(corpus, chunks, permute):
    """_bpe_short, _bpe_long (chunks over 256 bytes), the cache and the batch encoder
    (64 new chunks or more) all give BPE.encode_chunk's ids."""
    tok = _quiet_train(corpus, 256 + 30, None)
    merges, byte_ids = tok.merges, None
    if permute:   # single bytes and merges with other ids, as in GPT-2 and cl100k files
        byte_ids = list(range(1000, 1256))
        random.Random(len(corpus)).shuffle(byte_ids)
        new = {b: byte_ids[b] for b in range(256)}
        new.update({z: 2000 + r for r, z in enumerate(merges.values())})
        merges = {(new[a], new[b]): new[z] for (a, b), z in merges.items()}
    plain = BPE(merges, "", byte_ids)
    quick = FastBPE(merges, "", byte_ids)
    want = [plain.encode_chunk(plain.chunk_ids(c)) for c in chunks]
    assert [quick.encode_chunk(quick.chunk_ids(c)) for c in chunks] == want
    assert quick.encode_chunks(chunks) == [i for ids in want for i in ids]
    assert quick.encode_chunks(chunks) == [i for ids in want for i in ids]   # now cached


def test_batch_encoder_leaves_the_garbage_collector_as_it_found_it():
    tok = Tokenizer.train(builtin_corpus()[:20_000], 400)
    text = builtin_corpus()[20_000:40_000]
    want = BPE(tok.merges, tok.pattern).encode(text)
    for enabled in (True, False):
        tok._bpe.clear_cache()
        (gc.enable if enabled else gc.disable)()
        try:
            assert tok.encode_ordinary(text) == want
            assert gc.isenabled() is enabled
        finally:
            gc.enable()
    assert tok._bpe.pair_ranks is not None   # the batch encoder ran


# ----------------------------------------------------------------------------- tiktoken oracle
def test_plain_path_equals_tiktoken(plain):
    pytest.importorskip("tiktoken")
    text = builtin_corpus()[:40_000]
    for pattern in ("gpt2", "gpt4"):
        tok = Tokenizer.train(text, 400, pattern=pattern, special_tokens=["<|endoftext|>"])
        assert type(tok._bpe) is BPE
        enc = tok.to_tiktoken()
        sample = builtin_corpus()[-8_000:] + " héllo wörld 日本語 🙂🙂 1234567 it's\r\n\r\n x"
        assert tok.encode_ordinary(sample) == enc.encode_ordinary(sample)
        assert tok.encode(sample + "<|endoftext|>", allowed_special="all") == \
            enc.encode(sample + "<|endoftext|>", allowed_special="all")


@pytest.fixture(scope="module")
def tok_and_tiktoken():
    pytest.importorskip("tiktoken")
    tok = Tokenizer.train(builtin_corpus()[:30_000], 500)
    return tok, tok.to_tiktoken()


@settings(deadline=None)
@given(s=st.text(max_size=120) | st.text(alphabet=" \r\n\t1234567890aé'!😀", max_size=120))
def test_both_paths_equal_tiktoken_on_random_text(tok_and_tiktoken, s):
    tok, enc = tok_and_tiktoken
    want = enc.encode_ordinary(s)
    assert tok.encode_ordinary(s) == want
    assert BPE(tok.merges, tok.pattern).encode(bt._sanitize(s)) == want


def test_plain_split_is_regex_findall_for_the_built_in_patterns():
    text = builtin_corpus()[:5000] + " héllo 日本 🙂 x\r\n"
    for pattern in (bpe.GPT2_SPLIT_PATTERN, bpe.GPT4_SPLIT_PATTERN):
        assert BPE(pattern=pattern).split(text) == regex.findall(pattern, text)
