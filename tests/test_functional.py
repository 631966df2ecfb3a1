"""The functional ops: fused versions equal their primitive-built composites
(value and gradient), and the invariants hold."""
import math

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given

import minigrad as mg
import minigrad.composite as C
import minigrad.functional as F

floats = st.floats(-3, 3, allow_nan=False, width=64)


def arrays(shape):
    return hnp.arrays(np.float64, shape, elements=floats)


def t64(a):
    return mg.tensor(a, dtype="float64", requires_grad=True)


def same_value_and_grad(fused, composite, arrays_in, seed=0):
    outs, grads = [], []
    g = None
    for fn in (fused, composite):
        ts = [t64(a) for a in arrays_in]
        out = fn(*ts)
        if g is None:
            g = np.random.default_rng(seed).standard_normal(out.shape)
        out.backward(mg.tensor(g, dtype="float64"))
        outs.append(out.detach().numpy())
        grads.append([t.grad.numpy() for t in ts])
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-10, atol=1e-12)
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.fixture(params=[True, False], ids=["compiled", "numpy"])
def compiled_loops(request):
    """Run a test with the fused ops' compiled loops (kernels.py) on, then with their NumPy
    code (the path CuPy takes)."""
    from minigrad import backend
    if request.param and backend.kernels_status() != "on":
        pytest.skip(f"compiled loops unavailable: {backend.kernels_status()}")
    old = backend.set_kernels_enabled(request.param)
    yield request.param
    backend.set_kernels_enabled(old)


shape2 = hnp.array_shapes(min_dims=1, max_dims=3, max_side=5)


@given(st.data())
def test_softmax_and_log_softmax_match_composites(data):
    x = data.draw(shape2.flatmap(arrays))
    dim = data.draw(st.integers(-x.ndim, x.ndim - 1))
    same_value_and_grad(lambda t: F.softmax(t, dim), lambda t: C.softmax(t, dim), [x])
    same_value_and_grad(lambda t: F.log_softmax(t, dim), lambda t: C.log_softmax(t, dim), [x])
    np.testing.assert_allclose(F.softmax(mg.tensor(x, dtype="float64"), dim).numpy().sum(dim),
                               1.0, rtol=1e-12)


@given(st.data())
def test_cross_entropy_matches_composite(data):
    n, c = data.draw(st.integers(1, 6)), data.draw(st.integers(2, 6))
    z = data.draw(arrays((n, c)))
    t = data.draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, c - 1)))
    t[0] = -1 if n > 1 else t[0]
    same_value_and_grad(lambda a: F.cross_entropy(a, t, ignore_index=-1),
                        lambda a: C.cross_entropy(a, t, ignore_index=-1), [z])


@given(st.data())
def test_layer_norm_matches_composite_and_normalises(data):
    shape = data.draw(shape2.filter(lambda s: s[-1] > 1))
    x, w, b = (data.draw(arrays(s)) for s in (shape, shape[-1:], shape[-1:]))
    n = shape[-1]
    same_value_and_grad(lambda *ts: F.layer_norm(ts[0], n, ts[1], ts[2]),
                        lambda *ts: C.layer_norm(ts[0], n, ts[1], ts[2]), [x, w, b])
    x = x + data.draw(st.floats(-1, 1)) * np.arange(n)    # avoid constant rows
    if np.all(x.std(-1) > 1e-3):
        y = F.layer_norm(mg.tensor(x, dtype="float64"), n, eps=0.0).numpy()
        np.testing.assert_allclose(y.mean(-1), 0, atol=1e-9)
        np.testing.assert_allclose(y.var(-1), 1, rtol=1e-6)


@given(st.data())
def test_gelu_variants_match_composites(data):
    x = data.draw(shape2.flatmap(arrays))
    same_value_and_grad(lambda t: F.gelu(t), lambda t: C.gelu(t), [x])
    same_value_and_grad(lambda t: F.gelu(t, approximate="tanh"),
                        lambda t: C.gelu(t, approximate="tanh"), [x])
    # the tanh form approximates the exact one to ~1e-3
    np.testing.assert_allclose(F.gelu(mg.tensor(x), approximate="tanh").numpy(),
                               F.gelu(mg.tensor(x)).numpy(), atol=2e-3)


