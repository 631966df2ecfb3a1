"""The one place that knows about array modules: NumPy on "cpu", CuPy on "cuda".

Every op is written once against ``xp`` (the array module of its inputs, as in
chainer). This is the only file in the project that imports CuPy; a test checks
that. CuPy is imported lazily, so a machine without it (or without a GPU) never
pays for it and gets a clear error only when it asks for "cuda".
"""
from __future__ import annotations

import math
import os
import threading

import numpy as np

DEVICES = ("cpu", "cuda")

_cupy = None            # the cupy module once imported successfully
_cupy_error = None      # why importing / initialising cupy failed, if it did
_default_device = None  # resolved lazily from MINIGRAD_DEVICE
_np_rng = np.random.default_rng()


def _tune_malloc():
    """Keep freed large arrays in glibc's heap for reuse.

    By default glibc hands every large array fresh pages from mmap and returns them on
    free, so each op's output pays ~1000 page faults per 4 MB: for elementwise ops that
    costs ten times the arithmetic. Raising the mmap and trim thresholds makes freed
    blocks reusable, as a caching allocator would; the peak memory stays the same.
    One arena for all threads: minigrad's pool threads would otherwise each get an arena
    of their own, whose freed blocks the other threads cannot reuse (+8% peak memory).
    Linux/glibc only; MINIGRAD_MALLOC_TUNING=0 turns it off."""
    if os.environ.get("MINIGRAD_MALLOC_TUNING", "1") == "0" or not os.uname().sysname == "Linux":
        return False
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8
        return bool(libc.mallopt(M_MMAP_THRESHOLD, 1 << 30) and
                    libc.mallopt(M_TRIM_THRESHOLD, 1 << 30) and
                    libc.mallopt(M_ARENA_MAX, 1))
    except (OSError, AttributeError):   # not glibc (musl, macOS): leave it alone
        return False


MALLOC_TUNED = _tune_malloc()


def _load_cupy():
    """Import CuPy and check that a GPU answers; remember the failure reason."""
    global _cupy, _cupy_error
    if _cupy is not None or _cupy_error is not None:
        return _cupy
    try:
        import cupy  # the only cupy import in the project
        cupy.cuda.runtime.getDeviceCount()
        cupy.zeros(1)  # fails here when the driver or the device is missing
        _cupy = cupy
    except Exception as exc:  # ImportError, CUDARuntimeError, ...
        _cupy_error = f"{type(exc).__name__}: {exc}"
    return _cupy


def cuda_is_available() -> bool:
    """True when CuPy imports and a CUDA device answers."""
    return _load_cupy() is not None


def check_device(device) -> str:
    """Normalise a device name ("cpu", "cuda", "cuda:0") or raise a clear error."""
    if device is None:
        return get_default_device()
    name = str(device).split(":")[0]
    if name not in DEVICES:
        raise ValueError(f"device: expected one of {DEVICES}, got {device!r}")
    if name == "cuda" and not cuda_is_available():
        raise RuntimeError(
            "device='cuda' was requested but CuPy or a GPU is not available "
            f"({_cupy_error}). Install CuPy (pip install 'minigrad-minigpt[cuda]') on a machine "
            "with an NVIDIA GPU, or use device='cpu'.")
    return name


def set_default_device(device: str) -> None:
    """Device used by constructors when none is given (also set by MINIGRAD_DEVICE)."""
    global _default_device
    _default_device = check_device(device)


def get_default_device() -> str:
    global _default_device
    if _default_device is None:
        env = os.environ.get("MINIGRAD_DEVICE", "cpu")
        if env.split(":")[0] not in DEVICES:
            raise ValueError(f"MINIGRAD_DEVICE: expected one of {DEVICES}, got {env!r}")
        _default_device = "cpu"  # so check_device below cannot recurse
        _default_device = check_device(env)
    return _default_device


def xp_for(device: str):
    """The array module for a device name."""
    return _cupy if check_device(device) == "cuda" else np


def device_of(array) -> str:
    """"cpu" for NumPy arrays (and scalars), "cuda" for CuPy arrays."""
    if isinstance(array, np.ndarray) or _cupy is None:
        return "cpu"
    return "cuda" if isinstance(array, _cupy.ndarray) else "cpu"


