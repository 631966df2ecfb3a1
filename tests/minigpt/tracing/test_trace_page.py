"""The trace page a learner opens: the backward explains the chosen token; pictures carry
legends and shared scales; every stage is there, folded; nothing is loaded from outside; a
character model is not called BPE; the page of the default model stays small and short in a
real browser (headless Chromium), and a much larger model's page degrades gracefully."""
import html.parser
import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from minigpt import trace
from minigpt.tokenizer import CharTokenizer
from minigpt.tracing import fresh_model, main
from minigpt.tracing.figures import Scale, label, pick
from minigpt.tracing.words import entropy

from trace_models import TEXT, tiny

PROMPT = "the cat sat on the"


def _softmax(z):
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max())
    return e / e.sum()


class _Page(html.parser.HTMLParser):
    """What the tests read from a page: the stage sections, the heatmaps, the links."""

    def __init__(self, text):
        super().__init__()
        self.stages, self.open, self.images, self.urls, self.tags = [], [], [], [], set()
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.add(tag)
        if tag == "details" and "data-stage" in a:
            self.stages.append(int(a["data-stage"]))
        if tag == "details" and "open" in a:
            self.open.append(a.get("id"))
        if tag == "img":
            self.images.append(a)
        self.urls += [a[k] for k in ("src", "href") if k in a]


# ----------------------------------------------------------------------------- the backward
def test_default_backward_explains_the_chosen_token(bpe):
    model = tiny(bpe)
    t = trace(model, bpe, PROMPT, max_new_tokens=2, check=False)
    b, chosen = t.backward, t.stage(12).data["chosen"]
    T = len(t.prompt_ids)
    assert b.kind == "chosen" and chosen == t.generated[0]
    assert b.targets.tolist() == [-1] * (T - 1) + [chosen]
    p = _softmax(t.logits[-1])                       # NumPy, from the recorded logits
    assert b.loss == pytest.approx(-np.log(p[chosen]), rel=1e-5)
    expected = p.copy()
    expected[chosen] -= 1                            # d(-log p_c)/dz = softmax - onehot
    g = t.stage(11).grads["logits"]
    np.testing.assert_allclose(g[-1], expected, atol=1e-6)
    assert not g[:-1].any()                          # only the last position has a loss
    # saliency explains that token: every prompt token has a say, through attention
    assert np.all(np.isfinite(b.saliency)) and np.all(b.saliency != 0)
    e = t.stage(4)
    np.testing.assert_allclose(b.saliency, (e.grads["tok_emb"] * e.data["tok_emb"]).sum(-1),
                               rtol=1e-5, atol=1e-9)
    assert "chosen next token" in b.description and "-log p" in b.description


def test_chosen_target_is_checked_by_finite_differences_and_leaves_no_gradient(bpe):
    model = tiny(bpe)
    t = trace(model, bpe, PROMPT, max_new_tokens=0)      # the token it would choose
    assert t.generated == [] and t.backward.kind == "chosen"
    assert t.backward.targets[-1] == t.stage(12).data["chosen"]
    assert t.backward.checks and all(c.ok for c in t.backward.checks.values())
    assert all(p.grad is None for p in model.parameters())
    # the same loss as the model's own forward with that target
    _, loss = model(np.array([t.prompt_ids]), t.backward.targets[None])
    assert t.backward.loss == pytest.approx(loss.item(), rel=1e-6)


def test_the_old_continuation_target_and_forward_only_stay_available(bpe):
    model = tiny(bpe)
    ids = bpe.encode(PROMPT)
    for target in ("continuation", True):
        b = trace(model, bpe, PROMPT, target=target, check=False).backward
        assert b.kind == "continuation" and b.targets.tolist() == ids[1:] + [-1]
    assert trace(model, bpe, PROMPT, target=None).backward is None
    b = trace(model, bpe, PROMPT, target=" the", check=False).backward
    assert b.kind == "token" and b.targets[-1] == bpe.encode(" the")[0]


