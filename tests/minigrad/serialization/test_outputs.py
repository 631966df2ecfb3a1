"""Every file the packages write: atomically, never through a planted symbolic link, with the
mode open() would give (the umask) or the mode of the file it replaces, and temp files of
killed writers cleaned up (issue 17, items 8 and 9).

The umask is set explicitly by a fixture and restored; stale temp files are made stale by
setting their mtime, never by waiting.
"""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minigrad import fileio, serialization
from minigrad.errors import OutputPathError
from minigpt.corpus import builtin_corpus
from minigpt.errors import PROJECT_ERRORS
from minigpt.train import CSVLog, TrainConfig, plot_log, train

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes and links")


@pytest.fixture
def umask():
    """Set the umask for one test (returns a setter); the old one is restored after."""
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _victim(tmp_path) -> Path:
    v = tmp_path / "victim.txt"
    v.write_text("precious\n")
    return v


# ----------------------------------------------------------------------------- modes
@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002, 0o027])
def test_new_files_honour_the_umask(tmp_path, umask, mask):
    umask(mask)
    path = tmp_path / "x.bin"
    fileio.atomic_write(path, b"data")
    assert _mode(path) == 0o666 & ~mask
    with fileio.open_append(tmp_path / "log.csv") as f:
        f.write("a\n")
    assert _mode(tmp_path / "log.csv") == 0o666 & ~mask


@pytest.mark.parametrize("mode", [0o640, 0o444, 0o600, 0o664, 0o755])
def test_a_replaced_file_keeps_its_mode(tmp_path, umask, mode):
    umask(0o022)
    path = tmp_path / "x.bin"
    path.write_bytes(b"old")
    os.chmod(path, mode)
    fileio.atomic_write(path, b"new")
    assert path.read_bytes() == b"new" and _mode(path) == mode


def test_setuid_bits_are_not_carried_over(tmp_path, umask):
    path = tmp_path / "x.bin"
    path.write_bytes(b"old")
    os.chmod(path, 0o4755)
    fileio.atomic_write(path, b"new")
    assert _mode(path) == 0o755


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("d") / "data.txt"
    p.write_text(builtin_corpus()[:6000], encoding="utf-8")
    return p


def _tiny(out, data_file, **kw):
    return TrainConfig(**{**dict(data=str(data_file), out_dir=str(out), n_layer=1, n_head=1,
                                 n_embd=8, block_size=8, batch_size=2, vocab_size=270,
                                 max_iters=2, eval_iters=1, eval_interval=2,
                                 checkpoint_interval=2, num_samples=0, progress=False,
                                 health_interval=1), **kw})


def test_every_file_of_a_training_run_and_a_trace_honours_the_umask(tmp_path, data_file,
                                                                     umask):
    """A whole run (checkpoint, tokenizer, log.csv, health.csv, loss.png, the cache) and a
    trace (trace.json, trace.html, block.dot), under two umasks: no file is 0600."""
    from minigpt import tracing
    from minigpt.checkpoint import load_checkpoint
    for mask in (0o022, 0o002):
        umask(mask)
        out = tmp_path / f"run{mask:o}"
        train(_tiny(out, data_file))
        ck = load_checkpoint(out)
        model = ck.build_model()
        tok = ck.tokenizer()
        t = tracing.trace(model, tok, "To be", check=False)
        tracing.write_trace_files(out / "trace", t, tracing.block_graph(model, tok, "To be"))
        files = [p for p in out.rglob("*") if p.is_file()]
        names = {p.name for p in files}
        assert {"ckpt.safetensors", "tokenizer.txt", "log.csv", "health.csv", "train.bin",
                "train.json", "trace.json", "trace.html", "block.dot"} <= names, names
        wrong = {p.name: oct(_mode(p)) for p in files if _mode(p) != 0o666 & ~mask}
        assert not wrong, wrong


