#!/usr/bin/env python
"""Benchmark the BPE tokenizer against tiktoken: see minigpt/bench/tokenizer.py."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout

from minigpt.bench.tokenizer import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
