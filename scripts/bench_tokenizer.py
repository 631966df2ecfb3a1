#!/usr/bin/env python
"""Benchmark the BPE tokenizer against tiktoken: see minigpt/bench_tokenizer.py."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout

from minigpt.bench_tokenizer import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
