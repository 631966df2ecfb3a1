"""Train a GPT: a config dataclass, a model-agnostic ``Trainer`` loop and ``train(config)``.

    minigpt train                                   # built-in corpus, ~5 minutes on 2 cores
    minigpt train --data ../shared/data/tinyshakespeare.txt --tokenizer char --max_iters 2000
    minigpt train --config my.toml --n_layer=6      # flags override the file
    minigpt train --resume --max_iters 3000         # continue out/ckpt.safetensors (minigpt.resume)
    mpiexec -n 2 minigpt train --ddp --batch_size 16   # data-parallel: global batch 2 x 16

    from minigpt.train import TrainConfig, train
    result = train(TrainConfig(max_iters=200, out_dir="run1"))
    result.val_loss, result.checkpoint_path

``train`` prepares the data (``minigpt.data``), builds ``GPT`` and AdamW, and hands them to
``Trainer``, which knows nothing about GPTs: it calls ``model(x, y) -> (logits, loss)`` on
batches from a sampler, steps the optimizer, evaluates, logs and calls a ``save`` function.
One optimizer step is::

    lr = schedule(step + 1)                       set on every parameter group
    for each of grad_accum_steps micro-batches:   forward, (loss / accum).backward()
    loss = sync_gradients(loss)                   (DDP: mean gradients and loss over ranks)
    grad_norm = clip_grad_norm_(params, grad_clip)
    optimizer.step(); optimizer.zero_grad()

Only the main process (rank 0) logs, saves and samples; under DDP (``minigpt.ddp``, README "Data-parallel training on MPI")
every rank evaluates its shard of each validation batch and the mean is reported, so the
validation loss equals that of one process with the global batch. Every step's loss goes to
``<out_dir>/log.csv``; checkpoints go to ``<out_dir>/ckpt.safetensors`` every
``checkpoint_interval`` steps, at the end and on Ctrl-C; ``<out_dir>/loss.png`` is drawn at
the end. Resuming restores weights, optimizer moments, RNG state and the data cursor, so the
losses after a resume equal, bit for bit, those of an uninterrupted run on the same machine.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import difflib
import inspect
import io
import json
import math
import re
import signal
import sys
import threading
import time
import typing
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

import minigrad as mg
from minigrad import backend, fileio, serialization
from minigrad.optim import AdamW, clip_grad_norm_, cosine_with_warmup, weight_decay_groups

from .checkpoint import CKPT_NAME, Checkpoint, load_checkpoint, save_checkpoint
from .cli import ArgumentParser, command, require_device
from .errors import CheckpointError, ConfigError
from .model import GPT, GPTConfig
from .resume import SCHEDULE_FIELDS, resolved_paths, resume_command, resume_settings
from .sampling import DEFAULTS as SAMPLING, check_prompt, check_sampling_settings


# ============================================================================= config
@dataclass
class TrainConfig:
    # ---- model
    n_layer: int = 4                  # transformer blocks
    n_head: int = 4                   # attention heads per block (must divide n_embd)
    n_embd: int = 128                 # width of the residual stream
    block_size: int = 64              # context length in tokens
    dropout: float = 0.0              # dropout probability while training, in [0, 1)
    bias: bool = True                 # biases in Linear and LayerNorm layers, as GPT-2
    # ---- data
    data: str | None = None           # UTF-8 text file to train on; None: the built-in corpus
    tokenizer: str = "bpe"            # "bpe" (byte-level, trained on the train split) or "char"
    vocab_size: int = 512             # BPE vocabulary size (256 bytes + merges + <|endoftext|>)
    val_fraction: float = 0.1         # the last fraction of the text (in characters) is validation
    cache_dir: str | None = None      # token-id and tokenizer cache; None: <out_dir>/cache
    # ---- optimization
    batch_size: int = 32              # sequences per micro-batch
    grad_accum_steps: int = 1         # micro-batches per optimizer step
    max_iters: int = 1000             # optimizer steps in total (a resumed run counts on)
    learning_rate: float = 1e-3       # peak learning rate (the constant one if decay_lr is false)
    min_lr: float = 1e-4              # learning rate at the end of the cosine decay
    warmup_iters: int = 100           # linear warmup steps (capped at lr_decay_iters; with decay_lr)
    lr_decay_iters: int = 0           # steps of warmup + cosine decay; 0: max_iters
    decay_lr: bool = True             # warmup + cosine decay; false: constant learning_rate
    weight_decay: float = 0.1         # AdamW decoupled weight decay on matrices (dim >= 2)
    beta1: float = 0.9                # AdamW beta1
    beta2: float = 0.99               # AdamW beta2
    grad_clip: float = 1.0            # clip the global gradient norm to this; 0: no clipping
    # ---- evaluation, logging and checkpoints
    eval_interval: int = 250          # validation loss every this many steps (and at the end)
    eval_iters: int = 20              # batches averaged per validation loss
    checkpoint_interval: int = 250    # checkpoint every this many steps (and at the end, on Ctrl-C)
    out_dir: str = "out"              # checkpoint, tokenizer, log.csv and loss.png go here
    device: str = "cpu"               # "cpu" or "cuda"
    seed: int = 1337                  # seeds the weights, dropout and the batch order
    resume: bool = False              # continue from <out_dir>/ckpt.safetensors
    progress: bool = True             # show a tqdm progress bar
    health_interval: int = 0          # every N steps, per-layer health printed and added to health.csv; 0: off
    # ---- data-parallel training (README: "Data-parallel training on MPI")
    ddp: bool = False                 # data-parallel over MPI ranks; batch_size is per rank
    ddp_check_interval: int = 100     # under ddp, compare the ranks' weights every this many steps
    # ---- samples printed at the end
    # (defaults from minigpt.sampling, shared with `minigpt sample` and `minigpt trace`)
    num_samples: int = SAMPLING.num_samples       # samples printed after training; 0: none
    sample_tokens: int = SAMPLING.max_new_tokens  # tokens per sample
    prompt: str = ""                  # text the samples continue; "": start of a document
    temperature: float = SAMPLING.temperature     # sampling temperature; 0: greedy
    top_k: int | None = SAMPLING.top_k            # sample among the k most likely tokens; None: all
    top_p: float | None = SAMPLING.top_p          # nucleus: tokens up to probability p; None: all

    def __post_init__(self):
        for f in fields(self):
            setattr(self, f.name, _check_type(f.name, getattr(self, f.name), "TrainConfig."))
        _validate(self)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> "TrainConfig":
        """A config from a dict; unknown keys and wrong types are ConfigErrors naming the key."""
        check_keys(d, source)
        return cls(**d)

    def model_config(self, vocab_size: int) -> GPTConfig:
        return GPTConfig(vocab_size=vocab_size, block_size=self.block_size, n_layer=self.n_layer,
                         n_head=self.n_head, n_embd=self.n_embd, dropout=self.dropout,
                         bias=self.bias)


MODEL_FIELDS = ("n_layer", "n_head", "n_embd", "block_size", "bias")


def _field_types() -> dict[str, tuple[type, bool]]:
    """{name: (base type, None allowed)} from the annotations."""
    hints = typing.get_type_hints(TrainConfig)
    out = {}
    for f in fields(TrainConfig):
        t = hints[f.name]
        args = typing.get_args(t)
        if args:
            base = [a for a in args if a is not type(None)]
            out[f.name] = (base[0], type(None) in args)
        else:
            out[f.name] = (t, False)
    return out


def _type_name(name: str) -> str:
    base, optional = FIELD_TYPES[name]
    return base.__name__ + (" or null" if optional else "")


def _check_type(name: str, value, where: str = ""):
    """``value`` as the field's type (an int is accepted for a float); else ConfigError."""
    base, optional = FIELD_TYPES[name]
    if value is None and optional:
        return None
    ok = (isinstance(value, base) and not (isinstance(value, bool) and base is not bool))
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        ok, value = True, float(value)
    if base is int and isinstance(value, np.integer):
        ok, value = True, int(value)
    if not ok:
        raise ConfigError(f"{where}{name} must be {_type_name(name)}, got "
                          f"{type(value).__name__} {value!r}")
    return value


