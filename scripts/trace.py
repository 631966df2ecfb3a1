#!/usr/bin/env python
"""Record the life of a token (HTML + JSON + report): a thin wrapper over ``minigpt.tracing.main``.

    python scripts/trace.py "First Citizen:"                    # a freshly initialised model
    python scripts/trace.py --ckpt out "ROMEO:" -n 5 --out trace_out
    python scripts/trace.py --ckpt out_early --compare out "ROMEO:"   # what training changed
    python scripts/trace.py --help                              # every flag
"""
import sys
from pathlib import Path

try:
    import minigpt  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minigpt.tracing import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
