"""Docs that run cannot rot: every ```python block of README.md and docs/*.md runs here.

How a page runs
    Each ```python block is one test, with the id ``<file>:<line of its first line of code>``
    (e.g. ``test_doc_block[docs/backprop.md:19]``), and the blocks of one page run
    in order in one shared namespace, like a notebook: a later block may use the names an
    earlier one made. Running a single block (``-k``) first runs the page's earlier blocks.
    A page runs in its own empty temporary folder (files it writes land there), and every
    block starts from ``minigrad.manual_seed(0)``, so a block's numbers do not depend on
    how much randomness the blocks before it drew. Other fences (```bash, ```text, ```toml,
    plain ```) are never run.

Blocks that must not run here: a directive in a comment on the block's first lines
    # doc: skip (why)          never run (a fragment, a shell-only step, a long training)
    # doc: needs torch         run only when ``import torch`` works (any module name; several
                               names may follow, separated by spaces or commas)
    # doc: needs gpu           run only where CuPy finds an NVIDIA GPU (also: needs cuda)
    # doc: slow                run only with ``pytest --runslow``
    An unknown directive fails the block, so a typo never silently skips one.

Checked output
    A ```text block that follows a ```python block with nothing but blank lines between
    them is that block's expected output: what the block prints must match it, where
      * ``...`` matches any text, several lines included (as doctest's ELLIPSIS);
      * a number with a decimal point or an exponent matches a printed number within one
        unit of its last shown digit (``0.123`` accepts 0.122..0.124, ``1.5e-03`` accepts
        1.4e-03..1.6e-03); an integer must be equal;
      * a run of whitespace matches any run of whitespace, and a number may carry extra
        spaces in front (NumPy pads columns); trailing spaces and blank lines at either
        end are ignored.
    Print with a fixed format (``f"{x:.4f}"``) and put ``...`` where a value is noise
    (e.g. a finite-difference error of 1e-10).

A failure names the page, the block's first line number and shows the block; tracebacks
point at the page's own line numbers. Blocks known to fail may be listed in KNOWN_FAILING
(keyed by the block's first line of code; empty today): they are expected to fail, and the
suite says so the day one of them starts to pass.
"""
from __future__ import annotations

import contextlib
import io
import re
import sys
import traceback
import types
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

import minigrad


def _repo_root() -> Path:
    here = Path(__file__).resolve().parent
    for d in (here, *here.parents):
        if (d / "README.md").is_file() and (d / "minigrad").is_dir():
            return d
    raise RuntimeError(f"test_docs: no repository root above {here}")


ROOT = _repo_root()
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("**/*.md"))
PYTHON = {"python", "py", "python3"}

# Blocks known to fail, by (page, first line of code): why (none today: keep it that way). A
# block listed here that passes fails the suite, so the list cannot go stale.
KNOWN_FAILING: dict = {}

# Directives a page's blocks need but do not carry yet, by (page, first line of code): they
# apply as if written in the block (none today: write '# doc: ...' in the block instead).
PENDING_DIRECTIVES: dict = {}

# ----------------------------------------------------------------------------- parsing
_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
_DIRECTIVE = re.compile(r"^\s*#\s*doc:\s*(?P<body>.*?)\s*$")


@dataclass
class Fence:
    lang: str
    line: int            # 1-based line of the first line inside the fence
    lines: list          # the lines inside, indentation of the fence removed
    end: int             # 1-based line of the closing fence