def _validate(c: TrainConfig) -> None:
    def need(ok, name, expected):
        if not ok:
            raise ConfigError(f"TrainConfig.{name} must be {expected}, got {getattr(c, name)!r}")

    for name in ("n_layer", "n_head", "n_embd", "block_size", "batch_size", "grad_accum_steps",
                 "max_iters", "eval_interval", "eval_iters", "checkpoint_interval",
                 "ddp_check_interval"):
        need(getattr(c, name) > 0, name, "a positive int")
    if c.n_embd % c.n_head:
        raise ConfigError(f"TrainConfig.n_embd must be divisible by n_head ({c.n_head}), got "
                          f"{c.n_embd}")
    need(0 <= c.dropout < 1, "dropout", "in [0, 1)")
    need(c.tokenizer in ("bpe", "char"), "tokenizer", "'bpe' or 'char'")
    need(c.vocab_size >= 257, "vocab_size", ">= 257 (256 bytes + <|endoftext|>)")
    need(c.vocab_size <= 2 ** 32, "vocab_size", "<= 2**32")
    need(0 < c.val_fraction < 1, "val_fraction", "in (0, 1)")
    need(c.data is None or c.data != "", "data", "a file path or null (the built-in corpus)")
    need(math.isfinite(c.learning_rate) and c.learning_rate > 0, "learning_rate", "> 0")
    need(0 <= c.min_lr <= c.learning_rate, "min_lr", f"in [0, learning_rate={c.learning_rate}]")
    need(c.warmup_iters >= 0, "warmup_iters", ">= 0")
    need(c.lr_decay_iters >= 0, "lr_decay_iters", ">= 0 (0: max_iters)")
    need(c.weight_decay >= 0, "weight_decay", ">= 0")
    need(0 <= c.beta1 < 1, "beta1", "in [0, 1)")
    need(0 <= c.beta2 < 1, "beta2", "in [0, 1)")
    need(c.grad_clip >= 0, "grad_clip", ">= 0 (0: no clipping)")
    need(c.health_interval >= 0, "health_interval", ">= 0 (0: off)")
    need(c.out_dir != "", "out_dir", "a directory path")
    for name in ("data", "out_dir", "cache_dir"):
        need(getattr(c, name) is None or "\0" not in str(getattr(c, name)), name,
             "a path without NUL characters")
    need(c.device in ("cpu", "cuda"), "device", "'cpu' or 'cuda'")
    need(c.seed >= 0, "seed", "a non-negative int")
    need(c.num_samples >= 0, "num_samples", ">= 0")
    check_prompt(c.prompt, "TrainConfig.prompt")
    check_sampling_settings(max_new_tokens=c.sample_tokens, temperature=c.temperature,
                            top_k=c.top_k, top_p=c.top_p, where="TrainConfig.",
                            names={"max_new_tokens": "sample_tokens"})


FIELD_TYPES = _field_types()
FIELD_NAMES = tuple(FIELD_TYPES)


def field_docs() -> dict[str, tuple[str, str]]:
    """{field: (group, comment)} read from TrainConfig's source (the comment on each field)."""
    try:
        src = inspect.getsource(TrainConfig)
    except (OSError, TypeError):   # no source (frozen app): no help texts
        return {name: ("options", "") for name in FIELD_NAMES}
    docs, group = {}, "options"
    for line in src.splitlines():
        m = re.match(r"\s+# ---- (.+)$", line)
        if m:
            group = m.group(1).strip()
            continue
        m = re.match(r"\s+(\w+): [^=]+=.*?#\s*(.+)$", line)
        if m and m.group(1) in FIELD_TYPES:
            docs[m.group(1)] = (group, m.group(2).strip())
    return docs


