"""Fuzz every loader with truncated, bit-flipped, spliced, oversized and random input.

Every case must end in one of the project's own exceptions (``minigrad.errors`` /
``minigpt.errors``, see their docstrings for the hierarchy) or load correctly. Around every
call: nothing may be unpickled (``pickle`` and ``numpy.load`` are replaced by functions that
fail the test), and a SIGALRM timer fails the test if a call hangs. Headers that claim huge
sizes are checked to be rejected before anything is allocated (tracemalloc peak).
"""
from __future__ import annotations

import base64
import contextlib
import io
import json
import pickle
import signal
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import minigrad as mg
from minigrad import serialization
from minigrad.errors import MinigradError
from minigrad.optim import AdamW, weight_decay_groups
from minigpt import sample as sample_mod
from minigpt import tracing
from minigpt.checkpoint import load_checkpoint, save_checkpoint
from minigpt.data import BatchSampler, tokenizer_to_text
from minigpt.errors import PROJECT_ERRORS, MinigptError, TokenizerFileError
from minigpt.model import GPT, GPTConfig
from minigpt.tokenizer import CharTokenizer, Tokenizer, load_tokenizer
from minigpt.train import TrainConfig, build_parser, config_from_args, load_config_file

EOT = "<|endoftext|>"
TEXT = "To be, or not to be, that is the question: héllo wörld 日本語 " * 4
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                      HealthCheck.too_slow])


# ----------------------------------------------------------------------------- the guards
class Hang(Exception):
    pass


def _forbidden(*args, **kwargs):
    raise AssertionError("a loader tried to unpickle (pickle / numpy.load with pickles)")


