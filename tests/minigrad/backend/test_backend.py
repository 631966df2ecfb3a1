"""Backends: CuPy is imported in backend/__init__.py only, numba in backend/kernels.py only;
devices; mixed-device errors; importing minigrad changes nothing in the process."""
import ast
from pathlib import Path

import numpy as np
import pytest

import minigrad as mg
from minigrad import backend
from minigrad.errors import DeviceError

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("modules, owner",
                         [(("cupy", "cupyx"), "minigrad/backend/__init__.py"),
                          (("numba", "llvmlite"), "minigrad/backend/kernels.py")])
def test_cupy_and_numba_are_each_imported_in_one_file(modules, owner):
    offenders = []
    for path in sorted((ROOT / "minigrad").rglob("*.py")) + sorted((ROOT / "minigpt").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if any(n.split(".")[0] in modules for n in names):
                offenders.append(path.relative_to(ROOT).as_posix())
    assert set(offenders) <= {owner}, offenders


def test_cpu_device_and_bad_device_names():
    assert mg.zeros(2).device == "cpu"
    with pytest.raises(ValueError, match=r"device: expected one of \('cpu', 'cuda'\), got 'tpu'"):
        mg.zeros(2, device="tpu")


@pytest.mark.skipif(backend.cuda_is_available(), reason="only without a GPU")
def test_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(RuntimeError, match="device='cuda' was requested but CuPy or a GPU"):
        mg.zeros(2, device="cuda")


def test_default_device_from_setting(monkeypatch):
    monkeypatch.setattr(backend, "_default_device", None)
    monkeypatch.setenv("MINIGRAD_DEVICE", "cpu")
    assert mg.get_default_device() == "cpu"
    mg.set_default_device("cpu")
    monkeypatch.setenv("MINIGRAD_DEVICE", "gpu0")
    monkeypatch.setattr(backend, "_default_device", None)
    with pytest.raises(ValueError, match="MINIGRAD_DEVICE"):
        mg.get_default_device()
    monkeypatch.setattr(backend, "_default_device", "cpu")


class _OtherDeviceArray(np.ndarray):
    """A NumPy array that claims to live elsewhere, to test the mixed-device error."""


def test_mixing_devices_names_op_and_devices(monkeypatch):
    real = backend.device_of
    monkeypatch.setattr(backend, "device_of",
                        lambda a: "cuda" if isinstance(a, _OtherDeviceArray) else real(a))
    a = mg.ones(3)
    b = mg.Tensor._make(np.ones(3, dtype=np.float32).view(_OtherDeviceArray), False)
    with pytest.raises(DeviceError, match=r"Add: expected all tensors on the same device, "
                                          r"got cpu and cuda; move one with \.to"):
        a + b


@pytest.mark.cuda
def test_cuda_round_trip_and_gradients():
    x = mg.randn(3, 4, device="cuda", requires_grad=True)
    assert x.device == "cuda" and isinstance(x.numpy(), np.ndarray)
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy(), rtol=1e-6)
    y = mg.randn(3, requires_grad=True)
    y.to("cuda").sum().backward()
    assert y.grad.device == "cpu"
    with pytest.raises(DeviceError, match="cpu and cuda"):
        mg.ones(2) + mg.ones(2, device="cuda")


IMPORT_CHANGES_NOTHING = """
import sys, threading
import minigrad, minigpt.tokenizer
from minigrad.backend import threads
assert threads.MALLOC_TUNED is False and threads._pool is None
assert [t.name for t in threading.enumerate()] == ["MainThread"], threading.enumerate()
assert not {"numba", "llvmlite", "cupy", "cupyx"} & set(sys.modules), sys.modules.keys()
import numpy as np
import minigrad.functional as F
F.gelu(minigrad.tensor(np.ones((2, 3))), approximate="tanh")   # the first fused op
print(threads.MALLOC_TUNED)
"""


@pytest.mark.parametrize("tuning", ["1", "0"])
def test_importing_minigrad_changes_nothing_in_the_process(tuning):
    """No malloc tuning, thread, numba or CuPy at import; glibc's malloc is tuned on the
    first fused op (where glibc is the C library and MINIGRAD_MALLOC_TUNING is not 0)."""
    import os
    import platform
    import subprocess
    import sys
    env = dict(os.environ, MINIGRAD_MALLOC_TUNING=tuning, MINIGRAD_DEVICE="cpu")
    run = subprocess.run([sys.executable, "-c", IMPORT_CHANGES_NOTHING], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert run.stdout.split() == [str(glibc and tuning == "1")]
