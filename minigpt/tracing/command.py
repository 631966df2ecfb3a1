"""``minigpt trace``: the command line around ``trace()``, and the files it writes.

    minigpt trace "First Citizen:" --ckpt out -n 4      # trace.html, trace.json, block.dot

Without --ckpt it traces a freshly initialised model (``fresh_model``); --compare traces a
second checkpoint beside it, --compare_prompt a second prompt (or both). The backward pass
explains the token the trace chooses, or the one --target names (--continuation: the
prompt's own continuation). ``block_graph`` draws one block's forward and backward graph.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

import minigrad as mg
from minigrad.fileio import atomic_write

from ..cli import ArgumentParser, add_sampling_flags, check_sampling_flags, command
from ..errors import ConfigError
from ..model import GPT, GPTConfig
from ..recording import Recorder
from ..sampling import TRACE_MAX_NEW_TOKENS, check_prompt
from .record import TokenTrace
from .tracer import trace

__all__ = ["block_graph", "fresh_model", "build_parser", "parse_args", "write_trace_files",
           "main"]


# ----------------------------------------------------------------------------- block graph
def block_graph(model, tokenizer, text: str, layer: int = 0, seed: int = 0) -> str:
    """Graphviz DOT text of one block's forward and backward graph: the residual stream
    entering block ``layer`` (as a leaf), the block, and a loss sum(out * r) with a random r.
    Every op node shows the stage it belongs to ([h.0.ln_1], [h.0.attn], ...) and every tensor
    its gradient norm (minigrad.viz.backward_graph). Render with minigrad.viz.render."""
    from minigrad import viz
    if not 0 <= layer < model.config.n_layer:
        raise ConfigError(f"block_graph: layer must be in [0, {model.config.n_layer}), "
                          f"got {layer}")
    ids = tokenizer.encode(text, allowed_special="all")[-model.config.block_size:]
    name_in = "emb" if layer == 0 else f"h.{layer - 1}.resid_mlp"
    was_training = model.training
    model.eval()
    saved = [(p, p.grad) for p in model.parameters()]
    try:
        with mg.no_grad(), Recorder() as rec:
            model(np.array([ids]))
        x = mg.Tensor(rec[name_in].array, dtype=rec[name_in].dtype, requires_grad=True)
        x.name = f"x ({name_in})"
        out = model.transformer.h[layer](x, None, layer)
        r = np.random.default_rng(seed).standard_normal(out.shape).astype(out.dtype)
        with mg.stage("loss"):
            loss = (out * mg.Tensor(r, device=out.device)).sum()
        names = {p: n for n, p in model.named_parameters() if f"h.{layer}." in n}
        return viz.backward_graph(loss, names)
    finally:
        for p, g in saved:
            p.grad = g
        model.train(was_training)


# ----------------------------------------------------------------------------- command line
def fresh_model(vocab_size: int = 512, n_layer: int = 2, n_head: int = 4, n_embd: int = 64,
                block_size: int = 64, seed: int = 0):
    """A freshly initialised GPT and a BPE tokenizer trained (in well under a second) on the
    built-in corpus: something to trace before any training."""
    from ..corpus import builtin_corpus
    from ..tokenizer import Tokenizer
    tok = Tokenizer.train(builtin_corpus(), vocab_size)
    mg.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=block_size, n_layer=n_layer,
                          n_head=n_head, n_embd=n_embd))
    return model, tok


def _load(path):
    from ..sample import load_model_and_tokenizer
    model, tok, _ckpt = load_model_and_tokenizer(path)
    return model, tok


def _size(lo: int, hi: int):
    """An argparse type: an int in [lo, hi] (a fresh model to trace should stay small)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an int, got {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"expected an int in [{lo}, {hi}], got {value}")
        return value
    return parse


def build_parser():
    """The flags of ``minigpt trace`` (sampling flags and defaults shared with ``sample``)."""
    p = ArgumentParser(
        prog="minigpt trace", description="Record every stage of a token's life through a "
        "GPT, forward and backward: a terminal report, trace.json and a self-contained "
        "trace.html. With the same settings it picks the tokens `minigpt sample` prints first.")
    p.add_argument("prompt", help="the text to trace (not empty)")
    p.add_argument("--ckpt", help="checkpoint directory (default: a freshly initialised model)")
    p.add_argument("--compare", metavar="OTHER_CKPT",
                   help="trace the prompt through a second checkpoint too and show both side "
                        "by side (e.g. before/after training)")
    p.add_argument("--compare_prompt", metavar="TEXT",
                   help="trace a second prompt too (through --compare's checkpoint if given, "
                        "else the same model) and show both side by side")
    p.add_argument("--out", default="trace_out", help="output directory (default: trace_out)")
    add_sampling_flags(p, max_new_tokens=TRACE_MAX_NEW_TOKENS, num_samples=False,
                       short_max_new_tokens="-n")
    p.add_argument("--top", type=_size(1, 100), default=5,
                   help="rows of the top-k tables (default: 5)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--target", help="the backward pass explains this next token (its text; "
                                    "its first token): loss -log p(target). Default: the "
                                    "token the trace chooses")
    g.add_argument("--continuation", action="store_true",
                   help="backward from the prompt's own continuation instead (every position "
                        "predicts the next prompt token: the training loss)")
    g.add_argument("--no_backward", action="store_true", help="forward only")
    p.add_argument("--no_check", action="store_true", help="skip the finite-difference check")
    p.add_argument("--graph_layer", type=int, default=0,
                   help="write the forward/backward graph of this block as block.dot "
                        "(default: 0)")
    p.add_argument("--quiet", "-q", action="store_true", help="do not print the report")
    init = p.add_argument_group("fresh model (without --ckpt)")
    for flag, (lo, hi), default, what in (
            ("--init_vocab", (257, 65536), 512, "BPE vocabulary size"),
            ("--init_layers", (1, 48), 2, "transformer blocks"),
            ("--init_heads", (1, 64), 4, "attention heads"),
            ("--init_embd", (1, 2048), 64, "width of the residual stream"),
            ("--init_block", (1, 4096), 64, "context length in tokens"),
            ("--init_seed", (0, 2**32 - 1), 0, "seed of the initial weights")):
        init.add_argument(flag, type=_size(lo, hi), default=default,
                          help=f"{what}, in [{lo}, {hi}] (default: {default})")
    return p


