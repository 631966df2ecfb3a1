#!/usr/bin/env python
"""Speed and memory against PyTorch: see minigpt/bench/ (same as `minigpt bench`)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout

from minigpt.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
