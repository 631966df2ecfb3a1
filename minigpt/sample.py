"""Sample text from a trained checkpoint, streaming tokens as they are generated.

    minigpt sample --ckpt out --prompt "ROMEO:" --max_new_tokens 300 --num_samples 2

    model, tok, ckpt = load_model_and_tokenizer("out")
    texts = sample(model, tok, "ROMEO:", max_new_tokens=100, stream=print_stream)

Decoding is incremental on bytes (an incremental UTF-8 decoder), so a character whose bytes
are split over two BPE tokens prints once, whole, when its last byte arrives. Generation stops
at the tokenizer's end-of-text token when it has one (BPE: ``<|endoftext|>``).
"""
from __future__ import annotations

import codecs
import sys
import warnings

import numpy as np

from .checkpoint import load_checkpoint as _load_ckpt
from .cli import ArgumentParser, add_sampling_flags, check_sampling_flags, command, \
    require_device
from .errors import TokenizerError
from .sampling import DEFAULTS, check_sampling_settings


def load_model_and_tokenizer(path="out", device=None):
    """(model in eval mode, tokenizer, checkpoint) from a checkpoint file or directory."""
    ckpt = _load_ckpt(path)
    model = ckpt.build_model(device=device)
    model.eval()
    return model, ckpt.tokenizer(), ckpt


def load_checkpoint(path="out", device=None):
    """Deprecated: ``load_model_and_tokenizer`` (this name is minigpt.load_checkpoint's,
    which returns a Checkpoint)."""
    warnings.warn("minigpt.sample.load_checkpoint is deprecated: use "
                  "minigpt.sample.load_model_and_tokenizer (minigpt.load_checkpoint returns "
                  "a Checkpoint)", DeprecationWarning, stacklevel=2)
    return load_model_and_tokenizer(path, device)


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


def sample(model, tokenizer, prompt: str = "", max_new_tokens: int = DEFAULTS.max_new_tokens,
           temperature: float = DEFAULTS.temperature, top_k: int | None = DEFAULTS.top_k,
           top_p: float | None = DEFAULTS.top_p, num_samples: int = 1,
           seed: int | None = None, stream=None) -> list[str]:
    """Generate ``num_samples`` continuations of ``prompt``, one after the other.

    Returns the texts (prompt + continuation, without the end-of-text token). ``stream``,
    if given, is called with each new piece of text as soon as it decodes, starting with the
    prompt, then ``stream(None)`` after each sample. The samples draw in turn from one
    generator, ``numpy.random.default_rng(seed)`` (reproducible when ``seed`` is given), so
    the first sample holds exactly the tokens ``model.generate(..., seed=seed)`` and
    ``minigpt trace --seed`` pick with the same settings.

    A setting out of range is a ConfigError naming it; a prompt that is not str, or that
    holds a character a character vocabulary lacks, is a TokenizerError.
    """
    check_sampling_settings(max_new_tokens=max_new_tokens, temperature=temperature,
                            top_k=top_k, top_p=top_p, num_samples=num_samples, seed=seed)
    if not isinstance(prompt, str):
        raise TokenizerError(f"sample: prompt must be str, got {type(prompt).__name__}")
    ids, hidden = start_ids(tokenizer, prompt)
    eot = tokenizer.eot_token
    rng = np.random.default_rng(seed)
    texts = []
    for _ in range(num_samples):
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        text = prompt
        if stream is not None and prompt:
            stream(prompt)
        idx = np.asarray([ids], dtype=np.int64)                          # (1, T)
        for nxt, _ in model.generate_steps(idx, max_new_tokens, temperature=temperature,
                                           top_k=top_k, top_p=top_p, eos_token_id=eot,
                                           seed=rng):
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


def print_stream(piece, file=None, separator="\n---------------\n"):
    """A ``stream`` callback for ``sample``: write pieces as they come, a separator after
    each sample."""
    file = file or sys.stdout
    file.write(separator if piece is None else piece)
    file.flush()


# ----------------------------------------------------------------------------- command line
def build_parser() -> ArgumentParser:
    """The flags of ``minigpt sample`` (sampling flags shared with ``trace``)."""
    p = ArgumentParser(prog="minigpt sample",
                       description="Continue a prompt with a trained checkpoint, streaming "
                                   "the text to the terminal.")
    p.add_argument("--ckpt", default="out", help="checkpoint file, or the directory holding "
                   "ckpt.safetensors (default: out)")
    p.add_argument("--prompt", default="", help="text to continue (default: empty, which "
                   "starts from <|endoftext|> for BPE or a newline for characters)")
    add_sampling_flags(p, max_new_tokens=DEFAULTS.max_new_tokens)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="where the model runs (default: cpu)")
    return p


@command("sample")
def main(argv=None) -> int:
    """``minigpt sample`` / ``scripts/sample.py``. Returns the exit status (minigpt.cli)."""
    args = build_parser().parse_args(argv)
    check_sampling_flags(args)
    require_device(args.device)
    model, tok, ckpt = load_model_and_tokenizer(args.ckpt, device=args.device)
    print(f"# {ckpt.path}: step {ckpt.step}, {model.get_num_params():,} parameters, "
          f"{type(tok).__name__} vocab {tok.vocab_size}", file=sys.stderr)
    sample(model, tok, args.prompt, args.max_new_tokens, args.temperature, args.top_k,
           args.top_p, args.num_samples, args.seed, stream=print_stream)
    return 0


if __name__ == "__main__":
    sys.exit(main())
