"""The GPT of a token's life, built from minigrad only (GPT-2 architecture and names).

token ids -> wte + wpe -> N x Block(x + attn(ln_1(x)); x + mlp(ln_2(x))) -> ln_f -> lm_head
-> logits -> softmax -> next token. Shapes: B batch, T time, C n_embd, nh heads, hs head size.

Every stage's output goes through ``record(name, tensor, layer)`` and every stage runs inside
``minigrad.stage(label)``: a ``Recorder`` (used by minigpt.trace and minigpt.health) reads the
real forward pass that way, and minigrad.viz / detect_anomaly name the stage of each op.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

import minigrad as mg
import minigrad.functional as F
from minigrad import backend, nn
from minigrad.errors import IndexRangeError

from .errors import ConfigError


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


# ----------------------------------------------------------------------------- recording
# minigpt.trace and minigpt.health read the real forward pass through record(): each stage
# hands its output to the active Recorder, which keeps it and may replace it (the trace's
# finite-difference check perturbs one stage's output). With no Recorder active, record()
# costs one global lookup and returns its input unchanged.
_recorder = None


def record(name: str, t, layer: int | None = None):
    """Hand one stage's output to the active Recorder; returns the tensor to use next.
    Names are module-like: "tok_emb", "h.0.attn.q", "h.1.mlp.c_fc", "ln_f", "logits"."""
    if _recorder is None:
        return t
    return _recorder.record(name if layer is None else f"h.{layer}.{name}", t)


class Recorder:
    """While active, keep every stage output the model's forward record()s, by name:

        with Recorder() as rec:
            logits, _ = model(idx)
        rec["h.0.attn.q"]          # (B, nh, T, hs): the queries the attention really used

    retain_grad=True keeps each output's gradient after backward (``rec[name].grad``).
    overrides maps a name to fn(tensor) -> tensor, which replaces that output downstream.
    A second forward inside one Recorder overwrites the first one's entries."""

    def __init__(self, retain_grad: bool = False, overrides: dict | None = None):
        self.retain_grad = retain_grad
        self.overrides = dict(overrides or {})
        self.tensors: dict[str, mg.Tensor] = {}   # name -> stage output, in forward order

    def record(self, name: str, t):
        fn = self.overrides.get(name)
        if fn is not None:
            t = fn(t)
        if self.retain_grad and t.requires_grad:
            t.retain_grad()
        self.tensors[name] = t
        return t

    def __getitem__(self, name: str):
        return self.tensors[name]

    def __contains__(self, name: str) -> bool:
        return name in self.tensors

    def __enter__(self) -> "Recorder":
        global _recorder
        self._prev, _recorder = _recorder, self
        return self

    def __exit__(self, *exc):
        global _recorder
        _recorder = self._prev


class KVCache:
    """Keys and values of the positions seen so far, per layer, preallocated to
    block_size so each new token costs one position instead of the whole context."""

    def __init__(self, config: GPTConfig, batch: int, dtype, device):
        xp = backend.xp_for(device)
        hs = config.n_embd // config.n_head
        shape = (batch, config.n_head, config.block_size, hs)
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
        B, T, C = x.shape
        nh, hs = self.n_head, C // self.n_head
        qkv = self.c_attn(x)                                     # (B, T, 3C)
        if cache is None and _recorder is None:
            # the same maths as the lines below, fused into one op (tested equal): no
            # per-head copies in the graph. A trace (Recorder) takes the step-by-step path,
            # so that q, k, v and y are stage outputs with their own gradients.
            y = F.multi_head_attention(qkv, nh, is_causal=True, dropout_p=self.dropout,
                                       training=self.training)   # (B, T, 3C) -> (B, T, C)
            return self.resid_dropout(self.c_proj(y))            # (B, T, C)
        q, k, v = qkv.split(C, dim=2)                            # 3 x (B, T, C)
        q = record("attn.q", q.reshape(B, T, nh, hs).transpose(1, 2), layer)  # (B, nh, T, hs)
        k = k.reshape(B, T, nh, hs).transpose(1, 2)              # (B, T, C) -> (B, nh, T, hs)
        v = v.reshape(B, T, nh, hs).transpose(1, 2)              # (B, nh, T, hs)
        if cache is not None:   # append this step's keys/values; attend over all of them
            start, end = cache.length, cache.length + T
            cache.k[layer][:, :, start:end] = k.array
            cache.v[layer][:, :, start:end] = v.array
            k = mg.Tensor._make(cache.k[layer][:, :, :end], False)   # (B, nh, Tk, hs)
            v = mg.Tensor._make(cache.v[layer][:, :, :end], False)   # (B, nh, Tk, hs)
        k, v = record("attn.k", k, layer), record("attn.v", v, layer)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout,
                                           training=self.training)  # (B, nh, T, hs)
        y = record("attn.y", y, layer)
        y = y.transpose(1, 2).reshape(B, T, C)                   # (B, nh, T, hs) -> (B, T, C)
        y = record("attn.c_proj", self.c_proj(y), layer)         # (B, T, C)
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
            raise TypeError(f"GPT: idx must hold integer token ids, got dtype {data.dtype}")
        if data.ndim != 2:
            raise ValueError(f"GPT: idx must have shape (B, T), got {tuple(data.shape)}")
        if data.shape[0] == 0:
            raise ValueError("GPT: idx must hold at least one sequence, got B = 0")
        if data.shape[1] == 0:
            raise ValueError("GPT: idx must hold at least one token, got T = 0")
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
            raise ValueError(f"GPT: sequence length {start + T} exceeds block_size "
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
                raise ValueError(f"GPT: targets must have the shape of idx {(B, T)}, got "
                                 f"{tuple(t.shape)}")
            with mg.stage("loss"):
                loss = F.cross_entropy(logits.reshape(B * T, -1), t.reshape(-1),
                                       ignore_index=-1)
        return logits, loss

    # ------------------------------------------------------------------ generation
    def generate_steps(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None,
                       eos_token_id=None, seed=None, use_cache=True):
        """Yield (next_tokens (B,), last_logits (B, vocab) as NumPy) for each new token.
        The generator behind generate(); use it to stream tokens as they are made."""
        ids = self._check_idx(idx)
        _check_sampling(max_new_tokens, temperature, top_k, top_p, seed, eos_token_id)
        rng = np.random.default_rng(seed) if seed is not None else backend.rng("cpu")
        xp = backend.get_array_module(ids)
        block = self.config.block_size
        was_training = self.training
        self.eval()
        try:
            with mg.no_grad():
                cache, fed = None, 0   # fed: how many of ids the cache holds
                for _ in range(max_new_tokens):
                    if use_cache and ids.shape[1] <= block:
                        if cache is None:
                            cache = KVCache(self.config, ids.shape[0],
                                            self.transformer.wte.weight.dtype, self.device)
                        logits, _ = self(ids[:, fed:], cache=cache)
                        fed = ids.shape[1]
                    else:   # the window slid past block_size: positions shift, recompute
                        logits, _ = self(ids[:, -block:])
                    last = backend.to_numpy(logits.array[:, -1, :]).astype(np.float64)
                    nxt = sample_next(last, temperature, top_k, top_p, rng)        # (B,)
                    ids = xp.concatenate([ids, xp.asarray(nxt[:, None])], axis=1)
                    yield nxt, last
                    if eos_token_id is not None and bool(np.all(nxt == eos_token_id)):
                        return
        finally:
            self.train(was_training)

    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None,
                 eos_token_id=None, seed=None, use_cache=True):
        """Extend idx (B, T) by up to max_new_tokens sampled tokens (greedy when
        temperature is 0); stops early once every row produced eos_token_id."""
        ids = backend.to_numpy(self._check_idx(idx)).astype(np.int64)
        new = [nxt for nxt, _ in self.generate_steps(idx, max_new_tokens, temperature, top_k,
                                                      top_p, eos_token_id, seed, use_cache)]
        out = np.concatenate([ids] + [n[:, None] for n in new], axis=1) if new else ids
        return mg.Tensor(out)

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