def check_keys(d: dict, source: str) -> None:
    """ConfigError for a key TrainConfig does not have (with a suggestion) or a wrong type."""
    if not isinstance(d, dict):
        raise ConfigError(f"{source}: expected a table of settings, got {type(d).__name__}")
    for key, value in d.items():
        if key not in FIELD_TYPES:
            close = difflib.get_close_matches(str(key), FIELD_NAMES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{source}: unknown key {key!r}{hint}; known keys: "
                              f"{', '.join(FIELD_NAMES)}")
        _check_type(key, value, f"{source}: key ")


def load_config_file(path) -> dict:
    """The settings in a JSON (.json) or TOML (.toml) file, checked against TrainConfig:
    an unknown key or a value of the wrong type is a ConfigError naming the file and key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {exc}") from None
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            d = json.loads(text)
        except (ValueError, RecursionError) as exc:   # incl. JSONDecodeError, huge ints
            raise ConfigError(f"{path}: not valid JSON: {exc}") from None
    elif suffix == ".toml":
        try:
            import tomllib
        except ImportError:   # Python 3.10
            try:
                import tomli as tomllib
            except ImportError:
                raise ConfigError(f"{path}: TOML needs Python >= 3.11 (or `pip install "
                                  "tomli`); use a .json file instead") from None
        try:
            d = tomllib.loads(text)
        except (ValueError, RecursionError) as exc:   # incl. TOMLDecodeError, huge ints
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    else:
        raise ConfigError(f"config file {str(path)!r}: expected a .json or .toml file")
    check_keys(d, str(path))
    return d


# ============================================================================= command line
def _parse_bool(s: str) -> bool:
    v = s.strip().lower()
    if v in ("true", "1", "yes", "on"):
        return True
    if v in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false/1/0, got {s!r}")


def _cli_type(name: str):
    base, optional = FIELD_TYPES[name]
    conv = _parse_bool if base is bool else base

    def parse(s: str):
        if optional and s.strip().lower() in ("none", "null"):
            return None
        try:
            return conv(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {_type_name(name)}, got {s!r}") from None
    parse.__name__ = base.__name__
    return parse


RESUME_FLAGS = {   # flags of `--resume` only, not TrainConfig fields (see minigpt.resume)
    "trust_checkpoint_paths": "follow the data and cache paths stored in the checkpoint "
                              "without --data / --cache_dir (default: false)",
    "reschedule": "lay a new warmup + cosine schedule over the new --max_iters instead of "
                  "continuing the checkpoint's (default: false: past the old end, min_lr)",
}


def build_parser() -> ArgumentParser:
    """One flag per TrainConfig field (``--n_layer 4``, ``--n_layer=4``, ``--n-layer 4``),
    plus ``--config FILE`` and the resume flags. Flags left out are absent from the parsed
    namespace."""
    p = ArgumentParser(
        prog="minigpt train",
        description="Train a GPT (default: the built-in corpus, about 5 minutes on 2 CPU "
                    "cores), then print samples. Settings come from the defaults, then "
                    "--config FILE, then the flags; with --resume, the checkpoint's settings "
                    "replace the defaults, except its paths and lr schedule (README: Stop, "
                    "resume, and what is never lost).")
    p.add_argument("--config", metavar="FILE", help="JSON or TOML file of settings (the "
                   "field names below, without dashes)")
    defaults = TrainConfig.__dataclass_fields__
    groups = {}
    for name, (group, doc) in field_docs().items():
        g = groups.get(group) or groups.setdefault(group, p.add_argument_group(group))
        base, _ = FIELD_TYPES[name]
        default = defaults[name].default
        metavar = {bool: "BOOL", int: "INT", float: "FLOAT", str: "STR"}[base]
        extra = dict(nargs="?", const=True) if base is bool else {}   # `--resume` = true
        g.add_argument(f"--{name}", dest=name, type=_cli_type(name), default=argparse.SUPPRESS,
                       metavar=metavar, help=f"{doc} (default: {default!r})".replace("%", "%%"),
                       **extra)
    g = p.add_argument_group("resume")
    for name, doc in RESUME_FLAGS.items():
        g.add_argument(f"--{name}", type=_parse_bool, nargs="?", const=True, metavar="BOOL",
                       default=False, help=doc)
    return p


def config_from_args(argv=None) -> TrainConfig:
    """TrainConfig from defaults < checkpoint (with --resume) < --config file < flags; with
    --resume, the checkpoint's paths and lr schedule follow minigpt.resume's rules."""
    args = vars(build_parser().parse_args(argv))
    flags = {name: args.pop(name) for name in RESUME_FLAGS}
    config_file = args.pop("config", None)
    values = load_config_file(config_file) if config_file else {}
    values.update(args)
    if not values.get("resume"):
        if any(flags.values()):
            raise ConfigError(f"--{next(k for k, v in flags.items() if v)} applies only with "
                              "--resume")
        return TrainConfig(**values)
    out_dir = values.get("out_dir", TrainConfig.out_dir)
    saved = _checkpoint_train_config(Path(out_dir) / CKPT_NAME)
    values = resume_settings(values, saved, out_dir=out_dir,
                             trust_paths=flags["trust_checkpoint_paths"],
                             reschedule=flags["reschedule"], log=_log)
    return TrainConfig(**values)


def _checkpoint_train_config(path: Path) -> dict:
    try:
        meta = serialization.load_metadata(path)
        saved = json.loads(meta["train_config"])
    except FileNotFoundError:
        raise CheckpointError(f"--resume: no checkpoint at {str(path)!r}") from None
    except (serialization.SerializationError, KeyError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"--resume: checkpoint {str(path)!r} is corrupted or not a "
                              f"training checkpoint: {exc}") from None
    if not isinstance(saved, dict):
        raise CheckpointError(f"--resume: checkpoint {str(path)!r} holds a train_config that is "
                              f"not a JSON object but {type(saved).__name__}")
    known = {k: v for k, v in saved.items() if k in FIELD_TYPES and k != "resume"}
    try:
        check_keys(known, f"{path} (train_config)")
    except ConfigError as exc:          # a damaged file, not a bad flag
        raise CheckpointError(f"--resume: {exc}") from None
    return known


@command("train")
def main(argv=None) -> int:
    """``minigpt train`` / ``scripts/train.py``. Returns the exit status (minigpt.cli:
    errors are one line; Ctrl-C saves a checkpoint, prints the command that continues the
    run and exits with 0)."""
    config = config_from_args(argv)
    result = train(config)
    if result.interrupted and result.rank == 0:
        print(f"interrupted at step {result.steps}; checkpoint saved to "
              f"{result.checkpoint_path}; continue with:\n  {resume_command(config)}")
    return 0


# ============================================================================= the loop
def scheduled_lr(c: TrainConfig, step: int) -> float:
    """The learning rate of optimizer update ``step`` (1-based) under ``c``'s schedule."""
    if not c.decay_lr:
        return c.learning_rate
    decay = c.lr_decay_iters or c.max_iters
    return cosine_with_warmup(step, max_lr=c.learning_rate,
                              warmup_steps=min(c.warmup_iters, decay),   # short runs
                              max_steps=decay, min_lr=c.min_lr)


