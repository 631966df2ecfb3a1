"""minigpt.train and minigpt.sample: scripts, config, log and plot, exact resume, Ctrl-C."""
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from minigpt import sample as sample_mod
from minigpt import train as train_mod
from minigpt.checkpoint import CKPT_NAME, load_checkpoint
from minigpt.corpus import builtin_corpus
from minigpt.errors import ConfigError
from minigpt.tokenizer import Tokenizer
from minigpt.train import (LOG_COLUMNS, TrainConfig, build_parser, config_from_args,
                           field_docs, load_config_file, main, read_log, train)

ROOT = Path(__file__).resolve().parents[3]
SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
TINY_FLAGS = ["--n_layer", "1", "--n_head", "2", "--n_embd", "16", "--block_size", "16",
              "--batch_size", "4", "--vocab_size", "280", "--eval_iters", "2",
              "--sample_tokens", "12", "--num_samples", "1", "--progress", "false"]


@pytest.fixture
def data_file(tmp_path):
    p = tmp_path / "data.txt"
    p.write_text(builtin_corpus()[:12_000], encoding="utf-8")
    return p


def tiny(tmp_path, data_file, **kw):
    base = dict(data=str(data_file), out_dir=str(tmp_path / "out"), n_layer=1, n_head=2,
                n_embd=16, block_size=16, batch_size=4, vocab_size=280, max_iters=3,
                eval_iters=2, eval_interval=2, checkpoint_interval=2, num_samples=0,
                progress=False)
    base.update(kw)
    return TrainConfig(**base)


def losses(out_dir) -> list[tuple[int, float]]:
    return [(int(r["step"]), float(r["loss"])) for r in read_log(Path(out_dir) / "log.csv")]


# ----------------------------------------------------------------------------- scripts
def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_scripts_train_then_sample(tmp_path, data_file):
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), "--max_iters", "3",
                        "--data", str(data_file), f"--out_dir={out}", *TINY_FLAGS],
                       capture_output=True, text=True, env=_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    assert "step 3:" in r.stdout and "sample" in r.stdout
    assert [s for s, _ in losses(out)] == [1, 2, 3]
    assert (out / CKPT_NAME).is_file() and (out / "tokenizer.txt").is_file()
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "sample.py"), "--ckpt", str(out),
                        "--prompt", "KING", "--max_new_tokens", "10", "--num_samples", "2",
                        "--seed", "7"], capture_output=True, text=True, env=_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("KING") == 2 and r.stdout.count("---------------") == 2
    r2 = subprocess.run([sys.executable, "-m", "minigpt", "sample", "--ckpt", str(out),
                         "--prompt", "KING", "--max_new_tokens", "10", "--num_samples", "2",
                         "--seed", "7"], capture_output=True, text=True, env=_env(), timeout=120)
    assert r2.returncode == 0 and r2.stdout == r.stdout      # same seed, same text


def test_script_ctrl_c_saves_and_exits_cleanly(tmp_path, data_file):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "train.py"),
                             "--max_iters", "100000", "--data", str(data_file), "--out_dir",
                             str(out), *TINY_FLAGS], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())
    try:
        deadline = time.monotonic() + 60
        while len(read_log(out / "log.csv")) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "interrupted" in stdout and "--resume" in stdout
    step = load_checkpoint(out).step
    assert step >= 3 and [s for s, _ in losses(out)] == list(range(1, step + 1))


def test_sample_main_errors(tmp_path, capsys):
    assert sample_mod.main(["--ckpt", str(tmp_path)]) == 1
    assert "no checkpoint" in capsys.readouterr().err
    (tmp_path / CKPT_NAME).write_bytes(b"\x08" + b"\x00" * 20)
    assert sample_mod.main(["--ckpt", str(tmp_path)]) == 1
    assert "corrupted or truncated" in capsys.readouterr().err


