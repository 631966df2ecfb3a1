"""What data-parallel training (minigpt.ddp) needs from CuPy and the MPI library: GPU
selection per process, CUDA-aware MPI detection and NCCL (issue 10).

Nothing here is used on the CPU path, and nothing outside minigpt.ddp imports this module.
Every function loads what it needs when it is called; CuPy comes from __init__.py's
accessors (``cupy_module``, ``nccl_module``), the one file that imports it.
"""
from __future__ import annotations

import os

import numpy as np

from . import check_device, cuda_is_available, cupy_module, nccl_module


def cuda_device_count() -> int:
    """How many CUDA devices this process sees (0 without CuPy or a GPU). Creates no context."""
    try:
        return int(cupy_module().cuda.runtime.getDeviceCount())
    except Exception:   # ImportError, CUDARuntimeError (no driver, no device)
        return 0


def use_cuda_device(index: int) -> int:
    """Make GPU ``index % cuda_device_count()`` this process's current device; call it before
    any CuPy array exists (each MPI rank on a node takes its own GPU). Returns the index."""
    n = cuda_device_count()
    if n == 0:
        check_device("cuda")          # raises the usual "CuPy or a GPU is not available"
    index = int(index) % n
    cupy_module().cuda.Device(index).use()
    return index


def is_cuda_aware_mpi() -> bool:
    """Whether the MPI library loaded in this process can read and write GPU memory, asked
    through ``MPIX_Query_cuda_support()`` (MPICH >= 4, Open MPI >= 4 with mpi-ext). False when
    the library does not have that function (then it is not known to be CUDA-aware)."""
    import ctypes
    try:
        with open("/proc/self/maps") as f:     # the files mapped into this process
            paths = {line.split()[-1] for line in f if line.rstrip().endswith(".so")
                     or ".so." in line}
    except OSError:   # not Linux
        paths = set()
    libs = sorted(p for p in paths if os.path.basename(p).startswith("libmpi"))
    for path in libs:
        try:
            query = getattr(ctypes.CDLL(path), "MPIX_Query_cuda_support")
        except (OSError, AttributeError):
            continue
        query.restype = ctypes.c_int
        return bool(query())
    return False


def nccl_available() -> bool:
    """True when CuPy was built with NCCL (``cupy.cuda.nccl``) and a GPU answers."""
    if not cuda_is_available():
        return False
    try:
        return bool(getattr(nccl_module(), "available", True))
    except Exception:
        return False


def nccl_unique_id():
    """A new NCCL id (a tuple of ints): made on one rank, broadcast to the others, given to
    ``nccl_communicator`` on every rank."""
    return nccl_module().get_unique_id()


def nccl_communicator(world_size: int, unique_id, rank: int):
    """An NCCL communicator over ``world_size`` processes, one GPU each (collective: every
    rank calls it with the same id)."""
    return nccl_module().NcclCommunicator(int(world_size), unique_id, int(rank))


def nccl_allreduce_sum_(comm, array) -> None:
    """Sum a contiguous CuPy array over the ranks of ``comm``, in place, on the current
    stream (later work on that stream sees the result; no host round trip)."""
    nccl = nccl_module()
    types = {np.dtype(np.float32): nccl.NCCL_FLOAT32, np.dtype(np.float64): nccl.NCCL_FLOAT64,
             np.dtype(np.float16): nccl.NCCL_FLOAT16}
    dtype = np.dtype(array.dtype)
    if dtype not in types:
        raise TypeError(f"nccl_allreduce_sum_: unsupported dtype {dtype}")
    stream = cupy_module().cuda.get_current_stream()
    comm.allReduce(array.data.ptr, array.data.ptr, array.size, types[dtype], nccl.NCCL_SUM,
                   stream.ptr)