@dataclass
class TrainResult:
    train_loss: float             # mean loss on train-split batches at the end (eval mode)
    val_loss: float               # mean loss on validation batches at the end
    steps: int                    # optimizer steps done (including those before a resume)
    steps_run: int                # optimizer steps done by this call
    wall_time_s: float            # seconds this call took, from start to return
    train_time_s: float           # seconds spent in the training loop (steps, evals, saves)
    tokens_per_s: float           # training tokens per second over this call's steps
    checkpoint_path: str          # <out_dir>/ckpt.safetensors
    log_path: str                 # <out_dir>/log.csv
    plot_path: str | None         # <out_dir>/loss.png (None if matplotlib is missing)
    tokenizer_path: str           # <out_dir>/tokenizer.txt
    interrupted: bool = False     # stopped by Ctrl-C (a checkpoint was saved)
    samples: list = field(default_factory=list)   # the samples printed at the end
    rank: int = 0                 # this process's rank under DDP (0: the one that logs)


LOG_COLUMNS = ("step", "loss", "lr", "grad_norm", "tokens_per_s", "elapsed_s", "val_loss")


class CSVLog:
    """``log.csv``: one row per optimizer step; ``val_loss`` is blank except at evaluations.
    Resuming keeps the rows up to the checkpoint's step and appends after them."""

    def __init__(self, path: Path, resume_step: int | None = None):
        self.path = path
        rows = read_log(path) if resume_step is not None and path.is_file() else []
        rows = [r for r in rows if int(r["step"]) <= (resume_step or 0)]
        text = io.StringIO(newline="")
        w = csv.DictWriter(text, LOG_COLUMNS)
        w.writeheader()
        w.writerows(rows)
        serialization.atomic_write(path, text.getvalue().encode("utf-8"))
        self._f = fileio.open_append(path)     # never through a link planted since
        self._w = csv.writer(self._f)

    def write(self, step, loss, lr, grad_norm, tokens_per_s, elapsed_s, val_loss=None):
        self._w.writerow([step, repr(float(loss)), repr(float(lr)), repr(float(grad_norm)),
                          f"{tokens_per_s:.1f}", f"{elapsed_s:.3f}",
                          "" if val_loss is None else repr(float(val_loss))])
        self._f.flush()

    def close(self):
        self._f.close()


