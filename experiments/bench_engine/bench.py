"""Engine overhead, measured side by side in one process (``make bench``).

1. Sandbox cost: one candidate through `run_candidate` (new session, limits, private
   directory, result file, output capture) against a bare ``python -c pass`` spawn.
2. Run log cost: microseconds and bytes per program row written as Parquet batches.
3. Engine throughput on a zero-cost task: achieved evaluations/s of a full run (islands,
   mutator, pool, log) against the ideal W / sandbox cost, W evaluators busy all the time.

Writes results.md and results.csv beside this file and prints the table.
"""

from __future__ import annotations

import csv
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from rayevolve.config import to_run_config  # noqa: E402
from rayevolve.controller import Controller, package_versions  # noqa: E402
from rayevolve.evaluation.result import EvalResult, EvalStatus  # noqa: E402
from rayevolve.evaluation.sandbox import SandboxLimits, run_candidate  # noqa: E402
from rayevolve.program import Program  # noqa: E402
from rayevolve.runlog import ParquetLogWriter, program_row  # noqa: E402

TASK = HERE / "zero_cost_task"
REPEATS = 40


def bench_spawn() -> dict:
    limits = SandboxLimits(timeout_s=30, memory_limit_mb=2048, output_limit_bytes=16384, file_limit_bytes=64 << 20)
    code = (TASK / "initial_program.py").read_text()
    bare, sandboxed = [], []
    for _ in range(REPEATS):  # alternate, so drift hits both alike
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare.append(time.perf_counter() - t)
        t = time.perf_counter()
        result = run_candidate(code, suffix=".py", evaluator=TASK / "evaluator.py", task_dir=TASK, limits=limits)
        sandboxed.append(time.perf_counter() - t)
        assert result.status == EvalStatus.OK, result.artifacts
    return {"bare_ms": statistics.median(bare) * 1e3, "sandbox_ms": statistics.median(sandboxed) * 1e3}


def bench_log(rows: int = 20_000, batch: int = 256) -> dict:
    code = (ROOT / "experiments/circle_packing/initial_program.py").read_text()
    program = Program.create(code, language="python", parent=None, island=0).with_result(
        EvalResult(EvalStatus.OK, score=2.5, metrics={f"m{i}": float(i) for i in range(6)}, artifacts={"stdout": "x" * 200}, wall_s=0.1)
    )
    row = program_row("bench", program, mutation_s=0.01, eval_call_s=0.1)
    with tempfile.TemporaryDirectory() as tmp:
        writer = ParquetLogWriter(tmp, flush_rows=batch, flush_interval_s=3600)
        started = time.perf_counter()
        for i in range(rows):
            varied = {**row, "program_id": f"p{i}", "code": f"{code}\n# variant {i * 7919 % 100003}\n", "score": 2.5 + i * 1e-6}
            if writer.append("programs", [varied]):
                writer.flush("programs")
        writer.flush()
        elapsed = time.perf_counter() - started
        size = sum(f.stat().st_size for f in Path(tmp, "programs").glob("*.parquet"))
    return {"log_us_per_row": elapsed / rows * 1e6, "log_bytes_per_row": size / rows}


def bench_engine(evaluations: int = 240, evaluators: int = 2) -> dict:
    config = to_run_config(
        {
            "task": {"name": "zero_cost", "path": str(TASK), "features": [{"name": "code_length", "min": 0, "max": 200, "bins": 4}]},
            "islands": {"count": 4, "in_flight": 2},
            "evaluation": {"num_evaluators": evaluators},
            "stop": {"max_evaluations": evaluations},
            "progress": False,
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        summary = Controller(config, Path(tmp) / "run", [ROOT]).run()
    return {"evaluations": summary.evaluations, "engine_wall_s": summary.wall_s, "achieved_per_s": summary.evaluations / summary.wall_s}


def main() -> None:
    spawn = bench_spawn()
    log = bench_log()
    engine = bench_engine()
    evaluators = 2
    ideal = evaluators / (spawn["sandbox_ms"] / 1e3)
    rows = [
        ("bare `python -c pass` spawn, median", f"{spawn['bare_ms']:.1f} ms", ""),
        ("sandboxed candidate (zero-cost evaluator), median", f"{spawn['sandbox_ms']:.1f} ms", f"{spawn['sandbox_ms'] / spawn['bare_ms']:.2f}x bare spawn"),
        ("run log write, per program row (batches of 256)", f"{log['log_us_per_row']:.1f} us", f"{log['log_bytes_per_row']:.0f} bytes/row on disk"),
        (f"engine, zero-cost task, {evaluators} evaluators, 4 islands", f"{engine['achieved_per_s']:.1f} eval/s", f"{engine['achieved_per_s'] / ideal:.2f} of ideal ({ideal:.1f} eval/s = W / sandbox cost)"),
        ("engine, per-evaluation wall time", f"{1e3 / engine['achieved_per_s']:.1f} ms", f"sandbox alone: {spawn['sandbox_ms'] / evaluators:.1f} ms per evaluator slot"),
    ]
    versions = package_versions()
    header = (
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.node() or 'this machine'}: {os.cpu_count()} CPUs, "
        f"Python {versions['python']}, Ray {versions['ray']}, pyarrow {versions['pyarrow']}. Command: `make bench`."
    )
    table = ["| measurement | value | ratio / note |", "|---|---|---|"] + [f"| {a} | {b} | {c} |" for a, b, c in rows]
    text = "# Engine overhead\n\n" + header + "\n\n" + "\n".join(table) + "\n"
    (HERE / "results.md").write_text(text)
    with open(HERE / "results.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["measurement", "value", "note"])
        writer.writerows(rows)
    print(text)


if __name__ == "__main__":
    main()
