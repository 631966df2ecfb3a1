"""Deprecated name: ``minigpt.resume`` is now ``minigpt.train.resume`` (what --resume takes from a checkpoint).
Importing the old name gives that module, with a DeprecationWarning."""
import importlib
import sys
import warnings

warnings.warn("minigpt.resume moved to minigpt.train.resume; import that instead",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("minigpt.train.resume")   # one module, two names
