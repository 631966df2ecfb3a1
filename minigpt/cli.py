"""The ``minigpt`` command: one entry point, one subcommand per job, one language.

Each subcommand lives with its library code as ``main(argv)`` (scripts/*.py call those), built
from the pieces here, so every command behaves the same:

* ``command(name)`` wraps a ``main``: every project error (``minigpt.errors.PROJECT_ERRORS``)
  and ``OSError`` becomes one line ``minigpt <name>: error: <message>`` on stderr and an exit
  status from ``EXIT_CODES``, never a traceback;
* ``ArgumentParser`` takes both spellings of every flag (``--max_iters`` and ``--max-iters``;
  help shows the first), answers a mistyped flag with "did you mean --n_layer?" in one line,
  and allows no abbreviations;
* ``add_sampling_flags`` gives ``sample`` and ``trace`` the same sampling flags, defaults
  and help (``minigpt.sampling``, which ``TrainConfig`` uses too).
"""
from __future__ import annotations

import argparse
import difflib
import functools
import importlib
import sys

from .errors import PROJECT_ERRORS, ConfigError

COMMANDS = {
    "train": ("minigpt.train", "train a GPT on a text file (default: the built-in corpus), "
                               "then print samples"),
    "sample": ("minigpt.sample", "continue a prompt with a trained checkpoint, streaming the "
                                 "text"),
    "trace": ("minigpt.tracing", "record every stage of a token's life through a GPT, forward "
                                 "and backward (HTML + JSON)"),
    "bench": ("minigpt.bench", "time training and generation against PyTorch"),
}

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_CODES = {
    EXIT_OK: "done (for train also: stopped by Ctrl-C after saving a checkpoint)",
    EXIT_FAILED: "failed on a file or the data: a missing or damaged checkpoint, unreadable "
                 "data, a failed data-parallel run",
    EXIT_USAGE: "bad usage: an unknown flag, a value of the wrong type, a setting out of range",
    EXIT_INTERRUPTED: "interrupted by Ctrl-C before anything was saved",
}


def version() -> str:
    """The installed package's version; a note when running from an uninstalled checkout."""
    import importlib.metadata
    try:
        return importlib.metadata.version("minigrad-minigpt")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def help_text() -> str:
    """``minigpt --help``: the subcommands and exit statuses in plain words."""
    width = max(map(len, COMMANDS))
    lines = ["usage: minigpt <command> [flags]     (minigpt <command> --help lists its flags)",
             "", "Train a small GPT on minigrad, sample from it, and record a token's life.", "",
             "commands:"]
    lines += [f"  {name:<{width}}  {what}" for name, (_, what) in COMMANDS.items()]
    lines += ["", "options:", "  -h, --help  show this help", "  --version   print the version",
              "", "exit status:"]
    lines += [f"  {code:>3}  {what}" for code, what in EXIT_CODES.items()]
    return "\n".join(lines)


