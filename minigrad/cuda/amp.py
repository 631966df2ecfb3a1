"""``from minigrad.cuda.amp import GradScaler, autocast``, as torch.cuda.amp: this module is
minigrad.amp itself (importing it puts that module under this name)."""
import sys

from .. import amp as _amp

sys.modules[__name__] = _amp
