"""minigrad.serialization: safetensors round trips, atomic writes, broken files."""
import json
import os
import pathlib

import numpy as np
import pytest
import safetensors.numpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
import minigrad.functional as F
from minigrad import backend, fileio, nn, optim, serialization
from minigrad.errors import SerializationError

DTYPES = [np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64,
          np.uint8, np.uint16, np.uint32, np.uint64, np.bool_]
names = st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=1, max_size=12)
arrays = st.sampled_from(DTYPES).flatmap(
    lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)))
tmp_settings = settings(max_examples=40, deadline=None,
                        suppress_health_check=[HealthCheck.function_scoped_fixture])


@tmp_settings
@given(st.dictionaries(names, arrays, max_size=5),
       st.dictionaries(names, st.text(max_size=20), max_size=3))
def test_round_trip_is_exact_for_any_shape_and_dtype(tmp_path, tensors, metadata):
    path = tmp_path / "t.safetensors"
    serialization.save(tensors, path, metadata=metadata)
    loaded = serialization.load(path)
    assert list(sorted(loaded)) == sorted(tensors)
    for key, arr in tensors.items():
        got = loaded[key]
        assert isinstance(got, mg.Tensor) and got.dtype == arr.dtype and got.shape == arr.shape
        assert got.array.tobytes() == arr.tobytes()           # bit for bit (NaNs included)
        assert got.array.flags.writeable
    assert serialization.load_metadata(path) == metadata


@tmp_settings
@given(st.lists(st.integers(1, 5), min_size=1, max_size=3), st.sampled_from(["float32", "float64"]),
       st.sampled_from(["AdamW", "SGD"]), st.integers(0, 3))
def test_model_and_optimizer_state_round_trip_exactly(tmp_path, sizes, dtype, opt_name, steps):
    mg.manual_seed(len(sizes))
    dims = [3] + sizes
    layers = []
    for a, b in zip(dims, dims[1:]):
        layers += [nn.Linear(a, b, dtype=dtype), nn.Tanh()]
    model = nn.Sequential(*layers, nn.LayerNorm(dims[-1], dtype=dtype))
    opt = (optim.AdamW(optim.weight_decay_groups(model.named_parameters(), 0.1), lr=0.01)
           if opt_name == "AdamW" else optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    x = mg.randn(4, 3, dtype=dtype)
    for _ in range(steps):
        opt.zero_grad()
        (model(x) ** 2).mean().backward()
        opt.step()
    serialization.save(model.state_dict(), tmp_path / "m.safetensors",
                       metadata={"config": json.dumps({"dims": dims})})
    serialization.save_optimizer_state(opt.state_dict(), tmp_path / "o.safetensors")

    loaded = serialization.load(tmp_path / "m.safetensors")
    for key, t in model.state_dict().items():
        assert loaded[key].dtype == t.dtype
        np.testing.assert_array_equal(loaded[key].array, t.array)
    assert json.loads(serialization.load_metadata(tmp_path / "m.safetensors")["config"]) == \
        {"dims": dims}
    sd = serialization.load_optimizer_state(tmp_path / "o.safetensors")
    want = opt.state_dict()
    assert sd["param_groups"] == json.loads(json.dumps(want["param_groups"]))
    assert sorted(sd["state"]) == sorted(want["state"])
    for i, state in want["state"].items():
        assert set(sd["state"][i]) == set(state)
        for k, v in state.items():
            if hasattr(v, "shape"):
                assert sd["state"][i][k].dtype == v.dtype
                np.testing.assert_array_equal(sd["state"][i][k], v)
            else:
                assert sd["state"][i][k] == v
    opt.load_state_dict(sd)                  # what came back from disk loads as it was
    assert opt.param_groups[0].get("betas", (0.9, 0.999)) == (0.9, 0.999)   # a tuple again


def test_resume_from_files_continues_like_an_uninterrupted_run(tmp_path):
    def build():
        mg.manual_seed(0)
        model = nn.Sequential(nn.Linear(3, 8), nn.GELU(), nn.Linear(8, 2))
        return model, optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.1)

    x, y = mg.randn(16, 3), np.arange(16) % 2

    def train(model, opt, n):
        for _ in range(n):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()

    model, opt = build()
    train(model, opt, 6)
    model_a, opt_a = build()
    train(model_a, opt_a, 3)
    serialization.save(model_a.state_dict(), tmp_path / "ckpt.safetensors")
    serialization.save_optimizer_state(opt_a.state_dict(), tmp_path / "opt.safetensors")
    model_b, opt_b = build()
    model_b.load_state_dict(serialization.load(tmp_path / "ckpt.safetensors"))
    opt_b.load_state_dict(serialization.load_optimizer_state(tmp_path / "opt.safetensors"))
    train(model_b, opt_b, 3)
    for (k, a), b in zip(model.state_dict().items(), model_b.state_dict().values()):
        np.testing.assert_array_equal(a.array, b.array, err_msg=k)


