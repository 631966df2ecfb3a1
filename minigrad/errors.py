"""minigrad's exceptions. Each also derives from the builtin a NumPy/PyTorch user
would expect (ValueError, TypeError, RuntimeError), so ``except ValueError`` still works."""


class MinigradError(Exception):
    """Base of every error minigrad raises on purpose."""


class ShapeError(MinigradError, ValueError):
    """Shapes that do not fit an op (matmul, broadcasting, reshape, ...)."""


class DeviceError(MinigradError, TypeError):
    """Tensors on different devices mixed in one op."""


class DTypeError(MinigradError, TypeError):
    """A dtype an op cannot take (float indices, gradients on integers, ...)."""


class GraphError(MinigradError, RuntimeError):
    """Misuse of the autograd graph (backward twice through a freed graph, ...)."""


class AnomalyError(MinigradError, RuntimeError):
    """detect_anomaly() found a NaN or Inf; the message names the op."""


class GradcheckError(MinigradError, AssertionError):
    """gradcheck() found an analytic gradient that disagrees with finite differences."""


class SerializationError(MinigradError, ValueError):
    """A tensor file that is truncated, corrupted or not in the expected format."""
