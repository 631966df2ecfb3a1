"""minigpt.model: shapes, causality, cached == uncached generation, whole-model
gradients, overfitting, GPT-2 interoperability."""
import math

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings

import minigrad as mg
from minigrad import optim
from minigrad.errors import DTypeError, IndexRangeError, ShapeError
from minigpt.errors import ConfigError
from minigpt.model import GPT, GPTConfig, filter_logits


def tiny(**kw):
    base = dict(vocab_size=17, block_size=8, n_layer=2, n_head=2, n_embd=8)
    base.update(kw)
    return GPTConfig(**base)


configs = st.builds(
    lambda v, b, l, h, hs: GPTConfig(vocab_size=v, block_size=b, n_layer=l, n_head=h,
                                     n_embd=h * hs),
    st.integers(5, 40), st.integers(2, 10), st.integers(1, 2), st.integers(1, 3),
    st.integers(1, 4))


def test_shapes_and_initial_loss_near_ln_vocab():
    mg.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=101, block_size=16, n_layer=2, n_head=4, n_embd=32))
    rng = np.random.default_rng(0)
    idx, targets = rng.integers(0, 101, (4, 16)), rng.integers(0, 101, (4, 16))
    logits, loss = model(idx, targets)
    assert logits.shape == (4, 16, 101)
    assert abs(loss.item() - math.log(101)) < 0.15
    assert model(idx)[1] is None


def test_gpt2_names_tying_and_init():
    model = GPT(tiny(n_layer=3))
    names = dict(model.named_parameters())
    for n in ("transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.ln_1.weight",
              "transformer.h.2.attn.c_attn.weight", "transformer.h.1.attn.c_proj.bias",
              "transformer.h.0.ln_2.bias", "transformer.h.0.mlp.c_fc.weight",
              "transformer.h.0.mlp.c_proj.weight", "transformer.ln_f.weight"):
        assert n in names, n
    assert model.lm_head.weight is model.transformer.wte.weight
    assert "lm_head.weight" in model.state_dict()
    assert names["transformer.h.0.mlp.c_fc.weight"].shape == (32, 8)     # 4x width


def test_gpt2_init_statistics():
    mg.manual_seed(1)
    model = GPT(GPTConfig(vocab_size=500, block_size=64, n_layer=4, n_head=4, n_embd=128))
    sd = {k: v.numpy() for k, v in model.state_dict().items()}
    assert abs(sd["transformer.wte.weight"].std() - 0.02) < 1e-3
    assert abs(sd["transformer.h.0.mlp.c_proj.weight"].std() - 0.02 / math.sqrt(8)) < 5e-4
    assert not sd["transformer.h.0.attn.c_attn.bias"].any()
    assert (sd["transformer.ln_f.weight"] == 1).all()


def test_parameter_count_and_flops():
    cfg = GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128)
    model = GPT(cfg)
    c, v, t, l = 128, 65, 64, 4
    per_block = 2 * 2 * c + (3 * c * c + 3 * c) + (c * c + c) + (4 * c * c + 4 * c) + (4 * c * c + c)
    total = v * c + t * c + l * per_block + 2 * c
    assert model.get_num_params(non_embedding=False) == total
    assert model.get_num_params() == total - t * c
    assert model.flops_per_token() == 6 * (total - t * c) + 12 * l * c * t


@settings(max_examples=10)
@given(cfg=configs, data=st.data())
def test_causality(cfg, data):
    mg.manual_seed(0)
    model = GPT(cfg, dtype="float64")
    T = cfg.block_size
    idx = np.array([data.draw(st.lists(st.integers(0, cfg.vocab_size - 1), min_size=T,
                                       max_size=T))])
    t = data.draw(st.integers(0, T - 1))
    changed = idx.copy()
    changed[0, t + 1:] = (changed[0, t + 1:] + 1) % cfg.vocab_size
    a, b = model(idx)[0].detach().numpy(), model(changed)[0].detach().numpy()
    np.testing.assert_allclose(a[:, :t + 1], b[:, :t + 1], rtol=1e-12, atol=1e-12)


