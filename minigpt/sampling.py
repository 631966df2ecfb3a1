"""Sampling settings: the defaults and the one check shared by ``minigpt train`` (its samples
at the end), ``minigpt sample`` and ``minigpt trace``, so the three pick the same tokens.

    from minigpt.sampling import DEFAULTS, check_sampling_settings
    DEFAULTS.temperature                               # 0.8
    check_sampling_settings(temperature=2.0, top_p=0.9)  # ConfigError when out of range

With the same settings and seed, ``minigpt trace`` generates exactly the tokens that
``minigpt sample`` prints as its first sample (both draw from ``default_rng(seed)``).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from .errors import ConfigError


@dataclass(frozen=True)
class SamplingSettings:
    """How tokens are drawn. ``TrainConfig``, ``minigpt sample`` and ``minigpt trace`` take
    their defaults from ``DEFAULTS``."""
    max_new_tokens: int = 200          # tokens per sample (TrainConfig: sample_tokens)
    temperature: float = 0.8           # softmax temperature; 0: greedy
    top_k: int | None = None           # keep only the k most likely tokens; None: all
    top_p: float | None = None         # nucleus: the most likely tokens up to probability p
    num_samples: int = 2               # samples printed
    seed: int | None = 1337            # seeds the sampling generator; None: fresh each time

    def check(self, where: str = "sample: ") -> None:
        """ConfigError naming the first setting out of range."""
        check_sampling_settings(max_new_tokens=self.max_new_tokens,
                                temperature=self.temperature, top_k=self.top_k,
                                top_p=self.top_p, num_samples=self.num_samples, seed=self.seed,
                                where=where)


DEFAULTS = SamplingSettings()

# A trace records every stage of every generated token, so it generates few by default; the
# tokens it picks are still those of `minigpt sample` with the same settings.
TRACE_MAX_NEW_TOKENS = 4

# One help text per setting, for the flags of every command that takes it.
HELP = {
    "max_new_tokens": "tokens to generate per sample",
    "temperature": "softmax temperature; 0 is greedy; a finite number >= 0",
    "top_k": "keep only the k most likely tokens; 'none': all",
    "top_p": "nucleus sampling: keep the most likely tokens up to total probability p, "
             "in (0, 1]; 'none': all",
    "num_samples": "how many samples",
    "seed": "seeds the sampling generator; 'none': different every time",
}


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)   # numpy ints too


def _is_real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)      # numpy floats too


def check_sampling_settings(*, max_new_tokens=0, temperature=DEFAULTS.temperature, top_k=None,
                            top_p=None, num_samples=1, seed=None, eos_token_id=None,
                            where: str = "sample: ", names: dict | None = None) -> None:
    """The one check of sampling settings: a ConfigError naming the first one out of range.
    GPT.generate, ``minigpt sample``, ``minigpt trace`` and TrainConfig all use it.

    ``where`` prefixes the setting's name in the message (``"sample: "``, ``"--"`` for a
    flag, ``"TrainConfig."``, ``"generate: "``); ``names`` renames settings for it
    (TrainConfig calls max_new_tokens ``sample_tokens``). Rejected: a temperature that is
    negative, inf or nan; top_k < 1; top_p outside (0, 1]; negative counts or seed; an
    eos_token_id that is not an int; bools and strings anywhere.
    """
    names = names or {}

    def need(ok, name, expected, value):
        if not ok:
            raise ConfigError(f"{where}{names.get(name, name)} must be {expected}, got "
                              f"{value!r}")

    need(_is_int(max_new_tokens) and max_new_tokens >= 0, "max_new_tokens", "an int >= 0",
         max_new_tokens)
    need(_is_real(temperature) and 0 <= float(temperature) < math.inf, "temperature",
         "a finite number >= 0 (0: greedy)", temperature)
    need(top_k is None or (_is_int(top_k) and top_k >= 1), "top_k", "an int >= 1 or None",
         top_k)
    need(top_p is None or (_is_real(top_p) and 0 < float(top_p) <= 1), "top_p",
         "a number in (0, 1] or None", top_p)
    need(_is_int(num_samples) and num_samples >= 1, "num_samples", "an int >= 1", num_samples)
    need(seed is None or (_is_int(seed) and seed >= 0), "seed", "an int >= 0 or None", seed)
    need(eos_token_id is None or _is_int(eos_token_id), "eos_token_id",
         "an int token id or None", eos_token_id)


def check_prompt(text, where: str = "sample: prompt") -> None:
    """ConfigError unless ``text`` is str that encodes as UTF-8: a command-line argument
    holding bytes that are not UTF-8 arrives as lone surrogates (``\\udcff`` for 0xff)."""
    if not isinstance(text, str):
        raise ConfigError(f"{where} must be str, got {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = text[exc.start]
        what = (f"the byte 0x{ord(bad) - 0xdc00:02x}" if 0xdc80 <= ord(bad) <= 0xdcff
                else f"a lone surrogate U+{ord(bad):04X}")
        raise ConfigError(f"{where} must be valid UTF-8 text, got {what} at character "
                          f"{exc.start}") from None


__all__ = ["SamplingSettings", "DEFAULTS", "TRACE_MAX_NEW_TOKENS", "HELP",
           "check_sampling_settings", "check_prompt"]
