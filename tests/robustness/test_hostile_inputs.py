"""Files read while they change, and files made to break the loaders (issue 17, items 2-6):
a checkpoint read during concurrent saves is one whole checkpoint; ``load_metadata`` checks the
checksum as ``load`` does; lone surrogates in tokenizer files; damaged cache sidecars; token
caches with ids outside the vocabulary."""
from __future__ import annotations

import hashlib
import json
import threading

import numpy as np
import pytest

import minigrad as mg
from minigrad import serialization
from minigrad.errors import IndexRangeError, SerializationError
from minigrad.optim import AdamW
from minigpt.checkpoint import load_checkpoint, save_checkpoint
from minigpt.data import cached_ids, prepare_data, tokenizer_from_text, tokenizer_to_text
from minigpt.errors import PROJECT_ERRORS, CheckpointError, TokenizerFileError
from minigpt.model import GPT, GPTConfig
from minigpt.tokenizer import CharTokenizer, Tokenizer, load_tokenizer

TEXT = "To be, or not to be, that is the question. héllo wörld " * 6


# ----------------------------------------------------------------------------- torn reads
@pytest.fixture
def no_fsync(monkeypatch):
    """fsync makes a write durable, not atomic; skipping it keeps the races fast."""
    import os
    monkeypatch.setattr(os, "fsync", lambda fd: None)


def test_checkpoint_loads_during_concurrent_saves_are_never_torn(tmp_path, no_fsync):
    """A writer thread saves checkpoint after checkpoint (step k: every weight == k, the
    metadata's marker == k); readers load all the while. Every load must be one checkpoint:
    the old code read the weights and the metadata from two opens of the path."""
    path = tmp_path / "ckpt.safetensors"
    model = GPT(GPTConfig(vocab_size=16, block_size=4, n_layer=1, n_head=1, n_embd=8))
    opt = AdamW(model.parameters(), lr=1e-3)
    tok = tokenizer_to_text(CharTokenizer.train("abcdefghijklmnop"))

    def save(step):
        for p in model.parameters():
            p.array[...] = step
        save_checkpoint(path, model, opt, step=step, train_config={}, tokenizer_text=tok,
                        extra={"marker": step})

    save(0)
    stop, saved = threading.Event(), [0]

    def writer():
        while not stop.is_set():
            saved[0] += 1
            save(saved[0])

    def read():
        try:
            ck = load_checkpoint(path)
        except CheckpointError as exc:     # any error is a failure too
            return ("error", str(exc))
        values = {float(w.reshape(-1)[0]) for w in ck.model_state.values()}
        if values != {float(ck.step)} or ck.extra["marker"] != ck.step:
            return ("torn", ck.step, ck.extra["marker"], sorted(values))
        return None

    saves = threading.Thread(target=writer)
    saves.start()
    try:
        bad = [r for r in _read_while(read, saved, 30) if r is not None]
    finally:
        stop.set()
        saves.join()
    assert not bad, bad[:3]


@pytest.mark.parametrize("reader", ["load", "load_with_metadata", "load_optimizer_state"])
def test_minigrad_loads_during_concurrent_saves_are_never_torn(tmp_path, reader, no_fsync):
    """The same race for minigrad's own readers: every array and the metadata carry the
    save's number k."""
    path = tmp_path / "x.safetensors"

    def save(k):
        if reader == "load":
            mg.save({"k": k, "w": np.full(5000, k, np.float32), "s": {"v": np.full(3, k)}},
                    path, metadata={"k": str(k)})
        elif reader == "load_with_metadata":
            serialization.save({"w": np.full(5000, k, np.float32)}, path, {"k": str(k)})
        else:
            serialization.save_optimizer_state(
                {"state": {0: {"step": k, "m": np.full(5000, float(k))}},
                 "param_groups": [{"lr": float(k), "params": [0]}]}, path)

    def read():
        if reader == "load":
            obj = mg.load(path)
            return {obj["k"], float(obj["w"][0]), float(obj["s"]["v"][-1])}
        if reader == "load_with_metadata":
            arrays, meta = serialization.load_with_metadata(path)
            return {float(arrays["w"][0]), float(arrays["w"][-1]), int(meta["k"])}
        sd = serialization.load_optimizer_state(path)
        return {sd["state"][0]["step"], float(sd["state"][0]["m"][-1]),
                sd["param_groups"][0]["lr"]}

    save(0)
    stop, saved = threading.Event(), [0]

    def writer():
        while not stop.is_set():
            saved[0] += 1
            save(saved[0])

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        results = _read_while(read, saved, 30)
    finally:
        stop.set()
        thread.join()
    mixed = [got for got in results if len(got) != 1]
    assert not mixed, mixed[:3]


