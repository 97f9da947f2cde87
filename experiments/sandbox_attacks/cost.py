"""What one candidate costs in the sandbox, by launcher and isolation level, side by side.

One `Sandbox` per (launcher, level) is kept, as an evaluator keeps it, and the same
candidate is judged by each in turn, repetition after repetition, so drift and caching
hit all of them alike; the median wall time per candidate, from handing the code over to
holding the verdict (a warm fork server's own CPU is not visible per candidate from
here, so wall time is what is compared).
Used by ``make bench`` (experiments/bench_throughput/bench.py) and by table.py here.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TASKS = {
    "synthetic": ROOT / "experiments/bench_throughput/synthetic_task",
    "circle_packing": ROOT / "experiments/circle_packing",
}
SETTINGS = [  # (launcher, isolation, tool): tool "unshare" is util-linux's, else bubblewrap
    ("spawn", "none", ""),
    ("spawn", "namespaces", ""),
    ("spawn", "namespaces", "unshare"),
    ("forkserver", "none", ""),
    ("forkserver", "namespaces", ""),
    ("forkserver", "namespaces", "unshare"),
]


def measure(repeats: int = 30, settings=SETTINGS, tasks=TASKS) -> list[dict]:
    """Rows: task, launcher, isolation, median wall ms per candidate."""
    from rayevolve.outcome import Outcome
    from rayevolve.result import Isolation
    from rayevolve.sandbox.confinement import Confinement, IsolationUnavailable, resolve
    from rayevolve.sandbox.runner import Sandbox, SandboxLimits

    limits = SandboxLimits(
        timeout_s=60, memory_limit_mb=2048, output_limit_bytes=16384, file_limit_bytes=64 << 20
    )
    rows = []
    for name, folder in tasks.items():
        code = (folder / "initial_program.py").read_text()
        boxes = {}
        for launcher, level, tool in settings:
            try:
                isolation = resolve(level)
            except IsolationUnavailable as exc:
                print(f"  {launcher}/{level}: not available here ({exc})", flush=True)
                continue
            if tool == "unshare":
                isolation = Confinement(Isolation.NAMESPACES, "unshare", options={"unshare": True})
            label = f"{level} ({tool or 'bwrap'})" if level == "namespaces" else level
            boxes[(launcher, label)] = Sandbox.of_folder(
                folder, limits=limits, launcher=launcher, isolation=isolation
            )
        wall: dict = {key: [] for key in boxes}
        bare = []
        try:
            for _ in range(repeats):
                started = time.perf_counter()
                subprocess.run([sys.executable, "-c", "pass"], check=True)
                bare.append(time.perf_counter() - started)
                for key, box in boxes.items():
                    started = time.perf_counter()
                    result = box.evaluate(code, ".py")
                    wall[key].append(time.perf_counter() - started)
                    assert result.status == Outcome.OK, result.artifacts
        finally:
            for box in boxes.values():
                box.close()
        rows.append(
            {
                "task": name,
                "launcher": "bare interpreter",
                "isolation": "-",
                "wall_ms": statistics.median(bare) * 1e3,
            }
        )
        for (launcher, level), samples in wall.items():
            rows.append(
                {
                    "task": name,
                    "launcher": launcher,
                    "isolation": level,
                    "wall_ms": statistics.median(samples) * 1e3,
                }
            )
            print(f"  {rows[-1]}", flush=True)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        "| task | launcher | isolation | wall per candidate (ms) |",
        "|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['task']} | {row['launcher']} | {row['isolation']} | {row['wall_ms']:.1f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    print(markdown(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 30)))
