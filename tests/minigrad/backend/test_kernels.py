"""The compiled CPU loops (minigrad/backend/kernels.py): exp against NumPy's, and every fused op
that uses them equal, value and gradient, to the same op running its NumPy code."""
import contextlib
import math

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import assume, example, given

import minigrad as mg
import minigrad.functional as F
from minigrad import backend

pytestmark = pytest.mark.skipif(backend.kernels_status() != "on",
                                reason=f"compiled loops: {backend.kernels_status()}")


def kernels():
    from minigrad.backend import kernels as K
    return K


@contextlib.contextmanager
def loops(on):
    """The compiled loops switched on or off inside the block, restored after it."""
    old = backend.set_kernels_enabled(on)
    try:
        yield
    finally:
        backend.set_kernels_enabled(old)


def test_float32_exp_is_within_two_ulp_of_the_exact_value():
    K = kernels()
    x = np.concatenate([np.linspace(K.EXP32_MIN, K.EXP32_MAX, 200_001, dtype=np.float32),
                        np.random.default_rng(0).uniform(-20, 20, 100_000).astype(np.float32),
                        np.float32([0, -0.0, 1e-30, -1e-30, 0.5, -0.5])])
    out = np.empty_like(x)
    K.exp_(x, out)
    exact = np.exp(x.astype(np.float64))
    ulp = np.spacing(exact.astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(out - exact) / ulp) <= 2.0


def test_float32_exp_limits_nan_and_float64():
    K = kernels()
    x = np.float32([-np.inf, -1000, K.EXP32_MIN - 1, K.EXP32_MAX + 1, 1000, np.inf, np.nan])
    out = np.empty_like(x)
    K.exp_(x, out)
    np.testing.assert_array_equal(out[:3], 0)
    np.testing.assert_array_equal(out[3:6], np.inf)
    assert np.isnan(out[6])
    x64 = np.random.default_rng(1).uniform(-700, 700, 1000)
    out64 = np.empty_like(x64)
    K.exp_(x64, out64)                       # float64 calls math.exp: exact to NumPy's
    np.testing.assert_allclose(out64, np.exp(x64), rtol=1e-15)


def test_loops_are_used_only_for_contiguous_float_numpy_arrays():
    a32, a64 = np.zeros((3, 4), np.float32), np.zeros((3, 4))
    assert backend.kernels_for(np, a32, a32) is not None
    assert backend.kernels_for(np, a64) is not None
    assert backend.kernels_for(np, a32, a64) is None                 # mixed dtypes
    assert backend.kernels_for(np, a32.T) is None                    # not C-contiguous
    assert backend.kernels_for(np, np.zeros(3, np.int64)) is None
    assert backend.kernels_for(object(), a32) is None                # another array module
    with loops(False):
        assert backend.kernels_for(np, a32) is None
        assert backend.kernels_status().startswith("off")


def _run(fn, arrays_in, dtype, g_seed):
    ts = [mg.tensor(a, dtype=dtype, requires_grad=True) for a in arrays_in]
    out = fn(*ts)
    g = np.random.default_rng(g_seed).standard_normal(out.shape)
    out.backward(mg.tensor(g, dtype=dtype))
    return out.detach().numpy(), [t.grad.numpy() for t in ts]


def compiled_equals_numpy(fn, arrays_in, dtype, amplification=1.0):
    """fn's value and gradients (for a random output gradient) with the compiled loops equal
    those with the NumPy code: to rounding in float64, to float32 rounding in float32.
    ``amplification``: how much fn can magnify a rounding difference (float64's atol)."""
    runs = []
    for on in (True, False):
        with loops(on):
            runs.append(_run(fn, arrays_in, dtype, 0))
    (y1, g1), (y0, g0) = runs
    tol = (dict(rtol=1e-10, atol=1e-12 * amplification) if dtype == "float64"
           else dict(rtol=2e-5, atol=2e-5))
    np.testing.assert_allclose(y1, y0, **tol)
    for a, b in zip(g1, g0):
        np.testing.assert_allclose(a, b, **tol)


dtypes = st.sampled_from(["float32", "float64"])
floats = st.floats(-4, 4, allow_nan=False, width=32)


def arrays(shape):
    return hnp.arrays(np.float64, shape, elements=floats)


@given(st.data(), dtypes)
@example(data=None, dtype="float32")
def test_gelu_compiled_equals_numpy(data, dtype):
    if data is None:   # wide values: exp's limits on both sides
        x = np.linspace(-60, 60, 1001).reshape(7, 143)
    else:
        x = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=9).flatmap(arrays))
    compiled_equals_numpy(lambda t: F.gelu(t, approximate="tanh"), [x], dtype)


