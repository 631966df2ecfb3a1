"""GPT-2 interoperability: Hugging Face state dicts and local pretrained folders.

Hugging Face's GPT-2 uses Conv1D layers whose weights are stored (in, out), the
transpose of a Linear's (out, in); these are the four names below. Older exports
also carry the attention-mask buffers ``attn.bias`` / ``attn.masked_bias``, which
hold no weights and are skipped.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from minigrad import backend, serialization
from minigrad.errors import SerializationError, StateDictError

from .errors import CheckpointError, ConfigError

CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
MASK_BUFFERS = ("attn.bias", "attn.masked_bias")


def min_num_weights(config) -> int:
    """A lower bound on the number of weights a GPT of ``config`` holds: the embeddings
    (vocab_size + block_size rows of n_embd) and 12 n_embd^2 per block (attention 4 C^2,
    MLP 8 C^2).

    Loaders compare it with the weights a file really holds *before* building the model,
    so sizes written in a config (a checkpoint's model_config, a config.json, the number of
    layer names) cannot make the model allocate more memory than the file itself carries.
    >>> from minigpt.model import GPTConfig
    >>> min_num_weights(GPTConfig(vocab_size=10, block_size=4, n_layer=2, n_head=1, n_embd=8))
    1648
    """
    c = config.n_embd
    return (config.vocab_size + config.block_size) * c + 12 * config.n_layer * c * c


def check_weights_fit(config, state: dict, where: str) -> None:
    """CheckpointError unless ``state`` ({name: array}) holds at least
    ``min_num_weights(config)`` weights (see there)."""
    have = sum(int(np.prod(getattr(v, "shape", ()))) for v in state.values())
    need = min_num_weights(config)
    if need > have:
        raise CheckpointError(f"{where}: the model config (vocab_size {config.vocab_size}, "
                              f"block_size {config.block_size}, n_layer {config.n_layer}, "
                              f"n_embd {config.n_embd}) needs at least {need:,} weights but "
                              f"the file holds {have:,}; the config or the weights are damaged")


def _as_numpy(v):
    if hasattr(v, "array") and hasattr(v, "grad"):    # a minigrad Tensor
        v = v.array
    elif hasattr(v, "detach"):          # a torch tensor, without importing torch
        v = v.detach().cpu().numpy()
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
    wte, wpe = sd["transformer.wte.weight"], sd["transformer.wpe.weight"]
    if wte.ndim != 2 or wpe.ndim != 2 or wte.shape[1] != wpe.shape[1] or wte.dtype.kind != "f":
        raise CheckpointError(f"from_gpt2_state_dict: transformer.wte.weight (vocab_size, "
                              f"n_embd) and transformer.wpe.weight (block_size, n_embd) must be "
                              f"float matrices of the same width, got shapes {wte.shape} and "
                              f"{wpe.shape}, dtype {wte.dtype}")
    vocab_size, n_embd = wte.shape
    block_size = wpe.shape[0]
    layers = {int(m.group(1)) for k in sd if (m := re.match(r"transformer\.h\.(\d{1,6})\.", k))}
    if layers != set(range(len(layers))):
        raise CheckpointError(f"from_gpt2_state_dict: the blocks transformer.h.<i> must be "
                              f"numbered 0..n_layer-1, got {sorted(layers)[:10]}")
    if n_head is None:
        if n_embd % 64:
            raise ConfigError(f"from_gpt2_state_dict: cannot infer n_head for n_embd {n_embd} "
                              "(not a multiple of 64); pass n_head=")
        n_head = n_embd // 64
    config = GPTConfig(vocab_size=int(vocab_size), block_size=int(block_size),
                       n_layer=len(layers), n_head=int(n_head), n_embd=int(n_embd),
                       dropout=0.0, bias="transformer.ln_f.bias" in sd)
    check_weights_fit(config, sd, "from_gpt2_state_dict")
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
    try:
        model.load_state_dict({k: v.astype(model.transformer.wte.weight.dtype) for k, v in
                               ours.items()}, strict=True)
    except (StateDictError, ValueError, TypeError) as exc:
        raise CheckpointError(f"from_gpt2_state_dict: the weights do not fit a GPT-2 of "
                              f"{config}: {exc}") from None
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
    serialization.atomic_write(path / "model.safetensors", save(sd, metadata={"format": "np"}))
    serialization.atomic_write(path / "config.json", json.dumps(_hf_config(model.config), indent=2).encode())


def from_pretrained(cls, path, dtype=None, device=None):
    """Read a local folder with config.json and model.safetensors (GPT-2 layout).

    Anything wrong inside the two files is a CheckpointError (or a ConfigError for sizes a
    GPT cannot have); the weights file is validated (header, sizes, checksum when minigrad
    wrote it) before anything is allocated."""
    path = Path(path)
    cfg_path, weights = path / "config.json", path / "model.safetensors"
    for p in (cfg_path, weights):
        if not p.is_file():
            raise CheckpointError(f"from_pretrained: {p} does not exist (expected a folder "
                                  "with config.json and model.safetensors)")
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:   # not UTF-8, not JSON, nested too deeply
        raise CheckpointError(f"from_pretrained: {cfg_path} is not a JSON file "
                              f"({type(exc).__name__}: {str(exc)[:200]})") from None
    n_head = cfg.get("n_head") if isinstance(cfg, dict) else None
    eps = cfg.get("layer_norm_epsilon", 1e-5) if isinstance(cfg, dict) else None
    if isinstance(n_head, bool) or not isinstance(n_head, int) or n_head < 1:
        raise CheckpointError(f"from_pretrained: {cfg_path} must be a GPT-2 config object "
                              f"with an int n_head >= 1, got n_head {str(n_head)[:60]}")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < 1:
        raise CheckpointError(f"from_pretrained: {cfg_path}: layer_norm_epsilon must be a "
                              f"number in (0, 1), got {str(eps)[:60]}")
    try:
        sd = serialization.load_arrays(weights)   # validated before anything is allocated
    except SerializationError as exc:
        raise CheckpointError(f"from_pretrained: {weights} is not a readable safetensors "
                              f"file ({exc})") from None
    model = from_gpt2_state_dict(cls, sd, n_head=n_head, dtype=dtype, device=device)
    model.config.layer_norm_epsilon = float(eps)
    for m in model.modules():
        if hasattr(m, "eps"):
            m.eps = model.config.layer_norm_epsilon
    return model