@dataclass
class Block:
    page: str            # path relative to the repository root
    line: int
    source: str
    expected: str | None = None        # the ```text block that follows, if any
    expected_line: int | None = None
    directives: list = field(default_factory=list)

    @property
    def first_line(self) -> str:
        for ln in self.source.splitlines():
            if ln.strip() and not _DIRECTIVE.match(ln):
                return ln.strip()
        return ""

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def fences(text: str) -> list[Fence]:
    """Every fenced code block of a markdown text (``` or ~~~, any indentation)."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence = len(m["indent"]), m["fence"]
        lang = (m["info"].split() or [""])[0].lower()
        body, j = [], i + 1
        while j < len(lines):
            close = re.match(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$", lines[j])
            if close:
                break
            ln = lines[j]
            body.append(ln[indent:] if ln[:indent].strip() == "" else ln.lstrip())
            j += 1
        out.append(Fence(lang, i + 2, body, j + 1))
        i = j + 1
    return out


def parse_directives(source: str) -> list[tuple[str, str]]:
    """(kind, argument) of each ``# doc:`` comment on the block's leading comment lines."""
    found = []
    for ln in source.splitlines():
        if not ln.strip():
            continue
        m = _DIRECTIVE.match(ln)
        if not m:
            if ln.lstrip().startswith("#"):
                continue
            break
        body = m["body"]
        word, _, rest = body.partition(" ")
        found.append((word.strip().lower(), rest.strip()))
    return found


def blocks(page: Path) -> list[Block]:
    """The python blocks of one page, each with the text block that shows its output."""
    text = page.read_text(encoding="utf-8")
    all_lines = text.splitlines()
    fs = fences(text)
    rel = page.relative_to(ROOT).as_posix()
    out = []
    for k, f in enumerate(fs):
        if f.lang not in PYTHON:
            continue
        b = Block(rel, f.line, "\n".join(f.lines) + "\n")
        b.directives = parse_directives(b.source)
        pending = PENDING_DIRECTIVES.get((rel, b.first_line))
        if pending is not None:
            b.directives += parse_directives(f"# doc: {pending}")
        nxt = fs[k + 1] if k + 1 < len(fs) else None
        if nxt is not None and nxt.lang == "text" and all(
                not ln.strip() for ln in all_lines[f.end:nxt.line - 2]):
            b.expected, b.expected_line = "\n".join(nxt.lines), nxt.line
        out.append(b)
    return out


# ----------------------------------------------------------------------------- output check
_NUMBER = r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?"
_EXPECTED_TOKEN = re.compile(rf"(?P<ellipsis>\.\.\.)|(?P<number>(?<![\w.]){_NUMBER}(?!\w))"
                             rf"|(?P<space>\s+)")


def _normalise(text: str) -> str:
    return "\n".join(ln.rstrip() for ln in text.strip("\n").splitlines()).strip("\n")


def _tolerance(shown: str) -> float | None:
    """One unit of the last shown digit; None for an integer (must be equal)."""
    mantissa, _, exp = shown.lower().partition("e")
    if "." not in mantissa and not exp:
        return None
    decimals = len(mantissa.partition(".")[2])
    return 10.0 ** (int(exp or 0) - decimals)


def output_mismatch(expected: str, actual: str) -> str | None:
    """Why ``actual`` (printed) does not match ``expected`` (the page's text block), or None."""
    exp, act = _normalise(expected), _normalise(actual)
    pattern, numbers, pos = [], [], 0
    for m in _EXPECTED_TOKEN.finditer(exp):
        pattern.append(re.escape(exp[pos:m.start()]))
        if m["ellipsis"]:
            pattern.append(".*?")
        elif m["number"]:
            pattern.append(rf"\s*({_NUMBER})")
            numbers.append(m["number"])
        else:
            pattern.append(r"\s+")
        pos = m.end()
    pattern.append(re.escape(exp[pos:]))
    match = re.fullmatch("".join(pattern), act, flags=re.DOTALL)
    if match is None:
        return "the printed text differs from the page's text block"
    for shown, got in zip(numbers, match.groups()):
        tol = _tolerance(shown)
        e, a = float(shown), float(got)
        if (a != e) if tol is None else not abs(a - e) <= tol * (1 + 1e-9):
            return (f"printed {got} where the page shows {shown}"
                    + ("" if tol is None else f" (tolerance {tol:g})"))
    return None


