"""minigrad: a small tensor autograd library on NumPy (CPU) or CuPy (GPU).

    import minigrad as mg
    x = mg.tensor([[1.0, 2.0]], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    x.grad   # tensor([[2., 4.]])
"""
from . import backend, composite, functional, fused, inplace, ops  # noqa: F401  (registers ops)
from . import autograd  # noqa: F401  (mg.autograd.grad, as torch.autograd.grad)
from .autograd import (OPS, Function, detect_anomaly, enable_grad, inference_mode,
                       is_grad_enabled, is_inference_mode_enabled, no_grad, set_grad_enabled,
                       stage)
from .dtypes import (bfloat16, double, float16, float32, float64, half, int8, int16, int32,
                     int64, long, promote_types, short, uint8)
from .dtypes import bool_ as bool, float32 as float, int32 as int  # noqa: A001 (torch's names)
from .backend import cuda_is_available, get_default_device, manual_seed, set_default_device
from .creation import (arange, empty, empty_like, full, full_like, ones, ones_like, rand,
                       rand_like, randint, randint_like, randn, randn_like, tensor, zeros,
                       zeros_like)
from .gradcheck import GradcheckResult, gradcheck
from .tensor import Tensor, where
from .shape_ops import cat, stack
from . import nn, optim, viz  # noqa: E402  (they import the names above)
from .serialization import load, save  # noqa: E402
# issue 16: torch's module-level functions (mg.exp, mg.max, mg.einsum, mg.eye, ...)
from . import functions  # noqa: E402
from .functions import *  # noqa: E402,F401,F403  (the names in functions.__all__)
from .shape_ops import Size  # noqa: E402
# torch's module-level helpers for scripts: mg.device, mg.cuda.is_available(), mg.amp,
# mg.backends' flags, mg.utils.data (DataLoader), mg.compile
from . import amp, backends, cuda, linalg, utils  # noqa: E402,F401
from .devices import device  # noqa: E402
from .version import __getattr__  # noqa: E402  (mg.__version__, read when first asked for)


__all__ = [
    "Tensor", "tensor", "zeros", "ones", "full", "empty", "arange", "randn", "rand", "randint",
    "zeros_like", "ones_like", "full_like", "randn_like", "rand_like", "randint_like",
    "empty_like", "set_grad_enabled", "cat", "stack", "where", "no_grad",
    "enable_grad", "is_grad_enabled", "detect_anomaly", "stage", "gradcheck", "GradcheckResult",
    "manual_seed", "set_default_device", "get_default_device", "cuda_is_available", "OPS",
    "Function", "functional", "composite", "nn", "optim", "viz", "save", "load", "Size",
    "functions", *(n for n in functions.__all__ if n not in functions.BUILTIN_NAMES),
    "autograd", "inference_mode", "is_inference_mode_enabled", "promote_types",
    "bool", "uint8", "int8", "int16", "short", "int32", "int", "int64", "long", "float16",
    "half", "float32", "float", "float64", "double", "bfloat16", "device", "cuda", "amp",
    "backends", "utils", "compile", "linalg",
]
