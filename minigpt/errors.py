"""minigpt's exceptions: one hierarchy, so callers can catch ``MinigptError``."""
from minigrad.errors import MinigradError, SerializationError  # noqa: F401  (re-exported)


class MinigptError(Exception):
    """Base of every error minigpt raises on purpose."""


class TokenizerError(MinigptError, ValueError):
    """Bad tokenizer input: an id outside the vocabulary, a disallowed special token, ..."""


class TokenizerFileError(TokenizerError):
    """A tokenizer file that is truncated, corrupted, of an unknown version or format."""


class ConfigError(MinigptError, ValueError):
    """An invalid model or training configuration (unknown key, wrong type, bad size)."""


class CheckpointError(MinigptError, ValueError):
    """A checkpoint that is missing, truncated or inconsistent."""
