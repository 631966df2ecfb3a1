"""torch.backends' flags that training scripts set (nanoGPT:
``torch.backends.cuda.matmul.allow_tf32 = True``), so those lines run. They change
nothing here: minigrad has no TF32 or cuDNN paths, and no Apple-GPU (MPS) backend."""
from __future__ import annotations

from types import SimpleNamespace

cuda = SimpleNamespace(matmul=SimpleNamespace(allow_tf32=False,
                                              allow_fp16_reduced_precision_reduction=True))
cudnn = SimpleNamespace(allow_tf32=True, benchmark=False, deterministic=False, enabled=True)
mps = SimpleNamespace(is_available=lambda: False, is_built=lambda: False)