def test_save_accepts_tensors_views_big_endian_and_tied_weights(tmp_path):
    base = np.arange(24, dtype=np.float64).reshape(4, 6)
    tensors = {"view": base[:, ::2], "T": base.T, "be": base.astype(">f4"),
               "tensor": mg.tensor(base, dtype="float64"), "param": nn.Parameter(base)}
    serialization.save(tensors, tmp_path / "x.safetensors")
    out = serialization.load(tmp_path / "x.safetensors")
    np.testing.assert_array_equal(out["view"].array, base[:, ::2])
    np.testing.assert_array_equal(out["T"].array, base.T)
    np.testing.assert_array_equal(out["be"].array, base.astype(np.float32))
    assert out["param"].dtype == np.float64 and not out["param"].requires_grad
    m = nn.Module()
    m.a, m.b = nn.Linear(2, 3), nn.Linear(2, 3)
    m.b.weight = m.a.weight
    serialization.save(m.state_dict(), tmp_path / "tied.safetensors")
    m2 = nn.Module()
    m2.a, m2.b = nn.Linear(2, 3), nn.Linear(2, 3)
    m2.load_state_dict(serialization.load(tmp_path / "tied.safetensors"))
    np.testing.assert_array_equal(m2.b.weight.array, m.a.weight.array)


def test_save_rejects_bad_input(tmp_path):
    p = tmp_path / "x.safetensors"
    with pytest.raises(TypeError, match="str to str"):
        serialization.save({"a": np.zeros(1)}, p, metadata={"n": 3})
    with pytest.raises(ValueError, match="reserved"):
        serialization.save({"a": np.zeros(1)}, p, metadata={serialization.CHECKSUM_KEY: "0"})
    with pytest.raises(SerializationError, match="'s'.*dtype <U1"):
        serialization.save({"s": np.array(["x"])}, p)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        serialization.save({"a": np.zeros(1)}, tmp_path / "no" / "x.safetensors")
    assert not p.exists()


def test_no_pickle_anywhere():
    root = pathlib.Path(serialization.__file__).parent
    for path in root.rglob("*.py"):
        text = path.read_text()
        assert "import pickle" not in text and "np.load(" not in text, path


