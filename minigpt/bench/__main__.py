"""``python -m minigpt.bench``: the same as ``minigpt bench`` (the benchmark also starts
itself this way, in fresh processes, for its memory and data-parallel probes)."""
import sys

from .command import main

sys.exit(main())
