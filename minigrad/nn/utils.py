"""torch.nn.utils's gradient clipping (the implementation lives in minigrad.optim)."""
from ..optim.optimizer import clip_grad_norm_

__all__ = ["clip_grad_norm_"]
