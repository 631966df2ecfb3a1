"""minigpt.trace: every stage of a token's life, read from the real forward pass; the
gradient at every stage, checked against finite differences; the HTML page; the health report."""
import html.parser
import json
import math
import sys
import types

import numpy as np
import pytest

import minigrad as mg
import minigrad.fused as FU
from minigrad import optim
from minigrad.errors import AnomalyError
from minigpt import TokenTrace, health, trace
from minigpt.model import Recorder, record
from minigpt.recording import recorded_names
from minigpt.tokenizer import CharTokenizer
from minigpt.tracing import STAGES, block_graph, stage_names

import minigpt.tracing as T_MOD  # noqa: E402  (minigpt.trace is the function)
from trace_models import TEXT, tiny

PROMPT = "the cat sat on"


# ----------------------------------------------------------------------------- stages
def test_every_stage_is_present_in_order_with_the_right_shapes(bpe):
    model = tiny(bpe)
    t = trace(model, bpe, PROMPT, max_new_tokens=3, target=True, top=4)
    ids = bpe.encode(PROMPT)
    T, C, nh, hs, V, L = len(ids), 16, 2, 8, bpe.vocab_size, 2
    assert isinstance(t, TokenTrace) and t.n_steps == 3 and len(t.generated) == 3
    per_step = [1, 2, 3, 4, 5] + [6, 7, 8] * L + [9, 10, 11, 12]
    for step in range(3):
        assert [s.number for s in t.stages if s.step == step] == per_step
    assert all(s.name == STAGES[s.number] for s in t.stages)
    assert {s.name for s in t.stages} == set(STAGES.values())

    s1, s2, s3 = t.stage(1), t.stage(2), t.stage(3)
    assert bytes(s1.data["bytes"]) == PROMPT.encode()
    assert s3.data["ids"] == ids == t.prompt_ids
    merges = [m for ch in s2.data["chunks"] for m in ch["merges"]]
    assert merges, "the BPE prompt should need merges"
    for m in merges:
        assert bpe.merges[tuple(m["pair"])] == m["new_id"]
        assert list(bpe.merges).index(tuple(m["pair"])) == m["rank"]
    assert [i for ch in s2.data["chunks"] for i in ch["ids"]] == ids

    assert t.stage(4).data["tok_emb"].shape == (T, C)
    assert t.stage(5).data["pos_emb"].shape == t.stage(5).data["emb"].shape == (T, C)
    for layer in range(L):
        a = t.stage(6, layer=layer).data
        assert a["ln_1"].shape == (T, C) and a["ln_in_std"].shape == (T,)
        assert a["attn.q"].shape == a["attn.k"].shape == a["attn.v"].shape == (nh, T, hs)
        assert a["scores"].shape == a["masked_scores"].shape == a["weights"].shape == (nh, T, T)
        assert np.isneginf(a["masked_scores"][:, 0, 1:]).all()         # the causal mask
        np.testing.assert_allclose(a["weights"].sum(-1), 1.0, rtol=1e-6)   # the op's float32
        f = t.stage(7, layer=layer).data
        assert f["mlp.c_fc"].shape == f["mlp.gelu"].shape == (T, 4 * C)
        r = t.stage(8, layer=layer).data
        assert r["norm_in"].shape == r["norm_after_attn"].shape == r["norm_after_mlp"].shape == (T,)
    lens = t.stage(9).data
    assert lens["resid_norms"].shape == (L + 1, T) and lens["layers"] == ["emb", "h.0", "h.1"]
    assert all(len(e["top"]) == T and len(e["top"][0]) == 4 for e in lens["logit_lens"])
    # the lens of the last block is the model's own prediction
    assert [p[0][0] for p in lens["logit_lens"][-1]["top"]] == t.logits.argmax(-1).tolist()
    assert t.stage(10).data["ln_f"].shape == (T, C)
    assert t.stage(11).data["logits"].shape == (T, V)
    p = t.stage(12).data
    assert p["probs"].shape == (V,) and len(p["top"]) == 4 and p["chosen"] == t.generated[0]

    # a generated token's pass: its own position, attending over the whole context
    g = t.stage(6, step=1, layer=0).data
    assert g["attn.q"].shape == (nh, 1, hs) and g["weights"].shape == (nh, 1, T + 1)
    assert t.stage(3, step=1).data["ids"] == ids + t.generated[:1]
    assert t.stage(11, step=2).data["logits"].shape == (1, V)