def _read_while(read, saved: list, saves: int) -> list:
    """Call ``read`` until the writer has saved ``saves`` more times (at least 30 reads);
    counts, not the clock, decide when the race has been run long enough."""
    start, results = saved[0], []
    while saved[0] < start + saves or len(results) < 30:
        results.append(read())
        assert len(results) < 100_000, "the writer made no progress"
    return results


# ----------------------------------------------------------------------------- load_metadata
def test_load_metadata_verifies_the_checksum(tmp_path):
    """One changed byte in a metadata value (the header still valid JSON): load raises, and
    so must load_metadata."""
    path = tmp_path / "m.safetensors"
    serialization.save({"w": np.arange(4.0)}, path, metadata={"config": '{"lr": 0.001}'})
    raw = path.read_bytes()
    i = raw.index(b"0.001")
    flipped = raw[:i + 4] + bytes([raw[i + 4] ^ 0x01]) + raw[i + 5:]   # 0.001 -> 0.000
    path.write_bytes(flipped)
    with pytest.raises(SerializationError, match="checksum"):
        serialization.load(path)
    with pytest.raises(SerializationError, match="checksum"):
        serialization.load_metadata(path)


def test_load_metadata_of_an_intact_file_and_of_other_tools_files(tmp_path):
    import safetensors.numpy
    path = tmp_path / "m.safetensors"
    serialization.save({"w": np.arange(4.0)}, path, metadata={"a": "1"})
    assert serialization.load_metadata(path) == {"a": "1"}
    other = tmp_path / "o.safetensors"
    other.write_bytes(safetensors.numpy.save({"w": np.arange(2.0)}, metadata={"b": "2"}))
    assert serialization.load_metadata(other) == {"b": "2"}     # no checksum to verify


# ----------------------------------------------------------------------------- surrogates
def _rechecksummed(lines: list[str]) -> bytes:
    body = "".join(line + "\n" for line in lines).encode("utf-8")
    return body + f"end sha256 {hashlib.sha256(body).hexdigest()}\n".encode()


@pytest.fixture(scope="module")
def bpe():
    return Tokenizer.train(TEXT, 280, special_tokens=["<|endoftext|>"])


SURROGATES = ["\ud800", "\udfff", "a\udc80b", "<|\ud83d|>"]


@pytest.mark.parametrize("special", SURROGATES)
def test_surrogate_special_token_in_own_format(bpe, tmp_path, special):
    bpe.save(tmp_path / "tok.bpe")
    lines = (tmp_path / "tok.bpe").read_text().split("\n")[:-2]
    lines = [json.dumps(special) + line[len('"<|endoftext|>"'):]
             if line.startswith('"<|endoftext|>"') else line for line in lines]
    (tmp_path / "bad.bpe").write_bytes(_rechecksummed(lines))
    with pytest.raises(TokenizerFileError, match="special token"):
        load_tokenizer(tmp_path / "bad.bpe")
    with pytest.raises(TokenizerFileError):       # the same text, as a checkpoint holds it
        tokenizer_from_text((tmp_path / "bad.bpe").read_text(), "checkpoint tokenizer")


@pytest.mark.parametrize("special", SURROGATES)
def test_surrogate_special_token_in_gpt2_encoder_json(bpe, tmp_path, special):
    bpe.save_gpt2(tmp_path / "encoder.json", tmp_path / "vocab.bpe")
    enc = json.loads((tmp_path / "encoder.json").read_text())
    enc[special] = enc.pop("<|endoftext|>")
    (tmp_path / "encoder.json").write_text(json.dumps(enc))     # ASCII: \ud800 escapes
    with pytest.raises(TokenizerFileError, match="encoder.json"):
        Tokenizer.from_gpt2(tmp_path / "encoder.json", tmp_path / "vocab.bpe")


@pytest.mark.parametrize("special", SURROGATES)
def test_surrogate_special_token_with_a_tiktoken_file(bpe, tmp_path, special):
    bpe.save_tiktoken(tmp_path / "tok.tiktoken")
    with pytest.raises(TokenizerFileError, match="special token"):
        Tokenizer.from_tiktoken(tmp_path / "tok.tiktoken", special_tokens={special: 300})
    with pytest.raises(PROJECT_ERRORS):
        Tokenizer(special_tokens={special: 300})


def test_surrogate_in_a_checkpoint_tokenizer(bpe, tmp_path):
    """The checkpoint's own tokenizer text (a metadata string) with a surrogate special
    token: CheckpointError from ck.tokenizer(), never UnicodeEncodeError."""
    model = GPT(GPTConfig(vocab_size=300, block_size=4, n_layer=1, n_head=1, n_embd=8))
    lines = tokenizer_to_text(bpe).split("\n")[:-2]
    lines = [line.replace('"<|endoftext|>"', json.dumps("\ud800")) for line in lines]
    text = _rechecksummed(lines).decode()
    save_checkpoint(tmp_path, model, step=0, train_config={}, tokenizer_text=text)
    with pytest.raises(CheckpointError, match="tokenizer"):
        load_checkpoint(tmp_path).tokenizer()
    raw_surrogate = tokenizer_to_text(bpe).replace("<|endoftext|>", "<|\ud800|>")
    with pytest.raises(TokenizerFileError):       # a str that is not UTF-8 at all
        tokenizer_from_text(raw_surrogate)


