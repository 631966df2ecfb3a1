"""Deprecated name: ``minigpt.tokenizer_io`` is now ``minigpt.tokenizer.io`` (the
tokenizer file formats). Importing the old name gives that module, with a DeprecationWarning."""
import importlib
import sys
import warnings

warnings.warn("minigpt.tokenizer_io moved to minigpt.tokenizer.io; import that instead",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("minigpt.tokenizer.io")   # one module, two names
