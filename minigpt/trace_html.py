"""Deprecated: the trace page moved to ``minigpt.tracing.html``; this alias keeps old
imports working."""
import warnings

from .tracing.html import *  # noqa: F401,F403
from .tracing.html import CSS, MAX_COLS, bars, esc, grouped_lines, heatmap, render  # noqa: F401

warnings.warn("minigpt.trace_html is deprecated: import minigpt.tracing.html",
              DeprecationWarning, stacklevel=2)
