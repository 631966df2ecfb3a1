"""Data-parallel training over MPI: the same script on N processes, one shard of each batch each.

    mpiexec -n 2 python scripts/train.py --ddp --batch_size 16      # global batch 2 x 16 = 32
    OMP_NUM_THREADS=1 MINIGRAD_NUM_THREADS=1 mpiexec -n 2 minigpt train --ddp   # 2 cores

    from minigpt.ddp import DDP
    ddp = DDP("cpu")                         # MPI.COMM_WORLD; rank, world_size, local_rank
    loss, stop = ddp.sync(params, loss)      # after backward: mean gradients and mean loss

Every rank builds the same model from the same seed and draws the same *global* batch of
``world_size x batch_size`` rows (the batch generator's seed and state are the same on every
rank); rank r keeps rows ``[r B, (r + 1) B)`` (``ShardSampler``). After backward, ``sync``
averages the gradients with an all-reduce: they are copied into a few contiguous buffers of
at most ``bucket_mb`` (25 MB) each, one ``Allreduce`` per buffer rather than one per
tensor, then divided by ``world_size`` and copied back. A run on N ranks with batch B is thus
the run of one process with batch N x B, up to float rounding (the test checks it).

``check_parameters`` compares an exact checksum of every parameter (a position-weighted sum
of its raw bits, mod 2**64) across ranks with one ``allgather``; a difference is a DDPError
naming the step, the ranks and the parameters.

Reduction paths (``DDP.reduction``; ``MINIGPT_DDP_REDUCE=mpi|mpi-cuda|nccl|host`` forces one):

* ``mpi``: CPU arrays, ``MPI_Allreduce`` in place.
* ``mpi-cuda``: CuPy arrays handed to a CUDA-aware MPI (``__cuda_array_interface__``), no
  host round trip; chosen when ``MPIX_Query_cuda_support()`` says so.
* ``nccl``: CuPy arrays through ``cupy.cuda.nccl`` (one GPU per rank); the default on
  "cuda" when the MPI library is not CUDA-aware (the ``mpich`` wheel is not).
* ``host``: GPU -> host copy, ``MPI_Allreduce``, host -> GPU; the fallback on "cuda".

Every CuPy-specific call goes through ``minigrad.backend`` (the GPU, MPI and NCCL
helpers through ``minigrad.backend.distributed``).
"""
from __future__ import annotations

import os
import shutil
import sys
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from minigrad import backend
from minigrad.backend import distributed

from .errors import MinigptError

INSTALL_HINT = ("pip install 'minigrad-minigpt[mpi]' (or: pip install mpi4py mpich), then "
                "launch with mpiexec -n N")
REDUCTIONS = ("mpi", "mpi-cuda", "nccl", "host")
BUCKET_MB = 25.0


class DDPError(MinigptError, RuntimeError):
    """Data-parallel training cannot start or went wrong (no mpi4py, ranks out of step)."""


class PeerError(DDPError):
    """Another rank failed (it reports the error itself; this rank only stops)."""


# ----------------------------------------------------------------------------- MPI
def import_mpi():
    """``mpi4py.MPI`` (initialising MPI), or a DDPError saying how to install it."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise DDPError(f"--ddp needs mpi4py and an MPI library ({exc}): {INSTALL_HINT}") \
            from None
    return MPI


def launched_world_size() -> int:
    """How many processes the MPI launcher started (1 when not under mpiexec), read from the
    launcher's environment without initialising MPI."""
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "PMIX_SIZE"):
        try:
            return max(1, int(os.environ[var]))
        except (KeyError, ValueError):
            continue
    return 1


def find_mpiexec() -> str | None:
    """The ``mpiexec`` next to this Python (a virtual environment with the mpich wheel), else
    the one on PATH, else None."""
    here = Path(sys.executable).parent / "mpiexec"
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which("mpiexec")


