"""Tokenizer files: save -> load gives identical encodings (all formats); broken files fail clearly."""
from __future__ import annotations

import json
import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt.corpus import builtin_corpus
from minigpt.errors import TokenizerFileError
from minigpt.tokenizer import CharTokenizer, Tokenizer, load_tokenizer
from minigpt.tokenizer.io import bytes_to_unicode

EOT = "<|endoftext|>"
SAMPLE = builtin_corpus()[-5000:] + " héllo 日本語 👨‍👩‍👧 e\u0301 \r\n\r\n  1234567 <|endoftext|> x"


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.train(builtin_corpus()[:40_000] + " 日本語 héllo 👨‍👩‍👧", 400, special_tokens=[EOT])


@pytest.fixture(scope="module")
def permuted(tok) -> Tokenizer:
    """Same tokens, but single bytes have shuffled ids (as in GPT-2 and cl100k files)."""
    ranks = tok.mergeable_ranks()
    perm = list(range(256))
    random.Random(1).shuffle(perm)
    for b in range(256):
        ranks[bytes([b])] = perm[b]
    return Tokenizer.from_ranks(ranks, pattern="gpt4", special_tokens={EOT: 399})


def _same(a, b, text=SAMPLE):
    assert a.encode(text, allowed_special="all") == b.encode(text, allowed_special="all")
    assert a.vocab == b.vocab and a.special_tokens == b.special_tokens


# ----------------------------------------------------------------------------- round trips

def test_own_format_roundtrip(tok, permuted, tmp_path):
    for t in (tok, permuted, Tokenizer.train("aaabdaaabac", 259, pattern=None)):
        p = tmp_path / "t.bpe"
        t.save(p)
        back = Tokenizer.load(p)
        _same(t, back)
        assert back.merges == t.merges and back.pattern == t.pattern
        assert isinstance(load_tokenizer(p), Tokenizer)
    text = (tmp_path / "t.bpe").read_text()
    assert text.startswith("minigpt-tokenizer bpe 1\npattern ")


@settings(deadline=None)
@given(corpus=st.text(min_size=1, max_size=200), extra=st.integers(0, 30),
       pattern=st.sampled_from(["gpt2", "gpt4", None, r"\p{L}+|\d|\s+"]))
def test_save_load_property(tmp_path_factory, corpus, extra, pattern):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = Tokenizer.train(corpus, 257 + extra, pattern=pattern, special_tokens=["<|x|>"])
    p = tmp_path_factory.mktemp("prop") / "t.bpe"
    t.save(p)
    _same(t, Tokenizer.load(p), corpus + "<|x|>" + SAMPLE)


def test_tiktoken_format_roundtrip(tok, permuted, tmp_path):
    for t in (tok, permuted):
        p = tmp_path / "t.tiktoken"
        t.save_tiktoken(p)
        back = Tokenizer.from_tiktoken(p, pattern=t.pattern, special_tokens=t.special_tokens)
        _same(t, back)
        assert back.merges == t.merges
        assert Tokenizer.from_tiktoken(t.mergeable_ranks(), t.pattern, t.special_tokens).merges == t.merges


def test_tiktoken_reads_our_rank_file(tok, permuted, tmp_path, monkeypatch):
    tiktoken = pytest.importorskip("tiktoken")
    from tiktoken.load import load_tiktoken_bpe
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    for t in (tok, permuted):
        p = tmp_path / "t.tiktoken"
        t.save_tiktoken(p)
        ranks = load_tiktoken_bpe(str(p))
        assert ranks == t.mergeable_ranks()
        enc = tiktoken.Encoding("x", pat_str=t.pattern, mergeable_ranks=ranks,
                                special_tokens=t.special_tokens)
        assert enc.encode(SAMPLE, allowed_special="all") == t.encode(SAMPLE, allowed_special="all")


def test_gpt2_format_roundtrip(tok, permuted, tmp_path):
    for t in (tok, permuted):
        ej, vb = tmp_path / "encoder.json", tmp_path / "vocab.bpe"
        t.save_gpt2(ej, vb)
        back = Tokenizer.from_gpt2(ej, vb, pattern=t.pattern)
        _same(t, back)
        assert back.merges == t.merges
        assert vb.read_text(encoding="utf-8").startswith("#version: 0.2\n")
        enc = json.loads(ej.read_text())
        assert enc[bytes_to_unicode()[ord(" ")] + "the"] == t.encode(" the")[0]