@settings(max_examples=10)
@given(cfg=configs, data=st.data(), seed=st.integers(0, 1000))
def test_cached_generation_equals_uncached(cfg, data, seed):
    mg.manual_seed(seed)
    model = GPT(cfg)
    T = data.draw(st.integers(1, cfg.block_size))
    prompt = np.array(data.draw(st.lists(st.lists(st.integers(0, cfg.vocab_size - 1),
                                                  min_size=T, max_size=T),
                                         min_size=1, max_size=2)))
    n_new = data.draw(st.integers(1, 2 * cfg.block_size))   # runs past block_size
    kw = dict(temperature=data.draw(st.sampled_from([0.0, 0.8, 1.0])),
              top_k=data.draw(st.sampled_from([None, 3])), seed=seed)
    cached = list(model.generate_steps(prompt, n_new, use_cache=True, **kw))
    plain = list(model.generate_steps(prompt, n_new, use_cache=False, **kw))
    assert len(cached) == len(plain) == n_new
    for (tok_c, log_c), (tok_p, log_p) in zip(cached, plain):
        np.testing.assert_allclose(log_c, log_p, rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(tok_c, tok_p)


def test_whole_model_gradients_agree_with_gradcheck():
    mg.manual_seed(3)
    model = GPT(tiny(vocab_size=7, block_size=4, n_embd=4, n_head=2), dtype="float64")
    rng = np.random.default_rng(0)
    idx, targets = rng.integers(0, 7, (2, 4)), rng.integers(0, 7, (2, 4))
    params = dict(model.named_parameters())
    sampled = [params[n] for n in ("transformer.wte.weight", "transformer.wpe.weight",
                                   "transformer.h.0.attn.c_attn.weight",
                                   "transformer.h.1.mlp.c_fc.bias", "transformer.h.1.ln_2.weight",
                                   "transformer.ln_f.bias")]
    result = mg.gradcheck(lambda *ps: model(idx, targets)[1], sampled, atol=1e-7, rtol=1e-5)
    assert result.ok


def test_overfits_one_batch():
    mg.manual_seed(0)
    model = GPT(tiny(vocab_size=20, block_size=8, n_layer=2, n_head=2, n_embd=32))
    rng = np.random.default_rng(0)
    idx, targets = rng.integers(0, 20, (4, 8)), rng.integers(0, 20, (4, 8))
    opt = optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    for _ in range(300):
        _, loss = model(idx, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05


def test_greedy_generation_and_eos():
    mg.manual_seed(0)
    model = GPT(tiny())
    prompt = np.array([[1, 2, 3]])
    out = model.generate(prompt, 5, temperature=0)
    logits, _ = model(prompt)
    assert out.shape == (1, 8) and \
        out.detach().numpy()[0, 3] == logits.detach().numpy()[0, -1].argmax()
    first = int(out.numpy()[0, 3])
    stopped = model.generate(prompt, 5, temperature=0, eos_token_id=first)
    assert stopped.shape == (1, 4)
    a = model.generate(prompt, 6, seed=7).numpy()
    assert (a == model.generate(prompt, 6, seed=7).numpy()).all()


def test_top_k_and_top_p_filters():
    z = np.log(np.array([[0.5, 0.3, 0.15, 0.05]]))
    np.testing.assert_allclose(filter_logits(z, top_k=2), [[0.625, 0.375, 0, 0]])
    np.testing.assert_allclose(filter_logits(z, top_p=0.7), [[0.625, 0.375, 0, 0]])
    np.testing.assert_allclose(filter_logits(z, top_p=0.8), [[0.5, 0.3, 0.15, 0]] /
                               np.float64(0.95))
    np.testing.assert_allclose(filter_logits(z, top_p=0.1), [[1, 0, 0, 0]])
    np.testing.assert_allclose(filter_logits(z, temperature=1.0), [[0.5, 0.3, 0.15, 0.05]])


def test_bad_input_errors():
    with pytest.raises(ConfigError, match=r"n_embd \(10\) must be divisible by n_head \(3\)"):
        GPTConfig(n_embd=10, n_head=3)
    with pytest.raises(ConfigError, match="n_layer must be a positive int, got 0"):
        GPTConfig(n_layer=0)
    with pytest.raises(ConfigError, match="unknown keys"):
        GPTConfig.from_dict({"n_layers": 2})
    model = GPT(tiny())
    with pytest.raises(ShapeError, match="sequence length 9 exceeds block_size 8"):
        model(np.zeros((1, 9), dtype=np.int64))
    with pytest.raises(IndexRangeError,
                       match=r"token id 17 is outside the vocabulary \(vocab_size 17\)"):
        model(np.array([[1, 17]]))
    with pytest.raises(DTypeError, match="integer token ids, got dtype float64"):
        model(np.array([[1.0]]))
    with pytest.raises(ShapeError, match=r"idx must have shape \(B, T\), got \(3,\)"):
        model(np.array([1, 2, 3]))
    with pytest.raises(ConfigError, match=r"generate: top_p must be a number in \(0, 1\]"):
        model.generate(np.array([[1]]), 2, top_p=1.5)


def test_generate_uses_the_one_sampling_check_at_the_call():
    """generate, generate_steps, sample and trace share minigpt.sampling's check: inf is no
    temperature, and a generator reports a bad setting when it is made, not when first read."""
    from minigpt import sample as sample_mod, trace
    from minigpt.tokenizer import CharTokenizer
    model = GPT(tiny())
    for call in (lambda: model.generate([[1]], 2, temperature=math.inf),
                 lambda: model.generate_steps([[1]], 2, temperature=math.inf)):
        with pytest.raises(ConfigError, match="generate: temperature must be a finite number"):
            call()
    tok = CharTokenizer.train("abcdefghijklmnopq")
    with pytest.raises(ConfigError, match="^sample: temperature must be a finite number"):
        sample_mod.sample(model, tok, "ab", temperature=math.inf)
    with pytest.raises(ConfigError, match="^trace: temperature must be a finite number"):
        trace(model, tok, "ab", temperature=math.inf)


def test_one_attention_path_whatever_is_active():
    """Training, a Recorder and a KV cache run the same fused attention op: recording
    changes no bit of the logits or the gradients, and the cache's pass gives the logits of
    the whole sequence's."""
    from minigpt.model import KVCache, Recorder
    mg.manual_seed(0)
    model = GPT(tiny(n_layer=2, n_head=2, n_embd=8, block_size=8))
    idx = np.random.default_rng(0).integers(0, 17, (2, 6))
    logits, loss = model(idx, idx)
    loss.backward()
    plain = [p.grad.numpy().copy() for p in model.parameters()]
    model.zero_grad()
    with Recorder(retain_grad=True) as rec:
        rec_logits, rec_loss = model(idx, idx)
    rec_loss.backward()
    np.testing.assert_array_equal(rec_logits.detach().numpy(), logits.detach().numpy())
    for a, p in zip(plain, model.parameters()):
        np.testing.assert_array_equal(p.grad.numpy(), a)
    assert set(rec.intermediates) == {"h.0.attn", "h.1.attn"}
    assert rec["h.1.attn.weights"].shape == (2, 2, 6, 6)
    cache = KVCache(model.config, 2, model.transformer.wte.weight.dtype, "cpu")
    with mg.no_grad():
        first, _ = model(idx[:, :4], cache=cache)
        rest, _ = model(idx[:, 4:], cache=cache)
    whole = model(idx)[0].detach().numpy()
    np.testing.assert_allclose(np.concatenate([first.numpy(), rest.numpy()], 1), whole,
                               rtol=1e-5, atol=1e-6)


def test_generate_steps_leaves_the_callers_grad_mode_alone_between_tokens():
    model = GPT(tiny())
    seen = [mg.is_grad_enabled() for _ in model.generate_steps([[1, 2]], 3, seed=0)]
    assert seen == [True, True, True] and model.training


def test_gpt2_state_dict_round_trip_and_pretrained_folder(tmp_path):
    mg.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, block_size=12, n_layer=2, n_head=2, n_embd=128))
    sd = model.to_gpt2_state_dict()
    assert sd["transformer.h.0.attn.c_attn.weight"].shape == (128, 384)   # Conv1D (in, out)
    sd["transformer.h.0.attn.bias"] = np.tril(np.ones((1, 1, 12, 12)))  # old exports' buffer
    del sd["lm_head.weight"]
    clone = GPT.from_gpt2_state_dict(sd)
    assert clone.config.n_head == 2 and clone.config.n_layer == 2
    idx = np.array([[1, 2, 3, 4]])
    np.testing.assert_array_equal(clone(idx)[0].detach().numpy(), model(idx)[0].detach().numpy())
    model.save_pretrained(tmp_path / "gpt")
    again = GPT.from_pretrained(tmp_path / "gpt")
    np.testing.assert_array_equal(again(idx)[0].detach().numpy(), model(idx)[0].detach().numpy())


def test_matches_huggingface_gpt2():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    hf_cfg = transformers.GPT2Config(vocab_size=97, n_positions=32, n_embd=64, n_layer=2,
                                     n_head=4, resid_pdrop=0, embd_pdrop=0, attn_pdrop=0)
    hf = transformers.GPT2LMHeadModel(hf_cfg).eval()
    sd = {k: v.detach().numpy() for k, v in hf.state_dict().items()}
    model = GPT.from_gpt2_state_dict(sd, n_head=4)
    idx = np.random.default_rng(0).integers(0, 97, (2, 10))
    with torch.no_grad():
        ref = hf(torch.tensor(idx)).logits.numpy()
    np.testing.assert_allclose(model(idx)[0].detach().numpy(), ref, atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        hf_out = hf.generate(torch.tensor(idx[:1, :5]), max_new_tokens=12, do_sample=False,
                             pad_token_id=0)
    ours = model.generate(idx[:1, :5], 12, temperature=0)
    np.testing.assert_array_equal(ours.numpy(), hf_out.numpy())
