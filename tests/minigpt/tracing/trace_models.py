"""The small text and GPT that the trace tests share (the tokenizer is conftest's ``bpe``)."""
import minigrad as mg
from minigpt.model import GPT, GPTConfig

TEXT = "the cat sat on the mat. the dog sat on the log. the cat and the dog."


def tiny(tok, seed=0, **kw):
    """A seeded 2-layer, 2-head, 16-wide GPT for ``tok`` (``kw`` overrides the config)."""
    mg.manual_seed(seed)
    cfg = dict(vocab_size=tok.vocab_size, block_size=24, n_layer=2, n_head=2, n_embd=16)
    cfg.update(kw)
    return GPT(GPTConfig(**cfg))
