"""torch.linalg's norms: ``vector_norm``, ``matrix_norm`` (Frobenius) and ``norm``, with
torch's arguments (``ord``, ``dim``, ``keepdim``), built on Tensor.norm. The rest of
torch.linalg (inv, solve, svd, ...) is not in minigrad."""
from __future__ import annotations

from .errors import ArgumentError


def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None):
    """The ord-norm of x's entries along dim (all of them by default)."""
    x = x if dtype is None else x.to(dtype)
    if dim is None:
        out = x.reshape(-1).norm(ord, 0)
        return out.reshape((1,) * x.ndim) if keepdim else out
    return x.norm(ord, dim, keepdim)


def matrix_norm(x, ord="fro", dim=(-2, -1), keepdim=False, *, dtype=None):
    """The Frobenius norm of the matrices in the last two dims (the other ords of torch are
    not supported)."""
    if ord != "fro":
        raise ArgumentError(f"matrix_norm: only ord='fro' is supported, got {ord!r}; for "
                            f"others use NumPy's np.linalg.norm on x.detach().numpy()")
    x = x if dtype is None else x.to(dtype)
    return (x * x).sum(dim, keepdim=keepdim).sqrt()


def norm(x, ord=None, dim=None, keepdim=False, *, dtype=None):
    """torch.linalg.norm: the 2-norm of a vector (or of the entries, without ord), the
    Frobenius norm of a matrix; with ord, vector_norm along an int dim."""
    if ord is not None and dim is None and x.ndim > 2:
        raise ArgumentError(f"linalg.norm: with ord and without dim the input must be 1-D or "
                            f"2-D, got shape {x.shape}")
    if ord is None or ord == "fro":
        if isinstance(dim, (tuple, list)) and len(dim) == 2:
            return matrix_norm(x, "fro", tuple(dim), keepdim, dtype=dtype)
        return vector_norm(x, 2, dim, keepdim, dtype=dtype)
    if isinstance(dim, (tuple, list)) and len(dim) == 2 or (dim is None and x.ndim == 2):
        return matrix_norm(x, ord, (-2, -1) if dim is None else tuple(dim), keepdim,
                           dtype=dtype)
    return vector_norm(x, ord, dim, keepdim, dtype=dtype)


def __getattr__(name):
    raise AttributeError(f"module 'minigrad.linalg' has no attribute {name!r} (torch's "
                         f"torch.linalg.{name}): minigrad's linalg has the norms only; use "
                         f"NumPy's np.linalg.{name} on x.detach().numpy() (no gradient)")