def read_log(path) -> list[dict]:
    """The rows of a log.csv as dicts of strings (an unreadable last line is dropped)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, csv.Error, UnicodeDecodeError):
        return []
    good = []
    for r in rows:   # a run killed mid-write may leave a partial last line
        try:
            int(r["step"]), float(r["loss"])
            good.append(r)
        except (KeyError, TypeError, ValueError):
            break
    return good


def plot_log(log_path, png_path) -> Path | None:
    """Draw the training and validation loss of a log.csv into a PNG (atomically)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    rows = read_log(log_path)
    if not rows:
        return None
    steps = np.array([int(r["step"]) for r in rows])
    loss = np.array([float(r["loss"]) for r in rows])
    val = [(int(r["step"]), float(r["val_loss"])) for r in rows if r.get("val_loss")]
    fig = Figure(figsize=(7, 4.2), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(steps, loss, lw=0.6, alpha=0.35, color="C0", label="train (each step)")
    if len(loss) >= 10:
        w = max(2, len(loss) // 50)
        smooth = np.convolve(loss, np.ones(w) / w, mode="valid")
        ax.plot(steps[w - 1:], smooth, lw=1.5, color="C0", label=f"train ({w}-step mean)")
    if val:
        vs, vl = zip(*val)
        ax.plot(vs, vl, "o-", color="C1", lw=1.5, ms=4, label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy loss (nats/token)")
    ax.set_title(f"{Path(log_path).parent.name or 'run'}: loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    png_path = Path(png_path)
    png = io.BytesIO()
    fig.savefig(png, format="png")
    serialization.atomic_write(png_path, png.getvalue())
    return png_path


def _flush_print(*args, **kw):
    print(*args, **kw, flush=True)   # visible at once when stdout is a file or a pipe


class _Interrupts:
    """Ctrl-C handling: a SIGINT during the critical section (optimizer update and the
    bookkeeping that goes with it) is held until the step's log row is made (``take``), so
    the model is never half updated; anywhere else it raises KeyboardInterrupt at once.

    ``collective`` (DDP with several ranks): every SIGINT is only recorded in ``pending``;
    the ranks agree at the next gradient sync and all stop after the same step (a rank that
    stopped alone would leave the others waiting in an all-reduce). A second SIGINT before
    then raises at once (outside the critical section)."""

    def __init__(self, collective: bool = False):
        self.critical = False
        self.collective = collective
        self.pending = False
        self._old = None

    def _handler(self, signum, frame):
        if self.critical or (self.collective and not self.pending):
            self.pending = True
        else:
            raise KeyboardInterrupt

    def __enter__(self):
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._old = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False

    @contextmanager
    def hold(self):
        self.critical = True
        try:
            yield
        finally:
            self.critical = False

    def take(self) -> bool:
        """Whether a Ctrl-C was held during the critical section (one process: the loop
        stops as soon as the step's log row exists, so no completed step goes unlogged)."""
        held = self.pending and not self.collective
        if held:
            self.pending = False
        return held


class Trainer:
    """A model-agnostic training loop (minGPT's ``Trainer``).

    ``model(x, y)`` must return ``(output, loss)``; ``model.parameters()``, ``train()`` and
    ``eval()`` are all else it uses. ``train_batches`` / ``val_batches`` are
    ``BatchSampler``-like (``next() -> (x, y)``, ``state()``, ``set_state()``, ``reseed()``).
    ``save(trainer)`` writes a checkpoint of ``trainer.step`` using ``trainer.data_state``
    and ``trainer.rng_state`` (the step boundary's data cursor and RNG state).

    Without a TTY (so without a progress bar), ``config.progress`` prints a plain line
    ``train: step N/M, loss ...`` whenever ``progress_interval_s`` seconds (monotonic clock)
    have passed since the last one.

    Callbacks: ``add_callback("on_step_end", fn)``; ``fn(trainer)`` runs after every
    optimizer step (after logging and checkpointing); a KeyboardInterrupt raised anywhere in
    the loop (Ctrl-C or a callback) saves a checkpoint of the last completed step and ends
    ``run()`` normally with ``trainer.interrupted = True``.

    ``ddp``: a ``minigpt.ddp.DDP`` (rank and world size come from it). The batches are then
    this rank's shards; ``sync_gradients`` averages the gradients and the loss over the
    ranks, every rank evaluates (the mean over ranks is reported), the weights are compared
    across ranks every ``config.ddp_check_interval`` steps, and Ctrl-C stops every rank after
    the same step. Callbacks must do the same on every rank.
    """

    progress_interval_s = 30.0      # the longest silence without a TTY (tests set 0)

    def __init__(self, config: TrainConfig, model, optimizer, train_batches, val_batches=None,
                 *, save=None, log: CSVLog | None = None, start_step: int = 0,
                 elapsed_offset: float = 0.0, rank: int = 0, world_size: int = 1,
                 print_fn=None, ddp=None):
        self.config = config
        self.ddp = ddp
        if ddp is not None:
            rank, world_size = ddp.rank, ddp.world_size
        self.model, self.optimizer = model, optimizer
        self.train_batches, self.val_batches = train_batches, val_batches
        self.save_fn, self.log = save, log
        self.step = start_step                  # optimizer steps done
        self.start_step = start_step
        self.elapsed_offset = elapsed_offset    # seconds spent before a resume
        self.rank, self.world_size = rank, world_size
        self._print = print_fn or _flush_print
        self.print = self._print
        self.params = [p for g in optimizer.param_groups for p in g["params"]]
        names = {id(p): n for n, p in getattr(model, "named_parameters", lambda: [])()}
        self.param_names = [names.get(id(p), f"parameter #{i}") for i, p in enumerate(self.params)]
        self.callbacks: dict[str, list] = {}
        self.interrupted = False
        self.last_loss = math.nan
        self.last_val_loss = math.nan
        self.tokens_per_step = config.batch_size * config.block_size * config.grad_accum_steps
        self.train_time = 0.0                   # seconds spent in run() so far
        self._t_run = None                      # when the current run() started
        self._interrupts = _Interrupts(collective=ddp is not None and world_size > 1)
        self._stop_requested = False            # DDP: some rank got Ctrl-C; stop after this step
        self.health = None                      # per-layer health report, every N steps
        if config.health_interval > 0 and hasattr(model, "transformer"):
            from .health import HealthMonitor
            self.health = HealthMonitor(model, every=config.health_interval)
        self._mark()

    @property
    def is_main(self) -> bool:
        """Only the main process evaluates, logs and saves (rank 0 under DDP)."""
        return self.rank == 0

    # ------------------------------------------------------------------ callbacks
    def add_callback(self, event: str, fn) -> None:
        self.callbacks.setdefault(event, []).append(fn)

    def trigger(self, event: str) -> None:
        for fn in self.callbacks.get(event, []):
            fn(self)

    # ------------------------------------------------------------------ pieces of a step
    def lr_at(self, step: int) -> float:
        """The learning rate of optimizer update ``step`` (1-based)."""
        return scheduled_lr(self.config, step)

    def _mark(self) -> None:
        """Remember the state at this step boundary (what a checkpoint of ``step`` holds)."""
        self.data_state = self.train_batches.state()
        self.rng_state = backend.get_rng_state()

    def forward_backward(self) -> float:
        """grad_accum_steps micro-batches: forward, backward of loss / accum. Returns the
        mean loss."""
        accum = self.config.grad_accum_steps
        total = 0.0
        for _ in range(accum):
            x, y = self.train_batches.next()
            _, loss = self.model(x, y)
            (loss if accum == 1 else loss / accum).backward()
            total += loss.item()
        return total / accum

    def sync_gradients(self, loss: float) -> float:
        """Between backward and the optimizer step: under DDP, average every ``p.grad``
        and ``loss`` over the processes (and learn whether any of them got Ctrl-C). One
        process: nothing to do. Returns the loss to report."""
        if self.ddp is None:
            return loss
        loss, stop = self.ddp.sync(self.params, loss, self._interrupts.pending)
        self._stop_requested = self._stop_requested or stop
        return loss

    def _report_health(self, rows, step: int) -> None:
        """Print the per-layer health rows and append them to <out_dir>/health.csv."""
        if not rows or not self.is_main:
            return
        from .health import format_health
        self.print(format_health(rows, step))
        path = Path(self.config.out_dir) / "health.csv"
        keys = list(rows[0])
        with fileio.open_append(path) as f:     # refuses a planted symbolic link
            if f.tell() == 0:
                f.write(",".join(["step"] + keys) + "\n")
            for r in rows:
                f.write(",".join([str(step)] + [str(r[k]) for k in keys]) + "\n")

    def check_parameters(self) -> None:
        """DDP: a DDPError on every rank if the ranks' weights differ (see minigpt.ddp)."""
        if self.ddp is not None:
            self.ddp.check_parameters(self.params, self.step, self.param_names)

    def train_step(self) -> tuple[float, float, float]:
        """One optimizer step; returns (loss, lr, grad norm before clipping)."""
        lr = self.lr_at(self.step + 1)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        step = self.step + 1
        with self.health.watch(step) if self.health else nullcontext():
            loss = self.forward_backward()
        loss = self.sync_gradients(loss)
        max_norm = self.config.grad_clip if self.config.grad_clip > 0 else math.inf
        grad_norm = float(clip_grad_norm_(self.params, max_norm))   # (a 0-d tensor, as torch)
        with self._interrupts.hold():     # never leave the weights half updated
            if self.health:
                self.health.before_update(step)
            self.optimizer.step()
            if self.health:
                self._report_health(self.health.after_update(step), step)
            self.optimizer.zero_grad()
            self.step += 1
            self._mark()
        if self.ddp is not None and (self.step % self.config.ddp_check_interval == 0
                                     or self.step == self.config.max_iters):
            self.check_parameters()
        return loss, lr, grad_norm

    def evaluate(self, sampler=None, iters: int | None = None) -> float:
        """Mean loss over ``iters`` batches of ``sampler`` (default: validation), in eval
        mode without gradients; the sampler is re-seeded first, so every evaluation sees
        the same batches and the training batches are not disturbed."""
        sampler = sampler or self.val_batches
        iters = iters or self.config.eval_iters
        sampler.reseed()
        self.model.eval()
        try:
            with mg.no_grad():
                losses = [self.model(*sampler.next())[1].item() for _ in range(iters)]
        finally:
            self.model.train()
        loss = float(np.mean(losses))
        return loss if self.ddp is None else self.ddp.mean(loss)   # DDP: over the shards

    @property
    def elapsed_s(self) -> float:
        """Training seconds since step 0, across resumes."""
        running = time.perf_counter() - self._t_run if self._t_run is not None else 0.0
        return self.elapsed_offset + self.train_time + running

    def save(self) -> None:
        if self.save_fn is not None and self.is_main:
            self.save_fn(self)

    # ------------------------------------------------------------------ the loop
    def run(self) -> "Trainer":
        c = self.config
        bar = None
        if self.is_main and c.progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=c.max_iters, initial=self.step, unit="step", dynamic_ncols=True,
                       desc="train", file=sys.stderr, disable=None)   # None: off if no TTY
            self.print = bar.write
        plain = self.is_main and c.progress and (bar is None or bar.disable)   # no TTY
        t_start = self._t_run = time.perf_counter()
        last_line = time.monotonic()
        recent = []            # losses since the last evaluation (for the printed summary)
        row = None             # the current step's log row, until it is written
        try:
            with self._interrupts:
                while self.step < c.max_iters:
                    t0 = time.perf_counter()
                    loss, lr, grad_norm = self.train_step()
                    dt = time.perf_counter() - t0
                    self.last_loss = loss
                    recent.append(loss)
                    tps = self.tokens_per_step * self.world_size / max(dt, 1e-9)
                    row = [self.step, loss, lr, grad_norm, tps, self.elapsed_s, None]
                    if self._interrupts.take():     # Ctrl-C during the update: stop now
                        raise KeyboardInterrupt
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix_str(f"loss {loss:.4f}, {tps:,.0f} tok/s")
                    if plain and time.monotonic() - last_line >= self.progress_interval_s:
                        last_line = time.monotonic()
                        _log(f"train: step {self.step}/{c.max_iters}, loss {loss:.4f}, "
                             f"{tps:,.0f} tok/s, {self.elapsed_s:.0f} s elapsed")
                    if self.step % c.eval_interval == 0 or self.step == c.max_iters:
                        if self.val_batches is not None and (self.is_main or self.ddp is not None):
                            row[6] = self.last_val_loss = self.evaluate()   # DDP: all ranks
                    if self.is_main and (self.step % c.eval_interval == 0
                                         or self.step == c.max_iters):
                        n = len(recent)
                        self.print(f"step {self.step}: train loss {np.mean(recent):.4f} "
                                   f"(mean of the last {n} step{'s' * (n != 1)}), "
                                   f"val loss {self.last_val_loss:.4f}, lr {lr:.2e}, "
                                   f"{tps:,.0f} tok/s")
                        recent = []
                    self._write(row)
                    row = None
                    if self.step % c.checkpoint_interval == 0 or self.step == c.max_iters:
                        self.save()
                    self.trigger("on_step_end")
                    if self._stop_requested:        # DDP: Ctrl-C, agreed by every rank
                        raise KeyboardInterrupt
        except KeyboardInterrupt:
            self.interrupted = True
            if row is not None:      # the step finished; its row was not written yet
                self._write(row)
            if bar is not None:
                bar.close()
                bar = None
            self.print = self._print
            if self.is_main:
                self.print(f"\ninterrupted: saving a checkpoint of step {self.step}")
            self.save()
        finally:
            if bar is not None:
                bar.close()
            self.print = self._print
            self.train_time += time.perf_counter() - t_start
            self._t_run = None
        return self

    def _write(self, row) -> None:
        if self.log is not None and self.is_main:
            self.log.write(*row)


# ============================================================================= train()
def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def train(config: TrainConfig, callbacks: dict | None = None) -> TrainResult:
    """Train (or, with ``config.resume``, continue) a GPT as ``config`` says; save the
    checkpoint, tokenizer, log and loss plot in ``config.out_dir``; print samples.

    ``callbacks``: {event: fn or [fn, ...]} for ``Trainer.add_callback``.
    With ``config.ddp``, this is one rank of a data-parallel run (see minigpt.ddp).
    """
    from .data import BatchSampler, prepare_data
    from .sample import print_stream, sample

    t_call = time.perf_counter()
    if not isinstance(config, TrainConfig):
        raise ConfigError(f"train: config must be a TrainConfig, got {type(config).__name__}")
    c = config
    ddp = _start_ddp(c)                        # None on one process
    rank, world = (ddp.rank, ddp.world_size) if ddp is not None else (0, 1)
    is_main = rank == 0
    log = _log if is_main else (lambda msg: None)
    require_device(c.device, "TrainConfig.device")
    paths = resolved_paths(c)                  # stored, so resume works from anywhere
    out = Path(c.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / CKPT_NAME
    cache_dir = Path(c.cache_dir) if c.cache_dir else out / "cache"

    ckpt: Checkpoint | None = None
    if c.resume:
        ckpt = load_checkpoint(ckpt_path)      # CheckpointError if missing or damaged
        _check_resume(c, ckpt)
    elif ckpt_path.exists():
        log(f"note: {ckpt_path} exists and will be replaced by this new run (use --resume "
            "to continue it instead)")

    def prepare():
        return prepare_data(c.data, c.tokenizer, c.vocab_size, c.val_fraction, cache_dir,
                            tokenizer_text=ckpt.tokenizer_text if ckpt else None, log=log)
    # under DDP rank 0 fills the cache first; the others then read it
    data = ddp.main_first(prepare, "preparing the data") if ddp is not None else prepare()
    tok = data.tokenizer
    if ckpt is not None and ckpt.extra.get("data_sha256") not in (None, data.data_sha256):
        log(f"warning: the data ({data.source}) changed since the checkpoint was saved; "
            "training continues on the new data (the batches will differ)")
    if is_main:
        tok.save(out / "tokenizer.txt")

    # ---- model and optimizer
    mg.manual_seed(c.seed)
    if ckpt is not None:
        model_config = dataclasses.replace(ckpt.model_config, dropout=c.dropout)
    else:
        model_config = c.model_config(tok.vocab_size)
    model = GPT(model_config, device=c.device)
    optimizer = AdamW(weight_decay_groups(model.named_parameters(), c.weight_decay),
                      lr=c.learning_rate, betas=(c.beta1, c.beta2))

    def batches(ids, seed, name):
        """Global batches of world x batch_size rows; under DDP, this rank's shard."""
        sampler = BatchSampler(ids, c.block_size, c.batch_size * world, seed, name)
        if ddp is None:
            return sampler
        from .ddp import ShardSampler
        return ShardSampler(sampler, rank, world)

    train_batches = batches(data.train_ids, c.seed, "train")
    val_batches = batches(data.val_ids, c.seed + 1, "validation")
    start_step, elapsed = 0, 0.0
    if ckpt is not None:
        ckpt.restore(model, optimizer)
        decay_group, no_decay_group = optimizer.param_groups   # the config's values win
        decay_group["weight_decay"], no_decay_group["weight_decay"] = c.weight_decay, 0.0
        for group in optimizer.param_groups:
            group["betas"] = (c.beta1, c.beta2)
        if ckpt.rng_state is not None:
            backend.set_rng_state(ckpt.rng_state)
        if ckpt.data_state is not None:
            train_batches.set_state(ckpt.data_state)
        start_step = ckpt.step
        elapsed = float(ckpt.extra.get("elapsed_s", 0.0))
        if c.device == "cuda" and c.dropout > 0:
            log("note: on cuda the dropout masks come from CuPy's generator, which "
                "checkpoints do not save; the resumed losses will differ slightly")
        saved_batch = ckpt.extra.get("global_batch_size")
        if saved_batch not in (None, c.batch_size * world):
            hint = (f"; --batch_size {saved_batch // world} keeps it"
                    if saved_batch % world == 0 else "")
            log(f"note: the checkpoint was trained with a global batch of {saved_batch} "
                f"sequences; this run uses {world} x {c.batch_size} = {c.batch_size * world}"
                f"{hint}")
    if ddp is not None:
        ddp.offset_rng()                       # rank r: its own dropout stream
        if c.device == "cuda" and rank > 0:
            backend.rng("cuda").seed(c.seed + rank)

    n_params = model.get_num_params()
    log(f"data: {data.source}, {data.stats['train_tokens']:,} train / "
        f"{data.stats['val_tokens']:,} val tokens, {type(tok).__name__} vocab "
        f"{tok.vocab_size}")
    log(f"model: {n_params / 1e6:.2f}M parameters ({c.n_layer} layers, {c.n_head} heads, "
        f"n_embd {model_config.n_embd}, block {model_config.block_size}) on {c.device}")
    if ckpt is not None:
        log(f"resuming from {ckpt_path} at step {start_step}")
        _report_resume_lr(c, ckpt, start_step, log)

    # ---- checkpoints
    def save(trainer: Trainer) -> None:
        save_checkpoint(ckpt_path, model, optimizer, step=trainer.step,
                        train_config={**c.to_dict(), "resume": False, "ddp": False, **paths},
                        tokenizer_text=data.tokenizer_text, rng_state=trainer.rng_state,
                        data_state=trainer.data_state,
                        extra={"elapsed_s": trainer.elapsed_s, "data_sha256": data.data_sha256,
                               "data": data.source,
                               "loss": trainer.last_loss, "val_loss": trainer.last_val_loss,
                               "tokens_seen": trainer.step * trainer.tokens_per_step * world,
                               "world_size": world, "global_batch_size": c.batch_size * world})

    log_csv = CSVLog(out / "log.csv", resume_step=start_step if ckpt is not None else None) \
        if is_main else None
    trainer = Trainer(c, model, optimizer, train_batches, val_batches, save=save, log=log_csv,
                      start_step=start_step, elapsed_offset=elapsed, ddp=ddp)
    for event, fns in (callbacks or {}).items():
        for fn in (fns if isinstance(fns, (list, tuple)) else [fns]):
            trainer.add_callback(event, fn)
    if ddp is not None:
        ddp.prepare(trainer.params)
        log(ddp.describe())
        log(f"ddp: global batch {world} x {c.batch_size} = {world * c.batch_size} sequences "
            f"per micro-batch; weights compared across ranks every {c.ddp_check_interval} "
            "steps")
        warning = ddp.thread_warning()
        if warning:
            log(warning)
    guard = ddp.abort_on_error() if ddp is not None else nullcontext()
    with guard:
        trainer.check_parameters()             # DDP: the ranks start from the same weights
        try:
            trainer.run()
        finally:
            if log_csv is not None:
                log_csv.close()
        if start_step >= c.max_iters and not trainer.interrupted:
            log(f"the checkpoint is at step {start_step} >= max_iters {c.max_iters}: nothing "
                "to train (raise --max_iters to continue)")

        # ---- the end: final losses, plot, samples
        train_loss = val_loss = math.nan
        samples: list[str] = []
        if not trainer.interrupted:
            train_loss = trainer.evaluate(batches(data.train_ids, c.seed + 2, "train"))
            val_loss = trainer.evaluate()
            log(f"final: train loss {train_loss:.4f}, val loss {val_loss:.4f} "
                f"(mean of {c.eval_iters} batches each)")
        plot = plot_log(out / "log.csv", out / "loss.png") if is_main else None
        steps_run = trainer.step - start_step
        tps = (steps_run * trainer.tokens_per_step * world / trainer.train_time
               if trainer.train_time else 0.0)
        if is_main and not trainer.interrupted and c.num_samples > 0 and c.sample_tokens > 0:
            print(f"\n{c.num_samples} sample{'s' * (c.num_samples > 1)} of {c.sample_tokens} "
                  f"tokens (temperature {c.temperature}):\n---------------")
            samples = sample(model, tok, c.prompt, c.sample_tokens, c.temperature, c.top_k,
                             c.top_p, c.num_samples, c.seed, stream=print_stream)
        log(f"saved {ckpt_path}, {out / 'log.csv'}" + (f", {plot}" if plot else ""))
    if ddp is not None:
        ddp.wait()                             # the others sleep while rank 0 samples
    return TrainResult(train_loss=train_loss, val_loss=val_loss, steps=trainer.step,
                       steps_run=steps_run, wall_time_s=time.perf_counter() - t_call,
                       train_time_s=trainer.train_time, tokens_per_s=tps,
                       checkpoint_path=str(ckpt_path), log_path=str(out / "log.csv"),
                       plot_path=str(plot) if plot else None,
                       tokenizer_path=str(out / "tokenizer.txt"),
                       interrupted=trainer.interrupted, samples=samples, rank=rank)


def _start_ddp(c: TrainConfig):
    """The DDP context of this process when ``c.ddp`` (a DDPError naming the install command
    without mpi4py); None otherwise. Launching several processes without --ddp is an error:
    they would all write the same files."""
    if not c.ddp:
        from .ddp import launched_world_size
        n = launched_world_size()
        if n > 1:
            raise ConfigError(f"started as {n} MPI processes but --ddp is not set: every "
                              "process would train alone and write the same files; add --ddp "
                              "(or run one process)")
        return None
    from .ddp import DDP
    return DDP(c.device)


def _report_resume_lr(c: TrainConfig, ckpt: Checkpoint, start_step: int, log) -> None:
    """A resumed run never changes the lr silently: print the lr of the next step and, when
    the settings changed it, the one the checkpoint's own schedule gives there."""
    if start_step >= c.max_iters:
        return
    step = start_step + 1
    lr = scheduled_lr(c, step)
    saved = {k: ckpt.train_config[k] for k in SCHEDULE_FIELDS if k in ckpt.train_config}
    try:
        old = scheduled_lr(dataclasses.replace(c, **saved), step)
    except (ConfigError, TypeError):           # settings of another version: nothing to compare
        log(f"resume: lr at step {step}: {lr:.2e}")
        return
    if old == lr:
        log(f"resume: lr at step {step}: {lr:.2e}, as under the checkpoint's schedule")
    else:
        log(f"resume: lr at step {step}: {lr:.2e}; the checkpoint's schedule gives {old:.2e} "
            "(the settings changed the schedule)")


def _check_resume(c: TrainConfig, ckpt: Checkpoint) -> None:
    """The architecture and tokenizer of a resumed run are the checkpoint's."""
    saved = ckpt.train_config
    mc = ckpt.model_config
    for name in MODEL_FIELDS:
        if getattr(mc, name) != getattr(c, name):
            raise ConfigError(f"--resume: {name} is {getattr(c, name)!r} but the checkpoint "
                              f"{ckpt.path} has {getattr(mc, name)!r}; the architecture "
                              "cannot change when resuming")
    for name in ("tokenizer",) + (("vocab_size",) if c.tokenizer == "bpe" else ()):
        if name in saved and saved[name] != getattr(c, name):
            raise ConfigError(f"--resume: {name} is {getattr(c, name)!r} but the checkpoint "
                              f"{ckpt.path} was trained with {saved[name]!r}")


__all__ = ["TrainConfig", "TrainResult", "Trainer", "CSVLog", "train", "main",
           "build_parser", "config_from_args", "load_config_file", "plot_log", "read_log",
           "field_docs", "scheduled_lr", "resume_command"]
