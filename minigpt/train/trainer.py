"""The training loop: ``Trainer.run()``, model-agnostic (minGPT's ``Trainer``).

The loop's story. ``run()`` repeats one optimizer step until ``config.max_iters``::

    lr = schedule(step + 1)                       set on every parameter group
    for each of grad_accum_steps micro-batches:   forward, (loss / accum).backward()
    loss = sync_gradients(loss)                   (DDP: mean gradients and loss over ranks)
    grad_norm = clip_grad_norm_(params, grad_clip)
    optimizer.step(); optimizer.zero_grad()       (Ctrl-C is held until this is done)

and after each step: log a row to ``log.csv``, every ``eval_interval`` steps (and at the end)
evaluate and print a summary, every ``checkpoint_interval`` steps (and at the end) save a
checkpoint, then run the ``on_step_end`` callbacks. Ctrl-C (or a KeyboardInterrupt from a
callback) ends the loop after the last completed step, saves a checkpoint of it and returns
normally with ``interrupted = True``.

The Trainer knows nothing about GPTs: it calls ``model(x, y) -> (output, loss)`` on batches
from a sampler and a ``save(trainer)`` function. :func:`minigpt.train.train` builds the
model, data, optimizer, checkpoint writer and (under DDP) the process group, and hands
them to it.
"""
from __future__ import annotations

import math
import signal
import threading
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np

import minigrad as mg
from minigrad import backend
from minigrad.optim import clip_grad_norm_

from .config import TrainConfig, scheduled_lr
from .log import CSVLog, Progress, append_health, flush_print


