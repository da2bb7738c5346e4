#!/usr/bin/env bash
# Everything GPU-related in one call, for a lent GPU machine (see ../shared/GPU.md):
#   1. the card and library versions;
#   2. the test suite on the GPU backends (cupy, torch on cuda, jax on its default device);
#   3. the demo on CuPy, torch-cuda and JAX (GPU), and portable_nn.sklearn on CUDA tensors;
#   4. the GPU benchmarks: portable_nn on CuPy (MLP, CNN, RNN) vs PyTorch CUDA, same run,
#      synchronised timing.
# Results (log + JSON) go to $OUT (default ./out); commit them under benchmarks/results/.
# On a CPU-only machine it still runs: GPU tests skip and the benchmark is skipped (dry run).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/out}
mkdir -p "$OUT"
log="$OUT/gpu-check.log"
exec > >(tee "$log") 2>&1

echo "== card"
nvidia-smi -L 2>/dev/null || echo "no nvidia-smi: CPU-only dry run"
card=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n1 | tr ' ' '-')
card=${card:-cpu-only}
date_tag=$(date -u +%Y-%m-%d)

echo "== versions"
python - <<'PY'
import importlib
for name in ["numpy", "cupy", "torch", "jax", "array_api_compat", "array_api_extra",
             "array_api_strict"]:
    try:
        print(f"  {name:18s}", importlib.import_module(name).__version__)
    except Exception as exc:
        print(f"  {name:18s} unavailable ({type(exc).__name__})")
from portable_nn.backend import cuda_problem
print("  CUDA:", cuda_problem() or "usable")
PY

status=0
# CuPy and torch-cuda first (the GPU-only paths), then JAX on its default device (a GPU there;
# on a CPU-only machine this part alone takes ~10 min, so it may hit its time limit)
for backends in cupy,torch-cuda jax; do
  echo "== tests on GPU backends: $backends"
  PORTABLE_NN_BACKEND_TESTS_ONLY=1 timeout 300 python -m pytest -q -p no:cacheprovider \
    --backend "$backends" --junitxml="$OUT/gpu-tests-${backends%%,*}.xml" tests
  rc=$?
  [ $rc -eq 124 ] && echo "   ($backends: stopped at the time limit; the log above shows how far)"
  [ $rc -ne 0 ] && status=1
done

if python -c "from portable_nn.backend import cuda_problem; raise SystemExit(cuda_problem() is not None)"; then
  echo "== demo on each GPU backend"
  for backend in cupy torch jax; do
    device=""; [ "$backend" = torch ] && device="--device cuda"
    timeout 120 python -m portable_nn --backend "$backend" $device --verbose 0 \
      --out "$OUT/demo-$backend.png" || status=1
  done
  echo "== portable_nn.sklearn on CUDA tensors"
  timeout 120 python examples/sklearn_pipeline.py || status=1
  echo "== benchmarks"
  timeout 240 python benchmarks/mlp.py --backend cupy --torch-device cuda --repeats 5 \
    --out "$OUT/mlp-gpu-${card}-${date_tag}.json" || status=1
  timeout 120 python benchmarks/cnn.py --backend cupy --torch-device cuda --repeats 3 \
    --out "$OUT/cnn-gpu-${card}-${date_tag}.json" || status=1
  timeout 120 python benchmarks/rnn.py --backend cupy --torch-device cuda --repeats 3 \
    --out "$OUT/rnn-gpu-${card}-${date_tag}.json" || status=1
else
  echo "no usable CUDA device: demos and GPU benchmarks skipped (dry run)"
fi
echo "== gpu-check finished with status $status"
exit $status
