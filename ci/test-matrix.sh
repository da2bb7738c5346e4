#!/usr/bin/env bash
# The CPU test matrix: lint, then the whole suite once; the `backend` fixture runs every test on
# numpy, numpy_readonly, array_api_strict (CPU_DEVICE and the fake device1), torch (CPU) and jax,
# and on cupy / torch-cuda when a GPU works (they skip cleanly otherwise).
#
# Usage: bash ci/test-matrix.sh [pytest args]      e.g. bash ci/test-matrix.sh -x -k dense
# PORTABLE_NN_REQUIRE_BACKENDS (default: the CI set) lists libraries that must import, so a
# missing install fails loudly instead of turning a backend into skips.
set -euo pipefail
cd "$(dirname "$0")/.."

python - <<'PY'
import importlib, os, platform, sys
required = os.environ.get(
    "PORTABLE_NN_REQUIRE_BACKENDS", "numpy,array_api_strict,torch,jax,sklearn,scipy,mpi4py"
)
print(f"python {platform.python_version()} on {platform.machine()}")
missing = []
for name in ["numpy", "array_api_compat", "array_api_extra", "array_api_strict", "torch", "jax",
             "cupy", "hypothesis", "pytest", "sklearn", "scipy", "mpi4py"]:
    try:
        module = importlib.import_module(name)
        print(f"  {name:18s} {getattr(module, '__version__', '?')}")
    except Exception as exc:  # cupy may fail to import without a driver
        print(f"  {name:18s} not available ({type(exc).__name__})")
        if name in required.split(","):
            missing.append(name)
from portable_nn.backend import cuda_problem
print("  CUDA:", cuda_problem() or "usable")
if missing:
    sys.exit(f"required backends missing: {', '.join(missing)}")
PY

if command -v ruff >/dev/null 2>&1; then
  ruff check .
  ruff format --check .
fi

python -m pytest "$@"