def write_trace_files(out, trace: TokenTrace, dot: str, compare: TokenTrace | None = None):
    """trace.html, trace.json (trace_compare.json with ``compare``), block.dot and, with
    Graphviz installed, block.svg in the folder ``out`` (created). Each file is written
    atomically (minigrad.fileio): a link planted at its path is replaced, never followed."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    trace.to_html(out / "trace.html", compare=compare)
    trace.to_json(out / "trace.json")
    if compare is not None:
        compare.to_json(out / "trace_compare.json")
    atomic_write(out / "block.dot", dot.encode("utf-8"))
    if shutil.which("dot"):                      # Graphviz installed: draw it too
        from minigrad import viz
        viz.render(dot, out / "block.svg")


def parse_args(argv=None) -> argparse.Namespace:
    """The parsed flags of ``minigpt trace``; their values are checked by ``main``."""
    return build_parser().parse_args(argv)


def _check_args(args) -> None:
    """ConfigError naming the flag for a value out of range, before anything is loaded."""
    if not args.prompt:
        raise ConfigError("the prompt to trace must be non-empty text, got ''")
    check_sampling_flags(args, prompt="the prompt to trace")
    if args.target is not None:
        check_prompt(args.target, "--target")
    if args.compare_prompt is not None:
        check_prompt(args.compare_prompt, "--compare_prompt")


def _target(args, tok):
    """trace()'s target from the flags: None, "continuation", "chosen" or the id of
    --target's first token (an id, so that no text is read as a rule's name)."""
    if args.no_backward:
        return None
    if args.continuation:
        return "continuation"
    if args.target is None:
        return "chosen"
    ids = tok.encode(args.target, allowed_special="all")
    if not ids:
        raise ConfigError(f"--target {args.target!r} encodes to no token")
    return ids[0]


def _check_graph_layer(args, model) -> None:
    n_layer = model.config.n_layer
    if not 0 <= args.graph_layer < n_layer:
        raise ConfigError(f"--graph_layer must be a block of the model, in [0, {n_layer - 1}], "
                          f"got {args.graph_layer}")


@command("trace")
def main(argv=None) -> int:
    """``minigpt trace`` / ``scripts/trace.py``: errors are one line and an exit status
    (minigpt.cli); nothing is written unless every flag is in range."""
    args = parse_args(argv)
    _check_args(args)
    return _run(args)


def _run(args) -> int:
    if args.ckpt:
        model, tok = _load(args.ckpt)
        label = str(args.ckpt)
    else:
        model, tok = fresh_model(args.init_vocab, args.init_layers, args.init_heads,
                                 args.init_embd, args.init_block, args.init_seed)
        label = "freshly initialised"
    _check_graph_layer(args, model)
    kw = dict(max_new_tokens=args.max_new_tokens, temperature=args.temperature,
              top_k=args.top_k, top_p=args.top_p, seed=args.seed, top=args.top,
              check=not args.no_check)

    def run(model, tok, prompt, label):
        return trace(model, tok, prompt, target=_target(args, tok), label=label, **kw)

    label2 = str(args.compare) if args.compare else label
    if args.compare_prompt:                    # two prompts: name each by its prompt
        label, label2 = f"{label}: {args.prompt!r}", f"{label2}: {args.compare_prompt!r}"
    t = run(model, tok, args.prompt, label)
    other = None
    if args.compare or args.compare_prompt:
        m2, tok2 = _load(args.compare) if args.compare else (model, tok)
        other = run(m2, tok2, args.compare_prompt or args.prompt, label2)
    out = Path(args.out)
    write_trace_files(out, t, block_graph(model, tok, args.prompt, args.graph_layer), other)
    if not args.quiet:
        print(t.report(), end="")
        if other is not None:
            print(other.report(), end="")
    print(f"wrote {out / 'trace.html'}, {out / 'trace.json'} and {out / 'block.dot'}")
    return 0