def get_array_module(array):
    """NumPy or CuPy, whichever owns ``array`` (chainer's ``xp`` idiom)."""
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return _cupy
    return np


def to_device(array, device: str):
    """Move an array to a device (a copy only when it changes device)."""
    device = check_device(device)
    if device_of(array) == device:
        return array
    if device == "cuda":
        return _cupy.asarray(array)
    return _cupy.asnumpy(array)


def to_numpy(array) -> np.ndarray:
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return _cupy.asnumpy(array)
    return np.asarray(array)


def synchronize(device: str = "cpu") -> None:
    """Wait for queued GPU work (for timing); nothing to do on the CPU."""
    if device == "cuda" and _cupy is not None:
        _cupy.cuda.Device().synchronize()


# ----------------------------------------------------------------------------- RNG
def manual_seed(seed: int) -> None:
    """Seed every backend's random generator (NumPy always, CuPy when loaded)."""
    global _np_rng
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"manual_seed: seed must be a non-negative int, got {seed!r}")
    _np_rng = np.random.default_rng(int(seed))
    if _load_cupy() is not None:
        _cupy.random.seed(int(seed))


def rng(device: str = "cpu"):
    """The seeded random generator of a device (numpy.random.Generator or cupy.random)."""
    if check_device(device) == "cuda":
        return _cupy.random
    return _np_rng


def random_normal(shape, dtype, device: str = "cpu"):
    """Standard normal samples of ``shape`` and ``dtype`` from the device's seeded generator."""
    dtype = np.dtype(dtype)
    if check_device(device) == "cuda":
        return _cupy.random.standard_normal(shape, dtype=dtype)
    if dtype in (np.float32, np.float64):
        return _np_rng.standard_normal(shape, dtype=dtype)
    return _np_rng.standard_normal(shape).astype(dtype)


def random_uniform(shape, dtype, device: str = "cpu"):
    """Uniform samples in [0, 1) of ``shape`` and ``dtype`` from the device's seeded generator."""
    dtype = np.dtype(dtype)
    if check_device(device) == "cuda":
        return _cupy.random.random_sample(shape, dtype=dtype)
    if dtype in (np.float32, np.float64):
        return _np_rng.random(shape, dtype=dtype)
    return _np_rng.random(shape).astype(dtype)


def get_rng_state() -> dict:
    """The NumPy generator's state as plain JSON-able data (for checkpoints)."""
    return _np_rng.bit_generator.state


def set_rng_state(state: dict) -> None:
    _np_rng.bit_generator.state = state


# ----------------------------------------------------------------------------- kernels
def scatter_add(target, index, values) -> None:
    """``target[index] += values`` where repeated indices accumulate (in place)."""
    if _cupy is not None and isinstance(target, _cupy.ndarray):
        import cupyx  # part of the cupy package
        cupyx.scatter_add(target, index, values)
    else:
        np.add.at(target, index, values)


def index_add_rows(target, index, values) -> None:
    """``target[index] += values`` for a 1-D or N-D integer ``index`` into axis 0, with
    repeated rows accumulating: the embedding gradient. Sorting the rows and summing
    each run with ``add.reduceat`` beats ``np.add.at`` several times on CPU."""
    if _cupy is not None and isinstance(target, _cupy.ndarray):
        scatter_add(target, index, values)
        return
    flat = index.reshape(-1)
    rows = values.reshape((flat.size,) + target.shape[1:])
    loops = kernels_for(np, target, rows)
    if loops is not None and flat.dtype.kind in "iu" and flat.size:   # compiled: one pass
        loops.index_add_rows_(target.reshape(target.shape[0], -1), np.ascontiguousarray(flat),
                              rows.reshape(flat.size, -1))
        return
    order = np.argsort(flat, kind="stable")
    sorted_idx = flat[order]
    starts = np.flatnonzero(np.concatenate(([True], sorted_idx[1:] != sorted_idx[:-1])))
    target[sorted_idx[starts]] += np.add.reduceat(rows[order], starts, axis=0)


def tanh(x):
    """tanh(x) as a new array (see tanh_)."""
    xp = get_array_module(x)
    if xp is not np:
        return xp.tanh(x)
    out = np.array(x, copy=True)
    tanh_(out)
    return out


