#!/usr/bin/env bash
# The GPU check of issue 37: on a machine with an NVIDIA GPU, in about 8 minutes, into one file (default
# gpu_check.txt): jax[cuda12] installed into .venv (matching the installed jax), the learners' tests on the GPU, the
# throughput table at widths 256 and 512 (critics 3 x 512 as Adroit / Kitchen), and the WSRL update of 1, 8 and 32
# seeds in one call. Run from the repository root:
#   bash benchmarks/gpu_check.sh [OUT_FILE]
# A machine without a network needs the CUDA wheels in pip's cache or a local index (PIP_FIND_LINKS); without them the
# script says so and stops.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu_check.txt}
exec > >(tee "$out") 2>&1
echo "gpu_check $(date -Is) commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || { echo "no NVIDIA GPU"; exit 2; }
bash dev.sh test --collect-only -q >/dev/null  # creates .venv and installs wsrl with the test tools
version=$(.venv/bin/python -c 'import jax; print(jax.__version__)')
if ! .venv/bin/python -c 'import jax, sys; sys.exit(jax.default_backend() != "gpu")' 2>/dev/null; then
  timeout 240 .venv/bin/python -m pip install --quiet "jax[cuda12]==$version" ||
    { echo "could not install jax[cuda12]==$version (no network or wheel cache)"; exit 2; }
fi
.venv/bin/python -c 'import jax; print("jax", jax.__version__, "backend", jax.default_backend(), jax.devices())'
echo "--- learner tests on the GPU"
timeout 180 .venv/bin/python -m pytest -q -m "not slow" -p no:xdist tests/test_sac.py tests/test_cql.py \
    tests/test_iql.py tests/test_agents.py tests/test_buffer.py || echo "tests: FAILED (status $?)"
for args in "--hidden 256 --seeds 1 8 32" "--hidden 512 --layers 3"; do
  echo "--- throughput.py --seconds 5 $args"
  timeout 150 .venv/bin/python benchmarks/throughput.py --seconds 5 $args || echo "throughput: FAILED (status $?)"
done
echo "gpu_check done $(date -Is)"
