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
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from minigrad import serialization
from minigrad.errors import SerializationError

from .errors import CheckpointError, ConfigError
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
        from .data import tokenizer_from_text
        try:
            return tokenizer_from_text(self.tokenizer_text, f"{self.path} (tokenizer)")
        except Exception as exc:
            raise CheckpointError(f"{self.path}: the saved tokenizer is unreadable: {exc}") \
                from None


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
        arrays = serialization.load_arrays(path)      # verifies every CRC, metadata included
        meta = serialization.load_metadata(path)
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
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{path}: metadata {name!r} is not valid JSON ({exc})") \
                from None

    try:
        model_config = GPTConfig.from_dict(field_("model_config"))
    except (ConfigError, TypeError) as exc:
        raise CheckpointError(f"{path}: bad model config: {exc}") from None
    step = field_("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointError(f"{path}: metadata 'step' must be a non-negative int, got {step!r}")
    model_state = {k[len("model."):]: v for k, v in arrays.items() if k.startswith("model.")}
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
    return Checkpoint(path=path, model_config=model_config, train_config=train_config,
                      step=step, model_state=model_state, optimizer_state=optimizer_state,
                      tokenizer_text=meta["tokenizer"], rng_state=field_("rng_state"),
                      data_state=field_("data_state"), extra=field_("extra", {}) or {})


__all__ = ["Checkpoint", "save_checkpoint", "load_checkpoint", "checkpoint_path", "FORMAT",
           "CKPT_NAME"]
