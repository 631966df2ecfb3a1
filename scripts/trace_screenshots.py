"""Regenerate the screenshots of docs/trace.md from a checkpoint of minigpt train's default model.

    python -m minigpt train --out_dir out                  # about 5 minutes on 2 cores
    python scripts/trace_screenshots.py --ckpt out         # docs/trace-*.png, docs/trace.png

It traces a 64-token prompt from the built-in corpus with 8 new tokens (the case the page is
sized for), opens the page in headless Chromium at 1400 px wide and saves: the top of the
page (folded), one layer of stage 6, the backward section, and (docs/trace.png) the compare
view of a freshly initialised model beside the trained one. With Pillow installed each image
is reduced to 256 colours, so that it stays small. ``--only NAME`` saves one of them.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import minigrad as mg  # noqa: E402
from minigpt.corpus import builtin_corpus  # noqa: E402
from minigpt.model import GPT  # noqa: E402
from minigpt.sample import load_model_and_tokenizer  # noqa: E402
from minigpt.tracing import trace  # noqa: E402

SHOW_ONLY = "<style>body > :not({keep}) {{ display: none }}</style>"
OPEN = "<script>{}</script>"

# name -> (what to inject into the page, window height)
SHOTS = {
    "trace-top": ("", 1150),
    "trace-layer": (SHOW_ONLY.format(keep="#stage-6") + OPEN.format(
        "document.getElementById('stage-6').open = true;"
        "document.getElementById('stage-6-1').open = true;"
        "document.querySelector('#stage-6-1 .headsel button:nth-of-type(3)').click();"), 2270),
    "trace-backward": (SHOW_ONLY.format(keep="#backward") + OPEN.format(
        "document.getElementById('backward').open = true;"), 1360),
}


def prompt(tok, n: int = 64, end: int = 127) -> str:
    """The n tokens of the built-in corpus that end at token ``end`` ("...the people.\\n\\nA",
    where a trained model has learned that "ll:" comes next)."""
    ids = tok.encode(builtin_corpus()[:5000])
    return tok.decode(ids[end - n:end])


def chromium(html: str, png: Path, height: int) -> None:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        sys.exit("trace_screenshots: Chromium is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "page.html"
        page.write_text(html, encoding="utf-8")
        subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-background-networking", "--disable-component-update",
                        "--no-first-run", f"--user-data-dir={tmp}/profile", "--hide-scrollbars",
                        f"--window-size=1400,{height}", f"--screenshot={png}", page.as_uri()],
                       check=True, capture_output=True, timeout=180)
    try:
        from PIL import Image
    except ImportError:
        return
    Image.open(png).convert("RGB").quantize(256).save(png, optimize=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", required=True, help="checkpoint of minigpt train's default model")
    p.add_argument("--out", default=str(ROOT / "docs"), help="folder for the PNGs")
    p.add_argument("--only", choices=[*SHOTS, "trace"], help="save only this screenshot")
    args = p.parse_args(argv)
    model, tok, _ = load_model_and_tokenizer(args.ckpt)
    text = prompt(tok)
    kw = dict(max_new_tokens=8, temperature=0.8, top_k=20, seed=0)
    trained = trace(model, tok, text, label="trained (minigpt train's defaults)", **kw)
    out = Path(args.out)
    page = trained.to_html()
    for name, (inject, height) in SHOTS.items():
        if args.only in (None, name):
            chromium(page.replace("</body>", inject + "</body>"), out / f"{name}.png", height)
            print(f"wrote {out / name}.png")
    if args.only in (None, "trace"):
        mg.manual_seed(0)
        fresh = GPT(model.config)
        before = trace(fresh, tok, text, label="freshly initialised", check=False, **kw)
        both = before.to_html(compare=trace(model, tok, text, label="trained", check=False,
                                            **kw))
        inject = (SHOW_ONLY.format(keep="#stage-6")      # one head of layer 2, both models
                  + "<style>details.layer > :not(summary):not(.heads) { display: none }</style>"
                  + OPEN.format("document.getElementById('stage-6').open = true;"
                                + "".join(f"document.getElementById('{side}stage-6-2').open = true;"
                                          f"document.querySelector('#{side}stage-6-2 .headsel "
                                          "button:nth-of-type(4)').click();"
                                          for side in ("t0-", "t1-"))))
        chromium(both.replace("</body>", inject + "</body>"), out / "trace.png", 1700)
        print(f"wrote {out / 'trace.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
