"""Speed and memory, measured side by side with PyTorch when it is installed.

    minigpt bench                      # tiny, small and bpe configs on the CPU, + generation, tokenizer
    minigpt bench --configs tiny --steps 30 --json bench.json
    minigpt bench --device cuda        # the same on a GPU (CuPy vs PyTorch CUDA)
    minigpt bench --ddp                # data-parallel tokens/s of 1 and 2 MPI ranks (tiny)

Training: forward + backward + AdamW step on random batches, after warm-up; the two
frameworks alternate in rounds so that machine drift hits both alike; the figure is
the median ms/step. GFLOP/s counts 6 N + 12 L C T FLOPs per token (N parameters
without the position table, L layers, C width, T context: PaLM's estimate, as in
nanoGPT), and is also given as a fraction of this machine's float32 matmul peak,
measured in the same run. Peak memory is the growth of the resident set during the
steps over the process's size after imports, measured in a fresh process per
framework (so neither pays for the other's libraries).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

import minigrad as mg
from minigrad import backend, optim
from minigrad.fileio import atomic_write

from .cli import ArgumentParser, command, require_device
from .model import GPT, GPTConfig

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
        from .bench_torch import make_step
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
        from .bench_torch import make_step
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


def time_generation(name="small", lengths=(16, 64, 128, 256), repeats=9, device="cpu") -> dict:
    """Cost of one new token at growing context lengths, with and without the KV cache
    (median of ``repeats``, the lengths taken in turn so that machine drift hits them
    alike), and the time to generate block_size tokens both ways (median of three,
    alternating)."""
    from .model import KVCache
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


def tokenizer_figures() -> dict:
    from .bench_tokenizer import DEFAULT_DATA, bench
    from .corpus import builtin_corpus
    text = DEFAULT_DATA.read_text(encoding="utf-8") if DEFAULT_DATA.is_file() else builtin_corpus()
    return bench(text, [512, 1024, 4096], "gpt4", repeats=3)


def print_report(res: dict) -> None:
    print(f"machine: {res['machine']}, float32 matmul peak {res['matmul_peak_gflops']:.1f} "
          f"GFLOP/s, device {res['device']}")
    print(f"{'config':<7} {'framework':<9} {'ms/step':>9} {'tokens/s':>10} {'GFLOP/s':>8} "
          f"{'% peak':>7} {'peak MB':>8}")
    for r in res["training"]:
        for fw in ("minigrad", "torch"):
            if fw not in r:
                continue
            f = r[fw]
            mem = res.get("memory", {}).get(r["config"], {}).get(fw, "")
            print(f"{r['config']:<7} {fw:<9} {f['ms_per_step']:>9.1f} {f['tokens_per_s']:>10.0f} "
                  f"{f['gflops']:>8.1f} {100 * f['gflops'] / res['matmul_peak_gflops']:>6.1f}% "
                  f"{mem:>8}")
        if "ratio_tokens_per_s" in r:
            print(f"{r['config']:<7} minigrad/torch tokens/s ratio: {r['ratio_tokens_per_s']:.2f}")
    g = res.get("generation")
    if g:
        print(f"generation ({g['config']}): ms per new token at context "
              + ", ".join(f"{n}: {g['per_token']['cached_ms'][n]} cached / "
                          f"{g['per_token']['uncached_ms'][n]} uncached"
                          for n in g["per_token"]["cached_ms"]))
        print(f"  256th/16th token cost: cached {g['cached_last_over_first']}x, uncached "
              f"{g['uncached_last_over_first']}x; {len(g['per_token']['cached_ms']) and ''}"
              f"generating {GPTConfig(**CONFIGS[g['config']][0]).block_size - 1} tokens: "
              f"{g['generate']['cached_s']} s cached vs {g['generate']['uncached_s']} s "
              f"uncached ({g['cache_speedup']}x)")
    t = res.get("tokenizer")
    if t:
        print(f"tokenizer: train s {t.get('train_s')}; " + ", ".join(
            f"{k} {v}" for k, v in t.items() if "mb_s" in k or "ratio" in k))


def run(configs, steps, device, use_torch, generation, tokenizer, memory) -> dict:
    res = {"machine": f"{platform.machine()} {os.cpu_count()} cores, Python "
                      f"{platform.python_version()}, NumPy {np.__version__}",
           "device": device, "matmul_peak_gflops": round(matmul_peak_gflops(device), 1),
           "training": []}
    if use_torch:
        import torch
        res["torch"] = torch.__version__
    for name in configs:
        res["training"].append(time_training(name, steps=steps, device=device,
                                             use_torch=use_torch))
    if memory and device == "cpu" and sys.platform.startswith("linux"):
        res["memory"] = {name: peak_memory(name, use_torch) for name in configs}
    if generation:
        res["generation"] = time_generation(device=device)
    if tokenizer:
        res["tokenizer"] = tokenizer_figures()
    return res


# ----------------------------------------------------------------------------- data-parallel
# (ranks, threads per rank (None: all cores), sequences per rank ("half": half the config's),
#  copies: 2 = two independent 1-rank runs at once, the bound for 2 ranks on this machine)
DDP_RUNS = ((1, None, None, 1), (1, 1, None, 1), (1, 1, None, 2), (2, 1, None, 1),
            (2, None, None, 1), (2, 1, "half", 1))


def ddp_probe(name: str, steps: int, batch: int | None = None,
              warmup: int = 3) -> dict | None:
    """One rank of ``mpiexec -n N python -m minigpt.bench --ddp-probe NAME STEPS BATCH``:
    training steps of the config on this rank's own random batches (``batch`` sequences,
    default the config's), gradients averaged by minigpt.ddp. Returns rank 0's medians of
    the step, the wait for the slower rank and the gradient sync (None on the others)."""
    from .ddp import DDP
    ddp = DDP("cpu")
    params, default_batch = CONFIGS[name]
    batch = batch or default_batch
    cfg = GPTConfig(**params)
    mg.manual_seed(0)
    model = GPT(cfg)
    opt = optim.AdamW(optim.weight_decay_groups(model.named_parameters(), 0.1), lr=1e-3)
    plist = [p for g in opt.param_groups for p in g["params"]]
    batches = _batches(cfg, batch, 4, seed=1 + ddp.rank)
    step_s, wait_s, sync_s = [], [], []
    for i in range(warmup + steps):
        idx, tg = batches[i % len(batches)]
        t = time.perf_counter()
        _, loss = model(idx, tg)
        loss.backward()
        t_wait = time.perf_counter()
        if ddp.world_size > 1:
            ddp.comm.Barrier()                  # waiting for the slower rank, apart
        t_sync = time.perf_counter()
        ddp.sync(plist, loss.item())            # pack, all-reduce, unpack
        t_wait, t_sync = t_sync - t_wait, time.perf_counter() - t_sync
        optim.clip_grad_norm_(plist, 1.0)
        opt.step()
        opt.zero_grad()
        if i == warmup - 1:
            cpu0, wall0 = time.process_time(), time.perf_counter()
        if i >= warmup:
            step_s.append(time.perf_counter() - t)
            wait_s.append(t_wait)
            sync_s.append(t_sync)
    cores_used = ddp.comm.allgather((time.process_time() - cpu0)
                                    / (time.perf_counter() - wall0))
    if ddp.rank != 0:
        return None
    ms = float(np.median(step_s) * 1000)
    tokens = batch * cfg.block_size * ddp.world_size
    return {"ranks": ddp.world_size, "batch_per_rank": batch, "ms_per_step": round(ms, 1),
            "wait_ms": round(float(np.median(wait_s) * 1000), 2),
            "sync_ms": round(float(np.median(sync_s) * 1000), 2),
            "tokens_per_s": round(tokens / ms * 1000, 1), "reduction": ddp.reduction,
            "cores_used": round(sum(cores_used), 2),
            "grad_mb": round(sum(p.array.nbytes for p in plist) / 2 ** 20, 2)}


def time_ddp(name: str = "tiny", steps: int = 20, rounds: int = 3) -> dict:
    """tokens/s of 1 and 2 ranks (``mpiexec -n N``), each with BLAS and minigrad threads =
    the cores (oversubscribed when 2 ranks share them) or 1 per rank, with the config's batch
    per rank (the global batch grows with the ranks) and, last, with half of it (the same
    global batch as 1 rank); and of two independent 1-rank runs at once (what 2 ranks would
    reach with free communication). Rounds alternate the runs so machine drift hits each
    alike; the best round of each is kept."""
    from .ddp import DDPError, find_mpiexec, import_mpi
    import_mpi()                                # DDPError with the install command if missing
    mpiexec = find_mpiexec()
    if mpiexec is None:
        raise DDPError("no mpiexec next to this Python or on PATH: pip install mpich")
    cores = os.cpu_count() or 1
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # run from a checkout
    load_before = os.getloadavg()[0]
    best: dict = {}
    for _ in range(rounds):
        for ranks, threads, batch, copies in DDP_RUNS:
            threads = threads or cores
            batch = CONFIGS[name][1] // 2 if batch == "half" else CONFIGS[name][1]
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [
                root, os.environ.get("PYTHONPATH")])))
            for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                        "MINIGRAD_NUM_THREADS"):
                env[var] = str(threads)
            procs = [subprocess.Popen([mpiexec, "-n", str(ranks), sys.executable, "-m",
                                       "minigpt.bench", "--ddp-probe", name, str(steps),
                                       str(batch)], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, env=env)
                     for _ in range(copies)]
            outs = [p.communicate(timeout=600) for p in procs]
            if any(p.returncode != 0 for p in procs):
                raise DDPError(f"mpiexec -n {ranks} failed:\n"
                               + "".join(err[-2000:] for _, err in outs))
            rs = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
            r = max(rs, key=lambda x: x["ms_per_step"])          # the slower copy
            r.update(threads_per_rank=threads, copies=copies,
                     tokens_per_s=round(sum(x["tokens_per_s"] for x in rs), 1),
                     cores_used=round(sum(x["cores_used"] for x in rs), 2))
            key = (ranks, threads, batch, copies)
            if key not in best or r["tokens_per_s"] > best[key]["tokens_per_s"]:
                best[key] = r
    runs = list(best.values())                  # in the order of DDP_RUNS
    base = runs[0]["tokens_per_s"]
    for r in runs:
        r["speedup"] = round(r["tokens_per_s"] / base, 2)
    return {"config": name, "steps": steps, "rounds": rounds, "cores": cores,
            "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
            "runs": runs}


def print_ddp_report(res: dict) -> None:
    r0 = res["runs"][0]
    print(f"data-parallel scaling ({res['config']}, {r0['grad_mb']} MB of gradients; "
          f"median of {res['steps']} steps, best of "
          f"{res['rounds']} rounds; {res['cores']} cores, load average {res['load_before']} "
          f"before, {res['load_after']} after)")
    print(f"{'ranks':>12} {'threads/rank':>12} {'batch/rank':>10} {'ms/step':>8} {'wait ms':>8} "
          f"{'sync ms':>8} {'cores':>6} {'tokens/s':>9} {'vs first':>8}")
    for r in res["runs"]:
        ranks = str(r["ranks"]) if r["copies"] == 1 else f"{r['copies']} x 1 alone"
        print(f"{ranks:>12} {r['threads_per_rank']:>12} {r['batch_per_rank']:>10} "
              f"{r['ms_per_step']:>8.1f} {r['wait_ms']:>8.2f} {r['sync_ms']:>8.2f} "
              f"{r['cores_used']:>6.2f} {r['tokens_per_s']:>9.0f} {r['speedup']:>7.2f}x")
    print("wait: for the slower rank before the all-reduce; sync: packing, all-reduce and "
          "unpacking the gradients (median per step); cores: CPU seconds per second of all "
          "ranks together (less than ranks x threads: other jobs took the rest); "
          "'2 x 1 alone': two independent one-process runs at once, the most 2 ranks can get "
          "here")


def build_parser():
    """The flags of ``minigpt bench`` (the two probes are internal: the benchmark starts
    itself with them in fresh processes)."""
    p = ArgumentParser(prog="minigpt bench", description=__doc__, raw_description=True)
    p.add_argument("--configs", default="tiny,small,bpe",
                   help="comma-separated from " + ", ".join(CONFIGS) + " (default: all)")
    p.add_argument("--steps", type=int, default=None,
                   help="timed steps per framework (default 40; with --ddp 20)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="where both frameworks run (default: cpu)")
    p.add_argument("--no_torch", action="store_true", help="skip the PyTorch comparison")
    p.add_argument("--no_generation", action="store_true", help="skip the generation timings")
    p.add_argument("--no_tokenizer", action="store_true", help="skip the tokenizer timings")
    p.add_argument("--no_memory", action="store_true",
                   help="skip the peak-memory probes (fresh processes)")
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.add_argument("--memory_probe", nargs=2, metavar=("FRAMEWORK", "CONFIG"),
                   help=argparse.SUPPRESS)
    p.add_argument("--ddp", action="store_true", help="instead: data-parallel tokens/s of 1 "
                   "and 2 MPI ranks on the first of --configs (needs mpi4py and mpiexec)")
    p.add_argument("--ddp_probe", nargs=3, metavar=("CONFIG", "STEPS", "BATCH"),
                   help=argparse.SUPPRESS)
    return p


@command("bench")
def main(argv=None) -> int:
    """``minigpt bench``. Returns the exit status (minigpt.cli)."""
    p = build_parser()
    args = p.parse_args(argv)
    if args.memory_probe:
        print(json.dumps(memory_probe(*args.memory_probe)))
        return 0
    if args.ddp_probe:
        r = ddp_probe(args.ddp_probe[0], int(args.ddp_probe[1]), int(args.ddp_probe[2]))
        if r is not None:                     # rank 0
            print(json.dumps(r))
        return 0
    configs = [c for c in args.configs.split(",") if c]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown or not configs:
        p.error(f"--configs: unknown {unknown}; expected names from {list(CONFIGS)}")
    if args.steps is not None and args.steps < 1:
        p.error(f"--steps must be an int >= 1, got {args.steps}")
    if args.ddp:
        res = time_ddp(configs[0], steps=args.steps or 20)   # DDPError: one line (minigpt.cli)
        print_ddp_report(res)
        if args.json:
            atomic_write(args.json, json.dumps(res, indent=2).encode())
        return 0
    require_device(args.device)
    use_torch = not args.no_torch and have_torch()
    if not use_torch and not args.no_torch:
        print("PyTorch is not installed: minigrad figures only (pip install torch==2.13.0)")
    res = run(configs, args.steps or 40, args.device, use_torch, not args.no_generation,
              not args.no_tokenizer, not args.no_memory)
    print_report(res)
    if args.json:
        atomic_write(args.json, json.dumps(res, indent=2).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
