"""minigpt's exceptions: one hierarchy, so callers can catch ``MinigptError``.

Each class also derives from the builtin a user would expect (``ValueError`` for bad input)::

    MinigptError                          base of every error minigpt raises on purpose
    ├── TokenizerError     (ValueError)   bad tokenizer input: an id outside the vocabulary,
    │   │                                 a disallowed special token, text that is not str
    │   └── TokenizerFileError            a tokenizer file (own format, tiktoken ranks, GPT-2
    │                                     encoder.json + vocab.bpe) that is truncated,
    │                                     corrupted, hostile, of an unknown version or format
    ├── ConfigError        (ValueError)   an invalid model, training or sampling setting: an
    │                                     unknown key, a wrong type, a size out of range
    ├── CheckpointError    (ValueError)   a checkpoint or pretrained folder that is missing,
    │                                     truncated, damaged or inconsistent with itself
    ├── DataError          (ValueError)   a training text that cannot be used (missing, empty,
    │                                     not UTF-8, too short), bad batch settings or state
    └── DDPError         (RuntimeError)   (in minigpt.ddp) data-parallel training cannot start
        └── PeerError                     or went wrong; another rank failed

minigrad's errors (``minigrad.errors``: ShapeError, DTypeError, IndexRangeError,
SerializationError, ...) come through unchanged where minigpt calls minigrad with what the
user passed (e.g. a model input of the wrong shape). ``PROJECT_ERRORS`` is the tuple of both
roots: ``except PROJECT_ERRORS`` catches every error either package raises on purpose.

A missing or unreadable file is the ``OSError`` Python raises (FileNotFoundError,
PermissionError, IsADirectoryError), naming the path; the loaders turn everything that is
wrong *inside* a file into the errors above, never into a NumPy or JSON traceback.
"""
from minigrad.errors import MinigradError, SerializationError  # noqa: F401  (re-exported)


class MinigptError(Exception):
    """Base of every error minigpt raises on purpose."""


class TokenizerError(MinigptError, ValueError):
    """Bad tokenizer input: an id outside the vocabulary, a disallowed special token, ..."""


class TokenizerFileError(TokenizerError):
    """A tokenizer file that is truncated, corrupted, of an unknown version or format."""


class ConfigError(MinigptError, ValueError):
    """An invalid model, training or sampling configuration (unknown key, wrong type, bad
    size)."""


class CheckpointError(MinigptError, ValueError):
    """A checkpoint that is missing, truncated or inconsistent."""


class DataError(MinigptError, ValueError):
    """A training text that cannot be used: missing, empty, not UTF-8, too short; or batch
    settings / a saved data cursor that do not fit it."""


PROJECT_ERRORS = (MinigptError, MinigradError)

__all__ = ["MinigptError", "TokenizerError", "TokenizerFileError", "ConfigError",
           "CheckpointError", "DataError", "MinigradError", "SerializationError",
           "PROJECT_ERRORS"]
