"""Clear errors for the torch names minigrad does not have: ``mg.nn.LSTM``,
``F.interpolate``, ``mg.fft``, ... raise an AttributeError that says so and what to write
instead, rather than Python's bare "has no attribute". Used by the module ``__getattr__``
of minigrad, minigrad.nn, minigrad.functional and minigrad.optim."""
from __future__ import annotations

_RNN = ("recurrent layers are not in minigrad: write the cell with nn.Linear and a Python "
        "loop over the time steps (autograd follows the loop)")
_ATTENTION = ("write attention with F.scaled_dot_product_attention and nn.Linear (minigpt's "
              "model.py is a full GPT built that way)")
ADVICE = {
    "nn": {**dict.fromkeys(("RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"), _RNN),
           **dict.fromkeys(("MultiheadAttention", "Transformer", "TransformerEncoder",
                            "TransformerDecoder", "TransformerEncoderLayer",
                            "TransformerDecoderLayer"), _ATTENTION),
           "DataParallel": "for data parallelism see minigpt.ddp (MPI)",
           "parallel": "for data parallelism see minigpt.ddp (MPI)"},
    "functional": {"multi_head_attention_forward": _ATTENTION},
    "optim": {},
    "lr_scheduler": {"OneCycleLR": "compose it: LambdaLR(optimizer, lambda step: ...) with the "
                                   "warmup and cosine shape you want, or SequentialLR of "
                                   "LinearLR and CosineAnnealingLR"},
    "minigrad": {"fft": "there is no FFT module (use NumPy's np.fft on t.detach().numpy())",
                 "jit": "there is no TorchScript: minigrad runs eagerly (call the model)"},
}
_HAS = {"nn": "minigrad.nn", "functional": "minigrad.nn.functional", "optim": "minigrad.optim",
        "lr_scheduler": "minigrad.optim.lr_scheduler", "minigrad": "minigrad"}


def missing(where: str, name: str) -> AttributeError:
    """The AttributeError for ``torch.<where>.<name>`` that minigrad lacks."""
    module = _HAS[where]
    advice = ADVICE[where].get(name)
    if name.startswith("__"):       # Python's own probes (copy, pickle, ...): the plain error
        return AttributeError(f"module {module!r} has no attribute {name!r}")
    tail = f": {advice}" if advice else (f"; minigrad implements torch's everyday API, not "
                                         f"all of it (see docs/pytorch.md; dir({module}) "
                                         f"lists what there is)")
    return AttributeError(f"module {module!r} has no attribute {name!r} (torch's "
                          f"{module.replace('minigrad', 'torch')}.{name}){tail}")
