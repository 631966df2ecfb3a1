"""Training checkpoints: one self-contained safetensors file, written atomically.

    save_checkpoint("out/ckpt.safetensors", model, optimizer, step=500, train_config={...},
                    tokenizer_text=..., rng_state=..., data_state=...)
    ckpt = load_checkpoint("out")          # a directory means <dir>/ckpt.safetensors
    model = ckpt.build_model(); ckpt.restore(model, optimizer)

Layout of ``ckpt.safetensors`` (format ``minigpt-checkpoint-1``):

* tensors ``model.<name>``: the model's ``state_dict()`` (tied weights under both names);
* tensors ``optim.state.<param index>.<name>``: AdamW moments (``exp_avg``, ``exp_avg_sq``);
* string metadata (JSON values):

  ====================  =========================================================
  ``format``            ``"minigpt-checkpoint-1"``
  ``model_config``      ``GPTConfig`` as a dict
  ``train_config``      ``TrainConfig`` as a dict
  ``step``              optimizer steps done
  ``rng_state``         minigrad's NumPy generator state (dropout masks)
  ``data_state``        the batch generator's PCG64 state and batches drawn
  ``tokenizer``         the tokenizer file's text (so the checkpoint is self-contained)
  ``optimizer``         step counts and parameter groups (from minigrad.serialization)
  ``extra``             elapsed seconds, data sha256, last losses, ...
  ====================  =========================================================

The file is written by ``minigrad.serialization.save``: a temp file, fsync, rename; a crash
while saving leaves the previous checkpoint as it was. Every tensor and the metadata carry a
CRC-32, so a truncated or damaged file raises ``CheckpointError`` naming the file.

Nothing in the file is trusted: ``load_checkpoint`` checks every metadata field's type and
range (the RNG state included; ``BatchSampler.set_state`` checks the data cursor), and that
the model config needs no more weights than the file holds, before anything is built.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from minigrad import serialization
from minigrad.errors import SerializationError

from .errors import CheckpointError, ConfigError, MinigptError
from .gpt2 import check_weights_fit
from .model import GPT, GPTConfig

FORMAT = "minigpt-checkpoint-1"
CKPT_NAME = "ckpt.safetensors"
_META_KEYS = ("format", "model_config", "train_config", "step", "tokenizer")


def checkpoint_path(path: str | os.PathLike) -> Path:
    """``path`` itself if it names a file (or ends in .safetensors), else ``path/ckpt.safetensors``."""
    path = Path(path)
    if path.is_dir() or (path.suffix != ".safetensors" and not path.is_file()):
        return path / CKPT_NAME
    return path


@dataclass
class Checkpoint:
    """Everything a checkpoint holds, as plain Python / NumPy objects."""
    path: Path                         # the file it was read from
    model_config: GPTConfig            # the architecture
    train_config: dict                 # the TrainConfig fields of the run that saved it
    step: int                          # optimizer steps done
    model_state: dict                  # {name: np.ndarray} for model.load_state_dict
    optimizer_state: dict | None       # for Optimizer.load_state_dict (None: not saved)
    tokenizer_text: str                # the tokenizer file's contents
    rng_state: dict | None = None      # minigrad.backend RNG state
    data_state: dict | None = None     # BatchSampler.state()
    extra: dict = field(default_factory=dict)   # elapsed_s, data_sha256, ...

    def build_model(self, device=None) -> GPT:
        """A GPT of the saved architecture holding the saved weights."""
        model = GPT(self.model_config, device=device)
        self.load_model(model)
        return model

    def load_model(self, model) -> None:
        try:
            model.load_state_dict(self.model_state)
        except Exception as exc:   # StateDictError: missing keys, shapes
            raise CheckpointError(f"{self.path}: the weights do not fit the model: {exc}") \
                from None

    def restore(self, model, optimizer=None) -> None:
        """Load the weights into ``model`` and the optimizer state into ``optimizer``."""
        self.load_model(model)
        if optimizer is not None:
            if self.optimizer_state is None:
                raise CheckpointError(f"{self.path}: holds no optimizer state to resume from")
            try:
                optimizer.load_state_dict(self.optimizer_state)
            except (ValueError, KeyError, TypeError) as exc:
                raise CheckpointError(f"{self.path}: the optimizer state does not fit the "
                                      f"optimizer: {exc}") from None

    def tokenizer(self):
        """The saved tokenizer (its file's checksum verified); it must fit the model."""
        from .data import tokenizer_from_text
        try:
            tok = tokenizer_from_text(self.tokenizer_text, f"{self.path} (tokenizer)")
        except MinigptError as exc:
            raise CheckpointError(f"{self.path}: the saved tokenizer is unreadable: {exc}") \
                from None
        if tok.vocab_size > self.model_config.vocab_size:
            raise CheckpointError(f"{self.path}: the saved tokenizer has {tok.vocab_size} ids "
                                  f"but the model only {self.model_config.vocab_size}")
        return tok


def save_checkpoint(path, model, optimizer=None, *, step: int, train_config: dict,
                    tokenizer_text: str, rng_state: dict | None = None,
                    data_state: dict | None = None, extra: dict | None = None) -> Path:
    """Write one checkpoint file atomically (see the module docstring); returns its path."""
    path = checkpoint_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "model_config": json.dumps(model.config.to_dict()),
        "train_config": json.dumps(train_config),
        "step": json.dumps(int(step)),
        "tokenizer": tokenizer_text,
        "rng_state": json.dumps(rng_state),
        "data_state": json.dumps(data_state),
        "extra": json.dumps(extra or {}),
    }
    if optimizer is not None:
        opt_tensors, opt_meta = serialization.optimizer_state_to_tensors(optimizer.state_dict())
        tensors.update({f"optim.{k}": v for k, v in opt_tensors.items()})
        metadata.update(opt_meta)
    serialization.save(tensors, path, metadata)
    return path


