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


def _split_heads(qkv, nh):
    """qkv (B, T, 3C) -> q, k, v (B, nh, T, hs), NumPy."""
    B, T, C3 = qkv.shape
    return [a.reshape(B, T, nh, -1).transpose(0, 2, 1, 3) for a in np.split(qkv, 3, -1)]


@pytest.mark.parametrize("block", [2, 64])
@pytest.mark.parametrize("causal", [True, False])
def test_multi_head_attention_with_a_kv_cache_matches_the_composite(monkeypatch, block, causal,
                                                                    compiled_loops):
    """With kv_cache=(k, v, length) the op writes this call's keys and values into the cache
    and attends over the cached ones too: the composite over the concatenated keys, value
    and gradient (the cached keys are constants)."""
    import minigrad.fused as FU
    monkeypatch.setattr(FU, "ATTENTION_BLOCK", block)
    rng = np.random.default_rng(block)
    B, T, nh, hs, past, t_max = 2, 3, 2, 4, 4, 9
    qkv = rng.standard_normal((B, T, 3 * nh * hs))
    k_cache, v_cache = rng.standard_normal((2, B, nh, t_max, hs))
    k_past, v_past = k_cache[:, :, :past].copy(), v_cache[:, :, :past].copy()

    def composite(t):
        q, k, v = (a.reshape(B, T, nh, hs).transpose(1, 2) for a in t.split(nh * hs, dim=2))
        k = mg.cat([mg.tensor(k_past, dtype="float64"), k], dim=2)     # (B, nh, past + T, hs)
        v = mg.cat([mg.tensor(v_past, dtype="float64"), v], dim=2)
        y = C.attention(q, k, v, is_causal=causal)
        return y.transpose(1, 2).reshape(B, T, nh * hs)

    same_value_and_grad(lambda t: F.multi_head_attention(t, nh, is_causal=causal,
                                                         kv_cache=(k_cache, v_cache, past)),
                        composite, [qkv])
    _, k_new, v_new = _split_heads(qkv, nh)
    np.testing.assert_array_equal(k_cache[:, :, past:past + T], k_new)   # appended in place
    np.testing.assert_array_equal(v_cache[:, :, past:past + T], v_new)
    np.testing.assert_array_equal(k_cache[:, :, :past], k_past)          # the past untouched


@pytest.mark.parametrize("block", [2, 64])
@pytest.mark.parametrize("past", [0, 3])
def test_attention_hands_over_its_own_intermediates(monkeypatch, block, past, compiled_loops):
    """intermediates= fills a dict with the arrays the op computed, equal to an independent
    NumPy computation, and changes nothing in the result: weights @ v is y, y merged is the
    output, the scores are q k^T / sqrt(hs) wherever the op scored a key."""
    import minigrad.fused as FU
    monkeypatch.setattr(FU, "ATTENTION_BLOCK", block)
    rng = np.random.default_rng(past)
    B, T, nh, hs = 2, 5, 3, 4
    qkv = rng.standard_normal((B, T, 3 * nh * hs)).astype(np.float32)
    caches = rng.standard_normal((2, B, nh, past + T, hs)).astype(np.float32)
    kv = None if not past else (caches[0], caches[1], past)
    plain = F.multi_head_attention(mg.tensor(qkv), nh, kv_cache=kv).numpy()
    seen = {}
    out = F.multi_head_attention(mg.tensor(qkv), nh, kv_cache=kv, intermediates=seen).numpy()
    np.testing.assert_array_equal(out, plain)
    q, k, v = (a.astype(np.float64) for a in _split_heads(qkv, nh))
    if past:
        k = np.concatenate([caches[0][:, :, :past], k], axis=2)
        v = np.concatenate([caches[1][:, :, :past], v], axis=2)
    tk = past + T
    allowed = np.tril(np.ones((T, tk), dtype=bool), k=past)
    scores = q @ k.swapaxes(-1, -2) / math.sqrt(hs)
    w = np.exp(np.where(allowed, scores, -np.inf) - scores.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    assert set(seen) == {"q", "k", "v", "scores", "mask", "weights", "y"}
    np.testing.assert_array_equal(seen["mask"], allowed)
    for name, want in (("q", q), ("k", k), ("v", v), ("weights", w), ("y", w @ v)):
        assert seen[name].shape == want.shape, name
        np.testing.assert_allclose(seen[name], want, rtol=1e-5, atol=1e-6, err_msg=name)
    scored = np.isfinite(seen["scores"])
    assert scored[..., allowed].all()          # every key a query may see was scored
    np.testing.assert_allclose(seen["scores"][scored], scores[scored], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(seen["weights"] @ seen["v"], seen["y"], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(seen["y"].transpose(0, 2, 1, 3).reshape(B, T, -1), out)

    q1, k1, v1 = (mg.tensor(a) for a in (q, k, v))
    seen = {}
    y = F.scaled_dot_product_attention(q1, k1, v1, is_causal=True, intermediates=seen).numpy()
    np.testing.assert_allclose(seen["weights"], w, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(seen["y"], y)
    np.testing.assert_array_equal(seen["mask"], allowed)


def test_attention_cache_and_intermediates_are_checked():
    from minigrad.errors import ArgumentError, DTypeError, ShapeError
    qkv = mg.randn(1, 2, 12)                                    # B 1, T 2, 2 heads of 2
    k = np.zeros((1, 2, 4, 2), dtype=np.float32)
    with pytest.raises(ShapeError, match=r"k must have shape .* \(1, 2, T_max, 2\), got "
                                         r"\(1, 2, 4, 3\)"):
        F.multi_head_attention(qkv, 2, kv_cache=(np.zeros((1, 2, 4, 3), np.float32), k, 0))
    with pytest.raises(ArgumentError, match=r"length must be an int in \[0, 2\].*got 3"):
        F.multi_head_attention(qkv, 2, kv_cache=(k, k.copy(), 3))
    with pytest.raises(DTypeError, match="k must be a NumPy or CuPy array"):
        F.multi_head_attention(qkv, 2, kv_cache=(mg.tensor(k), k, 0))
    with pytest.raises(DTypeError, match="holds float64"):
        F.multi_head_attention(qkv, 2, kv_cache=(k.astype(np.float64), k, 0))
    with pytest.raises(ArgumentError, match="must be a tuple \\(k, v, length\\)"):
        F.multi_head_attention(qkv, 2, kv_cache=[k, k, 0])
    with pytest.raises(ArgumentError, match="intermediates must be a dict"):
        F.multi_head_attention(qkv, 2, intermediates=[])


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


@pytest.mark.parametrize("B, T", [(1, 1), (2, 1), (1, 3)])
def test_multi_head_attention_leaves_its_input_alone(B, T):
    """The op scales its own copy of q: qkv is unchanged even when its head layout is
    already contiguous (B = T = 1, a one-token step of generation)."""
    qkv = mg.randn(B, T, 12)
    before = qkv.numpy().copy()
    cache = np.zeros((2, B, 2, 3, 2), dtype=np.float32)
    F.multi_head_attention(qkv, 2, kv_cache=(cache[0], cache[1], 3 - T))
    F.multi_head_attention(qkv, 2)
    np.testing.assert_array_equal(qkv.numpy(), before)
