"""minigpt.ddp: 2 MPI ranks with batch B equal 1 process with batch 2B; resume across world
sizes; Ctrl-C; checksums, buckets, shards; the missing-mpi4py message.

The tests that launch ranks need mpi4py and an ``mpiexec`` (``pip install -e '.[mpi]'``);
without them they are skipped (CI installs only ``.[test]``).
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import minigrad as mg
from minigpt import ddp as ddp_mod
from minigpt.checkpoint import load_checkpoint
from minigpt.corpus import builtin_corpus
from minigpt.data import BatchSampler
from minigpt.ddp import (DDPError, GradBuckets, ShardSampler, array_checksum, check_parameters,
                         choose_reduction, shard_rows)
from minigpt.errors import ConfigError
from minigpt.train import TrainConfig, main, read_log, train

ROOT = Path(__file__).resolve().parents[2]
B = 4                                         # sequences per rank; the single process takes 2B
STEPS = 6
TINY = dict(tokenizer="char", n_layer=1, n_head=2, n_embd=16, block_size=16, dropout=0.0,
            eval_iters=2, eval_interval=3, checkpoint_interval=3, learning_rate=3e-3,
            warmup_iters=2, lr_decay_iters=STEPS, num_samples=0, progress=False)


# ----------------------------------------------------------------------------- helpers
@pytest.fixture
def mpiexec():
    pytest.importorskip("mpi4py")
    exe = ddp_mod.find_mpiexec()
    if exe is None:
        pytest.skip("no mpiexec next to this Python or on PATH (pip install mpich)")
    return exe


@pytest.fixture
def data_file(tmp_path):
    p = tmp_path / "data.txt"
    p.write_text(builtin_corpus()[:20_000], encoding="utf-8")
    return p


def flags(cfg: dict) -> list[str]:
    return [f"--{k}={v}" for k, v in cfg.items()]


def run_ranks(mpiexec, n, data_file, out, timeout=90, **kw):
    """``mpiexec -n n scripts/train.py --ddp`` with the tiny config; returns the result."""
    cfg = {**TINY, "data": data_file, "out_dir": out, "batch_size": B, "max_iters": STEPS, **kw}
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1", "MINIGRAD_NUM_THREADS": "1"}
    r = subprocess.run([mpiexec, "-n", str(n), sys.executable, str(ROOT / "scripts" / "train.py"),
                        "--ddp", *flags(cfg)], capture_output=True, text=True, env=env,
                       timeout=timeout)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def run_single(data_file, out, **kw):
    """One process, no DDP, batch 2B (in this process)."""
    return train(TrainConfig(**{**TINY, "data": str(data_file), "out_dir": str(out),
                                "batch_size": 2 * B, "max_iters": STEPS, **kw}))


def log_of(out):
    rows = read_log(Path(out) / "log.csv")
    return ([int(r["step"]) for r in rows], np.array([float(r["loss"]) for r in rows]),
            [float(r["val_loss"]) if r["val_loss"] else None for r in rows])


def assert_same_run(a, b):
    """The same steps, per-step losses and validation losses, and final weights and AdamW
    moments, to float32 tolerance."""
    steps_a, loss_a, val_a = log_of(a)
    steps_b, loss_b, val_b = log_of(b)
    assert steps_a == steps_b == list(range(1, STEPS + 1))
    np.testing.assert_allclose(loss_a, loss_b, rtol=1e-5)
    assert [v is None for v in val_a] == [v is None for v in val_b]
    np.testing.assert_allclose([v for v in val_a if v], [v for v in val_b if v], rtol=1e-5)
    ca, cb = load_checkpoint(a), load_checkpoint(b)
    assert ca.step == cb.step == STEPS and ca.data_state == cb.data_state
    for k, w in ca.model_state.items():   # weights ~1e-2; atol for the ~0 ones (the key
        # bias has an exactly-zero true gradient: AdamW turns its rounding noise into updates of
        # up to lr per step, so its tolerance is a few lr-sized steps, not float32 rounding)
        np.testing.assert_allclose(cb.model_state[k], w, rtol=1e-5, atol=1e-5, err_msg=k)
    for i, s in ca.optimizer_state["state"].items():
        np.testing.assert_allclose(cb.optimizer_state["state"][i]["exp_avg"], s["exp_avg"],
                                   rtol=1e-4, atol=1e-7)


# ----------------------------------------------------------------------------- 2 ranks
def test_two_ranks_equal_one_process_with_double_batch(mpiexec, tmp_path, data_file):
    r = run_ranks(mpiexec, 2, data_file, tmp_path / "ddp")
    run_single(data_file, tmp_path / "one")
    assert_same_run(tmp_path / "one", tmp_path / "ddp")
    # rank 0 alone prints, logs and writes; the others stay quiet
    assert r.stdout.count("step 6:") == 1 and r.stderr.count("final:") == 1
    assert "through mpi (CPU arrays)" in r.stderr and "global batch 2 x 4 = 8" in r.stderr
    ck = load_checkpoint(tmp_path / "ddp")
    assert ck.extra["world_size"] == 2 and ck.extra["global_batch_size"] == 2 * B
    assert ck.train_config["ddp"] is False          # a launch setting, not inherited on resume


def test_resume_across_world_sizes(mpiexec, tmp_path, data_file):
    """2 ranks for 3 steps, then 1 process to 6; and 1 process for 3, then 2 ranks to 6:
    both equal 6 uninterrupted steps of one process with batch 2B."""
    run_single(data_file, tmp_path / "ref")
    run_ranks(mpiexec, 2, data_file, tmp_path / "a", max_iters=3)
    run_single(data_file, tmp_path / "a", resume=True)
    assert_same_run(tmp_path / "ref", tmp_path / "a")
    run_single(data_file, tmp_path / "b", max_iters=3)
    r = run_ranks(mpiexec, 2, data_file, tmp_path / "b", resume="true")
    assert "resuming from" in r.stderr and "trained with a global batch" not in r.stderr
    assert_same_run(tmp_path / "ref", tmp_path / "b")


def test_ctrl_c_stops_every_rank_after_the_same_step(mpiexec, tmp_path, data_file):
    out = tmp_path / "out"
    cfg = {**TINY, "data": data_file, "out_dir": out, "batch_size": B, "max_iters": 100000,
           "lr_decay_iters": 0, "checkpoint_interval": 100000, "eval_interval": 100000}
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
           "MINIGRAD_NUM_THREADS": "1"}
    proc = subprocess.Popen([mpiexec, "-n", "2", sys.executable,
                             str(ROOT / "scripts" / "train.py"), "--ddp", *flags(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while len(read_log(out / "log.csv")) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)              # mpiexec forwards it to every rank
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert stdout.count("interrupted at step") == 1 and "--resume" in stdout
    step = load_checkpoint(out).step
    assert step >= 3 and log_of(out)[0] == list(range(1, step + 1))


SYNC_SCRIPT = """
import numpy as np
import minigrad as mg
from minigrad import backend
from minigpt.ddp import DDP

