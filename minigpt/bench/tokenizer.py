"""Benchmark minigpt's BPE tokenizer: training time per vocab size, encode/decode MB/s, and the
ratio to tiktoken built from the same ranks, pattern and special tokens (when installed).

    python scripts/bench_tokenizer.py                      # tinyshakespeare, vocab 512/1024/4096
    python scripts/bench_tokenizer.py --data my.txt --json bench.json

"cold" encodes with an empty chunk cache (every distinct chunk runs BPE); "warm" encodes the
same text again (every chunk is a cache hit). tiktoken runs single-threaded (encode_ordinary).
"""
from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import time
from pathlib import Path

from minigrad.fileio import atomic_write
from minigpt.corpus import builtin_corpus
from minigpt.tokenizer import Tokenizer

# the shared corpus when run from a checkout beside ../shared; else the built-in corpus
DEFAULT_DATA = Path.cwd().parent / "shared" / "data" / "tinyshakespeare.txt"


def best_times(fns: dict, repeats: int, setups: dict | None = None) -> dict:
    """Smallest wall time of each function over ``repeats`` rounds. The functions run
    interleaved (one of each per round) so that machine noise hits them all alike; a setup
    function, if given, runs untimed before its function."""
    best = {k: float("inf") for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            if setups and k in setups:
                setups[k]()
            gc.collect()
            t = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t)
    return best


def bench(text: str, vocab_sizes, pattern: str, repeats: int) -> dict:
    n_mb = len(text.encode("utf-8")) / 1e6
    res: dict = {"python": platform.python_version(), "text_mb": round(n_mb, 3),
                 "pattern": pattern, "train_s": {}}
    tok = None
    for vs in vocab_sizes:
        t = time.perf_counter()
        tok = Tokenizer.train(text, vs, pattern=pattern, special_tokens=["<|endoftext|>"])
        res["train_s"][vs] = round(time.perf_counter() - t, 3)
    res["vocab_size"] = tok.vocab_size
    ids = tok.encode_ordinary(text)
    res["tokens"] = len(ids)
    res["bytes_per_token"] = round(n_mb * 1e6 / len(ids), 3)
    fns = {"encode_cold": lambda: tok.encode_ordinary(text),
           "encode_warm": lambda: tok.encode_ordinary(text),
           "decode": lambda: tok.decode(ids)}
    setups = {"encode_cold": tok._bpe.clear_cache}
    try:
        import tiktoken
    except ImportError:
        tiktoken = None
    if tiktoken is not None:
        enc = tok.to_tiktoken()
        res["tiktoken"] = tiktoken.__version__
        res["tiktoken_equal"] = enc.encode_ordinary(text) == ids
        fns["tt_encode"] = lambda: enc.encode_ordinary(text)
        fns["tt_decode"] = lambda: enc.decode(ids)
    else:
        res["tiktoken"] = None
    mb_s = {k: n_mb / t for k, t in best_times(fns, repeats, setups).items()}
    res["minigpt_mb_s"] = {k: round(mb_s[k], 2) for k in ("encode_cold", "encode_warm", "decode")}
    if tiktoken is not None:
        res["tiktoken_mb_s"] = {"encode": round(mb_s["tt_encode"], 2),
                                "decode": round(mb_s["tt_decode"], 2)}
        res["ratio_to_tiktoken"] = {
            "encode_cold": round(mb_s["encode_cold"] / mb_s["tt_encode"], 2),
            "encode_warm": round(mb_s["encode_warm"] / mb_s["tt_encode"], 2),
            "decode": round(mb_s["decode"] / mb_s["tt_decode"], 2),
        }
    return res


def print_table(res: dict) -> None:
    print(f"text: {res['text_mb']} MB, pattern {res['pattern']}, Python {res['python']}")
    print(f"{'vocab size':>10} | {'train (s)':>9}")
    for vs, s in res["train_s"].items():
        print(f"{vs:>10} | {s:>9.2f}")
    print(f"\nvocab {res['vocab_size']}: {res['tokens']:,} tokens, {res['bytes_per_token']} bytes/token")
    tt = res.get("tiktoken_mb_s") or {}
    ratio = res.get("ratio_to_tiktoken") or {}
    print(f"{'MB/s':<12} | {'minigpt':>8} | {'tiktoken':>8} | {'ratio':>5}")
    for k, v in res["minigpt_mb_s"].items():
        t = tt.get("decode" if k == "decode" else "encode")
        print(f"{k:<12} | {v:>8.2f} | {t if t is not None else '-':>8} | {ratio.get(k, '-'):>5}")
    if res.get("tiktoken") is None:
        print("(tiktoken is not installed: no comparison)")
    else:
        print(f"tiktoken {res['tiktoken']}: identical ids: {res['tiktoken_equal']}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"text file (default {DEFAULT_DATA})")
    p.add_argument("--vocab-sizes", type=int, nargs="+", default=[512, 1024, 4096])
    p.add_argument("--pattern", default="gpt4")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = p.parse_args(argv)
    if args.data.exists():
        text = args.data.read_text(encoding="utf-8")
    else:
        print(f"{args.data} not found; using the built-in corpus instead")
        text = builtin_corpus()
    res = bench(text, args.vocab_sizes, args.pattern, args.repeats)
    print_table(res)
    if args.json:
        atomic_write(args.json, (json.dumps(res, indent=2) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