def choose_reduction(device: str, requested: str | None = None, *, cuda_aware: bool = False,
                     nccl: bool = False, ranks_per_gpu: int = 1) -> tuple[str, str]:
    """(reduction path, why) for gradients on ``device``; ``requested`` ("auto" or None: pick).

    >>> choose_reduction("cpu")
    ('mpi', 'CPU arrays')
    >>> choose_reduction("cuda", nccl=True)[0], choose_reduction("cuda")[0]
    ('nccl', 'host')
    """
    requested = (requested or "auto").strip().lower()
    if requested not in REDUCTIONS + ("auto",):
        raise DDPError(f"MINIGPT_DDP_REDUCE must be one of {('auto',) + REDUCTIONS}, got "
                       f"{requested!r}")
    if device == "cpu":
        if requested not in ("auto", "mpi"):
            raise DDPError(f"MINIGPT_DDP_REDUCE={requested} is for device cuda; on cpu the "
                           "gradients go through MPI ('mpi')")
        return "mpi", "CPU arrays"
    if requested == "mpi":
        requested = "mpi-cuda"
    if requested != "auto":
        if requested == "nccl" and not nccl:
            raise DDPError("MINIGPT_DDP_REDUCE=nccl but CuPy has no NCCL (cupy.cuda.nccl); "
                           "pip install nvidia-nccl-cu12, or use host")
        return requested, "MINIGPT_DDP_REDUCE"
    if cuda_aware:
        return "mpi-cuda", "the MPI library is CUDA-aware: GPU buffers go to MPI directly"
    if nccl and ranks_per_gpu <= 1:
        return "nccl", "the MPI library is not CUDA-aware; NCCL reduces on the GPUs"
    why = ("the MPI library is not CUDA-aware and NCCL is missing" if not nccl else
           f"{ranks_per_gpu} ranks share a GPU, which NCCL does not allow")
    return "host", why + ": gradients go through host memory"


# ----------------------------------------------------------------------------- data shards
def shard_rows(global_batch: int, rank: int, world_size: int) -> slice:
    """The rows of a global batch that ``rank`` trains on.

    >>> shard_rows(6, rank=1, world_size=3)
    slice(2, 4, None)
    """
    if global_batch % world_size:
        raise DDPError(f"a global batch of {global_batch} rows does not split over "
                       f"{world_size} ranks")
    b = global_batch // world_size
    return slice(rank * b, (rank + 1) * b)


class ShardSampler:
    """This rank's shard of the global batches of a ``BatchSampler`` (of world_size x B rows,
    the same on every rank). ``state()`` / ``set_state()`` / ``reseed()`` are the global
    sampler's, so a checkpoint's data cursor does not depend on the number of ranks."""

    def __init__(self, sampler, rank: int, world_size: int):
        self.sampler, self.rank, self.world_size = sampler, rank, world_size
        self.rows = shard_rows(sampler.batch_size, rank, world_size)

    def next(self):
        x, y = self.sampler.next()                       # (N B, T) each, the same everywhere
        return x[self.rows], y[self.rows]                # (B, T) each: this rank's rows

    def state(self) -> dict:
        return self.sampler.state()

    def set_state(self, state: dict) -> None:
        self.sampler.set_state(state)

    def reseed(self, seed: int | None = None) -> None:
        self.sampler.reseed(seed)

    def __getattr__(self, name):                         # ids, block_size, seed, ...
        if name == "sampler":                            # not set yet (copy, unpickling)
            raise AttributeError(name)
        return getattr(self.sampler, name)


# ----------------------------------------------------------------------------- checksums
_MIX = np.uint64(0x9E3779B97F4A7C15)                     # 2**64 / golden ratio, odd
_CHUNK = 1 << 22                                          # elements per pass (bounded memory)


def array_checksum(a) -> int:
    """An exact fingerprint of an array's bits: sum over i of bits[i] * (i * MIX | 1), mod
    2**64. Integer arithmetic, so the same on any device and in any summation order; every
    weight is odd, so changing any one element always changes the sum. NumPy or CuPy.

    >>> a = np.arange(4, dtype=np.float32)
    >>> array_checksum(a) == array_checksum(a.copy()), array_checksum(a) == array_checksum(a[::-1])
    (True, False)
    """
    xp = backend.get_array_module(a)
    flat = xp.ascontiguousarray(a).reshape(-1)
    bits = flat.view(np.dtype(f"u{flat.dtype.itemsize}")) if flat.dtype.itemsize in (1, 2, 4, 8) \
        else flat.view(np.uint8)
    total = 0
    for lo in range(0, bits.size, _CHUNK):
        chunk = bits[lo:lo + _CHUNK].astype(np.uint64)
        weights = xp.arange(lo, lo + chunk.size, dtype=np.uint64) * _MIX | np.uint64(1)
        chunk *= weights                                  # wraps mod 2**64, as intended
        total = (total + int(chunk.sum(dtype=np.uint64))) % 2 ** 64
    return total


