"""Data-parallel scaling: tokens/s of 1 and 2 MPI ranks (``minigpt bench --ddp``).

Each run is ``mpiexec -n N python -m minigpt.bench --ddp-probe ...``; :func:`ddp_probe` is
one rank of it, :func:`time_ddp` starts the runs and keeps the best round of each.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np

import minigrad as mg
from minigrad import optim

from ..model import GPT, GPTConfig
from .training import CONFIGS, _batches

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
    from ..ddp import DDP
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
    from ..ddp import DDPError, find_mpiexec, import_mpi
    import_mpi()                                # DDPError with the install command if missing
    mpiexec = find_mpiexec()
    if mpiexec is None:
        raise DDPError("no mpiexec next to this Python or on PATH: pip install mpich")
    cores = os.cpu_count() or 1
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
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


__all__ = ["DDP_RUNS", "ddp_probe", "time_ddp", "print_ddp_report"]
