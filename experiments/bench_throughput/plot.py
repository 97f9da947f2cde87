"""The benchmark's figure: achieved / ideal per setting, and per-evaluation cost by log size."""

from __future__ import annotations

from pathlib import Path


def plot(grid, sizes, openevolve, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    labels = [
        f"{m.workload.islands}x{m.workload.in_flight}\nW={m.workload.evaluators} C={m.workload.concurrency}"
        for m in grid
    ]
    left.bar(range(len(grid)), [m.ratio for m in grid], color="#4477aa")
    left.axhline(1.0, color="black", linewidth=0.8)
    left.axhline(0.95, color="#cc6677", linestyle="--", linewidth=0.8, label="target 0.95")
    left.set_xticks(range(len(grid)), labels, fontsize=8)
    left.set_ylim(0, 1.1)
    left.set_ylabel("achieved / ideal")
    left.set_title("latency 1.0 s, evaluation 0.5 s (islands x in_flight)")
    left.legend(loc="lower right")
    if sizes:
        right.plot(
            [s["logged"] for s in sizes],
            [s["per_eval_ms"] for s in sizes],
            "o-",
            label="rayevolve (sandboxed)",
        )
    if openevolve:
        right.plot(
            [o["stored"] for o in openevolve],
            [o["per_eval_ms"] for o in openevolve],
            "s-",
            label="OpenEvolve",
        )
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("programs stored")
    right.set_ylabel("wall time per evaluation (ms)")
    right.set_title("zero-cost workload, 2 parallel evaluations")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