def check_parameters(comm, arrays, names, step: int) -> None:
    """Compare the checksums of ``arrays`` (this rank's parameters) across the ranks of
    ``comm`` (anything with ``allgather``); a difference raises DDPError on every rank, naming
    the step, the ranks that differ from rank 0 and the first parameters that differ."""
    mine = [array_checksum(a) for a in arrays]
    every = comm.allgather(mine)
    bad = {r: [i for i, (x, y) in enumerate(zip(every[0], sums)) if x != y]
           for r, sums in enumerate(every) if sums != every[0]}
    if bad:
        parts = []
        for r, idx in bad.items():
            shown = ", ".join(names[i] for i in idx[:3]) + (f" (+{len(idx) - 3} more)"
                                                            if len(idx) > 3 else "")
            parts.append(f"rank {r} differs from rank 0 in {shown}")
        raise DDPError(f"step {step}: the parameters are no longer identical on every rank: "
                       f"{'; '.join(parts)}. The ranks must run the same code, data and seed "
                       "(same minigpt, NumPy and BLAS on every node)")


# ----------------------------------------------------------------------------- buckets
class GradBuckets:
    """Gradients packed into a few flat buffers of at most ``bucket_bytes`` each (a parameter
    larger than that gets a buffer of its own), in parameter order, one dtype per buffer.

    >>> import minigrad as mg
    >>> ps = [mg.zeros(3, requires_grad=True), mg.zeros(2, 2, requires_grad=True)]
    >>> [[i for i, _, _ in b.slots] for b in GradBuckets(ps, bucket_bytes=16).buckets]
    [[0], [1]]
    """

    class Bucket:
        def __init__(self, flat, slots):
            self.flat = flat                             # (n,) on the parameters' device
            self.slots = slots                           # [(param index, offset, size)]

    def __init__(self, params, bucket_bytes: float):
        self.buckets: list[GradBuckets.Bucket] = []
        pending, size, dtype = [], 0, None
        xp = backend.get_array_module(params[0].array) if params else np

        def close():
            if pending:
                flat = xp.zeros(size, dtype=dtype)
                self.buckets.append(GradBuckets.Bucket(flat, list(pending)))

        for i, p in enumerate(params):
            n, dt = int(p.array.size), p.array.dtype
            if pending and (dt != dtype or (size + n) * dt.itemsize > bucket_bytes):
                close()
                pending, size = [], 0
            dtype = dt
            pending.append((i, size, n))
            size += n
        close()

    @property
    def nbytes(self) -> int:
        return sum(b.flat.nbytes for b in self.buckets)

    def pack(self, bucket, params) -> None:
        """Copy the gradients into ``bucket.flat`` (zeros for a parameter without one)."""
        for i, off, n in bucket.slots:
            g = params[i].grad
            if g is None:
                bucket.flat[off:off + n] = 0
            else:
                bucket.flat[off:off + n] = g.array.reshape(-1)

    def unpack(self, bucket, params, present) -> None:
        """Copy ``bucket.flat`` back into the gradients; a parameter that had no gradient on
        any rank (``present[i]`` false) keeps none."""
        import minigrad as mg
        for i, off, n in bucket.slots:
            p = params[i]
            if not present[i]:
                continue
            values = bucket.flat[off:off + n].reshape(p.array.shape)
            if p.grad is None:
                p.grad = mg.Tensor(values.copy())
            else:
                p.grad.array[...] = values