def test_main_in_process_writes_log_png_tokenizer(tmp_path, data_file, capsys):
    out = tmp_path / "run"
    assert main(["--max_iters=3", "--data", str(data_file), "--out_dir", str(out),
                 "--eval_interval", "2", *TINY_FLAGS]) == 0
    captured = capsys.readouterr()
    assert "step 2:" in captured.out and "step 3:" in captured.out
    rows = read_log(out / "log.csv")
    assert tuple(rows[0]) == LOG_COLUMNS
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert [bool(r["val_loss"]) for r in rows] == [False, True, True]
    assert all(float(r["lr"]) > 0 and float(r["grad_norm"]) > 0 for r in rows)
    png = (out / "loss.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert (out / "tokenizer.txt").read_text().startswith("minigpt-tokenizer bpe 1")
    ck = load_checkpoint(out)
    assert ck.step == 3 and ck.train_config["max_iters"] == 3


def test_cli_dispatcher(tmp_path, data_file):
    from minigpt.cli import main as cli_main
    out = tmp_path / "cli"
    assert cli_main(["train", "--max_iters", "1", "--data", str(data_file), "--out_dir",
                     str(out), *TINY_FLAGS, "--num_samples", "0"]) == 0
    assert load_checkpoint(out).step == 1


def test_train_result_and_grad_accum(tmp_path, data_file):
    res = train(tiny(tmp_path, data_file, grad_accum_steps=2, max_iters=2))
    assert res.steps == res.steps_run == 2 and not res.interrupted
    assert np.isfinite(res.val_loss) and np.isfinite(res.train_loss)
    assert Path(res.plot_path).is_file() and Path(res.log_path).is_file()
    assert res.tokens_per_s > 0 and res.wall_time_s >= res.train_time_s > 0


def test_health_report_every_n_steps(tmp_path, data_file, capsys):
    """health_interval=2: steps 2 and 4 write one row per layer (emb, h.0, ln_f) to
    health.csv; the update/parameter ratio is the measured update over the weights."""
    train(tiny(tmp_path, data_file, max_iters=4, health_interval=2, n_layer=1))
    with open(tmp_path / "out" / "health.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["step"], r["layer"]) for r in rows] == [
        (s, layer) for s in ("2", "4") for layer in ("emb", "h.0", "ln_f")]
    for r in rows:
        assert float(r["grad_norm"]) > 0 and float(r["act_std"]) > 0
        assert float(r["update_ratio"]) == pytest.approx(
            float(r["update_norm"]) / float(r["param_norm"]), rel=0.02)   # norm before vs after
    assert "h.0" in capsys.readouterr().out


# ----------------------------------------------------------------------------- resume
def test_resume_equals_uninterrupted_exactly(tmp_path, data_file):
    kw = dict(max_iters=6, dropout=0.1, grad_accum_steps=2, warmup_iters=2, lr_decay_iters=6,
              checkpoint_interval=100, eval_interval=2)
    straight = train(tiny(tmp_path / "a", data_file, **kw))
    # stop after 3 steps (a shorter run, same schedule), then resume to 6
    train(tiny(tmp_path / "b", data_file, **{**kw, "max_iters": 3}))
    resumed = train(tiny(tmp_path / "b", data_file, **kw, resume=True))
    a, b = losses(tmp_path / "a" / "out"), losses(tmp_path / "b" / "out")
    assert [s for s, _ in b] == [1, 2, 3, 4, 5, 6]       # the log continues, no duplicates
    assert a == b                                       # bit for bit
    assert resumed.steps == 6 and resumed.steps_run == 3
    assert resumed.val_loss == straight.val_loss
    wa = load_checkpoint(tmp_path / "a" / "out").model_state
    wb = load_checkpoint(tmp_path / "b" / "out").model_state
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)


def test_resume_truncates_log_after_checkpoint(tmp_path, data_file):
    cfg = tiny(tmp_path, data_file, max_iters=4, checkpoint_interval=2)
    train(cfg)
    ck_path = Path(cfg.out_dir) / CKPT_NAME
    # pretend the run was killed after step 3: checkpoint of step 2, log up to step 3
    first = train(tiny(tmp_path / "x", data_file, max_iters=2))
    os.replace(Path(first.checkpoint_path), ck_path)
    rows = read_log(Path(cfg.out_dir) / "log.csv")[:3]
    with open(Path(cfg.out_dir) / "log.csv", "w", newline="") as f:
        w = csv.DictWriter(f, LOG_COLUMNS)
        w.writeheader()
        w.writerows(rows)
        f.write("4,0.1")                                # a half-written last line
    train(tiny(tmp_path, data_file, max_iters=4, resume=True))
    assert [s for s, _ in losses(cfg.out_dir)] == [1, 2, 3, 4]


