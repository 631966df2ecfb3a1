"""The GPT of a token's life, built from minigrad only (GPT-2 architecture and names).

token ids -> wte + wpe -> N x Block(x + attn(ln_1(x)); x + mlp(ln_2(x))) -> ln_f -> lm_head
-> logits -> softmax -> next token. Shapes: B batch, T time, C n_embd, nh heads, hs head size.

Every stage's output goes through ``record(name, tensor, layer)`` and every stage runs inside
``minigrad.stage(label)``: a ``Recorder`` (minigpt.recording; used by minigpt.tracing and
minigpt.health) reads the real forward pass that way, and minigrad.viz / detect_anomaly name
the stage of each op. The attention is one fused op whatever is active (training, a KV cache,
a Recorder); a Recorder receives the arrays that op computed. Sampling lives in
minigpt.generate (GPT.generate calls it).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

import minigrad as mg
import minigrad.functional as F
from minigrad import backend, nn
from minigrad.errors import DTypeError, IndexRangeError, ShapeError

from .errors import ConfigError
from . import generate as sampling_loop
from .generate import filter_logits, sample_next  # noqa: F401  (re-exported: old home)
from .recording import Recorder, intermediates, record  # noqa: F401  (Recorder: old home)


@dataclass
class GPTConfig:
    vocab_size: int = 50304   # number of token ids the model reads and predicts
    block_size: int = 1024    # longest context, in tokens (rows of the position table)
    n_layer: int = 12         # number of stacked transformer blocks
    n_head: int = 12          # attention heads per block; n_embd must divide evenly
    n_embd: int = 768         # width of the residual stream (embedding size C)
    dropout: float = 0.0      # dropout on embeddings, attention weights and residual branches
    bias: bool = True         # biases in Linear and LayerNorm layers (GPT-2 has them)
    layer_norm_epsilon: float = 1e-5   # eps inside every LayerNorm

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"GPTConfig.{name} must be a positive int, got {value!r}")
        if self.n_embd % self.n_head:
            raise ConfigError(f"GPTConfig: n_embd ({self.n_embd}) must be divisible by n_head "
                              f"({self.n_head})")
        if not (isinstance(self.dropout, (int, float)) and 0 <= self.dropout < 1):
            raise ConfigError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "GPTConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"GPTConfig: unknown keys {unknown}; known keys are {sorted(known)}")
        return cls(**d)


class KVCache:
    """Keys and values of the positions seen so far, per layer, preallocated to
    block_size so each new token costs one position instead of the whole context."""

    def __init__(self, config: GPTConfig, batch: int, dtype, device):
        xp = backend.xp_for(device)
        hs = config.n_embd // config.n_head
        shape = (batch, config.n_head, config.block_size, hs)   # (B, nh, block_size, hs)
        self.k = [xp.zeros(shape, dtype=dtype) for _ in range(config.n_layer)]
        self.v = [xp.zeros(shape, dtype=dtype) for _ in range(config.n_layer)]
        self.length = 0   # positions filled (the same for every layer)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig, **kw):
        super().__init__()
        self.n_head, self.n_embd = config.n_head, config.n_embd
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias, **kw)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias, **kw)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.dropout = config.dropout

    def forward(self, x, cache: KVCache | None = None, layer: int = 0):
        # one fused op splits q, k, v into heads, attends (causal) and merges the heads back;
        # with a cache it appends this call's keys/values and attends over all of them; with
        # a Recorder active it hands over q, k, v, scores, mask, weights and y as computed
        qkv = record("attn.c_attn", self.c_attn(x), layer)              # (B, T, C) -> (B, T, 3C)
        past = None if cache is None else (cache.k[layer], cache.v[layer], cache.length)
        y = F.multi_head_attention(qkv, self.n_head, is_causal=True, dropout_p=self.dropout,
                                   training=self.training, kv_cache=past,
                                   intermediates=intermediates("attn", layer))   # (B, T, C)
        y = record("attn.y", y, layer)                                  # (B, T, C): heads merged
        y = record("attn.c_proj", self.c_proj(y), layer)                # (B, T, C)
        return self.resid_dropout(y)


class MLP(nn.Module):
    def __init__(self, config: GPTConfig, **kw):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias, **kw)
        self.gelu = nn.GELU(approximate="tanh")                 # GPT-2's GELU
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias, **kw)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x, layer: int = 0):
        x = record("mlp.c_fc", self.c_fc(x), layer)             # (B, T, C) -> (B, T, 4C)
        x = record("mlp.gelu", self.gelu(x), layer)             # (B, T, 4C)
        x = record("mlp.c_proj", self.c_proj(x), layer)         # (B, T, 4C) -> (B, T, C)
        return self.dropout(x)


class Block(nn.Module):
    def __init__(self, config: GPTConfig, **kw):
        super().__init__()
        eps = config.layer_norm_epsilon
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=eps, bias=config.bias, **kw)
        self.attn = CausalSelfAttention(config, **kw)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=eps, bias=config.bias, **kw)
        self.mlp = MLP(config, **kw)

    def forward(self, x, cache: KVCache | None = None, layer: int = 0):
        # x = x + attn(ln_1(x)); x = x + mlp(ln_2(x)), each step tagged and recorded
        h = f"h.{layer}."
        with mg.stage(h + "ln_1"):
            a = record("ln_1", self.ln_1(x), layer)                         # (B, T, C)
        with mg.stage(h + "attn"):
            x = record("resid_attn", x + self.attn(a, cache, layer), layer)  # (B, T, C)
        with mg.stage(h + "ln_2"):
            m = record("ln_2", self.ln_2(x), layer)                         # (B, T, C)
        with mg.stage(h + "mlp"):
            x = record("resid_mlp", x + self.mlp(m, layer), layer)          # (B, T, C)
        return x


class GPT(nn.Module):
    def __init__(self, config: GPTConfig, dtype=None, device=None):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise ConfigError(f"GPT: config must be a GPTConfig, got {type(config).__name__}")
        self.config = config
        kw = {"dtype": dtype, "device": device}
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd, **kw),
            wpe=nn.Embedding(config.block_size, config.n_embd, **kw),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config, **kw) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon, bias=config.bias,
                              **kw),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False, **kw)
        self.lm_head.weight = self.transformer.wte.weight      # weight tying, as GPT-2
        self._init_weights()

    def _init_weights(self):
        """GPT-2 init: N(0, 0.02) everywhere, zero biases, and residual projections
        scaled by 1/sqrt(2 n_layer) so the residual stream's variance does not grow."""
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif ".ln_" in name or name.startswith("transformer.ln_f"):
                nn.init.ones_(p)
            elif name.endswith("c_proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * self.config.n_layer))
            else:
                nn.init.normal_(p, 0.0, 0.02)

    # ------------------------------------------------------------------ sizes
    def get_num_params(self, non_embedding: bool = True) -> int:
        """Parameters (tied weights counted once); without the position table by default,
        as in nanoGPT (the token table is reused as lm_head, so it counts)."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.transformer.wpe.weight.numel() if non_embedding else n

    def flops_per_token(self, training: bool = True) -> int:
        """FLOPs per token (PaLM appendix B, as nanoGPT's estimate_mfu): the matmuls cost
        6N per token for forward+backward (2N forward only), attention 12 L C T (6 L C T)."""
        cfg = self.config
        n = self.get_num_params()
        attn = 6 * cfg.n_layer * cfg.n_embd * cfg.block_size
        return (6 * n + 2 * attn) if training else (2 * n + attn)

    # ------------------------------------------------------------------ forward
    def _check_idx(self, idx):
        data = idx.array if isinstance(idx, mg.Tensor) else idx
        if not (hasattr(data, "dtype") and hasattr(data, "shape")):   # lists, tuples
            data = np.asarray(data)
        if data.dtype.kind not in "iu":
            raise DTypeError(f"GPT: idx must hold integer token ids, got dtype {data.dtype}")
        if data.ndim != 2:
            raise ShapeError(f"GPT: idx must have shape (B, T), got {tuple(data.shape)}")
        if data.shape[0] == 0:
            raise ShapeError("GPT: idx must hold at least one sequence, got B = 0")
        if data.shape[1] == 0:
            raise ShapeError("GPT: idx must hold at least one token, got T = 0")
        if data.size and (int(data.min()) < 0 or int(data.max()) >= self.config.vocab_size):
            bad = int(data.max()) if int(data.max()) >= self.config.vocab_size else int(data.min())
            raise IndexRangeError(f"GPT: token id {bad} is outside the vocabulary "
                                  f"(vocab_size {self.config.vocab_size}): the ids must come "
                                  "from the model's own tokenizer")
        return backend.to_device(data, self.transformer.wte.weight.device)

    def forward(self, idx, targets=None, cache: KVCache | None = None):
        """idx (B, T) int -> (logits (B, T, vocab), loss or None). ``targets`` (B, T),
        -1 = ignore. With a cache, idx holds only the new tokens."""
        idx = self._check_idx(idx)
        B, T = idx.shape
        start = cache.length if cache is not None else 0
        if start + T > self.config.block_size:
            raise ShapeError(f"GPT: sequence length {start + T} exceeds block_size "
                             f"{self.config.block_size}; crop the context to the last "
                             f"{self.config.block_size} tokens")
        xp = backend.get_array_module(idx)
        pos = xp.arange(start, start + T)                               # (T,)
        with mg.stage("tok_emb"):
            tok_emb = record("tok_emb", self.transformer.wte(idx))      # (B, T, C)
        with mg.stage("pos_emb"):
            pos_emb = record("pos_emb", self.transformer.wpe(pos))      # (T, C)
        with mg.stage("emb"):
            x = record("emb", self.transformer.drop(tok_emb + pos_emb))  # (B, T, C)
        for i, block in enumerate(self.transformer.h):
            x = block(x, cache, i)                                      # (B, T, C)
        if cache is not None:
            cache.length += T
        with mg.stage("ln_f"):
            x = record("ln_f", self.transformer.ln_f(x))                # (B, T, C)
        with mg.stage("lm_head"):
            logits = record("logits", self.lm_head(x))                  # (B, T, vocab)
        loss = None
        if targets is not None:
            t = targets.array if isinstance(targets, mg.Tensor) else np.asarray(targets)
            if tuple(t.shape) != (B, T):
                raise ShapeError(f"GPT: targets must have the shape of idx {(B, T)}, got "
                                 f"{tuple(t.shape)}")
            with mg.stage("loss"):
                loss = F.cross_entropy(logits.reshape(B * T, -1), t.reshape(-1),
                                       ignore_index=-1)
        return logits, loss

    # ------------------------------------------------------------------ generation
    def generate_steps(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None,
                       eos_token_id=None, seed=None, use_cache=True):
        """Yield (next_tokens (B,), last_logits (B, vocab) as NumPy) for each new token:
        minigpt.generate.generate_steps, the one sampling loop. Use it to stream tokens."""
        return sampling_loop.generate_steps(self, idx, max_new_tokens, temperature, top_k,
                                            top_p, eos_token_id, seed, use_cache)

    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None,
                 eos_token_id=None, seed=None, use_cache=True):
        """Extend idx (B, T) by up to max_new_tokens sampled tokens (greedy when
        temperature is 0); stops early once every row produced eos_token_id."""
        return sampling_loop.generate(self, idx, max_new_tokens, temperature, top_k, top_p,
                                      eos_token_id, seed, use_cache)

    @property
    def device(self):
        return self.transformer.wte.weight.device

    # ------------------------------------------------------------------ GPT-2 weights
    @classmethod
    def from_gpt2_state_dict(cls, sd, n_head=None, dtype=None, device=None) -> "GPT":
        from .gpt2 import from_gpt2_state_dict
        return from_gpt2_state_dict(cls, sd, n_head=n_head, dtype=dtype, device=device)

    def to_gpt2_state_dict(self) -> dict:
        from .gpt2 import to_gpt2_state_dict
        return to_gpt2_state_dict(self)

    @classmethod
    def from_pretrained(cls, path, dtype=None, device=None) -> "GPT":
        from .gpt2 import from_pretrained
        return from_pretrained(cls, path, dtype=dtype, device=device)

    def save_pretrained(self, path) -> None:
        from .gpt2 import save_pretrained
        save_pretrained(self, path)

