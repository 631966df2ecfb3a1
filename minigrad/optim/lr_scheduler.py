"""Learning-rate schedules: plain functions of the step, and scheduler objects with
torch.optim.lr_scheduler's protocol.

    sched = WarmupCosineLR(opt, warmup_steps=100, max_steps=5000, min_lr=3e-5)
    for step in range(5000):
        ...; opt.step(); sched.step()      # the lr used at step k is schedule(k)

As in torch, creating a scheduler sets each group's lr for step 0 and remembers the
group's starting lr as ``group["initial_lr"]`` (the base lr the schedule scales).
Every value is computed in closed form from ``last_epoch``, so ``load_state_dict``
puts a resumed run exactly where it was.
"""
from __future__ import annotations

import bisect
import math

from ..errors import ArgumentError, StateDictError


def cosine_with_warmup(step: int, *, max_lr: float, warmup_steps: int, max_steps: int,
                       min_lr: float = 0.0) -> float:
    """nanoGPT's ``get_lr``: linear warmup from 0, cosine decay to ``min_lr``, then ``min_lr``.

    step < warmup_steps:             max_lr * step / warmup_steps
    warmup_steps <= step < max_steps: min_lr + (max_lr - min_lr) * (1 + cos(pi * r)) / 2,
                                     r = (step - warmup_steps) / (max_steps - warmup_steps)
    step >= max_steps:               min_lr

    Example (max_lr=1, warmup_steps=2, max_steps=6, min_lr=0):
    steps 0..7 -> 0, 0.5, 1, 0.854, 0.5, 0.146, 0, 0
    """
    if warmup_steps < 0 or max_steps < warmup_steps:
        raise ArgumentError(f"cosine_with_warmup: expected 0 <= warmup_steps <= max_steps, got "
                            f"warmup_steps={warmup_steps}, max_steps={max_steps}")
    if step < 0:
        raise ArgumentError(f"cosine_with_warmup: step must be >= 0, got {step}")
    if step < warmup_steps:
        return max_lr * step / warmup_steps
    if step >= max_steps:
        return min_lr
    ratio = (step - warmup_steps) / (max_steps - warmup_steps)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (max_lr - min_lr)


class LRScheduler:
    """Base class (torch.optim.lr_scheduler.LRScheduler): subclasses define ``get_lr()``
    from ``self.last_epoch`` (the number of ``step()`` calls since step 0) and ``self.base_lrs``."""

    def __init__(self, optimizer, last_epoch: int = -1):
        self.optimizer = optimizer
        for i, group in enumerate(optimizer.param_groups):
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise KeyError(f"last_epoch={last_epoch}: param 'initial_lr' is not specified in "
                               f"param_groups[{i}] when resuming an optimizer")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def get_lr(self) -> list[float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def step(self) -> None:
        """Advance one step and set every group's lr."""
        self.last_epoch += 1
        self._apply()

    def _apply(self):
        self._last_lr = [float(lr) for lr in self.get_lr()]
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            group["lr"] = lr

    def get_last_lr(self) -> list[float]:
        """The lr of each group set by the last ``step()``."""
        return list(self._last_lr)

    def state_dict(self) -> dict:
        """Everything but the optimizer (and functions): plain numbers and lists."""
        return {k: v for k, v in self.__dict__.items()
                if k != "optimizer" and not callable(v) and k != "lr_lambdas"}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore the position and base lrs, and set every group's lr to match."""
        self.__dict__.update(state_dict)
        if len(self.base_lrs) != len(self.optimizer.param_groups):
            raise StateDictError(f"state_dict: {len(self.base_lrs)} base lrs for "
                                 f"{len(self.optimizer.param_groups)} parameter groups")
        for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs):
            group["initial_lr"] = base_lr
        self._apply()


class LambdaLR(LRScheduler):
    """lr = base_lr * lr_lambda(step), with one function or one per group
    (torch.optim.lr_scheduler.LambdaLR)."""

    def __init__(self, optimizer, lr_lambda, last_epoch: int = -1):
        n = len(optimizer.param_groups)
        if callable(lr_lambda):
            self.lr_lambdas = [lr_lambda] * n
        else:
            self.lr_lambdas = list(lr_lambda)
            if len(self.lr_lambdas) != n:
                raise ArgumentError(f"lr_lambda: expected {n} functions, one per group, got "
                                    f"{len(self.lr_lambdas)}")
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [base * fn(self.last_epoch) for base, fn in zip(self.base_lrs, self.lr_lambdas)]