ddp = DDP("cpu", bucket_mb=40 / 2**20)             # 40-byte buckets: several all-reduces
r, n = ddp.rank, ddp.world_size
for path in ("mpi", "host", "mpi-cuda"):           # the GPU paths' logic, on CPU arrays
    ddp.reduction = path
    backend.to_device = lambda a, device: a        # host: "copy back to the GPU"
    ps = [mg.zeros(3, requires_grad=True), mg.zeros(2, 5, requires_grad=True),
          mg.zeros(4, requires_grad=True), mg.zeros(1, requires_grad=True)]
    for i, p in enumerate(ps[:3]):
        if not (i == 2 and r == 1):                # parameter 2: a gradient on rank 0 only
            p.grad = mg.Tensor(np.full(p.shape, 10.0 * i + r, np.float32))
    loss, stop = ddp.sync(ps, loss=1.0 + r, stop=(r == 1))
    assert loss == 1.5 and stop is True, (loss, stop)
    for i in range(2):
        np.testing.assert_array_equal(ps[i].grad.numpy(), 10.0 * i + 0.5)
    np.testing.assert_array_equal(ps[2].grad.numpy(), 20.0 / 2)   # (20 + 0) / 2 ranks
    assert ps[3].grad is None                      # no rank had one
    assert ddp.sync(ps, loss=0.0)[1] is False
