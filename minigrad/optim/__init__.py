"""minigrad.optim: torch.optim's optimizers and schedules on minigrad parameters.

    from minigrad import optim
    opt = optim.AdamW(optim.weight_decay_groups(model.named_parameters(), 0.1), lr=6e-4,
                      betas=(0.9, 0.95))
    sched = optim.lr_scheduler.WarmupCosineLR(opt, warmup_steps=100, max_steps=5000)
"""
from . import lr_scheduler
from .lr_scheduler import LambdaLR, LRScheduler, WarmupCosineLR, cosine_with_warmup
from .optimizer import SGD, Adam, AdamW, Optimizer, clip_grad_norm_, weight_decay_groups
from .rmsprop import RMSprop

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "clip_grad_norm_",
           "weight_decay_groups", "lr_scheduler", "LRScheduler", "LambdaLR", "WarmupCosineLR",
           "cosine_with_warmup"]


def __getattr__(name):
    from ..missing import missing
    raise missing("optim", name)
