"""Sample text from a trained checkpoint, streaming tokens as they are generated.

    minigpt sample --ckpt out --prompt "ROMEO:" --max_new_tokens 300 --num_samples 2

    model, tok, meta = load_checkpoint("out")
    texts = sample(model, tok, "ROMEO:", max_new_tokens=100, stream=print_stream)

Decoding is incremental on bytes (an incremental UTF-8 decoder), so a character whose bytes
are split over two BPE tokens prints once, whole, when its last byte arrives. Generation stops
at the tokenizer's end-of-text token when it has one (BPE: ``<|endoftext|>``).
"""
from __future__ import annotations

import argparse
import codecs
import sys

import numpy as np

from .checkpoint import load_checkpoint as _load_ckpt
from .errors import CheckpointError, ConfigError, MinigptError, TokenizerError


def load_checkpoint(path="out", device=None):
    """(model in eval mode, tokenizer, checkpoint) from a checkpoint file or directory."""
    ckpt = _load_ckpt(path)
    model = ckpt.build_model(device=device)
    model.eval()
    return model, ckpt.tokenizer(), ckpt


def start_ids(tokenizer, prompt: str) -> tuple[list[int], int]:
    """(ids to feed, how many of them are a hidden start token). An empty prompt starts from
    the end-of-text token (BPE) or a newline (characters)."""
    if prompt:
        if getattr(tokenizer, "special_tokens", None):
            return tokenizer.encode(prompt, allowed_special="all"), 0
        return tokenizer.encode(prompt), 0
    if tokenizer.eot_token is not None:
        return [tokenizer.eot_token], 1
    if "\n" in getattr(tokenizer, "stoi", {}):
        return tokenizer.encode("\n"), 1
    return [0], 1


def sample(model, tokenizer, prompt: str = "", max_new_tokens: int = 200,
           temperature: float = 0.8, top_k: int | None = None, top_p: float | None = None,
           num_samples: int = 1, seed: int | None = None, stream=None) -> list[str]:
    """Generate ``num_samples`` continuations of ``prompt``, one after the other.

    Returns the texts (prompt + continuation, without the end-of-text token). ``stream``,
    if given, is called with each new piece of text as soon as it decodes, starting with the
    prompt, then ``stream(None)`` after each sample. Sample k draws from its own generator,
    spawned from ``seed`` (reproducible when ``seed`` is given).

    A setting out of range is a ConfigError naming it; a prompt that is not str, or that
    holds a character a character vocabulary lacks, is a TokenizerError.
    """
    check_sampling_settings(max_new_tokens=max_new_tokens, temperature=temperature,
                            top_k=top_k, top_p=top_p, num_samples=num_samples, seed=seed)
    if not isinstance(prompt, str):
        raise TokenizerError(f"sample: prompt must be str, got {type(prompt).__name__}")
    ids, hidden = start_ids(tokenizer, prompt)
    eot = tokenizer.eot_token
    seeds = np.random.SeedSequence(seed).spawn(num_samples)
    texts = []
    for k in range(num_samples):
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        text = prompt
        if stream is not None and prompt:
            stream(prompt)
        idx = np.asarray([ids], dtype=np.int64)                          # (1, T)
        for nxt, _ in model.generate_steps(idx, max_new_tokens, temperature=temperature,
                                           top_k=top_k, top_p=top_p, eos_token_id=eot,
                                           seed=np.random.default_rng(seeds[k])):
            token = int(nxt[0])
            if eot is not None and token == eot:
                break
            piece = decoder.decode(tokenizer.decode_bytes([token]))
            if piece:
                text += piece
                if stream is not None:
                    stream(piece)
        tail = decoder.decode(b"", final=True)
        if tail:
            text += tail
            if stream is not None:
                stream(tail)
        if stream is not None:
            stream(None)
        texts.append(text)
    return texts


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def check_sampling_settings(*, max_new_tokens=0, temperature=1.0, top_k=None, top_p=None,
                            num_samples=1, seed=None) -> None:
    """ConfigError naming the first setting out of range (the same rules as the flags of
    ``minigpt sample``)."""
    def need(ok, name, expected, value):
        if not ok:
            raise ConfigError(f"sample: {name} must be {expected}, got {value!r}")

    need(_is_int(max_new_tokens) and max_new_tokens >= 0, "max_new_tokens", "an int >= 0",
         max_new_tokens)
    need(isinstance(temperature, (int, float, np.floating)) and not isinstance(temperature, bool)
         and 0 <= temperature < float("inf"), "temperature", "a finite number >= 0 (0: greedy)",
         temperature)
    need(top_k is None or (_is_int(top_k) and top_k >= 1), "top_k", "an int >= 1 or None", top_k)
    need(top_p is None or (isinstance(top_p, (int, float, np.floating)) and not isinstance(
        top_p, bool) and 0 < top_p <= 1), "top_p", "a number in (0, 1] or None", top_p)
    need(_is_int(num_samples) and num_samples >= 1, "num_samples", "an int >= 1", num_samples)
    need(seed is None or (_is_int(seed) and seed >= 0), "seed", "an int >= 0 or None", seed)


