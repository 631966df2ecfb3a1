"""Training speed and peak memory, minigrad beside its PyTorch twin (:mod:`.torch_gpt`);
how each figure is measured is in the text of ``minigpt bench --help``
(:mod:`minigpt.bench.command`). PyTorch is imported only inside the functions that run it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np

import minigrad as mg
from minigrad import backend, optim

from ..model import GPT, GPTConfig

CONFIGS = {   # name: (model config, batch size), from issue 8
    "tiny": (dict(n_layer=4, n_head=4, n_embd=128, block_size=64, vocab_size=65), 32),
    "small": (dict(n_layer=6, n_head=6, n_embd=384, block_size=256, vocab_size=65), 8),
    "bpe": (dict(n_layer=4, n_head=4, n_embd=256, block_size=128, vocab_size=4096), 16),
}


def have_torch() -> bool:
    try:
        import torch  # noqa: F401
        return True
    except ImportError:
        return False


def matmul_peak_gflops(device="cpu", n=1024, repeats=7) -> float:
    """Best float32 GEMM rate of this machine, n x n x n, in GFLOP/s."""
    xp = backend.xp_for(device)
    a = xp.asarray(np.random.default_rng(0).standard_normal((n, n), dtype=np.float32))
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        c = a @ a
        backend.synchronize(device)
        best = min(best, time.perf_counter() - t)
    del c
    return 2 * n ** 3 / best / 1e9


def minigrad_step(cfg: GPTConfig, lr=1e-3, weight_decay=0.1, device="cpu"):
    mg.manual_seed(0)
    model = GPT(cfg, device=device)
    opt = optim.AdamW(optim.weight_decay_groups(model.named_parameters(), weight_decay), lr=lr)

    def step(idx, targets):
        _, loss = model(idx, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()
    return step, model


def _batches(cfg, batch, n, seed=0):
    rng = np.random.default_rng(seed)
    shape = (batch, cfg.block_size)
    return [(rng.integers(0, cfg.vocab_size, shape), rng.integers(0, cfg.vocab_size, shape))
            for _ in range(n)]


def time_training(name, steps=40, warmup=3, rounds=None, device="cpu", use_torch=True) -> dict:
    """Median ms/step of minigrad (and PyTorch), alternating in rounds (default: of 5 steps;
    more rounds cancel more of the machine's drift)."""
    rounds = rounds or max(1, steps // 5)
    params, batch = CONFIGS[name]
    cfg = GPTConfig(**params)
    ours, model = minigrad_step(cfg, device=device)
    steppers = {"minigrad": ours}
    if use_torch:
        from .torch_gpt import make_step
        steppers["torch"] = make_step(cfg, device=device,
                                      threads=None if device != "cpu" else os.cpu_count())
    batches = _batches(cfg, batch, 8)
    times = {k: [] for k in steppers}
    for k, fn in steppers.items():
        for i in range(warmup):
            fn(*batches[i % len(batches)])
    per_round = max(1, steps // rounds)
    for r in range(rounds):
        for k, fn in steppers.items():
            # let the other framework's idle threads stop spinning (OpenBLAS and OpenMP
            # busy-wait for up to ~0.2 s after their last call) before timing this one
            time.sleep(0.5)
            for i in range(per_round):
                idx, tg = batches[(r * per_round + i) % len(batches)]
                t = time.perf_counter()
                fn(idx, tg)
                times[k].append(time.perf_counter() - t)
    tokens = batch * cfg.block_size
    flops = model.flops_per_token(training=True) * tokens
    out = {"config": name, "batch": batch, "tokens_per_step": tokens, "flops_per_step": flops}
    for k, ts in times.items():
        ms = float(np.median(ts) * 1000)
        out[k] = {"ms_per_step": round(ms, 2), "tokens_per_s": round(tokens / ms * 1000, 1),
                  "gflops": round(flops / ms / 1e6, 2)}
    if "torch" in out:
        out["ratio_tokens_per_s"] = round(out["minigrad"]["tokens_per_s"]
                                          / out["torch"]["tokens_per_s"], 3)
    return out


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    """This process's peak resident set (VmHWM). Not getrusage's ru_maxrss: Linux carries
    that over exec() from the parent, so a fresh probe would report the parent's peak."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmHWM in /proc/self/status")


def memory_probe(framework: str, name: str, steps: int = 3) -> dict:
    """Run in a fresh process: peak resident-set growth over the post-import baseline."""
    params, batch = CONFIGS[name]
    cfg = GPTConfig(**params)
    if framework == "torch":
        import torch  # noqa: F401  (imported before the baseline)
        from .torch_gpt import make_step
        base = _rss_bytes()
        step = make_step(cfg, threads=os.cpu_count())
    else:
        backend.warm_up_kernels()   # compiled code loaded before the baseline, as torch's
        base = _rss_bytes()         # is by its import: the growth is the training's own
        step, _ = minigrad_step(cfg)
    for idx, tg in _batches(cfg, batch, steps):
        step(idx, tg)
    return {"framework": framework, "config": name, "peak_mb": round(
        (_peak_rss_bytes() - base) / 2 ** 20, 1)}


def peak_memory(name: str, use_torch=True) -> dict:
    out = {}
    for fw in ["minigrad"] + (["torch"] if use_torch else []):
        proc = subprocess.run([sys.executable, "-m", "minigpt.bench", "--memory-probe", fw, name],
                              capture_output=True, text=True, check=True)
        out[fw] = json.loads(proc.stdout.strip().splitlines()[-1])["peak_mb"]
    return out


__all__ = ["CONFIGS", "have_torch", "matmul_peak_gflops", "minigrad_step", "time_training",
           "memory_probe", "peak_memory"]
