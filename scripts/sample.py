#!/usr/bin/env python
"""Sample from a checkpoint, streaming tokens: a thin wrapper over ``minigpt.sample.main``.

    python scripts/sample.py --ckpt out --prompt "ROMEO:" --num_samples 3
    python scripts/sample.py --help               # every flag
"""
import sys
from pathlib import Path

try:
    import minigpt  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minigpt.sample import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