# ----------------------------------------------------------------------------- running
def skip_reason(block: Block, runslow: bool) -> str | None:
    """Why this block does not run here (None: it runs); raises on an unknown directive."""
    for kind, arg in block.directives:
        if kind == "skip":
            return f"marked '# doc: skip' {arg}".rstrip()
        if kind == "slow":
            if not runslow:
                return "marked '# doc: slow': run with --runslow"
        elif kind == "needs":
            for name in re.split(r"[\s,]+", arg.strip()):
                if not name:
                    continue
                if name.lower() in ("gpu", "cuda"):
                    if not minigrad.cuda_is_available():
                        return "needs CuPy and an NVIDIA GPU"
                    continue
                try:
                    __import__(name)
                except ImportError:
                    return f"needs {name}, which is not installed"
        else:
            raise ValueError(f"{block.id}: unknown doc directive '# doc: {kind} {arg}'; "
                             "expected skip, slow or needs <module|gpu>")
    return None


@dataclass
class Outcome:
    status: str            # "passed", "failed", "skipped"
    message: str = ""


def _numbered(source: str, first: int) -> str:
    return "\n".join(f"{first + i:5d} | {ln}" for i, ln in enumerate(source.splitlines()))


class Notebook:
    """One page's blocks run in order in one namespace and one working folder."""

    def __init__(self, page_blocks: list[Block], folder: Path, runslow: bool):
        self.blocks, self.folder, self.runslow = page_blocks, folder, runslow
        name = "doc_" + re.sub(r"\W", "_", page_blocks[0].page)
        self.module = types.ModuleType(name)
        self.outcomes: list[Outcome] = []

    def run_through(self, index: int, monkeypatch) -> Outcome:
        """Run the blocks up to ``index`` that have not run yet; the outcome of ``index``."""
        monkeypatch.chdir(self.folder)
        monkeypatch.setitem(sys.modules, self.module.__name__, self.module)
        while len(self.outcomes) <= index:
            self.outcomes.append(self._run(self.blocks[len(self.outcomes)]))
        return self.outcomes[index]

    def earlier_failure(self, index: int) -> Block | None:
        for b, o in zip(self.blocks[:index], self.outcomes):
            if o.status == "failed" and _known_failure(b) is None:
                return b
        return None

    def _run(self, block: Block) -> Outcome:
        reason = skip_reason(block, self.runslow)
        if reason is not None:
            return Outcome("skipped", reason)
        minigrad.manual_seed(0)
        np.random.seed(0)
        padded = "\n" * (block.line - 1) + block.source   # tracebacks show the page's lines
        out = io.StringIO()
        try:
            code = compile(padded, str(ROOT / block.page), "exec")
            with contextlib.redirect_stdout(out):
                exec(code, self.module.__dict__)
        except BaseException as e:   # noqa: BLE001  (report whatever the block raised)
            if isinstance(e, KeyboardInterrupt):
                raise
            tb = traceback.format_exception(type(e), e, e.__traceback__.tb_next)  # not ours
            tb = "".join(tb[-12:])
            return Outcome("failed", f"{type(e).__name__}: {e}\n--- traceback ---\n{tb}"
                           f"--- printed ---\n{out.getvalue()[-2000:]}")
        if block.expected is not None:
            why = output_mismatch(block.expected, out.getvalue())
            if why is not None:
                return Outcome("failed", f"output check failed: {why}\n"
                                         f"--- expected (line {block.expected_line}) ---\n"
                                         f"{_normalise(block.expected)}\n"
                                         f"--- printed ---\n{_normalise(out.getvalue())}")
        return Outcome("passed")


def _known_failure(block: Block) -> str | None:
    return KNOWN_FAILING.get((block.page, block.first_line))


_PAGE_BLOCKS = {p.relative_to(ROOT).as_posix(): blocks(p) for p in PAGES if p.is_file()}
_CASES = [pytest.param(page, i, id=b.id,
                       marks=[pytest.mark.slow] if any(k == "slow" for k, _ in b.directives)
                       else [])
          for page, bs in _PAGE_BLOCKS.items() for i, b in enumerate(bs)]
_NOTEBOOKS: dict[str, Notebook] = {}