@given(st.data())
def test_linear_matches_composite(data):
    x = data.draw(arrays((2, 3, 4)))
    w, b = data.draw(arrays((5, 4))), data.draw(arrays((5,)))
    same_value_and_grad(F.linear, C.linear, [x, w, b])


@given(st.data())
def test_causal_attention_matches_composite(data):
    tk = data.draw(st.integers(1, 5))
    tq = data.draw(st.integers(1, tk))
    q, k, v = (data.draw(arrays(s)) for s in ((2, tq, 3), (2, tk, 3), (2, tk, 4)))
    same_value_and_grad(lambda *ts: F.scaled_dot_product_attention(*ts, is_causal=True),
                        lambda *ts: C.attention(*ts, is_causal=True), [q, k, v])


def test_gelu_exact_textbook_values():
    x = mg.tensor([-1.0, 0.0, 1.0], dtype="float64")
    phi = [0.5 * (1 + math.erf(v / math.sqrt(2))) for v in (-1.0, 0.0, 1.0)]
    np.testing.assert_allclose(F.gelu(x).numpy(), [-phi[0], 0.0, phi[2]], rtol=1e-12)


def test_softmax_stable_for_huge_logits():
    z = mg.tensor([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]])
    assert np.isfinite(F.softmax(z, -1).numpy()).all()
    assert np.isfinite(F.log_softmax(z, -1).numpy()).all()
    loss = F.cross_entropy(mg.tensor([[1e4, -1e4]], requires_grad=True), [1])
    assert loss.item() == pytest.approx(2e4)


def test_cross_entropy_value_and_ignore_index():
    z = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]])
    expected = -np.log(np.exp(z[0, 0]) / np.exp(z[0]).sum())
    loss = F.cross_entropy(mg.tensor(z, dtype="float64"), np.array([0, -100]))
    assert loss.item() == pytest.approx(expected)
    with pytest.raises(ValueError, match="target 3 is out of range for 3 classes"):
        F.cross_entropy(mg.tensor(z), np.array([3, 0]))
    with pytest.raises(TypeError, match="integer class indices, got dtype float64"):
        F.cross_entropy(mg.tensor(z), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"targets of shape \(3,\) do not match logits"):
        F.cross_entropy(mg.tensor(z), np.array([0, 1, 2]))


def test_dropout_scales_and_is_identity_in_eval():
    x = mg.ones(10_000)
    y = F.dropout(x, 0.25).numpy()
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.03
    assert F.dropout(x, 0.25, training=False) is x
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\], got 1.5"):
        F.dropout(x, 1.5)


def test_embedding_errors_and_gradient():
    w = mg.randn(4, 3, requires_grad=True)
    with pytest.raises(IndexError, match="index 4 is out of range for an embedding table of 4"):
        F.embedding(np.array([0, 4]), w)
    with pytest.raises(TypeError, match="indices must be integers, got dtype float"):
        F.embedding(np.array([0.0]), w)
    F.embedding(np.array([[1, 1], [3, 1]]), w).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy()[:, 0], [0, 3, 0, 1])


@given(st.data())
def test_multi_head_attention_matches_split_heads_composite(data):
    B, T, nh, hs = (data.draw(st.integers(1, 3)) for _ in range(4))
    width = nh * hs
    qkv = data.draw(arrays((B, T, 3 * width)))

    def composite(t):
        q, k, v = (a.reshape(B, T, nh, hs).transpose(1, 2) for a in t.split(width, dim=2))
        y = _comp_attention(q, k, v)
        return y.transpose(1, 2).reshape(B, T, width)

    same_value_and_grad(lambda t: F.multi_head_attention(t, nh), composite, [qkv])