def test_character_tokenizer_says_it_has_no_merges():
    tok = CharTokenizer.train(TEXT)
    t = trace(tiny(tok), tok, "the cat", max_new_tokens=0)
    s2 = t.stage(2)
    assert s2.data["kind"] == "char" and "no merges" in s2.summary
    assert all(ch["merges"] == [] for ch in s2.data["chunks"])
    assert t.n_steps == 1 and t.generated == []


# ----------------------------------------------------------------------------- real forward
def test_trace_reads_the_models_real_forward_pass(bpe):
    model = tiny(bpe)
    t = trace(model, bpe, PROMPT, max_new_tokens=0)
    idx = np.array([bpe.encode(PROMPT)])
    np.testing.assert_array_equal(t.logits, model(idx)[0].detach().numpy()[0])
    with Recorder() as rec:
        model(idx)
    for layer in range(2):
        a = t.stage(6, layer=layer).data
        # the weights rebuilt from the recorded q, k are the fused op's: weights @ v = its output
        np.testing.assert_allclose(a["weights"] @ a["attn.v"], a["attn.y"], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(a["attn.q"], rec[f"h.{layer}.attn.q"].detach().numpy()[0])
        # q really is c_attn(ln_1(x)) split into heads
        q = model.transformer.h[layer].attn.c_attn(rec[f"h.{layer}.ln_1"]).detach().numpy()
        q = q[0, :, :16]
        np.testing.assert_allclose(a["attn.q"], q.reshape(-1, 2, 8).transpose(1, 0, 2),
                                   rtol=1e-6, atol=1e-7)


def test_trace_generates_what_generate_generates(bpe):
    model = tiny(bpe)
    idx = np.array([bpe.encode(PROMPT)])
    for kw in (dict(temperature=0.0), dict(temperature=1.0, top_k=5, seed=3),
               dict(temperature=0.8, top_p=0.9, seed=11)):
        t = trace(model, bpe, PROMPT, max_new_tokens=4, **kw)
        assert t.generated == model.generate(idx, 4, **kw).numpy()[0, idx.shape[1]:].tolist()
        assert t.generated_text == bpe.decode(t.generated)
    # past block_size the window slides, as in generate
    t = trace(tiny(bpe, block_size=6), bpe, PROMPT, max_new_tokens=5, temperature=0.0)
    assert len(t.generated) == 5 and t.stage(6, step=4, layer=0).data["weights"].shape[-1] == 6


def test_recorder_is_a_no_op_when_inactive_and_can_override_a_stage(bpe):
    x = mg.tensor([1.0])
    assert record("ln_f", x) is x
    model = tiny(bpe)
    idx = np.array([bpe.encode(PROMPT)])
    base = model(idx)[0].detach().numpy()
    with Recorder(overrides={"h.1.mlp.gelu": lambda t: t * 0}) as rec:
        changed = model(idx)[0].detach().numpy()
    assert not np.allclose(base, changed)
    assert not rec["h.1.mlp.gelu"].detach().numpy().any()
    assert list(rec.tensors) == recorded_names(2)


# ----------------------------------------------------------------------------- backward
def test_recorded_gradients_equal_those_of_backward(bpe):
    model = tiny(bpe)
    ids = bpe.encode(PROMPT)
    t = trace(model, bpe, PROMPT, target=True, check=False)
    assert all(p.grad is None for p in model.parameters())     # the trace leaves no gradient
    targets = np.array([ids[1:] + [-1]])
    _, loss = model(np.array([ids]), targets)
    loss.backward()
    assert t.backward.loss == pytest.approx(loss.item(), rel=1e-6)
    for name, p in model.named_parameters():
        assert t.backward.param_grad_norms[name] == pytest.approx(
            float(np.linalg.norm(p.grad.numpy())), rel=1e-5, abs=1e-9), name
    # wpe reaches the loss only through pos_emb: its gradient rows are the stage's gradient
    np.testing.assert_allclose(t.stage(5).grads["pos_emb"],
                               model.transformer.wpe.weight.grad.numpy()[:len(ids)], rtol=1e-6)
    # dL/dlogits = (softmax - onehot) / n on the positions with a target
    z = t.logits.astype(np.float64)
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    expected = p.copy()
    expected[np.arange(len(ids) - 1), ids[1:]] -= 1
    expected[-1] = 0
    np.testing.assert_allclose(t.stage(11).grads["logits"], expected / (len(ids) - 1), atol=1e-6)
    # gradient x input saliency of each prompt token
    e = t.stage(4)
    np.testing.assert_allclose(t.backward.saliency,
                               (e.grads["tok_emb"] * e.data["tok_emb"]).sum(-1),
                               rtol=1e-5, atol=1e-9)


def test_next_token_targets(bpe):
    model = tiny(bpe)
    ids = bpe.encode(PROMPT)
    nxt = bpe.encode(" the")[0]
    for target in (nxt, " the"):
        t = trace(model, bpe, PROMPT, target=target, check=False)
        assert t.backward.targets.tolist() == [-1] * (len(ids) - 1) + [nxt]
        z = t.logits[-1].astype(np.float64)
        lse = np.log(np.exp(z - z.max()).sum()) + z.max()
        assert t.backward.loss == pytest.approx(lse - z[nxt], rel=1e-5)
        assert t.backward.saliency.shape == (len(ids),)


def test_finite_difference_verdicts_pass_on_a_correct_model_and_catch_a_broken_backward(
        bpe, monkeypatch):
    model = tiny(bpe)
    t = trace(model, bpe, PROMPT, target=True)
    checks = t.backward.checks
    assert list(checks) == stage_names(2)
    assert all(c.ok for c in checks.values()), {n: c.max_abs_error for n, c in checks.items()}
    assert t.backward.first_disagreement is None
    assert t.stage(7, layer=1).checks["mlp.c_fc"].ok
    assert all(c.float32_rel_diff < 1e-3 for c in checks.values())

    right = FU.GeluTanh.backward
    monkeypatch.setattr(FU.GeluTanh, "backward", lambda self, g: right(self, g) * 1.05)
    bad = trace(model, bpe, PROMPT, target=True).backward
    # downstream of the GELU (walking back from the loss) the backward is still right ...
    for name in ("logits", "ln_f", "h.1.resid_mlp", "h.1.mlp.c_proj", "h.1.mlp.gelu"):
        assert bad.checks[name].verdict == "agrees", name
    # ... and from the GELU's input on it is wrong
    for name in ("h.1.mlp.c_fc", "h.1.ln_2", "h.0.mlp.c_fc", "h.0.attn.q", "tok_emb"):
        assert bad.checks[name].verdict == "disagrees", name
    assert bad.first_disagreement == "h.1.mlp.c_fc"
    assert "FIRST DISAGREEMENT walking back: h.1.mlp.c_fc" in trace(
        model, bpe, PROMPT, target=True).report()


def test_anomaly_mode_names_the_op_and_stage_of_an_injected_nan(bpe, monkeypatch):
    model = tiny(bpe)
    idx = np.array([bpe.encode(PROMPT)])
    model.transformer.h[1].mlp.c_fc.weight.array[3, 5] = np.nan
    with mg.detect_anomaly(), pytest.raises(AnomalyError,
                                            match=r"NaN .*forward of Linear \(stage 'h\.1\.mlp'\)"):
        model(idx)
    # backward: the last block's GELU is the first backward to run into it
    model = tiny(bpe)
    monkeypatch.setattr(FU.GeluTanh, "backward", lambda self, g: g * np.inf)
    _, loss = model(idx, idx)
    with mg.detect_anomaly(), pytest.raises(
            AnomalyError, match=r"Inf .*backward of GeluTanh \(stage 'h\.1\.mlp'\)"):
        loss.backward()


def test_block_graph_tags_every_node_with_its_stage(bpe):
    model = tiny(bpe)
    dot = block_graph(model, bpe, PROMPT, layer=1)
    assert dot.startswith("digraph")
    for stage in ("[h.1.ln_1]", "[h.1.attn]", "[h.1.ln_2]", "[h.1.mlp]", "[loss]"):
        assert stage in dot, stage
    for op in ("LayerNorm", "Linear", "Attention", "GeluTanh"):
        assert op in dot, op
    assert "[h.0." not in dot and "|grad|" in dot and "x (h.0.resid_mlp)" in dot
    assert "h.1.mlp.c_fc.weight" in dot
    assert all(p.grad is None for p in model.parameters())


# ----------------------------------------------------------------------------- outputs
class _Sections(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.stages, self.pictures, self.external = [], 0, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "details" and "data-stage" in a:
            self.stages.append(int(a["data-stage"]))
        self.pictures += tag == "svg" or (tag == "img" and a.get("src", "").startswith(
            "data:image/png;base64,"))
        for k in ("src", "href"):
            if a.get(k, "").startswith(("http", "//")):
                self.external.append(a[k])


def test_report_json_and_html(bpe, tmp_path):
    model = tiny(bpe)
    t = trace(model, bpe, PROMPT, max_new_tokens=2, target=True, label="tiny")
    report = t.report()
    for number, name in STAGES.items():
        assert f"{number:>2} {name}" in report
    assert "logit lens" in report and "saliency" in report and "agrees" in report

    d = json.loads(t.to_json(tmp_path / "t.json"))
    assert json.loads((tmp_path / "t.json").read_text()) == d
    assert [s["name"] for s in d["stages"]] == [s.name for s in t.stages]
    assert d["stages"][0]["data"]["bytes"] == list(PROMPT.encode())
    assert d["backward"]["first_disagreement"] is None
    assert None in d["stages"][5]["data"]["masked_scores"][0][0]      # -inf -> null

    page = t.to_html(tmp_path / "t.html")
    parser = _Sections()
    parser.feed(page)
    assert parser.stages == list(range(1, 13))                  # each stage once, in order
    assert parser.pictures > 20 and not parser.external
    assert "The gradient walking back" in page and "attention weights" in page

    other = trace(tiny(bpe, seed=1), bpe, PROMPT, max_new_tokens=2, target=True, label="other")
    both = t.to_html(compare=other)
    parser = _Sections()
    parser.feed(both)
    assert parser.stages == list(range(1, 13)) and 'class="pair"' in both
    assert ">tiny<" in both and ">other<" in both


# ----------------------------------------------------------------------------- command line
def test_command_line_on_a_fresh_model_and_on_checkpoints(bpe, tmp_path, monkeypatch, capsys):
    from minigpt import cli
    out = tmp_path / "fresh"
    assert cli.main(["trace", PROMPT, "--out", str(out), "-n", "2", "--init-vocab", "300",
                     "--init-embd", "16", "--init-heads", "2", "--init-block", "32"]) == 0
    text = capsys.readouterr().out
    assert "12 softmax + next token" in text and "wrote" in text
    assert {"trace.html", "trace.json", "block.dot"} <= {p.name for p in out.iterdir()}
    assert json.loads((out / "trace.json").read_text())["label"] == "freshly initialised"

    models = {"a": tiny(bpe, seed=0), "b": tiny(bpe, seed=1)}
    fake = types.ModuleType("minigpt.sample")
    fake.load_model_and_tokenizer = lambda path: (models[str(path)], bpe, {})
    monkeypatch.setitem(sys.modules, "minigpt.sample", fake)
    out = tmp_path / "cmp"
    assert T_MOD.main(["--ckpt", "a", "--compare", "b", PROMPT, "--out", str(out), "-q",
                       "--target", " the", "--no-check"]) == 0
    page = (out / "trace.html").read_text()
    assert page.count('class="pair"') > 10 and (out / "trace_compare.json").exists()


def test_command_line_reads_real_checkpoints(bpe, tmp_path, capsys):
    from minigpt.checkpoint import save_checkpoint
    bpe.save(tmp_path / "tok.txt")
    text = (tmp_path / "tok.txt").read_text(encoding="utf-8")
    for name, seed in (("before", 0), ("after", 1)):
        save_checkpoint(tmp_path / name / "ckpt.safetensors", tiny(bpe, seed=seed), step=seed,
                        train_config={}, tokenizer_text=text)
    out = tmp_path / "out"
    assert T_MOD.main(["--ckpt", str(tmp_path / "before"), "--compare", str(tmp_path / "after"),
                       PROMPT, "--out", str(out), "-n", "1", "--no-check"]) == 0
    d = json.loads((out / "trace.json").read_text())
    logits = next(s for s in d["stages"] if s["number"] == 11)["data"]["logits"]
    assert np.array(logits).shape == (len(bpe.encode(PROMPT)), bpe.vocab_size)
    assert d["label"].endswith("before") and "12 softmax + next token" in capsys.readouterr().out


# ----------------------------------------------------------------------------- health
def test_layer_health_after_an_sgd_step(bpe):
    model = tiny(bpe)
    idx = np.array([bpe.encode(PROMPT)])
    targets = np.roll(idx, -1, axis=1)
    opt = optim.SGD(model.parameters(), lr=0.1)
    monitor = health.HealthMonitor(model, every=2)
    reports = {}
    for step in range(3):
        with monitor.watch(step):
            _, loss = model(idx, targets)
        loss.backward()
        monitor.before_update(step)
        if step == 2:
            grads = {n: p.grad.numpy().astype(np.float64) for n, p in model.named_parameters()}
            acts = monitor._recorder
        opt.step()
        reports[step] = monitor.after_update(step)
        opt.zero_grad()
    assert reports[1] is None and reports[0] is not None
    rows = {r["layer"]: r for r in reports[2]}
    assert list(rows) == ["emb", "h.0", "h.1", "ln_f"]
    h0 = [g for n, g in grads.items() if n.startswith("transformer.h.0.")]
    grad_norm = math.sqrt(sum((g ** 2).sum() for g in h0))
    assert rows["h.0"]["grad_norm"] == pytest.approx(grad_norm, rel=1e-6)
    assert rows["h.0"]["update_norm"] == pytest.approx(0.1 * grad_norm, rel=1e-4)   # plain SGD
    assert 0 < rows["h.0"]["update_ratio"] < 1
    out = acts["h.1.resid_mlp"].detach().numpy()
    assert rows["h.1"]["act_mean"] == pytest.approx(out.mean(), rel=1e-6)
    assert rows["h.1"]["act_std"] == pytest.approx(out.std(), rel=1e-6)
    table = health.format_health(reports[2], step=2)
    assert "step 2" in table and "update/param" in table and "h.1" in table

    # without a monitor: activations from a batch, no update yet
    rows = health.layer_health(model, batch=idx)
    assert rows[0]["act_std"] > 0 and rows[0]["update_ratio"] is None
    assert rows[0]["grad_norm"] is None
    before = health.snapshot(model)
    assert health.layer_health(model, params_before=before)[1]["update_norm"] == 0.0