def test_command_line_targets(bpe, tmp_path, monkeypatch):
    import sys
    import types
    fake = types.ModuleType("minigpt.sample")
    fake.load_model_and_tokenizer = lambda path: (tiny(bpe), bpe, {})
    monkeypatch.setitem(sys.modules, "minigpt.sample", fake)

    def backward(*flags):
        out = tmp_path / "_".join(flags or ("default",)).replace("-", "")
        assert main(["--ckpt", "m", PROMPT, "--out", str(out), "-q", "--no_check", *flags]) == 0
        return json.loads((out / "trace.json").read_text())["backward"]
    b = backward()
    assert b["kind"] == "chosen" and "chosen next token" in b["description"]
    assert backward("--continuation")["kind"] == "continuation"
    assert backward("--target", " the")["targets"][-1] == bpe.encode(" the")[0]
    assert backward("--no_backward") is None


# ----------------------------------------------------------------------------- the page
def test_every_stage_is_in_the_folded_page_with_its_words_and_numbers(bpe):
    t = trace(tiny(bpe), bpe, PROMPT, max_new_tokens=3, check=True)
    page = t.to_html()
    p = _Page(page)
    assert p.stages == list(range(1, 13)) and p.open == []          # all there, all folded
    T, C = len(t.prompt_ids), 16
    # navigation by stage names; the shapes in this model's numbers; the verdicts, plural
    assert '<a href="#stage-6">6 multi-head self-attention</a>' in page
    assert f"({1}, {T}, {C}) is {T} positions, each a {C}-number vector" in page
    assert "(1, 2, {}, 8)".format(T) in page                         # q of 2 heads of 8
    assert "finite differences agree" in page and "finite differences agrees" not in page
    # one summary row per generated step after the first, with its entropy
    steps = re.findall(r'<details class="stage step" data-step="(\d+)"><summary>(.*?)</summary>',
                       page)
    assert [int(s) for s, _ in steps] == [1, 2]
    for s, row in steps:
        d = t.stage(12, step=int(s)).data
        assert f"entropy {entropy(d['probs']):.2f}" in row and f"p {d['chosen_prob']:.3f}" in row
    assert entropy([0.5, 0.5]) == pytest.approx(np.log(2))
    # each array drawn once: the prompt's keys once per layer, never again for a later step;
    # a step draws its own token's row per layer, and its attention over the keys once
    alts = [a["alt"] for a in p.images]
    heads = " (2 heads side by side)"
    assert alts.count("k" + heads) == 2 and alts.count("q" + heads) == 2 + 2  # + steps 1, 2
    assert sum(a.startswith("head ") and "weights" in a for a in alts) == 2 * 2
    assert alts.count("attention weights of this token over the keys it sees") == 2
    assert len(set(im["src"] for im in p.images)) >= len(p.images) - 2


def test_pictures_carry_legends_and_share_their_scales_across_layers(bpe):
    t = trace(tiny(bpe, n_layer=3), bpe, PROMPT, max_new_tokens=1, check=False)
    page = t.to_html()
    imgs = _Page(page).images
    assert imgs and page.count('class="legend"') >= len(imgs)      # a legend per heatmap
    by_title = {}
    for a in imgs:
        by_title.setdefault(re.sub(r"\d+", "#", a["alt"]), set()).add(
            (a["data-k"], a["data-lo"], a["data-hi"]))
    # the same picture in every layer and head: one scale
    for title in ("q (# heads side by side)", "head #: attention weights (each row sums to #)",
                  "c_fc, before GELU (#% negative)"):
        matches = [v for k, v in by_title.items() if k == title]
        assert matches and len(matches[0]) == 1, title
    # ... which is the 99.5th percentile of |q, k| over all layers and steps
    qk = np.concatenate([np.abs(s.data[k]).ravel() for s in t.stages if s.number == 6
                         for k in ("attn.q", "attn.k")])
    (kind, lo, hi), = next(v for k, v in by_title.items() if k.startswith("q ("))
    assert kind == "div" and float(hi) == pytest.approx(np.percentile(qk, 99.5), rel=2e-3)
    # gradient sizes: one log scale everywhere on the page
    grads = {(a["data-lo"], a["data-hi"]) for a in imgs if a["data-k"] == "log"}
    assert len(grads) == 1
    norms = np.concatenate(list(t.backward.grad_norms.values()))
    lo, hi = map(float, grads.pop())
    assert hi == np.ceil(np.log10(norms.max())) and lo <= np.log10(norms[norms > 0].min()) + 1
    assert "scale shared by every stage output, all layers (one log scale)" in page
    assert "scale shared by queries and keys, all layers" in page


