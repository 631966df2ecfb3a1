#!/usr/bin/env python
"""Train a GPT, then print samples: a thin wrapper over ``minigpt.train.main``.

    python scripts/train.py                       # the built-in corpus, ~5 minutes on 2 cores
    python scripts/train.py --data ../shared/data/tinyshakespeare.txt --tokenizer char
    python scripts/train.py --help                # every flag
"""
import sys
from pathlib import Path

try:
    import minigpt  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minigpt.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
