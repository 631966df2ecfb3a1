"""``train(config)``: one training run, start to end, and ``minigpt train`` (``main``).

``train`` reads top to bottom: start DDP (if asked), find the checkpoint to resume, prepare
the data, build the model and AdamW, restore the checkpoint's state, hand everything to
:class:`~minigpt.train.trainer.Trainer`, then measure the final losses, draw the plot and
print samples. Each of those is a helper below.
"""
from __future__ import annotations

import dataclasses
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import minigrad as mg
from minigrad import backend
from minigrad.optim import AdamW, weight_decay_groups

from ..checkpoint import CKPT_NAME, Checkpoint, load_checkpoint, save_checkpoint
from ..cli import command, require_device
from ..errors import ConfigError
from ..model import GPT
from .config import MODEL_FIELDS, TrainConfig, config_from_args, scheduled_lr
from .log import CSVLog, log_line, plot_log
from .resume import SCHEDULE_FIELDS, resolved_paths, resume_command
from .trainer import Trainer


@dataclass
class TrainResult:
    train_loss: float             # mean loss on train-split batches at the end (eval mode)
    val_loss: float               # mean loss on validation batches at the end
    steps: int                    # optimizer steps done (including those before a resume)
    steps_run: int                # optimizer steps done by this call
    wall_time_s: float            # seconds this call took, from start to return
    train_time_s: float           # seconds spent in the training loop (steps, evals, saves)
    tokens_per_s: float           # training tokens per second over this call's steps
    checkpoint_path: str          # <out_dir>/ckpt.safetensors
    log_path: str                 # <out_dir>/log.csv
    plot_path: str | None         # <out_dir>/loss.png (None if matplotlib is missing)
    tokenizer_path: str           # <out_dir>/tokenizer.txt
    interrupted: bool = False     # stopped by Ctrl-C (a checkpoint was saved)
    samples: list = field(default_factory=list)   # the samples printed at the end
    rank: int = 0                 # this process's rank under DDP (0: the one that logs)


@command("train")
def main(argv=None) -> int:
    """``minigpt train`` / ``scripts/train.py``. Returns the exit status (minigpt.cli:
    errors are one line; Ctrl-C saves a checkpoint, prints the command that continues the
    run and exits with 0)."""
    config = config_from_args(argv)
    result = train(config)
    if result.interrupted and result.rank == 0:
        print(f"interrupted at step {result.steps}; checkpoint saved to "
              f"{result.checkpoint_path}; continue with:\n  {resume_command(config)}")
    return 0


