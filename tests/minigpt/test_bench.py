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


def test_vector_isa_names_the_widest_instructions():
    from minigpt.bench.machine import vector_isa
    assert vector_isa("fpu sse2 avx fma avx2".split()) == "AVX2 (FMA)"
    assert vector_isa("avx2 fma avx512f avx512_vnni avx512_bf16".split()) == \
        "AVX-512 (bf16, vnni)"
    assert vector_isa("avx2 avx512f avx512_bf16 avx512_vnni avx512_fp16 amx_tile amx_bf16"
                      .split()) == "AVX-512 (bf16, vnni, fp16) + AMX"
    assert vector_isa("fp asimd".split()) == "NEON"
    assert vector_isa([]) == "baseline"


def test_machine_info_is_json_and_names_cpu_blas_and_threads():
    """What the benchmark records about the machine: this process's CPU (as /proc/cpuinfo
    has it), NumPy's BLAS as threadpoolctl reports it, minigrad's pool; torch's when asked."""
    from minigpt.bench.machine import describe, machine_info, short_name
    from minigrad.backend import threads
    info = json.loads(json.dumps(machine_info()))
    assert info["cpu"]["logical_cores"] == os.cpu_count()
    assert info["minigrad"]["pool_threads"] == threads.NUM_THREADS
    if Path("/proc/cpuinfo").is_file():
        model = next(line.split(":", 1)[1].strip() for line in
                     Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith(("model name", "Processor")))
        assert info["cpu"]["model"].startswith(model)
    threadpoolctl = pytest.importorskip("threadpoolctl")
    blas = [lib for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]
    assert [b["architecture"] for b in info["blas"]] == [b.get("architecture") for b in blas]
    text = "\n".join(describe(info))
    assert info["cpu"]["isa"] in text and info["cpu"]["isa"] in short_name(info)
    for b in info["blas"]:
        assert f"{b['architecture']} kernels" in text


def test_machine_info_with_torch_reads_its_threads():
    torch = pytest.importorskip("torch")
    from minigpt.bench.machine import machine_info
    info = machine_info(with_torch=True)["torch"]
    assert info["num_threads"] == torch.get_num_threads()
    assert info["version"] == torch.__version__


def test_profile_times_every_phase_and_op_and_puts_the_ops_back():
    """``minigpt bench --profile``: the phases add up to the step, every op of a GPT step is
    listed with its calls per step, and the ops' own methods are back afterwards."""
    import minigrad as mg
    from minigpt.bench.profile import profile_minigrad
    before = {name: (cls.__dict__.get("forward"), cls.__dict__.get("backward"))
              for name, cls in mg.OPS.items()}
    p = json.loads(json.dumps(profile_minigrad("tiny", steps=1)))
    assert set(p["phases"]) == {"forward", "backward", "optimizer"}
    assert p["ms_per_step"] == pytest.approx(sum(p["phases"].values()), abs=0.2)
    assert {"Linear", "MultiHeadAttention", "LayerNorm", "GeluTanh", "CrossEntropy"} \
        <= set(p["ops"])
    assert p["ops"]["Linear"]["calls"] == 4 * 4 + 1          # 4 per block, and lm_head
    assert p["ops"]["LayerNorm"]["calls"] == 2 * 4 + 1
    ops_ms = sum(r["forward_ms"] for r in p["ops"].values())
    assert ops_ms <= p["phases"]["forward"] + 0.01
    assert before == {name: (cls.__dict__.get("forward"), cls.__dict__.get("backward"))
                      for name, cls in mg.OPS.items()}


def test_profile_of_torch_lists_its_ops():
    pytest.importorskip("torch")
    from minigpt.bench.profile import profile_torch
    p = profile_torch("tiny", steps=1)
    assert set(p["phases"]) == {"forward", "backward", "optimizer"}
    assert any("mm" in op for op in p["ops"])
