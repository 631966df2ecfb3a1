"""Deprecated name: ``minigpt.trace_html`` is now ``minigpt.tracing.html`` (the trace page).
Importing the old name gives that module, with a DeprecationWarning."""
import importlib
import sys
import warnings

warnings.warn("minigpt.trace_html moved to minigpt.tracing.html; import that instead",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("minigpt.tracing.html")   # one module, two names