def test_ctrl_c_from_callback_saves_and_resumes_exactly(tmp_path, data_file):
    kw = dict(max_iters=6, dropout=0.1, checkpoint_interval=100, eval_interval=100)
    train(tiny(tmp_path / "a", data_file, **kw))

    def stop_at_3(trainer):
        if trainer.step == 3:
            raise KeyboardInterrupt

    res = train(tiny(tmp_path / "b", data_file, **kw), callbacks={"on_step_end": stop_at_3})
    assert res.interrupted and res.steps == 3
    assert load_checkpoint(tmp_path / "b" / "out").step == 3
    assert [s for s, _ in losses(tmp_path / "b" / "out")] == [1, 2, 3]
    train(tiny(tmp_path / "b", data_file, **kw, resume=True))
    assert losses(tmp_path / "a" / "out") == losses(tmp_path / "b" / "out")


def test_ctrl_c_mid_step_saves_last_complete_step(tmp_path, data_file, monkeypatch):
    """A KeyboardInterrupt in the middle of a forward pass: the half step is dropped, the
    checkpoint holds the previous step with its data cursor and RNG state."""
    kw = dict(max_iters=5, dropout=0.1, checkpoint_interval=100, eval_interval=100)
    train(tiny(tmp_path / "a", data_file, **kw))
    from minigpt.model import GPT
    real_forward, calls = GPT.forward, {"n": 0}

    def flaky_forward(self, idx, targets=None, cache=None):
        if targets is not None and self.training:
            calls["n"] += 1
            if calls["n"] == 3:                          # the forward of step 3
                raise KeyboardInterrupt
        return real_forward(self, idx, targets, cache)

    monkeypatch.setattr(GPT, "forward", flaky_forward)
    res = train(tiny(tmp_path / "b", data_file, **kw))
    monkeypatch.undo()
    assert res.interrupted and res.steps == 2
    assert load_checkpoint(tmp_path / "b" / "out").step == 2
    train(tiny(tmp_path / "b", data_file, **kw, resume=True))
    assert losses(tmp_path / "a" / "out") == losses(tmp_path / "b" / "out")


def test_sigint_during_optimizer_step_is_deferred(tmp_path, data_file, monkeypatch):
    """A real SIGINT while the weights are being updated waits for the update to finish."""
    from minigrad.optim import AdamW
    real_step, calls = AdamW.step, {"n": 0}

    def step_with_sigint(self, closure=None):
        calls["n"] += 1
        if calls["n"] == 2:
            os.kill(os.getpid(), signal.SIGINT)         # delivered now, held until the end
        return real_step(self, closure)

    monkeypatch.setattr(AdamW, "step", step_with_sigint)
    res = train(tiny(tmp_path, data_file, max_iters=5, checkpoint_interval=100))
    monkeypatch.undo()
    assert res.interrupted and res.steps == 2           # step 2 completed, then stopped
    assert load_checkpoint(tmp_path / "out").step == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_main_reports_interrupt(tmp_path, data_file, monkeypatch, capsys):
    def interrupted_run(self):
        self.interrupted = True
        return self

    monkeypatch.setattr(train_mod.Trainer, "run", interrupted_run)
    assert main(["--max_iters", "2", "--data", str(data_file), "--out_dir",
                 str(tmp_path / "o"), *TINY_FLAGS]) == 0
    assert "--resume" in capsys.readouterr().out


def test_resume_cli_takes_checkpoint_settings(tmp_path, data_file):
    out = tmp_path / "out"
    assert main(["--max_iters", "2", "--data", str(data_file), "--out_dir", str(out),
                 "--learning_rate", "0.003", *TINY_FLAGS, "--num_samples", "0"]) == 0
    with pytest.raises(ConfigError, match="add --data"):     # a path in a file: confirm it
        config_from_args(["--resume", "--out_dir", str(out), "--max_iters", "4"])
    cfg = config_from_args(["--resume", "--out_dir", str(out), "--max_iters", "4",
                            "--data", str(data_file)])
    assert cfg.learning_rate == 0.003 and cfg.n_embd == 16 and cfg.max_iters == 4
    assert cfg.data == str(data_file)
    with pytest.raises(ConfigError, match="n_layer.*architecture cannot change"):
        train(TrainConfig(**{**cfg.to_dict(), "n_layer": 2}))


def test_resume_without_checkpoint(tmp_path, capsys):
    assert main(["--resume", "--out_dir", str(tmp_path / "none")]) == 1
    assert "no checkpoint" in capsys.readouterr().err


