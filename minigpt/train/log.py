"""What a training run writes and shows: ``log.csv``, ``loss.png``, ``health.csv`` and the
progress lines.

Every step's row goes to ``<out_dir>/log.csv`` (``LOG_COLUMNS``; ``val_loss`` only at
evaluations); resuming keeps the rows up to the checkpoint's step. ``loss.png`` is drawn from
the log at the end. On a terminal a tqdm bar shows the progress; without one (a file, a pipe,
a job scheduler) a plain line ``train: step N/M, ...`` goes to stderr every
``Trainer.progress_interval_s`` seconds.
"""
from __future__ import annotations

import csv
import io
import sys
import time
from pathlib import Path

import numpy as np

from minigrad import fileio, serialization

LOG_COLUMNS = ("step", "loss", "lr", "grad_norm", "tokens_per_s", "elapsed_s", "val_loss")


def log_line(msg: str) -> None:
    """A line about the run on stderr, at once (stdout holds the results: losses, samples)."""
    print(msg, file=sys.stderr, flush=True)


def flush_print(*args, **kw):
    print(*args, **kw, flush=True)   # visible at once when stdout is a file or a pipe


class CSVLog:
    """``log.csv``: one row per optimizer step; ``val_loss`` is blank except at evaluations.
    Resuming keeps the rows up to the checkpoint's step and appends after them."""

    def __init__(self, path: Path, resume_step: int | None = None):
        self.path = path
        rows = read_log(path) if resume_step is not None and path.is_file() else []
        rows = [r for r in rows if int(r["step"]) <= (resume_step or 0)]
        text = io.StringIO(newline="")
        w = csv.DictWriter(text, LOG_COLUMNS)
        w.writeheader()
        w.writerows(rows)
        serialization.atomic_write(path, text.getvalue().encode("utf-8"))
        self._f = fileio.open_append(path)     # never through a link planted since
        self._w = csv.writer(self._f)

    def write(self, step, loss, lr, grad_norm, tokens_per_s, elapsed_s, val_loss=None):
        self._w.writerow([step, repr(float(loss)), repr(float(lr)), repr(float(grad_norm)),
                          f"{tokens_per_s:.1f}", f"{elapsed_s:.3f}",
                          "" if val_loss is None else repr(float(val_loss))])
        self._f.flush()

    def close(self):
        self._f.close()


def read_log(path) -> list[dict]:
    """The rows of a log.csv as dicts of strings (an unreadable last line is dropped)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, csv.Error, UnicodeDecodeError):
        return []
    good = []
    for r in rows:   # a run killed mid-write may leave a partial last line
        try:
            int(r["step"]), float(r["loss"])
            good.append(r)
        except (KeyError, TypeError, ValueError):
            break
    return good


def plot_log(log_path, png_path) -> Path | None:
    """Draw the training and validation loss of a log.csv into a PNG (atomically)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    rows = read_log(log_path)
    if not rows:
        return None
    steps = np.array([int(r["step"]) for r in rows])
    loss = np.array([float(r["loss"]) for r in rows])
    val = [(int(r["step"]), float(r["val_loss"])) for r in rows if r.get("val_loss")]
    fig = Figure(figsize=(7, 4.2), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(steps, loss, lw=0.6, alpha=0.35, color="C0", label="train (each step)")
    if len(loss) >= 10:
        w = max(2, len(loss) // 50)
        smooth = np.convolve(loss, np.ones(w) / w, mode="valid")
        ax.plot(steps[w - 1:], smooth, lw=1.5, color="C0", label=f"train ({w}-step mean)")
    if val:
        vs, vl = zip(*val)
        ax.plot(vs, vl, "o-", color="C1", lw=1.5, ms=4, label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy loss (nats/token)")
    ax.set_title(f"{Path(log_path).parent.name or 'run'}: loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    png_path = Path(png_path)
    png = io.BytesIO()
    fig.savefig(png, format="png")
    serialization.atomic_write(png_path, png.getvalue())
    return png_path


def append_health(path: Path, rows: list[dict], step: int) -> None:
    """Append per-layer health rows (minigpt.health) of ``step`` to a CSV file, with a header
    when the file is new."""
    keys = list(rows[0])
    with fileio.open_append(path) as f:     # refuses a planted symbolic link
        if f.tell() == 0:
            f.write(",".join(["step"] + keys) + "\n")
        for r in rows:
            f.write(",".join([str(step)] + [str(r[k]) for k in keys]) + "\n")


class Progress:
    """The progress of a run: a tqdm bar on a terminal; without one, a plain line on stderr
    whenever ``interval_s`` seconds (monotonic clock) have passed since the last one.
    ``show`` False: nothing. Messages printed while the bar is up go through ``print``."""

    def __init__(self, show: bool, step: int, total: int, interval_s: float, print_fn):
        self.bar = None
        if show:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, initial=step, unit="step", dynamic_ncols=True,
                            desc="train", file=sys.stderr, disable=None)   # None: off if no TTY
        self.plain = show and (self.bar is None or self.bar.disable)
        self.print = self.bar.write if self.bar is not None else print_fn
        self.total, self.interval_s = total, interval_s
        self._last = time.monotonic()

    def step(self, step: int, loss: float, tokens_per_s: float, elapsed_s: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"loss {loss:.4f}, {tokens_per_s:,.0f} tok/s")
        if self.plain and time.monotonic() - self._last >= self.interval_s:
            self._last = time.monotonic()
            log_line(f"train: step {step}/{self.total}, loss {loss:.4f}, "
                     f"{tokens_per_s:,.0f} tok/s, {elapsed_s:.0f} s elapsed")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


__all__ = ["LOG_COLUMNS", "CSVLog", "read_log", "plot_log", "append_health", "Progress",
           "log_line", "flush_print"]
