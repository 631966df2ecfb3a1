"""Initialisation in place, as in torch.nn.init: each function overwrites ``tensor.array``
(keeping the same array, so optimizers and tied modules see it) with draws from
minigrad's seeded generator, and returns the tensor. Same seed, same model, bit for bit.

    nn.init.normal_(linear.weight, mean=0.0, std=0.02)
    nn.init.zeros_(linear.bias)
"""
from __future__ import annotations

import math

from .. import backend


def _fill(tensor, values):
    tensor.array[...] = values
    return tensor


def uniform_(tensor, a: float = 0.0, b: float = 1.0):
    """Fill with draws from U(a, b)."""
    u = backend.random_uniform(tensor.shape, tensor.dtype, tensor.device)
    u *= b - a
    u += a
    return _fill(tensor, u)


def normal_(tensor, mean: float = 0.0, std: float = 1.0):
    """Fill with draws from N(mean, std**2)."""
    z = backend.random_normal(tensor.shape, tensor.dtype, tensor.device)
    z *= std
    z += mean
    return _fill(tensor, z)


def constant_(tensor, val: float):
    tensor.array.fill(val)
    return tensor


def zeros_(tensor):
    return constant_(tensor, 0)


def ones_(tensor):
    return constant_(tensor, 1)


def _fans(tensor):
    """(fan_in, fan_out) of a weight of shape (out, in, *receptive field)."""
    if tensor.ndim < 2:
        raise ValueError(f"fan in and fan out can not be computed for a tensor with fewer "
                         f"than 2 dimensions, got shape {tensor.shape}")
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def xavier_uniform_(tensor, gain: float = 1.0):
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot)."""
    fan_in, fan_out = _fans(tensor)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -a, a)


def xavier_normal_(tensor, gain: float = 1.0):
    """N(0, std**2) with std = gain * sqrt(2 / (fan_in + fan_out)) (Glorot)."""
    fan_in, fan_out = _fans(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


# ----------------------------------------------------------------------------- issue 16
_LINEAR = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
           "conv_transpose3d", "sigmoid")


def calculate_gain(nonlinearity: str, param=None) -> float:
    """The recommended scale of the weights feeding a nonlinearity (torch's table):
    1 for linear/conv/sigmoid, 5/3 for tanh, sqrt(2) for relu,
    sqrt(2 / (1 + slope^2)) for leaky_relu (slope ``param``, 0.01 by default), 3/4 for selu."""
    if nonlinearity in _LINEAR:
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif not isinstance(param, bool) and isinstance(param, (int, float)):
            slope = param
        else:
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r} (expected "
                     f"one of {', '.join(_LINEAR)}, tanh, relu, leaky_relu, selu)")


def _kaiming_std(tensor, a, mode, nonlinearity):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming: mode {mode!r} is not supported; use 'fan_in' or 'fan_out'")
    fan_in, fan_out = _fans(tensor)
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(tensor, a: float = 0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu"):
    """U(-bound, bound), bound = gain * sqrt(3 / fan) (He et al.); ``a`` is the leaky_relu
    slope, ``mode`` picks fan_in (forward variance) or fan_out (backward)."""
    if 0 in tensor.shape:
        return tensor
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor, a: float = 0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu"):
    """N(0, std^2), std = gain / sqrt(fan) (He et al.)."""
    if 0 in tensor.shape:
        return tensor
    return normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity))


def trunc_normal_(tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0,
                  b: float = 2.0):
    """Draws from N(mean, std^2) conditioned on [a, b] (a and b are values, not multiples of
    std, as in torch). Out-of-range draws are redrawn; an interval holding less than 5% of
    the mass is sampled by the inverse CDF instead."""
    if not a < b:
        raise ValueError(f"trunc_normal_: expected a < b, got a={a}, b={b}")
    if not std > 0:
        raise ValueError(f"trunc_normal_: std must be > 0, got {std}")
    lo, hi = _phi((a - mean) / std), _phi((b - mean) / std)
    if hi - lo >= 0.05:
        z = backend.random_normal(tensor.shape, "float64", tensor.device) * std + mean
        bad = (z < a) | (z > b)
        while bool(bad.any()):
            z[bad] = backend.random_normal((int(bad.sum()),), "float64", tensor.device) * std + mean
            bad = (z < a) | (z > b)
    else:
        u = backend.to_numpy(backend.random_uniform(tensor.shape, "float64", tensor.device))
        z = backend.to_device(_erfinv(2 * (lo + u * (hi - lo)) - 1) * std * math.sqrt(2) + mean,
                              tensor.device)
    return _fill(tensor, backend.get_array_module(z).clip(z, a, b).astype(tensor.array.dtype))


def _phi(x: float) -> float:
    """The standard normal CDF."""
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def _erfinv(y):
    """Inverse error function on a NumPy float64 array in (-1, 1): Winitzki's approximation
    refined by Newton steps on erf."""
    import numpy as np
    y = np.clip(y, -1 + 1e-16, 1 - 1e-16)
    ln = np.log1p(-y * y)
    t = 2 / (np.pi * 0.147) + ln / 2
    x = np.sign(y) * np.sqrt(np.sqrt(t * t - ln / 0.147) - t)
    for _ in range(4):
        x = x - (backend.erf(x) - y) / (2 / math.sqrt(math.pi) * np.exp(-x * x))
    return x


__all__ = ["uniform_", "normal_", "constant_", "zeros_", "ones_", "xavier_uniform_",
           "xavier_normal_", "calculate_gain", "kaiming_uniform_", "kaiming_normal_",
           "trunc_normal_"]