def test_bars_show_true_values_the_chosen_token_and_leading_spaces(bpe):
    model = tiny(bpe)
    for seed in range(50):         # a draw that is not the most likely token
        t = trace(model, bpe, PROMPT, temperature=2.0, seed=seed, top=1, target=None)
        d = t.stage(12).data
        if not d["top"][0]["chosen"]:
            break
    else:
        pytest.fail("every draw was the argmax")
    page = t.to_html()
    probs = _softmax(t.logits[-1])
    rank = int((probs > probs[d["chosen"]]).sum()) + 1
    assert f"← chosen (rank {rank})" in page
    assert f">{label(d['chosen_token'], 14)}</text>" in page
    z = t.logits[-1]
    top = int(z.argmax())
    assert f">{z[top]:.3g}</text>" in page                           # the logit itself
    assert label(" the") == "·the" and label("a\nb") == "a⏎b"
    assert ">·the<" in page or ">·the</text>" in page                 # a leading space kept


def test_the_page_loads_nothing_from_outside(bpe):
    t = trace(tiny(bpe), bpe, PROMPT, max_new_tokens=2, check=False)
    page = t.to_html(compare=trace(tiny(bpe, seed=1), bpe, PROMPT, check=False))
    p = _Page(page)
    assert all(u.startswith(("#", "data:image/png;base64,")) for u in p.urls), \
        {u[:40] for u in p.urls}
    assert not {"link", "iframe", "object", "embed"} & p.tags
    assert "@import" not in page and "@font-face" not in page and "url(" not in page
    assert not re.search(r"<script[^>]*\bsrc=", page)


def test_a_character_model_is_not_called_bpe():
    tok = CharTokenizer.train(TEXT)
    t = trace(tiny(tok), tok, "the cat", max_new_tokens=1, check=False)
    assert t.stage(2).name == "tokenization (characters)"
    assert "2 tokenization (characters)" in t.report()
    page = t.to_html()
    s2 = page[page.index('id="stage-2"'):page.index('id="stage-3"')]
    assert "tokenization (characters)" in s2 and "BPE" not in s2
    assert s2.count("no merges") == 2 and "class=\"merge\"" not in page  # summary, intro
    assert "There are no merges" in s2


def test_compare_two_prompts_stage_by_stage_on_shared_scales(bpe, tmp_path, monkeypatch):
    model = tiny(bpe)
    a = trace(model, bpe, PROMPT, max_new_tokens=2, check=False, label="A")
    b = trace(model, bpe, "the dog sat on the log", max_new_tokens=2, check=False, label="B")
    page = a.to_html(compare=b)
    assert _Page(page).stages == list(range(1, 13))
    for n in range(1, 13):                  # each stage holds both traces, side by side
        s = page[page.index(f'id="stage-{n}"'):]
        s = s[:s.index("</details>\n") if "</details>\n" in s else len(s)]
        assert '<div class="pair"><div><b>A</b>' in s and "<div><b>B</b>" in s, n
    weights = [im for im in _Page(page).images if "attention weights" in im["alt"]]
    assert len({im["data-hi"] for im in weights}) == 1             # one scale for both
    alone = [im["data-hi"] for im in _Page(a.to_html()).images if "attention weights" in im["alt"]]
    assert float(weights[0]["data-hi"]) >= float(alone[0])

    import sys
    import types
    fake = types.ModuleType("minigpt.sample")
    fake.load_model_and_tokenizer = lambda path: (model, bpe, {})
    monkeypatch.setitem(sys.modules, "minigpt.sample", fake)
    out = tmp_path / "cmp"
    assert main(["--ckpt", "m", PROMPT, "--compare_prompt", "the dog", "--out", str(out), "-q",
                 "--no_check", "-n", "1"]) == 0
    cli_page = (out / "trace.html").read_text()
    assert "m: &#x27;the dog&#x27;" in cli_page and "m: &#x27;the cat sat on the&#x27;" in cli_page
    other = json.loads((out / "trace_compare.json").read_text())
    assert other["text"] == "the dog" and other["prompt_ids"] == bpe.encode("the dog")


