"""``TrainConfig``: every setting of a training run, its checks, config files and the flags.

Each field carries its help text (``field(metadata=...)``), so the flags of ``minigpt train``
(one per field) and their help are built from the fields; the sampling settings take their
defaults and help from :mod:`minigpt.sampling`, shared with ``minigpt sample`` and
``minigpt trace``. Settings come from the defaults, then ``--config FILE`` (JSON or TOML),
then the flags; with ``--resume`` the checkpoint's settings replace the defaults, by the rules
of :mod:`minigpt.train.resume`.
"""
from __future__ import annotations

import argparse
import difflib
import json
import math
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from minigrad import serialization
from minigrad.optim import cosine_with_warmup

from ..checkpoint import CKPT_NAME
from ..cli import ArgumentParser
from ..errors import CheckpointError, ConfigError
from ..model import GPTConfig
from ..sampling import DEFAULTS as SAMPLING, HELP as SAMPLING_HELP, check_prompt, \
    check_sampling_settings
from .resume import resume_settings


def _group(name: str):
    """A maker of fields in the flag group ``name``: ``option(default, help)``."""
    def option(default, help: str):
        return field(default=default, metadata={"group": name, "help": help})
    return option


_model, _data, _optim = _group("model"), _group("data"), _group("optimization")
_eval = _group("evaluation, logging and checkpoints")
_ddp = _group("data-parallel training (docs/ddp.md)")
_samples = _group("samples printed at the end")   # defaults and help: minigpt.sampling


@dataclass
class TrainConfig:
    """Every setting of a training run; a wrong type or a value out of range is a
    ConfigError naming the field."""
    n_layer: int = _model(4, "transformer blocks")
    n_head: int = _model(4, "attention heads per block (must divide n_embd)")
    n_embd: int = _model(128, "width of the residual stream")
    block_size: int = _model(64, "context length in tokens")
    dropout: float = _model(0.0, "dropout probability while training, in [0, 1)")
    bias: bool = _model(True, "biases in Linear and LayerNorm layers, as GPT-2")

    data: str | None = _data(None, "UTF-8 text file to train on; None: the built-in corpus")
    tokenizer: str = _data("bpe", "\"bpe\" (byte-level, trained on the train split) or "
                                  "\"char\"")
    vocab_size: int = _data(512, "BPE vocabulary size (256 bytes + merges + <|endoftext|>)")
    val_fraction: float = _data(0.1, "the last fraction of the text (in characters) is "
                                     "validation")
    cache_dir: str | None = _data(None, "token-id and tokenizer cache; None: <out_dir>/cache")

    batch_size: int = _optim(32, "sequences per micro-batch")
    grad_accum_steps: int = _optim(1, "micro-batches per optimizer step")
    max_iters: int = _optim(1000, "optimizer steps in total (a resumed run counts on)")
    learning_rate: float = _optim(1e-3, "peak learning rate (the constant one if decay_lr is "
                                        "false)")
    min_lr: float = _optim(1e-4, "learning rate at the end of the cosine decay")
    warmup_iters: int = _optim(100, "linear warmup steps (capped at lr_decay_iters; with "
                                    "decay_lr)")
    lr_decay_iters: int = _optim(0, "steps of warmup + cosine decay; 0: max_iters")
    decay_lr: bool = _optim(True, "warmup + cosine decay; false: constant learning_rate")
    weight_decay: float = _optim(0.1, "AdamW decoupled weight decay on matrices (dim >= 2)")
    beta1: float = _optim(0.9, "AdamW beta1")
    beta2: float = _optim(0.99, "AdamW beta2")
    grad_clip: float = _optim(1.0, "clip the global gradient norm to this; 0: no clipping")

    eval_interval: int = _eval(250, "validation loss every this many steps (and at the end)")
    eval_iters: int = _eval(20, "batches averaged per validation loss")
    checkpoint_interval: int = _eval(250, "checkpoint every this many steps (and at the end, "
                                          "on Ctrl-C)")
    out_dir: str = _eval("out", "checkpoint, tokenizer, log.csv and loss.png go here")
    device: str = _eval("cpu", "\"cpu\" or \"cuda\"")
    seed: int = _eval(1337, "seeds the weights, dropout and the batch order")
    resume: bool = _eval(False, "continue from <out_dir>/ckpt.safetensors")
    progress: bool = _eval(True, "show a tqdm progress bar")
    health_interval: int = _eval(0, "every N steps, per-layer health printed and added to "
                                    "health.csv; 0: off")

    ddp: bool = _ddp(False, "data-parallel over MPI ranks; batch_size is per rank")
    ddp_check_interval: int = _ddp(100, "under ddp, compare the ranks' weights every this "
                                        "many steps")

    num_samples: int = _samples(SAMPLING.num_samples, "samples printed after training; 0: "
                                                      "none")
    sample_tokens: int = _samples(SAMPLING.max_new_tokens, SAMPLING_HELP["max_new_tokens"])
    prompt: str = _samples("", "text the samples continue; \"\": start of a document")
    temperature: float = _samples(SAMPLING.temperature, SAMPLING_HELP["temperature"])
    top_k: int | None = _samples(SAMPLING.top_k, SAMPLING_HELP["top_k"])
    top_p: float | None = _samples(SAMPLING.top_p, SAMPLING_HELP["top_p"])

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