# ----------------------------------------------------------------------------- atomic writes
def test_crash_mid_write_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "model.safetensors"
    serialization.save({"w": np.arange(1000.0)}, path, metadata={"v": "1"})
    before = path.read_bytes()

    def crash(f, data):
        f.write(data[: len(data) // 2])
        f.flush()
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(fileio, "_write_all", crash)
    with pytest.raises(OSError, match="simulated"):
        serialization.save({"w": np.zeros(5000)}, path, metadata={"v": "2"})
    assert path.read_bytes() == before
    np.testing.assert_array_equal(serialization.load(path)["w"].array, np.arange(1000.0))
    assert serialization.load_metadata(path) == {"v": "1"}
    assert os.listdir(tmp_path) == ["model.safetensors"]      # the temp file is gone


def test_interrupt_mid_write_cleans_up_too(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"

    def interrupt(f, data):
        f.write(data[:10])
        raise KeyboardInterrupt

    monkeypatch.setattr(fileio, "_write_all", interrupt)
    with pytest.raises(KeyboardInterrupt):
        serialization.save({"w": np.zeros(3)}, path)
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- broken files
@pytest.fixture
def good_file(tmp_path):
    path = tmp_path / "good.safetensors"
    serialization.save({"a": np.arange(6, dtype=np.float32).reshape(2, 3),
                        "b": np.array([7, 8], dtype=np.int64)}, path, metadata={"k": "v"})
    return path


def test_every_truncation_is_a_clear_error(good_file, tmp_path):
    data = good_file.read_bytes()
    bad = tmp_path / "cut.safetensors"
    for cut in range(len(data)):
        bad.write_bytes(data[:cut])
        with pytest.raises(SerializationError, match="cut.safetensors"):
            serialization.load(bad)
    with pytest.raises(SerializationError, match="truncated"):
        serialization.load(bad)


def test_every_single_bit_flip_is_detected(good_file, tmp_path):
    data = bytearray(good_file.read_bytes())
    bad = tmp_path / "flip.safetensors"
    for i in range(len(data)):
        for bit in range(8):
            flipped = bytearray(data)
            flipped[i] ^= 1 << bit
            bad.write_bytes(flipped)
            with pytest.raises(SerializationError, match="flip.safetensors"):
                serialization.load(bad)


_BAD_OFFSETS = b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}'


@pytest.mark.parametrize("content,match", [
    (b"", "shorter than the 8-byte header"),
    (b"hello world, this is a text file", "header length field says"),
    ((2 ** 63).to_bytes(8, "little") + b"{}", "header length field says 9223372036854775808"),
    ((7).to_bytes(8, "little") + b"not json", "not valid JSON"),
    ((2).to_bytes(8, "little") + b"[]", "not an object"),
    (len(_BAD_OFFSETS).to_bytes(8, "little") + _BAD_OFFSETS + b"\0" * 4,
     r"tensor 'a' of dtype F32 and shape \[2\] needs 8 bytes"),
])
def test_foreign_files_are_clear_errors(tmp_path, content, match):
    path = tmp_path / "foreign.bin"
    path.write_bytes(content)
    with pytest.raises(SerializationError, match=match):
        serialization.load(path)
    with pytest.raises(SerializationError, match="foreign.bin"):
        serialization.load(path)


def test_files_from_other_tools_load_without_checksum(tmp_path):
    path = tmp_path / "hf.safetensors"
    safetensors.numpy.save_file({"w": np.ones((2, 2), np.float32)}, str(path),
                                metadata={"format": "np"})
    assert serialization.load(path)["w"].shape == (2, 2)
    assert serialization.load_metadata(path) == {"format": "np"}


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        serialization.load(tmp_path / "nope.safetensors")
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        serialization.load_metadata(tmp_path / "nope.safetensors")


def test_optimizer_state_metadata_is_validated():
    with pytest.raises(SerializationError, match="no 'optimizer' key"):
        serialization.tensors_to_optimizer_state({}, {})
    with pytest.raises(SerializationError, match="unexpected tensor name 'weird'"):
        serialization.tensors_to_optimizer_state(
            {"weird": np.zeros(1)}, {"optimizer": '{"state": {}, "param_groups": []}'})


# ----------------------------------------------------------------------------- devices
@pytest.mark.cuda
@pytest.mark.skipif(not backend.cuda_is_available(), reason="needs CuPy and a GPU")
def test_cuda_tensors_save_from_and_load_to_the_gpu(tmp_path):
    t = mg.randn(3, 4, device="cuda")
    serialization.save({"t": t, "raw": t.array}, tmp_path / "g.safetensors")
    out = serialization.load(tmp_path / "g.safetensors", device="cuda")
    assert out["t"].device == "cuda"
    np.testing.assert_array_equal(out["raw"].numpy(), t.numpy())
    assert serialization.load(tmp_path / "g.safetensors")["t"].device == \
        backend.get_default_device()