# ----------------------------------------------------------------------------- sidecars
@pytest.fixture(scope="module")
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp("side")
    (d / "data.txt").write_text(TEXT * 4, encoding="utf-8")
    fresh = prepare_data(d / "data.txt", "bpe", 280, 0.1, d / "cache")
    want = np.array(fresh.train_ids), np.array(fresh.val_ids), fresh.tokenizer_text
    del fresh
    return d, {p.name: p.read_bytes() for p in (d / "cache").iterdir()}, want


DAMAGED_SIDECARS = {
    "deep": "[" * 100_000,
    "deep-object": '{"a": ' * 50_000,
    "digits": '{"length": ' + "1" * 5000 + "}",
    "digits-key": '{"key": ' + "9" * 5000 + "}",
    "infinity": None,          # built from the real sidecar below
    "nan": None,
    "float-length": None,
    "bool-length": None,
    "str-length": None,
    "list-dtype": None,
    "huge-length": None,
    "negative": None,
    "not-object": "[1, 2, 3]",
    "string": '"a string"',
    "null": "null",
    "empty": "",
    "binary": "\x00\xff",
    "big": " " * (4 << 20) + "{}",
}
FIELD_EDITS = {"infinity": ("length", "Infinity"), "nan": ("length", "NaN"),
               "float-length": ("length", "12.0"), "bool-length": ("length", "true"),
               "str-length": ("length", '"12"'), "list-dtype": ("dtype", '["<u2"]'),
               "huge-length": ("length", str(2 ** 70)), "negative": ("length", "-1")}


@pytest.mark.parametrize("sidecar", ["train.json", "val.json", "tokenizer-bpe.json"])
@pytest.mark.parametrize("damage", sorted(DAMAGED_SIDECARS))
def test_damaged_sidecars_are_a_stale_cache(built, tmp_path, sidecar, damage):
    d, files, want = built
    cache = tmp_path / "cache"
    cache.mkdir()
    for name, content in files.items():
        (cache / name).write_bytes(content)
    text = DAMAGED_SIDECARS[damage]
    if text is None:
        field, value = FIELD_EDITS[damage]
        meta = json.loads(files[sidecar])
        meta[field] = "@@"
        text = json.dumps(meta).replace('"@@"', value)
    (cache / sidecar).write_text(text, encoding="utf-8", errors="surrogateescape")
    logged = []
    again = prepare_data(d / "data.txt", "bpe", 280, 0.1, cache, log=logged.append)
    assert np.array_equal(again.train_ids, want[0]) and np.array_equal(again.val_ids, want[1])
    assert again.tokenizer_text == want[2]
    assert json.loads((cache / sidecar).read_text())["version"] == 1    # rewritten


# ----------------------------------------------------------------------------- token ids
def _hostile_cache(cache, split, ids, dtype, key):
    """A cache file of ``ids`` with a sidecar whose hash matches (as a hostile or buggy
    writer would make it): only a range check can notice."""
    arr = np.asarray(ids, dtype)
    (cache / f"{split}.bin").write_bytes(arr.tobytes())
    (cache / f"{split}.json").write_text(json.dumps({
        "key": key, "length": int(arr.size), "dtype": np.dtype(dtype).name,
        "sha256": hashlib.sha256(arr.tobytes()).hexdigest(), "version": 1}))


def test_token_cache_with_ids_outside_the_vocabulary_is_rebuilt(tmp_path):
    tok = CharTokenizer.train("abcdef")
    text = "abcabcfed" * 3
    key = "k" * 64
    _hostile_cache(tmp_path, "train", [0, 1, 2, 6000, 1], np.uint16, key)
    logged = []
    ids = cached_ids(tmp_path, "train", text, tok, key, log=logged.append)
    assert np.array_equal(ids, tok.encode(text))
    assert any("outside the vocabulary" in m for m in logged), logged


def test_model_rejects_out_of_vocabulary_ids_with_a_project_error():
    model = GPT(GPTConfig(vocab_size=10, block_size=4, n_layer=1, n_head=1, n_embd=8))
    with pytest.raises(IndexRangeError, match="token id 10 is outside the vocabulary"):
        model(np.array([[1, 10]]))
    with pytest.raises(IndexRangeError, match="token id -1"):
        model(np.array([[-1, 2]]))
    with pytest.raises(PROJECT_ERRORS):
        model(np.array([[1, 2]]), np.array([[1, 12]]))       # a target outside too
    mg.manual_seed(0)