# ----------------------------------------------------------------------------- the context
class DDP:
    """This process's part in a data-parallel run over ``comm`` (default MPI.COMM_WORLD).

    ``rank``, ``world_size``, ``local_rank`` (among the ranks on this node), ``local_size``,
    ``reduction`` (see the module docstring) and ``gpu`` (the GPU index on "cuda"). On "cuda",
    rank r of a node takes GPU ``local_rank % gpu count``, before any CuPy array exists.
    """

    def __init__(self, device: str = "cpu", *, comm=None, bucket_mb: float = BUCKET_MB,
                 reduction: str | None = None):
        MPI = import_mpi()
        self.MPI = MPI
        self.comm = comm if comm is not None else MPI.COMM_WORLD
        self.rank, self.world_size = self.comm.Get_rank(), self.comm.Get_size()
        node = self.comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
        node.Free()
        self.device = device
        self.bucket_bytes = bucket_mb * 2 ** 20
        self.gpu = None
        ranks_per_gpu = 1
        cuda_aware = nccl = False
        if device == "cuda" and distributed.cuda_device_count() > 0:
            self.gpu = distributed.use_cuda_device(self.local_rank)
            ranks_per_gpu = -(-self.local_size // distributed.cuda_device_count())
            cuda_aware, nccl = distributed.is_cuda_aware_mpi(), distributed.nccl_available()
        self.reduction, self.reduction_why = choose_reduction(
            device, reduction or os.environ.get("MINIGPT_DDP_REDUCE"), cuda_aware=cuda_aware,
            nccl=nccl, ranks_per_gpu=ranks_per_gpu)
        paths = self.comm.allgather(self.reduction) if self.world_size > 1 else [self.reduction]
        if len(set(paths)) > 1:                          # e.g. NCCL on some nodes only
            raise DDPError(f"the ranks chose different reduction paths ({', '.join(paths)}); "
                           "set MINIGPT_DDP_REDUCE to one that every node supports")
        self._nccl = None
        if self.reduction == "nccl" and self.world_size > 1:
            uid = self.comm.bcast(distributed.nccl_unique_id() if self.rank == 0 else None, root=0)
            self._nccl = distributed.nccl_communicator(self.world_size, uid, self.rank)
        self._buckets: GradBuckets | None = None
        self.allreduce_s = 0.0           # seconds spent in gradient all-reduces (bench)
        self.allreduce_calls = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ------------------------------------------------------------------ gradients
    def prepare(self, params) -> GradBuckets:
        """Allocate the gradient buffers for ``params`` (done by the first ``sync`` too)."""
        if self._buckets is None:
            self._buckets = GradBuckets(list(params), self.bucket_bytes)
        return self._buckets

    def sync(self, params, loss: float, stop: bool = False) -> tuple[float, bool]:
        """After backward: average every ``p.grad`` over the ranks (in place), and return
        (the mean of ``loss`` over the ranks, whether any rank asked to ``stop``). The
        buffers are laid out for ``params`` at the first call: pass the same list each time."""
        if self.world_size == 1:
            return float(loss), bool(stop)
        params = list(params)
        head = np.empty(2 + len(params))                 # loss, stop, has-gradient flags
        head[0], head[1] = loss, float(bool(stop))
        head[2:] = [p.grad is not None for p in params]
        self.comm.Allreduce(self.MPI.IN_PLACE, head, op=self.MPI.SUM)
        present = head[2:] > 0
        buckets = self.prepare(params)
        t = time.perf_counter()
        for bucket in buckets.buckets:
            buckets.pack(bucket, params)
            self._allreduce_sum_(bucket.flat)
            bucket.flat /= self.world_size
            buckets.unpack(bucket, params, present)
        self.allreduce_s += time.perf_counter() - t
        self.allreduce_calls += len(buckets.buckets)
        return float(head[0] / self.world_size), bool(head[1] > 0)

    def _allreduce_sum_(self, flat) -> None:
        MPI = self.MPI
        if self.reduction == "mpi":
            self.comm.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
        elif self.reduction == "mpi-cuda":
            backend.synchronize("cuda")                  # the kernels that wrote flat are done
            self.comm.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
        elif self.reduction == "nccl":
            distributed.nccl_allreduce_sum_(self._nccl, flat)
        else:                                            # host
            host = backend.to_numpy(flat)
            self.comm.Allreduce(MPI.IN_PLACE, host, op=MPI.SUM)
            flat[...] = backend.to_device(host, "cuda")

    def mean(self, value: float) -> float:
        """The mean of a float over the ranks (e.g. a validation loss on each shard)."""
        if self.world_size == 1:
            return float(value)
        return float(self.comm.allreduce(float(value), op=self.MPI.SUM)) / self.world_size

    def check_parameters(self, params, step: int, names=None) -> None:
        """DDPError on every rank if any parameter differs between ranks (see the function)."""
        if self.world_size == 1:
            return
        params = list(params)
        names = names or [f"parameter #{i}" for i in range(len(params))]
        check_parameters(self.comm, [p.array for p in params], names, step)

    # ------------------------------------------------------------------ coordination
    def offset_rng(self) -> None:
        """Give this rank its own dropout stream: minigrad's NumPy PCG64 state jumped ``rank``
        times (rank 0 keeps it). Every rank draws the same amount per step, so rank r's state
        is always rank 0's jumped r times, and a resume from rank 0's saved state is exact."""
        if self.rank == 0:
            return
        bg = np.random.PCG64()
        bg.state = backend.get_rng_state()
        backend.set_rng_state(bg.jumped(self.rank).state)

    def wait(self, poll_s: float = 0.002) -> None:
        """A barrier that sleeps instead of spinning (MPI's barrier spins on a core, which
        would slow the rank being waited for on a small machine)."""
        if self.world_size == 1:
            return
        req = self.comm.Ibarrier()
        while not req.Test():
            time.sleep(poll_s)

    def main_first(self, fn, what: str = "that"):
        """Run ``fn()`` on rank 0, then on the others (e.g. to build the data cache once).
        If rank 0 fails, the others raise a PeerError instead of running it."""
        if self.world_size == 1:
            return fn()
        result, error = None, None
        if self.rank == 0:
            try:
                result = fn()
            except Exception as exc:       # re-raised below, after the others know
                error = exc
        self.wait()
        msg = self.comm.bcast(None if error is None else f"{type(error).__name__}: {error}",
                              root=0)
        if error is not None:
            raise error
        if msg is not None:
            raise PeerError(f"rank 0 failed while {what}: {msg}")
        return result if self.rank == 0 else fn()

    @contextmanager
    def abort_on_error(self):
        """An exception on one rank would leave the others waiting in a collective forever:
        print it and abort every rank (MPI_Abort). DDPErrors, raised on every rank at once,
        and KeyboardInterrupt pass through."""
        try:
            yield
        except (DDPError, KeyboardInterrupt):
            raise
        except BaseException:
            if self.world_size == 1:
                raise
            print(f"[rank {self.rank}] error, aborting all {self.world_size} ranks:\n"
                  + traceback.format_exc(), file=sys.stderr, flush=True)
            self.comm.Abort(1)
            raise

    def describe(self) -> str:
        """One line for the start of a run: ranks, device, buckets and the reduction path."""
        where = (f"cuda (local rank r on GPU r % {distributed.cuda_device_count()})"
                 if self.device == "cuda" else "cpu")
        b = self._buckets
        buckets = (f"{len(b.buckets)} bucket{'s' * (len(b.buckets) != 1)} ({b.nbytes / 2**20:.1f}"
                   f" MB, <= {self.bucket_bytes / 2**20:.0f} MB each)") if b else "buckets"
        return (f"ddp: {self.world_size} process{'es' * (self.world_size != 1)} "
                f"({self.local_size} on this node), {where}; gradients averaged in {buckets} "
                f"through {self.reduction} ({self.reduction_why})")

    def thread_warning(self) -> str | None:
        """A hint when the ranks on this node oversubscribe its cores with BLAS/minigrad
        threads (each process uses every core unless told otherwise)."""
        if self.device != "cpu" or self.local_size < 2:
            return None
        cores = os.cpu_count() or 1
        per_rank = max(1, cores // self.local_size)
        unset = [v for v in ("OMP_NUM_THREADS", "MINIGRAD_NUM_THREADS") if v not in os.environ]
        if not unset:
            return None
        return (f"note: {self.local_size} ranks share this node's {cores} cores and "
                f"{' and '.join(unset)} {'is' if len(unset) == 1 else 'are'} not set, so every "
                f"rank runs {cores} threads; for speed launch with OMP_NUM_THREADS={per_rank} "
                f"MINIGRAD_NUM_THREADS={per_rank} mpiexec ... (see docs/ddp.md)")


__all__ = ["DDP", "DDPError", "PeerError", "ShardSampler", "GradBuckets", "array_checksum",
           "check_parameters", "choose_reduction", "shard_rows", "import_mpi",
           "launched_world_size", "find_mpiexec", "INSTALL_HINT"]
