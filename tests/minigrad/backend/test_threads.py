"""minigrad's own CPU threading (backend/threads.py: run_parallel, blas_rows, blas_tasks,
split_rows): the ops that cut their work into one piece per core give the same values and gradients as
closed forms computed here with NumPy, and BLAS's thread count is held and given back."""
import contextlib
import threading

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given

import minigrad as mg
import minigrad.functional as F
from minigrad import backend
from minigrad.backend import threads as cpu_threads


@contextlib.contextmanager
def in_pieces(threads=3):
    """Inside the block every op splits whatever it can, into ``threads`` pieces (uneven
    ones for most sizes), however small the work."""
    names = ("NUM_THREADS", "PARALLEL_MIN_FLOPS", "PARALLEL_MIN_SIZE")
    old = [getattr(cpu_threads, n) for n in names]
    for n, v in zip(names, (threads, 0, 0)):
        setattr(cpu_threads, n, v)
    try:
        yield
    finally:
        for n, v in zip(names, old):
            setattr(cpu_threads, n, v)


@pytest.fixture
def pieces():
    with in_pieces():
        yield


def blas_threads():
    return [c.get_num_threads() for c in cpu_threads._blas_libraries()]


def grads_of(fn, arrays, g):
    ts = [mg.tensor(a, dtype="float64", requires_grad=True) for a in arrays]
    out = fn(*ts)
    out.backward(mg.tensor(g, dtype="float64"))
    return out.detach().numpy(), [t.grad.numpy() for t in ts]


floats = st.floats(-3, 3, allow_nan=False)


@given(st.data())
def test_linear_in_pieces_equals_its_closed_form(data):
    lead = data.draw(hnp.array_shapes(min_dims=1, max_dims=2, max_side=7))
    n_in, n_out = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 6))
    x = data.draw(hnp.arrays(np.float64, lead + (n_in,), elements=floats))
    w = data.draw(hnp.arrays(np.float64, (n_out, n_in), elements=floats))
    b = data.draw(hnp.arrays(np.float64, (n_out,), elements=floats))
    g = np.random.default_rng(0).standard_normal(lead + (n_out,))   # a random output gradient
    with in_pieces():
        y, (gx, gw, gb) = grads_of(F.linear, [x, w, b], g)
    x2, g2 = x.reshape(-1, n_in), g.reshape(-1, n_out)
    np.testing.assert_allclose(y, x @ w.T + b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gx, g @ w, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gw, g2.T @ x2, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gb, g2.sum(axis=0), rtol=1e-12, atol=1e-12)