def test_tokenizer_and_pretrained_writers_honour_the_umask(tmp_path, umask):
    from minigpt.model import GPT, GPTConfig
    from minigpt.tokenizer import CharTokenizer, Tokenizer
    umask(0o002)
    tok = Tokenizer.train("hello world " * 20, 265, special_tokens=["<|endoftext|>"])
    tok.save(tmp_path / "t.bpe")
    tok.save_tiktoken(tmp_path / "t.tiktoken")
    tok.save_gpt2(tmp_path / "encoder.json", tmp_path / "vocab.bpe")
    CharTokenizer.train("abc").save(tmp_path / "t.char")
    GPT(GPTConfig(vocab_size=8, block_size=4, n_layer=1, n_head=1, n_embd=4)).save_pretrained(
        tmp_path / "pre")
    serialization.save_optimizer_state({"state": {}, "param_groups": []}, tmp_path / "o.st")
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 8
    assert {p.name: oct(_mode(p)) for p in files if _mode(p) != 0o664} == {}


# ----------------------------------------------------------------------------- symlinks
def test_atomic_write_replaces_a_symlink_never_its_target(tmp_path, umask):
    """The documented rule: a symbolic link at an output path is replaced by the new file
    (a regular file, the umask's mode); the file it pointed to is left untouched."""
    victim = _victim(tmp_path)
    os.chmod(victim, 0o600)
    out = tmp_path / "out"
    out.mkdir()
    for name in ("trace.json", "ckpt.safetensors"):
        (out / name).symlink_to(victim)
        fileio.atomic_write(out / name, b"new")
        assert not (out / name).is_symlink() and (out / name).read_bytes() == b"new"
        assert _mode(out / name) == 0o644              # not the target's 0600
    assert victim.read_text() == "precious\n" and _mode(victim) == 0o600


def test_appends_refuse_symlinks_fifos_and_folders(tmp_path):
    victim = _victim(tmp_path)
    (tmp_path / "link.csv").symlink_to(victim)
    (tmp_path / "dangling.csv").symlink_to(tmp_path / "nowhere.csv")
    os.mkfifo(tmp_path / "fifo.csv")
    (tmp_path / "dir.csv").mkdir()
    for name in ("link.csv", "dangling.csv", "fifo.csv", "dir.csv"):
        with pytest.raises(OutputPathError, match="refusing to append") as info:
            fileio.open_append(tmp_path / name)
        assert isinstance(info.value, PROJECT_ERRORS) and isinstance(info.value, OSError)
    assert victim.read_text() == "precious\n"
    assert not (tmp_path / "nowhere.csv").exists()


def test_planted_links_in_a_run_folder_are_never_written_through(tmp_path, data_file, umask):
    """health.csv appended to through a planted link: refused (a project error), the target
    untouched. log.csv, tokenizer.txt, ckpt.safetensors and loss.png links: replaced."""
    victim = _victim(tmp_path)
    out = tmp_path / "run"
    out.mkdir()
    for name in ("log.csv", "tokenizer.txt", "ckpt.safetensors", "loss.png"):
        (out / name).symlink_to(victim)
    train(_tiny(out, data_file, health_interval=0))
    for name in ("log.csv", "tokenizer.txt", "ckpt.safetensors"):
        assert not (out / name).is_symlink(), name
    assert victim.read_text() == "precious\n"
    (out / "health.csv").symlink_to(victim)
    with pytest.raises(OutputPathError, match="health.csv"):
        train(_tiny(out, data_file))
    assert victim.read_text() == "precious\n"


def test_csv_log_appends_never_follow_a_link_planted_after_the_header(tmp_path):
    victim = _victim(tmp_path)
    real_open_append = fileio.open_append

    def plant_then_open(path, *a, **kw):      # the race: a link appears between the two
        os.replace(path, tmp_path / "moved.csv")
        Path(path).symlink_to(victim)
        return real_open_append(path, *a, **kw)

    fileio.open_append = plant_then_open
    try:
        with pytest.raises(OutputPathError):
            CSVLog(tmp_path / "log.csv")
    finally:
        fileio.open_append = real_open_append
    assert victim.read_text() == "precious\n"