def test_sampling_of_rows_and_columns_is_even_and_keeps_the_last():
    idx, note = pick(209, 64)
    assert len(idx) == 64 and idx[0] == 0 and idx[-1] == 208 and np.all(np.diff(idx) > 0)
    assert note == "64 of 209, evenly spaced" and pick(64, 64)[1] == ""
    s = Scale.fit("div", [np.array([-3.0, 1.0, 2.0])], pct=100)
    assert s.hi == 3.0 and list(s.levels([-3.0, 0.0, 3.0, np.nan])) == [0, 32, 63, 64]


# ----------------------------------------------------------------------------- in a browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")


def _chromium(tmp_path, page: str, *flags) -> subprocess.CompletedProcess:
    path = tmp_path / "page.html"
    path.write_text(page, encoding="utf-8")
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                           "--disable-background-networking", "--disable-component-update",
                           "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
                           "--window-size=1400,1000", *flags, path.as_uri()],
                          capture_output=True, text=True, timeout=120, check=True)


def folded_height(tmp_path, page: str) -> int:
    """The page's height in px at 1400 px wide, as headless Chromium lays it out."""
    probe = "<script>document.title = 'H' + document.documentElement.scrollHeight</script>"
    dom = _chromium(tmp_path, page.replace("</body>", probe + "</body>"), "--dump-dom").stdout
    return int(re.search(r"<title>H(\d+)</title>", dom).group(1))


def _prompt(tok, n):
    from minigpt.corpus import builtin_corpus
    prompt = tok.decode(tok.encode(builtin_corpus()[:20_000])[:n])
    assert len(tok.encode(prompt)) == n
    return prompt


@needs_chromium
def test_the_default_models_page_is_small_and_short(tmp_path):
    model, tok = fresh_model(512, 4, 4, 128, 64)       # minigpt train's default model
    t = trace(model, tok, _prompt(tok, 64), max_new_tokens=8, check=False)
    page = t.to_html()
    assert len(page.encode()) <= 2_000_000
    assert folded_height(tmp_path, page) <= 15_000
    assert "This model is large" not in page and "evenly spaced" not in page  # all shown


@needs_chromium
def test_a_large_models_page_samples_and_says_so(tmp_path):
    model, tok = fresh_model(512, 6, 6, 384, 256)
    t = trace(model, tok, _prompt(tok, 209), max_new_tokens=8, check=False)
    page = t.to_html()
    assert len(page.encode()) <= 2_000_000
    assert "This model is large" in page and "positions: 64 of 209, evenly spaced" in page
    assert "features: 128 of 384, evenly spaced" in page
    assert folded_height(tmp_path, page) <= 15_000


@needs_chromium
def test_opened_page_renders_its_heatmaps(bpe, tmp_path):
    image = pytest.importorskip("matplotlib.image")
    t = trace(tiny(bpe, n_embd=64, n_head=4), bpe, PROMPT, max_new_tokens=1, check=False)
    opened = t.to_html().replace(     # stage 6 alone, opened: the attention heatmaps
        "</body>", "<style>body > :not(#stage-6) { display: none }</style><script>"
                   "document.querySelectorAll('details').forEach("
                   "function (d) { d.open = true; })</script></body>")
    png = tmp_path / "shot.png"
    _chromium(tmp_path, opened, f"--screenshot={png}")
    pixels = image.imread(png)[..., :3]
    assert pixels.std() > 0.05                                   # not blank
    colourful = (pixels.max(-1) - pixels.min(-1)) > 0.3          # heatmap colours
    assert colourful.mean() > 0.01
