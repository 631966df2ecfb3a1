"""`minigpt train --resume`: paths in a checkpoint are data, never orders (issue 17 item 7);
the learning rate never changes silently (item 12); resume works from another working
directory and the Ctrl-C hint is the whole command (item 13)."""
import json
import os
import shlex
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, strategies as st

from minigpt import train as train_mod
from minigpt.checkpoint import CKPT_NAME, load_checkpoint, save_checkpoint
from minigpt.corpus import builtin_corpus
from minigpt.errors import PROJECT_ERRORS
from minigpt.train.resume import same_path
from minigpt.train import TrainConfig, config_from_args, main, read_log, train
from minigrad import serialization
from minigrad.optim import AdamW, cosine_with_warmup, weight_decay_groups

TINY = ["--n_layer", "1", "--n_head", "2", "--n_embd", "16", "--block_size", "16",
        "--batch_size", "4", "--vocab_size", "280", "--eval_iters", "1", "--eval_interval", "2",
        "--checkpoint_interval", "2", "--num_samples", "0", "--progress", "false"]


@pytest.fixture
def work(tmp_path, monkeypatch):
    """tmp_path/work as the working directory, holding data.txt."""
    w = tmp_path / "work"
    w.mkdir()
    (w / "data.txt").write_text(builtin_corpus()[:12_000], encoding="utf-8")
    monkeypatch.chdir(w)
    return w


