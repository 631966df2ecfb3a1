#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU: the CuPy tests (NumPy/CuPy parity of every
# op's values and gradients, device moves, optimizer state on the GPU) and the GPU benchmark
# against PyTorch CUDA. Needs CuPy (pip install -e '.[cuda,test]'); PyTorch is optional.
#   bash scripts/gpu_check.sh [python]
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${1:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c "import minigrad, sys; ok = minigrad.cuda_is_available(); print('cuda available:', ok); sys.exit(0 if ok else 1)" || {
    echo "no GPU or no CuPy: nothing to check"; exit 1; }
"$PY" -m pytest -q -m cuda -p no:cacheprovider tests/
tests=$?
"$PY" -m minigpt.bench --device cuda --no-tokenizer --no-memory --steps 20 --json "${OUT:-.}/bench_cuda.json"
bench=$?
echo "GPU tests exit $tests, GPU benchmark exit $bench"
exit $(( tests != 0 || bench != 0 ))
