"""torch.nn.functional's everyday names beyond functional.py's core: the activations
(``silu``, ``elu``, ``relu6``, ``hardtanh``, ``mish``, ``logsigmoid``, ``softsign``, each
with torch's ``inplace=``) and the vector helpers (``normalize``, ``cosine_similarity``,
``pairwise_distance``). All are written with differentiable tensor ops, so their gradients
come from the primitives. functional.py re-exports them (``F.silu``).
"""
from __future__ import annotations

from . import ops as O
from .autograd import no_grad
from .errors import ArgumentError, DTypeError
from .inplace import apply_inplace
from .tensor import Tensor, where


def _float_input(fn: str, x) -> None:
    if not isinstance(x, Tensor):
        raise DTypeError(f"{fn}: input must be a Tensor, got {type(x).__name__}")
    if x.array.dtype.kind != "f":
        raise DTypeError(f"{fn}: input must be a floating-point tensor, got dtype {x.dtype} "
                         f"(convert with .float())")


def _maybe_inplace(fn: str, x, inplace: bool, compute):
    """compute(x), or (inplace=True, torch's flag) compute(x) written into x, returned."""
    _float_input(fn, x)
    if inplace:
        return apply_inplace(x, fn + "_", compute)
    return compute(x)


# ----------------------------------------------------------------------------- activations
def silu(input, inplace: bool = False):
    """x * sigmoid(x) (also called swish)."""
    return _maybe_inplace("silu", input, inplace, lambda x: x * x.sigmoid())


def elu(input, alpha: float = 1.0, inplace: bool = False):
    """x where x > 0, else alpha (e^x - 1)."""
    def compute(x):
        return where(x.array > 0, x, alpha * x.clamp(max=0).expm1())
    return _maybe_inplace("elu", input, inplace, compute)


def hardtanh(input, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
    """x clamped to [min_val, max_val]."""
    if min_val > max_val:
        raise ArgumentError(f"hardtanh: min_val ({min_val}) must not exceed max_val "
                            f"({max_val})")
    return _maybe_inplace("hardtanh", input, inplace, lambda x: x.clamp(min_val, max_val))


def relu6(input, inplace: bool = False):
    """min(max(x, 0), 6)."""
    return hardtanh(input, 0.0, 6.0, inplace)


def mish(input, inplace: bool = False):
    """x * tanh(softplus(x))."""
    return _maybe_inplace("mish", input, inplace, lambda x: x * O.Softplus.apply(x).tanh())


def logsigmoid(input):
    """log(sigmoid(x)) = -softplus(-x), finite for any finite x."""
    _float_input("logsigmoid", input)
    return -O.Softplus.apply(-input)


def softsign(input):
    """x / (1 + |x|)."""
    _float_input("softsign", input)
    return input / (1 + input.abs())


# ----------------------------------------------------------------------------- vectors
def normalize(input, p: float = 2.0, dim: int = 1, eps: float = 1e-12):
    """input / max(||input||_p along dim, eps): unit vectors along dim."""
    _float_input("normalize", input)
    return input / input.norm(p, dim, keepdim=True).clamp(min=eps)


def cosine_similarity(x1, x2, dim: int = 1, eps: float = 1e-8):
    """The cosine of the angle between x1 and x2 along dim (each norm at least eps), with
    broadcasting: sum((x1 / ||x1||) * (x2 / ||x2||))."""
    _float_input("cosine_similarity", x1)
    _float_input("cosine_similarity", x2)
    n1 = x1.norm(2, dim, keepdim=True).clamp(min=eps)
    n2 = x2.norm(2, dim, keepdim=True).clamp(min=eps)
    return ((x1 / n1) * (x2 / n2)).sum(dim)


def pairwise_distance(x1, x2, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False):
    """||x1 - x2 + eps||_p along the last dim."""
    _float_input("pairwise_distance", x1)
    _float_input("pairwise_distance", x2)
    return (x1 - x2 + eps).norm(p, -1, keepdim=keepdim)


# ----------------------------------------------------------------------------- batch norm
def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Normalise each channel (dim 1) over the batch and the other dims. training=True:
    with the batch's mean and (biased) variance, and the running statistics, when given,
    moved toward them by ``momentum`` (the variance unbiased, as torch); otherwise with the
    running statistics."""
    _float_input("batch_norm", input)
    if input.ndim < 2:
        raise ArgumentError(f"batch_norm: expected an input of shape (N, C, ...), got "
                            f"{input.shape}")
    c = input.shape[1]
    dims = (0,) + tuple(range(2, input.ndim))
    shape = (1, c) + (1,) * (input.ndim - 2)
    if training:
        count = input.numel() // c
        if count <= 1:
            raise ArgumentError(f"batch_norm: expected more than 1 value per channel when "
                                f"training, got input of shape {input.shape}")
        mean = input.mean(dims)
        var = input.var(dims, unbiased=False)
        if running_mean is not None and running_var is not None:
            with no_grad():
                running_mean.mul_(1 - momentum).add_(mean.detach() * momentum)
                running_var.mul_(1 - momentum).add_(var.detach() * (momentum * count /
                                                                    (count - 1)))
    else:
        if running_mean is None or running_var is None:
            raise ArgumentError("batch_norm: running_mean and running_var are needed when "
                                "training=False")
        mean, var = running_mean, running_var
    out = (input - mean.reshape(shape)) / (var.reshape(shape) + eps).sqrt()
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out


__all__ = ["silu", "elu", "hardtanh", "relu6", "mish", "logsigmoid", "softsign", "normalize",
           "cosine_similarity", "pairwise_distance", "batch_norm"]
