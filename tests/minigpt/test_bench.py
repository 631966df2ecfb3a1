"""minigpt.bench: importing it loads neither torch nor tiktoken; its PyTorch twin is the same
model (parameter for parameter); the tokenizer benchmark compares equal encodings. No test
here times anything."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _modules_after(code: str) -> set[str]:
    """sys.modules after ``code`` in a fresh interpreter running this checkout."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport json, sys\n"
                          "print(json.dumps(sorted(sys.modules)))"], cwd=ROOT, env=env,
                         check=True, capture_output=True, text=True).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_importing_bench_imports_no_torch_or_tiktoken():
    modules = _modules_after("import minigpt.bench; minigpt.bench.build_parser()")
    assert "minigpt.bench.command" in modules
    assert not {m for m in modules if m.split(".")[0] in ("torch", "tiktoken", "matplotlib")}
    assert "minigpt.bench.torch_gpt" not in modules and "minigpt.bench.tokenizer" not in modules


def test_torch_twin_has_the_same_parameters():
    """The figures compare like with like: every config's twin has the same parameter
    shapes as minigpt's GPT (the twin ties lm_head to wte, as GPT does)."""
    pytest.importorskip("torch")
    from minigpt.bench.torch_gpt import TorchGPT
    from minigpt.bench.training import CONFIGS
    from minigpt.model import GPT, GPTConfig
    for params, _ in CONFIGS.values():
        cfg = GPTConfig(**params)
        ours = sorted(tuple(p.shape) for p in GPT(cfg).parameters())
        theirs = sorted(tuple(p.shape) for p in TorchGPT(cfg).parameters())
        assert ours == theirs


def test_tokenizer_benchmark_reports_equal_ids():
    pytest.importorskip("tiktoken")
    from minigpt.bench.tokenizer import bench
    from minigpt.corpus import builtin_corpus
    res = bench(builtin_corpus()[:20_000], [300], "gpt4", repeats=1)
    assert res["tiktoken_equal"] is True and res["vocab_size"] == 300
    assert set(res["minigpt_mb_s"]) == {"encode_cold", "encode_warm", "decode"}
