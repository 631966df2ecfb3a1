"""Speed and memory, measured side by side with PyTorch when it is installed.

    minigpt bench                      # tiny, small and bpe on the CPU, + generation, tokenizer
    minigpt bench --configs tiny --steps 30 --json bench.json
    minigpt bench --device cuda        # the same on a GPU (CuPy vs PyTorch CUDA)
    minigpt bench --ddp                # data-parallel tokens/s of 1 and 2 MPI ranks (tiny)
    minigpt bench --profile --configs tiny --steps 10   # where a step's time goes, per op

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
import sys

from minigrad.fileio import atomic_write

from ..cli import ArgumentParser, command, require_device
from ..model import GPTConfig
from .ddp_scaling import ddp_probe, print_ddp_report, time_ddp
from .generation import time_generation
from .machine import describe, machine_info, short_name
from .training import CONFIGS, have_torch, matmul_peak_gflops, memory_probe, peak_memory, \
    time_training


def tokenizer_figures() -> dict:
    from ..corpus import builtin_corpus
    from .tokenizer import DEFAULT_DATA, bench
    text = DEFAULT_DATA.read_text(encoding="utf-8") if DEFAULT_DATA.is_file() else builtin_corpus()
    return bench(text, [512, 1024, 4096], "gpt4", repeats=3)


def print_report(res: dict) -> None:
    print(f"machine: {res['machine']}, float32 matmul peak {res['matmul_peak_gflops']:.1f} "
          f"GFLOP/s, device {res['device']}")
    for line in describe(res["machine_info"]):
        print("  " + line)
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


def profile_configs(configs, steps, use_torch, json_path=None) -> int:
    """``minigpt bench --profile``: per phase and per op, each config, each framework."""
    from .profile import print_profile, profile_minigrad, profile_torch
    res = {"machine_info": machine_info(with_torch=use_torch), "profiles": []}
    for line in describe(res["machine_info"]):
        print(line)
    for name in configs:
        for fn in [profile_minigrad] + ([profile_torch] if use_torch else []):
            res["profiles"].append(fn(name, steps))
            print_profile(res["profiles"][-1])
    if json_path:
        atomic_write(json_path, json.dumps(res, indent=2).encode())
    return 0


def run(configs, steps, device, use_torch, generation, tokenizer, memory) -> dict:
    res = {"machine": None, "device": device,
           "matmul_peak_gflops": round(matmul_peak_gflops(device), 1), "training": []}
    if use_torch:
        import torch
        res["torch"] = torch.__version__
    for name in configs:
        res["training"].append(time_training(name, steps=steps, device=device,
                                             use_torch=use_torch))
    # read after the timings: the thread counts are those the steps ran with
    res["machine_info"] = machine_info(with_torch=use_torch)
    res["machine"] = short_name(res["machine_info"])
    if memory and device == "cpu" and sys.platform.startswith("linux"):
        res["memory"] = {name: peak_memory(name, use_torch) for name in configs}
    if generation:
        res["generation"] = time_generation(device=device)
    if tokenizer:
        res["tokenizer"] = tokenizer_figures()
    return res


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
    p.add_argument("--profile", action="store_true", help="instead: the time of each phase "
                   "(forward, backward, optimizer) and each op of a training step, minigrad "
                   "and PyTorch, for each of --configs (--steps default 10)")
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
    if args.profile:
        return profile_configs(configs, args.steps or 10, use_torch, args.json)
    if not use_torch and not args.no_torch:
        print("PyTorch is not installed: minigrad figures only (pip install torch==2.13.0)")
    res = run(configs, args.steps or 40, args.device, use_torch, not args.no_generation,
              not args.no_tokenizer, not args.no_memory)
    print_report(res)
    if args.json:
        atomic_write(args.json, json.dumps(res, indent=2).encode())
    return 0