class WarmupCosineLR(LRScheduler):
    """Linear warmup then cosine decay (``cosine_with_warmup``), the peak being each group's
    base lr. ``min_lr`` is an absolute floor: one number, or one per group."""

    def __init__(self, optimizer, warmup_steps: int, max_steps: int, min_lr=0.0,
                 last_epoch: int = -1):
        if warmup_steps < 0 or max_steps < warmup_steps:
            raise ArgumentError(f"WarmupCosineLR: expected 0 <= warmup_steps <= max_steps, got "
                                f"warmup_steps={warmup_steps}, max_steps={max_steps}")
        n = len(optimizer.param_groups)
        min_lrs = list(min_lr) if isinstance(min_lr, (list, tuple)) else [min_lr] * n
        if len(min_lrs) != n:
            raise ArgumentError(f"min_lr: expected one value or {n} (one per group), got "
                                f"{len(min_lrs)}")
        self.warmup_steps, self.max_steps, self.min_lrs = warmup_steps, max_steps, min_lrs
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [cosine_with_warmup(self.last_epoch, max_lr=base, warmup_steps=self.warmup_steps,
                                   max_steps=self.max_steps, min_lr=lo)
                for base, lo in zip(self.base_lrs, self.min_lrs)]


# ----------------------------------------------------------------------------- issue 16
# torch.optim.lr_scheduler's classic schedules, each in its closed form (torch's
# ``_get_closed_form_lr``), so that a resumed or nested (SequentialLR) schedule is exact.


