"""Nothing lost, same results every time: processes killed with SIGKILL while they write
checkpoints or train, resumed runs, cache invalidation, and bit-identical reruns.

The kills are real (a subprocess, ``SIGKILL`` at a random moment drawn from a seeded
generator), so this file tests what an out-of-memory kill or a power cut does: the previous
checkpoint stays loadable, ``--resume`` continues with exactly the losses of a run that was
never interrupted, and a cache whose source changed is rebuilt, never reused.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from minigpt.checkpoint import CKPT_NAME, load_checkpoint
from minigpt.corpus import builtin_corpus
from minigpt.data import prepare_data, split_text
from minigpt.train import TrainConfig, read_log, train

ROOT = Path(__file__).resolve().parents[2]
FLAGS = ["--n_layer", "1", "--n_head", "2", "--n_embd", "16", "--block_size", "16",
         "--batch_size", "4", "--vocab_size", "280", "--eval_iters", "2", "--eval_interval", "50",
         "--checkpoint_interval", "25", "--max_iters", "600", "--warmup_iters", "5",
         "--dropout", "0.1", "--num_samples", "0", "--progress", "false", "--seed", "7"]


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["MINIGRAD_DEVICE"] = "cpu"
    env.setdefault("OMP_NUM_THREADS", "1")     # the machine is shared; results do not depend on it
    return env


def _wait_for(cond, timeout: float, proc=None) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the process ended (status {proc.returncode}) first:\n{err}")
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


def _kill(proc) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)


# ----------------------------------------------------------------------------- checkpoint writer
WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from minigrad import fileio
    from minigrad.optim import AdamW
    from minigpt.checkpoint import save_checkpoint
    from minigpt.data import tokenizer_to_text
    from minigpt.model import GPT, GPTConfig
    from minigpt.tokenizer import CharTokenizer

    real = fileio._write_all
    def slow_write(f, data):            # a slow disk: 4 KiB at a time, so kills land mid-write
        for i in range(0, len(data), 4096):
            f.write(data[i:i + 4096]); f.flush(); time.sleep(0.0005)
    fileio._write_all = slow_write

    path, first = sys.argv[1], int(sys.argv[2])
    model = GPT(GPTConfig(vocab_size=40, block_size=8, n_layer=2, n_head=2, n_embd=32))
    opt = AdamW(model.parameters(), lr=1e-3)
    tok = tokenizer_to_text(CharTokenizer.train("abcdefghijklmnopqrstuvwxyz .,;:!?\\n'-ABCD"))
    for step in range(first, first + 1000):
        for p in model.parameters():    # every weight holds the step: a mixed file shows
            p.array[...] = step
        save_checkpoint(path, model, opt, step=step, train_config={}, tokenizer_text=tok,
                        extra={"marker": step})
        print(step, flush=True)
""")


def test_checkpoint_write_killed_midway_keeps_the_previous_one(tmp_path):
    """Five writers, each SIGKILLed at a random moment while it rewrites the checkpoint in a
    loop: after every kill the file loads and is one whole checkpoint, never a mix."""
    path = tmp_path / CKPT_NAME
    rng = random.Random(1234)
    last = 0
    for round_ in range(5):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(last + 1)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=_env())
        try:
            first_line = proc.stdout.readline()        # one checkpoint fully written
            assert first_line.strip() == str(last + 1), proc.stderr.read()
            time.sleep(rng.uniform(0.0, 0.25))         # then a random moment: often mid-write
        finally:
            _kill(proc)
        ck = load_checkpoint(path)                     # never a CheckpointError
        assert ck.extra["marker"] == ck.step > last
        for name, w in ck.model_state.items():
            assert (w == ck.step).all(), f"{name} holds another step's weights"
        last = ck.step
    # a kill mid-write leaves the writer's temp file (never read; safe to delete)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != CKPT_NAME]
    assert leftovers, "no kill landed mid-write: the test did not test anything"
    assert all(n.startswith(f".{CKPT_NAME}.") and n.endswith(".tmp") for n in leftovers)


# ----------------------------------------------------------------------------- training runs
@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("data") / "data.txt"
    p.write_text(builtin_corpus()[:12_000], encoding="utf-8")
    return p


def _train_cmd(out: Path, data_file: Path, *extra) -> list[str]:
    return [sys.executable, str(ROOT / "scripts" / "train.py"), "--data", str(data_file),
            "--out_dir", str(out), *FLAGS, *extra]


def _run(cmd) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode == 0, r.stderr
    return r


def _log(out: Path) -> list[tuple]:
    """(step, loss, lr, grad_norm) of every row: the columns that must not depend on timing."""
    return [(int(r["step"]), r["loss"], r["lr"], r["grad_norm"]) for r in read_log(out / "log.csv")]


