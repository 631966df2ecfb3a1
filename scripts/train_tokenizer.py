#!/usr/bin/env python
"""Train a tokenizer on a text file (default: the built-in corpus) and save it.

    python scripts/train_tokenizer.py --vocab-size 4096 --out shakespeare.bpe
    python scripts/train_tokenizer.py --input my.txt --pattern gpt2 --format tiktoken --out my.tiktoken
    python scripts/train_tokenizer.py --kind char --out chars.tok
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

try:
    import minigpt  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minigpt.corpus import builtin_corpus
from minigpt.errors import MinigptError
from minigpt.tokenizer import CharTokenizer, Tokenizer


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", type=Path, help="UTF-8 text file (default: the built-in corpus)")
    p.add_argument("--out", type=Path, required=True, help="where to save the tokenizer")
    p.add_argument("--kind", choices=["bpe", "char"], default="bpe")
    p.add_argument("--vocab-size", type=int, default=4096, help="bpe: 256 + merges + special tokens")
    p.add_argument("--pattern", default="gpt4",
                   help="split regex: 'gpt2', 'gpt4', 'none' (no split) or a custom regex")
    p.add_argument("--special", action="append", default=None,
                   help="special token (repeatable; default: <|endoftext|>; 'none' for none)")
    p.add_argument("--format", choices=["minigpt", "tiktoken", "gpt2"], default="minigpt",
                   help="bpe file format; gpt2 writes OUT (encoder.json) and OUT's sibling vocab.bpe")
    p.add_argument("--verbose", action="store_true")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    text = args.input.read_text(encoding="utf-8") if args.input else builtin_corpus()
    t0 = time.perf_counter()
    try:
        if args.kind == "char":
            tok = CharTokenizer.train(text)
            tok.save(args.out)
        else:
            specials = ["<|endoftext|>"] if args.special is None else \
                [s for s in args.special if s.lower() != "none"]
            pattern = None if args.pattern.lower() == "none" else args.pattern
            tok = Tokenizer.train(text, args.vocab_size, pattern=pattern, special_tokens=specials,
                                  verbose=args.verbose)
            if args.format == "minigpt":
                tok.save(args.out)
            elif args.format == "tiktoken":
                tok.save_tiktoken(args.out)
            else:
                tok.save_gpt2(args.out, args.out.with_name("vocab.bpe"))
    except MinigptError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    dt = time.perf_counter() - t0
    n_bytes = len(text.encode("utf-8"))
    n_tokens = len(tok.encode(text, allowed_special="all") if args.kind == "bpe" else tok.encode(text))
    print(f"trained {tok!r} on {n_bytes:,} bytes in {dt:.2f}s; "
          f"{n_bytes / n_tokens:.2f} bytes/token; saved to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
