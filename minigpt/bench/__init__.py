"""``minigpt bench``: speed and memory, measured side by side with PyTorch when it is installed.

    minigpt bench --configs tiny --steps 30 --json bench.json
    python -m minigpt.bench --help               # the same command

- ``command.py``: the command (flags, the report) and how each figure is measured;
- ``training.py``: training ms/step, GFLOP/s and peak memory;
- ``torch_gpt.py``: the PyTorch twin of :class:`minigpt.model.GPT` that the figures compare
  against (imported only when torch is installed and asked for);
- ``generation.py``: the cost of a new token, with and without the KV cache;
- ``ddp_scaling.py``: tokens/s of 1 and 2 MPI ranks (``--ddp``);
- ``tokenizer.py``: the BPE tokenizer against tiktoken (also ``scripts/bench_tokenizer.py``).

Importing this package imports neither torch nor tiktoken: the functions that need them
import them.
"""
from .command import build_parser, main, print_report, run, tokenizer_figures
from .ddp_scaling import DDP_RUNS, ddp_probe, print_ddp_report, time_ddp
from .generation import time_generation
from .training import (CONFIGS, have_torch, matmul_peak_gflops, memory_probe, minigrad_step,
                       peak_memory, time_training)

__all__ = ["main", "build_parser", "run", "print_report", "tokenizer_figures", "CONFIGS",
           "have_torch", "matmul_peak_gflops", "minigrad_step", "time_training",
           "memory_probe", "peak_memory", "time_generation", "DDP_RUNS", "ddp_probe",
           "time_ddp", "print_ddp_report"]
