"""RMSprop (torch.optim.RMSprop), the optimizer of "learning PyTorch with examples"."""
from __future__ import annotations

from .. import backend
from .optimizer import Optimizer, _at_least_0, _constructor_error, _implementation_flags


class RMSprop(Optimizer):
    """RMSprop, as torch.optim.RMSprop:

    g = grad + weight_decay * p
    v = alpha * v + (1 - alpha) * g^2
    avg = sqrt(v - m^2) + eps with m = alpha * m + (1 - alpha) * g (centered), else sqrt(v) + eps
    buf = momentum * buf + g / avg;  p -= lr * buf      (momentum > 0)
    p -= lr * g / avg                                     (otherwise)
    """

    _RANGES = {"lr": (_at_least_0, "a learning rate >= 0"),
               "alpha": (_at_least_0, "alpha >= 0"),
               "eps": (_at_least_0, "eps >= 0"),
               "momentum": (_at_least_0, "momentum >= 0"),
               "weight_decay": (_at_least_0, "weight_decay >= 0")}
    _STEP = "step"
    _NONNEGATIVE = ("square_avg",)

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False, *,
                 maximize: bool = False, foreach=None, capturable: bool = False,
                 differentiable: bool = False):
        _implementation_flags("RMSprop", differentiable)
        self._check_hyperparameters(dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                         momentum=momentum), _constructor_error)
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, maximize=maximize))

    def _state_names(self, group):
        """step and square_avg; momentum_buffer with momentum, grad_avg when centered."""
        names = ("step", "square_avg")
        if group.get("momentum", 0) > 0:
            names += ("momentum_buffer",)
        if group.get("centered"):
            names += ("grad_avg",)
        return names, ()

    def _update(self, p, grad, state, group):
        xp = backend.get_array_module(p.array)
        lr, alpha, eps, wd = group["lr"], group["alpha"], group["eps"], group["weight_decay"]
        momentum = group["momentum"]
        if not state:
            state["step"] = 0
            state["square_avg"] = xp.zeros_like(p.array)
            if momentum > 0:
                state["momentum_buffer"] = xp.zeros_like(p.array)
            if group["centered"]:
                state["grad_avg"] = xp.zeros_like(p.array)
        state["step"] += 1
        if group["maximize"]:
            grad = -grad
        if wd != 0:
            grad = grad + wd * p.array
        v = state["square_avg"]
        v *= alpha
        v += (1 - alpha) * grad * grad
        if group["centered"]:
            m = state["grad_avg"]
            m *= alpha
            m += (1 - alpha) * grad
            avg = xp.sqrt(v - m * m) + eps
        else:
            avg = xp.sqrt(v) + eps
        if momentum > 0:
            buf = state["momentum_buffer"]
            buf *= momentum
            buf += grad / avg
            p.array -= lr * buf
        else:
            p.array -= lr * (grad / avg)


__all__ = ["RMSprop"]