assert ddp.allreduce_calls == 3 * 2 * 3    # 3 buckets ([3] [10] [4, 1]), 2 syncs, 3 paths
assert ddp.mean(float(r)) == 0.5
ddp.check_parameters(ps, step=1)
if r == 1:
    ps[1].array[0, 3] += 1e-6
try:
    ddp.check_parameters(ps, step=9, names=["a", "b", "c", "d"])
    raise SystemExit("no error")
except Exception as exc:
    assert "step 9" in str(exc) and "rank 1 differs from rank 0 in b" in str(exc), exc
done = ddp.comm.gather(r, root=0)                  # one line, from rank 0 alone
if r == 0:
    print("ok", done)
"""


def test_sync_averages_gradients_loss_and_stop(mpiexec, tmp_path):
    script = tmp_path / "sync.py"
    script.write_text(SYNC_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([mpiexec, "-n", "2", sys.executable, str(script)], capture_output=True,
                       text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "ok [0, 1]"


def test_bench_probe_reports_tokens_per_s(mpiexec):
    """One step of ``minigpt bench --ddp``'s entry point on 2 ranks (the full benchmark runs
    each configuration for 20 steps; see docs/DDP.md)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
           "MINIGRAD_NUM_THREADS": "1"}
    r = subprocess.run([mpiexec, "-n", "2", sys.executable, "-m", "minigpt.bench",
                        "--ddp-probe", "tiny", "1", "2"], capture_output=True, text=True,
                       env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])       # rank 0 alone prints
    assert res["ranks"] == 2 and res["batch_per_rank"] == 2 and res["reduction"] == "mpi"
    assert res["tokens_per_s"] > 0 and res["ms_per_step"] > 0 and len(r.stdout.splitlines()) == 1


@pytest.mark.cuda
def test_two_ranks_on_cuda_equal_one_process(mpiexec, tmp_path, data_file):
    """The GPU path (CUDA-aware MPI, NCCL or host, whichever this machine has)."""
    r = run_ranks(mpiexec, 2, data_file, tmp_path / "ddp", device="cuda")
    run_single(data_file, tmp_path / "one", device="cuda")
    assert "ddp: 2 processes" in r.stderr and "through " in r.stderr
    assert_same_run(tmp_path / "one", tmp_path / "ddp")


# ----------------------------------------------------------------------------- without MPI
def test_missing_mpi4py_says_how_to_install(monkeypatch, tmp_path, data_file, capsys):
    monkeypatch.setitem(sys.modules, "mpi4py", None)         # import mpi4py -> ImportError
    with pytest.raises(DDPError, match=r"pip install 'minigrad-minigpt\[mpi\]'"):
        ddp_mod.import_mpi()
    assert main(["--ddp", "--data", str(data_file), "--out_dir", str(tmp_path / "o"),
                 "--tokenizer", "char", "--max_iters", "1"]) == 1
    err = capsys.readouterr().err
    assert "--ddp needs mpi4py" in err and "pip install mpi4py mpich" in err


def test_several_processes_without_ddp_is_an_error(monkeypatch, tmp_path, data_file):
    monkeypatch.setenv("PMI_SIZE", "2")
    with pytest.raises(ConfigError, match="started as 2 MPI processes but --ddp is not set"):
        train(TrainConfig(data=str(data_file), out_dir=str(tmp_path), tokenizer="char"))


def test_shards_split_the_global_batch():
    ids = np.arange(500)
    ref = BatchSampler(ids, block_size=8, batch_size=6, seed=3)
    shards = [ShardSampler(BatchSampler(ids, 8, 6, seed=3), r, 3) for r in range(3)]
    for _ in range(2):
        x, y = ref.next()
        parts = [s.next() for s in shards]
        np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), x)
        np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), y)
    assert all(s.state() == ref.state() for s in shards)    # the cursor is global
    assert shard_rows(8, 1, 2) == slice(4, 8)
    with pytest.raises(DDPError, match="does not split over 3 ranks"):
        shard_rows(8, 0, 3)


