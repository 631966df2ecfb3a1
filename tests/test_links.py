"""The docs hold together: every relative link of README.md and docs/*.md leads to a file that
exists (and to a heading that exists, for a link with a #anchor into a markdown page), the
README stays a short front door that links the topic pages, and its test command is the one
CI runs.

Links are read as GitHub renders them: inline links and images ``[text](target)``,
``![alt](target)`` and reference definitions ``[label]: target``, outside fenced code blocks
and inline code. An anchor is GitHub's slug of a heading: lower case, punctuation other than
``-`` and ``_`` dropped, spaces made hyphens, ``-1``, ``-2`` ... added to repeats.
"""
from __future__ import annotations

import configparser
import importlib
import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README] + sorted((ROOT / "docs").glob("**/*.md"))
README_MAX_LINES = 300
README_MIN_DOC_LINKS = 4

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
_INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def prose_lines(text: str):
    """(line number, line) of the lines outside fenced code blocks."""
    fence = None
    for number, line in enumerate(text.splitlines(), 1):
        m = _FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)
        elif fence is not None and m and m.group(1)[0] == fence[0] \
                and len(m.group(1)) >= len(fence) and not line.strip()[len(m.group(1)):]:
            fence = None
        elif fence is None:
            yield number, line


def links(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every link and image in a markdown text."""
    found = []
    for number, line in prose_lines(text):
        ref = _REFERENCE.match(line)
        if ref:
            found.append((number, ref.group(1)))
            continue
        for m in _INLINE_LINK.finditer(_INLINE_CODE.sub("", line)):
            found.append((number, m.group(1)))
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text (before de-duplication)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)   # a link: its text
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)                         # \w keeps letters, digits, _
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading anchor of a markdown text, repeats numbered as GitHub numbers them."""
    seen: dict[str, int] = {}
    out = set()
    for _, line in prose_lines(text):
        m = _HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    """Why each relative link of ``page`` does not resolve (empty: all resolve)."""
    text = page.read_text(encoding="utf-8")
    problems = []
    for number, target in links(text):
        if not target or _SCHEME.match(target) or target.startswith("//"):
            continue                                            # http:, mailto:, ...: not ours
        path_part, _, anchor = target.partition("#")
        where = f"{page.relative_to(root).as_posix()}:{number}: ({target})"
        dest = (page.parent / unquote(path_part)).resolve() if path_part else page
        if not dest.exists():
            problems.append(f"{where} {path_part} does not exist")
            continue
        try:
            dest.relative_to(root)
        except ValueError:
            problems.append(f"{where} leads outside the repository")
            continue
        if anchor and dest.suffix == ".md" and dest.is_file():
            if unquote(anchor).lower() not in anchors(dest.read_text(encoding="utf-8")):
                problems.append(f"{where} {dest.relative_to(root).as_posix()} has no heading "
                                f"with the anchor #{anchor}")
    return problems


# ----------------------------------------------------------------------------- the pages
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page):
    problems = broken_links(page)
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_readme_is_a_short_front_door_that_links_the_docs():
    text = README.read_text(encoding="utf-8")
    n_lines = len(text.splitlines())
    assert n_lines <= README_MAX_LINES, \
        f"README.md has {n_lines} lines; keep it at most {README_MAX_LINES} (move details to docs/)"
    linked = {(README.parent / t.partition("#")[0]).resolve() for _, t in links(text)
              if not _SCHEME.match(t) and t.partition("#")[0]}
    doc_pages = {p.resolve() for p in (ROOT / "docs").glob("*.md")}
    linked_docs = linked & doc_pages
    assert len(linked_docs) >= README_MIN_DOC_LINKS, \
        f"README.md links {len(linked_docs)} docs/ pages; it should link at least " \
        f"{README_MIN_DOC_LINKS}"
    unlinked = sorted(p.name for p in doc_pages - linked)
    assert not unlinked, f"docs pages that README.md does not link (add them to its table): " \
                         f"{', '.join(unlinked)}"


def test_readme_commands_are_what_ci_and_the_package_provide():
    text = README.read_text(encoding="utf-8")
    test_command = next((ln.strip() for ln in text.splitlines()
                         if "pip install" in ln and "python -m pytest" in ln), None)
    assert test_command is not None, "README.md lost its test command"
    train_command = next((ln.strip() for ln in text.splitlines()
                          if "pip install" in ln and "minigpt train" in ln), None)
    assert train_command is not None, "README.md lost its training command"
    assert train_command.endswith(".venv/bin/minigpt train"), train_command
    ci = ROOT / ".ci" / "run"
    if ci.is_file():                       # absent from a source distribution
        assert test_command in ci.read_text(encoding="utf-8"), \
            f".ci/run no longer runs the README's test command {test_command!r}"
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    scripts = {name.strip(): target.strip() for name, target in
               (line.split("=", 1) for line in
                cfg["options.entry_points"]["console_scripts"].strip().splitlines())}
    module, _, func = scripts["minigpt"].partition(":")
    assert callable(getattr(importlib.import_module(module), func))


# ----------------------------------------------------------------------------- the checker
def test_checker_finds_broken_links_and_ignores_code(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text(
        "# Title\n\n## Data-parallel training on MPI (`--ddp`)\n\n## Writes are atomic; "
        "kills lose nothing\n\n## Title\n", encoding="utf-8")
    page = tmp_path / "README.md"
    page.write_text(
        "[ok](docs/a.md) [ok](docs/a.md#data-parallel-training-on-mpi---ddp) "
        "[ok](docs/a.md#writes-are-atomic-kills-lose-nothing) [ok](docs/a.md#title-1)\n"
        "![img](docs/missing.png) [web](https://example.com/x.md) `[code](nowhere.md)`\n"
        "[anchor](docs/a.md#no-such-heading) [self](#top)\n\n"
        "```bash\n[in a fence](nowhere.md)\n```\n\n[ref]: docs/gone.md\n\n# Top\n",
        encoding="utf-8")
    problems = broken_links(page, root=tmp_path)
    assert len(problems) == 3, problems
    assert "docs/missing.png does not exist" in problems[0]
    assert "#no-such-heading" in problems[1]
    assert "docs/gone.md does not exist" in problems[2]


def test_slugs_are_githubs():
    assert slug("Shakespeare, character level (nanoGPT's shakespeare_char)") == \
        "shakespeare-character-level-nanogpts-shakespeare_char"
    assert slug("Measured scaling (2-core machine)") == "measured-scaling-2-core-machine"
    assert slug("The readers' path") == "the-readers-path"
    assert slug("Data-parallel training on MPI (`--ddp`)") == "data-parallel-training-on-mpi---ddp"