@pytest.fixture(scope="module")
def straight(tmp_path_factory, data_file) -> Path:
    """An uninterrupted run of scripts/train.py."""
    out = tmp_path_factory.mktemp("straight") / "out"
    _run(_train_cmd(out, data_file))
    return out


def _weights(out: Path) -> dict:
    return load_checkpoint(out).model_state


def test_resume_after_sigkill_continues_with_the_same_losses(tmp_path, data_file, straight):
    """SIGKILL scripts/train.py at a random moment after its first checkpoint (mid step,
    mid log line or mid checkpoint write), then `--resume`: log.csv and the final weights
    equal the uninterrupted run's, bit for bit."""
    out = tmp_path / "out"
    rng = random.Random(99)
    proc = subprocess.Popen(_train_cmd(out, data_file), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())
    try:
        _wait_for(lambda: (out / CKPT_NAME).exists(), 120, proc)
        time.sleep(rng.uniform(0.0, 0.5))
        assert proc.poll() is None, "the run ended before it could be killed"
    finally:
        _kill(proc)
    killed_at = load_checkpoint(out).step
    assert 25 <= killed_at < 600
    r = _run([sys.executable, str(ROOT / "scripts" / "train.py"), "--resume", "--out_dir",
              str(out), "--data", str(data_file), "--progress", "false"])
    assert f"resuming from {out / CKPT_NAME} at step {killed_at}" in r.stderr
    assert _log(out) == _log(straight)
    assert [s for s, *_ in _log(out)] == list(range(1, 601))
    a, b = _weights(straight), _weights(out)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_same_seed_gives_bit_identical_runs_and_samples(tmp_path, data_file, straight):
    """Two runs of scripts/train.py with the same seed on cpu: the same losses, learning
    rates and gradient norms, the same tokenizer, weights and optimizer state, and
    scripts/sample.py draws the same text from both."""
    out = tmp_path / "out"
    _run(_train_cmd(out, data_file))
    assert _log(out) == _log(straight)
    assert (out / "tokenizer.txt").read_bytes() == (straight / "tokenizer.txt").read_bytes()
    a, b = load_checkpoint(straight), load_checkpoint(out)
    for k in a.model_state:
        assert a.model_state[k].tobytes() == b.model_state[k].tobytes(), k
    for i, s in a.optimizer_state["state"].items():
        for name, v in s.items():
            assert np.array_equal(v, b.optimizer_state["state"][i][name]), (i, name)
    sample = [sys.executable, str(ROOT / "scripts" / "sample.py"), "--prompt", "KING",
              "--max_new_tokens", "20", "--num_samples", "2", "--seed", "5", "--ckpt"]
    s1, s2 = _run(sample + [str(straight)]).stdout, _run(sample + [str(out)]).stdout
    assert s1 == s2 and s1.count("KING") == 2


def test_different_seeds_differ(tmp_path, data_file, straight):
    """The determinism above is not an accident of a seed that is ignored."""
    res = train(TrainConfig(data=str(data_file), out_dir=str(tmp_path / "out"), n_layer=1,
                            n_head=2, n_embd=16, block_size=16, batch_size=4, vocab_size=280,
                            eval_iters=2, eval_interval=50, checkpoint_interval=10, max_iters=3,
                            warmup_iters=5, dropout=0.1, num_samples=0, progress=False, seed=8))
    assert res.steps == 3
    assert _log(tmp_path / "out")[:3] != _log(straight)[:3]


@pytest.mark.cuda
def test_cuda_runs_repeat_within_tolerance(tmp_path, data_file):
    """On cuda the same seed gives the same losses within rtol 1e-5 (cuBLAS and CuPy
    reductions may sum in a different order from run to run; dropout masks come from CuPy's
    generator, seeded by manual_seed). On cpu the runs are bit-identical (tests above)."""
    def run(name):
        train(TrainConfig(data=str(data_file), out_dir=str(tmp_path / name), n_layer=1,
                          n_head=2, n_embd=16, block_size=16, batch_size=4, vocab_size=280,
                          eval_iters=2, max_iters=20, num_samples=0, progress=False,
                          device="cuda", seed=3))
        return np.array([float(loss) for _, loss, *_ in _log(tmp_path / name)])

    a, b = run("a"), run("b")
    assert np.isfinite(a).all()
    np.testing.assert_allclose(a, b, rtol=1e-5)


# ----------------------------------------------------------------------------- caches
def _prepare(data, cache, **kw):
    logs = []
    kw.setdefault("vocab_size", 300)
    d = prepare_data(data, kw.pop("tokenizer", "bpe"), kw.pop("vocab_size"),
                     kw.pop("val_fraction", 0.1), cache, log=logs.append, **kw)
    return d, logs


