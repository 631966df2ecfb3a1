"""Deprecated name: ``minigpt.bench_tokenizer`` is now ``minigpt.bench.tokenizer`` (the
tokenizer benchmark).
Importing the old name gives that module, with a DeprecationWarning."""
import importlib
import sys
import warnings

warnings.warn("minigpt.bench_tokenizer moved to minigpt.bench.tokenizer; import that instead",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("minigpt.bench.tokenizer")   # one module, two names