@pytest.mark.parametrize("page,index", _CASES)
def test_doc_block(page, index, tmp_path_factory, monkeypatch, request):
    nb = _NOTEBOOKS.get(page)
    if nb is None:
        folder = tmp_path_factory.mktemp(re.sub(r"\W", "_", page))
        nb = _NOTEBOOKS[page] = Notebook(_PAGE_BLOCKS[page], folder,
                                         request.config.getoption("--runslow"))
    block = nb.blocks[index]
    outcome = nb.run_through(index, monkeypatch)
    known = _known_failure(block)
    if outcome.status == "skipped":
        pytest.skip(outcome.message)
    earlier = nb.earlier_failure(index)
    if outcome.status == "failed" and earlier is not None:
        pytest.skip(f"an earlier block of {page} failed (line {earlier.line}); fix that first")
    shown = f"--- {block.id} ---\n{_numbered(block.source, block.line)}"
    if known is not None:
        if outcome.status == "failed":
            pytest.xfail(f"known to fail: {known}")
        pytest.fail(f"{block.id}: this block is listed in KNOWN_FAILING ({known!r}) but now "
                    f"passes; remove it from the list in tests/test_docs.py\n{shown}",
                    pytrace=False)
    if outcome.status == "failed":
        pytest.fail(f"{block.id}: the python block starting at line {block.line} of {page} "
                    f"failed: {outcome.message}\n{shown}", pytrace=False)


# ----------------------------------------------------------------------------- the harness
def test_parser_finds_blocks_outputs_and_directives():
    text = ("Intro\n\n```python\n# doc: needs torch, numpy\nx = 1\nprint(x)\n```\n\n"
            "```text\n1\n```\n\n  ~~~py\n  y = 2\n  ~~~\n\nprose\n\n```text\nnot output\n```\n"
            "```bash\nls\n```\n")
    fs = fences(text)
    assert [(f.lang, f.line) for f in fs] == [("python", 4), ("text", 10), ("py", 14),
                                             ("text", 20), ("bash", 23)]
    assert fs[2].lines == ["y = 2"]
    assert parse_directives("# doc: needs torch, numpy\n# doc: slow\nx = 1\n# doc: skip\n") == \
        [("needs", "torch, numpy"), ("slow", "")]
    b = Block("docs/case.md", 4, "# doc: needs not_a_module_xyz\nx = 1\n",
              directives=[("needs", "not_a_module_xyz")])
    assert "not_a_module_xyz" in skip_reason(b, runslow=True)
    assert b.first_line == "x = 1"
    with pytest.raises(ValueError, match="unknown doc directive"):
        skip_reason(Block("p.md", 1, "", directives=[("skp", "")]), runslow=True)
    assert skip_reason(Block("p.md", 1, "", directives=[("slow", "")]), runslow=False)
    assert skip_reason(Block("p.md", 1, "", directives=[("slow", "")]), runslow=True) is None


def test_output_check_tolerates_formatting_not_wrong_values():
    assert output_mismatch("grad 0.123 at (2, 4)\n", "grad 0.124 at (2, 4)") is None
    assert output_mismatch("grad 0.123", "grad 0.125") is not None      # two units off
    assert output_mismatch("(2, 4)", "(2, 5)") is not None              # integers exact
    assert output_mismatch("[0.5 -0.25]", "[ 0.5  -0.25]") is None      # NumPy's padding
    assert output_mismatch("1.5e-03", "0.0016") is None
    assert output_mismatch("1.5e-03", "0.0017") is not None
    assert output_mismatch("loss ...\ndone", "loss 2.3 (noise 1e-12)\nmore\ndone") is None
    assert output_mismatch("h.0.ln_1 ok", "h.1.ln_1 ok") is not None    # names are text
    assert output_mismatch("a\nb", "a\nb\nc") is not None
    assert output_mismatch("-0.000", "0.000") is None


def test_failures_name_the_page_line_and_block(tmp_path, monkeypatch):
    page = [Block("docs/x.md", 7, "a = 1\n"), Block("docs/x.md", 12, "print(a + 1)\n", "3", 15),
            Block("docs/x.md", 20, "\n\nundefined_name\n")]
    nb = Notebook(page, tmp_path, runslow=False)
    assert nb.run_through(0, monkeypatch).status == "passed"
    second = nb.run_through(1, monkeypatch)
    assert second.status == "failed" and "printed 2 where the page shows 3" in second.message
    third = nb.run_through(2, monkeypatch)
    assert "NameError" in third.message and "line 22" in third.message