def files_under(root: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def forge(out: Path, **paths) -> None:
    """Rewrite out/ckpt.safetensors with its train_config's paths replaced (a hostile file)."""
    ck = load_checkpoint(out)
    model = ck.build_model()
    optimizer = AdamW(weight_decay_groups(model.named_parameters(), 0.1))
    ck.restore(model, optimizer)
    save_checkpoint(out / CKPT_NAME, model, optimizer, step=ck.step,
                    train_config={**ck.train_config, **paths}, tokenizer_text=ck.tokenizer_text,
                    rng_state=ck.rng_state, data_state=ck.data_state, extra=ck.extra)


# ----------------------------------------------------------------------------- item 7
def test_resume_never_writes_where_the_checkpoint_says(work, tmp_path, capsys):
    assert main(["--max_iters", "2", "--data", "data.txt", "--out_dir", "out", *TINY]) == 0
    secret = tmp_path / "secret.txt"
    secret.write_text("not for training " * 1000)
    forge(work / "out", out_dir="../victim", cache_dir="../victim/cache", data=str(secret))
    before = {p: t for p, t in files_under(tmp_path).items() if work / "out" not in p.parents}
    capsys.readouterr()

    # no --data: the checkpoint's data path is not followed; the message says what to add
    assert main(["--resume", "--out_dir", "out", "--max_iters", "3"]) == 2
    err = capsys.readouterr().err
    assert f"--data {secret}" in err and "--trust_checkpoint_paths" in err

    assert main(["--resume", "--out_dir", "out", "--max_iters", "3", "--data", "data.txt"]) == 0
    err = capsys.readouterr().err
    assert "out_dir" in err and "../victim" in err       # says what it ignored, and why
    assert "data.txt (from --data" in err
    assert not (tmp_path / "victim").exists()
    after = {p: t for p, t in files_under(tmp_path).items() if work / "out" not in p.parents}
    assert after == before                               # nothing outside out/ was touched
    assert load_checkpoint(work / "out").step == 3


def test_checkpoint_paths_resolving_to_the_run_are_used(work, capsys):
    """A data path stored in the checkpoint is followed when the user confirms it, by
    --data or --trust_checkpoint_paths; a cache_dir only when trusted or when it is the one
    this run would use anyway."""
    train(TrainConfig(data="data.txt", out_dir="out", cache_dir="out/cache", n_layer=1,
                      n_head=2, n_embd=16, block_size=16, batch_size=4, vocab_size=280,
                      max_iters=2, eval_iters=1, num_samples=0, progress=False))
    c = config_from_args(["--resume", "--out_dir", "out", "--trust_checkpoint_paths"])
    assert c.data == str(work / "data.txt") and c.cache_dir == str(work / "out" / "cache")
    assert "trusted by --trust_checkpoint_paths" in capsys.readouterr().err
    c = config_from_args(["--resume", "--out_dir", "out", "--data", "data.txt"])
    assert c.data == "data.txt" and c.cache_dir == str(work / "out" / "cache")
    err = capsys.readouterr().err
    assert "the file the checkpoint was trained on" in err
    assert "this run's own cache directory" in err
    forge(work / "out", cache_dir="/elsewhere/cache")
    c = config_from_args(["--resume", "--out_dir", "out", "--data", "data.txt"])
    assert c.cache_dir is None                          # <out_dir>/cache, not /elsewhere
    assert "/elsewhere/cache" in capsys.readouterr().err
    with pytest.raises(Exception, match="only with --resume"):
        config_from_args(["--trust_checkpoint_paths"])


# ----------------------------------------------------------------------------- item 12
def _lrs(out) -> dict:
    return {int(r["step"]): float(r["lr"]) for r in read_log(Path(out) / "log.csv")}


def test_resume_past_the_end_keeps_the_final_lr(work, capsys):
    flags = ["--data", "data.txt", "--out_dir", "out", *TINY, "--warmup_iters", "1",
             "--learning_rate", "0.01", "--min_lr", "0.001"]
    assert main(["--max_iters", "4", *flags]) == 0
    capsys.readouterr()
    assert main(["--resume", "--max_iters", "6", *flags]) == 0
    lrs = _lrs(work / "out")
    original = {k: cosine_with_warmup(k, max_lr=0.01, warmup_steps=1, max_steps=4,
                                      min_lr=0.001) for k in range(1, 7)}
    assert lrs == pytest.approx(original, rel=1e-12)     # steps 5, 6: min_lr, as before
    assert lrs[5] == 0.001
    err = capsys.readouterr().err
    assert "lr at step 5: 1.00e-03" in err and "--reschedule" in err


def test_reschedule_stretches_the_schedule_and_says_so(work, capsys):
    flags = ["--data", "data.txt", "--out_dir", "out", *TINY, "--warmup_iters", "1",
             "--learning_rate", "0.01", "--min_lr", "0.001"]
    assert main(["--max_iters", "4", *flags]) == 0
    capsys.readouterr()
    assert main(["--resume", "--reschedule", "--max_iters", "8", *flags]) == 0
    lrs = _lrs(work / "out")
    want = cosine_with_warmup(5, max_lr=0.01, warmup_steps=1, max_steps=8, min_lr=0.001)
    assert lrs[5] == pytest.approx(want, rel=1e-12) and lrs[5] > 0.001
    err = capsys.readouterr().err
    assert f"lr at step 5: {want:.2e}" in err
    assert "the checkpoint's schedule gives 1.00e-03" in err


def test_library_resume_reports_a_changed_lr(work, capsys):
    """train() itself (not only the CLI) says when the settings change the lr at resume."""
    kw = dict(data="data.txt", out_dir="out", n_layer=1, n_head=2, n_embd=16, block_size=16,
              batch_size=4, vocab_size=280, eval_iters=1, num_samples=0, progress=False,
              warmup_iters=1)
    train(TrainConfig(max_iters=2, **kw))
    capsys.readouterr()
    train(TrainConfig(max_iters=4, resume=True, **kw))      # lr_decay_iters 0: stretched
    err = capsys.readouterr().err
    assert "lr at step 3" in err and "the checkpoint's schedule gives 1.00e-04" in err


# ----------------------------------------------------------------------------- item 13
def test_resume_from_another_directory_with_the_printed_command(work, tmp_path, monkeypatch,
                                                                capsys):
    real_step = train_mod.Trainer.train_step

    def stop_after_2(self):
        if self.step == 2:
            raise KeyboardInterrupt                      # as Ctrl-C between two steps
        return real_step(self)

    monkeypatch.setattr(train_mod.Trainer, "train_step", stop_after_2)
    assert main(["--max_iters", "5", "--data", "data.txt", "--out_dir", "out", *TINY]) == 0
    monkeypatch.undo()
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("minigpt train"))
    argv = shlex.split(line)
    assert argv[:3] == ["minigpt", "train", "--resume"]
    assert argv[argv.index("--data") + 1] == str(work / "data.txt")
    assert argv[argv.index("--out_dir") + 1] == str(work / "out")
    saved = load_checkpoint(work / "out").train_config
    assert saved["data"] == str(work / "data.txt") and os.path.isabs(saved["out_dir"])

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(argv[2:]) == 0                           # the printed command, as is
    assert load_checkpoint(work / "out").step == 5
    assert [int(r["step"]) for r in read_log(work / "out" / "log.csv")] == [1, 2, 3, 4, 5]
    assert not any(elsewhere.iterdir())                  # nothing written in the new cwd
    # and with the stored absolute path, trusted, from yet another directory
    monkeypatch.chdir(tmp_path)
    assert main(["--resume", "--out_dir", str(work / "out"), "--trust_checkpoint_paths",
                 "--max_iters", "6"]) == 0
    assert load_checkpoint(work / "out").step == 6


