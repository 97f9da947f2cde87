"""``make compat``: OpenEvolve's example folders, used as shipped, run by rayevolve.

For each task folder under an OpenEvolve checkout's ``examples/`` (every folder holding
an ``evaluator*.py``), this prints one row:

- what it needs that this machine lacks (packages, a tool such as cargo or R, network,
  Apple silicon), found from its imports and the tools its evaluator calls; such a
  folder is not run;
- its seed's score here (the seed row of a rayevolve run, judged in the sandbox) and
  from OpenEvolve's own ``Evaluator`` with the folder's config (``direct.py``, in an
  environment with OpenEvolve and the examples' packages);
- the best score after N evaluations with the offline mutator;
- how many settings of its config file were applied, and how many were not used;
- why it did not run, when it did not.

Usage: ``python compat.py EXAMPLES [--python PY] [--evaluations N] [--out FILE]``; PY is
the interpreter that judges (and calls OpenEvolve directly): it must have OpenEvolve
and the examples' packages (``make compat`` builds ``.venv-openevolve``).
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from rayevolve.openevolve_config import CONFIG_NAMES, OpenEvolveConfigError, read  # noqa: E402
from rayevolve.outcome import Outcome  # noqa: E402

SKIPPED = {"outputs", "legacy", "__pycache__", "checkpoints", "best", "evolved_program"}
NETWORK = {
    "requests": "HTTP",
    "openai": "a model API",
    "anthropic": "a model API",
    "litellm": "a model API",
    "optillm": "a model proxy",
    "httpx": "HTTP",
    "aiohttp": "HTTP",
    "datasets": "Hugging Face downloads",
    "lm_eval": "Hugging Face downloads",
}
TOOLS = {  # a program the evaluator runs -> what it is
    "cargo": "Rust (cargo)",
    "Rscript": "R",
    "mlir-opt": "MLIR tools",
    "claude": "the Claude Code CLI",
    "nvcc": "CUDA",
}
GPU_HINTS = {"mx.metal": "Apple silicon (Metal)", "mx.fast.metal_kernel": "Apple silicon (Metal)"}
RUN_TIMEOUT_S = 900
DIRECT_TIMEOUT_S = 600


@dataclass
class Row:
    name: str
    initial: str | None = None
    evaluator: str | None = None
    config: str | None = None
    needs: list[str] = field(default_factory=list)
    seed_here: float | None = None
    seed_direct: float | None = None
    seed_direct_again: float | None = None  # a second call, where the first differs from here
    direct_error: str | None = None
    best: float | None = None
    evaluations: int = 0
    ok: int = 0
    mapped: int = 0
    ignored: int = 0
    wall_s: float = 0.0
    why: str = ""

    @property
    def loaded(self) -> bool:
        return self.seed_here is not None


def discover(examples: Path) -> list[tuple[str, Path | None]]:
    """(name, folder) for every task folder; (name, None) for an example with none."""
    found: list[tuple[str, Path | None]] = []
    for example in sorted(p for p in examples.iterdir() if p.is_dir()):
        folders = sorted(
            {
                e.parent
                for e in example.rglob("evaluator*.py")
                if not SKIPPED.intersection(e.relative_to(examples).parts)
            }
        )
        if not folders:
            found.append((example.name, None))
        found += [(f.relative_to(examples).as_posix(), f) for f in folders]
    return found


def choose_files(folder: Path, row: Row) -> None:
    """The seed, evaluator and config file a user names (only where not the defaults)."""
    evaluators = sorted(p.name for p in folder.glob("evaluator*.py"))
    row.evaluator = "evaluator.py" if "evaluator.py" in evaluators else evaluators[0]
    seeds = sorted(p.name for p in folder.glob("initial_program.*") if p.is_file())
    if len(seeds) != 1:
        pattern = re.compile(r"^init(ial)?_\w*\.(py|txt|rs|r|cpp|c|js|go|java|jl)$")
        seeds = sorted(p.name for p in folder.iterdir() if p.is_file() and pattern.match(p.name))
    row.initial = seeds[0] if seeds else None
    if row.initial is None and (folder / "initial_program").is_dir():
        row.why = (
            "its initial_program is a folder of several files (C++ and scripts), not one program"
        )
    configs = [n for n in CONFIG_NAMES if (folder / n).is_file()]
    if not configs:
        configs = sorted(p.name for p in folder.glob("config*.y*ml"))
    row.config = configs[0] if configs else None
    if row.config:
        try:
            mapped = read(folder / row.config, "offline")
            row.mapped, row.ignored = len(mapped.settings), len(mapped.ignored)
        except OpenEvolveConfigError as exc:
            row.why = str(exc)


def imports(path: Path) -> set[str]:
    try:
        tree = ast.parse(path.read_text(errors="replace"))
    except (SyntaxError, ValueError):
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def missing_modules(names: set[str], python: str, folder: Path) -> list[str]:
    wanted = sorted(
        n
        for n in names
        if n not in sys.stdlib_module_names
        and n != "openevolve"
        and not (folder / f"{n}.py").exists()
        and not (folder / n).is_dir()
    )
    if not wanted:
        return []
    probe = "import importlib.util, json, sys; print(json.dumps([n for n in sys.argv[1:] if importlib.util.find_spec(n) is None]))"
    done = subprocess.run([python, "-c", probe, *wanted], capture_output=True, text=True)
    return json.loads(done.stdout or "[]")


def needs(folder: Path, row: Row, python: str) -> list[str]:
    """What this folder needs that this machine lacks."""
    found = []
    if row.initial is None:
        return [] if row.why else ["no initial program found"]
    # the evaluator, the seed and the folder's modules they import (not its other scripts)
    files = [folder / row.evaluator] + [folder / row.initial] * row.initial.endswith(".py")
    names = set().union(*(imports(p) for p in files))
    files += [folder / f"{n}.py" for n in sorted(names) if (folder / f"{n}.py").is_file()]
    # and the scripts it runs by name (`python submit.py`)
    named = re.findall(
        r"[\"']([\w./-]+\.py)[\"']", (folder / row.evaluator).read_text(errors="replace")
    )
    files += [folder / n for n in named if (folder / n).is_file() and folder / n not in files]
    names = set().union(*(imports(p) for p in files))
    texts = {p: p.read_text(errors="replace") for p in files}
    evaluator_text = texts[folder / row.evaluator]
    for module, what in NETWORK.items():
        if module in names:
            found.append(f"network ({what}: imports {module})")
    for tool, what in TOOLS.items():
        if re.search(rf"[\"']{re.escape(tool)}[\"' ]", evaluator_text) and not shutil.which(tool):
            found.append(what)
    suffix = Path(row.initial).suffix.lower()
    if suffix == ".rs" and not shutil.which("cargo"):
        found.append("Rust (cargo)")
    if suffix == ".r" and not shutil.which("Rscript"):
        found.append("R")
    if platform.system() != "Darwin" and any(
        hint in t for t in texts.values() for hint in GPU_HINTS
    ):
        found.append("Apple silicon (Metal)")
    missing = missing_modules(names, python, folder)
    if missing:
        found.append("packages: " + ", ".join(missing))
    return sorted(set(found), key=found.index)


def overrides(row: Row) -> list[str]:
    extra = []
    if row.evaluator != "evaluator.py":
        extra.append(f"task.evaluator={row.evaluator}")
    if not row.initial.startswith("initial_program."):
        extra.append(f"task.initial_program={row.initial}")
    if row.config and row.config not in CONFIG_NAMES:
        extra.append(f"task.openevolve_config={row.config}")
    return extra


def run_here(folder: Path, row: Row, python: str, evaluations: int, work: Path) -> None:
    run_dir = work / row.name.replace("/", "__")
    command = [
        sys.executable,
        "-m",
        "rayevolve",
        f"task.path={folder}",
        *overrides(row),
        f"evaluation.python={python}",
        f"stop.max_evaluations={evaluations}",
        "stop.max_wall_s=600",
        "islands.count=2",
        "evaluation.num_evaluators=1",
        "progress=false",
        f"run_dir={run_dir}",
        f"hydra.run.dir={run_dir}/hydra",
    ]
    started = time.monotonic()
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, cwd=str(work)
        )
    except subprocess.TimeoutExpired:
        row.why = f"the run did not end within {RUN_TIMEOUT_S} s"
        return
    finally:
        row.wall_s = time.monotonic() - started
    said = [line for line in done.stderr.splitlines() if line.startswith("rayevolve: ")]
    _read_log(run_dir, row)
    if done.returncode != 0:
        last = said[-1] if said else (done.stderr.strip().splitlines() or ["?"])[-1]
        row.why = last.removeprefix("rayevolve: ")
        lines = done.stderr.splitlines()
        if "--- error ---" in lines:  # the seed's own error, the line after the heading
            row.why += " " + lines[lines.index("--- error ---") + 1].strip()
        row.why = row.why.replace(str(folder) + "/", "")[:300]


def _read_log(run_dir: Path, row: Row) -> None:
    import pandas as pd

    files = sorted((run_dir / "programs").glob("*.parquet"))
    if not files:
        return
    rows = pd.concat([pd.read_parquet(f) for f in files])
    seed = rows[rows["parent_id"].isna()]
    if len(seed) and seed.iloc[0]["status"] == Outcome.OK:
        row.seed_here = float(seed.iloc[0]["score"])
    elif len(seed):
        row.why = f"seed: {seed.iloc[0]['status']}"
    evaluated = rows[rows["status"].notna()]
    row.evaluations = len(evaluated) - len(seed)
    scored = evaluated[evaluated["status"] == Outcome.OK]
    row.ok = len(scored) - (1 if row.seed_here is not None else 0)
    if len(scored):
        row.best = float(scored["score"].max())


def run_direct(folder: Path, row: Row, python: str) -> None:
    """OpenEvolve's evaluator on the seed; called twice where the first call differs
    from the score here (a stochastic seed or evaluator shows in the two calls)."""
    row.seed_direct, row.direct_error = _direct(folder, row, python)
    if (
        row.seed_direct is not None
        and row.seed_here is not None
        and not math.isclose(row.seed_direct, row.seed_here, rel_tol=1e-9, abs_tol=1e-12)
    ):
        row.seed_direct_again, _ = _direct(folder, row, python)


def _direct(folder: Path, row: Row, python: str) -> tuple[float | None, str | None]:
    args = {
        "folder": str(folder),
        "evaluator": row.evaluator,
        "program": row.initial,
        "config": row.config,
    }
    try:
        done = subprocess.run(
            [python, str(HERE / "direct.py"), json.dumps(args)],
            capture_output=True,
            text=True,
            timeout=DIRECT_TIMEOUT_S,
            cwd=str(folder),
        )
    except subprocess.TimeoutExpired:
        return None, f"no result within {DIRECT_TIMEOUT_S} s"
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("DIRECT ")), None)
    if line is None:
        return None, (done.stderr.strip().splitlines() or ["no output"])[-1][:200]
    result = json.loads(line[len("DIRECT ") :])
    if "error" in result:
        return None, result["error"]
    return float(result["score"]), None


def fmt(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.6g}"


def table(rows: list[Row], evaluations: int) -> str:
    head = (
        "| example | runs here | seed here | seed, OpenEvolve's evaluator | "
        f"best after {evaluations} | config: applied / not used | why not / notes |\n"
        "|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in rows:
        runs = "yes" if r.loaded and not r.why else ("loaded" if r.loaded else "no")
        if r.seed_direct is None:
            direct = f"- ({r.direct_error})" if r.direct_error else "-"
        elif r.seed_direct_again is not None:
            direct = f"{fmt(r.seed_direct)}, again {fmt(r.seed_direct_again)}"
        else:
            direct = fmt(r.seed_direct)
        notes = "; ".join(filter(None, ["needs " + ", ".join(r.needs) if r.needs else "", r.why]))
        extra = " ".join(f"`{o}`" for o in overrides(r)) if r.initial else ""
        config = f"{r.mapped} / {r.ignored}" if r.config else "none"
        lines.append(
            f"| {r.name} {extra} | {runs} | {fmt(r.seed_here)} | {direct} | "
            f"{fmt(r.best) if r.evaluations else '-'} | {config} | {notes or ''} |"
        )
    return head + "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("examples", type=Path, help="OpenEvolve's examples/ folder")
    parser.add_argument("--python", default=str(ROOT / ".venv-openevolve" / "bin" / "python"))
    parser.add_argument("--evaluations", type=int, default=20)
    parser.add_argument("--only", nargs="*", help="example names (prefixes) to run")
    parser.add_argument("--out", type=Path, help="write the table (markdown) here too")
    args = parser.parse_args()
    python = str(Path(args.python).absolute())
    rows = []
    work = Path(tempfile.mkdtemp(prefix="rayevolve-compat-"))
    for name, folder in discover(args.examples.resolve()):
        if args.only and not any(name.startswith(o) for o in args.only):
            continue
        row = Row(name)
        if folder is None:
            row.why = "no evaluator*.py: not a task folder (its scripts generate or drive tasks)"
        else:
            choose_files(folder, row)
            row.needs = needs(folder, row, python)
            if not row.needs and not row.why:
                run_here(folder, row, python, args.evaluations, work)
                run_direct(folder, row, python)
        rows.append(row)
        print(
            f"{name}: needs={row.needs} seed={row.seed_here} direct={row.seed_direct} "
            f"({row.direct_error}) best={row.best} evals={row.evaluations} "
            f"wall={row.wall_s:.0f}s why={row.why}",
            file=sys.stderr,
            flush=True,
        )
    shutil.rmtree(work, ignore_errors=True)
    header = (
        f"OpenEvolve examples, {len(rows)} folders; machine: {platform.platform()}, "
        f"{os.cpu_count()} CPUs; Python {platform.python_version()}; judge interpreter {python}\n\n"
    )
    text = header + table(rows, args.evaluations)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
