"""Train a GPT: ``TrainConfig``, ``train(config)``, the model-agnostic ``Trainer`` loop.

    minigpt train                                   # built-in corpus, ~5 minutes on 2 cores
    minigpt train --data ../shared/data/tinyshakespeare.txt --tokenizer char --max_iters 2000
    minigpt train --config my.toml --n_layer=6      # flags override the file
    minigpt train --resume --max_iters 3000         # continue out/ckpt.safetensors
    mpiexec -n 2 minigpt train --ddp --batch_size 16   # data-parallel: global batch 2 x 16

    from minigpt.train import TrainConfig, train
    result = train(TrainConfig(max_iters=200, out_dir="run1"))
    result.val_loss, result.checkpoint_path

Where things are:

- ``trainer.py``: the training loop (``Trainer``), its story told at the top of the file;
- ``run.py``: ``train(config)``, one run from start to end (data, model, resume, DDP, the
  loop, final losses, samples), and ``main``, the ``minigpt train`` command;
- ``config.py``: ``TrainConfig``, its checks, config files and the flags built from it;
- ``log.py``: ``log.csv``, ``loss.png``, ``health.csv`` and the progress lines;
- ``resume.py``: what ``--resume`` takes from a checkpoint, and what it never takes.

Only the main process (rank 0) logs, saves and samples; under DDP (``minigpt.ddp``,
docs/ddp.md) every rank evaluates its shard of each validation batch and
the mean is reported, so the validation loss equals that of one process with the global
batch. Checkpoints go to ``<out_dir>/ckpt.safetensors`` every ``checkpoint_interval`` steps,
at the end and on Ctrl-C. Resuming restores weights, optimizer moments, RNG state and the
data cursor, so the losses after a resume equal, bit for bit, those of an uninterrupted run
on the same machine.
"""
from .config import (MODEL_FIELDS, TrainConfig, build_parser, config_from_args, field_docs,
                     load_config_file, scheduled_lr)
from .log import LOG_COLUMNS, CSVLog, plot_log, read_log
from .resume import resume_command
from .run import TrainResult, main, train
from .trainer import Trainer

__all__ = ["TrainConfig", "TrainResult", "Trainer", "CSVLog", "train", "main",
           "build_parser", "config_from_args", "load_config_file", "plot_log", "read_log",
           "field_docs", "scheduled_lr", "resume_command", "LOG_COLUMNS", "MODEL_FIELDS"]
