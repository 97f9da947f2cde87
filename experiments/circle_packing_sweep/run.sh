#!/usr/bin/env bash
# A small sweep of the offline mutator on circle packing, then its report.
# 2 island counts x 2 migration intervals x 3 seeds = 12 runs of 300 evaluations
# (about 8 minutes on 2 cores). Usage: experiments/circle_packing_sweep/run.sh [extra overrides]
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
SWEEP=runs/sweeps/circle_packing_$(date +%Y%m%d-%H%M%S)
"$PY" -m rayevolve -m \
    islands.count=2,4 islands.migration.interval=10,50 seed=0,1,2 \
    stop.max_evaluations=300 stop.max_wall_s=60 progress=false \
    hydra.sweep.dir="$SWEEP" "$@"
"$PY" -m rayevolve.report "$SWEEP" --threshold 2.45
