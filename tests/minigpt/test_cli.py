"""The ``minigpt`` command as a new user meets it: one-line errors with one set of exit codes,
both spellings of every flag, one set of sampling defaults, help for every flag, --version.

The subprocess tests run ``python -m minigpt`` and share one tiny checkpoint (module fixture).
"""
import importlib.metadata
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import minigrad as mg
from minigpt import bench, cli, sample as sample_mod, tracing
from minigpt import train as train_mod
from minigpt.checkpoint import CKPT_NAME
from minigpt.corpus import builtin_corpus
from minigpt.errors import ConfigError
from minigpt.train import TrainConfig, config_from_args

ROOT = Path(__file__).resolve().parents[2]
PARSERS = {"train": lambda: train_mod.build_parser(), "sample": lambda: sample_mod.build_parser(),
           "trace": lambda: tracing.build_parser(), "bench": lambda: bench.build_parser()}


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["MINIGRAD_DEVICE"] = "cpu"
    return env


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """One tiny trained checkpoint for every subprocess test of this file."""
    d = tmp_path_factory.mktemp("cli")
    data = d / "data.txt"
    data.write_text(builtin_corpus()[:12_000], encoding="utf-8")
    train_mod.train(TrainConfig(data=str(data), out_dir=str(d / "out"), n_layer=1, n_head=2,
                                n_embd=16, block_size=16, batch_size=4, vocab_size=280,
                                max_iters=2, eval_iters=1, num_samples=0, progress=False))
    return d / "out"


def run_many(cases, cwd):
    """Run ``python -m minigpt <argv>`` for every case at once; [(argv, CompletedProcess)]."""
    procs = [(argv, subprocess.Popen([sys.executable, "-m", "minigpt", *argv], cwd=cwd,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     encoding="utf-8", errors="replace", env=_env()))
             for argv in cases]
    results = []
    for argv, p in procs:
        out, err = p.communicate(timeout=300)
        results.append((argv, subprocess.CompletedProcess(argv, p.returncode, out, err)))
    return results


# ----------------------------------------------------------------------------- item 10
def test_bad_input_is_one_line_and_a_documented_exit_code(ckpt, tmp_path):
    """Every bad input, in every command: no traceback, one line `minigpt <cmd>: error: ...`,
    exit status 2 for usage (a flag or a setting) and 1 for a file or data problem."""
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / CKPT_NAME).write_bytes(b"\x08" + b"\x00" * 20)
    empty_json = tmp_path / "c.json"
    empty_json.write_text(json.dumps({"batchsize": 3}))
    out = ["--out", str(tmp_path / "trace_out")]
    usage = [
        ["trace", ""] + out,
        ["trace", "hi", "--top-p", "1.5"] + out,
        ["trace", "hi", "--top_p", "0"] + out,
        ["trace", "hi", "--temperature", "-2"] + out,
        ["trace", "hi", "--temperature", "inf"] + out,
        ["trace", "hi", "--top_k", "0"] + out,
        ["trace", "hi", "--graph-layer", "9", "--ckpt", str(ckpt)] + out,
        ["trace", "hi", "--graph_layer", "-1"] + out,
        ["trace", "hi", "--bogus"] + out,
        ["trace", "\udcff"] + out,                      # argv bytes that are not UTF-8
        ["trace", "hi", "--target", "\udcfe"] + out,
        ["sample", "--ckpt", str(ckpt), "--prompt", "a\udcff"],
        ["train", "--prompt", "\udcff", "--out_dir", str(tmp_path / "t")],
        ["sample", "--ckpt", str(ckpt), "--temperature", "nan"],
        ["sample", "--ckpt", str(ckpt), "--temperature", "-1"],
        ["sample", "--ckpt", str(ckpt), "--top-p", "1.5"],
        ["sample", "--ckpt", str(ckpt), "--top_k", "0"],
        ["sample", "--ckpt", str(ckpt), "--max-new-tokens", "x"],
        ["train", "--dropout", "2", "--out_dir", str(tmp_path / "t")],
        ["train", "--temperature", "inf", "--out_dir", str(tmp_path / "t")],
        ["train", "--top_p", "2", "--out_dir", str(tmp_path / "t")],
        ["train", "--n_layers", "2"],
        ["train", "--config", str(empty_json)],
        ["bench", "--configs", "nope"],
        ["trian"],
    ]
    failed = [
        ["sample", "--ckpt", str(tmp_path / "none")],
        ["sample", "--ckpt", str(garbage)],
        ["trace", "hi", "--ckpt", str(tmp_path / "none")] + out,
        ["train", "--resume", "--out_dir", str(tmp_path / "none")],
        ["train", "--data", str(tmp_path / "missing.txt"), "--out_dir", str(tmp_path / "t")],
    ]
    if not mg.cuda_is_available():
        usage += [["sample", "--ckpt", str(ckpt), "--device", "cuda"],
                  ["train", "--device", "cuda", "--out_dir", str(tmp_path / "t")],
                  ["bench", "--device", "cuda", "--no_torch"]]
    for want, cases in ((2, usage), (1, failed)):
        for argv, r in run_many(cases, tmp_path):
            err = r.stderr.strip()
            assert "Traceback" not in r.stderr + r.stdout, (argv, r.stderr)
            assert r.returncode == want, (argv, r.returncode, r.stderr)
            assert len(err.splitlines()) == 1, (argv, err)
            cmd = argv[0] if argv[0] in cli.COMMANDS else ""
            assert err.startswith(f"minigpt {cmd}: error: " if cmd else "minigpt: error: "), \
                (argv, err)
    assert not (tmp_path / "trace_out").exists()     # nothing written before the check failed


