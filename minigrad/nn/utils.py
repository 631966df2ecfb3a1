"""torch.nn.utils's gradient clipping (clip_grad_norm_ lives in minigrad.optim)."""
from ..optim.optimizer import clip_grad_norm_


def clip_grad_value_(parameters, clip_value) -> None:
    """Clamp every gradient, in place, to [-clip_value, clip_value]."""
    if hasattr(parameters, "grad"):
        parameters = [parameters]
    clip_value = float(clip_value)
    for p in parameters:
        if p.grad is not None:
            g = p.grad.array
            g.clip(-clip_value, clip_value, out=g)


__all__ = ["clip_grad_norm_", "clip_grad_value_"]