def test_gpt2_files_match_tiktoken_data_gym_reader(tok, tmp_path, monkeypatch):
    pytest.importorskip("tiktoken")
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    ej, vb = tmp_path / "encoder.json", tmp_path / "vocab.bpe"
    tok.save_gpt2(ej, vb)
    ranks = data_gym_to_mergeable_bpe_ranks(str(vb), str(ej), clobber_one_byte_tokens=True)
    assert ranks == tok.mergeable_ranks()


def test_gpt2_byte_order_file(tmp_path, monkeypatch):
    """A file in GPT-2's own byte order (bytes get ids 0..255 in bytes_to_unicode order)."""
    b2u = bytes_to_unicode()
    order = list(b2u)  # GPT-2's id order of the 256 bytes
    encoder = {b2u[b]: i for i, b in enumerate(order)}
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he")]
    for k, (a, b) in enumerate(merges):
        encoder[a + b] = 256 + k
    encoder[EOT] = 259
    ej, vb = tmp_path / "encoder.json", tmp_path / "vocab.bpe"
    ej.write_text(json.dumps(encoder))
    vb.write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    t = Tokenizer.from_gpt2(ej, vb)
    assert t.eot_token == 259 and t.vocab_size == 260
    assert t.encode(" the") == [258] and t.decode([258, 259]) == " the" + EOT
    assert t.encode("!") == [0]  # '!' is GPT-2's token 0
    tiktoken = pytest.importorskip("tiktoken")
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    assert data_gym_to_mergeable_bpe_ranks(str(vb), str(ej)) == t.mergeable_ranks()
    enc = tiktoken.Encoding("g", pat_str=t.pattern, mergeable_ranks=t.mergeable_ranks(),
                            special_tokens={EOT: 259})
    assert enc.encode(SAMPLE, allowed_special="all") == t.encode(SAMPLE, allowed_special="all")


def test_char_format_roundtrip(tmp_path):
    ct = CharTokenizer.train(builtin_corpus()[:5000] + "é\n\t\"\\ \u2028 \x00")
    p = tmp_path / "c.tok"
    ct.save(p)
    back = load_tokenizer(p)
    assert isinstance(back, CharTokenizer) and back.chars == ct.chars
    assert back.encode("hello") == ct.encode("hello")


def test_save_is_atomic(tok, tmp_path, monkeypatch):
    p = tmp_path / "t.bpe"
    tok.save(p)
    before = p.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        Tokenizer.train("something else", 260).save(p)
    assert p.read_bytes() == before
    assert os.listdir(tmp_path) == ["t.bpe"]  # no temp file left behind


# ----------------------------------------------------------------------------- broken files

def test_truncated_files_fail_clearly(tok, tmp_path):
    p = tmp_path / "t.bpe"
    tok.save(p)
    data = p.read_bytes()
    bad = tmp_path / "bad.bpe"
    cuts = sorted(set(random.Random(0).sample(range(len(data)), 60)) | {0, 1, len(data) - 1})
    for cut in cuts:
        bad.write_bytes(data[:cut])
        with pytest.raises(TokenizerFileError, match=r"bad\.bpe"):
            Tokenizer.load(bad)
    bad.write_bytes(data[: data.rindex(b"end sha256")])
    with pytest.raises(TokenizerFileError, match=r"truncated"):
        Tokenizer.load(bad)


def test_bit_flips_fail_clearly(tok, tmp_path):
    p = tmp_path / "t.bpe"
    tok.save(p)
    data = p.read_bytes()
    bad = tmp_path / "flip.bpe"
    rng = random.Random(0)
    for _ in range(150):
        i, bit = rng.randrange(len(data)), rng.randrange(8)
        flipped = bytearray(data)
        flipped[i] ^= 1 << bit
        bad.write_bytes(bytes(flipped))
        with pytest.raises(TokenizerFileError):
            Tokenizer.load(bad)


