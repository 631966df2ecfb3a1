"""GPT-2 interoperability: Hugging Face state dicts and local pretrained folders.

Hugging Face's GPT-2 uses Conv1D layers whose weights are stored (in, out), the
transpose of a Linear's (out, in); these are the four names below. Older exports
also carry the attention-mask buffers ``attn.bias`` / ``attn.masked_bias``, which
hold no weights and are skipped.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from minigrad import backend

from .errors import CheckpointError, ConfigError

CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
MASK_BUFFERS = ("attn.bias", "attn.masked_bias")


def _as_numpy(v):
    if hasattr(v, "detach"):            # a torch tensor, without importing torch
        v = v.detach().cpu().numpy()
    elif hasattr(v, "data") and not isinstance(v, np.ndarray):
        v = v.data
    return backend.to_numpy(v)


def _normalise(sd) -> dict:
    """Names with the 'transformer.' prefix, mask buffers dropped, values as NumPy."""
    out = {}
    for name, value in sd.items():
        if ".".join(name.split(".")[-2:]) in MASK_BUFFERS:
            continue
        if not name.startswith(("transformer.", "lm_head.")):
            name = "transformer." + name
        out[name] = _as_numpy(value)
    return out


def from_gpt2_state_dict(cls, sd, n_head=None, dtype=None, device=None):
    """Build a GPT from a Hugging Face GPT-2 state dict (a mapping of names to arrays),
    inferring the config from the shapes; n_head defaults to n_embd / 64 as in every
    GPT-2 size."""
    from .model import GPTConfig
    sd = _normalise(sd)
    for key in ("transformer.wte.weight", "transformer.wpe.weight"):
        if key not in sd:
            raise CheckpointError(f"from_gpt2_state_dict: missing {key!r}; got keys such as "
                                  f"{sorted(sd)[:5]}")
    vocab_size, n_embd = sd["transformer.wte.weight"].shape
    block_size = sd["transformer.wpe.weight"].shape[0]
    layers = {int(m.group(1)) for k in sd if (m := re.match(r"transformer\.h\.(\d+)\.", k))}
    if n_head is None:
        if n_embd % 64:
            raise ConfigError(f"from_gpt2_state_dict: cannot infer n_head for n_embd {n_embd} "
                              "(not a multiple of 64); pass n_head=")
        n_head = n_embd // 64
    config = GPTConfig(vocab_size=int(vocab_size), block_size=int(block_size),
                       n_layer=len(layers), n_head=int(n_head), n_embd=int(n_embd),
                       dropout=0.0, bias="transformer.ln_f.bias" in sd)
    model = cls(config, dtype=dtype, device=device)
    ours = {}
    for name, value in sd.items():
        if name == "lm_head.weight":
            if not np.array_equal(value, sd["transformer.wte.weight"]):
                raise CheckpointError("from_gpt2_state_dict: lm_head.weight differs from "
                                      "transformer.wte.weight, but minigpt ties them")
            continue
        ours[name] = value.T if name.endswith(CONV1D) else value
    ours["lm_head.weight"] = sd["transformer.wte.weight"]
    model.load_state_dict({k: v.astype(model.transformer.wte.weight.dtype) for k, v in
                           ours.items()}, strict=True)
    return model


def to_gpt2_state_dict(model) -> dict:
    """Hugging Face GPT-2 names and layouts (Conv1D weights transposed), NumPy arrays."""
    out = {}
    for name, tensor in model.state_dict().items():
        value = tensor.numpy()
        out[name] = np.ascontiguousarray(value.T) if name.endswith(CONV1D) else value
    return out


def _hf_config(config) -> dict:
    return {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"],
            "vocab_size": config.vocab_size, "n_positions": config.block_size,
            "n_ctx": config.block_size, "n_embd": config.n_embd, "n_layer": config.n_layer,
            "n_head": config.n_head, "layer_norm_epsilon": config.layer_norm_epsilon,
            "activation_function": "gelu_new", "resid_pdrop": config.dropout,
            "embd_pdrop": config.dropout, "attn_pdrop": config.dropout}


def save_pretrained(model, path) -> None:
    """Write config.json and model.safetensors in Hugging Face's GPT-2 layout."""
    from safetensors.numpy import save
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    sd = to_gpt2_state_dict(model)
    sd.pop("lm_head.weight")       # tied: Hugging Face stores it once
    _atomic_write(path / "model.safetensors", save(sd, metadata={"format": "np"}))
    _atomic_write(path / "config.json", json.dumps(_hf_config(model.config), indent=2).encode())


def from_pretrained(cls, path, dtype=None, device=None):
    """Read a local folder with config.json and model.safetensors (GPT-2 layout)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file
    path = Path(path)
    cfg_path, weights = path / "config.json", path / "model.safetensors"
    for p in (cfg_path, weights):
        if not p.is_file():
            raise CheckpointError(f"from_pretrained: {p} does not exist (expected a folder "
                                  "with config.json and model.safetensors)")
    try:
        cfg = json.loads(cfg_path.read_text())
        n_head = int(cfg["n_head"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"from_pretrained: {cfg_path} is not a GPT-2 config with "
                              f"n_head ({exc})") from None
    try:
        sd = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"from_pretrained: {weights} is not a readable safetensors "
                              f"file ({exc})") from None
    model = from_gpt2_state_dict(cls, sd, n_head=n_head, dtype=dtype, device=device)
    model.config.layer_norm_epsilon = float(cfg.get("layer_norm_epsilon", 1e-5))
    for m in model.modules():
        if hasattr(m, "eps"):
            m.eps = model.config.layer_norm_epsilon
    return model


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
