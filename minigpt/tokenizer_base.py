"""Deprecated name: ``minigpt.tokenizer_base`` is now ``minigpt.tokenizer.base``
(tiktoken's names). Importing the old name gives that module, with a DeprecationWarning."""
import importlib
import sys
import warnings

warnings.warn("minigpt.tokenizer_base moved to minigpt.tokenizer.base; import that instead",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("minigpt.tokenizer.base")   # one module, two names
