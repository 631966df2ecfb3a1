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


__all__ = ["uniform_", "normal_", "constant_", "zeros_", "ones_", "xavier_uniform_",
           "xavier_normal_"]