def test_foreign_and_wrong_files(tok, tmp_path):
    cases = {
        "empty.txt": b"",
        "json.json": b'{"model": "gpt2"}\n',
        "binary.bin": bytes(range(256)) * 4,
        "v2.bpe": b"minigpt-tokenizer bpe 2\n",
        "kind.bpe": b"minigpt-tokenizer wordpiece 1\n",
    }
    msgs = {"empty.txt": "not a minigpt tokenizer file", "json.json": "expected a first line like",
            "binary.bin": "not UTF-8|not a minigpt", "v2.bpe": "unsupported format version '2'",
            "kind.bpe": "got kind 'wordpiece'"}
    for name, data in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(TokenizerFileError, match=msgs[name]):
            Tokenizer.load(p)
        with pytest.raises(TokenizerFileError):
            load_tokenizer(p)
    tt = tmp_path / "t.tiktoken"
    tok.save_tiktoken(tt)
    with pytest.raises(TokenizerFileError, match=r"t\.tiktoken:1: not a minigpt tokenizer file"):
        Tokenizer.load(tt)
    c = tmp_path / "c.tok"
    CharTokenizer.train("abc").save(c)
    with pytest.raises(TokenizerFileError, match="expected a 'bpe' tokenizer, got kind 'char'"):
        Tokenizer.load(c)
    b = tmp_path / "b.bpe"
    tok.save(b)
    with pytest.raises(TokenizerFileError, match="expected a 'char' tokenizer"):
        CharTokenizer.load(b)


def test_hand_edited_file_with_fixed_checksum_is_validated(tok, tmp_path):
    import hashlib
    p = tmp_path / "t.bpe"
    tok.save(p)
    lines = p.read_text().split("\n")[:-2]  # drop the end line
    merge_at = lines.index(next(x for x in lines if x.startswith("merges "))) + 1
    lines[merge_at] = "97 x 256"
    body = "".join(x + "\n" for x in lines)
    p.write_text(body + f"end sha256 {hashlib.sha256(body.encode()).hexdigest()}\n")
    with pytest.raises(TokenizerFileError, match=rf"t\.bpe:{merge_at + 1}: expected a merge"):
        Tokenizer.load(p)
    lines[merge_at] = "97 98 97"  # an id collision
    body = "".join(x + "\n" for x in lines)
    p.write_text(body + f"end sha256 {hashlib.sha256(body.encode()).hexdigest()}\n")
    with pytest.raises(TokenizerFileError, match=r"reuses id 97"):
        Tokenizer.load(p)


def test_broken_tiktoken_files(tok, tmp_path):
    p = tmp_path / "r.tiktoken"
    p.write_bytes(b"YQ== 0\nnot-base64! 1\n")
    with pytest.raises(TokenizerFileError, match=r"r\.tiktoken:2: expected '<base64 token> <rank>'"):
        Tokenizer.from_tiktoken(p)
    p.write_bytes(b"YQ== 0\nYg==\n")
    with pytest.raises(TokenizerFileError, match=r":2: expected"):
        Tokenizer.from_tiktoken(p)
    p.write_bytes(b"")
    with pytest.raises(TokenizerFileError, match="empty"):
        Tokenizer.from_tiktoken(p)
    p.write_bytes(b"YQ== 0\nYg== 1\n")
    with pytest.raises(TokenizerFileError, match="lack 254 single bytes"):
        Tokenizer.from_tiktoken(p)
    tok.save_tiktoken(p)
    p.write_bytes(p.read_bytes() + b"YQ== 999\n")  # 'a' again
    with pytest.raises(TokenizerFileError, match="repeated"):
        Tokenizer.from_tiktoken(p)


def test_broken_gpt2_files(tok, tmp_path):
    ej, vb = tmp_path / "encoder.json", tmp_path / "vocab.bpe"
    tok.save_gpt2(ej, vb)
    good = ej.read_text()
    ej.write_text(good[: len(good) // 2])
    with pytest.raises(TokenizerFileError, match="encoder.json.*not valid JSON"):
        Tokenizer.from_gpt2(ej, vb)
    ej.write_text(good)
    vb.write_text("#version: 0.2\nq zzzz\n")
    with pytest.raises(TokenizerFileError, match=r"vocab\.bpe:2: token 'zzzz'"):
        Tokenizer.from_gpt2(ej, vb)
    vb.write_text("#version: 0.2\nonlyone\n")
    with pytest.raises(TokenizerFileError, match=r"vocab\.bpe:2: expected a merge"):
        Tokenizer.from_gpt2(ej, vb)
