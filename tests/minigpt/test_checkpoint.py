"""minigpt.checkpoint: one self-contained file, atomic, damage reported, never overwritten."""
import json

import numpy as np
import pytest

import minigrad as mg
from minigrad import fileio, serialization
from minigrad.optim import AdamW
from minigpt.checkpoint import (CKPT_NAME, FORMAT, checkpoint_path, load_checkpoint,
                                save_checkpoint)
from minigpt.corpus import builtin_corpus
from minigpt.data import tokenizer_to_text
from minigpt.errors import CheckpointError
from minigpt.model import GPT, GPTConfig
from minigpt import sample as sample_mod
from minigpt.sample import load_model_and_tokenizer
from minigpt.tokenizer import CharTokenizer
from minigpt.train import TrainConfig, train


def _trained_pair(seed=0):
    mg.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=40, block_size=8, n_layer=1, n_head=2, n_embd=8))
    opt = AdamW(model.parameters(), lr=1e-2)
    x = np.random.default_rng(seed).integers(0, 40, (2, 8))
    for _ in range(2):
        _, loss = model(x, x)
        loss.backward()
        opt.step()
        opt.zero_grad()
    return model, opt


def _save(path, model, opt, step=2):
    tok_text = tokenizer_to_text(CharTokenizer.train("abcdefghijklmnopqrstuvwxyz .,;:!?\n'-ABCD"))
    return save_checkpoint(path, model, opt, step=step, train_config={"max_iters": 5},
                           tokenizer_text=tok_text, rng_state=mg.backend.get_rng_state(),
                           data_state={"batches_drawn": 7}, extra={"elapsed_s": 1.5})


def test_roundtrip(tmp_path):
    model, opt = _trained_pair()
    path = _save(tmp_path, model, opt)
    assert path == tmp_path / CKPT_NAME
    ck = load_checkpoint(tmp_path)
    assert ck.step == 2 and ck.train_config == {"max_iters": 5}
    assert ck.data_state == {"batches_drawn": 7} and ck.extra["elapsed_s"] == 1.5
    assert ck.rng_state == json.loads(json.dumps(mg.backend.get_rng_state()))
    assert serialization.load_metadata(path)["format"] == FORMAT
    model2 = ck.build_model()
    for (n, a), (_, b) in zip(model.state_dict().items(), model2.state_dict().items()):
        assert np.array_equal(a.array, b.array), n
    opt2 = AdamW(model2.parameters(), lr=1e-2)
    ck.restore(model2, opt2)
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for i in s1["state"]:
        assert s1["state"][i]["step"] == s2["state"][i]["step"]
        assert np.array_equal(s1["state"][i]["exp_avg"], s2["state"][i]["exp_avg"])
        assert np.array_equal(s1["state"][i]["exp_avg_sq"], s2["state"][i]["exp_avg_sq"])
    assert ck.tokenizer().vocab_size == 40
    assert checkpoint_path(path) == path


def test_missing(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty"])
def test_damaged_checkpoint_is_reported(tmp_path, damage):
    model, opt = _trained_pair()
    path = _save(tmp_path, model, opt)
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) // 2]
    elif damage == "flip":
        raw[-100] ^= 0x01
    elif damage == "garbage":
        raw = bytearray(b"this is not a checkpoint at all" * 10)
    else:
        raw = bytearray()
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    msg = str(info.value)
    assert str(path) in msg and ("corrupted" in msg or "truncated" in msg)
    assert isinstance(info.value.__cause__, serialization.SerializationError)


def test_not_a_training_checkpoint(tmp_path):
    path = tmp_path / "weights.safetensors"
    serialization.save({"w": np.zeros(3, np.float32)}, path)
    with pytest.raises(CheckpointError, match="not a minigpt training checkpoint"):
        load_checkpoint(path)


def test_crash_during_save_keeps_previous(tmp_path, monkeypatch):
    model, opt = _trained_pair()
    path = _save(tmp_path, model, opt, step=2)
    before = path.read_bytes()

    def crash(f, data):           # write half the file, then "lose power"
        f.write(data[: len(data) // 2])
        raise OSError("simulated crash while writing")

    monkeypatch.setattr(fileio, "_write_all", crash)
    model.transformer.wte.weight.array += 1.0
    with pytest.raises(OSError, match="simulated crash"):
        _save(tmp_path, model, opt, step=3)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_checkpoint(path).step == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [CKPT_NAME]   # no temp files left


def _tiny(tmp_path, **kw):
    data = tmp_path / "data.txt"
    if not data.exists():
        data.write_text(builtin_corpus()[:12_000], encoding="utf-8")
    base = dict(data=str(data), out_dir=str(tmp_path / "out"), n_layer=1, n_head=2, n_embd=16,
                block_size=16, batch_size=4, vocab_size=280, max_iters=2, eval_iters=2,
                eval_interval=2, checkpoint_interval=2, num_samples=0, progress=False)
    base.update(kw)
    return TrainConfig(**base)


def test_resume_from_damaged_checkpoint_never_overwrites(tmp_path):
    train(_tiny(tmp_path))
    path = tmp_path / "out" / CKPT_NAME
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x10
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="corrupted"):
        train(_tiny(tmp_path, resume=True, max_iters=4))
    assert path.read_bytes() == bytes(raw)             # left as it was for inspection


def test_crash_during_training_save_keeps_previous(tmp_path, monkeypatch):
    train(_tiny(tmp_path, max_iters=2))
    path = tmp_path / "out" / CKPT_NAME
    good = path.read_bytes()

    def crash(f, data):
        f.write(data[:100])
        raise OSError("disk full")

    monkeypatch.setattr(fileio, "_write_all", crash)
    with pytest.raises(OSError, match="disk full"):
        train(_tiny(tmp_path, resume=True, max_iters=4))
    monkeypatch.undo()
    assert path.read_bytes() == good and load_checkpoint(path).step == 2


def test_sample_load_model_and_tokenizer(tmp_path):
    train(_tiny(tmp_path))
    model, tok, ck = load_model_and_tokenizer(tmp_path / "out")
    assert not model.training and ck.step == 2
    assert tok.vocab_size == model.config.vocab_size == 280
    # the old name still works, with a warning naming the new one
    with pytest.warns(DeprecationWarning, match="load_model_and_tokenizer"):
        old_model, old_tok, old_ck = sample_mod.load_checkpoint(tmp_path / "out")
    assert old_ck.step == ck.step and old_tok.encode("ab") == tok.encode("ab")
    assert all((a.detach().numpy() == b.detach().numpy()).all()
               for a, b in zip(old_model.parameters(), model.parameters()))