def test_trace_outputs_replace_planted_links_and_keep_modes(tmp_path, umask):
    from minigpt import tracing
    victim = _victim(tmp_path)
    out = tmp_path / "trace"
    out.mkdir()
    (out / "trace.json").symlink_to(victim)
    (out / "trace.html").symlink_to(victim)
    (out / "block.dot").write_text("old")
    os.chmod(out / "block.dot", 0o640)
    model, tok = tracing.fresh_model(vocab_size=260, n_layer=1, n_head=1, n_embd=8,
                                     block_size=8)
    t = tracing.trace(model, tok, "ab", check=False)
    tracing.write_trace_files(out, t, "digraph {}\n")
    assert victim.read_text() == "precious\n"
    assert (out / "trace.json").read_text().startswith("{")
    assert not (out / "trace.html").is_symlink() and _mode(out / "trace.html") == 0o644
    assert (out / "block.dot").read_text() == "digraph {}\n" and _mode(out / "block.dot") == 0o640


def test_plot_and_viz_render_write_atomically(tmp_path, umask):
    pytest.importorskip("matplotlib")
    victim = _victim(tmp_path)
    log = tmp_path / "log.csv"
    log.write_text("step,loss,lr,grad_norm,tokens_per_s,elapsed_s,val_loss\n1,2.0,0.1,1,1,1,\n"
                   "2,1.5,0.1,1,1,1,1.7\n")
    (tmp_path / "loss.png").symlink_to(victim)
    assert plot_log(log, tmp_path / "loss.png") == tmp_path / "loss.png"
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert victim.read_text() == "precious\n"


# ----------------------------------------------------------------------------- stale temps
def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temp_files_of_killed_writers_are_removed_and_nothing_else(tmp_path):
    host, dead, alive = fileio._HOST, _dead_pid(), os.getpid()
    other_host = "0badc0de" if host != "0badc0de" else "0badc0df"
    old = 1_000_000_000            # 2001: far older than STALE_AFTER_S, whatever the clock
    cases = {   # name -> (mtime is old, removed?)
        f".ckpt.safetensors.{host}-{dead}-a1b2c3d4.tmp": (True, True),
        f".log.csv.{other_host}-{alive}-a1b2c3d4.tmp": (True, True),       # other host: age
        f".ckpt.safetensors.{host}-{dead}-00000000.tmp": (False, False),  # young
        f".ckpt.safetensors.{host}-{alive}-a1b2c3d4.tmp": (True, False),  # writer alive
        ".ckpt.safetensors.k3j4h5g6.tmp": (True, False),                # not our pattern
        "ckpt.safetensors.tmp": (True, False),
        f"notes.{host}-{dead}-a1b2c3d4.tmp": (True, False),               # no leading dot
        f".x.{host}-{dead}-a1b2c3d4.tmp.bak": (True, False),
        f".x.{host}-{dead}-A1B2C3D4.tmp": (True, False),
    }
    for name, (is_old, _) in cases.items():
        (tmp_path / name).write_bytes(b"partial")
        if is_old:
            os.utime(tmp_path / name, (old, old))
    link = tmp_path / f".link.{host}-{dead}-a1b2c3d4.tmp"
    link.symlink_to(tmp_path / "ckpt.safetensors.tmp")
    os.utime(link, (old, old), follow_symlinks=False)
    folder = tmp_path / f".dir.{host}-{dead}-a1b2c3d4.tmp"
    folder.mkdir()
    os.utime(folder, (old, old))
    serialization.save({"w": np.zeros(2)}, tmp_path / "ckpt.safetensors")   # the next write
    left = {p.name for p in tmp_path.iterdir()}
    for name, (_, removed) in cases.items():
        assert (name not in left) == removed, name
    assert link.name in left and folder.name in left and "ckpt.safetensors" in left


def test_temp_names_match_the_cleanup_pattern_and_fit_long_names(tmp_path):
    long, wide = "n" * 250, "é" * 120             # 250 bytes; 240 bytes in 120 characters
    for name in (long, wide):
        fileio.atomic_write(tmp_path / name, b"x")
        assert (tmp_path / name).read_bytes() == b"x"
        assert len(os.fsencode(fileio._temp_name(tmp_path / name))) < 255
    name = fileio._temp_name(tmp_path / "ckpt.safetensors")
    assert fileio._TEMP.fullmatch(name) and name.startswith(".ckpt.safetensors.")
    assert len(fileio._temp_name(tmp_path / long).encode()) < 255
