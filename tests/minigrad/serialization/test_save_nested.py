"""minigrad.save / minigrad.load of what training scripts save (issue 16, item 7): nested
dicts, lists and tuples of tensors, arrays, numbers, strings, bools and None; arrays in
safetensors, the structure in the header, no pickle; errors name the key path."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import safetensors.numpy
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad as mg
import minigrad.functional as F
from minigrad import nn, optim, serialization
from minigrad.errors import ArgumentError, SerializationError


def _same(a, b) -> bool:
    """Deep equality that also compares types, dtypes and NaNs."""
    if type(a) is not type(b):
        return False
    if isinstance(a, mg.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and \
            a.array.tobytes() == b.array.tobytes() and a.requires_grad == b.requires_grad
    if isinstance(a, (np.ndarray, np.generic)):
        return a.dtype == b.dtype and np.shape(a) == np.shape(b) and \
            np.asarray(a).tobytes() == np.asarray(b).tobytes()
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return a == b


def _model_and_opt():
    mg.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.GELU(), nn.Linear(8, 2))
    return model, optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.1, betas=(0.9, 0.95))


def _train(model, opt, n, x, y):
    for _ in range(n):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()


def test_training_state_round_trip_resumes_like_an_uninterrupted_run(tmp_path):
    x, y = mg.randn(16, 3), np.arange(16) % 2
    model, opt = _model_and_opt()
    _train(model, opt, 6, x, y)
    model_a, opt_a = _model_and_opt()
    _train(model_a, opt_a, 3, x, y)
    config = {"lr": 0.01, "betas": (0.9, 0.95), "name": "run", "decay": True, "note": None,
              "sizes": [3, 8, 2]}
    mg.save({"model": model_a.state_dict(), "optimizer": opt_a.state_dict(), "step": 3,
             "config": config}, tmp_path / "ckpt.safetensors")
    ckpt = mg.load(tmp_path / "ckpt.safetensors")
    assert ckpt["step"] == 3 and isinstance(ckpt["step"], int)
    assert ckpt["config"] == config and isinstance(ckpt["config"]["betas"], tuple)
    assert sorted(ckpt["optimizer"]["state"]) == [0, 1, 2, 3]          # int keys, as torch
    assert ckpt["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.95)
    model_b, opt_b = _model_and_opt()
    model_b.load_state_dict(ckpt["model"])
    opt_b.load_state_dict(ckpt["optimizer"])
    _train(model_b, opt_b, 3, x, y)
    for (k, a), b in zip(model.state_dict().items(), model_b.state_dict().values()):
        np.testing.assert_array_equal(a.array, b.array, err_msg=k)


def test_every_kind_of_value_comes_back_as_it_was(tmp_path):
    obj = {
        "tensor": mg.tensor(np.arange(6, dtype=np.float32).reshape(2, 3)),
        "grad": mg.tensor(np.ones(2), requires_grad=True),
        "param": nn.Parameter(np.zeros((2, 2), np.float32)),
        "frozen": nn.Parameter(np.zeros(2), requires_grad=False),
        "array": np.arange(5, dtype=np.int16), "bool_array": np.array([True, False]),
        "empty": np.zeros((0, 3)), "zero_d": np.array(2.5),
        "np_scalar": np.float32(1.5), "np_int": np.int64(7), "np_float64": np.float64(0.25),
        "ints": [0, -1, 2 ** 62, -(2 ** 100)], "floats": [0.0, -0.0, 1e-300, 1.5, 1e300],
        "special": [math.nan, math.inf, -math.inf], "strs": ["", "héllo", "\ud800", "日本"],
        "bools": [True, False], "none": None, "tuple": (1, (2.0, "3"), []), "nested": [[[]]],
        7: "an int key", -3: {"inner": {0: np.ones(1)}}, "": "empty key",
        "dots.in.key": mg.tensor([1.0]), "dots": {"in": {"key": mg.tensor([2.0])}},
        "\ud800": np.ones(2), "tensor\udfff": {"x": mg.tensor([3.0])},     # lone surrogates
    }
    mg.save(obj, tmp_path / "x.safetensors")
    back = mg.load(tmp_path / "x.safetensors")
    assert _same(back, obj), back
    assert type(back["param"]) is nn.Parameter and back["param"].requires_grad
    assert not back["frozen"].requires_grad and type(back["frozen"]) is nn.Parameter
    assert back["array"].flags.writeable and back["tensor"].array.flags.writeable
    for top in ([1, 2], (mg.tensor([1.0]),), 3, "text", None, np.arange(3), mg.tensor(2.0)):
        mg.save(top, tmp_path / "top.safetensors")
        assert _same(mg.load(tmp_path / "top.safetensors"), top), top


_LEAF = (st.none() | st.booleans() | st.integers(-2 ** 80, 2 ** 80) | st.floats()
         | st.text(max_size=6)
         | st.builds(lambda n, k: (np.arange(n) % 3).astype(k), st.integers(0, 4),
                     st.sampled_from([np.float32, np.int64, np.uint8, np.bool_])))
_TREE = st.recursive(_LEAF, lambda c: st.lists(c, max_size=3)
                     | st.lists(c, max_size=3).map(tuple)
                     | st.dictionaries(st.text(max_size=4) | st.integers(-5, 5), c, max_size=3),
                     max_leaves=10)


@settings(max_examples=40, deadline=None)
@given(obj=_TREE)
def test_round_trip_of_any_nesting(tmp_path_factory, obj):
    path = tmp_path_factory.mktemp("t") / "x.safetensors"
    mg.save({"obj": obj, "n": 1}, path)     # "n": not a flat {name: tensor} dict
    assert _same(mg.load(path)["obj"], obj)


def test_what_cannot_be_stored_is_an_error_naming_its_key_path(tmp_path):
    path = tmp_path / "x.safetensors"
    cases = [
        ({"config": {"fn": lambda x: x}}, r"obj\['config'\]\['fn'\]: a function cannot be stored"),
        ({"layers": [1, 2, {"act": print}]}, r"obj\['layers'\]\[2\]\['act'\]: a function"),
        ({"state": {0: {"x": {1, 2}}}}, r"obj\['state'\]\[0\]\['x'\]: a set object"),
        ({"cls": int}, r"obj\['cls'\]: a class \(int\)"),
        ({"b": b"bytes"}, r"obj\['b'\]: a bytes object"),
        ({"c": 1 + 2j}, r"obj\['c'\]: a complex object"),
        ({(1, 2): 3}, r"obj: a dict key \(1, 2\) of type tuple"),
        ({"big": 10 ** 5000}, r"obj\['big'\]: an int of \d+ bits"),
        ({"s": np.array(["x"])}, r"'s'.*dtype <U1"),
        ({"o": [np.array([{}], dtype=object)]}, r"dtype object"),
    ]
    loop = {"a": []}
    loop["a"].append(loop)
    cases.append((loop, r"obj\['a'\]\[0\]: the object contains itself"))
    deep = []
    for _ in range(200):
        deep = [deep]
    cases.append((deep, "nested more than"))
    for obj, match in cases:
        with pytest.raises(SerializationError, match=match):
            mg.save(obj, path)
        assert not path.exists()
    for obj, meta in (({"\ud800": np.ones(1)}, None), ({"a": np.ones(1)}, {"k": "\ud800"}),
                      ({"a": np.ones(1)}, {"\udc80": "v"})):     # plain safetensors: no room
        with pytest.raises(SerializationError, match="lone surrogate"):
            mg.save(obj, path, metadata=meta)


def test_flat_files_load_as_before_and_stay_plain_safetensors(tmp_path):
    """A flat {name: tensor or array} dict is plain safetensors (no structure key) and loads
    as {name: Tensor}, as it always did (arrays included: the documented exception)."""
    path = tmp_path / "flat.safetensors"
    mg.save({"w": np.arange(3.0), "t": mg.tensor([1.0, 2.0])}, path, metadata={"k": "v"})
    header = json.loads(path.read_bytes()[8:8 + int.from_bytes(path.read_bytes()[:8], "little")])
    assert serialization.TREE_KEY not in header["__metadata__"]
    back = mg.load(path)
    assert set(back) == {"w", "t"} and all(isinstance(v, mg.Tensor) for v in back.values())
    assert serialization.load_metadata(path) == {"k": "v"}
    nested = tmp_path / "nested.safetensors"
    mg.save({"a": {"w": np.arange(3.0)}}, nested, metadata={"k": "v"})
    assert serialization.load_metadata(nested) == {"k": "v"}       # the structure key hidden
    assert set(serialization.load_arrays(nested)) == {"a.w"}        # readable tensor names
    with pytest.raises(ValueError, match="reserved"):
        mg.save({"a": 1}, nested, metadata={serialization.TREE_KEY: "x"})


def test_load_takes_torch_spelling(tmp_path):
    path = tmp_path / "x.safetensors"
    mg.save({"w": mg.tensor([1.0])}, path)
    assert mg.load(path, map_location="cpu", weights_only=True)["w"].device == "cpu"
    assert mg.load(path, weights_only=False)["w"].device == "cpu"   # never unpickles anyway
    with pytest.raises(ArgumentError, match="map_location"):
        mg.load(path, map_location={"cuda:0": "cpu"})


def _rewrite_tree(path, tree_text, out):
    """The file at ``path`` with its structure replaced and the checksum recomputed (as a
    hostile writer would): only the structure checks can catch it."""
    arrays, meta = serialization._read(path)
    meta[serialization.TREE_KEY] = tree_text
    header = {**meta, serialization.CHECKSUM_KEY: serialization._checksum(arrays, meta),
              serialization.FORMAT_KEY: serialization.FORMAT}
    out.write_bytes(safetensors.numpy.save(dict(arrays), metadata=header))
    return out


@pytest.mark.parametrize("tree", [
    '{"dict": [["w", {"tensor": "missing"}]]}', '{"dict": [["w", {"ndarray": "a.w"}], '
    '["v", {"ndarray": "a.w"}]]}', '{"dict": []}', '{"dict": [["w", {"tensor": "a.w", '
    '"requires_grad": 1}]]}', '{"dict": [[1.5, {"ndarray": "a.w"}]]}', '{"dict": [["w"]]}',
    '{"dict": [["w", {"ndarray": "a.w"}], ["w", 1]]}', '{"set": []}', '{"float": "1"}',
    '{"scalar": "a.w"}', '[' * 5000, '1' * 5000, "{", '"\\ud800', '{"tuple": 3}', "{}",
    '{"dict": [["x", ' + '[' * 150 + ']' * 150 + '], ["w", {"ndarray": "a.w"}]]}'])
def test_damaged_structure_is_a_clear_error(tmp_path, tree):
    good = tmp_path / "good.safetensors"
    mg.save({"a": {"w": np.arange(3.0)}}, good)
    bad = _rewrite_tree(good, tree, tmp_path / "bad.safetensors")
    with pytest.raises(SerializationError, match="bad.safetensors"):
        mg.load(bad)
