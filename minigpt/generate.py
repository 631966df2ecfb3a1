"""The one sampling loop: GPT.generate / GPT.generate_steps, ``minigpt sample`` and
``minigpt trace`` all draw their tokens here, so with the same settings and seed they pick
the same tokens.

    for nxt, logits in generate_steps(model, idx, 20, temperature=0.8, seed=1):
        ...                                   # nxt (B,) ids, logits (B, vocab) float64

Each new token costs one forward pass. The first reads the whole prompt into a KV cache,
each later one only the newest token (its keys and values join the cache). Once the context
outgrows block_size the positions shift, so each pass re-reads the last block_size tokens
without a cache. ``forward`` lets a caller wrap each pass (the trace runs it inside a
Recorder); the loop, the cache and the sampling stay the same.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

import minigrad as mg
from minigrad import backend

from .sampling import check_sampling_settings


@dataclass
class Pass:
    """One forward pass of the loop, as a ``forward`` hook sees it."""
    step: int            # 0: the prompt; s: the pass that reads generated token s
    ids: Any             # (B, T') the ids it feeds (the model's array module)
    cache: Any           # the KVCache it reads and extends; None once the window slid
    first_new: int       # positions of ids before this one were read by an earlier pass


def run_pass(model, p: Pass):
    """The default ``forward``: the model's logits (B, T', vocab) for one pass."""
    return model(p.ids, cache=p.cache)[0]


def generate_steps(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None,
                   eos_token_id=None, seed=None, use_cache=True,
                   forward: Callable[[Any, Pass], Any] | None = None):
    """Yield (next_tokens (B,), last_logits (B, vocab) as float64 NumPy) for each new token,
    up to max_new_tokens, stopping once every row produced eos_token_id.

    temperature 0 is greedy; top_k / top_p filter before drawing (``filter_logits``).
    ``seed``: an int (a fresh ``numpy.random.default_rng(seed)``), a numpy Generator to draw
    from, or None (minigrad's seeded generator, ``mg.manual_seed``). ``forward(model, pass)``
    runs each pass (default ``run_pass``), under no_grad. The settings are checked here, at
    the call (ConfigError, ``minigpt.sampling``); the model runs in eval mode while the
    generator runs and gets its mode back when it ends or is closed."""
    ids = model._check_idx(idx)
    rng = seed if isinstance(seed, np.random.Generator) else None
    check_sampling_settings(max_new_tokens=max_new_tokens, temperature=temperature,
                            top_k=top_k, top_p=top_p, seed=None if rng is not None else seed,
                            eos_token_id=eos_token_id, where="generate: ")
    if rng is None:
        rng = np.random.default_rng(seed) if seed is not None else backend.rng("cpu")
    return _steps(model, ids, max_new_tokens, temperature, top_k, top_p, eos_token_id, rng,
                  use_cache, forward or run_pass)


def _steps(model, ids, max_new_tokens, temperature, top_k, top_p, eos_token_id, rng,
           use_cache, forward):
    from .model import KVCache
    xp = backend.get_array_module(ids)
    block = model.config.block_size
    was_training = model.training
    model.eval()
    try:
        cache, fed = None, 0   # fed: how many of ids the cache holds
        for step in range(max_new_tokens):
            if use_cache and ids.shape[1] <= block:
                if cache is None:
                    cache = KVCache(model.config, ids.shape[0],
                                    model.transformer.wte.weight.dtype, model.device)
                p = Pass(step, ids[:, fed:], cache, 0)
                fed = ids.shape[1]
            else:   # the window slid past block_size: positions shift, recompute
                window = ids[:, -block:]
                p = Pass(step, window, None, 0 if step == 0 else window.shape[1] - 1)
            with mg.no_grad():   # (only around the pass: the caller's code between tokens
                logits = forward(model, p)   # keeps its own grad mode)
            last = backend.to_numpy(logits.array[:, -1, :]).astype(np.float64)   # (B, vocab)
            nxt = sample_next(last, temperature, top_k, top_p, rng)                # (B,)
            ids = xp.concatenate([ids, xp.asarray(nxt[:, None])], axis=1)
            yield nxt, last
            if eos_token_id is not None and bool(np.all(nxt == eos_token_id)):
                return
    finally:
        model.train(was_training)


def generate(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None,
             eos_token_id=None, seed=None, use_cache=True):
    """idx (B, T) extended by up to max_new_tokens sampled tokens, as a (B, T + n) int64
    Tensor (see generate_steps)."""
    ids = backend.to_numpy(model._check_idx(idx)).astype(np.int64)
    new = [nxt for nxt, _ in generate_steps(model, idx, max_new_tokens, temperature, top_k,
                                            top_p, eos_token_id, seed, use_cache)]
    out = np.concatenate([ids] + [n[:, None] for n in new], axis=1) if new else ids
    return mg.Tensor(out)


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


__all__ = ["Pass", "run_pass", "generate_steps", "generate", "filter_logits", "sample_next"]
