"""The ``minigpt`` command: one entry point, one subcommand per job.

    minigpt train [--flags]      train a GPT (default: the built-in corpus), then sample
    minigpt sample --ckpt DIR    sample from a checkpoint
    minigpt trace --ckpt DIR "prompt"   record the life of a token (HTML + JSON)
    minigpt bench                speed and memory against PyTorch

Each subcommand lives with its library code as ``main(argv)``; this file only
dispatches, so the scripts in scripts/ and this command behave the same.
"""
from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "train": ("minigpt.train", "train a GPT, then print samples"),
    "sample": ("minigpt.sample", "sample from a checkpoint"),
    "trace": ("minigpt.tracing", "record every stage of a token's life, forward and backward"),
    "bench": ("minigpt.bench", "time training and generation against PyTorch"),
}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"minigpt: unknown command {name!r}; expected one of {', '.join(COMMANDS)}",
              file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return module.main(rest) or 0


if __name__ == "__main__":
    sys.exit(main())