@pytest.mark.parametrize("keep", [True, False])
@pytest.mark.parametrize("block", [1, 2, 3, 64])
def test_attention_in_query_blocks_with_kept_or_recomputed_weights(monkeypatch, keep, block,
                                                                    compiled_loops):
    """Causal attention runs in blocks of queries (each seeing only the keys it may), and
    keeps its weights for backward or recomputes them: every way gives the composite's value
    and gradient, with Tq < Tk (a KV cache) and with dropout."""
    import minigrad.fused as FU
    monkeypatch.setattr(FU, "_keep_weights", lambda *arrays: keep)
    monkeypatch.setattr(FU, "ATTENTION_BLOCK", block)
    rng = np.random.default_rng(block)
    B, T, nh, hs = 2, 5, 2, 3
    qkv = rng.standard_normal((B, T, 3 * nh * hs))

    def composite(t):
        q, k, v = (a.reshape(B, T, nh, hs).transpose(1, 2) for a in t.split(nh * hs, dim=2))
        return _comp_attention(q, k, v).transpose(1, 2).reshape(B, T, nh * hs)

    same_value_and_grad(lambda t: F.multi_head_attention(t, nh), composite, [qkv])
    for tq in (1, 3, 5):   # queries at the end of 5 keys, as with a KV cache
        q = rng.standard_normal((B, nh, tq, hs))
        k, v = rng.standard_normal((B, nh, T, hs)), rng.standard_normal((B, nh, T, 4))
        same_value_and_grad(lambda *ts: F.scaled_dot_product_attention(*ts, is_causal=True),
                            lambda *ts: C.attention(*ts, is_causal=True), [q, k, v])
    drop = (rng.random((B, nh, T, T)) > 0.3) / 0.7
    q, k, v = (rng.standard_normal((B, nh, T, hs)) for _ in range(3))

    def composite_with_dropout(q, k, v):
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        allowed = np.tril(np.ones((T, T), dtype=bool))
        att = mg.where(mg.Tensor._make(allowed, False), att, float("-inf"))
        return (C.softmax(att, -1) * mg.tensor(drop, dtype="float64")) @ v

    same_value_and_grad(lambda *ts: FU.Attention.apply(*ts, dropout_mask=drop),
                        composite_with_dropout, [q, k, v])


def _comp_attention(q, k, v):
    return C.attention(q, k, v, is_causal=True)


def test_fused_ops_on_arrays_split_into_blocks_and_threads(compiled_loops):
    """Arrays larger than backend.BLOCK_SIZE and PARALLEL_MIN_SIZE take the blocked,
    multi-threaded kernels; they must agree with the composites there too."""
    from minigrad import backend
    rng = np.random.default_rng(0)
    n = 2 * max(backend.BLOCK_SIZE, backend.PARALLEL_MIN_SIZE) // 64 + 3   # rows of 64
    x = rng.standard_normal((n, 64))
    w, b = rng.standard_normal(64), rng.standard_normal(64)
    same_value_and_grad(lambda t: F.gelu(t, approximate="tanh"),
                        lambda t: C.gelu(t, approximate="tanh"), [x])
    same_value_and_grad(lambda *ts: F.layer_norm(ts[0], 64, ts[1], ts[2]),
                        lambda *ts: C.layer_norm(ts[0], 64, ts[1], ts[2]), [x, w, b])
    t = rng.integers(0, 64, n)
    same_value_and_grad(lambda z: F.cross_entropy(z, t), lambda z: C.cross_entropy(z, t), [x])
    q, k, v = (rng.standard_normal((n // 64 + 1, 2, 64, 8)) for _ in range(3))
    same_value_and_grad(lambda *ts: F.scaled_dot_product_attention(*ts, is_causal=True),
                        lambda *ts: C.attention(*ts, is_causal=True), [q, k, v])


def test_nll_loss_of_log_softmax_equals_cross_entropy():
    z = np.random.default_rng(1).standard_normal((5, 4))
    t = np.array([0, 3, -100, 1, 2])
    ours = F.nll_loss(F.log_softmax(mg.tensor(z, dtype="float64"), dim=1), t)
    assert ours.item() == pytest.approx(
        F.cross_entropy(mg.tensor(z, dtype="float64"), t).item(), rel=1e-12)