def _is_number(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _check_sampling(max_new_tokens, temperature, top_k, top_p, seed=None, eos_token_id=None):
    """Validate generate()'s settings; each error names the argument and what it got."""
    if not isinstance(max_new_tokens, (int, np.integer)) or isinstance(max_new_tokens, bool) \
            or max_new_tokens < 0:
        raise ValueError(f"generate: max_new_tokens must be a non-negative int, got "
                         f"{max_new_tokens!r}")
    if not _is_number(temperature) or not temperature >= 0:
        raise ValueError(f"generate: temperature must be a number >= 0, got {temperature!r}")
    if top_k is not None and (not isinstance(top_k, (int, np.integer)) or isinstance(top_k, bool)
                              or top_k < 1):
        raise ValueError(f"generate: top_k must be a positive int or None, got {top_k!r}")
    if top_p is not None and (not _is_number(top_p) or not 0 < top_p <= 1):
        raise ValueError(f"generate: top_p must be a number in (0, 1] or None, got {top_p!r}")
    if seed is not None and not isinstance(seed, np.random.Generator) and (
            not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0):
        raise ValueError(f"generate: seed must be a non-negative int, a numpy Generator or "
                         f"None, got {seed!r}")
    if eos_token_id is not None and (not isinstance(eos_token_id, (int, np.integer))
                                     or isinstance(eos_token_id, bool)):
        raise ValueError(f"generate: eos_token_id must be an int token id or None, got "
                         f"{eos_token_id!r}")


def filter_logits(logits: np.ndarray, temperature=1.0, top_k=None, top_p=None) -> np.ndarray:
    """Probabilities (B, V) after temperature, top-k and nucleus (top-p) filtering.
    top-k keeps the k largest logits; top-p keeps the smallest set of most likely tokens
    whose probability reaches p (always at least one)."""
    z = logits / max(temperature, 1e-12)
    if top_k is not None and top_k < z.shape[-1]:
        kth = np.sort(z, axis=-1)[:, -top_k][:, None]
        z = np.where(z < kth, -np.inf, z)
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    if top_p is not None and top_p < 1:
        order = np.argsort(-p, axis=-1, kind="stable")
        sorted_p = np.take_along_axis(p, order, -1)
        before = np.cumsum(sorted_p, -1) - sorted_p         # mass of the more likely tokens
        drop_sorted = before >= top_p
        drop = np.zeros_like(drop_sorted)
        np.put_along_axis(drop, order, drop_sorted, -1)
        p = np.where(drop, 0.0, p)
        p /= p.sum(-1, keepdims=True)
    return p


def sample_next(logits: np.ndarray, temperature, top_k, top_p, rng) -> np.ndarray:
    """One token id per row: argmax when temperature is 0, else a draw from the
    filtered distribution (inverse CDF with one uniform per row)."""
    if temperature == 0:
        return logits.argmax(-1).astype(np.int64)
    p = filter_logits(logits, temperature, top_k, top_p)
    u = rng.random(p.shape[0])[:, None]
    cdf = np.cumsum(p, -1)
    return np.minimum((cdf < u * cdf[:, -1:]).sum(-1), p.shape[-1] - 1).astype(np.int64)
