"""Byte-level BPE: oracle (a slow reference trainer/encoder, tiktoken), textbook case, round trips."""
from __future__ import annotations

import random
import warnings
from pathlib import Path

import pytest
import regex
from hypothesis import example, given, settings
from hypothesis import strategies as st

from minigpt.corpus import builtin_corpus
from minigpt.errors import MinigptError, TokenizerError
from minigpt.tokenizer import (GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN, CharTokenizer, MergeStep,
                               Tokenizer, get_stats, merge, train_merges)
from minigpt.tokenizer.fast import PairRanks, _bpe_long, _bpe_short, bpe_many

TINY = Path(__file__).resolve().parents[3].parent / "shared/data/tinyshakespeare.txt"
EOT = "<|endoftext|>"

TRICKY = [
    "", " ", "a", "Hello, world!", "héllo wörld", "日本語のテキストです。", "中文 测试 123",
    "👨‍👩‍👧‍👦 family 🏳️‍🌈 flag", "e\u0301 vs \u00e9", "a\r\nb\r\n\r\nc", "\n\n\n", "\t\t x",
    " " * 50 + "x" + " " * 50, "1234567890 3.14159 1,000,000", "I'm you'll WE'RE they'D it's",
    "  \n  \t\u00a0 \u2028 \u3000", "\x00\x01\x7f", "ﷺ ﷽ \u0915\u094d\u0937", "مرحبا بالعالم",
    "Ωmega ΣΑΣ straße İstanbul", "<|endoftext|> inside", "a" * 300, "ab" * 200, "🙂" * 40,
    "'s's's", "...!!!???", "x\u200dy\u200bz", "\ufeffBOM", "tab\tsep\tvalues\n",
]


# ----------------------------------------------------------------------------- references

def reference_train(text: str, vocab_size: int, pattern) -> list[tuple[int, int]]:
    """Obviously correct (and slow): rescan every chunk occurrence for every merge."""
    tok = Tokenizer(pattern=pattern)
    chunks = [list(c.encode("utf-8")) for c in tok.split(text)]
    merges = []
    for k in range(vocab_size - 256):
        counts: dict[tuple[int, int], int] = {}
        for c in chunks:
            for p in zip(c, c[1:]):
                counts[p] = counts.get(p, 0) + 1
        if not counts:
            break
        best = max(counts, key=lambda p: (counts[p], -p[0], -p[1]))  # count, then smallest pair
        merges.append(best)
        chunks = [merge(c, best, 256 + k) for c in chunks]
    return merges


def reference_encode(tok: Tokenizer, text: str) -> list[int]:
    """Replay the merges on each chunk in rank order, one whole pass per merge."""
    out = []
    for chunk in tok.split(text):
        ids = list(chunk.encode("utf-8"))
        for pair, z in tok.merges.items():
            ids = merge(ids, pair, z)
        out += ids
    return out


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    text = builtin_corpus()[:60_000] + " ".join(TRICKY) * 3
    return Tokenizer.train(text, 512, special_tokens=[EOT])


@pytest.fixture(scope="module")
def big() -> Tokenizer:
    if not TINY.exists():
        pytest.skip(f"{TINY} is absent")
    return Tokenizer.train(TINY.read_text(encoding="utf-8"), 4096, special_tokens=[EOT])


# ----------------------------------------------------------------------------- helpers

