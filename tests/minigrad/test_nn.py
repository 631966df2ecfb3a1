"""minigrad.nn: registration, names, tying, state dicts, devices, layers, init, training."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad as mg
import minigrad.functional as F
from minigrad import backend, nn, optim
from minigrad.errors import DTypeError


def T(array):
    array = np.asarray(array)
    return mg.tensor(array, dtype=array.dtype)


class Attn(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.c_attn = nn.Linear(n, 3 * n)
        self.c_proj = nn.Linear(n, n)


class Block(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n)
        self.attn = Attn(n)


class TinyGPT(nn.Module):
    def __init__(self, vocab=11, n=4, n_layer=2):
        super().__init__()
        self.wte = nn.Embedding(vocab, n)
        self.h = nn.ModuleList([Block(n) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n)
        self.lm_head = nn.Linear(n, vocab, bias=False)
        self.lm_head.weight = self.wte.weight      # weight tying
        self.register_buffer("mask", mg.ones(3, 3))
        self.register_buffer("scratch", mg.zeros(2), persistent=False)

    def forward(self, idx):
        x = self.wte(idx)
        for block in self.h:
            x = x + block.attn.c_proj(block.ln_1(x))
        return self.lm_head(self.ln_f(x))


# ----------------------------------------------------------------------------- registration
def test_named_parameters_use_dotted_paths_and_tied_weights_appear_once():
    mg.manual_seed(0)
    m = TinyGPT()
    names = [n for n, _ in m.named_parameters()]
    assert names[:3] == ["wte.weight", "h.0.ln_1.weight", "h.0.ln_1.bias"]
    assert "h.1.attn.c_attn.weight" in names and "lm_head.weight" not in names
    assert len(list(m.parameters())) == len(names) == len({id(p) for p in m.parameters()})
    assert m.lm_head.weight is m.wte.weight
    sd = m.state_dict()
    assert "lm_head.weight" in sd and "wte.weight" in sd          # torch lists both names
    assert "mask" in sd and "scratch" not in sd                    # persistent buffers only
    assert m.num_parameters() == sum(p.array.size for p in m.parameters())
    assert m.num_parameters() == 11 * 4 + 2 * (4 + 4 + 4 * 12 + 12 + 16 + 4) + 4 + 4
    assert isinstance(m.h[1].attn, Attn) and m.get_submodule("h.1.attn") is m.h[1].attn
    assert [n for n, _ in m.named_modules()][:4] == ["", "wte", "h", "h.0"]
    assert [n for n, _ in m.named_buffers()] == ["mask", "scratch"]


def test_setattr_rules():
    m = nn.Module()
    m.w = nn.Parameter(np.zeros(2))
    assert "w" in m._parameters and "w" not in m.__dict__
    with pytest.raises(TypeError, match="cannot assign ndarray as parameter 'w'"):
        m.w = np.zeros(2)
    m.w = None
    assert list(m.parameters()) == []
    m.sub = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="child module 'sub'"):
        m.sub = 3
    del m.sub
    assert list(m.children()) == []
    with pytest.raises(AttributeError, match="'Module' object has no attribute 'nope'"):
        m.nope
    with pytest.raises(KeyError, match="contain"):
        m.register_buffer("a.b", mg.zeros(1))

    class Early(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.zeros(1))

    with pytest.raises(AttributeError, match="before Module.__init__"):
        Early()
    with pytest.raises(NotImplementedError, match="forward"):
        nn.Module()(1)


def test_parameter_is_a_tensor_that_requires_grad():
    p = nn.Parameter(np.arange(3.0))
    assert isinstance(p, mg.Tensor) and p.requires_grad and p.dtype == np.float64
    t = mg.zeros(2)
    q = nn.Parameter(t)
    assert q.array is t.array                       # shares memory, like torch
    assert repr(q).startswith("Parameter containing:")
    assert not nn.Parameter(np.zeros(2), requires_grad=False).requires_grad
    with pytest.raises(DTypeError):
        nn.Parameter(np.arange(3))


def test_train_eval_and_dropout():
    m = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5))
    assert m.training and m[1].training
    assert m.eval() is m and not m[1].training
    x = mg.randn(4, 3)
    np.testing.assert_array_equal(m[1](x).array, x.array)         # identity in eval
    m.train()
    y = m[1](mg.ones(1000)).array
    assert set(np.unique(y)) <= {0.0, 2.0} and 0.4 < (y == 0).mean() < 0.6
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(1.5)


def test_zero_grad():
    m = nn.Linear(2, 2)
    F.linear(mg.ones(1, 2), m.weight, m.bias).sum().backward()
    assert m.weight.grad is not None
    m.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(m.weight.grad.array, 0)
    m.zero_grad()
    assert m.weight.grad is None and m.bias.grad is None


# ----------------------------------------------------------------------------- state dict
def test_state_dict_round_trip_copies_in_place():
    mg.manual_seed(1)
    a, b = TinyGPT(), TinyGPT()
    weight = b.h[0].attn.c_attn.weight
    keys = b.load_state_dict(a.state_dict())
    assert keys == ([], [])
    assert b.h[0].attn.c_attn.weight is weight                  # same Parameter, new values
    for (na, pa), (nb, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert na == nb
        np.testing.assert_array_equal(pa.array, pb.array)
    # values share memory with the parameters (as in torch)
    sd = a.state_dict()
    assert sd["ln_f.weight"].array is a.ln_f.weight.array and not sd["ln_f.weight"].requires_grad


def test_load_state_dict_errors_name_keys_and_shapes():
    m = nn.Sequential(nn.Linear(3, 2), nn.LayerNorm(2))
    sd = dict(m.state_dict())
    before = m[0].weight.array.copy()
    bad = {**sd, "0.weight": np.ones((3, 2), np.float32)}
    with pytest.raises(nn.StateDictError,
                       match=r"size mismatch for 0\.weight: copying a param with shape \(3, 2\) "
                             r"from checkpoint, the shape in current model is \(2, 3\)"):
        m.load_state_dict(bad)
    np.testing.assert_array_equal(m[0].weight.array, before)     # nothing copied
    missing = {k: v for k, v in sd.items() if k != "1.bias"}
    with pytest.raises(nn.StateDictError, match=r'Missing key\(s\) in state_dict: "1\.bias"'):
        m.load_state_dict(missing)
    with pytest.raises(RuntimeError, match=r'Unexpected key\(s\) in state_dict: "extra"'):
        m.load_state_dict({**sd, "extra": np.zeros(1)})
    keys = m.load_state_dict({**missing, "extra": np.zeros(1)}, strict=False)
    assert keys.missing_keys == ["1.bias"] and keys.unexpected_keys == ["extra"]
    with pytest.raises(nn.StateDictError, match="size mismatch"):
        m.load_state_dict(bad, strict=False)                     # shapes are always checked


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=3),
       st.lists(st.integers(1, 4), min_size=1, max_size=3))
def test_load_state_dict_rejects_any_wrong_shape(shape, wrong):
    m = nn.Module()
    m.w = nn.Parameter(np.zeros(shape))
    if tuple(shape) == tuple(wrong):
        m.load_state_dict({"w": np.ones(wrong)})
        assert (m.w.array == 1).all()
    else:
        with pytest.raises(nn.StateDictError, match=rf"w: .*{tuple(wrong)}.*{tuple(shape)}"):
            m.load_state_dict({"w": np.ones(wrong)})


def test_load_state_dict_casts_dtype_and_accepts_tensors():
    m = nn.Linear(2, 2)
    m.load_state_dict({"weight": T(np.eye(2)), "bias": np.array([1, 2])})
    assert m.weight.dtype == np.float32 and m.bias.array.tolist() == [1.0, 2.0]


# ----------------------------------------------------------------------------- repr
def test_repr_tree_with_parameter_counts_and_folded_blocks():
    m = nn.Sequential(nn.Linear(2, 16), nn.GELU(approximate="tanh"), nn.Linear(16, 2))
    assert repr(m) == (
        "Sequential(  # 82 parameters\n"
        "  (0): Linear(in_features=2, out_features=16, bias=True)  # 48 parameters\n"
        "  (1): GELU(approximate='tanh')\n"
        "  (2): Linear(in_features=16, out_features=2, bias=True)  # 34 parameters\n"
        ")")
    text = repr(TinyGPT(n_layer=3))
    assert "(h): ModuleList(  # " in text and "(0-2): 3 x Block(  # 88 parameters" in text
    assert "(wte): Embedding(11, 4)  # 44 parameters" in text
    assert "LayerNorm((4,), eps=1e-05, elementwise_affine=True)" in text


# ----------------------------------------------------------------------------- layers & init
def test_same_seed_gives_identical_model_bits():
    def build(seed):
        mg.manual_seed(seed)
        return TinyGPT(vocab=50, n=8)

    a, b, c = build(3), build(3), build(4)
    for (name, pa), pb, pc in zip(a.state_dict().items(), b.state_dict().values(),
                                  c.state_dict().values()):
        assert pa.array.tobytes() == pb.array.tobytes(), name
        if "ln" not in name and name != "mask":
            assert pa.array.tobytes() != pc.array.tobytes(), name


def test_linear_init_shapes_and_forward():
    mg.manual_seed(0)
    lin = nn.Linear(400, 30, dtype="float64")
    assert lin.weight.shape == (30, 400) and lin.bias.shape == (30,)
    assert lin.weight.dtype == np.float64
    bound = 1 / np.sqrt(400)
    w = lin.weight.array
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert abs(w.mean()) < 0.01 * bound * 10
    x = T(np.random.default_rng(0).standard_normal((5, 400)))
    np.testing.assert_allclose(lin(x).array, x.array @ w.T + lin.bias.array, rtol=1e-12)
    assert nn.Linear(3, 2, bias=False).bias is None
    assert [n for n, _ in nn.Linear(3, 2, bias=False).named_parameters()] == ["weight"]


def test_embedding_layernorm_and_activations():
    mg.manual_seed(0)
    emb = nn.Embedding(1000, 64)
    w = emb.weight.array
    assert emb.weight.shape == (1000, 64) and abs(w.mean()) < 0.02 and abs(w.std() - 1) < 0.02
    idx = np.array([[1, 5], [5, 999]])
    np.testing.assert_array_equal(emb(idx).array, w[idx])
    ln = nn.LayerNorm(64)
    assert ln.eps == 1e-5 and (ln.weight.array == 1).all() and (ln.bias.array == 0).all()
    y = ln(emb(idx)).array
    np.testing.assert_allclose(y.mean(-1), 0, atol=1e-5)
    assert nn.LayerNorm(4, elementwise_affine=False).weight is None
    assert nn.LayerNorm(4, bias=False).bias is None
    x = T(np.linspace(-3, 3, 7))
    np.testing.assert_allclose(nn.ReLU()(x).array, np.maximum(x.array, 0))
    np.testing.assert_allclose(nn.Tanh()(x).array, np.tanh(x.array), rtol=1e-12)
    assert nn.Identity(1, k=2)(x) is x
    np.testing.assert_allclose(nn.GELU()(x).array, F.gelu(x).array)


def test_layers_match_torch():
    torch = pytest.importorskip("torch")
    mg.manual_seed(0)
    ours = nn.Sequential(nn.Linear(5, 7, dtype="float64"), nn.GELU(),
                         nn.LayerNorm(7, dtype="float64"), nn.Linear(7, 3, dtype="float64"))
    theirs = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.GELU(), torch.nn.LayerNorm(7),
                                 torch.nn.Linear(7, 3)).double()
    theirs.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in ours.state_dict().items()})
    assert list(theirs.state_dict()) == list(ours.state_dict())
    x = np.random.default_rng(0).standard_normal((4, 5))
    np.testing.assert_allclose(ours(T(x)).array, theirs(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-10, atol=1e-12)


def test_init_functions_modify_in_place():
    t = mg.zeros(3, 4)
    array = t.array
    assert nn.init.constant_(t, 2.5) is t and (t.array == 2.5).all() and t.array is array
    nn.init.ones_(t)
    assert (t.array == 1).all()
    nn.init.zeros_(t)
    assert (t.array == 0).all()
    nn.init.uniform_(t, -2, -1)
    assert t.array is array and (t.array >= -2).all() and (t.array < -1).all()
    big = mg.zeros(200, 300)
    nn.init.normal_(big, mean=3.0, std=0.02)
    assert abs(big.array.mean() - 3) < 1e-3 and abs(big.array.std() - 0.02) < 1e-3
    nn.init.xavier_uniform_(big)
    assert np.abs(big.array).max() <= np.sqrt(6 / 500)
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        nn.init.xavier_normal_(mg.zeros(3))


def test_containers():
    layers = [nn.Linear(2, 2) for _ in range(3)]
    ml = nn.ModuleList(layers[:2])
    ml.append(layers[2])
    assert len(ml) == 3 and ml[-1] is layers[2] and list(ml) == layers
    assert [n for n, _ in ml.named_parameters()][:2] == ["0.weight", "0.bias"]
    ml.insert(0, nn.Identity())
    assert isinstance(ml[0], nn.Identity) and ml[1] is layers[0]
    del ml[0]
    assert list(ml) == layers and isinstance(ml[1:], nn.ModuleList)
    with pytest.raises(IndexError, match="out of range"):
        ml[3]
    seq = nn.Sequential(*layers)
    assert len(seq[:2]) == 2 and seq[1] is layers[1]
    x = mg.ones(1, 2)
    np.testing.assert_allclose(seq(x).array, layers[2](layers[1](layers[0](x))).array)
    md = nn.ModuleDict({"a": layers[0]})
    md["b"] = layers[1]
    assert list(md) == ["a", "b"] and "b" in md and md["a"] is layers[0]
    assert [n for n, _ in md.named_parameters()] == ["a.weight", "a.bias", "b.weight", "b.bias"]


def test_apply_and_requires_grad_():
    m = TinyGPT()

    def init(mod):
        if isinstance(mod, nn.Linear):
            nn.init.zeros_(mod.weight)

    m.apply(init)
    assert (m.h[0].attn.c_attn.weight.array == 0).all()
    m.requires_grad_(False)
    assert not any(p.requires_grad for p in m.parameters())
    assert m.num_parameters(only_trainable=True) == 0


def test_to_dtype_casts_parameters_in_place():
    m = TinyGPT()
    p = m.wte.weight
    opt = optim.Adam(m.parameters(), lr=1e-3)
    m.double()
    assert p is m.wte.weight and p.dtype == np.float64 and m.mask.dtype == np.float64
    assert m.to("float32") is m and p.dtype == np.float32
    with pytest.raises(TypeError, match="floating point"):
        m.to(dtype="int64")
    assert opt.param_groups[0]["params"][0] is p


# ----------------------------------------------------------------------------- training
def test_mlp_learns_xor_to_full_accuracy():
    mg.manual_seed(0)
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([0, 1, 1, 0])
    model = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2))
    opt = optim.AdamW(model.parameters(), lr=0.05, weight_decay=0.0)
    for _ in range(200):
        loss = F.cross_entropy(model(mg.tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert (model(mg.tensor(x)).array.argmax(-1) == y).all()
    assert loss.item() < 0.05


def two_moons(n, rng):
    t = rng.uniform(0, np.pi, n)
    upper = np.stack([np.cos(t), np.sin(t)], 1)
    lower = np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1)
    x = np.concatenate([upper, lower]) + rng.normal(0, 0.1, (2 * n, 2))
    return x.astype(np.float32), np.repeat([0, 1], n)


def test_mlp_learns_two_moons_with_groups_clipping_and_schedule():
    mg.manual_seed(0)
    x, y = two_moons(100, np.random.default_rng(0))
    model = nn.Sequential(nn.Linear(2, 32), nn.GELU(), nn.Linear(32, 32), nn.GELU(),
                          nn.Linear(32, 2))
    opt = optim.AdamW(optim.weight_decay_groups(model.named_parameters(), 1e-4), lr=0.03)
    sched = optim.WarmupCosineLR(opt, warmup_steps=20, max_steps=400, min_lr=1e-3)
    xt = mg.tensor(x)
    for _ in range(400):
        loss = F.cross_entropy(model(xt), y)
        opt.zero_grad()
        loss.backward()
        optim.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
    assert (model(xt).array.argmax(-1) == y).mean() == 1.0


# ----------------------------------------------------------------------------- devices
@pytest.mark.cuda
@pytest.mark.skipif(not backend.cuda_is_available(), reason="needs CuPy and a GPU")
def test_module_to_cuda_moves_parameters_grads_buffers_and_optimizer_state():
    mg.manual_seed(0)
    m = TinyGPT()
    opt = optim.AdamW(m.parameters(), lr=1e-2)
    idx = np.array([[1, 2, 3]])
    F.cross_entropy(m(idx)[0], np.array([2, 3, 4])).backward()
    opt.step()                                   # state created on the CPU
    ref = {k: v.numpy().copy() for k, v in m.state_dict().items()}
    p = m.wte.weight
    assert m.to("cuda") is m and p is m.lm_head.weight
    for t in list(m.parameters()) + list(m.buffers()):
        assert t.device == "cuda"
        assert t.grad is None or t.grad.device == "cuda"
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), ref[k])
    opt.step()                                   # state follows the parameters
    for state in opt.state.values():
        assert backend.device_of(state["exp_avg"]) == "cuda"
    # a fresh optimizer creates its state on the GPU; load_state_dict moves saved state there
    opt2 = optim.AdamW(m.parameters(), lr=1e-2)
    sd = {"state": {i: {k: backend.to_numpy(v) if hasattr(v, "shape") else v
                        for k, v in s.items()} for i, s in opt.state_dict()["state"].items()},
          "param_groups": opt.state_dict()["param_groups"]}
    opt2.load_state_dict(sd)
    assert all(backend.device_of(s["exp_avg_sq"]) == "cuda" for s in opt2.state.values())
    m.zero_grad()
    F.cross_entropy(m(idx)[0], np.array([2, 3, 4])).backward()
    opt2.step()
    m.cpu()
    assert all(t.device == "cpu" for t in m.parameters())
