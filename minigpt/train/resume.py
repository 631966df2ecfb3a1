"""What ``minigpt train --resume`` takes from its checkpoint, and what it never takes.

The settings of a resumed run are the checkpoint's, under those the user gives (flags and
``--config``), with two exceptions.

**Paths are data, never orders.** A checkpoint is a file like any other: it may have been
edited, so a path inside it never decides where the run reads or writes on its own.

* ``out_dir``: always the one the user named (``--out_dir`` or the default); the run writes
  only there. The checkpoint's ``out_dir`` is ignored.
* ``data``: ``--data`` (or ``--config``) if given. Otherwise the checkpoint's path is used
  only with ``--trust_checkpoint_paths``; without it the run stops with a one-line error
  that names the flag to add (``--data /the/checkpoint's/path``).
* ``cache_dir``: ``--cache_dir`` if given. Otherwise the checkpoint's is used when it is the
  one this run would use anyway (``<out_dir>/cache``) or with ``--trust_checkpoint_paths``;
  else ``<out_dir>/cache``.

Each decision is printed with its reason. Checkpoints store these paths resolved (absolute),
so the command printed after Ctrl-C (``resume_command``) works from any directory.

**The learning rate never changes silently.** By default the checkpoint's schedule goes
on: ``lr_decay_iters`` is pinned to the old run's decay length (its ``lr_decay_iters``, or
its ``max_iters`` when that was 0), so ``--max_iters`` past the old end trains on at
``min_lr`` rather than stretching the cosine (which would raise the lr at the resume step).
``--reschedule`` asks for a new schedule: warmup + cosine laid over the new ``--max_iters``
(or an explicit ``--lr_decay_iters``) from step 0, as if the run had been planned that long.
Either way the run prints what it does, and ``train()`` prints the lr at the resume step
next to the one the checkpoint's schedule gives there.
"""
from __future__ import annotations

import os
import shlex

from ..errors import ConfigError
from .log import log_line

PATH_FIELDS = ("out_dir", "data", "cache_dir")
SCHEDULE_FIELDS = ("decay_lr", "learning_rate", "min_lr", "warmup_iters", "lr_decay_iters",
                   "max_iters")


def same_path(a, b) -> bool:
    """Whether two paths name the same place (absolute spelling, or the same existing file)."""
    if os.path.abspath(a) == os.path.abspath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):      # ValueError: a NUL byte, which names no place
        return False


def resolved_paths(config) -> dict:
    """``out_dir``, ``data`` and ``cache_dir`` as absolute paths (None stays None): what a
    checkpoint stores, so resuming works from another working directory."""
    return {name: None if getattr(config, name) is None
            else os.path.abspath(getattr(config, name)) for name in PATH_FIELDS}


def resume_command(config) -> str:
    """The whole command that continues ``config``'s run, shell-quoted, with absolute paths."""
    argv = ["minigpt", "train", "--resume", "--out_dir", os.path.abspath(config.out_dir)]
    if config.data is not None:
        argv += ["--data", os.path.abspath(config.data)]
    if config.cache_dir is not None:
        argv += ["--cache_dir", os.path.abspath(config.cache_dir)]
    if config.ddp:
        argv.append("--ddp")
    return shlex.join(argv)


def resume_settings(given: dict, saved: dict, *, out_dir: str, trust_paths: bool = False,
                    reschedule: bool = False, log=log_line) -> dict:
    """The settings of a resumed run: ``saved`` (the checkpoint's train_config, type-checked)
    under ``given`` (flags and config file), by the rules in the module docstring.
    ``out_dir`` is the directory the user named. Logs each decision; a ConfigError when
    the checkpoint names a data file the user has not confirmed."""
    values = {k: v for k, v in saved.items() if k not in PATH_FIELDS}
    values.update(given)
    values["out_dir"] = out_dir
    values.update(_paths(given, saved, out_dir, trust_paths, log))
    values.update(_schedule(given, saved, values, reschedule, log))
    return values


def _paths(given, saved, out_dir, trust, log) -> dict:
    out = {}
    if saved.get("out_dir") is not None and not same_path(saved["out_dir"], out_dir):
        log(f"resume: writing in {out_dir} (the directory you named); the checkpoint's "
            f"out_dir {saved['out_dir']!r} is not followed")
    # data: read only what the user confirmed
    data = saved.get("data")
    if "data" in given:
        mine = given["data"]
        if mine is not None and data is not None and same_path(mine, data):
            why = "the file the checkpoint was trained on"
        else:
            why = f"the checkpoint was trained on {data or 'the built-in corpus'}"
        log(f"resume: data {mine or 'the built-in corpus'} (from --data; {why})")
    elif data is not None:
        if not trust:
            raise ConfigError(
                f"--resume: the checkpoint in {out_dir} was trained on {data!r}; a path inside "
                f"a checkpoint is not followed unless you confirm it: add --data "
                f"{shlex.quote(data)} (or --trust_checkpoint_paths)")
        out["data"] = data
        log(f"resume: data {data} (from the checkpoint, trusted by --trust_checkpoint_paths)")
    # cache: written to, so never somewhere the user did not choose
    cache = saved.get("cache_dir")
    own = os.path.join(out_dir, "cache")
    if "cache_dir" not in given and cache is not None:
        if same_path(cache, own):
            out["cache_dir"] = cache
            log(f"resume: cache {cache} (this run's own cache directory, <out_dir>/cache)")
        elif trust:
            out["cache_dir"] = cache
            log(f"resume: cache {cache} (from the checkpoint, trusted by "
                "--trust_checkpoint_paths)")
        else:
            log(f"resume: cache {own}; the checkpoint's cache_dir {cache!r} is not followed "
                f"(add --cache_dir {shlex.quote(cache)} or --trust_checkpoint_paths to use it)")
    return out


def _schedule(given, saved, values, reschedule, log) -> dict:
    if not values.get("decay_lr", True):
        return {}                                   # a constant lr: nothing can stretch
    max_iters = values.get("max_iters")
    if reschedule:
        decay = given.get("lr_decay_iters", 0)
        log(f"resume: --reschedule: warmup + cosine decay laid over "
            f"{decay or max_iters} steps from step 0, as if the run had been planned that long")
        return {"lr_decay_iters": decay}
    old_end = saved.get("lr_decay_iters") or saved.get("max_iters")
    if "lr_decay_iters" in given or not old_end:
        return {}                                   # train() prints the lr it then gives
    past = (f"; steps {old_end + 1}..{max_iters} run at min_lr "
            f"{values.get('min_lr')}" if max_iters and max_iters > old_end else "")
    log(f"resume: the checkpoint's lr schedule goes on (cosine decay ends at step "
        f"{old_end}){past}; --reschedule lays a new schedule over --max_iters instead")
    return {"lr_decay_iters": old_end}


__all__ = ["resume_settings", "resume_command", "resolved_paths", "same_path", "PATH_FIELDS",
           "SCHEDULE_FIELDS"]