def train(config: TrainConfig, callbacks: dict | None = None) -> TrainResult:
    """Train (or, with ``config.resume``, continue) a GPT as ``config`` says; save the
    checkpoint, tokenizer, log and loss plot in ``config.out_dir``; print samples.

    ``callbacks``: {event: fn or [fn, ...]} for ``Trainer.add_callback``.
    With ``config.ddp``, this is one rank of a data-parallel run (see minigpt.ddp).
    """
    t_call = time.perf_counter()
    if not isinstance(config, TrainConfig):
        raise ConfigError(f"train: config must be a TrainConfig, got {type(config).__name__}")
    c = config
    ddp = _start_ddp(c)                        # None on one process
    rank, world = (ddp.rank, ddp.world_size) if ddp is not None else (0, 1)
    is_main = rank == 0
    log = log_line if is_main else (lambda msg: None)
    require_device(c.device, "TrainConfig.device")
    out = Path(c.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / CKPT_NAME
    ckpt = _checkpoint_to_resume(c, ckpt_path, log)   # None: a new run

    data = _prepare_data(c, ckpt, ddp, log)
    tok = data.tokenizer
    if is_main:
        tok.save(out / "tokenizer.txt")

    mg.manual_seed(c.seed)
    model_config = (dataclasses.replace(ckpt.model_config, dropout=c.dropout) if ckpt
                    else c.model_config(tok.vocab_size))
    model = GPT(model_config, device=c.device)
    optimizer = AdamW(weight_decay_groups(model.named_parameters(), c.weight_decay),
                      lr=c.learning_rate, betas=(c.beta1, c.beta2))
    train_batches = _batches(c, data.train_ids, c.seed, "train", ddp)
    val_batches = _batches(c, data.val_ids, c.seed + 1, "validation", ddp)
    start_step, elapsed = 0, 0.0
    if ckpt is not None:
        start_step, elapsed = _restore(c, ckpt, model, optimizer, train_batches, world, log)
    if ddp is not None:
        ddp.offset_rng()                       # rank r: its own dropout stream
        if c.device == "cuda" and rank > 0:
            backend.rng("cuda").seed(c.seed + rank)

    log(f"data: {data.source}, {data.stats['train_tokens']:,} train / "
        f"{data.stats['val_tokens']:,} val tokens, {type(tok).__name__} vocab "
        f"{tok.vocab_size}")
    log(f"model: {model.get_num_params() / 1e6:.2f}M parameters ({c.n_layer} layers, "
        f"{c.n_head} heads, n_embd {model_config.n_embd}, block {model_config.block_size}) "
        f"on {c.device}")
    if ckpt is not None:
        log(f"resuming from {ckpt_path} at step {start_step}")
        _report_resume_lr(c, ckpt, start_step, log)

    log_csv = CSVLog(out / "log.csv", resume_step=start_step if ckpt is not None else None) \
        if is_main else None
    trainer = Trainer(c, model, optimizer, train_batches, val_batches,
                      save=_checkpoint_writer(c, ckpt_path, model, optimizer, data, world),
                      log=log_csv, start_step=start_step, elapsed_offset=elapsed, ddp=ddp)
    for event, fns in (callbacks or {}).items():
        for fn in (fns if isinstance(fns, (list, tuple)) else [fns]):
            trainer.add_callback(event, fn)
    if ddp is not None:
        _describe_ddp(c, ddp, trainer, log)
    with ddp.abort_on_error() if ddp is not None else nullcontext():
        trainer.check_parameters()             # DDP: the ranks start from the same weights
        try:
            trainer.run()
        finally:
            if log_csv is not None:
                log_csv.close()
        if start_step >= c.max_iters and not trainer.interrupted:
            log(f"the checkpoint is at step {start_step} >= max_iters {c.max_iters}: nothing "
                "to train (raise --max_iters to continue)")

        # ---- the end: final losses, plot, samples
        train_loss = val_loss = math.nan
        if not trainer.interrupted:
            train_loss = trainer.evaluate(_batches(c, data.train_ids, c.seed + 2, "train", ddp))
            val_loss = trainer.evaluate()
            log(f"final: train loss {train_loss:.4f}, val loss {val_loss:.4f} "
                f"(mean of {c.eval_iters} batches each)")
        plot = plot_log(out / "log.csv", out / "loss.png") if is_main else None
        samples = _print_samples(c, model, tok) if is_main and not trainer.interrupted else []
        log(f"saved {ckpt_path}, {out / 'log.csv'}" + (f", {plot}" if plot else ""))
    if ddp is not None:
        ddp.wait()                             # the others sleep while rank 0 samples
    steps_run = trainer.step - start_step
    tps = (steps_run * trainer.tokens_per_step * world / trainer.train_time
           if trainer.train_time else 0.0)
    return TrainResult(train_loss=train_loss, val_loss=val_loss, steps=trainer.step,
                       steps_run=steps_run, wall_time_s=time.perf_counter() - t_call,
                       train_time_s=trainer.train_time, tokens_per_s=tps,
                       checkpoint_path=str(ckpt_path), log_path=str(out / "log.csv"),
                       plot_path=str(plot) if plot else None,
                       tokenizer_path=str(out / "tokenizer.txt"),
                       interrupted=trainer.interrupted, samples=samples, rank=rank)


# ----------------------------------------------------------------------------- the helpers
def _start_ddp(c: TrainConfig):
    """The DDP context of this process when ``c.ddp`` (a DDPError naming the install command
    without mpi4py); None otherwise. Launching several processes without --ddp is an error:
    they would all write the same files."""
    if not c.ddp:
        from ..ddp import launched_world_size
        n = launched_world_size()
        if n > 1:
            raise ConfigError(f"started as {n} MPI processes but --ddp is not set: every "
                              "process would train alone and write the same files; add --ddp "
                              "(or run one process)")
        return None
    from ..ddp import DDP
    return DDP(c.device)


def _checkpoint_to_resume(c: TrainConfig, path: Path, log) -> Checkpoint | None:
    """With ``c.resume``, the checkpoint at ``path`` (a CheckpointError if it is missing or
    damaged), checked against ``c``; else None, with a note if a run will be replaced."""
    if not c.resume:
        if path.exists():
            log(f"note: {path} exists and will be replaced by this new run (use --resume "
                "to continue it instead)")
        return None
    ckpt = load_checkpoint(path)
    _check_resume(c, ckpt)
    return ckpt


def _check_resume(c: TrainConfig, ckpt: Checkpoint) -> None:
    """The architecture and tokenizer of a resumed run are the checkpoint's."""
    saved = ckpt.train_config
    mc = ckpt.model_config
    for name in MODEL_FIELDS:
        if getattr(mc, name) != getattr(c, name):
            raise ConfigError(f"--resume: {name} is {getattr(c, name)!r} but the checkpoint "
                              f"{ckpt.path} has {getattr(mc, name)!r}; the architecture "
                              "cannot change when resuming")
    for name in ("tokenizer",) + (("vocab_size",) if c.tokenizer == "bpe" else ()):
        if name in saved and saved[name] != getattr(c, name):
            raise ConfigError(f"--resume: {name} is {getattr(c, name)!r} but the checkpoint "
                              f"{ckpt.path} was trained with {saved[name]!r}")


def _prepare_data(c: TrainConfig, ckpt: Checkpoint | None, ddp, log):
    """Token ids and tokenizer (minigpt.data); a resumed run keeps its tokenizer. Under DDP
    rank 0 fills the cache first; the others then read it."""
    from ..data import prepare_data
    cache_dir = Path(c.cache_dir) if c.cache_dir else Path(c.out_dir) / "cache"

    def prepare():
        return prepare_data(c.data, c.tokenizer, c.vocab_size, c.val_fraction, cache_dir,
                            tokenizer_text=ckpt.tokenizer_text if ckpt else None, log=log)
    data = ddp.main_first(prepare, "preparing the data") if ddp is not None else prepare()
    if ckpt is not None and ckpt.extra.get("data_sha256") not in (None, data.data_sha256):
        log(f"warning: the data ({data.source}) changed since the checkpoint was saved; "
            "training continues on the new data (the batches will differ)")
    return data


def _batches(c: TrainConfig, ids, seed: int, name: str, ddp):
    """Global batches of world x batch_size rows; under DDP, this rank's shard."""
    from ..data import BatchSampler
    world = ddp.world_size if ddp is not None else 1
    sampler = BatchSampler(ids, c.block_size, c.batch_size * world, seed, name)
    if ddp is None:
        return sampler
    from ..ddp import ShardSampler
    return ShardSampler(sampler, ddp.rank, world)


def _restore(c: TrainConfig, ckpt: Checkpoint, model, optimizer, train_batches, world: int,
             log) -> tuple[int, float]:
    """Put the checkpoint's weights, optimizer moments, RNG state and data cursor back (the
    config's weight decay and betas win); returns (its step, its training seconds)."""
    ckpt.restore(model, optimizer)
    decay_group, no_decay_group = optimizer.param_groups
    decay_group["weight_decay"], no_decay_group["weight_decay"] = c.weight_decay, 0.0
    for group in optimizer.param_groups:
        group["betas"] = (c.beta1, c.beta2)
    if ckpt.rng_state is not None:
        backend.set_rng_state(ckpt.rng_state)
    if ckpt.data_state is not None:
        train_batches.set_state(ckpt.data_state)
    if c.device == "cuda" and c.dropout > 0:
        log("note: on cuda the dropout masks come from CuPy's generator, which "
            "checkpoints do not save; the resumed losses will differ slightly")
    saved_batch = ckpt.extra.get("global_batch_size")
    if saved_batch not in (None, c.batch_size * world):
        hint = (f"; --batch_size {saved_batch // world} keeps it"
                if saved_batch % world == 0 else "")
        log(f"note: the checkpoint was trained with a global batch of {saved_batch} "
            f"sequences; this run uses {world} x {c.batch_size} = {c.batch_size * world}"
            f"{hint}")
    return ckpt.step, float(ckpt.extra.get("elapsed_s", 0.0))


def _report_resume_lr(c: TrainConfig, ckpt: Checkpoint, start_step: int, log) -> None:
    """A resumed run never changes the lr silently: print the lr of the next step and, when
    the settings changed it, the one the checkpoint's own schedule gives there."""
    if start_step >= c.max_iters:
        return
    step = start_step + 1
    lr = scheduled_lr(c, step)
    saved = {k: ckpt.train_config[k] for k in SCHEDULE_FIELDS if k in ckpt.train_config}
    try:
        old = scheduled_lr(dataclasses.replace(c, **saved), step)
    except (ConfigError, TypeError):           # settings of another version: nothing to compare
        log(f"resume: lr at step {step}: {lr:.2e}")
        return
    if old == lr:
        log(f"resume: lr at step {step}: {lr:.2e}, as under the checkpoint's schedule")
    else:
        log(f"resume: lr at step {step}: {lr:.2e}; the checkpoint's schedule gives {old:.2e} "
            "(the settings changed the schedule)")


def _checkpoint_writer(c: TrainConfig, path: Path, model, optimizer, data, world: int):
    """``save(trainer)``: a checkpoint of the trainer's last step, with everything resuming
    needs (paths stored resolved, so resume works from anywhere)."""
    paths = resolved_paths(c)

    def save(trainer: Trainer) -> None:
        save_checkpoint(path, model, optimizer, step=trainer.step,
                        train_config={**c.to_dict(), "resume": False, "ddp": False, **paths},
                        tokenizer_text=data.tokenizer_text, rng_state=trainer.rng_state,
                        data_state=trainer.data_state,
                        extra={"elapsed_s": trainer.elapsed_s, "data_sha256": data.data_sha256,
                               "data": data.source,
                               "loss": trainer.last_loss, "val_loss": trainer.last_val_loss,
                               "tokens_seen": trainer.step * trainer.tokens_per_step * world,
                               "world_size": world, "global_batch_size": c.batch_size * world})
    return save


def _describe_ddp(c: TrainConfig, ddp, trainer: Trainer, log) -> None:
    """Register the parameters with the process group and say how the run is split."""
    world = ddp.world_size
    ddp.prepare(trainer.params)
    log(ddp.describe())
    log(f"ddp: global batch {world} x {c.batch_size} = {world * c.batch_size} sequences "
        f"per micro-batch; weights compared across ranks every {c.ddp_check_interval} "
        "steps")
    warning = ddp.thread_warning()
    if warning:
        log(warning)


def _print_samples(c: TrainConfig, model, tok) -> list[str]:
    """The samples printed at the end (minigpt.sample, with the config's settings)."""
    if c.num_samples <= 0 or c.sample_tokens <= 0:
        return []
    from .. import sample as sample_mod
    print(f"\n{c.num_samples} sample{'s' * (c.num_samples > 1)} of {c.sample_tokens} "
          f"tokens (temperature {c.temperature}):\n---------------")
    return sample_mod.sample(model, tok, c.prompt, c.sample_tokens, c.temperature, c.top_k,
                             c.top_p, c.num_samples, c.seed, stream=sample_mod.print_stream)


__all__ = ["train", "main", "TrainResult"]
