"""Generation speed: the cost of one new token as the context grows, with and without the
KV cache, and the time to generate a whole block both ways."""
from __future__ import annotations

import time

import numpy as np

import minigrad as mg
from minigrad import backend

from ..model import GPT, GPTConfig, KVCache
from .training import CONFIGS

def time_generation(name="small", lengths=(16, 64, 128, 256), repeats=9, device="cpu") -> dict:
    """Cost of one new token at growing context lengths, with and without the KV cache
    (median of ``repeats``, the lengths taken in turn so that machine drift hits them
    alike), and the time to generate block_size tokens both ways (median of three,
    alternating)."""
    params, _ = CONFIGS[name]
    cfg = GPTConfig(**params)
    mg.manual_seed(0)
    model = GPT(cfg, device=device).eval()
    rng = np.random.default_rng(0)
    prompts = {n: rng.integers(0, cfg.vocab_size, (1, n)) for n in lengths}
    cached, plain = {n: [] for n in lengths}, {n: [] for n in lengths}
    with mg.no_grad():
        for _ in range(repeats):
            for n, ids in prompts.items():
                cache = KVCache(cfg, 1, model.transformer.wte.weight.dtype, model.device)
                model(ids[:, :-1], cache=cache)
                t = time.perf_counter()
                model(ids[:, -1:], cache=cache)                 # the n-th token, cached
                backend.synchronize(device)
                cached[n].append(time.perf_counter() - t)
                t = time.perf_counter()
                model(ids)                                       # the n-th token, no cache
                backend.synchronize(device)
                plain[n].append(time.perf_counter() - t)
    per_token = {"cached_ms": {n: round(float(np.median(cached[n])) * 1000, 3) for n in lengths},
                 "uncached_ms": {n: round(float(np.median(plain[n])) * 1000, 3) for n in lengths}}
    runs = {True: [], False: []}
    prompt = np.zeros((1, 1), dtype=np.int64)
    for _ in range(3):                  # alternating, median of three
        for use_cache in (True, False):
            t = time.perf_counter()
            model.generate(prompt, cfg.block_size - 1, temperature=0, use_cache=use_cache)
            runs[use_cache].append(time.perf_counter() - t)
    total = {"cached_s": round(float(np.median(runs[True])), 3),
             "uncached_s": round(float(np.median(runs[False])), 3)}
    first, last = min(lengths), max(lengths)
    return {"config": name, "per_token": per_token, "generate": total,
            "cached_last_over_first": round(per_token["cached_ms"][last]
                                            / per_token["cached_ms"][first], 2),
            "uncached_last_over_first": round(per_token["uncached_ms"][last]
                                              / per_token["uncached_ms"][first], 2),
            "cache_speedup": round(total["uncached_s"] / total["cached_s"], 2),
            "tokens_per_s_cached": round((cfg.block_size - 1) / total["cached_s"], 1)}


__all__ = ["time_generation"]