def test_helpers_worked_examples():
    assert get_stats([1, 2, 3, 1, 2]) == {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    assert merge([1, 2, 3, 1, 2], (1, 2), 4) == [4, 3, 4]
    assert merge([7, 7, 7], (7, 7), 8) == [8, 7]


def test_textbook_wikipedia_case():
    tok = Tokenizer.train("aaabdaaabac", 256 + 3, pattern=None)
    assert list(tok.merges.items()) == [((97, 97), 256), ((97, 98), 257), ((256, 257), 258)]
    assert tok.encode("aaabdaaabac") == [258, 100, 258, 97, 99]
    assert tok.decode([258, 100, 258, 97, 99]) == "aaabdaaabac"


def test_tie_break_is_smallest_pair():
    # every pair occurs once: the smallest pair (a, b) wins, whatever dict order says
    assert train_merges({b"dcba": 1, b"abcd": 1}, 1) == [(97, 98)]
    tok = Tokenizer.train("zyx abc", 257, pattern=None)
    assert list(tok.merges) == [(32, 97)]


def test_training_is_deterministic(tok):
    text = builtin_corpus()[:60_000] + " ".join(TRICKY) * 3
    again = Tokenizer.train(text, 512, special_tokens=[EOT])
    assert again.merges == tok.merges and again.special_tokens == tok.special_tokens


@settings(deadline=None)
@given(text=st.text(alphabet="ab c\n1é😀'", max_size=120) | st.text(max_size=60),
       extra=st.integers(0, 40), pattern=st.sampled_from(["gpt2", "gpt4", None]))
@example(text="aaaa aaaa aaa", extra=10, pattern=None)
@example(text="abababab", extra=10, pattern=None)
def test_fast_trainer_equals_reference(text, extra, pattern):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tok = Tokenizer.train(text, 256 + extra, pattern=pattern)
    ref = reference_train(text, 256 + extra, pattern)
    assert list(tok.merges) == ref
    assert list(tok.merges.values()) == list(range(256, 256 + len(ref)))
    assert tok.encode(text) == reference_encode(tok, text)
    tok._bpe.cache.clear()  # the cache seeded by training must agree with a fresh encode
    assert tok.encode(text) == reference_encode(tok, text)


def test_early_stop_warns_and_shrinks_vocab():
    with pytest.warns(UserWarning, match="only enough pairs for 1 merges, not 43; vocab_size is 258"):
        tok = Tokenizer.train("ab", 300, pattern=None, special_tokens=[EOT])
    assert tok.vocab_size == 258 and tok.eot_token == 257


def test_special_tokens_get_ids_after_merges(tok):
    assert tok.special_tokens == {EOT: 511} and tok.eot_token == 511 and tok.vocab_size == 512
    assert len(tok.merges) == 512 - 256 - 1
    assert Tokenizer.train("hello", 260).eot_token is None
    t2 = Tokenizer.train("hello hello", 259, special_tokens={EOT: 1000})
    assert t2.eot_token == 1000 and t2.vocab_size == 1001


def test_specials_in_training_text_are_not_learned():
    tok = Tokenizer.train(("<|endoftext|>" * 50 + "hi ") * 5, 258, special_tokens=[EOT])
    assert all(b"|" not in tok.vocab[z] for z in tok.merges.values())


# ----------------------------------------------------------------------------- round trips

@given(st.text())
@example("".join(TRICKY))
@example("\r\n" * 30 + " " * 200 + "9" * 100)
def test_roundtrip_text(tok, s):
    assert tok.decode(tok.encode(s, allowed_special="none")) == s
    assert tok.decode(tok.encode_ordinary(s)) == s


@given(st.binary(max_size=300))
@example(b"\xff\xfe\x80abc \xc3")
@example("héllo".encode("utf-8")[:2] + b" world")
def test_roundtrip_bytes(tok, b):
    assert tok.decode_bytes(tok.encode_bytes(b)) == b


def test_roundtrip_tricky(tok):
    for s in TRICKY:
        ids = tok.encode(s, allowed_special="all")
        assert tok.decode(ids) == s
        assert all(0 <= i < tok.vocab_size for i in ids)


def test_split_patterns(tok):
    assert tok.pattern == GPT4_SPLIT_PATTERN
    assert tok.split("Hello world!! 12345") == ["Hello", " world", "!!", " ", "123", "45"]
    assert Tokenizer(pattern="gpt2").split("Hello world!! 12345") == \
        ["Hello", " world", "!!", " 12345"]
    assert Tokenizer(pattern="gpt2").pattern == GPT2_SPLIT_PATTERN
    assert Tokenizer(pattern=None).split("a b") == ["a b"]
    # a custom pattern that leaves gaps still keeps every character
    custom = Tokenizer(pattern=r"\w+")
    assert "".join(custom.split("hi, you!")) == "hi, you!"
    assert custom.decode(custom.encode("hi, you!")) == "hi, you!"


def test_long_chunks_use_heap_encoder_with_same_result():
    tok = Tokenizer.train("aaaa bbbb abab " * 20 + "a" * 64, 280, pattern=None)
    rng = random.Random(0)
    for n in (1, 2, 3, 50, 257, 1000):
        ids = [rng.choice(b"ab ") for _ in range(n)]
        assert _bpe_long(list(ids), tok._bpe.ranks, tok._bpe.rank_to_id) == \
            _bpe_short(list(ids), tok._bpe.ranks, tok._bpe.rank_to_id)
    s = "aaaa bbbb abab " * 100
    assert tok.encode(s) == reference_encode(tok, s) and tok.decode(tok.encode(s)) == s


ASCII_TRICKY = "sdmtlvreSDMTLVRE'xQ09 \t\n\r\x0b\x0c\x1c\x1f\x00!.,-"


@given(s=st.text(alphabet=ASCII_TRICKY, max_size=80) | st.text(st.characters(max_codepoint=127)),
       pattern=st.sampled_from(["gpt2", "gpt4"]))
def test_ascii_splitter_equals_regex(s, pattern):
    """ASCII text is split by the stdlib ``re`` translation of the pattern: same chunks."""
    t = Tokenizer(pattern=pattern)
    assert t._bpe.ascii_split is not None
    assert t.split(s) == regex.findall(t.pattern, s)


@given(s=st.text(alphabet="aZs'\u2019 \n\r\t1!é日😀\u0301", max_size=120) | st.text(max_size=60),
       pattern=st.sampled_from(["gpt2", "gpt4"]))
@example(s="Hello\nWörld\nagain\n  x'S\nend", pattern="gpt4")
@example(s="x!\n é", pattern="gpt4")                 # a newline after punctuation is no cut
@example(s="é!\nab\n x", pattern="gpt4")
@example(s="ab  \n\n é\t\nq\r\n1é", pattern="gpt4")
@example(s="x!\n é", pattern="gpt2")
@example(s="é \n\nab", pattern="gpt2")             # GPT-2: no cut after a newline
@example(s="x\n\né", pattern="gpt2")
@example(s="é!\n\nAb  \n\nc", pattern="gpt4")
def test_mixed_text_splitter_equals_regex(s, pattern):
    """Text with some non-ASCII characters is split in stretches (regex around them, the
    fast splitter elsewhere, cut before newlines that follow letters): same chunks."""
    import minigpt.tokenizer.fast as T
    t = Tokenizer(pattern=pattern)
    want = regex.findall(t.pattern, s)
    assert t.split(s) == want
    default, T._MIN_ASCII_STRETCH = T._MIN_ASCII_STRETCH, 0   # every ASCII stretch apart
    try:
        assert t.split(s) == want
    finally:
        T._MIN_ASCII_STRETCH = default


@given(corpus=st.text(alphabet="aab c'\n1é", min_size=2, max_size=150),
       chunks=st.lists(st.binary(min_size=1, max_size=40) | st.text("aab c1é", min_size=1).map(str.encode),
                       min_size=1, max_size=30),
       dense=st.sampled_from([256, 260, 1024]), permute=st.booleans())
@example(corpus="aaaaaaa aaaa abab", chunks=[b"aaaaa", b"aaa", b"a", b"aaaaaaaab", b"ababa"],
         dense=256, permute=False)  # runs of a's: overlapping occurrences of (a, a)
def test_batch_bpe_equals_per_chunk(corpus, chunks, dense, permute):
    """bpe_many (all chunks at once, NumPy) gives the ids of _bpe_short chunk by chunk, with
    pairs looked up in the dense matrix or in the sorted keys (ids >= dense)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a short corpus may run out of pairs: fewer merges
        tok = Tokenizer.train(corpus, 256 + 30, pattern=None)
    if permute:  # single bytes with shuffled ids, as in GPT-2 and cl100k files
        ranks = tok.mergeable_ranks()
        perm = list(range(256))
        random.Random(len(corpus)).shuffle(perm)
        ranks.update({bytes([b]): perm[b] for b in range(256)})
        tok = Tokenizer.from_ranks(ranks, pattern=None)
    table = PairRanks(tok._bpe.ranks, tok._bpe.rank_to_id, tok._byte_ids, dense=dense)
    bmap = tok._byte_ids or range(256)
    want = [tuple(_bpe_short([bmap[x] for x in c], tok._bpe.ranks, tok._bpe.rank_to_id)) for c in chunks]
    assert bpe_many(chunks, table) == want


def test_cold_encode_uses_batch_and_equals_reference(tok):
    text = builtin_corpus()[:30_000] + " ".join(TRICKY)
    tok._bpe.cache.clear()
    assert len(set(tok.split(text))) > 64  # enough new chunks for the batch encoder
    assert tok.encode_ordinary(text) == reference_encode(tok, text)
    assert tok._bpe.pair_ranks is not None


def test_cache_is_bounded_and_consistent(tok, monkeypatch):
    import minigpt.tokenizer.fast as T
    monkeypatch.setattr(T, "_CACHE_MAX", 50)
    tok._bpe.cache.clear()
    text = builtin_corpus()[:20_000]
    a = tok.encode(text)
    assert len(tok._bpe.cache) <= 50
    assert a == reference_encode(tok, text) == tok.encode(text)


def test_encode_batch(tok):
    texts = ["hello world", "", EOT, "日本"]
    assert tok.encode_batch(texts, allowed_special="all") == \
        [tok.encode(t, allowed_special="all") for t in texts]


def test_decode_invalid_utf8_gives_replacement(tok):
    assert tok.decode([0xFF]) == "\ufffd"
    e_acute = list("é".encode("utf-8"))
    assert tok.decode([e_acute[0], ord("x")]) == "\ufffdx"
    assert tok.decode_bytes([0xFF, 0xC3]) == b"\xff\xc3"


def test_lone_surrogates_encode_like_tiktoken(tok):
    assert tok.encode("a\ud800b") == tok.encode("a\ufffdb")


# ----------------------------------------------------------------------------- specials

def test_special_token_semantics(tok):
    text = f"hello{EOT} world"
    with pytest.raises(TokenizerError, match=r"special token '<\|endoftext\|>' at index 5"):
        tok.encode(text)
    assert tok.encode(text, allowed_special="all") == \
        tok.encode("hello") + [tok.eot_token] + tok.encode(" world")
    assert tok.encode(text, allowed_special={EOT}) == tok.encode(text, allowed_special="all")
    ordinary = tok.encode(text, allowed_special="none")
    assert tok.eot_token not in ordinary and ordinary == tok.encode_ordinary(text)
    assert tok.decode(tok.encode(text, allowed_special="all")) == text
    with pytest.raises(TokenizerError, match="unknown special tokens"):
        tok.encode("x", allowed_special={"<|nope|>"})


# ----------------------------------------------------------------------------- explain

def test_explain_reproduces_encode(tok):
    text = builtin_corpus()[:3000] + " ".join(TRICKY)
    for chunk in set(tok.split(text)):
        steps = tok.explain(chunk)
        expected = tok.encode_ordinary(chunk)
        final = steps[-1].tokens_after if steps else list(chunk.encode("utf-8"))
        assert final == expected
        ranks = [s.rank for s in steps]
        assert ranks == sorted(ranks)
        for s in steps:
            assert isinstance(s, MergeStep) and tok.merges[s.pair] == s.new_id
            assert list(tok.merges)[s.rank] == s.pair


def test_explain_textbook():
    tok = Tokenizer.train("aaabdaaabac", 259, pattern=None)
    steps = tok.explain("aaabdaaabac")
    assert steps == [MergeStep((97, 97), 0, 256, [256, 97, 98, 100, 256, 97, 98, 97, 99]),
                     MergeStep((97, 98), 1, 257, [256, 257, 100, 256, 257, 97, 99]),
                     MergeStep((256, 257), 2, 258, [258, 100, 258, 97, 99])]


# ----------------------------------------------------------------------------- errors

def test_error_messages(tok):
    with pytest.raises(TokenizerError, match=r"decode: id 70000 is outside the vocabulary \(size 512\)"):
        tok.decode([1, 70000])
    with pytest.raises(TokenizerError, match=r"decode: id -1 is outside"):
        tok.decode([-1])
    with pytest.raises(TokenizerError, match=r"train: vocab_size must be >= 256 .* got 100"):
        Tokenizer.train("hello", 100)
    with pytest.raises(TokenizerError, match=r"\+ 1 special tokens\) = 257, got 256"):
        Tokenizer.train("hello", 256, special_tokens=[EOT])
    with pytest.raises(TokenizerError, match=r"train: vocab_size must be an int, got float"):
        Tokenizer.train("hello", 300.0)
    with pytest.raises(TokenizerError, match=r"train: text must be str, got list"):
        Tokenizer.train(["hello"], 300)
    with pytest.raises(TokenizerError, match=r"encode: text must be str, got bytes \(use encode_bytes"):
        tok.encode(b"hello")
    with pytest.raises(TokenizerError, match=r"encode_bytes: data must be bytes, got str"):
        tok.encode_bytes("hello")
    with pytest.raises(TokenizerError, match=r"pattern is not a valid regex"):
        Tokenizer.train("hello", 300, pattern="(unclosed")
    with pytest.raises(TokenizerError, match=r"allowed_special must be"):
        tok.encode("x", allowed_special="some")
    with pytest.raises(TokenizerError, match=r"needs a free non-negative int id"):
        Tokenizer(special_tokens={EOT: 97})
    # the hierarchy: catchable as MinigptError and as ValueError
    with pytest.raises(MinigptError):
        tok.decode([10 ** 9])
    with pytest.raises(ValueError):
        tok.decode([10 ** 9])


# ----------------------------------------------------------------------------- tiktoken oracle

def _tiktoken_for(tok: Tokenizer):
    pytest.importorskip("tiktoken")
    return tok.to_tiktoken()


def test_tiktoken_equal_on_tinyshakespeare(big):
    enc = _tiktoken_for(big)
    text = TINY.read_text(encoding="utf-8")
    assert big.encode(text) == enc.encode_ordinary(text)
    big._bpe.cache.clear()
    assert big.encode(text) == enc.encode_ordinary(text)
    assert big.decode(enc.encode_ordinary(text)) == text


def test_tiktoken_equal_on_tricky_unicode(big):
    enc = _tiktoken_for(big)
    for s in TRICKY + ["\ud800 lone", "x\udcff"]:
        assert big.encode(s, allowed_special="all") == enc.encode(s, allowed_special="all"), s


@settings(deadline=None)
@given(s=st.text(max_size=200) | st.text(alphabet=" \r\n\t1234567890aé'!😀", max_size=200))
def test_tiktoken_equal_hypothesis(big, s):
    enc = _tiktoken_for(big)
    assert big.encode_ordinary(s) == enc.encode_ordinary(s)


def test_tiktoken_equal_gpt2_pattern():
    pytest.importorskip("tiktoken")
    text = builtin_corpus()[:80_000]
    tok = Tokenizer.train(text, 700, pattern="gpt2")
    enc = tok.to_tiktoken()
    sample = text[-20_000:] + " ".join(TRICKY)
    assert tok.encode(sample, allowed_special="none") == enc.encode_ordinary(sample)


# ----------------------------------------------------------------------------- CharTokenizer

def test_char_tokenizer():
    ct = CharTokenizer.train("hello world")
    assert ct.vocab_size == 8 and ct.chars == sorted(set("hello world"))
    assert ct.decode(ct.encode("hold")) == "hold"
    assert ct.eot_token is None
    with pytest.raises(TokenizerError, match=r"character 'z' \(U\+007A\) at index 2"):
        ct.encode("hez")
    with pytest.raises(TokenizerError, match=r"decode: id 8 is outside the vocabulary \(size 8\)"):
        ct.decode([8])
    with pytest.raises(TokenizerError, match="text must be str, got int"):
        ct.encode(5)


@given(st.text(min_size=1))
def test_char_roundtrip(s):
    ct = CharTokenizer.train(s)
    assert ct.decode(ct.encode(s)) == s