# ----------------------------------------------------------------------------- config
def test_every_field_has_a_comment_and_a_flag():
    docs = field_docs()
    assert set(docs) == set(TrainConfig.__dataclass_fields__)
    assert all(doc for _, doc in docs.values())
    help_text = build_parser().format_help()
    for name in docs:
        assert f"--{name}" in help_text


def test_flags_forms_and_bools():
    c = config_from_args(["--n_layer=2", "--n-embd", "64", "--n_head", "2", "--bias", "0",
                          "--progress=false", "--decay_lr", "TRUE", "--top_k", "none",
                          "--data", "x.txt"])
    assert (c.n_layer, c.n_embd, c.bias, c.progress, c.decay_lr) == (2, 64, False, False, True)
    assert c.top_k is None and c.data == "x.txt"
    with pytest.raises(SystemExit):
        config_from_args(["--bias", "maybe"])
    with pytest.raises(SystemExit):
        config_from_args(["--n_layers", "2"])              # no abbreviations, no typos


def test_config_file_json_and_toml_and_override(tmp_path):
    j = tmp_path / "c.json"
    j.write_text(json.dumps({"n_layer": 2, "learning_rate": 1, "data": None, "top_k": 5}))
    c = config_from_args(["--config", str(j), "--n_layer", "3"])
    assert c.n_layer == 3 and c.learning_rate == 1.0 and c.top_k == 5   # flag wins
    t = tmp_path / "c.toml"
    t.write_text('n_layer = 2\ntokenizer = "char"\ndropout = 0.1\nprogress = false\n')
    c = config_from_args(["--config", str(t)])
    assert (c.n_layer, c.tokenizer, c.dropout, c.progress) == (2, "char", 0.1, False)


@pytest.mark.parametrize("content, pattern", [
    ({"n_layers": 2}, r"c\.json: unknown key 'n_layers' \(did you mean 'n_layer'\?\)"),
    ({"n_layer": "4"}, r"c\.json: key n_layer must be int, got str '4'"),
    ({"dropout": True}, r"key dropout must be float, got bool True"),
    ({"n_layer": 2.0}, r"key n_layer must be int, got float 2\.0"),
    ({"progress": "yes"}, r"key progress must be bool, got str 'yes'"),
    ({"data": 3}, r"key data must be str or null, got int 3"),
    ([1, 2], r"expected a table of settings, got list"),
])
def test_config_file_errors(tmp_path, content, pattern):
    p = tmp_path / "c.json"
    p.write_text(json.dumps(content))
    with pytest.raises(ConfigError, match=pattern):
        load_config_file(p)