def load_checkpoint(path) -> Checkpoint:
    """Read and check a checkpoint file (or ``<dir>/ckpt.safetensors``).

    A missing, truncated or damaged file, or one that is not a minigpt checkpoint, raises
    CheckpointError naming the file.
    """
    path = checkpoint_path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {str(path)!r} (train one with `minigpt train "
                              f"--out_dir {path.parent}`)")
    try:
        # one read of the file, one CRC over weights and metadata: a checkpoint replaced
        # while it is read (training saving while `minigpt sample` loads) is never mixed
        arrays, meta = serialization.load_with_metadata(path)
    except SerializationError as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupted or truncated: {exc}") \
            from exc
    except OSError as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} cannot be read: {exc}") from exc
    missing = [k for k in _META_KEYS if k not in meta]
    if missing:
        raise CheckpointError(f"{path}: not a minigpt training checkpoint (metadata lacks "
                              f"{missing})")
    if meta["format"] != FORMAT:
        raise CheckpointError(f"{path}: unknown checkpoint format {meta['format']!r}; this "
                              f"version reads {FORMAT!r}")

    def field_(name, default=None):
        if name not in meta:
            return default
        try:
            return json.loads(meta[name])
        except (ValueError, RecursionError) as exc:   # bad JSON, huge number, deep nesting
            raise CheckpointError(f"{path}: metadata {name!r} is not valid JSON "
                                  f"({type(exc).__name__}: {str(exc)[:200]})") from None

    def bad(name, expected, value):
        raise CheckpointError(f"{path}: metadata {name!r} must be {expected}, got "
                              f"{str(value)[:120]}")

    config_dict = field_("model_config")
    if not isinstance(config_dict, dict):
        bad("model_config", "a JSON object of GPTConfig fields", config_dict)
    try:
        model_config = GPTConfig.from_dict(config_dict)
    except (ConfigError, TypeError) as exc:
        raise CheckpointError(f"{path}: bad model config: {exc}") from None
    eps = model_config.layer_norm_epsilon
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < 1:
        bad("model_config", "a config with layer_norm_epsilon in (0, 1)", eps)
    if not isinstance(model_config.bias, bool):
        bad("model_config", "a config with a bool bias", model_config.bias)
    step = field_("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointError(f"{path}: metadata 'step' must be a non-negative int, got {step!r}")
    model_state = {k[len("model."):]: v for k, v in arrays.items() if k.startswith("model.")}
    check_weights_fit(model_config, model_state, str(path))
    optim = {k[len("optim."):]: v for k, v in arrays.items() if k.startswith("optim.")}
    optimizer_state = None
    if "optimizer" in meta:
        try:
            optimizer_state = serialization.tensors_to_optimizer_state(optim, meta)
        except SerializationError as exc:
            raise CheckpointError(f"{path}: bad optimizer state: {exc}") from None
    train_config = field_("train_config")
    if not isinstance(train_config, dict):
        raise CheckpointError(f"{path}: metadata 'train_config' must be a JSON object")
    rng_state = field_("rng_state")
    if rng_state is not None:
        _check_rng_state(path, rng_state)
    data_state = field_("data_state")   # BatchSampler.set_state checks it in full
    if data_state is not None and not isinstance(data_state, dict):
        bad("data_state", "a JSON object (BatchSampler.state())", data_state)
    extra = field_("extra", {})
    if extra is None:
        extra = {}
    if not isinstance(extra, dict):
        bad("extra", "a JSON object", extra)
    elapsed = extra.get("elapsed_s", 0.0)
    if isinstance(elapsed, bool) or not isinstance(elapsed, (int, float)) or not elapsed >= 0:
        bad("extra", "an object whose elapsed_s is a number >= 0", elapsed)
    return Checkpoint(path=path, model_config=model_config, train_config=train_config,
                      step=step, model_state=model_state, optimizer_state=optimizer_state,
                      tokenizer_text=meta["tokenizer"], rng_state=rng_state,
                      data_state=data_state, extra=extra)


def _check_rng_state(path, state) -> None:
    """CheckpointError unless ``state`` is a NumPy bit generator state of the kind minigrad
    uses (set on a scratch generator, so minigrad's own is untouched)."""
    from minigrad import backend
    kind = type(backend.rng("cpu").bit_generator)
    try:
        if not isinstance(state, dict) or state.get("bit_generator") != kind.__name__:
            raise ValueError(f"expected a {kind.__name__} state")
        kind().state = state
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise CheckpointError(f"{path}: metadata 'rng_state' is damaged ({exc}): "
                              f"{str(state)[:120]}") from None


__all__ = ["Checkpoint", "save_checkpoint", "load_checkpoint", "checkpoint_path", "FORMAT",
           "CKPT_NAME"]
