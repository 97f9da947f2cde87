#!/usr/bin/env bash
# `make test-wheel`: the wheel alone, as a user installs it on a node. Builds the sdist and
# the wheel (from the sdist, as `python -m build` does), installs the wheel into a fresh
# virtual environment, and from an empty folder outside the checkout runs the console
# script and `python -m rayevolve` for 50 evaluations. Fails if the checkout is used.
set -euo pipefail
PYTHON=${PYTHON:-python3}
BUILD_PYTHON=${BUILD_PYTHON:-.venv/bin/python}
VENV=${WHEEL_VENV:-.venv-wheel}
checkout=$(pwd)
rm -rf dist "$VENV"
"$BUILD_PYTHON" -m build --outdir dist . >dist.log 2>&1 || { cat dist.log; exit 1; }
rm -f dist.log
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet dist/rayevolve-*.whl
venv=$(cd "$VENV" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
# rayevolve and its files come from the installed wheel, not from the checkout
"$venv/bin/python" - "$checkout" <<'PY'
import sys
from pathlib import Path

import rayevolve
from rayevolve.paths import CONF_DIR, DATA_ROOT

checkout = Path(sys.argv[1]).resolve()
sources = [checkout / name for name in ("rayevolve", "conf", "experiments", "kernels")]
for path in (Path(rayevolve.__file__), DATA_ROOT, CONF_DIR):
    inside = [s for s in sources if s == path.resolve() or s in path.resolve().parents]
    assert not inside, f"{path} comes from the checkout's {inside[0]}"
assert (CONF_DIR / "config.yaml").is_file() and (CONF_DIR / "prompts" / "user.jinja").is_file()
assert (DATA_ROOT / "experiments" / "circle_packing" / "evaluator.py").is_file()
import rayevolve.ui  # the web view's stylesheet ships in the wheel (Dash: the ui extra)

assert (Path(rayevolve.ui.__file__).parent / "assets" / "style.css").is_file()
print(f"wheel: rayevolve from {Path(rayevolve.__file__).parent}, its files from {DATA_ROOT}")
PY
check_run() {  # $1: the run's output; the run directory's summary must say 50 evaluations
  grep -q "finished: max_evaluations reached" <<<"$1"
  run_dir=$(sed -n 's/^  best program  \(.*\)\/best\/program.py$/\1/p' <<<"$1")
  "$venv/bin/python" -c "import json,sys; s=json.load(open(sys.argv[1])); assert s['evaluations']==50, s" \
    "$run_dir/summary.json"
  echo "wheel: 50 evaluations in $run_dir"
}
export RAY_USAGE_STATS_ENABLED=0
check_run "$("$venv/bin/rayevolve" stop.max_evaluations=50 run_dir="$work/console" 2>&1 | tee -a /dev/stderr)"  # -a: a log file stays whole
check_run "$("$venv/bin/python" -m rayevolve stop.max_evaluations=50 run_dir="$work/module" 2>/dev/null)"
