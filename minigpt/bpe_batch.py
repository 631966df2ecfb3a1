"""Deprecated name: ``minigpt.bpe_batch`` is now ``minigpt.tokenizer.fast``
(the tokenizer's speedups). Importing the old name gives that module, with a DeprecationWarning."""
import importlib
import sys
import warnings

warnings.warn("minigpt.bpe_batch moved to minigpt.tokenizer.fast; import that instead",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("minigpt.tokenizer.fast")   # one module, two names