def test_config_file_syntax_and_kind_errors(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("n_layer = \n")
    with pytest.raises(ConfigError, match=r"c\.toml: not valid TOML"):
        load_config_file(p)
    p = tmp_path / "c.yaml"
    p.write_text("n_layer: 2\n")
    with pytest.raises(ConfigError, match=r"expected a \.json or \.toml file"):
        load_config_file(p)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config_file(tmp_path / "nope.json")


@pytest.mark.parametrize("kw, pattern", [
    (dict(dropout=1.0), r"TrainConfig\.dropout must be in \[0, 1\), got 1\.0"),
    (dict(batch_size=0), r"TrainConfig\.batch_size must be a positive int, got 0"),
    (dict(n_embd=130, n_head=4), r"n_embd must be divisible by n_head \(4\), got 130"),
    (dict(tokenizer="word"), r"TrainConfig\.tokenizer must be 'bpe' or 'char', got 'word'"),
    (dict(vocab_size=100), r"vocab_size must be >= 257"),
    (dict(min_lr=1.0), r"min_lr must be in \[0, learning_rate=0\.001\], got 1\.0"),
    (dict(device="tpu"), r"device must be 'cpu' or 'cuda', got 'tpu'"),
    (dict(n_layer="4"), r"TrainConfig\.n_layer must be int, got str '4'"),
    (dict(val_fraction=0.0), r"val_fraction must be in \(0, 1\), got 0\.0"),
])
def test_config_values_checked(kw, pattern):
    with pytest.raises(ConfigError, match=pattern):
        TrainConfig(**kw)


def test_main_reports_config_errors(tmp_path, capsys):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"batchsize": 3}))
    assert main(["--config", str(p)]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'batchsize'" in err and "batch_size" in err
    assert main(["--dropout", "2"]) == 2
    assert "TrainConfig.dropout must be in [0, 1), got 2.0" in capsys.readouterr().err


def test_data_errors_reported(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\x00oops")
    assert main(["--data", str(bad), "--out_dir", str(tmp_path / "o")]) == 1
    assert "not UTF-8" in capsys.readouterr().err


# ----------------------------------------------------------------------------- sampling
class _ScriptedModel:
    """generate_steps yields a fixed list of token ids (to test streaming and stopping)."""

    def __init__(self, tokens):
        self.tokens = tokens

    def generate_steps(self, idx, max_new_tokens, **kw):
        for t in self.tokens[:max_new_tokens]:
            yield np.array([t]), None
            if t == kw.get("eos_token_id"):
                return


def test_sample_streams_multibyte_characters_whole():
    tok = Tokenizer([], pattern=None, special_tokens={"<|endoftext|>": 256})
    e_acute = list("é".encode())                                   # two byte tokens
    snow = list("☃".encode())                                      # three byte tokens
    model = _ScriptedModel([104, 105, *e_acute, 32, *snow, 256, 120, 120])
    pieces = []
    texts = sample_mod.sample(model, tok, "", max_new_tokens=20, stream=pieces.append)
    assert texts == ["hié ☃"]                                       # stopped at <|endoftext|>
    assert pieces == ["h", "i", "é", " ", "☃", None]               # never a broken character
    texts = sample_mod.sample(model, tok, "Say: ", max_new_tokens=2, num_samples=2)
    assert texts == ["Say: hi", "Say: hi"]


def test_sample_reproducible_and_prompt_start(tmp_path, data_file):
    train(tiny(tmp_path, data_file, max_iters=1))
    model, tok, _ = sample_mod.load_model_and_tokenizer(tmp_path / "out")
    a = sample_mod.sample(model, tok, "", 15, num_samples=2, seed=3)
    b = sample_mod.sample(model, tok, "", 15, num_samples=2, seed=3)
    assert a == b and len(a) == 2
    assert sample_mod.start_ids(tok, "") == ([tok.eot_token], 1)
    assert "<|endoftext|>" not in a[0]


@pytest.mark.skipif(not SHAKESPEARE.is_file(), reason="needs ../shared/data/tinyshakespeare.txt")
def test_char_mode_on_tinyshakespeare(tmp_path):
    res = train(TrainConfig(data=str(SHAKESPEARE), tokenizer="char", out_dir=str(tmp_path),
                            n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=4,
                            max_iters=2, eval_iters=1, num_samples=1, sample_tokens=20,
                            progress=False))
    model, tok, _ = sample_mod.load_model_and_tokenizer(tmp_path)
    assert tok.vocab_size == 65 and res.steps == 2
    assert sample_mod.start_ids(tok, "") == (tok.encode("\n"), 1)


# ----------------------------------------------------------------------------- progress lines
def test_periodic_lines_say_what_they_are(tmp_path, data_file, capsys, monkeypatch):
    """The train loss printed at evaluations is labelled as the mean over the steps since
    the last one; without a TTY (no progress bar) a plain progress line is printed whenever
    progress_interval_s has passed (0 here: every step; the default is 30 s)."""
    monkeypatch.setattr(train_mod.Trainer, "progress_interval_s", 0.0)
    train(tiny(tmp_path, data_file, max_iters=3, eval_interval=2, progress=True))
    out, err = capsys.readouterr()
    assert "step 2: train loss" in out and "(mean of the last 2 steps)" in out
    assert "(mean of the last 1 step)" in out
    lines = [ln for ln in err.splitlines() if ln.startswith("train: step ")]
    assert [ln.split(",")[0] for ln in lines] == ["train: step 1/3", "train: step 2/3",
                                                   "train: step 3/3"]
    assert all("loss " in ln and "tok/s" in ln for ln in lines)
    monkeypatch.setattr(train_mod.Trainer, "progress_interval_s", 1e9)
    train(tiny(tmp_path / "b", data_file, max_iters=2, progress=True))
    assert "train: step " not in capsys.readouterr().err
    train(tiny(tmp_path / "c", data_file, max_iters=2, progress=False))   # asked for none
    assert "train: step " not in capsys.readouterr().err