def main(argv=None) -> int:
    """``minigpt <command> [flags]``: dispatch to the subcommand's ``main``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(help_text(), file=sys.stdout if argv else sys.stderr)
        return EXIT_OK if argv else EXIT_USAGE
    if argv[0] == "--version":
        print(f"minigpt {version()}")
        return EXIT_OK
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        print(f"minigpt: error: unknown command {name!r}; {hint}expected one of "
              f"{', '.join(COMMANDS)} (minigpt --help)", file=sys.stderr)
        return EXIT_USAGE
    module = importlib.import_module(COMMANDS[name][0])
    return module.main(rest) or EXIT_OK


# ----------------------------------------------------------------------------- errors
def command(name: str):
    """Decorator for a subcommand's ``main(argv) -> int``: the one place where errors become
    one line ``minigpt <name>: error: ...`` and an exit status (see ``EXIT_CODES``).

    ConfigError is a usage error (2); every other project error and OSError is a failure
    (1); Ctrl-C is 130. argparse's own exits (``--help``, a bad flag) pass through.
    """
    def wrap(fn):
        @functools.wraps(fn)
        def main(argv=None) -> int:
            return _run(f"minigpt {name}", fn, argv)
        return main
    return wrap


def _run(prog: str, fn, argv) -> int:
    try:
        return fn(argv) or EXIT_OK
    except KeyboardInterrupt:
        print(f"\n{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ConfigError as exc:
        _error(prog, exc)
        return EXIT_USAGE
    except PROJECT_ERRORS as exc:
        from .ddp import PeerError
        if not isinstance(exc, PeerError):   # DDP: the rank that failed reports why
            _error(prog, exc)
        return EXIT_FAILED
    except BrokenPipeError:                  # `minigpt sample | head`: the reader left
        _silence_stdout()
        return EXIT_FAILED
    except OSError as exc:                   # a named file is missing or unreadable
        what = f"{exc.strerror}: {exc.filename!r}" if exc.filename and exc.strerror else exc
        _error(prog, what)
        return EXIT_FAILED


def _error(prog: str, message) -> None:
    one_line = " ".join(str(message).split("\n"))
    print(f"{prog}: error: {one_line}", file=sys.stderr)


def _silence_stdout() -> None:
    import os
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def require_device(device: str, flag: str = "--device") -> None:
    """ConfigError (a usage error) when ``device`` is 'cuda' and CuPy or a GPU is missing."""
    if device == "cuda":
        import minigrad
        if not minigrad.cuda_is_available():
            raise ConfigError(f"{flag} is 'cuda' but CuPy or an NVIDIA GPU is not available; "
                              "use --device cpu or install minigrad-minigpt[cuda]")


# ----------------------------------------------------------------------------- flags
def _spellings(names) -> list:
    """``--max_iters`` and ``--max-iters`` for either; the underscore spelling first (it is
    the one help shows). Short flags and positionals stay as they are."""
    out = []
    for n in names:
        if n.startswith("--"):
            under = "--" + n[2:].replace("-", "_")
            out += [s for s in (under, "--" + n[2:].replace("_", "-")) if s not in out]
        else:
            out.append(n)
    return out


def _both_spellings(add_argument):
    @functools.wraps(add_argument)
    def add(*names, **kw):
        action = add_argument(*_spellings(names), **kw)
        firsts = {}
        for s in action.option_strings:   # help shows one spelling of each flag
            firsts.setdefault(s.replace("-", "_"), s)
        action.shown_option_strings = list(firsts.values())
        return action
    return add


class _HelpFormatter(argparse.HelpFormatter):
    def _format_action_invocation(self, action):
        shown = getattr(action, "shown_option_strings", None)
        if not shown or shown == action.option_strings:
            return super()._format_action_invocation(action)
        every = action.option_strings
        action.option_strings = shown
        try:
            return super()._format_action_invocation(action)
        finally:
            action.option_strings = every


class _RawDescriptionHelpFormatter(_HelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the house rules: both spellings of every long flag, no abbreviations,
    one-line errors with a suggestion for a mistyped flag."""

    def __init__(self, *args, raw_description: bool = False, **kw):
        kw.setdefault("allow_abbrev", False)
        kw.setdefault("formatter_class",
                      _RawDescriptionHelpFormatter if raw_description else _HelpFormatter)
        super().__init__(*args, **kw)
        self.add_argument = _both_spellings(self.add_argument)

    def add_argument_group(self, *args, **kw):
        group = super().add_argument_group(*args, **kw)
        group.add_argument = _both_spellings(group.add_argument)
        return group

    def add_mutually_exclusive_group(self, *args, **kw):
        group = super().add_mutually_exclusive_group(*args, **kw)
        group.add_argument = _both_spellings(group.add_argument)
        return group

    def parse_args(self, args=None, namespace=None):
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            self.error(self._unknown(extras))
        return parsed

    def _unknown(self, extras) -> str:
        flag = next((e for e in extras if e.startswith("-") and e != "-"), None)
        if flag is None:
            return f"unexpected argument {extras[0]!r}"
        name = flag.split("=", 1)[0]
        known = {s: a for a in self._actions for s in a.option_strings}
        close = difflib.get_close_matches(name.replace("-", "_"),
                                          [s.replace("-", "_") for s in known], n=1)
        hint = ""
        if close:
            action = next(a for s, a in known.items() if s.replace("-", "_") == close[0])
            shown = getattr(action, "shown_option_strings", action.option_strings)
            hint = f"; did you mean {next(s for s in shown if s.startswith('--'))}?"
        return f"unknown flag {name}{hint}"

    def error(self, message):
        for action in self._actions:   # argparse names a flag by all its spellings: one
            shown = getattr(action, "shown_option_strings", None)
            if shown and shown != action.option_strings:
                message = message.replace("/".join(action.option_strings), "/".join(shown))
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} ({self.prog} --help lists "
                              "every flag)\n")


def optional(kind):
    """An argparse type: ``kind`` or None for 'none' / 'null'."""
    def parse(text: str):
        if text.strip().lower() in ("none", "null"):
            return None
        return kind(text)
    parse.__name__ = kind.__name__
    return parse


def add_sampling_flags(parser, *, max_new_tokens: int, num_samples: bool = True,
                       short_max_new_tokens: str | None = None) -> None:
    """The sampling flags of ``sample`` and ``trace``: defaults and help from
    ``minigpt.sampling``. The values are checked by ``check_sampling_settings`` (call
    ``check_sampling_flags``)."""
    from .sampling import DEFAULTS, HELP

    def add(name, kind, default, *extra):
        parser.add_argument(f"--{name}", *extra, type=kind, default=default,
                            help=f"{HELP[name]} (default: "
                                 f"{'none' if default is None else default})")

    add("max_new_tokens", int, max_new_tokens,
        *([short_max_new_tokens] if short_max_new_tokens else []))
    add("temperature", float, DEFAULTS.temperature)
    add("top_k", optional(int), DEFAULTS.top_k)
    add("top_p", optional(float), DEFAULTS.top_p)
    if num_samples:
        add("num_samples", int, DEFAULTS.num_samples)
    add("seed", optional(int), DEFAULTS.seed)


def check_sampling_flags(args, prompt: str = "--prompt") -> None:
    """ConfigError naming the flag (``--top_p must be ...``) for a sampling setting out of
    range, or a prompt that is not UTF-8 text, by the checks all commands share."""
    from .sampling import check_prompt, check_sampling_settings
    check_prompt(args.prompt, prompt)
    check_sampling_settings(max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                            top_k=args.top_k, top_p=args.top_p,
                            num_samples=getattr(args, "num_samples", 1), seed=args.seed,
                            where="--")


if __name__ == "__main__":
    sys.exit(main())