@given(st.data(), dtypes)
def test_layer_norm_compiled_equals_numpy(data, dtype):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=9))
    x, w, b = data.draw(arrays(shape)), data.draw(arrays(shape[-1:])), data.draw(arrays(shape[-1:]))
    n = shape[-1]
    if dtype == "float32":   # a near-constant row is ill-conditioned: float32 rounding of the
        assume(x.std(axis=-1).min() > 0.1)   # mean is amplified by 1/sqrt(eps) differently
    # in float64 too, the two paths round a constant row's mean differently (exactly 0 or
    # ~1e-16 |x| off), and 1/sqrt(eps) = 316 magnifies it in x_hat and the gradients
    amplification = max(1.0, float(np.abs(x).max())) / math.sqrt(1e-5)
    compiled_equals_numpy(lambda *ts: F.layer_norm(ts[0], n, ts[1], ts[2]), [x, w, b], dtype,
                          amplification)
    compiled_equals_numpy(lambda t: F.layer_norm(t, n), [x], dtype, amplification)  # no params


@given(st.data(), dtypes)
def test_cross_entropy_compiled_equals_numpy(data, dtype):
    n, c = data.draw(st.integers(1, 7)), data.draw(st.integers(1, 40))
    z = data.draw(arrays((n, c))) * data.draw(st.sampled_from([1, 30]))
    t = data.draw(hnp.arrays(np.int64, (n,), elements=st.integers(-1, c - 1)))
    t[t < 0] = -100                                                        # ignored rows
    compiled_equals_numpy(lambda z_: F.cross_entropy(z_, t), [z], dtype)


@given(st.data(), dtypes, st.booleans())
def test_attention_compiled_equals_numpy(data, dtype, causal):
    b, nh = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3))
    tk, hs = data.draw(st.integers(1, 9)), data.draw(st.integers(1, 5))
    tq = data.draw(st.integers(1, tk)) if causal else data.draw(st.integers(1, 9))
    q, k, v = (data.draw(arrays((b, nh, t, hs))) for t in (tq, tk, tk))
    compiled_equals_numpy(lambda *ts: F.scaled_dot_product_attention(*ts, is_causal=causal),
                          [q, k, v], dtype)


@given(st.data(), dtypes)
def test_multi_head_attention_compiled_equals_numpy(data, dtype):
    b, t, nh, hs = (data.draw(st.integers(1, n)) for n in (2, 9, 3, 4))
    qkv = data.draw(arrays((b, t, 3 * nh * hs)))
    compiled_equals_numpy(lambda x: F.multi_head_attention(x, nh), [qkv], dtype)


def test_gpt_training_step_compiled_equals_numpy():
    """A whole float32 GPT step (loss and every parameter's gradient) agrees either way."""
    from minigpt.model import GPT, GPTConfig
    rng = np.random.default_rng(0)
    idx, targets = rng.integers(0, 50, (3, 16)), rng.integers(0, 50, (3, 16))
    results = []
    for on in (True, False):
        with loops(on):
            mg.manual_seed(0)
            model = GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=32))
            _, loss = model(idx, targets)
            loss.backward()
            results.append((loss.item(), {n: p.grad.numpy() for n, p in model.named_parameters()}))
    (l1, g1), (l0, g0) = results
    assert l1 == pytest.approx(l0, rel=1e-6)
    for name in g0:
        np.testing.assert_allclose(g1[name], g0[name], rtol=1e-4, atol=1e-6, err_msg=name)


@given(st.data(), dtypes, st.booleans())
def test_embedding_gradient_compiled_and_numpy_equal_add_at(data, dtype, compiled):
    """Rows picked by integer ids (repeated, negative) add their gradients up, in the
    compiled loop as in the NumPy sort-and-reduceat code."""
    v, d = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 5))
    ids = data.draw(hnp.arrays(np.int64, hnp.array_shapes(max_dims=2, max_side=6),
                               elements=st.integers(-v, v - 1)))
    g = data.draw(arrays(ids.shape + (d,))).astype(dtype)
    expected = np.zeros((v, d), dtype)
    np.add.at(expected, ids, g)
    got = np.zeros((v, d), dtype)
    with loops(compiled):
        backend.index_add_rows(got, ids, g)
    np.testing.assert_allclose(got, expected, rtol=1e-6 if dtype == "float32" else 1e-12,
                               atol=1e-6 if dtype == "float32" else 1e-12)


