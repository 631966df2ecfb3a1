"""minigrad's exceptions: one hierarchy, so callers can catch ``MinigradError``.

Each class also derives from the builtin a NumPy/PyTorch user would expect, so
``except ValueError`` (or ``TypeError``, ``IndexError``, ``RuntimeError``) still works::

    MinigradError                       base of every error minigrad raises on purpose
    ├── ShapeError        (ValueError)  shapes that do not fit an op: matmul, broadcast, reshape
    │   └── ConversionError (RuntimeError, TypeError)
    │                                   bool/float/int/item/len/iter of a tensor whose shape
    │                                   does not allow it (several values, or 0-d for len)
    ├── DTypeError        (TypeError)   a dtype an op cannot take: float indices, int inputs
    ├── DeviceError       (TypeError)   tensors on different devices mixed in one op
    ├── ArgumentError     (ValueError)  an argument outside its allowed values: a negative
    │                                   size, p outside [0, 1], an unknown option name
    ├── IndexRangeError   (IndexError, ValueError)
    │                                   an index, class id or token id outside its table
    ├── GraphError        (RuntimeError) misuse of the autograd graph: backward twice, ...
    ├── AnomalyError      (RuntimeError) detect_anomaly() found a NaN or Inf
    ├── GradcheckError    (AssertionError) analytic and numerical gradients disagree
    ├── StateDictError    (RuntimeError, ValueError)
    │                                   load_state_dict (module or optimizer) got missing or
    │                                   unexpected keys, wrong shapes or wrong value types
    ├── SerializationError (ValueError) a tensor file that is truncated, corrupted or foreign,
    │                                   or an object that cannot be stored
    └── OutputPathError   (OSError)     an output path minigrad will not write through: a
                                        symbolic link or a FIFO where a log is appended

Every message names the function or argument, what was expected and what was given.
minigpt's exceptions (``minigpt.errors``) form a second tree rooted at ``MinigptError``;
``minigpt.errors.PROJECT_ERRORS`` is the tuple of both roots.
"""


class MinigradError(Exception):
    """Base of every error minigrad raises on purpose."""


class ShapeError(MinigradError, ValueError):
    """Shapes that do not fit an op (matmul, broadcasting, reshape, ...)."""


class ConversionError(ShapeError, RuntimeError, TypeError):
    """A tensor turned into a Python value its shape does not allow: ``bool(t)``,
    ``float(t)``, ``t.item()`` of several values, ``len()`` or iteration of a 0-d tensor.
    PyTorch raises RuntimeError, ValueError or TypeError for these; this is all three."""


class DeviceError(MinigradError, TypeError):
    """Tensors on different devices mixed in one op."""


class DTypeError(MinigradError, TypeError):
    """A dtype an op cannot take (float indices, gradients on integers, ...)."""


class ArgumentError(MinigradError, ValueError):
    """An argument outside its allowed values (negative size, probability outside [0, 1],
    unknown option)."""


class IndexRangeError(MinigradError, IndexError, ValueError):
    """An index, class id or token id outside the table it indexes (like NumPy's
    AxisError, both an IndexError and a ValueError)."""


class GraphError(MinigradError, RuntimeError):
    """Misuse of the autograd graph (backward twice through a freed graph, ...)."""


class AnomalyError(MinigradError, RuntimeError):
    """detect_anomaly() found a NaN or Inf; the message names the op."""


class GradcheckError(MinigradError, AssertionError):
    """gradcheck() found an analytic gradient that disagrees with finite differences."""


class StateDictError(MinigradError, RuntimeError, ValueError):
    """load_state_dict (of a Module or an Optimizer) got missing or unexpected keys, a
    shape mismatch or a value of the wrong type. A RuntimeError as in torch's
    Module.load_state_dict, and a ValueError as in torch's Optimizer.load_state_dict."""


class SerializationError(MinigradError, ValueError):
    """A tensor file that is truncated, corrupted or not in the expected format."""


class OutputPathError(MinigradError, OSError):
    """An output path minigrad refuses to write through (a symbolic link or something
    other than a regular file where a log is appended); see minigrad.fileio."""


__all__ = ["MinigradError", "ShapeError", "ConversionError", "DeviceError", "DTypeError",
           "ArgumentError", "IndexRangeError", "GraphError", "AnomalyError", "GradcheckError",
           "StateDictError", "SerializationError", "OutputPathError"]