def _expected(d, data: Path, val_fraction=0.1):
    train_text, val_text = split_text(data.read_text(encoding="utf-8"), val_fraction)
    assert d.tokenizer.decode(d.train_ids) == train_text
    assert d.tokenizer.decode(d.val_ids) == val_text


def test_same_size_same_mtime_edit_is_noticed(tmp_path):
    """The cache key is a hash of the bytes, not the size or the modification time."""
    data = tmp_path / "data.txt"
    text = builtin_corpus()[:6000]
    data.write_text(text, encoding="utf-8")
    _prepare(data, tmp_path / "cache")
    st = data.stat()
    data.write_text(text.replace("Citizen", "Citizan", 1), encoding="utf-8")   # same length
    os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert data.stat().st_size == st.st_size and data.stat().st_mtime_ns == st.st_mtime_ns
    d, logs = _prepare(data, tmp_path / "cache")
    assert any("training the tokenizer" in m for m in logs)
    _expected(d, data)


def test_settings_and_tokenizer_changes_rebuild(tmp_path):
    data = tmp_path / "data.txt"
    data.write_text(builtin_corpus()[:6000], encoding="utf-8")
    cache = tmp_path / "cache"
    base, _ = _prepare(data, cache)
    d, logs = _prepare(data, cache, val_fraction=0.2)          # another split
    assert logs and d.val_ids.size > base.val_ids.size
    _expected(d, data, 0.2)
    d, logs = _prepare(data, cache, tokenizer="char")           # another kind
    assert logs and d.tokenizer.vocab_size < 200
    _expected(d, data)
    # a resumed run brings its checkpoint's tokenizer: the ids are encoded with it
    other = tmp_path / "other.txt"
    other.write_text(builtin_corpus()[-6000:], encoding="utf-8")
    theirs, _ = _prepare(other, tmp_path / "cache2", vocab_size=290)
    d, logs = _prepare(data, cache, tokenizer_text=theirs.tokenizer_text)
    assert d.tokenizer.vocab_size == 290 and d.tokenizer_text == theirs.tokenizer_text
    _expected(d, data)
    d, logs = _prepare(data, cache)                             # and back: still right
    assert d.tokenizer_text == base.tokenizer_text
    _expected(d, data)


def test_swapped_or_foreign_cache_files_are_not_reused(tmp_path):
    data = tmp_path / "data.txt"
    data.write_text(builtin_corpus()[:6000], encoding="utf-8")
    cache = tmp_path / "cache"
    _prepare(data, cache)
    # the train and val files swapped, each with its own sidecar: the split is in the key
    for a, b in (("train.bin", "val.bin"), ("train.json", "val.json")):
        (cache / a).rename(cache / "tmp")
        (cache / b).rename(cache / a)
        (cache / "tmp").rename(cache / b)
    d, logs = _prepare(data, cache)
    _expected(d, data)
    assert json.loads((cache / "train.json").read_text())["length"] == d.train_ids.size
    # a whole cache built from other data, copied over this one
    other = tmp_path / "other.txt"
    other.write_text(builtin_corpus()[-6000:], encoding="utf-8")
    _prepare(other, tmp_path / "cache2")
    for f in (tmp_path / "cache2").iterdir():
        (cache / f.name).write_bytes(f.read_bytes())
    d, logs = _prepare(data, cache)
    assert any("training the tokenizer" in m for m in logs)
    _expected(d, data)
    # the tokenizer file replaced by another valid tokenizer, its sidecar left alone
    (cache / "tokenizer-bpe.txt").write_bytes((tmp_path / "cache2" / "tokenizer-bpe.txt")
                                              .read_bytes())
    d, logs = _prepare(data, cache)
    assert any("damaged" in m for m in logs)
    _expected(d, data)


def test_cache_written_by_a_killed_run_is_rebuilt(tmp_path):
    """What a kill between writing a cache file and its sidecar leaves behind (the sidecar
    is removed first and written last, so a file is never described by a stale one)."""
    data = tmp_path / "data.txt"
    data.write_text(builtin_corpus()[:6000], encoding="utf-8")
    cache = tmp_path / "cache"
    _prepare(data, cache)
    (cache / "train.json").unlink()                         # killed before the sidecar
    (cache / "train.bin").write_bytes(b"\x01\x00" * 10)     # ... after a new .bin
    (cache / "tokenizer-bpe.json").unlink()
    d, logs = _prepare(data, cache)
    assert any("training the tokenizer" in m for m in logs)
    _expected(d, data)
    assert json.loads((cache / "train.json").read_text())["length"] == d.train_ids.size