class Trainer:
    """A model-agnostic training loop (minGPT's ``Trainer``).

    ``model(x, y)`` must return ``(output, loss)``; ``model.parameters()``, ``train()`` and
    ``eval()`` are all else it uses. ``train_batches`` / ``val_batches`` are
    ``BatchSampler``-like (``next() -> (x, y)``, ``state()``, ``set_state()``, ``reseed()``).
    ``save(trainer)`` writes a checkpoint of ``trainer.step`` using ``trainer.data_state``
    and ``trainer.rng_state`` (the step boundary's data cursor and RNG state).

    Without a TTY (so without a progress bar), ``config.progress`` prints a plain line
    ``train: step N/M, loss ...`` whenever ``progress_interval_s`` seconds (monotonic clock)
    have passed since the last one.

    Callbacks: ``add_callback("on_step_end", fn)``; ``fn(trainer)`` runs after every
    optimizer step (after logging and checkpointing); a KeyboardInterrupt raised anywhere in
    the loop (Ctrl-C or a callback) saves a checkpoint of the last completed step and ends
    ``run()`` normally with ``trainer.interrupted = True``.

    ``ddp``: a ``minigpt.ddp.DDP`` (rank and world size come from it). The batches are then
    this rank's shards; ``sync_gradients`` averages the gradients and the loss over the
    ranks, every rank evaluates (the mean over ranks is reported), the weights are compared
    across ranks every ``config.ddp_check_interval`` steps, and Ctrl-C stops every rank after
    the same step. Callbacks must do the same on every rank.
    """

    progress_interval_s = 30.0      # the longest silence without a TTY (tests set 0)

    def __init__(self, config: TrainConfig, model, optimizer, train_batches, val_batches=None,
                 *, save=None, log: CSVLog | None = None, start_step: int = 0,
                 elapsed_offset: float = 0.0, rank: int = 0, world_size: int = 1,
                 print_fn=None, ddp=None):
        self.config = config
        self.ddp = ddp
        if ddp is not None:
            rank, world_size = ddp.rank, ddp.world_size
        self.model, self.optimizer = model, optimizer
        self.train_batches, self.val_batches = train_batches, val_batches
        self.save_fn, self.log = save, log
        self.step = start_step                  # optimizer steps done
        self.start_step = start_step
        self.elapsed_offset = elapsed_offset    # seconds spent before a resume
        self.rank, self.world_size = rank, world_size
        self._print = print_fn or flush_print
        self.print = self._print
        self.params = [p for g in optimizer.param_groups for p in g["params"]]
        names = {id(p): n for n, p in getattr(model, "named_parameters", lambda: [])()}
        self.param_names = [names.get(id(p), f"parameter #{i}") for i, p in enumerate(self.params)]
        self.callbacks: dict[str, list] = {}
        self.interrupted = False
        self.last_loss = math.nan
        self.last_val_loss = math.nan
        self.tokens_per_step = config.batch_size * config.block_size * config.grad_accum_steps
        self.train_time = 0.0                   # seconds spent in run() so far
        self._t_run = None                      # when the current run() started
        self._interrupts = _Interrupts(collective=ddp is not None and world_size > 1)
        self._stop_requested = False            # DDP: some rank got Ctrl-C; stop after this step
        self.health = None                      # per-layer health report, every N steps
        if config.health_interval > 0 and hasattr(model, "transformer"):
            from ..health import HealthMonitor
            self.health = HealthMonitor(model, every=config.health_interval)
        self._mark()

    @property
    def is_main(self) -> bool:
        """Only the main process evaluates, logs and saves (rank 0 under DDP)."""
        return self.rank == 0

    # ------------------------------------------------------------------ the loop
    def run(self) -> "Trainer":
        """Optimizer steps until ``config.max_iters`` (the story is in the module docstring)."""
        c = self.config
        progress = Progress(self.is_main and c.progress, self.step, c.max_iters,
                            self.progress_interval_s, self._print)
        self.print = progress.print
        t_start = self._t_run = time.perf_counter()
        recent = []            # losses since the last evaluation (for the printed summary)
        row = None             # the current step's log row, until it is written
        try:
            with self._interrupts:
                while self.step < c.max_iters:
                    t0 = time.perf_counter()
                    loss, lr, grad_norm = self.train_step()
                    tps = self.tokens_per_step * self.world_size / max(
                        time.perf_counter() - t0, 1e-9)
                    self.last_loss = loss
                    recent.append(loss)
                    row = [self.step, loss, lr, grad_norm, tps, self.elapsed_s, None]
                    if self._interrupts.take():     # Ctrl-C during the update: stop now
                        raise KeyboardInterrupt
                    progress.step(self.step, loss, tps, self.elapsed_s)
                    if self._due(c.eval_interval):
                        row[6] = self._evaluate_and_report(recent, lr, tps)
                        recent = []
                    self._write(row)
                    row = None
                    if self._due(c.checkpoint_interval):
                        self.save()
                    self.trigger("on_step_end")
                    if self._stop_requested:        # DDP: Ctrl-C, agreed by every rank
                        raise KeyboardInterrupt
        except KeyboardInterrupt:
            self.interrupted = True
            if row is not None:      # the step finished; its row was not written yet
                self._write(row)
            progress.close()
            self.print = self._print
            if self.is_main:
                self.print(f"\ninterrupted: saving a checkpoint of step {self.step}")
            self.save()
        finally:
            progress.close()
            self.print = self._print
            self.train_time += time.perf_counter() - t_start
            self._t_run = None
        return self

    def _due(self, interval: int) -> bool:
        """Whether the step just done is one of every ``interval`` (or the last one)."""
        return self.step % interval == 0 or self.step == self.config.max_iters

    def _evaluate_and_report(self, recent: list, lr: float, tokens_per_s: float):
        """At an evaluation step: the validation loss (on every rank under DDP; None without
        validation batches) and, on the main process, one summary line."""
        val = None
        if self.val_batches is not None and (self.is_main or self.ddp is not None):
            val = self.last_val_loss = self.evaluate()
        if self.is_main:
            n = len(recent)
            self.print(f"step {self.step}: train loss {np.mean(recent):.4f} "
                       f"(mean of the last {n} step{'s' * (n != 1)}), "
                       f"val loss {self.last_val_loss:.4f}, lr {lr:.2e}, "
                       f"{tokens_per_s:,.0f} tok/s")
        return val

    # ------------------------------------------------------------------ one step
    def train_step(self) -> tuple[float, float, float]:
        """One optimizer step; returns (loss, lr, grad norm before clipping)."""
        lr = self.lr_at(self.step + 1)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        step = self.step + 1
        with self.health.watch(step) if self.health else nullcontext():
            loss = self.forward_backward()
        loss = self.sync_gradients(loss)
        max_norm = self.config.grad_clip if self.config.grad_clip > 0 else math.inf
        grad_norm = float(clip_grad_norm_(self.params, max_norm))   # (a 0-d tensor, as torch)
        with self._interrupts.hold():     # never leave the weights half updated
            if self.health:
                self.health.before_update(step)
            self.optimizer.step()
            if self.health:
                self._report_health(self.health.after_update(step), step)
            self.optimizer.zero_grad()
            self.step += 1
            self._mark()
        if self.ddp is not None and (self.step % self.config.ddp_check_interval == 0
                                     or self.step == self.config.max_iters):
            self.check_parameters()
        return loss, lr, grad_norm

    def lr_at(self, step: int) -> float:
        """The learning rate of optimizer update ``step`` (1-based)."""
        return scheduled_lr(self.config, step)

    def forward_backward(self) -> float:
        """grad_accum_steps micro-batches: forward, backward of loss / accum. Returns the
        mean loss."""
        accum = self.config.grad_accum_steps
        total = 0.0
        for _ in range(accum):
            x, y = self.train_batches.next()
            _, loss = self.model(x, y)
            (loss if accum == 1 else loss / accum).backward()
            total += loss.item()
        return total / accum

    def sync_gradients(self, loss: float) -> float:
        """Between backward and the optimizer step: under DDP, average every ``p.grad``
        and ``loss`` over the processes (and learn whether any of them got Ctrl-C). One
        process: nothing to do. Returns the loss to report."""
        if self.ddp is None:
            return loss
        loss, stop = self.ddp.sync(self.params, loss, self._interrupts.pending)
        self._stop_requested = self._stop_requested or stop
        return loss

    def check_parameters(self) -> None:
        """DDP: a DDPError on every rank if the ranks' weights differ (see minigpt.ddp)."""
        if self.ddp is not None:
            self.ddp.check_parameters(self.params, self.step, self.param_names)

    def _mark(self) -> None:
        """Remember the state at this step boundary (what a checkpoint of ``step`` holds)."""
        self.data_state = self.train_batches.state()
        self.rng_state = backend.get_rng_state()

    def _report_health(self, rows, step: int) -> None:
        """Print the per-layer health rows and append them to <out_dir>/health.csv."""
        if not rows or not self.is_main:
            return
        from ..health import format_health
        self.print(format_health(rows, step))
        append_health(Path(self.config.out_dir) / "health.csv", rows, step)

    # ------------------------------------------------------------------ around the steps
    def evaluate(self, sampler=None, iters: int | None = None) -> float:
        """Mean loss over ``iters`` batches of ``sampler`` (default: validation), in eval
        mode without gradients; the sampler is re-seeded first, so every evaluation sees
        the same batches and the training batches are not disturbed."""
        sampler = sampler or self.val_batches
        iters = iters or self.config.eval_iters
        sampler.reseed()
        self.model.eval()
        try:
            with mg.no_grad():
                losses = [self.model(*sampler.next())[1].item() for _ in range(iters)]
        finally:
            self.model.train()
        loss = float(np.mean(losses))
        return loss if self.ddp is None else self.ddp.mean(loss)   # DDP: over the shards

    @property
    def elapsed_s(self) -> float:
        """Training seconds since step 0, across resumes."""
        running = time.perf_counter() - self._t_run if self._t_run is not None else 0.0
        return self.elapsed_offset + self.train_time + running

    def save(self) -> None:
        if self.save_fn is not None and self.is_main:
            self.save_fn(self)

    def add_callback(self, event: str, fn) -> None:
        self.callbacks.setdefault(event, []).append(fn)

    def trigger(self, event: str) -> None:
        for fn in self.callbacks.get(event, []):
            fn(self)

    def _write(self, row) -> None:
        if self.log is not None and self.is_main:
            self.log.write(*row)


class _Interrupts:
    """Ctrl-C handling: a SIGINT during the critical section (optimizer update and the
    bookkeeping that goes with it) is held until the step's log row is made (``take``), so
    the model is never half updated; anywhere else it raises KeyboardInterrupt at once.

    ``collective`` (DDP with several ranks): every SIGINT is only recorded in ``pending``;
    the ranks agree at the next gradient sync and all stop after the same step (a rank that
    stopped alone would leave the others waiting in an all-reduce). A second SIGINT before
    then raises at once (outside the critical section)."""

    def __init__(self, collective: bool = False):
        self.critical = False
        self.collective = collective
        self.pending = False
        self._old = None

    def _handler(self, signum, frame):
        if self.critical or (self.collective and not self.pending):
            self.pending = True
        else:
            raise KeyboardInterrupt

    def __enter__(self):
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._old = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False

    @contextmanager
    def hold(self):
        self.critical = True
        try:
            yield
        finally:
            self.critical = False

    def take(self) -> bool:
        """Whether a Ctrl-C was held during the critical section (one process: the loop
        stops as soon as the step's log row exists, so no completed step goes unlogged)."""
        held = self.pending and not self.collective
        if held:
            self.pending = False
        return held


__all__ = ["Trainer"]
