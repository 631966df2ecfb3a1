"""Deprecated name: ``minigpt.bench_torch`` is now ``minigpt.bench.torch_gpt`` (the PyTorch twin).
Importing the old name gives that module, with a DeprecationWarning."""
import importlib
import sys
import warnings

warnings.warn("minigpt.bench_torch moved to minigpt.bench.torch_gpt; import that instead",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("minigpt.bench.torch_gpt")   # one module, two names
