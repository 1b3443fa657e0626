#!/usr/bin/env bash
# GPU check: the scorer's exactness tests and the workload benchmarks on CUDA, float32 then bfloat16.
#
#   bash benchmarks/gpu_check.sh [python]      # default python: .venv/bin/python, else python3
#
# Exactness: tests/test_scoring.py with every model moved to cuda (SELFBIAS_TEST_DEVICE) in the dtype
# (SELFBIAS_TEST_DTYPE). Log-softmax is float32 in every path. Tolerance: 1e-4 nats in float32; 0.5 in
# bfloat16, whose 8-bit mantissa alone moves a log-prob by up to ~0.3 nats when only the reduction order
# changes (padding, batching; measured on CPU bfloat16: 0.12 on the tiny Llama, 0.27 on SmolLM2, trie on
# and off alike): the bfloat16 run says the paths run and agree to bfloat16 precision, not more. Then bench_workloads.py on cuda in each dtype
# (lm-eval columns need the [bench] extra). Prints everything; exits non-zero if a test fails.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${1:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c "import torch, sys; ok = torch.cuda.is_available(); print('cuda:', ok, torch.cuda.get_device_name(0) if ok else ''); sys.exit(0 if ok else 1)" \
  || { echo "no CUDA device: nothing to check"; exit 1; }
status=0
for dtype in float32 bfloat16; do
  tol=1e-4; [ "$dtype" = bfloat16 ] && tol=0.5
  echo; echo "=== exactness: tests/test_scoring.py (+ test_logits, test_fused, test_packed) on cuda, $dtype, tolerance $tol ==="
  SELFBIAS_TEST_DEVICE=cuda SELFBIAS_TEST_DTYPE=$dtype SELFBIAS_TEST_TOL=$tol \
    "$PY" -m pytest -q -p no:cacheprovider tests/test_scoring.py tests/test_logits.py tests/test_fused.py tests/test_packed.py -rA 2>&1 \
    | tail -n 55 || status=1
done
for dtype in float32 bfloat16; do
  echo; echo "=== benchmark: bench_workloads.py on cuda, $dtype ==="
  "$PY" benchmarks/bench_workloads.py --device cuda --dtype "$dtype" --threads 0 || status=1
done
exit $status
