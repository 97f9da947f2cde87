"""How long the web view takes to refresh, by log size.

    python experiments/bench_ui/refresh.py RUN_DIR [--copies 1 10 30]

For each N in --copies, a sweep folder of N copies of RUN_DIR is made in a temporary
folder, and one refresh is timed in three parts, as the server does them: reading the
log the first time, building every view (charts, tables, the best program's panel and
its seed-to-best diff), a refresh when no file changed (what an idle run costs at every
tick), and a refresh after one new Parquet part (what a live run costs when it writes).
One process, one machine, side by side; no figure here is a target.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from rayevolve import analysis
from rayevolve.ui import views
from rayevolve.ui.app import LiveLog


def one_refresh(path: Path) -> dict:
    live = LiveLog(path)
    started = time.perf_counter()
    data = live.refresh()
    load_s = time.perf_counter() - started
    run = data.runs[0].name
    best = analysis.best_program(data, run)
    started = time.perf_counter()
    views.status_line(data, str(path))
    views.best_figure(data, run)
    views.islands_figure(data, run)
    views.migrations_figure(data, run)
    views.lineage_figure(data, run, best["program_id"])
    views.failures_table(data, run)
    views.placement_table(data, run)
    analysis.seed_to_best_diff(analysis.for_run(data, run), best["program_id"])
    views.program_panel(data, best["program_id"], None)
    runs = analysis.sweep_table(data)
    views.run_options(runs)
    if len(data.runs) > 1:
        views.sweep_table(runs)
        views.sweep_figure(data, runs)
    views_s = time.perf_counter() - started
    started = time.perf_counter()
    live.refresh()
    idle_s = time.perf_counter() - started
    # one new part in one run, as a live run's log actor writes them
    part = sorted((data.runs[0] / "programs").glob("*.parquet"))[0]
    shutil.copyfile(part, part.with_name("zz-new-" + part.name))
    started = time.perf_counter()
    live.refresh()
    grown_s = time.perf_counter() - started
    return {"rows": len(data.programs), "runs": len(data.runs), "load_s": load_s,
            "views_s": views_s, "idle_s": idle_s, "grown_s": grown_s}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a finished run directory to copy")
    parser.add_argument("--copies", type=int, nargs="+", default=[1, 10, 30])
    args = parser.parse_args()
    print(
        "| runs | rows | first read (s) | every view (s) | reread, nothing new (s) | reread, one new part (s) |"
    )
    print("|---|---|---|---|---|---|")
    for copies in args.copies:
        with tempfile.TemporaryDirectory() as folder:
            for i in range(copies):
                shutil.copytree(args.run, Path(folder) / f"{i}_seed={i}")
            r = one_refresh(Path(folder))
        print(
            f"| {r['runs']} | {r['rows']} | {r['load_s']:.3f} | {r['views_s']:.3f} "
            f"| {r['idle_s']:.4f} | {r['grown_s']:.3f} |"
        )


if __name__ == "__main__":
    main()
