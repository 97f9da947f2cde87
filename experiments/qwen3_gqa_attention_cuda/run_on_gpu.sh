#!/usr/bin/env bash
# The NVIDIA GQA task on one GPU node without network, in under 5 minutes:
#   1. the judge's GPU tests, 2. a short offline evolution with rayevolve on this node,
#   3. the results table (starting kernel and best evolved, against the fastest SDPA).
# Needs: Python 3.12 with torch and triton (as the device machines have), and the offline
# bundle (`python experiments/qwen3_gqa_attention_cuda/bundle.py` on a machine with
# network; the device tool carries `.bundle`). Writes everything under $OUT.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/rayevolve-gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 RAY_USAGE_STATS_ENABLED=0
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  python3 -c "import sys, torch, triton, numpy; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__, 'numpy', numpy.__version__)"
} | tee "$OUT/machine.txt"

# Ray, Hydra and the rest from the bundle (no network here); rayevolve from this checkout
python3 -m venv --system-site-packages .venv-gpu
rm -rf /tmp/rayevolve-wheels && mkdir -p /tmp/rayevolve-wheels
tar -xJf .bundle/rayevolve-offline-cp312.tar.xz -C /tmp/rayevolve-wheels
.venv-gpu/bin/python -m pip install --quiet --no-index --find-links /tmp/rayevolve-wheels/wheels \
  ray==2.60.0 hydra-core omegaconf openai jsonschema
export PYTHONPATH="$PWD"  # rayevolve from this checkout (no setuptools needed)
PY=.venv-gpu/bin/python

# 1. the judge on the GPU
timeout 240 $PY -m pytest -q -p no:cacheprovider tests/gpu 2>&1 | tee "$OUT/gpu-tests.txt"

# 2. a short offline evolution on this node (candidates not isolated here unless bubblewrap is)
timeout 200 $PY -m rayevolve task=gqa_attention_cuda +task.env.GQA_PROFILE=nvidia_quick \
  islands.count=2 islands.in_flight=1 evaluation.num_evaluators=1 \
  stop.max_evaluations=60 stop.max_wall_s=150 run_dir="$OUT/run" progress=false \
  2>&1 | tail -n 40 | tee "$OUT/run.txt" || true

# 3. the table: both kernels judged with the full NVIDIA profile
BEST="$OUT/run/best/program.py"
ARGS=()
[ -f "$BEST" ] && ARGS=(--best "$BEST")
timeout 200 $PY experiments/qwen3_gqa_attention_cuda/measure.py "${ARGS[@]}" 2>&1 | tee "$OUT/results.md"
