"""Every op in the registry: forward equals a NumPy reference, backward equals
central differences in float64 against a random output gradient."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad
from minigrad import Tensor
from op_specs import SPECS


def test_every_registered_op_has_a_spec():
    missing = sorted(set(minigrad.OPS) - set(SPECS))
    assert not missing, f"ops without a gradient-check spec in tests/op_specs.py: {missing}"


def _run(spec, data, device="cpu"):
    arrays, consts = spec.draw(data)
    tensors = [Tensor(a, dtype="float64", device=device, requires_grad=True) for a in arrays]
    return arrays, consts, tensors


@pytest.mark.parametrize("name", sorted(SPECS))
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_op_forward_and_gradient(name, data, seed):
    spec = SPECS[name]
    arrays, consts, tensors = _run(spec, data)
    out = spec.call(*tensors, **consts)
    np.testing.assert_allclose(out.detach().numpy(), spec.ref(*arrays, **consts), rtol=1e-10,
                               atol=1e-12)
    minigrad.gradcheck(lambda *ts: spec.call(*ts, **consts), tensors, seed=seed,
                       atol=1e-7, rtol=1e-5)


@pytest.mark.cuda
@pytest.mark.parametrize("name", sorted(SPECS))
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_op_numpy_cupy_parity(name, data, seed):
    """On a GPU: the same op on CuPy gives NumPy's values and gradients."""
    spec = SPECS[name]
    arrays, consts, cpu = _run(spec, data)
    gpu = [t.to("cuda").detach().requires_grad_() for t in cpu]
    gconsts = {k: (minigrad.backend.to_device(v, "cuda") if isinstance(v, np.ndarray) else v)
               for k, v in consts.items()}
    if name == "_ToDevice":
        gconsts = {"device": "cuda"}
    outs = [spec.call(*cpu, **consts), spec.call(*gpu, **gconsts)]
    np.testing.assert_allclose(outs[1].numpy(), outs[0].numpy(), rtol=1e-9, atol=1e-12)
    g = np.random.default_rng(seed).standard_normal(outs[0].shape)
    outs[0].backward(Tensor(g, dtype="float64"))
    outs[1].backward(Tensor(g, dtype="float64", device="cuda"))
    for a, b in zip(cpu, gpu):
        np.testing.assert_allclose(b.grad.numpy(), a.grad.numpy(), rtol=1e-9, atol=1e-12)