def _attention_closed_form(qkv, nh, g):
    """y and dqkv of causal multi-head attention, written out with NumPy."""
    B, T, C3 = qkv.shape
    hs = C3 // (3 * nh)
    q, k, v = qkv.reshape(B, T, 3, nh, hs).transpose(2, 0, 3, 1, 4)
    s = q @ k.swapaxes(-1, -2) / np.sqrt(hs)
    s = np.where(np.tril(np.ones((T, T), bool)), s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    y = (p @ v).transpose(0, 2, 1, 3).reshape(B, T, C3 // 3)
    gy = g.reshape(B, T, nh, hs).transpose(0, 2, 1, 3)
    dv = p.swapaxes(-1, -2) @ gy
    dp = gy @ v.swapaxes(-1, -2)
    ds = p * (dp - (dp * p).sum(-1, keepdims=True)) / np.sqrt(hs)
    dq, dk = ds @ k, ds.swapaxes(-1, -2) @ q
    dqkv = np.stack([dq, dk, dv]).transpose(1, 3, 0, 2, 4).reshape(B, T, C3)
    return y, dqkv


@given(st.data())
def test_multi_head_attention_in_batch_pieces_equals_its_closed_form(data):
    B, T, nh, hs = (data.draw(st.integers(1, n)) for n in (5, 9, 3, 4))
    qkv = data.draw(hnp.arrays(np.float64, (B, T, 3 * nh * hs), elements=floats))
    g = np.random.default_rng(1).standard_normal((B, T, nh * hs))
    with in_pieces():
        y, (dqkv,) = grads_of(lambda t: F.multi_head_attention(t, nh), [qkv], g)
    y_ref, dqkv_ref = _attention_closed_form(qkv, nh, g)
    np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dqkv, dqkv_ref, rtol=1e-9, atol=1e-11)


def test_attention_dropout_mask_follows_its_batch_piece():
    """With dropout, each piece of the batch uses its own rows of the one mask: the result
    equals the same op run whole, with the same mask."""
    rng = np.random.default_rng(2)
    qkv, g = rng.standard_normal((5, 6, 3 * 2 * 3)), rng.standard_normal((5, 6, 6))
    runs = []
    for threads in (3, 1):
        with in_pieces(threads):
            mg.manual_seed(0)
            runs.append(grads_of(lambda t: F.multi_head_attention(t, 2, dropout_p=0.3), [qkv], g))
    (y3, (d3,)), (y1, (d1,)) = runs
    np.testing.assert_allclose(y3, y1, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(d3, d1, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("loops", [True, False], ids=["compiled", "numpy"])
def test_layer_norm_weight_grads_sum_over_the_pieces(pieces, loops):
    if loops and backend.kernels_status() != "on":
        pytest.skip(f"compiled loops: {backend.kernels_status()}")
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((7, 5)), rng.standard_normal(5), rng.standard_normal(5)
    g = rng.standard_normal((7, 5))
    old = backend.set_kernels_enabled(loops)
    try:
        y, (gx, gw, gb) = grads_of(lambda *ts: F.layer_norm(ts[0], 5, ts[1], ts[2]), [x, w, b], g)
    finally:
        backend.set_kernels_enabled(old)
    xhat = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(y, xhat * w + b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gw, (g * xhat).sum(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gb, g.sum(0), rtol=1e-10, atol=1e-12)
    dxhat = g * w
    rstd = 1 / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    gx_ref = rstd * (dxhat - dxhat.mean(-1, keepdims=True)
                     - xhat * (dxhat * xhat).mean(-1, keepdims=True))
    np.testing.assert_allclose(gx, gx_ref, rtol=1e-9, atol=1e-11)


@pytest.mark.skipif(not cpu_threads._blas_libraries(), reason="no BLAS threadpoolctl can hold")
def test_blas_is_held_at_one_thread_inside_the_pieces_and_given_back(pieces):
    before = blas_threads()
    seen = []
    cpu_threads.blas_tasks([lambda: seen.append(blas_threads())] * 3, flops=1.0)
    assert seen == [[1] * len(before)] * 3
    assert blas_threads() == before
    x = mg.tensor(np.ones((4, 3)), requires_grad=True)
    F.linear(x, mg.tensor(np.ones((2, 3)), requires_grad=True)).sum().backward()
    assert blas_threads() == before
    with pytest.raises(ZeroDivisionError):        # given back when a piece fails, too
        cpu_threads.blas_tasks([lambda: None, lambda: 1 / 0], flops=1.0)
    assert blas_threads() == before


def test_small_work_runs_whole_on_the_calling_thread(monkeypatch):
    monkeypatch.setattr(cpu_threads, "NUM_THREADS", 2)
    calls = []

    def piece(lo, hi):
        calls.append((lo, hi))
    cpu_threads.blas_rows(piece, 10, flops=cpu_threads.PARALLEL_MIN_FLOPS - 1)
    cpu_threads.split_rows(piece, 10, size=cpu_threads.PARALLEL_MIN_SIZE - 1)
    assert calls == [(0, 10), (0, 10)]
    cpu_threads.split_rows(piece, 10, size=cpu_threads.PARALLEL_MIN_SIZE)
    assert sorted(calls[2:]) == [(0, 5), (5, 10)]


def test_an_error_in_a_pool_thread_reaches_the_caller():
    def fail():
        raise ValueError("piece 2 failed")
    with pytest.raises(ValueError, match="piece 2 failed"):
        cpu_threads.run_parallel([lambda: None, fail])


def test_a_piece_that_splits_again_runs_its_parts_itself():
    """Attention's pieces call the NumPy softmax, which splits its rows too (loops off):
    nested splitting runs inline instead of waiting on a pool whose threads are all busy."""
    rng = np.random.default_rng(4)
    qkv, g = rng.standard_normal((4, 5, 3 * 2 * 2)), rng.standard_normal((4, 5, 4))
    result = []

    def run():
        old = backend.set_kernels_enabled(False)
        try:
            with in_pieces(2):
                result.append(grads_of(lambda t: F.multi_head_attention(t, 2), [qkv], g))
        finally:
            backend.set_kernels_enabled(old)
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "nested splitting deadlocked"
    y_ref, dqkv_ref = _attention_closed_form(qkv, 2, g)
    y, (dqkv,) = result[0]
    np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dqkv, dqkv_ref, rtol=1e-9, atol=1e-11)


def test_linear_with_fewer_rows_than_outputs_splits_its_outputs(pieces):
    """(A generation step's shapes: few rows, wide layers.) The pieces are column blocks."""
    rng = np.random.default_rng(5)
    x, w, b = rng.standard_normal((2, 3)), rng.standard_normal((7, 3)), rng.standard_normal(7)
    g = rng.standard_normal((2, 7))
    y, (gx, gw, gb) = grads_of(F.linear, [x, w, b], g)
    np.testing.assert_allclose(y, x @ w.T + b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gx, g @ w, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gw, g.T @ x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gb, g.sum(0), rtol=1e-12, atol=1e-12)


def test_pieces_not_yet_taken_are_run_by_whichever_thread_is_free(monkeypatch):
    """The calling thread does not wait for a late pool thread: it takes the next piece.
    The pool's one thread is busy until the last piece has run, so the calling thread must
    run them all. (A caller that waited for the pool would wait until the 60 s safety
    timeout, then see pieces run on the pool thread: the test fails on what ran where, never
    on how long it took.)"""
    from concurrent.futures import ThreadPoolExecutor
    pool = ThreadPoolExecutor(1, thread_name_prefix="minigrad-test")
    monkeypatch.setattr(cpu_threads, "_pool", pool)
    release = threading.Event()
    seen = []

    def piece():
        seen.append((threading.current_thread(), release.is_set()))

    def last_piece():
        piece()
        release.set()                                   # only now the pool's thread is free
    try:
        with in_pieces(2):
            pool.submit(release.wait, 60)               # its thread is busy elsewhere
            cpu_threads.run_parallel([piece, piece, piece, last_piece])
    finally:
        release.set()
        pool.shutdown()
    assert seen == [(threading.current_thread(), False)] * 4


@given(st.integers(1, 6), st.data())
def test_head_blocks_cover_each_head_of_a_piece_once(n_head, data):
    """MultiHeadAttention copies a piece's heads out of qkv by _head_blocks's slices: every
    (batch, head) of lo:hi exactly once, nothing outside it."""
    from minigrad.fused import _head_blocks
    total = n_head * data.draw(st.integers(1, 5))
    lo = data.draw(st.integers(0, total))
    hi = data.draw(st.integers(lo, total))
    seen = [(b, h) for bs, hd in _head_blocks(lo, hi, n_head)
            for b in range(bs.start, bs.stop) for h in range(hd.start, hd.stop)]
    assert sorted(seen) == [divmod(i, n_head) for i in range(lo, hi)]
