"""minigpt: a GPT built on minigrad, following the life of one token."""
from .tracing import TokenTrace, trace

__all__ = ["trace", "TokenTrace"]
