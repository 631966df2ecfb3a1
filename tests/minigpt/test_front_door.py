"""minigpt's front door: the names ``from minigpt import ...`` gives, loaded lazily.

The import checks run in a fresh interpreter, so what other tests imported cannot hide a
module that an import pulls in.
"""
import importlib
import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import minigpt

ROOT = Path(__file__).resolve().parents[2]

# modules that loading the tokenizer must not import: model, tracer, trainer, benchmarks,
# sampling, health reports, checkpoints, data preparation, the CLI
HEAVY = ("minigpt.model", "minigpt.recording", "minigpt.generate", "minigpt.tracing",
         "minigpt.trace_html", "minigpt.train",
         "minigpt.bench", "minigpt.sample", "minigpt.health", "minigpt.checkpoint",
         "minigpt.gpt2", "minigpt.ddp", "minigpt.data", "minigpt.cli", "torch", "tiktoken",
         "matplotlib")


def _modules_after(code: str) -> list[str]:
    """The names in sys.modules after running ``code`` in a fresh interpreter that imports
    this checkout's packages."""
    script = (f"{code}\nimport json, sys, minigpt\n"
              "print(json.dumps([minigpt.__file__, sorted(sys.modules)]))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True).stdout
    where, modules = json.loads(out.splitlines()[-1])
    assert Path(where).resolve().parent == ROOT / "minigpt", where
    return modules


def _heavy(modules) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(h + ".")
                                      or (h == "minigpt.bench" and m.startswith(h))
                                      for h in HEAVY)]


@pytest.mark.parametrize("code", [
    "import minigpt.tokenizer",
    "from minigpt import Tokenizer, CharTokenizer, load_tokenizer",
    "from minigpt.tokenizer import Tokenizer; Tokenizer.train('hello hello', 260).encode('hello')",
])
def test_tokenizer_imports_no_model_tracer_trainer_or_benchmark(code):
    modules = _modules_after(code)
    assert "minigpt.tokenizer" in modules
    assert _heavy(modules) == []


def test_bare_import_loads_nothing_else():
    modules = _modules_after("import minigpt")
    assert [m for m in modules if m.startswith("minigpt.")] == []
    assert "minigrad" not in modules and "numpy" not in modules


def test_names_load_their_module_on_first_use():
    modules = _modules_after("from minigpt import GPT, GPTConfig")
    assert "minigpt.model" in modules
    assert "minigpt.tracing" not in modules and "minigpt.train" not in modules
    modules = _modules_after("import minigpt; minigpt.tracing")   # a submodule as attribute
    assert "minigpt.tracing" in modules and "minigpt.train" not in modules


def test_every_name_resolves_to_its_module():
    for name in minigpt.__all__:
        home = importlib.import_module(f"minigpt.{minigpt._LAZY[name]}")
        assert getattr(minigpt, name) is getattr(home, name), name
    namespace = {}
    exec("from minigpt import *", namespace)
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(minigpt.__all__)


def test_front_door_names():
    want = {"GPT", "GPTConfig", "Tokenizer", "CharTokenizer", "load_tokenizer", "trace",
            "TokenTrace", "Checkpoint", "load_checkpoint", "save_checkpoint"}
    assert want <= set(minigpt.__all__)
    assert set(minigpt.__all__) | {"__version__"} <= set(dir(minigpt))
    from minigpt.checkpoint import load_checkpoint
    assert minigpt.load_checkpoint is load_checkpoint   # the Checkpoint loader, not sample's


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match=r"no attribute 'GTP'; its names are .*GPT"):
        minigpt.GTP
    assert not hasattr(minigpt, "no_such_module")
    assert not hasattr(minigpt, "_private")
    with pytest.raises(ImportError, match="cannot import name 'Tokeniser'"):
        exec("from minigpt import Tokeniser", {})


def test_version_from_the_package_metadata(monkeypatch):
    try:
        installed = metadata.version("minigrad-minigpt")
    except metadata.PackageNotFoundError:
        installed = "0+unknown"
    assert minigpt.__version__ == installed

    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", not_installed)
    assert minigpt._package_version() == "0+unknown"