@given(st.data(), dtypes)
def test_embedding_op_compiled_equals_numpy(data, dtype):
    """The same through the op: F.embedding's value and weight gradient either way."""
    v, d = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 5))
    ids = data.draw(hnp.arrays(np.int64, hnp.array_shapes(max_dims=2, max_side=6),
                               elements=st.integers(0, v - 1)))
    compiled_equals_numpy(lambda w: F.embedding(ids, w), [data.draw(arrays((v, d)))], dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cross_entropy_with_masked_logits_compiled_equals_numpy(dtype):
    """Logits of -inf (a masked vocabulary) on some columns: finite loss and gradient,
    the same either way."""
    z = np.random.default_rng(6).standard_normal((5, 7)) * 3
    z[:, [1, 4]] = -np.inf
    z[2, :] = -np.inf
    z[2, 3] = 0.5                               # a row with one finite logit
    t = np.array([0, 2, 3, 6, -100])
    compiled_equals_numpy(lambda z_: F.cross_entropy(z_, t), [z], dtype)
    with loops(True):
        assert np.isfinite(_run(lambda z_: F.cross_entropy(z_, t), [z], dtype, 0)[1][0]).all()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("opt", ["Adam", "AdamW"])
@pytest.mark.parametrize("maximize", [False, True])
def test_adam_step_compiled_equals_numpy(dtype, opt, maximize):
    """Five steps of Adam / AdamW (weight decay, bias correction, maximize) agree either way."""
    rng = np.random.default_rng(3)
    start, grads = rng.standard_normal((4, 5)), rng.standard_normal((5, 4, 5))
    finals = []
    for on in (True, False):
        with loops(on):
            p = mg.tensor(start, dtype=dtype, requires_grad=True)
            o = getattr(mg.optim, opt)([p], lr=0.1, weight_decay=0.3, maximize=maximize)
            for g in grads:
                p.grad = mg.tensor(g, dtype=dtype)
                o.step()
            finals.append(p.detach().numpy())
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == "float64" else dict(rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(finals[0], finals[1], **tol)
    assert not np.allclose(finals[0], start)


def test_warm_up_loads_the_loops_unless_switched_off():
    assert backend.warm_up_kernels("float32") is True
    assert backend.warm_up_kernels("float64") is True
    with loops(False):
        assert backend.warm_up_kernels() is False


# Every compiled loop in backend/kernels.py and the test that holds it equal to its NumPy
# twin (value and gradient, float32 and float64). A new loop needs a line here.
LOOP_TESTS = {
    "gelu_forward": "test_gelu_compiled_equals_numpy",
    "gelu_backward": "test_gelu_compiled_equals_numpy",
    "layer_norm_forward": "test_layer_norm_compiled_equals_numpy",
    "layer_norm_backward": "test_layer_norm_compiled_equals_numpy",
    "softmax_rows_": "test_attention_compiled_equals_numpy",
    "softmax_rows_backward_": "test_multi_head_attention_compiled_equals_numpy",
    "log_sum_exp_rows": "test_cross_entropy_compiled_equals_numpy",
    "cross_entropy_backward": "test_cross_entropy_with_masked_logits_compiled_equals_numpy",
    "index_add_rows_": "test_embedding_op_compiled_equals_numpy",
    "adam_step_": "test_adam_step_compiled_equals_numpy",
    "exp_": "test_float32_exp_is_within_two_ulp_of_the_exact_value",
}


def test_every_compiled_loop_has_a_test_holding_it_equal_to_numpy():
    K = kernels()
    compiled = {name for name, f in vars(K).items()
                if hasattr(f, "py_func") and not name.startswith("_")}   # numba dispatchers
    assert compiled == set(LOOP_TESTS)
    assert all(callable(globals().get(test)) for test in LOOP_TESTS.values())


def test_each_fused_op_names_its_composite_twin_and_compiled_loops():
    """The readers' path does not rot: each fused op's docstring names a function of
    composite.py and only loops that exist, and every loop a fused op calls is named."""
    import inspect
    import re

    import minigrad.composite as C
    import minigrad.fused as FU
    K = kernels()
    ops = [c for c in vars(FU).values()
           if inspect.isclass(c) and issubclass(c, mg.Function) and c.__module__ == FU.__name__]
    assert len(ops) >= 10
    named_by_any = set()
    for op in ops:
        doc = op.__doc__ or ""
        twins = re.findall(r"composite\.(\w+)", doc)
        assert twins and all(callable(getattr(C, t, None)) for t in twins), op.__name__
        named = set(re.findall(r"kernels\.(\w+)", doc))
        assert all(callable(getattr(K, n, None)) for n in named), op.__name__
        called = set(re.findall(r"loops\.(\w+)\(", inspect.getsource(op)))
        assert called <= named, (op.__name__, called - named)
        named_by_any |= named
    called_in_helpers = set(re.findall(r"loops\.(\w+)\(", inspect.getsource(FU)))
    assert called_in_helpers <= named_by_any, called_in_helpers - named_by_any