def tanh_(u) -> None:
    """u <- tanh(u) in place, as 1 - 2 / (1 + e^(2u)): NumPy's float32 exp is vectorised
    where its tanh is not, so this is ~2x faster on CPU; exact limits at +-inf (no NaN)."""
    if get_array_module(u) is not np:
        get_array_module(u).tanh(u, out=u)
        return
    u *= 2
    with np.errstate(over="ignore"):
        np.exp(u, out=u)
    u += 1
    np.reciprocal(u, out=u)
    u *= -2
    u += 1


# ----------------------------------------------------------------------------- CPU threads
# NumPy runs each elementwise op on one core, and BLAS runs its own threads, whose idle
# workers spin on the other cores for a while after every call (OpenBLAS: ~0.1 s). So on the
# CPU minigrad splits its big work itself: the rows of a fused op, the rows of a Linear's
# product, dx beside dW, the batch of an attention, one piece per core on one pool, with
# BLAS held at one thread per piece meanwhile (threadpoolctl) so that nothing else spins on
# the cores. NumPy and compiled loops release the GIL, so the pieces really run at once.
# Work too small to repay a thread's wake-up (~0.1 ms here) runs on the calling thread, with
# BLAS threading as usual. CuPy needs none of this.
NUM_THREADS = max(1, int(os.environ.get("MINIGRAD_NUM_THREADS", os.cpu_count() or 1)))
PARALLEL_MIN_SIZE = int(os.environ.get("MINIGRAD_PARALLEL_MIN_SIZE", 1 << 19))  # smaller: 1 thread
PARALLEL_MIN_FLOPS = 1 << 24   # a matmul below this runs whole, threaded by BLAS as it likes
_pool = None


_in_piece = threading.local()   # .on: this thread is running a piece (no nested splitting)


def run_parallel(tasks) -> None:
    """Run the zero-argument callables in ``tasks`` on this thread and minigrad's pool at
    once; returns when all are done (re-raising the first error). Each thread takes the next
    task not yet taken, so when a pool thread wakes late (its core busy elsewhere), this
    thread goes on with the rest instead of waiting for it.
    Inside a piece (an op split again by the op it calls) they run one after another: the
    cores are busy already, and the pool's threads may all be waiting on this one."""
    global _pool
    if len(tasks) == 1 or getattr(_in_piece, "on", False):
        for t in tasks:
            t()
        return
    if _pool is None:
        from concurrent.futures import ThreadPoolExecutor
        _pool = ThreadPoolExecutor(max(1, NUM_THREADS - 1), thread_name_prefix="minigrad")
    queue = iter(tasks)          # shared: next() on it is atomic under the GIL

    def take_tasks():
        _in_piece.on = True
        try:
            for task in queue:
                task()
        finally:
            _in_piece.on = False
    futures = [_pool.submit(take_tasks) for _ in range(min(NUM_THREADS, len(tasks)) - 1)]
    try:
        take_tasks()
    finally:
        for f in futures:
            f.result()