def _positive_int(owner, name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ArgumentError(f"{owner}: {name} must be an int >= {minimum}, got {value!r}")
    return value


class StepLR(LRScheduler):
    """lr = base_lr * gamma ** (step // step_size): decay by gamma every step_size steps."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1):
        self.step_size = _positive_int("StepLR", "step_size", step_size)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [base * self.gamma ** (self.last_epoch // self.step_size)
                for base in self.base_lrs]


class MultiStepLR(LRScheduler):
    """lr = base_lr * gamma ** (number of milestones <= step); a milestone listed twice
    counts twice, as in torch."""

    def __init__(self, optimizer, milestones, gamma: float = 0.1, last_epoch: int = -1):
        self.milestones = sorted(_positive_int("MultiStepLR", "milestones", m, 0)
                                 for m in milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [base * self.gamma ** bisect.bisect_right(self.milestones, self.last_epoch)
                for base in self.base_lrs]


class ExponentialLR(LRScheduler):
    """lr = base_lr * gamma ** step."""

    def __init__(self, optimizer, gamma: float, last_epoch: int = -1):
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [base * self.gamma ** self.last_epoch for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base_lr - eta_min) (1 + cos(pi step / T_max)) / 2: half a cosine from
    base_lr down to eta_min over T_max steps (and, as in torch, back up after T_max)."""

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1):
        self.T_max = _positive_int("CosineAnnealingLR", "T_max", T_max)
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        cos = (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
        return [self.eta_min + (base - self.eta_min) * cos for base in self.base_lrs]


class LinearLR(LRScheduler):
    """lr = base_lr * factor, the factor going linearly from start_factor to end_factor
    over total_iters steps, then staying at end_factor (a linear warmup, typically)."""

    def __init__(self, optimizer, start_factor: float = 1.0 / 3, end_factor: float = 1.0,
                 total_iters: int = 5, last_epoch: int = -1):
        if not 0 < start_factor <= 1:
            raise ArgumentError(f"LinearLR: start_factor must be in (0, 1], got {start_factor}")
        if not 0 <= end_factor <= 1:
            raise ArgumentError(f"LinearLR: end_factor must be in [0, 1], got {end_factor}")
        self.start_factor, self.end_factor = start_factor, end_factor
        self.total_iters = _positive_int("LinearLR", "total_iters", total_iters)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        done = min(self.total_iters, self.last_epoch) / self.total_iters
        factor = self.start_factor + (self.end_factor - self.start_factor) * done
        return [base * factor for base in self.base_lrs]


class SequentialLR(LRScheduler):
    """Run ``schedulers[0]`` until ``milestones[0]``, then ``schedulers[1]`` from its own step
    0, and so on (torch.optim.lr_scheduler.SequentialLR), e.g. warmup then cosine:

        SequentialLR(opt, [LinearLR(opt, 0.01, total_iters=100),
                           CosineAnnealingLR(opt, T_max=900)], milestones=[100])
    """

    def __init__(self, optimizer, schedulers, milestones, last_epoch: int = -1):
        schedulers, milestones = list(schedulers), list(milestones)
        if not schedulers:
            raise ArgumentError("SequentialLR: expected at least one scheduler, got none")
        for i, sched in enumerate(schedulers):
            if getattr(sched, "optimizer", None) is not optimizer:
                raise ArgumentError(f"SequentialLR: scheduler {i} ({type(sched).__name__}) "
                                    f"belongs to another optimizer; every scheduler must "
                                    f"drive the one given to SequentialLR")
        if len(milestones) != len(schedulers) - 1:
            raise ArgumentError(f"SequentialLR: expected {len(schedulers) - 1} milestones (one "
                                f"fewer than the {len(schedulers)} schedulers), got "
                                f"{len(milestones)}")
        if milestones != sorted(milestones):
            raise ArgumentError(f"SequentialLR: milestones must be increasing, got {milestones}")
        self._schedulers, self._milestones = schedulers, milestones
        super().__init__(optimizer, last_epoch)

    def _current(self):
        """The scheduler of this step, put at its own step (steps since its milestone)."""
        idx = bisect.bisect_right(self._milestones, self.last_epoch)
        sched = self._schedulers[idx]
        sched.last_epoch = self.last_epoch - (self._milestones[idx - 1] if idx else 0)
        return sched

    def get_lr(self):
        sched = self._current()
        sched._last_lr = [float(lr) for lr in sched.get_lr()]
        return sched._last_lr

    def state_dict(self) -> dict:
        """Its position and milestones, with each scheduler's own state_dict."""
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "_schedulers")}
        state["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state = dict(state_dict)
        inner = state.pop("_schedulers", None)
        if inner is None or len(inner) != len(self._schedulers):
            raise StateDictError(f"SequentialLR state_dict: expected the states of "
                                 f"{len(self._schedulers)} schedulers under '_schedulers'")
        for sched, sd in zip(self._schedulers, inner):
            sched.load_state_dict(sd)
        super().load_state_dict(state)


class CosineAnnealingWarmRestarts(LRScheduler):
    """Cosine annealing from base_lr to eta_min over T_0 steps, then again over T_0 * T_mult,
    T_0 * T_mult**2, ... steps (SGDR; torch.optim.lr_scheduler.CosineAnnealingWarmRestarts)."""

    def __init__(self, optimizer, T_0: int, T_mult: int = 1, eta_min: float = 0.0,
                 last_epoch: int = -1):
        self.T_0 = _positive_int("CosineAnnealingWarmRestarts", "T_0", T_0)
        self.T_mult = _positive_int("CosineAnnealingWarmRestarts", "T_mult", T_mult)
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def _position(self):
        """(steps into the current cycle, its length) at self.last_epoch."""
        epoch, t0, mult = self.last_epoch, self.T_0, self.T_mult
        if epoch < t0:
            return epoch, t0
        if mult == 1:
            return epoch % t0, t0
        n = int(math.log(epoch / t0 * (mult - 1) + 1, mult))
        return epoch - t0 * (mult ** n - 1) // (mult - 1), t0 * mult ** n

    def get_lr(self):
        t_cur, t_i = self._position()
        cos = (1 + math.cos(math.pi * t_cur / t_i)) / 2
        return [self.eta_min + (base - self.eta_min) * cos for base in self.base_lrs]


class ReduceLROnPlateau:
    """Multiply the lr by ``factor`` when a metric (``step(val_loss)``) has not improved for
    ``patience`` steps (torch.optim.lr_scheduler.ReduceLROnPlateau): mode 'min' or 'max',
    improvement beyond ``threshold`` (relative or absolute), ``cooldown`` steps of rest after
    a reduction, never below ``min_lr``."""

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_lr=0, eps=1e-8):
        if mode not in ("min", "max") or threshold_mode not in ("rel", "abs"):
            raise ArgumentError(f"ReduceLROnPlateau: mode must be 'min' or 'max' and "
                                f"threshold_mode 'rel' or 'abs', got {mode!r}, "
                                f"{threshold_mode!r}")
        if not factor < 1.0:
            raise ArgumentError(f"ReduceLROnPlateau: factor should be < 1.0, got {factor}")
        self.optimizer, self.mode, self.factor, self.patience = optimizer, mode, factor, patience
        self.threshold, self.threshold_mode, self.cooldown, self.eps = (
            threshold, threshold_mode, cooldown, eps)
        n = len(optimizer.param_groups)
        self.min_lrs = list(min_lr) if isinstance(min_lr, (list, tuple)) else [min_lr] * n
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = self.cooldown_counter = 0
        self.last_epoch = 0
        self._last_lr = [g["lr"] for g in optimizer.param_groups]

    def _better(self, a):
        if self.mode == "min":
            bar = self.best * (1 - self.threshold) if self.threshold_mode == "rel" else \
                self.best - self.threshold
            return a < bar
        bar = self.best * (1 + self.threshold) if self.threshold_mode == "rel" else \
            self.best + self.threshold
        return a > bar

    def step(self, metrics) -> None:
        """One epoch's metric (a number or a one-element tensor)."""
        current = float(metrics)
        self.last_epoch += 1
        if self._better(current):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
                old = float(group["lr"])
                new = max(old * self.factor, min_lr)
                if old - new > self.eps:
                    group["lr"] = new
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        return list(self._last_lr)

    def state_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict) -> None:
        self.__dict__.update(state_dict)


def __getattr__(name):
    from ..missing import missing
    raise missing("lr_scheduler", name)


__all__ = ["cosine_with_warmup", "LRScheduler", "LambdaLR", "WarmupCosineLR", "StepLR",
           "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "LinearLR", "SequentialLR",
           "CosineAnnealingWarmRestarts", "ReduceLROnPlateau"]