def test_buckets_pack_and_unpack():
    ps = [mg.randn(5, requires_grad=True), mg.randn(3, 4, requires_grad=True),
          mg.randn(7, requires_grad=True), mg.randn(2, requires_grad=True)]
    for p in ps[:3]:
        p.grad = mg.Tensor(np.random.default_rng(0).standard_normal(p.shape).astype(np.float32))
    gb = GradBuckets(ps, bucket_bytes=4 * 16)      # 16 floats: [5] [3x4] [7 + 2]
    assert [[i for i, _, _ in b.slots] for b in gb.buckets] == [[0], [1], [2, 3]]
    assert gb.nbytes == 4 * (5 + 12 + 9)
    want = [p.grad.numpy().copy() for p in ps[:3]]
    for b in gb.buckets:
        gb.pack(b, ps)
        b.flat *= 2
        gb.unpack(b, ps, present=[True, True, True, False])
    for p, w in zip(ps, want):
        np.testing.assert_array_equal(p.grad.numpy(), 2 * w)
    assert ps[3].grad is None                       # no rank had a gradient: still none
    gb.unpack(gb.buckets[2], ps, present=[True] * 4)
    np.testing.assert_array_equal(ps[3].grad.numpy(), np.zeros(2))   # another rank had one


def test_checksum_sees_any_change():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((64, 33)).astype(np.float32)
    base = array_checksum(a)
    assert base == array_checksum(a.copy()) and 0 <= base < 2 ** 64
    b = a.copy()
    b.flat[1000] = np.nextafter(b.flat[1000], np.float32(np.inf))     # one bit, one element
    c = a.copy()
    c.flat[[3, 4]] = c.flat[[4, 3]]                                     # two swapped
    assert len({base, array_checksum(b), array_checksum(c), array_checksum(a.T)}) == 4
    assert array_checksum(a.astype(np.float64)) != base


class FakeComm:
    """``allgather`` as if the other ranks had sent ``others``."""

    def __init__(self, others):
        self.others = others

    def allgather(self, mine):
        return [mine] + [o(mine) for o in self.others]


def test_check_parameters_names_step_ranks_and_parameters():
    arrays = [np.ones(4, np.float32), np.zeros((2, 3), np.float32), np.full(3, 2, np.float32)]
    names = ["wte.weight", "h.0.attn.c_attn.weight", "ln_f.bias"]
    check_parameters(FakeComm([list, list]), arrays, names, step=5)   # all equal: fine

    def flip_second(sums):
        return [sums[0], sums[1] ^ 1, sums[2]]
    with pytest.raises(DDPError, match=r"step 7: the parameters are no longer identical on "
                                       r"every rank: rank 2 differs from rank 0 in "
                                       r"h\.0\.attn\.c_attn\.weight\."):
        check_parameters(FakeComm([list, flip_second]), arrays, names, step=7)


def test_choose_reduction():
    assert choose_reduction("cpu") == ("mpi", "CPU arrays")
    assert choose_reduction("cuda", cuda_aware=True, nccl=True)[0] == "mpi-cuda"
    assert choose_reduction("cuda", nccl=True)[0] == "nccl"
    assert choose_reduction("cuda", nccl=True, ranks_per_gpu=2)[0] == "host"
    assert choose_reduction("cuda")[0] == "host"
    assert choose_reduction("cuda", "host", nccl=True) == ("host", "MINIGPT_DDP_REDUCE")
    with pytest.raises(DDPError, match="on cpu the gradients go through MPI"):
        choose_reduction("cpu", "nccl")
    with pytest.raises(DDPError, match="CuPy has no NCCL"):
        choose_reduction("cuda", "nccl")
    with pytest.raises(DDPError, match="must be one of"):
        choose_reduction("cuda", "gloo")