def test_error_messages_name_the_flag(ckpt, tmp_path):
    """The one line says what was wrong, with the flag's name as the user typed it."""
    out = ["--out", str(tmp_path / "o")]
    cases = [
        (["trace", ""] + out, "prompt to trace must be non-empty"),
        (["trace", "hi", "--top-p", "1.5"] + out, "--top_p must be a number in (0, 1]"),
        (["trace", "hi", "--graph-layer", "9"] + out, "--graph_layer must be a block"),
        (["trace", "hi", "-n", "x"] + out, "argument --max_new_tokens/-n: invalid int"),
        (["sample", "--ckpt", str(ckpt), "--temperature", "inf"], "--temperature must be a "
                                                                  "finite number"),
        (["train", "--n_layers", "2"], "unknown flag --n_layers; did you mean --n_layer?"),
        (["sample", "--top-pp", "2"], "unknown flag --top-pp; did you mean --top_p?"),
        (["trian"], "did you mean 'train'?"),
        (["sample", "--prompt", "ab\udcff"], "--prompt must be valid UTF-8 text, got the byte "
                                             "0xff at character 2"),
    ]
    results = run_many([argv for argv, _ in cases], tmp_path)
    for (argv, r), (_, want) in zip(results, cases):
        assert want in r.stderr, (argv, r.stderr)
        assert "usage:" not in r.stderr


def test_exit_codes_in_process(tmp_path, capsys):
    """The same mapping for the modules' own main() (scripts/*.py call those)."""
    assert sample_mod.main(["--ckpt", str(tmp_path), "--temperature", "inf"]) == 2
    assert "minigpt sample: error: --temperature must be" in capsys.readouterr().err
    assert tracing.main(["", "--out", str(tmp_path / "o")]) == 2
    assert "minigpt trace: error:" in capsys.readouterr().err
    assert cli.main(["sample", "--ckpt", str(tmp_path)]) == 1
    assert "no checkpoint" in capsys.readouterr().err


def test_interrupt_is_exit_130(capsys):
    def interrupted(argv):
        raise KeyboardInterrupt
    wrapped = cli.command("sample")(interrupted)
    assert wrapped([]) == 130
    assert capsys.readouterr().err.strip() == "minigpt sample: interrupted"


# ----------------------------------------------------------------------------- item 11
def _long_options(parser):
    return [(a, s) for a in parser._actions for s in a.option_strings if s.startswith("--")]


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_flag_takes_both_spellings_and_help_shows_one(name):
    parser = PARSERS[name]()
    help_text = parser.format_help()
    for action, flag in _long_options(parser):
        if flag in ("--help", "--version"):
            continue
        under, dash = "--" + flag[2:].replace("-", "_"), "--" + flag[2:].replace("-", "_") \
            .replace("_", "-")
        assert under in action.option_strings and dash in action.option_strings, flag
        if action.help != "==SUPPRESS==":
            assert under in help_text, under
            assert dash == under or dash not in help_text, f"{dash} shown in {name} --help"


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_flag_has_help(name):
    for action in PARSERS[name]()._actions:
        internal = any(s.endswith("probe") for s in action.option_strings)
        assert action.help and (action.help != "==SUPPRESS==" or internal), action.dest


def test_spellings_parse_the_same():
    assert config_from_args(["--max-iters", "7"]).max_iters == 7
    assert config_from_args(["--max_iters=8"]).max_iters == 8
    a = sample_mod.build_parser().parse_args(["--max-new-tokens", "5", "--top-k", "3"])
    b = sample_mod.build_parser().parse_args(["--max_new_tokens", "5", "--top_k", "3"])
    assert vars(a) == vars(b) and a.max_new_tokens == 5 and a.top_k == 3
    a = tracing.build_parser().parse_args(["p", "--max_new_tokens", "2", "--top_k", "4",
                                           "--graph_layer", "1", "--no_backward"])
    b = tracing.build_parser().parse_args(["p", "--max-new-tokens", "2", "--top-k", "4",
                                           "--graph-layer", "1", "--no-backward"])
    assert vars(a) == vars(b) and (a.max_new_tokens, a.top_k, a.graph_layer) == (2, 4, 1)