def _piece_tasks(fn, n: int, count: int):
    """Tasks calling fn(lo, hi) on ``count`` near-equal contiguous pieces of range(n)."""
    bounds = [n * i // count for i in range(count + 1)]
    return [lambda lo=lo, hi=hi: fn(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]


def split_rows(fn, n: int, size: int, xp=np) -> None:
    """fn(lo, hi) over [0, n), one piece per core when ``size`` (elements of work in all) is
    at least PARALLEL_MIN_SIZE, else once. For compiled loops and other GIL-free calls that
    need no blocking (parallel_for blocks NumPy ufunc chains)."""
    count = min(NUM_THREADS, n)
    if xp is not np or count < 2 or size < PARALLEL_MIN_SIZE:
        fn(0, n)
        return
    run_parallel(_piece_tasks(fn, n, count))


BLOCK_SIZE = 1 << 17   # elements per call of a kernel: its temporaries stay in the L2 cache


def parallel_for(fn, n: int, size: int | None = None, xp=np) -> None:
    """Call fn(lo, hi) over [0, n) (items of ``size`` elements in all, default n): on the
    CPU in blocks of about BLOCK_SIZE elements, so that the kernel's temporaries are small
    and cache-resident, spread over NUM_THREADS threads when the work is large enough; on
    the GPU once, as fn(0, n)."""
    size = n if size is None else size
    if xp is not np or n == 0:
        fn(0, n)
        return
    step = max(1, n * BLOCK_SIZE // max(size, 1))   # items per block

    def blocked(lo, hi):
        for a in range(lo, hi, step):
            fn(a, min(a + step, hi))
    split_rows(blocked, n, size, xp)


# BLAS at one thread while minigrad's pieces run. threadpoolctl finds the BLAS libraries
# loaded in this process (NumPy's OpenBLAS, MKL, BLIS); setting a thread count is one C
# call (~2 us), and the previous counts come back when the outermost block ends.
_blas = None            # [threadpoolctl library controllers for BLAS], once looked up
_blas_lock = threading.Lock()
_blas_depth = 0
_blas_saved = ()


def _blas_libraries():
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController
            _blas = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]
        except Exception:          # threadpoolctl missing or unable to inspect: leave BLAS be
            _blas = []
    return _blas


class _OneBlasThread:
    """BLAS at one thread inside the block; the outermost block (of any thread) gives the
    previous counts back."""
    def __enter__(self):
        global _blas_depth, _blas_saved
        with _blas_lock:
            if _blas_depth == 0:
                _blas_saved = tuple(c.get_num_threads() for c in _blas)
                for c in _blas:
                    c.set_num_threads(1)
            _blas_depth += 1

    def __exit__(self, *exc):
        global _blas_depth
        with _blas_lock:
            _blas_depth -= 1
            if _blas_depth == 0:
                for c, n in zip(_blas, _blas_saved):
                    c.set_num_threads(n)


def _blas_parallel(n_tasks: int, flops: float, xp) -> bool:
    return (n_tasks >= 2 and xp is np and NUM_THREADS >= 2 and flops >= PARALLEL_MIN_FLOPS
            and bool(_blas_libraries()))


def blas_tasks(tasks, flops: float, xp=np) -> None:
    """Run ``tasks`` (zero-argument callables that call BLAS, ``flops`` of work in all) at
    once on minigrad's threads with BLAS at one thread each, when they are several, the work
    repays the threads and BLAS's threads can be held; else one after another on this
    thread, BLAS threading as it likes (a generation step's small products)."""
    if not _blas_parallel(len(tasks), flops, xp):
        for t in tasks:
            t()
        return
    with _OneBlasThread():
        run_parallel(tasks)


def blas_rows(fn, n: int, flops: float, xp=np) -> None:
    """fn(lo, hi) over [0, n): one piece per core at once as in blas_tasks, or fn(0, n)."""
    count = min(NUM_THREADS, n)
    if not _blas_parallel(count, flops, xp):
        fn(0, n)
        return
    with _OneBlasThread():
        run_parallel(_piece_tasks(fn, n, count))


# ----------------------------------------------------------------------------- compiled loops
# The fused ops' inner loops also exist compiled (kernels.py, Numba): one pass over memory
# instead of one per NumPy ufunc. Whether to run them is decided here, with the array module.
# They need no cache-sized blocks: the fused ops spread them over the cores with split_rows.
_kernels_on = os.environ.get("MINIGRAD_KERNELS", "1") != "0"
_kernels = None          # the kernels module once imported
_kernels_error = None    # why it could not be imported, if it could not


def kernels_for(xp, *arrays):
    """The compiled loops (module minigrad.kernels) when a fused op should run them on these
    arrays: NumPy arrays, all float32 or all float64, C-contiguous, loops switched on
    (MINIGRAD_KERNELS != 0, set_kernels_enabled) and numba importable. Otherwise None, and
    the op runs its own code, written against xp (the path CuPy takes)."""
    if xp is not np or not _kernels_on:
        return None
    dtype = arrays[0].dtype
    if dtype != np.float32 and dtype != np.float64:
        return None
    for a in arrays:
        if a.dtype != dtype or not a.flags.c_contiguous:
            return None
    return _load_kernels()


def _load_kernels():
    """The kernels module, imported on first use; None when numba cannot be imported."""
    global _kernels, _kernels_error
    if _kernels is None and _kernels_error is None:
        try:
            from . import kernels
            _kernels = kernels
        except ImportError as exc:
            _kernels_error = f"{type(exc).__name__}: {exc}"
    return _kernels


def warm_up_kernels(dtype=np.float32) -> bool:
    """Load the compiled loops for ``dtype`` now (compiling them on a first run), so that
    neither the first step's time nor a memory measurement pays for it. False when the
    loops are off or numba is missing."""
    loops = _load_kernels() if _kernels_on else None
    if loops is not None:
        loops.warm_up(dtype)
    return loops is not None


def set_kernels_enabled(on: bool) -> bool:
    """Switch the compiled loops on or off for this process; returns the previous setting.
    Off, every fused op runs its NumPy code (what tests compare the loops with)."""
    global _kernels_on
    old, _kernels_on = _kernels_on, bool(on)
    return old


def kernels_status() -> str:
    """'on', 'off (MINIGRAD_KERNELS=0 or set_kernels_enabled(False))', or
    'off (<why numba failed to import>)'."""
    if not _kernels_on:
        return "off (MINIGRAD_KERNELS=0 or set_kernels_enabled(False))"
    if _load_kernels() is None:
        return f"off ({_kernels_error})"
    return "on"


def erf(x):
    """The error function elementwise (exact GELU needs it; NumPy has none)."""
    if _cupy is not None and isinstance(x, _cupy.ndarray):
        import cupyx.scipy.special
        return cupyx.scipy.special.erf(x)
    try:
        from scipy.special import erf as scipy_erf
        return scipy_erf(x)
    except ImportError:
        return _np_erf(x).astype(x.dtype, copy=False)


_np_erf = np.vectorize(math.erf, otypes=[np.float64])


# ============================================================================= distributed
# (issue 10) What data-parallel training (minigpt.ddp) needs from CuPy and the MPI library:
# GPU selection per process, CUDA-aware MPI detection and NCCL. Nothing here is used on the
# CPU path; every function imports what it needs when it is called.

def cuda_device_count() -> int:
    """How many CUDA devices this process sees (0 without CuPy or a GPU). Creates no context."""
    try:
        import cupy
        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:   # ImportError, CUDARuntimeError (no driver, no device)
        return 0


def use_cuda_device(index: int) -> int:
    """Make GPU ``index % cuda_device_count()`` this process's current device; call it before
    any CuPy array exists (each MPI rank on a node takes its own GPU). Returns the index."""
    n = cuda_device_count()
    if n == 0:
        check_device("cuda")          # raises the usual "CuPy or a GPU is not available"
    import cupy
    index = int(index) % n
    cupy.cuda.Device(index).use()
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
        from cupy.cuda import nccl
        return bool(getattr(nccl, "available", True))
    except Exception:
        return False


def nccl_unique_id():
    """A new NCCL id (a tuple of ints): made on one rank, broadcast to the others, given to
    ``nccl_communicator`` on every rank."""
    from cupy.cuda import nccl
    return nccl.get_unique_id()


def nccl_communicator(world_size: int, unique_id, rank: int):
    """An NCCL communicator over ``world_size`` processes, one GPU each (collective: every
    rank calls it with the same id)."""
    from cupy.cuda import nccl
    return nccl.NcclCommunicator(int(world_size), unique_id, int(rank))


def nccl_allreduce_sum_(comm, array) -> None:
    """Sum a contiguous CuPy array over the ranks of ``comm``, in place, on the current
    stream (later work on that stream sees the result; no host round trip)."""
    from cupy.cuda import nccl
    types = {np.dtype(np.float32): nccl.NCCL_FLOAT32, np.dtype(np.float64): nccl.NCCL_FLOAT64,
             np.dtype(np.float16): nccl.NCCL_FLOAT16}
    dtype = np.dtype(array.dtype)
    if dtype not in types:
        raise TypeError(f"nccl_allreduce_sum_: unsupported dtype {dtype}")
    stream = _cupy.cuda.get_current_stream()
    comm.allReduce(array.data.ptr, array.data.ptr, array.size, types[dtype], nccl.NCCL_SUM,
                   stream.ptr)
# ============================================================================= end distributed
