"""``import minigrad.nn.functional as F``, as ``import torch.nn.functional as F``: this
module is minigrad.functional itself (importing it puts that module under this name)."""
import sys

from .. import functional as _functional

sys.modules[__name__] = _functional