def print_stream(piece, file=None, separator="\n---------------\n"):
    """A ``stream`` callback for ``sample``: write pieces as they come, a separator after
    each sample."""
    file = file or sys.stdout
    file.write(separator if piece is None else piece)
    file.flush()


# ----------------------------------------------------------------------------- command line
def _optional(kind):
    def parse(s):
        if s.lower() in ("none", "null", ""):
            return None
        return kind(s)
    parse.__name__ = kind.__name__
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="minigpt sample", allow_abbrev=False,
                                description="Sample text from a checkpoint, streaming tokens "
                                            "to the terminal.")
    p.add_argument("--ckpt", default="out", help="checkpoint file, or the directory holding "
                   "ckpt.safetensors (default: out)")
    p.add_argument("--prompt", default="", help="text to continue (default: empty, which "
                   "starts from <|endoftext|> for BPE or a newline for characters)")
    p.add_argument("--max_new_tokens", type=int, default=300,
                   help="tokens to generate per sample (default: 300)")
    p.add_argument("--temperature", type=float, default=0.8,
                   help="softmax temperature; 0 is greedy (default: 0.8)")
    p.add_argument("--top_k", type=_optional(int), default=None,
                   help="keep only the k most likely tokens (default: none)")
    p.add_argument("--top_p", type=_optional(float), default=None,
                   help="nucleus sampling: keep the most likely tokens up to probability p "
                        "(default: none)")
    p.add_argument("--num_samples", type=int, default=2, help="how many samples (default: 2)")
    p.add_argument("--seed", type=_optional(int), default=1337,
                   help="random seed; 'none' for a different result each time (default: 1337)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="where the model runs (default: cpu)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_sampling_settings(max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                                top_k=args.top_k, top_p=args.top_p,
                                num_samples=args.num_samples, seed=args.seed)
    except ConfigError as exc:
        print(f"minigpt sample: error: --{str(exc)[len('sample: '):]}", file=sys.stderr)
        return 2
    try:
        model, tok, ckpt = load_checkpoint(args.ckpt, device=args.device)
        print(f"# {ckpt.path}: step {ckpt.step}, {model.get_num_params():,} parameters, "
              f"{type(tok).__name__} vocab {tok.vocab_size}", file=sys.stderr)
        sample(model, tok, args.prompt, args.max_new_tokens, args.temperature, args.top_k,
               args.top_p, args.num_samples, args.seed, stream=print_stream)
    except (CheckpointError, TokenizerError) as exc:
        print(f"minigpt sample: error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:   # bad sampling settings (generate's own checks)
        print(f"minigpt sample: error: {exc}", file=sys.stderr)
        return 2
    except MinigptError as exc:
        print(f"minigpt sample: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\n(interrupted)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