def test_resume_command_quotes_paths():
    cmd = train_mod.resume_command(TrainConfig(out_dir="/tmp/my run", data="/d/it's.txt"))
    assert shlex.split(cmd) == ["minigpt", "train", "--resume", "--out_dir", "/tmp/my run",
                                "--data", "/d/it's.txt"]


# ----------------------------------------------------------------------------- fuzz
_HOSTILE_PATHS = st.one_of(
    st.none(), st.integers(), st.lists(st.integers(), max_size=2), st.text(max_size=12),
    st.sampled_from(["../victim", "/etc", "/", "", ".", "run\0x", "~/.ssh", "out/../../v",
                     "out/cache", "cache", "\udcff", "-rf"]))


@given(paths=st.fixed_dictionaries({}, optional={k: _HOSTILE_PATHS
                                                 for k in ("out_dir", "data", "cache_dir")}),
       trust=st.booleans(), give_data=st.booleans(), give_cache=st.booleans())
@example(paths={"out_dir": "\0"}, trust=False, give_data=False, give_cache=False)  # ValueError
@example(paths={"cache_dir": "\0", "data": "\0"}, trust=True, give_data=False, give_cache=False)
def test_paths_inside_a_checkpoint_fuzz(tmp_path_factory, paths, trust, give_data, give_cache):
    """Whatever paths a checkpoint holds: the resumed run's out_dir is the user's, its data
    is the user's --data (or, trusted, the checkpoint's), its cache is the user's, this
    run's own or (trusted) the checkpoint's; or a project error, never another exception."""
    d = tmp_path_factory.mktemp("ck")
    out = d / "out"
    out.mkdir()
    serialization.save({"x": np.zeros(1, np.float32)}, out / CKPT_NAME,
                       {"train_config": json.dumps({"n_layer": 1, "max_iters": 2, **paths})})
    argv = ["--resume", "--out_dir", str(out)] + ["--trust_checkpoint_paths"] * trust \
        + ["--data", str(d / "mine.txt")] * give_data \
        + ["--cache_dir", str(d / "my_cache")] * give_cache
    try:
        c = config_from_args(argv)
    except PROJECT_ERRORS:
        return
    assert c.out_dir == str(out)
    if give_data:
        assert c.data == str(d / "mine.txt")
    elif not trust:
        assert c.data is None                        # the built-in corpus: no path read
    if give_cache:
        assert c.cache_dir == str(d / "my_cache")
    elif c.cache_dir is not None:
        assert trust or same_path(c.cache_dir, out / "cache")
