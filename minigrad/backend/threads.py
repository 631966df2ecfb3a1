"""minigrad's own CPU threads: one pool, the BLAS hold, and glibc's malloc tuning.

NumPy runs each elementwise op on one core, and BLAS runs its own threads, whose idle
workers spin on the other cores for a while after every call (OpenBLAS: ~0.1 s). So on the
CPU minigrad splits its big work itself: the rows of a fused op, the rows of a Linear's
product, dx beside dW, the batch of an attention, one piece per core on one pool, with
BLAS held at one thread per piece meanwhile (threadpoolctl) so that nothing else spins on
the cores. NumPy and compiled loops release the GIL, so the pieces really run at once.
Work too small to repay a thread's wake-up (~0.1 ms here) runs on the calling thread, with
BLAS threading as usual. CuPy needs none of this.

Nothing here happens at import: the pool starts on the first split that needs it, and
malloc is tuned (``tune_malloc``) on the first call of any function below on NumPy arrays,
which is minigrad's first real CPU work (a fused op, a Linear's product).
"""
from __future__ import annotations

import os
import threading

import numpy as np

NUM_THREADS = max(1, int(os.environ.get("MINIGRAD_NUM_THREADS", os.cpu_count() or 1)))
PARALLEL_MIN_SIZE = int(os.environ.get("MINIGRAD_PARALLEL_MIN_SIZE", 1 << 19))  # smaller: 1 thread
PARALLEL_MIN_FLOPS = 1 << 24   # a matmul below this runs whole, threaded by BLAS as it likes
BLOCK_SIZE = 1 << 17   # elements per call of a kernel: its temporaries stay in the L2 cache

_pool = None
_in_piece = threading.local()   # .on: this thread is running a piece (no nested splitting)

MALLOC_TUNED = False    # whether tune_malloc changed glibc's settings (it runs once)
_malloc_tried = False


# ----------------------------------------------------------------------------- malloc
def tune_malloc() -> bool:
    """Keep freed large arrays in glibc's heap for reuse; returns MALLOC_TUNED.

    By default glibc hands every large array fresh pages from mmap and returns them on
    free, so each op's output pays ~1000 page faults per 4 MB: for elementwise ops that
    costs ten times the arithmetic. Raising the mmap and trim thresholds makes freed
    blocks reusable, as a caching allocator would; the peak memory stays the same.
    One arena for all threads: minigrad's pool threads would otherwise each get an arena
    of their own, whose freed blocks the other threads cannot reuse (+8% peak memory).
    Linux/glibc only; MINIGRAD_MALLOC_TUNING=0 turns it off.

    It changes the whole process's allocator, so it is done on minigrad's first CPU work
    (before the pool's threads exist), not when minigrad is imported; later calls do
    nothing."""
    global MALLOC_TUNED, _malloc_tried
    if _malloc_tried:
        return MALLOC_TUNED
    _malloc_tried = True
    if os.environ.get("MINIGRAD_MALLOC_TUNING", "1") == "0" or not os.uname().sysname == "Linux":
        return False
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8
        MALLOC_TUNED = bool(libc.mallopt(M_MMAP_THRESHOLD, 1 << 30) and
                            libc.mallopt(M_TRIM_THRESHOLD, 1 << 30) and
                            libc.mallopt(M_ARENA_MAX, 1))
    except (OSError, AttributeError):   # not glibc (musl, macOS): leave it alone
        pass
    return MALLOC_TUNED


# ----------------------------------------------------------------------------- the pool
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
        tune_malloc()             # before the pool's threads exist: they share one arena
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
    if xp is not np:
        fn(0, n)
        return
    if not _malloc_tried:
        tune_malloc()
    count = min(NUM_THREADS, n)
    if count < 2 or size < PARALLEL_MIN_SIZE:
        fn(0, n)
        return
    run_parallel(_piece_tasks(fn, n, count))


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


# ----------------------------------------------------------------------------- BLAS hold
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
    if xp is not np:
        return False
    if not _malloc_tried:
        tune_malloc()
    return (n_tasks >= 2 and NUM_THREADS >= 2 and flops >= PARALLEL_MIN_FLOPS
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
