"""minigpt.data: reading, splitting, the token-id cache and the batch sampler."""
import json

import numpy as np
import pytest

from minigpt.corpus import builtin_corpus
from minigpt.data import (BatchSampler, DataError, ids_dtype, prepare_data, read_text,
                          split_text, tokenizer_from_text, tokenizer_to_text)
from minigpt.tokenizer import CharTokenizer, Tokenizer


@pytest.fixture
def text_file(tmp_path):
    p = tmp_path / "data.txt"
    p.write_text(builtin_corpus()[:20_000], encoding="utf-8")
    return p


def test_read_text_errors(tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.txt.*not UTF-8.*byte 3 \(line 1\)"):
        read_text(bad)
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    with pytest.raises(DataError, match="empty"):
        read_text(empty)
    with pytest.raises(DataError, match="does not exist"):
        read_text(tmp_path / "missing.txt")
    with pytest.raises(DataError, match="directory"):
        read_text(tmp_path)
    text, raw = read_text(None)
    assert text.startswith("First Citizen:") and raw == text.encode()


def test_split_text():
    assert split_text("abcdefghij", 0.1) == ("abcdefghi", "j")
    with pytest.raises(DataError, match="val_fraction"):
        split_text("abc", 1.0)


def test_ids_dtype():
    assert ids_dtype(512) == np.uint16 and ids_dtype(65536) == np.uint16
    assert ids_dtype(65537) == np.uint32


def test_prepare_data_bpe_and_cache_reuse(text_file, tmp_path):
    cache = tmp_path / "cache"
    logs = []
    d = prepare_data(text_file, "bpe", 300, 0.1, cache, log=logs.append)
    assert isinstance(d.tokenizer, Tokenizer) and d.tokenizer.vocab_size == 300
    assert d.tokenizer.eot_token == 299
    assert d.train_ids.dtype == np.uint16 and isinstance(d.train_ids, np.memmap)
    train_text, val_text = split_text(text_file.read_text(), 0.1)
    assert d.tokenizer.decode(d.train_ids) == train_text
    assert d.tokenizer.decode(d.val_ids) == val_text
    side = json.loads((cache / "train.json").read_text())
    assert side["length"] == d.train_ids.size and side["dtype"] == "uint16"
    assert len(side["key"]) == 64
    assert any("training the tokenizer" in m for m in logs)
    mtimes = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    logs.clear()
    d2 = prepare_data(text_file, "bpe", 300, 0.1, cache, log=logs.append)
    assert logs == []                                   # everything came from the cache
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == mtimes
    assert np.array_equal(d2.train_ids, d.train_ids)


def test_cache_rebuilt_when_data_changes(text_file, tmp_path):
    cache = tmp_path / "cache"
    d1 = prepare_data(text_file, "bpe", 300, 0.1, cache)
    text_file.write_text(text_file.read_text() + "A new line at the end.\n", encoding="utf-8")
    d2 = prepare_data(text_file, "bpe", 300, 0.1, cache)
    assert d2.data_sha256 != d1.data_sha256
    assert d2.tokenizer.decode(d2.val_ids).endswith("A new line at the end.\n")
    # a different vocabulary size retrains the tokenizer and re-encodes
    d3 = prepare_data(text_file, "bpe", 280, 0.1, cache)
    assert d3.tokenizer.vocab_size == 280
    assert d3.train_ids.max() < 280


@pytest.mark.parametrize("damage", ["flip", "truncate", "sidecar", "sidecar_key", "no_bin"])
def test_cache_rebuilt_when_broken(text_file, tmp_path, damage):
    cache = tmp_path / "cache"
    d = prepare_data(text_file, "bpe", 300, 0.1, cache)
    good = np.array(d.train_ids)
    del d
    b, s = cache / "train.bin", cache / "train.json"
    if damage == "flip":
        raw = bytearray(b.read_bytes())
        raw[10] ^= 0xFF
        b.write_bytes(bytes(raw))
    elif damage == "truncate":
        b.write_bytes(b.read_bytes()[:-7])
    elif damage == "sidecar":
        s.write_text("{not json")
    elif damage == "sidecar_key":
        meta = json.loads(s.read_text())
        meta["key"] = "0" * 64
        s.write_text(json.dumps(meta))
    else:
        b.unlink()
    logs = []
    d2 = prepare_data(text_file, "bpe", 300, 0.1, cache, log=logs.append)
    assert np.array_equal(d2.train_ids, good)
    assert json.loads(s.read_text())["length"] == good.size


def test_tokenizer_cache_damaged(text_file, tmp_path):
    cache = tmp_path / "cache"
    d = prepare_data(text_file, "bpe", 300, 0.1, cache)
    (cache / "tokenizer-bpe.txt").write_text("garbage")
    d2 = prepare_data(text_file, "bpe", 300, 0.1, cache)
    assert d2.tokenizer_text == d.tokenizer_text


def test_char_mode_and_tokenizer_text_roundtrip(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("hello world\n" * 50 + "zebra é\n", encoding="utf-8")   # 'z', 'é' only in val
    d = prepare_data(p, "char", 0, 0.1, tmp_path / "cache")
    assert isinstance(d.tokenizer, CharTokenizer)
    assert "é" in d.tokenizer.stoi                     # trained on the whole text
    tok = tokenizer_from_text(tokenizer_to_text(d.tokenizer))
    assert tok.chars == d.tokenizer.chars
    # a checkpoint's tokenizer that lacks a character of the data is a clear error
    small = tokenizer_to_text(CharTokenizer.train("helo wrd\n"))
    with pytest.raises(DataError, match="cannot encode"):
        prepare_data(p, "char", 0, 0.1, tmp_path / "cache2", tokenizer_text=small)


def test_batch_sampler_windows_and_state():
    ids = np.arange(100, dtype=np.uint16)
    s = BatchSampler(ids, block_size=8, batch_size=4, seed=3)
    x, y = s.next()
    assert x.shape == y.shape == (4, 8) and x.dtype == np.int64
    assert np.array_equal(y, x + 1)                     # y is x shifted by one token
    for _ in range(3):
        s.next()
    state = json.loads(json.dumps(s.state()))           # JSON round trip, as in checkpoints
    ahead = [s.next() for _ in range(3)]
    s2 = BatchSampler(ids, block_size=8, batch_size=4, seed=99)
    s2.set_state(state)
    assert s2.batches_drawn == 4
    for (a, b), (c, d) in zip(ahead, (s2.next() for _ in range(3))):
        assert np.array_equal(a, c) and np.array_equal(b, d)
    # every window fits: the last target is the last token at most
    big = BatchSampler(ids, block_size=99, batch_size=16, seed=0)
    x, y = big.next()
    assert y.max() <= 99 and x.min() >= 0
    s.reseed()
    again = BatchSampler(ids, block_size=8, batch_size=4, seed=3)
    assert np.array_equal(s.next()[0], again.next()[0])


def test_batch_sampler_too_short():
    with pytest.raises(DataError, match="validation split has 8 tokens.*block_size"):
        BatchSampler(np.arange(8), block_size=8, batch_size=2, seed=0, name="validation")