@contextlib.contextmanager
def guarded(seconds: int = 10):
    """No unpickling, no hang: patch the unpicklers, arm a SIGALRM timer."""
    saved = pickle.loads, pickle.load, pickle.Unpickler, np.load

    def on_alarm(signum, frame):
        raise Hang(f"a loader ran for more than {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    pickle.loads = pickle.load = pickle.Unpickler = np.load = _forbidden
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        pickle.loads, pickle.load, pickle.Unpickler, np.load = saved


def outcome(fn, *args, **kwargs):
    """Run a loader under the guards: its result, or the project error it raised (any other
    exception fails the test, with its traceback)."""
    with guarded():
        try:
            return fn(*args, **kwargs)
        except PROJECT_ERRORS as exc:
            assert str(exc), f"{type(exc).__name__} without a message"
            return exc


@contextlib.contextmanager
def peak_below(limit_bytes: int):
    """Fail if Python + NumPy allocate more than ``limit_bytes`` at once inside the block."""
    tracemalloc.start()
    try:
        yield
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < limit_bytes, f"peak allocation {peak:,} bytes >= {limit_bytes:,}"


def test_the_guards_work(tmp_path):
    with pytest.raises(AssertionError, match="unpickle"):
        with guarded():
            pickle.loads(pickle.dumps(1))
    with pytest.raises(AssertionError, match="unpickle"):
        with guarded():
            np.load(tmp_path / "x.npy", allow_pickle=True)
    with pytest.raises(Hang):
        with guarded(1):
            while True:
                pass
    with pytest.raises(AssertionError, match="peak allocation"):
        with peak_below(1 << 20):
            np.ones(1 << 20)


# ----------------------------------------------------------------------------- mutations
@st.composite
def mutated(draw, good: bytes) -> bytes:
    """``good`` truncated, bit-flipped, with a span overwritten or inserted, spliced with
    itself, extended, or replaced by random bytes."""
    n = len(good)
    kind = draw(st.sampled_from(["truncate", "flip", "overwrite", "insert", "splice", "append",
                                 "random"]))
    if kind == "truncate":
        return good[:draw(st.integers(0, max(n - 1, 0)))]
    if kind == "flip":
        data = bytearray(good)
        for _ in range(draw(st.integers(1, 3))):
            i = draw(st.integers(0, n - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        return bytes(data)
    if kind == "overwrite":
        i = draw(st.integers(0, n - 1))
        return good[:i] + draw(st.binary(min_size=1, max_size=16)) + good[i + 16:]
    if kind == "insert":
        i = draw(st.integers(0, n))
        return good[:i] + draw(st.binary(min_size=1, max_size=64)) + good[i:]
    if kind == "splice":
        i, j = sorted(draw(st.lists(st.integers(0, n), min_size=2, max_size=2)))
        return good[:i] + good[j:] + good[i:j]
    if kind == "append":
        return good + draw(st.binary(min_size=1, max_size=64))
    return draw(st.binary(max_size=256))


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# ----------------------------------------------------------------------------- tokenizer files
@pytest.fixture(scope="module")
def bpe() -> Tokenizer:
    return Tokenizer.train(TEXT, 300, special_tokens=[EOT])


@pytest.fixture(scope="module")
def files(bpe, tmp_path_factory):
    d = tmp_path_factory.mktemp("good")
    bpe.save(d / "tok.bpe")
    CharTokenizer.train(TEXT).save(d / "tok.char")
    bpe.save_tiktoken(d / "tok.tiktoken")
    bpe.save_gpt2(d / "encoder.json", d / "vocab.bpe")
    return {p.name: p.read_bytes() for p in d.iterdir()}


def _exercise(tok):
    """A tokenizer that loaded must work (or fail clearly) on ordinary calls."""
    ids = tok.encode("To be héllo", allowed_special="all") if isinstance(tok, Tokenizer) \
        else tok.encode("To be")
    assert isinstance(tok.decode(ids), str)


@FUZZ
@given(data=st.data(), name=st.sampled_from(["tok.bpe", "tok.char"]))
def test_own_tokenizer_format_fuzz(files, tmp_path, data, name):
    path = _write(tmp_path / name, data.draw(mutated(files[name])))
    got = outcome(load_tokenizer, path)
    if not isinstance(got, Exception):
        outcome(_exercise, got)


def _rechecksummed(lines: list[str]) -> bytes:
    """A hand-edited file: the lines, then a correct 'end sha256' line (so the parser, not
    the checksum, has to catch what is wrong)."""
    import hashlib
    body = "".join(line + "\n" for line in lines).encode("utf-8")
    return body + f"end sha256 {hashlib.sha256(body).hexdigest()}\n".encode()


_EDIT_VALUES = st.sampled_from(["0", "-1", "256", "257", "511", "2147483647", "2147483648",
                                "99999999999999999999", "1" * 5000, "²", "１２", "", " ", "x",
                                "[]", "[[[[[[[[[[", "[" * 5000, '"\\ud800"', "null", "1e999"])


@FUZZ
@given(data=st.data(), name=st.sampled_from(["tok.bpe", "tok.char"]))
@example(data=None, name="doubling")
def test_hand_edited_tokenizer_files(files, tmp_path, data, name):
    """Valid checksum, damaged content: a field replaced, a line dropped, duplicated, or a
    count changed; a merge list whose tokens double in length at every line."""
    if name == "doubling":    # 64 lines that would make a 2**64-byte token
        merges = [f"{256 + k - 1 if k else 97} {256 + k - 1 if k else 97} {256 + k}"
                  for k in range(64)]
        lines = ["minigpt-tokenizer bpe 1", 'pattern ""', "special_tokens 0", "bytes identity",
                 f"merges {len(merges)}", *merges]
        path = _write(tmp_path / "doubling.bpe", _rechecksummed(lines))
        with peak_below(8 << 20):
            got = outcome(load_tokenizer, path)
        assert isinstance(got, TokenizerFileError) and "limits are" in str(got)
        return
    lines = files[name].decode().split("\n")[:-2]        # without the checksum line
    op = data.draw(st.sampled_from(["field", "drop", "dup", "swap", "text"]))
    i = data.draw(st.integers(0, len(lines) - 1))
    if op == "field":
        words = lines[i].split(" ")
        j = data.draw(st.integers(0, len(words) - 1))
        words[j] = data.draw(_EDIT_VALUES)
        lines[i] = " ".join(words)
    elif op == "drop":
        del lines[i]
    elif op == "dup":
        lines.insert(i, lines[i])
    elif op == "swap":
        j = data.draw(st.integers(0, len(lines) - 1))
        lines[i], lines[j] = lines[j], lines[i]
    else:
        lines[i] = data.draw(st.text(st.characters(blacklist_categories=("Cs",),
                                                   blacklist_characters="\n\r"), max_size=40))
    path = _write(tmp_path / name, _rechecksummed(lines))
    got = outcome(load_tokenizer, path)
    if not isinstance(got, Exception):
        outcome(_exercise, got)


def test_huge_counts_are_not_allocated(tmp_path):
    for name, lines in {
        "count.bpe": ["minigpt-tokenizer bpe 1", 'pattern ""', "special_tokens 0",
                      "bytes identity", "merges 2147483647", "97 97 256"],
        "specials.bpe": ["minigpt-tokenizer bpe 1", 'pattern ""', "special_tokens 9999999999"],
        "chars.char": ["minigpt-tokenizer char 1", "chars 2147483647", '["a"]'],
        "bigid.bpe": ["minigpt-tokenizer bpe 1", 'pattern ""', "special_tokens 1",
                      '"<|x|>" 2147483648', "bytes identity", "merges 0"],
    }.items():
        path = _write(tmp_path / name, _rechecksummed(lines))
        with peak_below(4 << 20):
            got = outcome(load_tokenizer, path)
        assert isinstance(got, TokenizerFileError), (name, got)


@FUZZ
@given(data=st.data())
@example(data=None)
def test_tiktoken_rank_file_fuzz(files, tmp_path, data):
    if data is None:   # one long token whose every prefix pair is a lower-ranked token
        ranks = {bytes([b]): b for b in range(256)}
        ranks[b"aa"] = 256
        ranks[b"a" * 20000] = 257
        body = b"".join(base64.b64encode(t) + b" %d\n" % r for t, r in ranks.items())
    else:
        body = data.draw(mutated(files["tok.tiktoken"]))
    path = _write(tmp_path / "tok.tiktoken", body)
    got = outcome(Tokenizer.from_tiktoken, path)
    if not isinstance(got, Exception):
        outcome(_exercise, got)


@FUZZ
@given(data=st.data(), which=st.sampled_from(["encoder.json", "vocab.bpe"]))
@example(data=None, which="encoder.json")
def test_gpt2_files_fuzz(files, tmp_path, data, which):
    good = dict(files)
    good[which] = b"[" * 100_000 if data is None else data.draw(mutated(files[which]))
    enc = _write(tmp_path / "encoder.json", good["encoder.json"])
    voc = _write(tmp_path / "vocab.bpe", good["vocab.bpe"])
    got = outcome(Tokenizer.from_gpt2, enc, voc)
    if not isinstance(got, Exception):
        outcome(_exercise, got)


# ----------------------------------------------------------------------------- safetensors
@pytest.fixture(scope="module")
def tensor_file(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("st") / "t.safetensors"
    serialization.save({"w": np.arange(12, dtype=np.float32).reshape(3, 4),
                        "i": np.array([1, 2, 3], dtype=np.int64),
                        "s": np.float64(2.5)}, path, metadata={"note": "héllo"})
    return path.read_bytes()


def _load_all(path):
    serialization.load_metadata(path)
    return serialization.load(path), serialization.load_arrays(path)


@FUZZ
@given(data=st.data())
def test_safetensors_fuzz(tensor_file, tmp_path, data):
    path = _write(tmp_path / "t.safetensors", data.draw(mutated(tensor_file)))
    got = outcome(_load_all, path)
    if not isinstance(got, Exception):      # only an unchanged file has a matching CRC
        assert path.read_bytes() == tensor_file or b"__minigrad_crc32__" not in path.read_bytes()


_JSON_LEAF = (st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70)
              | st.floats(allow_nan=False) | st.text(max_size=8))
_JSON = st.recursive(_JSON_LEAF, lambda c: st.lists(c, max_size=3)
                     | st.dictionaries(st.text(max_size=6), c, max_size=3), max_leaves=8)


@st.composite
def safetensors_headers(draw) -> bytes:
    """A file whose header is plausible JSON with hostile values (shapes, offsets, dtypes)."""
    entries = {}
    for k in range(draw(st.integers(0, 3))):
        entries[f"t{k}"] = {
            "dtype": draw(st.sampled_from(["F32", "F64", "I64", "BF16", "U8", "BOOL", "X", 7])),
            "shape": draw(st.lists(st.integers(-2, 2 ** 62) | st.sampled_from([0, 1, 2, 3]),
                                   max_size=3) | _JSON),
            "data_offsets": draw(st.lists(st.integers(-1, 2 ** 63) | st.sampled_from([0, 4, 8]),
                                          min_size=0, max_size=3) | _JSON),
        }
        if draw(st.booleans()):
            entries[f"t{k}"] = draw(_JSON)
    if draw(st.booleans()):
        entries["__metadata__"] = draw(_JSON)
    header = json.dumps(entries).encode()
    body = draw(st.binary(max_size=64))
    length = draw(st.sampled_from([len(header), len(header) + 1, 2 ** 63, 2 ** 64 - 1, 0]))
    return length.to_bytes(8, "little") + header + body


@FUZZ
@given(content=safetensors_headers())
def test_safetensors_hostile_headers(tmp_path, content):
    path = _write(tmp_path / "h.safetensors", content)
    with peak_below(16 << 20):
        outcome(_load_all, path)


def test_safetensors_sizes_are_checked_before_allocation(tmp_path):
    cases = {
        "length": (2 ** 62).to_bytes(8, "little") + b"{}",
        "shape": None,
        "offsets": None,
    }
    big = {"w": {"dtype": "F64", "shape": [2 ** 31, 2 ** 31], "data_offsets": [0, 2 ** 65]}}
    h = json.dumps(big).encode()
    cases["shape"] = len(h).to_bytes(8, "little") + h + b"\0" * 16
    big = {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 2 ** 40]}}
    h = json.dumps(big).encode()
    cases["offsets"] = len(h).to_bytes(8, "little") + h + b"\0" * 16
    for name, content in cases.items():
        path = _write(tmp_path / f"{name}.safetensors", content)
        with peak_below(1 << 20):
            got = outcome(_load_all, path)
        assert isinstance(got, MinigradError), (name, got)


# ----------------------------------------------------------------------------- checkpoints
TINY = GPTConfig(vocab_size=40, block_size=8, n_layer=1, n_head=2, n_embd=8)


@pytest.fixture(scope="module")
def ckpt_file(tmp_path_factory) -> Path:
    mg.manual_seed(0)
    model = GPT(TINY)
    opt = AdamW(weight_decay_groups(model.named_parameters(), 0.1), lr=1e-2)
    x = np.random.default_rng(0).integers(0, 40, (2, 8))
    _, loss = model(x, x)
    loss.backward()
    opt.step()
    sampler = BatchSampler(np.arange(100), 8, 2, 0)
    sampler.next()
    tok_text = tokenizer_to_text(CharTokenizer.train("abcdefghijklmnopqrstuvwxyz .,;:!?\n'-ABCD"))
    path = tmp_path_factory.mktemp("ck") / "ckpt.safetensors"
    save_checkpoint(path, model, opt, step=1, train_config=TrainConfig(progress=False).to_dict(),
                    tokenizer_text=tok_text, rng_state=mg.backend.get_rng_state(),
                    data_state=sampler.state(), extra={"elapsed_s": 1.0})
    return path


def _use_checkpoint(path):
    """What `minigpt train --resume` and `minigpt sample` do with a checkpoint."""
    ck = load_checkpoint(path)
    model = ck.build_model()
    opt = AdamW(weight_decay_groups(model.named_parameters(), 0.1), lr=1e-3)
    ck.restore(model, opt)
    tok = ck.tokenizer()
    if ck.data_state is not None:
        BatchSampler(np.arange(100), 8, 2, 0).set_state(ck.data_state)
    if ck.rng_state is not None:
        saved = mg.backend.get_rng_state()
        mg.backend.set_rng_state(ck.rng_state)
        mg.backend.set_rng_state(saved)
    ids = [tok.encode("ab")]
    model(np.asarray(ids), np.asarray(ids))
    opt.step()
    return ck


@FUZZ
@given(data=st.data())
def test_checkpoint_file_fuzz(ckpt_file, tmp_path, data):
    path = _write(tmp_path / "ckpt.safetensors", data.draw(mutated(ckpt_file.read_bytes())))
    outcome(_use_checkpoint, path)


_HOSTILE = st.sampled_from([0, -1, 1, 2, 3, 8, 40, 10 ** 6, 10 ** 12, 2 ** 63, 1.5, "8", None,
                            True, [], {}, float("inf")])


@FUZZ
@given(data=st.data())
def test_checkpoint_metadata_fuzz(ckpt_file, tmp_path, data):
    """A checkpoint with a valid CRC whose metadata (or one tensor) was changed: what a
    hand-made or buggy writer produces. Checksums cannot help; the loader's checks must."""
    arrays = serialization.load_arrays(ckpt_file)
    meta = serialization.load_metadata(ckpt_file)
    key = data.draw(st.sampled_from(sorted(meta) + ["<tensor>"]))
    op = data.draw(st.sampled_from(["json", "field", "text", "drop"]))
    if key == "<tensor>":
        name = data.draw(st.sampled_from(sorted(arrays)))
        shape = tuple(data.draw(st.lists(st.integers(0, 5), max_size=3)))
        dtype = data.draw(st.sampled_from([np.float32, np.float64, np.int64, np.uint8]))
        if op == "drop":
            del arrays[name]
        else:
            arrays[name] = np.zeros(shape, dtype=dtype)
    elif op == "drop":
        del meta[key]
    elif op == "json":
        meta[key] = json.dumps(data.draw(_JSON))
    elif op == "text":
        meta[key] = data.draw(st.text(max_size=30) | st.sampled_from(["[" * 5000, "1" * 5000]))
    else:
        value = json.loads(meta[key]) if meta[key][:1] in "{[0123456789" else meta[key]
        if isinstance(value, dict) and value:
            field = data.draw(st.sampled_from(sorted(value)))
            value[field] = data.draw(_HOSTILE | _JSON)
        else:
            value = data.draw(_HOSTILE)
        meta[key] = json.dumps(value)
    path = tmp_path / "ckpt.safetensors"
    serialization.save(arrays, path, meta)
    with peak_below(64 << 20):
        outcome(_use_checkpoint, path)


def test_checkpoint_config_cannot_allocate_more_than_the_file(ckpt_file, tmp_path):
    arrays = serialization.load_arrays(ckpt_file)
    meta = serialization.load_metadata(ckpt_file)
    for field, value in (("vocab_size", 10 ** 9), ("n_layer", 10 ** 5), ("block_size", 10 ** 9),
                         ("n_embd", 2 ** 20)):
        cfg = {**json.loads(meta["model_config"]), field: value}
        if field == "n_embd":
            cfg["n_head"] = 1
        path = tmp_path / f"{field}.safetensors"
        serialization.save(arrays, path, {**meta, "model_config": json.dumps(cfg)})
        with peak_below(16 << 20):
            got = outcome(_use_checkpoint, path)
        assert isinstance(got, MinigptError) and "needs at least" in str(got), (field, got)


# ----------------------------------------------------------------------------- optimizer state
_STATE_VALUES = st.sampled_from([
    np.zeros((), np.float32), np.float32(0.5), np.zeros(3, np.float32), np.zeros((2, 2)),
    np.zeros((8, 8), np.int64), np.zeros((8, 8), bool), np.full((8, 8), np.nan, np.float32),
    np.full((8, 8), -1.0, np.float32), np.zeros((8, 8), np.complex64), float("nan"), -1, 1.5,
    2 ** 70, float("inf"), None, "3", True, [], {}, 0, 7])
_GROUP_VALUES = st.sampled_from([float("inf"), -1e28, float("nan"), -1.0, 0.0, 1e-300, "x",
                                 None, True, [0.9], [1.5, 0.9], [0.9, float("nan")], {}, 3])


def _optimizer_round_trip(loader: str, sd: dict, path: Path):
    """Save ``sd`` through ``loader``, load it into a fresh AdamW, take a step: the weights
    must stay finite (or a project error must say why not)."""
    model = GPT(TINY)
    opt = AdamW(weight_decay_groups(model.named_parameters(), 0.1), lr=1e-2)
    if loader == "save_optimizer_state":
        serialization.save_optimizer_state(sd, path)
        opt.load_state_dict(serialization.load_optimizer_state(path))
    elif loader == "mg.save":
        mg.save({"optimizer": sd}, path)
        opt.load_state_dict(mg.load(path)["optimizer"])
    else:
        real = opt.state_dict
        opt.state_dict = lambda: sd
        save_checkpoint(path, model, opt, step=1, train_config={}, tokenizer_text="")
        opt.state_dict = real
        load_checkpoint(path).restore(model, opt)
    x = np.arange(16).reshape(2, 8) % 40
    model(x, x)[1].backward()
    opt.step()
    assert all(np.isfinite(p.detach().numpy()).all() for p in model.parameters()), "NaN weights"


@FUZZ
@given(data=st.data(), loader=st.sampled_from(["save_optimizer_state", "mg.save", "checkpoint"]))
def test_optimizer_state_fuzz(ckpt_file, tmp_path, data, loader):
    """Optimizer state with one hostile value, through every loader that carries it: a
    project error or a step with finite weights, never a crash, a NaN or a KeyError."""
    import copy
    sd = copy.deepcopy(load_checkpoint(ckpt_file).optimizer_state)
    if data.draw(st.booleans()):
        index = data.draw(st.sampled_from(sorted(sd["state"])))
        name = data.draw(st.sampled_from(["step", "exp_avg", "exp_avg_sq", "other"]))
        if data.draw(st.booleans()) and name in sd["state"][index]:
            del sd["state"][index][name]
        else:
            sd["state"][index][name] = data.draw(_STATE_VALUES)
    else:
        group = data.draw(st.sampled_from(sd["param_groups"]))
        group[data.draw(st.sampled_from(sorted(group)))] = data.draw(_GROUP_VALUES)
    outcome(_optimizer_round_trip, loader, sd, tmp_path / "o.safetensors")


# ----------------------------------------------------------------------------- nested files
@pytest.fixture(scope="module")
def nested_file(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("nested") / "n.safetensors"
    mg.save({"model": {"w": mg.tensor(np.arange(6.0).reshape(2, 3))}, "step": 3,
             "opt": {"state": {0: {"exp_avg": np.ones(3)}}, "betas": (0.9, 0.95)},
             "f": [float("nan"), None, "s"]}, path)
    return path.read_bytes()


@FUZZ
@given(data=st.data())
def test_nested_file_fuzz(nested_file, tmp_path, data):
    path = _write(tmp_path / "n.safetensors", data.draw(mutated(nested_file)))
    outcome(mg.load, path)


@FUZZ
@given(tree=_JSON | st.sampled_from(['{"dict": [["w", {"tensor": "model.w"}]]}', "[" * 5000]))
def test_nested_structure_fuzz(nested_file, tmp_path, tree):
    """Hostile structures with a recomputed checksum (only the structure checks can catch
    them): a project error or an object, never a crash."""
    src = _write(tmp_path / "good.safetensors", nested_file)
    arrays, meta = serialization._read(src)
    meta[serialization.TREE_KEY] = tree if isinstance(tree, str) else json.dumps(tree)
    header = {**meta, serialization.CHECKSUM_KEY: serialization._checksum(arrays, meta),
              serialization.FORMAT_KEY: serialization.FORMAT}
    import safetensors.numpy
    path = _write(tmp_path / "bad.safetensors", safetensors.numpy.save(dict(arrays),
                                                                       metadata=header))
    outcome(mg.load, path)


# ----------------------------------------------------------------------------- pretrained folders
@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("pre")
    mg.manual_seed(0)
    GPT(GPTConfig(vocab_size=30, block_size=8, n_layer=1, n_head=1, n_embd=64)).save_pretrained(d)
    return {p.name: p.read_bytes() for p in d.iterdir()}


@FUZZ
@given(data=st.data(), which=st.sampled_from(["config.json", "model.safetensors", "cfg-field"]))
def test_pretrained_folder_fuzz(pretrained, tmp_path, data, which):
    good = dict(pretrained)
    if which == "cfg-field":
        cfg = json.loads(good["config.json"])
        cfg[data.draw(st.sampled_from(sorted(cfg)))] = data.draw(_HOSTILE | _JSON)
        good["config.json"] = json.dumps(cfg).encode()
    else:
        good[which] = data.draw(mutated(good[which]))
    for name, content in good.items():
        _write(tmp_path / name, content)
    outcome(GPT.from_pretrained, tmp_path)


def test_pretrained_layer_names_cannot_allocate(tmp_path):
    """wte (2, 4096) and 200 one-number 'layers': a GPT of 200 blocks of width 4096 would need
    160 GB; the loader sees the file holds a few KB of weights."""
    sd = {"wte.weight": np.zeros((2, 4096), np.float32), "wpe.weight": np.zeros((1, 4096),
                                                                                 np.float32)}
    sd.update({f"h.{i}.ln_1.bias": np.zeros(1, np.float32) for i in range(200)})
    serialization.save(sd, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text('{"n_head": 64}')
    with peak_below(32 << 20):
        got = outcome(GPT.from_pretrained, tmp_path)
    assert isinstance(got, MinigptError) and "needs at least" in str(got), got


# ----------------------------------------------------------------------------- config files
def _load_config(path):
    return TrainConfig(**load_config_file(path))


@FUZZ
@given(d=st.dictionaries(st.sampled_from(list(TrainConfig.__dataclass_fields__) + ["n_layers",
                                                                                    "", "x"]),
                         _HOSTILE | _JSON, max_size=4) | _JSON,
       suffix=st.sampled_from([".json", ".toml"]))
def test_config_file_values_fuzz(tmp_path, d, suffix):
    if suffix == ".json":
        text = json.dumps(d)
    else:   # TOML: one "key = value" line per item, the value in JSON syntax (often valid TOML)
        items = d.items() if isinstance(d, dict) else [("x", d)]
        text = "".join(f"{json.dumps(str(k))} = {json.dumps(v)}\n" for k, v in items)
    path = tmp_path / f"cfg{suffix}"
    path.write_text(text, encoding="utf-8")
    outcome(_load_config, path)


@FUZZ
@given(data=st.data(), suffix=st.sampled_from([".json", ".toml"]))
def test_config_file_bytes_fuzz(tmp_path, data, suffix):
    good = (b'{"n_layer": 2, "learning_rate": 0.001, "data": null, "decay_lr": true}'
            if suffix == ".json" else
            b'n_layer = 2\nlearning_rate = 1e-3\ndecay_lr = true\nout_dir = "run"\n')
    path = _write(tmp_path / f"cfg{suffix}", data.draw(mutated(good)))
    outcome(_load_config, path)


# ----------------------------------------------------------------------------- command lines
_FLAG_VALUES = st.sampled_from(["0", "-1", "1", "2", "64", "1e999", "nan", "-inf", "0.5", "true",
                                "maybe", "none", "", "x", "1" * 5000, "--", "=", "bpe", "cuda",
                                "tpu", "1.5", "0x10", "٣"])


def _argv(flags):
    return st.lists(st.tuples(st.sampled_from(flags), st.booleans(), _FLAG_VALUES), max_size=4).map(
        lambda items: [a for flag, eq, v in items
                       for a in ([f"{flag}={v}"] if eq else [flag, v])])


def _argparse_exit(fn, argv):
    """argparse exits (status 2, a usage message) on bad flags: that is its clean error."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            return fn(argv)
        except SystemExit as exc:
            assert exc.code in (0, 2) and ("error:" in err.getvalue() or exc.code == 0), \
                err.getvalue()
            return exc


_TRAIN_FLAGS = [a.option_strings[0] for a in build_parser()._actions if a.option_strings] \
    + ["--bogus", "--n-layer"]


@FUZZ
@given(argv=_argv(_TRAIN_FLAGS))
@example(argv=["--vocab_size", "99999999999999"])
@example(argv=["--resume"])
def test_train_cli_fuzz(tmp_path, argv):
    argv = argv + [f"--out_dir={tmp_path / 'out'}"]   # never read a real out/ checkpoint
    argv = [a for a in argv if not a.startswith("--config")]
    outcome(_argparse_exit, config_from_args, argv)


_SAMPLE_FLAGS = ["--prompt", "--max_new_tokens", "--temperature", "--top_k", "--top_p",
                 "--num_samples", "--seed", "--device", "--bogus"]


@FUZZ
@given(argv=_argv(_SAMPLE_FLAGS))
def test_sample_cli_fuzz(tmp_path, argv):
    """main() answers bad flags with status 2 and a missing checkpoint with 1, never a
    traceback."""
    got = outcome(_argparse_exit, sample_mod.main, argv + ["--ckpt", str(tmp_path / "none")])
    assert got in (1, 2) or isinstance(got, SystemExit), got


_TRACE_FLAGS = ["--max-new-tokens", "-n", "--temperature", "--top-k", "--top-p", "--seed",
                "--top", "--graph-layer", "--init-vocab", "--init-layers", "--init-heads",
                "--init-embd", "--init-block", "--target", "--bogus"]


def _trace_settings(argv):
    args = tracing.parse_args(["hello", *argv])
    GPTConfig(vocab_size=args.init_vocab, block_size=args.init_block, n_layer=args.init_layers,
              n_head=args.init_heads, n_embd=args.init_embd)
    sample_mod.check_sampling_settings(max_new_tokens=args.max_new_tokens,
                                       temperature=args.temperature, top_k=args.top_k,
                                       top_p=args.top_p, seed=args.seed)
    return args


@FUZZ
@given(argv=_argv(_TRACE_FLAGS))
def test_trace_cli_fuzz(argv):
    outcome(_argparse_exit, _trace_settings, argv)


# ----------------------------------------------------------------------------- data cache
_DAMAGED_SIDECARS = ["[" * 100_000, '{"a": ' * 50_000, '{"length": ' + "1" * 5000 + "}",
                     '{"length": Infinity, "dtype": "uint16"}', '{"length": NaN}', "[]", "7",
                     '"x"', "null", '{"key": ' + "9" * 5000 + "}", '{"dtype": ["<u2"]}']


@FUZZ
@given(data=st.data(), which=st.sampled_from(["train.json", "train.bin", "tokenizer-bpe.json",
                                              "tokenizer-bpe.txt"]))
def test_token_cache_fuzz(tmp_path_factory, data, which):
    """Damaged cache files (ids, tokenizer, their JSON sidecars, with huge lengths) are
    rebuilt, never trusted and never allocated from: the result equals a fresh build."""
    from minigpt.data import prepare_data
    d = tmp_path_factory.mktemp("cache")
    text = d / "data.txt"
    text.write_text(TEXT * 3, encoding="utf-8")
    fresh = prepare_data(text, "bpe", 300, 0.1, d / "cache")
    # copies: the memmaps must not be read after their file is edited in place below (a
    # file truncated under a live memmap is a SIGBUS; minigpt itself only ever replaces
    # cache files by renaming a new file over them)
    want = np.array(fresh.train_ids), np.array(fresh.val_ids), fresh.tokenizer_text
    del fresh
    f = d / "cache" / which
    good = f.read_bytes()
    op = data.draw(st.sampled_from(["field", "text", "bytes"]) if which.endswith(".json")
                   else st.just("bytes"))
    if op == "field":
        meta = json.loads(good)
        meta[data.draw(st.sampled_from(sorted(meta)))] = data.draw(
            _HOSTILE | st.sampled_from([2 ** 40, -5, "uint64", "float32", "object", 12.0]))
        f.write_text(json.dumps(meta))      # inf is written as Infinity
    elif op == "text":                      # what the outside harness planted
        f.write_text(data.draw(st.sampled_from(_DAMAGED_SIDECARS)))
    else:
        f.write_bytes(data.draw(mutated(good)))
    with peak_below(64 << 20):
        again = outcome(prepare_data, text, "bpe", 300, 0.1, d / "cache")
    assert not isinstance(again, Exception), again
    assert np.array_equal(again.train_ids, want[0]) and np.array_equal(again.val_ids, want[1])
    assert again.tokenizer_text == want[2]


def test_error_hierarchy_is_documented():
    """Every exception class the packages define derives from one of the two roots, and
    the roots' modules list them in their docstrings."""
    import inspect

    import minigpt.errors
    import minigrad.errors
    for module, root in ((minigrad.errors, MinigradError), (minigpt.errors, MinigptError)):
        for name, cls in vars(module).items():
            if inspect.isclass(cls) and issubclass(cls, Exception) and cls.__module__ == \
                    module.__name__:
                assert issubclass(cls, root), name
                assert name in module.__doc__, f"{name} is missing from {module.__name__}'s doc"
    import importlib
    import pkgutil
    import warnings

    import minigpt
    import minigrad
    for pkg in (minigrad, minigpt):
        for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            if info.name.endswith(("bench_torch", "torch_gpt", "__main__")):
                continue
            try:
                with warnings.catch_warnings():   # the deprecated old names of moved modules
                    warnings.simplefilter("ignore", DeprecationWarning)
                    module = importlib.import_module(info.name)
            except ImportError:
                continue
            for name, cls in vars(module).items():
                if inspect.isclass(cls) and issubclass(cls, Exception) and \
                        cls.__module__ == module.__name__:
                    assert issubclass(cls, PROJECT_ERRORS), f"{info.name}.{name}"


# ----------------------------------------------------------------------------- train.py config


@pytest.mark.parametrize("name,text", [("deep.json", "[" * 100_000),
                                       ("digits.json", '{"n_layer": ' + "1" * 5000 + "}"),
                                       ("deep.toml", "a = " + "[" * 100_000),
                                       ("digits.toml", "n_layer = " + "1" * 5000)])
def test_config_file_parser_limits(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    with guarded(), pytest.raises(MinigptError):
        load_config_file(path)


def test_resume_flag_with_a_non_object_train_config(tmp_path):
    serialization.save({"x": np.zeros(1)}, tmp_path / "ckpt.safetensors",
                       {"train_config": "[1, 2]"})
    with pytest.raises(MinigptError):
        config_from_args(["--resume", "--out_dir", str(tmp_path)])


def test_config_rejects_nul_in_paths():
    with pytest.raises(MinigptError):
        TrainConfig(out_dir="run\0x")