def test_sampling_defaults_are_defined_once():
    from minigpt import sampling
    d = sampling.DEFAULTS
    s = sample_mod.build_parser().parse_args([])
    t = tracing.build_parser().parse_args(["p"])
    c = TrainConfig()
    for name in ("temperature", "top_k", "top_p"):
        assert getattr(s, name) == getattr(t, name) == getattr(c, name) == getattr(d, name)
    assert s.seed == t.seed == d.seed
    assert s.max_new_tokens == c.sample_tokens == d.max_new_tokens
    assert s.num_samples == c.num_samples == d.num_samples
    assert t.max_new_tokens == sampling.TRACE_MAX_NEW_TOKENS


def test_trace_picks_the_tokens_sample_picks(ckpt, tmp_path):
    """With the default settings, `minigpt trace` generates the very tokens `minigpt sample`
    prints first (same temperature, filter and seeded generator)."""
    from minigpt import sampling
    (s_argv, s), (t_argv, t) = run_many([
        ["sample", "--ckpt", str(ckpt), "--prompt", "KING", "--max_new_tokens", "6",
         "--num_samples", "1"],
        ["trace", "KING", "--ckpt", str(ckpt), "-n", "6", "--no_check", "--no_backward", "-q",
         "--out", str(tmp_path / "t")]], tmp_path)
    assert s.returncode == 0 and t.returncode == 0, s.stderr + t.stderr
    traced = json.loads((tmp_path / "t" / "trace.json").read_text())
    assert traced["sampling"]["temperature"] == sampling.DEFAULTS.temperature
    assert s.stdout.split("\n---------------\n")[0] == "KING" + traced["generated_text"]


@pytest.mark.parametrize("kw, name", [
    (dict(temperature=math.inf), "temperature"), (dict(temperature=math.nan), "temperature"),
    (dict(temperature=-0.5), "temperature"), (dict(top_p=0.0), "top_p"),
    (dict(top_p=1.01), "top_p"), (dict(top_p=math.nan), "top_p"), (dict(top_k=0), "top_k"),
    (dict(top_k=2.5), "top_k"), (dict(max_new_tokens=-1), "max_new_tokens"),
    (dict(seed=-3), "seed"), (dict(temperature=True), "temperature")])
def test_one_sampling_check(kw, name):
    from minigpt import sampling
    with pytest.raises(ConfigError, match=f"^sample: {name} must be"):
        sampling.check_sampling_settings(**kw)
    with pytest.raises(ConfigError, match=f"^--{name} must be"):
        sampling.check_sampling_settings(**kw, where="--")
    train_name = "sample_tokens" if name == "max_new_tokens" else name
    if name != "seed" and not isinstance(kw.get("top_k"), float):
        with pytest.raises(ConfigError, match=f"TrainConfig.{train_name} must be"):
            TrainConfig(**{train_name: v for v in kw.values()})


def test_train_takes_top_p_and_uses_it(tmp_path, monkeypatch):
    c = config_from_args(["--top_p", "0.9", "--top-k", "5"])
    assert c.top_p == 0.9 and c.top_k == 5
    seen = {}

    def fake_sample(model, tok, prompt, n, temperature, top_k, top_p, *a, **kw):
        seen.update(temperature=temperature, top_k=top_k, top_p=top_p)
        return []
    monkeypatch.setattr(sample_mod, "sample", fake_sample)
    data = tmp_path / "d.txt"
    data.write_text(builtin_corpus()[:12_000], encoding="utf-8")
    train_mod.train(TrainConfig(data=str(data), out_dir=str(tmp_path / "o"), n_layer=1,
                                n_head=2, n_embd=16, block_size=16, batch_size=2,
                                vocab_size=280, max_iters=1, eval_iters=1, num_samples=1,
                                sample_tokens=3, top_p=0.5, progress=False))
    assert seen == dict(temperature=0.8, top_k=None, top_p=0.5)


def test_did_you_mean_is_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        config_from_args(["--n_layers", "2"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and len(err.strip().splitlines()) == 1
    assert "did you mean --n_layer?" in err and "usage" not in err


def test_version_and_help(capsys):
    assert cli.main(["--version"]) == 0
    want = importlib.metadata.version("minigrad-minigpt")
    assert capsys.readouterr().out.strip() == f"minigpt {want}"
    assert cli.main(["--help"]) == 0
    text = capsys.readouterr().out
    for name in ("train", "sample", "trace", "bench"):
        assert f"\n  {name} " in text
    assert "exit status" in text and "--version" in text
    assert cli.main([]) == 2                        # no command: the help, as a usage error
    assert "train" in capsys.readouterr().err


def test_version_fallback_when_not_installed(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)
    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert cli.version() == "unknown (not installed)"
