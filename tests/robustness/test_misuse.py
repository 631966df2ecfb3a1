"""Public API misuse, one case at a time: every error is one of the project's own exceptions
(``minigrad.errors`` / ``minigpt.errors``), and its message names the argument, what was
expected and what was given. No NumPy message, no bare TypeError from deep inside.

Each case is (id, call, exception class, fragments): the fragments are regexes that must
all appear in the message, usually the argument, the expectation and the actual value.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

import minigrad as mg
import minigrad.functional as F
from minigrad import nn
from minigrad.errors import (ArgumentError, DTypeError, GraphError, IndexRangeError,
                             ShapeError, StateDictError)
from minigrad.optim import SGD, AdamW, clip_grad_norm_, cosine_with_warmup
from minigpt import sample as sample_mod
from minigpt.data import BatchSampler, prepare_data, split_text
from minigpt.errors import (PROJECT_ERRORS, ConfigError, DataError, TokenizerError)
from minigpt.model import GPT, GPTConfig
from minigpt.tokenizer import CharTokenizer, Tokenizer

TINY = GPTConfig(vocab_size=10, block_size=4, n_layer=1, n_head=1, n_embd=4)


def _model():
    mg.manual_seed(0)
    return GPT(TINY)


def _x(*shape):
    return mg.randn(*shape, requires_grad=True)


def _param():
    return [mg.zeros(2, requires_grad=True)]


def _ce_tokens():
    return Tokenizer.train("hello world", 260, special_tokens=["<|endoftext|>"])


CASES = [
    # ---------------------------------------------------------------- constructors: sizes
    ("zeros negative size", lambda: mg.zeros(2, -3), ArgumentError,
     ["zeros", "sizes must be non-negative ints", r"\(2, -3\)"]),
    ("randn negative size", lambda: mg.randn(-2, 3), ArgumentError,
     ["randn", "non-negative ints", r"\(-2, 3\)"]),
    ("rand float size", lambda: mg.rand(2.5), ArgumentError, ["rand", r"\(2\.5,\)"]),
    ("randint low >= high", lambda: mg.randint(5, 0, (2,)), ArgumentError,
     ["randint", "low < high", "low=5, high=0"]),
    ("randint negative size", lambda: mg.randint(0, 5, (-1,)), ArgumentError,
     ["randint", r"\(-1,\)"]),
    ("arange step 0", lambda: mg.arange(0, 10, 0), ArgumentError, ["arange", "step", "not be 0"]),
    ("arange nan", lambda: mg.arange(float("nan")), ArgumentError, ["arange", "end", "finite",
                                                                    "nan"]),
    ("full non-number", lambda: mg.full((2,), "x"), DTypeError, ["full", "fill_value",
                                                               "number", "'x'"]),
    ("tensor ragged", lambda: mg.tensor([[1, 2], [3]]), ArgumentError,
     ["tensor", "rectangular", "ragged"]),
    ("tensor strings", lambda: mg.tensor(["a"]), DTypeError, ["tensor", "not numeric", "<U1"]),
    ("unknown dtype", lambda: mg.zeros(2, dtype="float17"), DTypeError,
     ["dtype", "NumPy dtype", "'float17'"]),
    ("int requires grad", lambda: mg.tensor([1, 2], requires_grad=True), DTypeError,
     ["requires_grad", "floating-point", "int64"]),
    # ---------------------------------------------------------------- tensor shapes
    ("reshape wrong size", lambda: _x(2, 3).reshape(4, 2), ShapeError,
     ["reshape", r"\(2, 3\)", r"\(4, 2\)"]),
    ("reshape two -1", lambda: _x(2, 3).view(-1, -1), ShapeError,
     ["reshape", "only one size can be -1", r"\(-1, -1\)"]),
    ("matmul mismatch", lambda: _x(2, 3) @ _x(2, 3), ShapeError,
     ["matmul", r"\(2, 3\) and \(2, 3\)", "3 .* != 2"]),
    ("broadcast mismatch", lambda: _x(2, 3) + _x(4, 3), ShapeError,
     ["Add", r"\(2, 3\) and \(4, 3\)"]),
    ("transpose dim", lambda: _x(2, 3).transpose(0, 5), ShapeError,
     ["transpose", "dim 5", r"\[-2, 1\]"]),
    ("unsqueeze dim", lambda: _x(2, 3).unsqueeze(5), ShapeError, ["unsqueeze", "dim 5",
                                                                  r"\[-3, 2\]"]),
    ("sum dim", lambda: _x(2, 3).sum(2), ShapeError, ["sum", "dim 2", r"\(2, 3\)"]),
    ("split size 0", lambda: _x(4).split(0), ArgumentError, ["split", "split_size",
                                                            "positive int", "got 0"]),
    ("chunk 0", lambda: _x(4).chunk(0), ArgumentError, ["chunk", "chunks", "positive", "got 0"]),
    ("index out of range", lambda: _x(2, 3)[:, 5], IndexRangeError,
     ["index 5", "axis 1 with size 3", r"shape \(2, 3\)"]),
    ("index by str", lambda: _x(2, 3)["a"], DTypeError, ["index", "ints, slices", "str 'a'"]),
    ("index by floats", lambda: _x(2, 3)[np.array([0.5])], DTypeError,
     ["index", "integers or booleans", "float64"]),
    ("cat empty", lambda: mg.cat([]), ArgumentError, ["cat", "non-empty list", "empty"]),
    ("cat mismatch", lambda: mg.cat([_x(2, 3), _x(3, 2)]), ShapeError,
     ["cat", "tensor 1", r"\(3, 2\)", r"\(2, 3\)"]),
    ("where shapes", lambda: mg.where(np.ones((4, 4), bool), _x(2, 3), 0.0), ShapeError,
     ["where", r"\(4, 4\)", r"\(2, 3\)"]),
    ("masked_fill float mask", lambda: _x(2).masked_fill(np.ones(2), 0.0), DTypeError,
     ["masked_fill", "mask", "boolean", "float64"]),
    ("backward of a vector", lambda: (_x(3) * 2).backward(), GraphError,
     ["backward", "scalar", r"\(3,\)"]),
    ("backward grad shape", lambda: (_x(3) * 2).backward(mg.ones(4)), ShapeError,
     ["backward", r"\(3,\)", r"\(4,\)"]),
    ("item of a vector", lambda: _x(3).item(), ShapeError, ["item", "one element", r"\(3,\)"]),
    # ---------------------------------------------------------------- functional
    ("softmax dim", lambda: F.softmax(_x(2, 3), 4), ShapeError, ["softmax", "dim 4",
                                                                 r"\(2, 3\)"]),
    ("softmax of ints", lambda: F.softmax(mg.tensor([1, 2])), DTypeError,
     ["softmax", "floating-point", "int64"]),
    ("cross_entropy float targets", lambda: F.cross_entropy(_x(2, 3), np.array([0.0, 1.0])),
     DTypeError, ["cross_entropy", "targets", "integer class indices", "float64"]),
    ("cross_entropy target shape", lambda: F.cross_entropy(_x(2, 3), np.array([0, 1, 2])),
     ShapeError, ["cross_entropy", r"targets of shape \(3,\)",
                  r"expected targets of shape \(2,\)"]),
    ("cross_entropy class out of range", lambda: F.cross_entropy(_x(2, 3), [0, 3]),
     IndexRangeError, ["cross_entropy", "target 3", "3 classes", r"0\.\.2"]),
    ("cross_entropy empty batch", lambda: F.cross_entropy(_x(0, 3), np.zeros(0, int)),
     ShapeError, ["cross_entropy", "at least one row", r"\(0, 3\)"]),
    ("layer_norm shape", lambda: F.layer_norm(_x(2, 3), 4), ShapeError,
     ["layer_norm", "normalized_shape", r"\(4,\)", r"\(2, 3\)"]),
    ("layer_norm ints", lambda: F.layer_norm(mg.tensor([[1, 2]]), 2), DTypeError,
     ["layer_norm", "input", "floating-point", "int64"]),
    ("linear shapes", lambda: F.linear(_x(4, 5), _x(2, 3)), ShapeError,
     ["linear", r"\(4, 5\)", r"\(2, 3\)", r"\(\.\.\., 3\)"]),
    ("linear mixed dtypes", lambda: nn.Linear(3, 2)(mg.randn(4, 3, dtype="float64")),
     DTypeError, ["linear", "weight", "float32", "float64"]),
    ("linear int input", lambda: nn.Linear(3, 2)(mg.tensor([[1, 2, 3]])), DTypeError,
     ["linear", "input", "floating-point", "int64"]),
    ("embedding out of range", lambda: F.embedding(np.array([0, 4]), _x(4, 3)),
     IndexRangeError, ["embedding", "index 4", "4 rows", r"0\.\.3"]),
    ("embedding negative", lambda: F.embedding(np.array([-1]), _x(4, 3)), IndexRangeError,
     ["embedding", "index -1"]),
    ("embedding float ids", lambda: F.embedding(np.array([1.0]), _x(4, 3)), DTypeError,
     ["embedding", "indices", "integers", "float64"]),
    ("dropout p", lambda: F.dropout(_x(3), 1.5), ArgumentError,
     ["dropout", r"p must be in \[0, 1\]", "1.5"]),
    ("gelu approximate", lambda: F.gelu(_x(3), "fast"), ArgumentError,
     ["gelu", "approximate", "'none' or 'tanh'", "'fast'"]),
    ("attention shapes", lambda: F.scaled_dot_product_attention(_x(1, 3, 4), _x(1, 3, 5),
                                                                _x(1, 3, 4)), ShapeError,
     ["scaled_dot_product_attention", r"\(1, 3, 4\)", r"\(1, 3, 5\)"]),
    # ---------------------------------------------------------------- nn
    ("Linear negative size", lambda: nn.Linear(-1, 3), ArgumentError,
     ["Linear", "in_features", ">= 0", "-1"]),
    ("Linear float size", lambda: nn.Linear(3, 2.5), ArgumentError,
     ["Linear", "out_features", "int", "float 2.5"]),
    ("Embedding zero rows", lambda: nn.Embedding(0, 3), ArgumentError,
     ["Embedding", "num_embeddings", ">= 1", "0"]),
    ("LayerNorm negative", lambda: nn.LayerNorm(-3), ArgumentError,
     ["LayerNorm", "normalized_shape", ">= 1", "-3"]),
    ("LayerNorm eps", lambda: nn.LayerNorm(3, eps=0), ArgumentError, ["LayerNorm", "eps", "> 0",
                                                                      "0"]),
    ("Dropout p", lambda: nn.Dropout(2), ArgumentError, ["Dropout", "p", "between 0 and 1",
                                                         "2"]),
    ("ModuleList index", lambda: nn.ModuleList([nn.ReLU()])[3], IndexRangeError,
     ["ModuleList", "index 3", "length 1"]),
    ("load_state_dict shape", lambda: nn.Linear(2, 2).load_state_dict(
        {"weight": np.zeros((3, 3)), "bias": np.zeros(2)}), StateDictError,
     ["weight", r"\(3, 3\)", r"\(2, 2\)"]),
    ("load_state_dict missing key", lambda: nn.Linear(2, 2).load_state_dict({"weight":
                                                                             np.zeros((2, 2))}),
     StateDictError, ["Missing key", '"bias"']),
    ("load_state_dict strings", lambda: nn.Linear(2, 2).load_state_dict(
        {"weight": "abc", "bias": np.zeros(2)}), StateDictError, ["weight", "dtype <U3",
                                                                  "numeric", r"\(2, 2\)"]),
    # ---------------------------------------------------------------- optim
    ("AdamW lr negative", lambda: AdamW(_param(), lr=-1), ArgumentError,
     ["lr", ">= 0", "-1"]),
    ("AdamW lr string", lambda: AdamW(_param(), lr="fast"), ArgumentError, ["lr", "'fast'"]),
    ("AdamW betas", lambda: AdamW(_param(), betas=(1.5, 0.9)), ArgumentError,
     ["betas", r"\[0, 1\)", r"\(1\.5, 0\.9\)"]),
    ("AdamW betas scalar", lambda: AdamW(_param(), betas=0.9), ArgumentError,
     ["betas", "two values", "0.9"]),
    ("SGD momentum", lambda: SGD(_param(), lr=0.1, momentum=-1), ArgumentError,
     ["momentum", ">= 0", "-1"]),
    ("optimizer no params", lambda: AdamW([]), ArgumentError, ["params", "empty"]),
    ("clip_grad_norm_ negative", lambda: clip_grad_norm_(_param(), -1.0), ArgumentError,
     ["clip_grad_norm_", "max_norm", ">= 0", "-1.0"]),
    ("optimizer state groups", lambda: AdamW(_param()).load_state_dict(
        {"state": {}, "param_groups": [{"params": [0, 1]}]}), StateDictError,
     ["parameter group 0", "2 parameters", "1 in this optimizer"]),
    ("optimizer state lr type", lambda: AdamW(_param()).load_state_dict(
        {"state": {}, "param_groups": [{"params": [0], "lr": "x"}]}), StateDictError,
     [r"param_groups\[0\]\['lr'\]", "0.001", "'x'"]),
    ("optimizer state not a dict", lambda: AdamW(_param()).load_state_dict([]), StateDictError,
     ["state_dict", "param_groups", "list"]),
    ("cosine_with_warmup", lambda: cosine_with_warmup(1, max_lr=1, warmup_steps=10,
                                                      max_steps=5), ArgumentError,
     ["cosine_with_warmup", "warmup_steps <= max_steps", "warmup_steps=10, max_steps=5"]),
    # ---------------------------------------------------------------- GPT
    ("GPTConfig negative", lambda: GPTConfig(n_layer=-1), ConfigError,
     ["n_layer", "positive int", "-1"]),
    ("GPTConfig heads", lambda: GPTConfig(n_embd=10, n_head=3), ConfigError,
     [r"n_embd \(10\)", r"divisible by n_head \(3\)"]),
    ("GPTConfig float vocab", lambda: GPTConfig(vocab_size=10.0), ConfigError,
     ["vocab_size", "positive int", "10.0"]),
    ("GPT float ids", lambda: _model()(np.array([[1.0]])), DTypeError,
     ["idx", "integer token ids", "float64"]),
    ("GPT 1-D ids", lambda: _model()(np.array([1, 2])), ShapeError,
     ["idx", r"\(B, T\)", r"\(2,\)"]),
    ("GPT empty sequence", lambda: _model()(np.zeros((1, 0), int)), ShapeError,
     ["idx", "at least one token", "T = 0"]),
    ("GPT out-of-vocabulary id", lambda: _model()(np.array([[1, 10]])), IndexRangeError,
     ["token id 10", "outside the vocabulary", "vocab_size 10"]),
    ("GPT negative id", lambda: _model()(np.array([[-1]])), IndexRangeError, ["token id -1"]),
    ("GPT past block_size", lambda: _model()(np.zeros((1, 5), int)), ShapeError,
     ["sequence length 5", "block_size 4", "crop"]),
    ("GPT targets shape", lambda: _model()(np.zeros((1, 2), int), np.zeros((1, 3), int)),
     ShapeError, ["targets", r"\(1, 2\)", r"\(1, 3\)"]),
    ("GPT target out of vocabulary", lambda: _model()(np.zeros((1, 2), int),
                                                      np.array([[1, 10]])), IndexRangeError,
     ["target 10", "10 classes", r"0\.\.9"]),
    ("generate negative count", lambda: _model().generate([[1]], -1), ConfigError,
     ["generate: max_new_tokens", "int >= 0", "-1"]),
    ("generate top_k", lambda: _model().generate([[1]], 2, top_k=0), ConfigError,
     ["generate: top_k", "int >= 1", "0"]),
    ("generate top_p", lambda: _model().generate([[1]], 2, top_p=0), ConfigError,
     ["generate: top_p", r"\(0, 1\]", "0"]),
    ("generate temperature nan", lambda: _model().generate([[1]], 2, temperature=float("nan")),
     ConfigError, ["temperature", ">= 0", "nan"]),
    ("generate temperature inf", lambda: _model().generate([[1]], 2, temperature=float("inf")),
     ConfigError, ["generate: temperature", "finite number >= 0", "inf"]),
    ("generate eos_token_id", lambda: _model().generate([[1]], 2, eos_token_id="x"),
     ConfigError, ["generate: eos_token_id", "int token id or None", "'x'"]),
    # ---------------------------------------------------------------- tokenizers
    ("encode bytes", lambda: _ce_tokens().encode(b"hi"), TokenizerError,
     ["encode", "text must be str", "bytes", "encode_bytes"]),
    ("encode None", lambda: _ce_tokens().encode(None), TokenizerError,
     ["encode", "str", "NoneType"]),
    ("encode disallowed special", lambda: _ce_tokens().encode("a<|endoftext|>"),
     TokenizerError, ["<\\|endoftext\\|>", "index 1", "allowed_special"]),
    ("decode out of vocabulary", lambda: _ce_tokens().decode([1, 70000]), TokenizerError,
     ["decode", "id 70000", r"size 260", r"0\.\.259"]),
    ("decode negative", lambda: _ce_tokens().decode([-1]), TokenizerError, ["decode", "id -1"]),
    ("decode floats", lambda: _ce_tokens().decode([1.5]), TokenizerError,
     ["decode", r"1\.5 \(float\)"]),
    ("decode None", lambda: _ce_tokens().decode(None), TokenizerError,
     ["decode", "iterable of int", "NoneType"]),
    ("train vocab too small", lambda: Tokenizer.train("hello", 100), TokenizerError,
     ["vocab_size", ">= 256", "got 100"]),
    ("train vocab float", lambda: Tokenizer.train("hello", 300.0), TokenizerError,
     ["vocab_size", "int", "float"]),
    ("merges with a huge id", lambda: Tokenizer({(97, 97): 2 ** 40}), TokenizerError,
     ["merge 0", "new id", r"0\.\.2147483647", str(2 ** 40)]),
    ("merges not ids", lambda: Tokenizer(["ab"]), TokenizerError, ["merge 0", "int id", "'a'"]),
    ("char encode unknown", lambda: CharTokenizer.train("abc").encode("abd"), TokenizerError,
     ["encode", "'d'", "U\\+0064", "index 2"]),
    ("char decode unknown", lambda: CharTokenizer.train("abc").decode([3]), TokenizerError,
     ["decode", "id 3", "size 3", r"0\.\.2"]),
    ("char decode negative", lambda: CharTokenizer.train("abc").decode([-1]), TokenizerError,
     ["decode", "id -1"]),
    ("char decode strings", lambda: CharTokenizer.train("abc").decode(["a"]), TokenizerError,
     ["decode", r"'a' \(str\)"]),
    ("char train empty", lambda: CharTokenizer.train(""), TokenizerError,
     ["train", "empty"]),
    # ---------------------------------------------------------------- data and sampling
    ("split val_fraction", lambda: split_text("abc", 0.0), DataError,
     ["val_fraction", r"\(0, 1\)", "0.0"]),
    ("prepare_data tokenizer", lambda: prepare_data(None, "word"), DataError,
     ["tokenizer", "'bpe', 'char'", "'word'"]),
    ("sampler block_size", lambda: BatchSampler(np.arange(100), -1, 2, 0), DataError,
     ["block_size", ">= 1", "-1"]),
    ("sampler empty batch", lambda: BatchSampler(np.arange(100), 4, 0, 0), DataError,
     ["batch_size", ">= 1", "0"]),
    ("sampler seed", lambda: BatchSampler(np.arange(100), 4, 2, -1), DataError,
     ["seed", ">= 0", "-1"]),
    ("sampler float ids", lambda: BatchSampler(np.zeros(100), 4, 2, 0), DataError,
     ["ids", "integer token ids", "float64"]),
    ("sampler 2-D ids", lambda: BatchSampler(np.zeros((50, 2), int), 4, 2, 0), DataError,
     ["ids", "1-D", r"\(50, 2\)"]),
    ("sampler too short", lambda: BatchSampler(np.arange(5), 8, 2, 0), DataError,
     ["5 tokens", "block_size \\+ 1 = 9"]),
    ("sampler state", lambda: BatchSampler(np.arange(100), 4, 2, 0).set_state({"x": 1}),
     DataError, ["set_state", "batches_drawn", "bit_generator"]),
    ("sample num_samples", lambda: sample_mod.sample(_model(), CharTokenizer.train("ab"), "a",
                                                    num_samples=0), ConfigError,
     ["num_samples", ">= 1", "0"]),
    ("sample temperature", lambda: sample_mod.sample(_model(), CharTokenizer.train("ab"), "a",
                                                    temperature=-1), ConfigError,
     ["temperature", ">= 0", "-1"]),
    ("sample temperature str", lambda: sample_mod.sample(_model(), CharTokenizer.train("ab"), "a",
                                                        temperature="hot"), ConfigError,
     ["temperature", "number", "'hot'"]),
    ("sample top_p", lambda: sample_mod.sample(_model(), CharTokenizer.train("ab"), "a",
                                              top_p=2), ConfigError, ["top_p", r"\(0, 1\]", "2"]),
    ("sample prompt None", lambda: sample_mod.sample(_model(), CharTokenizer.train("ab"), None),
     TokenizerError, ["prompt", "str", "NoneType"]),
    ("sample prompt unknown char", lambda: sample_mod.sample(_model(), CharTokenizer.train("ab"),
                                                            "abz"), TokenizerError,
     ["'z'", "index 2", "not in the vocabulary"]),
]


@pytest.mark.parametrize("call, exc, fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_misuse_is_a_clear_error(call, exc, fragments):
    with pytest.raises(exc) as info:
        call()
    msg = str(info.value)
    for frag in fragments:
        assert re.search(frag, msg), f"{frag!r} is not in the message {msg!r}"
    assert isinstance(info.value, PROJECT_ERRORS), type(info.value)   # never a bare builtin
    for numpy_words in ("ufunc", "could not broadcast", "object is not iterable",
                        "not supported between instances", "inhomogeneous shape after"):
        assert numpy_words not in msg or "ragged" in msg, msg


def test_empty_text_and_empty_prompt_are_well_defined(tmp_path):
    """Empty input has a defined meaning where it can: encoding "" gives [], decoding []
    gives "", an empty prompt starts from <|endoftext|>; an empty training file is a
    DataError naming it."""
    tok = _ce_tokens()
    assert tok.encode("") == [] and tok.decode([]) == ""
    assert CharTokenizer.train("ab").encode("") == []
    model = _model()
    text = sample_mod.sample(model, CharTokenizer.train("abcdefghij"), "", max_new_tokens=2,
                             seed=0)
    assert isinstance(text[0], str)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(DataError, match="empty.txt.*empty"):
        prepare_data(empty, "bpe", cache_dir=tmp_path / "cache")


def test_long_prompts_slide_past_block_size():
    """A prompt longer than block_size is not an error for generation: the window slides."""
    model = _model()
    out = model.generate(np.array([[1, 2, 3, 4, 5, 6]]), 3, temperature=0)
    assert out.shape == (1, 9)


# ----------------------------------------------------------------------------- known gaps
# minigpt/model.py is being optimised in parallel; these need a fix there (strict: remove the
# marker once fixed).
MODEL_PY = "needs a fix in minigpt/model.py: "


@pytest.mark.parametrize("call", ["forward", "generate"])
def test_empty_batch_is_rejected(call):
    model, idx = _model(), np.zeros((0, 2), int)
    with pytest.raises(ValueError, match="at least one sequence"):
        model(idx, idx) if call == "forward" else model.generate(idx, 2)


@pytest.mark.parametrize("kw", [dict(temperature="hot"), dict(top_p="a")])
def test_generate_checks_setting_types(kw):
    with pytest.raises(ValueError, match=next(iter(kw))):
        _model().generate([[1]], 2, **kw)