def scheduled_lr(c: TrainConfig, step: int) -> float:
    """The learning rate of optimizer update ``step`` (1-based) under ``c``'s schedule."""
    if not c.decay_lr:
        return c.learning_rate
    decay = c.lr_decay_iters or c.max_iters
    return cosine_with_warmup(step, max_lr=c.learning_rate,
                              warmup_steps=min(c.warmup_iters, decay),   # short runs
                              max_steps=decay, min_lr=c.min_lr)


# ----------------------------------------------------------------------------- checks
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


FIELD_TYPES = _field_types()
FIELD_NAMES = tuple(FIELD_TYPES)


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


def field_docs() -> dict[str, tuple[str, str]]:
    """{field: (group, help)}: what each field's flag is listed under, and its help text."""
    return {f.name: (f.metadata["group"], f.metadata["help"]) for f in fields(TrainConfig)}


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


# ----------------------------------------------------------------------------- files
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


def checkpoint_train_config(path: Path) -> dict:
    """The TrainConfig fields stored in a checkpoint's metadata (without ``resume``),
    type-checked; a CheckpointError when the file is missing or damaged."""
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


# ----------------------------------------------------------------------------- flags
def _parse_bool(s: str) -> bool:
    v = s.strip().lower()
    if v in ("true", "1", "yes", "on"):
        return True
    if v in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false/1/0, got {s!r}")


def _cli_type(name: str):
    """The argparse type of field ``name``: its base type ('none' / 'null' for None where
    the field allows it), with an error that names the expected type."""
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


RESUME_FLAGS = {   # flags of `--resume` only, not TrainConfig fields (see minigpt.train.resume)
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
                    "replace the defaults, except its paths and lr schedule (docs/training.md: "
                    "Stop, resume, and what is never lost).")
    p.add_argument("--config", metavar="FILE", help="JSON or TOML file of settings (the "
                   "field names below, without dashes)")
    groups = {}
    for f in fields(TrainConfig):
        group, doc = f.metadata["group"], f.metadata["help"]
        g = groups.get(group) or groups.setdefault(group, p.add_argument_group(group))
        base, _ = FIELD_TYPES[f.name]
        metavar = {bool: "BOOL", int: "INT", float: "FLOAT", str: "STR"}[base]
        extra = dict(nargs="?", const=True) if base is bool else {}   # `--resume` = true
        g.add_argument(f"--{f.name}", dest=f.name, type=_cli_type(f.name),
                       default=argparse.SUPPRESS, metavar=metavar,
                       help=f"{doc} (default: {f.default!r})".replace("%", "%%"), **extra)
    g = p.add_argument_group("resume")
    for name, doc in RESUME_FLAGS.items():
        g.add_argument(f"--{name}", type=_parse_bool, nargs="?", const=True, metavar="BOOL",
                       default=False, help=doc)
    return p


def config_from_args(argv=None) -> TrainConfig:
    """TrainConfig from defaults < checkpoint (with --resume) < --config file < flags; with
    --resume, the checkpoint's paths and lr schedule follow minigpt.train.resume's rules."""
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
    saved = checkpoint_train_config(Path(out_dir) / CKPT_NAME)
    values = resume_settings(values, saved, out_dir=out_dir,
                             trust_paths=flags["trust_checkpoint_paths"],
                             reschedule=flags["reschedule"])
    return TrainConfig(**values)


__all__ = ["TrainConfig", "MODEL_FIELDS", "FIELD_TYPES", "FIELD_NAMES", "scheduled_lr",
           "field_docs", "check_keys", "load_config_file", "checkpoint_train_config",
           "RESUME_FLAGS", "build_parser", "config_from_args"]
