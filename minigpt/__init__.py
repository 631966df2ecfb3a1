"""minigpt: a GPT built on minigrad, following the life of one token.

The front door::

    from minigpt import GPT, GPTConfig, Tokenizer, CharTokenizer, load_tokenizer, trace

Each name is imported on first use (PEP 562), so ``import minigpt.tokenizer`` or
``from minigpt import Tokenizer`` loads no model, tracer, trainer or benchmark code.
Submodules (``minigpt.model``, ``minigpt.train``, ...) are reachable as attributes too.
"""
import importlib as _importlib

# name -> the module that defines it (imported when the name is first used)
_LAZY = {
    "GPT": "model",
    "GPTConfig": "model",
    "Tokenizer": "tokenizer",
    "CharTokenizer": "tokenizer",
    "load_tokenizer": "tokenizer",
    "trace": "tracing",
    "TokenTrace": "tracing",
    "Checkpoint": "checkpoint",
    "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "builtin_corpus": "corpus",
    "MinigptError": "errors",
}

_DIST_NAME = "minigrad-minigpt"   # setup.cfg's name
_UNKNOWN_VERSION = "0+unknown"    # what __version__ says when the package is not installed

__all__ = sorted(_LAZY)


def _package_version() -> str:
    """The installed distribution's version, or ``"0+unknown"`` when it is not installed
    (run from a source checkout)."""
    from importlib import metadata
    try:
        return metadata.version(_DIST_NAME)
    except metadata.PackageNotFoundError:
        return _UNKNOWN_VERSION


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(_importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    elif name == "__version__":
        value = _package_version()
    elif not name.startswith("_"):
        try:   # a submodule, as `import minigpt; minigpt.model` used to allow
            return _importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise   # the submodule exists but needs something missing: say so
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}; its names "
                                 f"are {', '.join(__all__)}") from None
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value   # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    public = (name for name in globals() if not name.startswith("_"))
    return sorted({*public, *__all__, "__version__"})
