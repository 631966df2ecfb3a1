"""What machine a benchmark ran on: the CPU, its vector instructions, the BLAS library and
kernel each framework uses, and the thread counts. Figures from different machines must
never be compared as one: the same code read tiny 1.04-1.19x PyTorch on an AVX2 AMD EPYC
and 0.80x on an AVX-512 Intel Xeon, where OpenBLAS and MKL pick other kernels.

``machine_info(with_torch)`` returns a JSON-ready dict; ``describe(info)`` the lines the
benchmark prints; ``short_name(info)`` the one-line name for a figures table. Only the
standard library, threadpoolctl and (when asked) torch are read; nothing is changed.
"""
from __future__ import annotations

import os
import platform
import re


def _cpuinfo() -> dict:
    """The first processor's fields of /proc/cpuinfo (Linux), else {}."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return {}
    fields = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def vector_isa(flags) -> str:
    """The widest x86 vector instructions in a CPU's flag set, as 'AVX-512 (bf16, vnni)' or
    'AVX2', with '+ AMX' when the CPU has AMX tiles; ARM: 'NEON' / 'SVE'; else 'baseline'."""
    flags = set(flags)
    if "avx512f" in flags:
        extra = [name for name, flag in (("bf16", "avx512_bf16"), ("vnni", "avx512_vnni"),
                                         ("fp16", "avx512_fp16")) if flag in flags]
        isa = "AVX-512" + (f" ({', '.join(extra)})" if extra else "")
    elif "avx2" in flags:
        isa = "AVX2" + (" (FMA)" if "fma" in flags else "")
    elif "avx" in flags:
        isa = "AVX"
    elif "sve" in flags:
        isa = "SVE"
    elif "asimd" in flags or "neon" in flags:
        isa = "NEON"
    else:
        isa = "baseline"
    if "amx_tile" in flags:
        isa += " + AMX"
    return isa


def cpu_info() -> dict:
    """model (the model name, with vendor family/model numbers, which tell CPU generations
    apart where a VM names only 'AMD EPYC'), the vector ISA, and the logical cores."""
    info = _cpuinfo()
    model = info.get("model name") or info.get("Processor") or platform.processor() or \
        platform.machine()
    if "cpu family" in info and "model" in info:
        model += f" (family {info['cpu family']} model {info['model']})"
    flags = (info.get("flags") or info.get("Features") or "").split()
    return {"model": model, "arch": platform.machine(), "isa": vector_isa(flags),
            "logical_cores": os.cpu_count()}


def blas_info() -> list[dict]:
    """NumPy's BLAS as threadpoolctl sees it: library, version, kernel architecture (e.g.
    OpenBLAS 'Haswell' or 'SkylakeX'), threading layer and threads. [] without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keep = ("internal_api", "version", "architecture", "threading_layer", "num_threads")
    return [{k: lib.get(k) for k in keep} for lib in threadpool_info()
            if lib.get("user_api") == "blas"]


def torch_info() -> dict:
    """torch's version, threads, BLAS, oneDNN and the CPU capability it dispatches to."""
    import torch
    config = torch.__config__.show()

    def find(pattern):
        m = re.search(pattern, config)
        return m.group(1).strip() if m else None
    blas, mkl = find(r"BLAS_INFO=(\w+)"), find(r"Math Kernel Library Version ([\w.]+)")
    return {"version": torch.__version__, "num_threads": torch.get_num_threads(),
            "blas": f"{blas} {mkl}" if blas and mkl else blas,
            "onednn": find(r"MKL-DNN (v[\w.]+)"),
            "cpu_capability": find(r"CPU capability usage: (\w+)")}


def machine_info(with_torch: bool = False) -> dict:
    """Everything above, plus Python, NumPy and minigrad's threads (its pool and whether the
    compiled loops run), as one JSON-ready dict."""
    import numpy as np
    from minigrad import backend
    from minigrad.backend import threads
    info = {"cpu": cpu_info(), "python": platform.python_version(), "numpy": np.__version__,
            "blas": blas_info(),
            "minigrad": {"pool_threads": threads.NUM_THREADS,
                         "compiled_loops": backend.kernels_status()}}
    if with_torch:
        info["torch"] = torch_info()
    return info


def _blas_text(lib: dict) -> str:
    return (f"{lib['internal_api']} {lib['version']} ({lib['architecture']} kernels, "
            f"{lib['num_threads']} threads)")


def short_name(info: dict) -> str:
    """'AMD EPYC (family 25 model 17), AVX-512 (bf16, vnni), 2 cores, OpenBLAS SkylakeX':
    the name a figures table gives each machine."""
    cpu = info["cpu"]
    blas = ", ".join(f"{b['internal_api']} {b['architecture']}" for b in info["blas"])
    return f"{cpu['model']}, {cpu['isa']}, {cpu['logical_cores']} cores" + \
        (f", {blas}" if blas else "")


def describe(info: dict) -> list[str]:
    """The lines the benchmark prints about the machine."""
    cpu = info["cpu"]
    lines = [f"cpu: {cpu['model']} [{cpu['arch']}], {cpu['isa']}, {cpu['logical_cores']} "
             f"logical cores",
             f"numpy {info['numpy']}, BLAS: " + ("; ".join(map(_blas_text, info["blas"]))
                                                 or "not found (no threadpoolctl)"),
             f"minigrad: pool of {info['minigrad']['pool_threads']} threads, compiled loops "
             f"{info['minigrad']['compiled_loops']}"]
    t = info.get("torch")
    if t:
        lines.append(f"torch {t['version']}: {t['num_threads']} threads, BLAS {t['blas']}, "
                     f"oneDNN {t['onednn']}, CPU capability {t['cpu_capability']}")
    return lines
