"""Throughput benchmark (``make bench``): is the scarce resource kept busy, and at what cost?

Sections, each measured in this one process on one local Ray instance, side by side:

1. grid: achieved / ideal evaluations per second for several (islands, in_flight, W, C)
   at model latency 1.0 s and evaluation 0.5 s.
2. overhead: the zero-cost workload (latency 0, evaluation 0), where every millisecond
   per evaluation is the framework's (driver, actors, mutator, HTTP, sandbox, log);
   and the run log's write cost per row.
3. scale: the zero-cost workload resumed from logs of 10^2 to 10^5 programs (time to
   resume, per-evaluation cost), and the grid's target setting with 64 islands (memory
   of each actor).
4. OpenEvolve: the same zero-cost workload, task, model server and parallel evaluations,
   at database sizes of 10^2 to 10^4 programs, against rayevolve at the same log sizes.

Writes results.md, results.csv and achieved_vs_ideal.png beside this file.
Usage: ``python bench.py [--quick] [--openevolve-python PATH]``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from islands import many_islands  # noqa: E402
from scale import grow_log  # noqa: E402
from workload import MODEL, TASK, Measurement, Workload, run, steady_rate  # noqa: E402

from rayevolve.run.summary import package_versions  # noqa: E402
from rayevolve.testing.openai_server import (  # noqa: E402
    ScriptedOpenAIServer,
    perturbing_responder,
    program_in,
)

# OpenEvolve's prompt: "# Current Program Information" first, its history (with code
# blocks), then the parent under a heading of its own
OPENEVOLVE_PARENT = re.compile(
    r"^# Current Program\n```[\w+-]*\n(.*?)```", re.DOTALL | re.MULTILINE
)
TARGET = dict(latency_s=1.0, eval_s=0.5)
# (islands, in_flight, W, C): the target is 8 islands, W = 8, C = 16
GRID = [(8, 2, 8, 16), (8, 4, 8, 16), (8, 6, 8, 16), (4, 8, 8, 16), (16, 2, 8, 16)]
LOG_SIZES = [100, 1_000, 10_000, 100_000]
OPENEVOLVE_SIZES = [100, 1_000, 10_000]
OPENEVOLVE_REPEATS = 3  # alternations of rayevolve and OpenEvolve per size (medians)
ZERO = dict(latency_s=0.0, eval_s=0.0, concurrency=64)
ZERO_SHAPE = dict(islands=4, in_flight=4, evaluators=2)  # W = 2 = this machine's cores
ROLE_NAMES = {
    "sandbox": "sandboxed candidates (fork server and its children)",
    "ray": "Ray (raylet, GCS)",
    "driver + model server": "driver and the scripted model server (one process)",
}


def locate_parent(messages: list[dict]) -> str | None:
    """The program to change: rayevolve's prompt shows the parent first; OpenEvolve's
    shows its history first and the parent under "# Current Program"."""
    users = [m["content"] for m in messages if m.get("role") == "user"]
    found = OPENEVOLVE_PARENT.search(users[-1]) if users else None
    return found.group(1) if found else program_in(messages)


def server(concurrency: int, latency_s: float) -> ScriptedOpenAIServer:
    return ScriptedOpenAIServer(
        models=[MODEL],
        latency_s=latency_s,
        max_concurrent=concurrency,
        responder=perturbing_responder(seed=7, locate=locate_parent),
    )


def measure(w: Workload, work: Path, name: str, **kwargs) -> Measurement:
    with server(w.concurrency, w.latency_s) as model:
        m = run(w, model.base_url, work / name, **kwargs)
    print(
        f"  {w.label()}: {m.achieved_per_s:.2f} eval/s, ideal {w.ideal_per_s:.2f}, "
        f"ratio {m.ratio:.3f} ({m.stopped_because})",
        flush=True,
    )
    return m


def bench_grid(work: Path, quick: bool) -> list[Measurement]:
    print("grid: latency 1.0 s, evaluation 0.5 s", flush=True)
    seconds = 12 if quick else 26
    out = []
    for islands, in_flight, w, c in GRID[:2] if quick else GRID:
        ideal = min(c / TARGET["latency_s"], w / TARGET["eval_s"])
        load = Workload(
            islands, in_flight, w, c, **TARGET,
            evaluations=int(ideal * seconds), warmup=int(ideal * 3),
        )  # fmt: skip
        out.append(measure(load, work, f"grid-{islands}-{in_flight}-{w}-{c}"))
    return out


def zero_cost(evaluations: int, warmup: int) -> Workload:
    return Workload(**ZERO_SHAPE, **ZERO, evaluations=evaluations, warmup=warmup)


def bench_launch(repeats: int = 30) -> list[dict]:
    """Median cost of one candidate by launcher (spawn, fork server) and isolation level
    (none, namespaces), against a bare interpreter start; alternated, so drift hits all
    alike. On the synthetic task and on circle packing (whose evaluator imports numpy)."""
    sys.path.insert(0, str(ROOT / "experiments" / "sandbox_attacks"))
    import cost

    return cost.measure(repeats)


def bench_log_write(rows: int = 20_000, batch: int = 256, durable: bool = False) -> dict:
    """Microseconds and bytes per programs row, written in batches as the log actor does;
    `durable`: each row first in the write-ahead log (one fsynced append per row, the
    worst case: islands send a batch of rows per call)."""
    from rayevolve.log import program_row
    from rayevolve.log.writer import ParquetLogWriter
    from rayevolve.outcome import Outcome
    from rayevolve.program import Program
    from rayevolve.result import EvalResult

    code = (TASK / "initial_program.py").read_text()
    program = Program.create(code, language="python", parent=None, island=0).with_result(
        EvalResult(Outcome.OK, score=1.0, metrics={"m": 1.0}, wall_s=0.01)
    )
    row = program_row("bench", program, mutation_s=0.01, eval_call_s=0.02)
    with tempfile.TemporaryDirectory() as tmp:
        writer = ParquetLogWriter(tmp, flush_rows=batch, flush_interval_s=3600, durable=durable)
        started = time.perf_counter()
        for i in range(rows):
            varied = {**row, "program_id": f"p{i}", "code": code.replace("1.0", repr(1 + i / rows))}
            if writer.append("programs", [varied]):
                writer.flush("programs")
        writer.flush()
        elapsed = time.perf_counter() - started
        size = sum(f.stat().st_size for f in Path(tmp, "programs").glob("*.parquet"))
    return {"us_per_row": elapsed / rows * 1e6, "bytes_per_row": size / rows}


def bench_log_sizes(
    work: Path, quick: bool, openevolve: str | None, repeats: int
) -> tuple[list, list, str]:
    """Resume the zero-cost workload from logs of each size; per-evaluation cost there.
    Where OpenEvolve is installed, it runs right after at the same size, alternating with
    rayevolve `repeats` times (each rayevolve run resumes the same log, restored): medians
    of side-by-side runs, so drift on the machine hits both alike. Returns (ours,
    OpenEvolve's, why not)."""
    print("scale: resume from logs of growing size (zero-cost workload)", flush=True)
    more = 400 if quick else 900
    out, theirs, missing = [], [], ""
    if not openevolve or not Path(openevolve).exists():
        missing = f"not measured: no OpenEvolve environment at {openevolve}"
    for size in LOG_SIZES[:3] if quick else LOG_SIZES:
        run_dir, pristine = work / f"log-{size}", work / f"log-{size}-as-grown"
        seed_run = zero_cost(evaluations=ZERO_SHAPE["islands"], warmup=0)
        with server(ZERO["concurrency"], 0.0) as model:
            run(seed_run, model.base_url, run_dir)
        grow_log(run_dir, size, ZERO_SHAPE["islands"])
        shutil.copytree(run_dir, pristine)
        log_mb = sum(f.stat().st_size for f in run_dir.rglob("*.parquet")) / 2**20
        total = size + seed_run.evaluations
        compare = not missing and size in OPENEVOLVE_SIZES[: 2 if quick else None]
        ours, oe_runs = [], []
        for attempt in range(repeats if compare else 1):
            if attempt:
                shutil.rmtree(run_dir)
                shutil.copytree(pristine, run_dir)
            with server(ZERO["concurrency"], 0.0) as model:
                load = zero_cost(evaluations=total + more, warmup=100)
                m = run(load, model.base_url, run_dir, resume=run_dir)
            ours.append(m)
            print(
                f"  {total} logged: first new evaluation {m.first_s:.2f} s after the resume "
                f"started, then {m.per_eval_ms:.2f} ms/eval",
                flush=True,
            )
            if compare:
                try:
                    oe_runs.append(openevolve_at(openevolve, size, work))
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    missing, compare = str(exc), False
        out.append(
            {
                "logged": total,
                "resume_s": statistics.median(m.first_s for m in ours),
                "per_eval_ms": statistics.median(m.per_eval_ms for m in ours),
                "achieved_per_s": statistics.median(m.achieved_per_s for m in ours),
                "rates": [m.achieved_per_s for m in ours],
                "log_mb": log_mb,
                "peak_mb": ours[0].actor_peak_mb,
            }
        )
        if oe_runs:
            rates = [o["achieved_per_s"] for o in oe_runs]
            theirs.append(
                {
                    **oe_runs[0],
                    "achieved_per_s": statistics.median(rates),
                    "per_eval_ms": 1e3 / statistics.median(rates),
                    "rates": rates,
                }
            )
    return out, theirs, missing


def openevolve_at(python: str, size: int, work: Path) -> dict:
    """OpenEvolve's steady evaluations per second with `size` programs in its database."""
    iterations = {100: 600, 1_000: 400, 10_000: 120}.get(size, 200)
    result_path = work / f"openevolve-{size}.json"
    args = {
        "task_dir": str(TASK),
        "model": MODEL,
        "iterations": iterations,
        "workers": ZERO_SHAPE["evaluators"],
        "islands": ZERO_SHAPE["islands"],
        "preload": size,
        "eval_s": 0.0,
        "seed": 7,
        "out": str(result_path),
    }
    with server(ZERO["concurrency"], 0.0) as model:
        args["base_url"] = model.base_url
        done = subprocess.run(
            [python, str(HERE / "openevolve_runner.py"), json.dumps(args)],
            capture_output=True,
            text=True,
            timeout=900,
        )
    if done.returncode != 0:
        raise RuntimeError(f"OpenEvolve failed at {size} programs: {done.stderr[-2000:]}")
    result = json.loads(result_path.read_text())
    # OpenEvolve keeps 2 x workers iterations pending: those drain at the end
    rate = steady_rate(
        result["times"], warmup=min(50, iterations // 5), cooldown=2 * ZERO_SHAPE["evaluators"]
    )
    print(f"  OpenEvolve, {size} stored: {rate:.1f} eval/s ({1e3 / rate:.2f} ms/eval)", flush=True)
    return {
        "stored": size,
        "evaluations": len(result["times"]),
        "achieved_per_s": rate,
        "per_eval_ms": 1e3 / rate,
        "version": result["version"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer settings, shorter runs")
    parser.add_argument(
        "--openevolve-python",
        default=str(ROOT / ".venv-openevolve" / "bin" / "python"),
        help="interpreter of an environment with openevolve installed",
    )
    args = parser.parse_args()
    import ray

    started = time.time()
    # one Ray for every run; 16 logical CPUs so W = 8 sleeping evaluators fit on 2 cores
    ray.init(
        num_cpus=16, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False
    )
    print("sandbox: cost of one candidate by launcher", flush=True)
    launch = bench_launch(10 if args.quick else 30)
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp:
        work = Path(tmp)
        grid = bench_grid(work, args.quick)
        print("overhead: zero-cost workload", flush=True)
        zero = measure(zero_cost(800 if args.quick else 2000, warmup=200), work, "zero-cost")
        log_write = bench_log_write()
        log_write["wal_us_per_row"] = bench_log_write(rows=5_000, durable=True)["us_per_row"]
        sizes, oe, oe_missing = bench_log_sizes(
            work, args.quick, args.openevolve_python, 2 if args.quick else OPENEVOLVE_REPEATS
        )
        print("many islands: Ray's floor, waiting islands, 4 / 64 / 256 islands", flush=True)
        islands_section, island_runs = many_islands(work, measure, server, run, args.quick)
        # the memory and CPU table of the scale section: 64 islands, one actor each
        wide = next(m for k, m in island_runs if k == 1 and m.workload.islands == 64)
    ray.shutdown()
    oe_version = oe[0]["version"] if oe else oe_missing
    report(
        grid,
        zero,
        launch,
        log_write,
        sizes,
        wide,
        islands_section,
        oe,
        oe_version,
        time.time() - started,
        args,
    )


def report(
    grid, zero, launch, log_write, sizes, wide, islands_section, oe, oe_version, wall_s, args
) -> None:
    from plot import plot

    versions = package_versions()
    command = "make bench" + (" (--quick)" if args.quick else "")
    header = (
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.node() or 'this machine'}: "
        f"{os.cpu_count()} CPUs, {platform.platform()}, Python {versions['python']}, "
        f"Ray {versions['ray']}, pyarrow {versions['pyarrow']}, rayevolve {versions['rayevolve']}"
        f"{', OpenEvolve ' + oe_version if oe_version and oe else ''}. "
        f"Command: `{command}` ({wall_s / 60:.1f} min). All runs below in one process, on one "
        "local Ray, against one scripted OpenAI-protocol server on loopback."
    )
    csv_rows: list[list] = []
    lines = ["# Throughput benchmark", "", header, ""]

    lines += [
        "## Achieved / ideal (model latency 1.0 s, evaluation 0.5 s)",
        "",
        "Ideal = min(C / latency, W / evaluation). Achieved = steady-state rate: the slope of "
        "completions against time, the first 3 s and the final drain left out. In-flight bound = islands x in_flight / (latency + evaluation): "
        "fewer children in progress than that cannot keep both resources busy (Little's law), "
        "so `in_flight` must be set above ideal x (latency + evaluation) / islands.",
        "",
        "| islands | in_flight | W | C | ideal eval/s | in-flight bound | achieved eval/s | achieved / ideal |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in grid:
        w = m.workload
        lines.append(
            f"| {w.islands} | {w.in_flight} | {w.evaluators} | {w.concurrency} | "
            f"{w.ideal_per_s:.1f} | {w.in_flight_bound_per_s:.1f} | {m.achieved_per_s:.2f} | "
            f"{m.ratio:.3f} |"
        )
        csv_rows.append(["grid", w.label(), "achieved_over_ideal", f"{m.ratio:.4f}"])
        csv_rows.append(["grid", w.label(), "achieved_per_s", f"{m.achieved_per_s:.3f}"])

    lines += [
        "",
        "## Framework overhead (zero-cost workload)",
        "",
        "Latency 0, evaluation 0: the wall time per evaluation is all framework (driver, "
        "island/mutator/pool/evaluator/log actors, the HTTP round trip, the sandboxed child "
        f"with its process start, the Parquet log), {ZERO_SHAPE['islands']} islands x "
        f"{ZERO_SHAPE['in_flight']} in flight, W = {ZERO_SHAPE['evaluators']}, on 2 cores.",
        "",
        "| measurement | value |",
        "|---|---|",
        f"| evaluations per second | {zero.achieved_per_s:.1f} |",
        f"| wall time per evaluation | {zero.per_eval_ms:.2f} ms |",
        f"| sandboxed child per candidate (fork server), median | {zero.eval_s_median * 1e3:.2f} ms |",
        f"| fresh start to the first evaluation done (actors, seed) | {zero.first_s:.2f} s |",
        f"| run log write per program row (batches of 256) | {log_write['us_per_row']:.1f} us, "
        f"{log_write['bytes_per_row']:.0f} bytes on disk |",
        f"| the same with the write-ahead log (one fsynced append per row) | "
        f"{log_write['wal_us_per_row']:.1f} us |",
    ]
    lines += [
        "",
        "Where the CPU goes, per evaluation (summed over each kind of process, sampled from "
        "`/proc` during the run; the fork server's share includes the candidates it forked):",
        "",
        "| process | CPU per evaluation |",
        "|---|---|",
    ]
    for role, ms in sorted(zero.cpu_ms_per_eval.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {ROLE_NAMES.get(role, role)} | {ms:.2f} ms |")
        csv_rows.append(["overhead", "zero-cost", f"cpu_ms_per_eval:{role}", f"{ms:.3f}"])
    total = sum(zero.cpu_ms_per_eval.values())
    lines.append(
        f"| **total** | **{total:.2f} ms** (on 2 cores: at least {total / 2:.2f} ms of wall time) |"
    )
    csv_rows += [
        ["overhead", "zero-cost", "per_eval_ms", f"{zero.per_eval_ms:.3f}"],
        ["overhead", "zero-cost", "sandbox_child_ms", f"{zero.eval_s_median * 1e3:.3f}"],
        ["overhead", "log", "us_per_row", f"{log_write['us_per_row']:.2f}"],
        ["overhead", "log", "bytes_per_row", f"{log_write['bytes_per_row']:.1f}"],
        ["overhead", "log", "wal_us_per_row", f"{log_write['wal_us_per_row']:.2f}"],
    ]

    sys.path.insert(0, str(ROOT / "experiments" / "sandbox_attacks"))
    import cost

    lines += [
        "",
        "One candidate through the sandbox by launcher and isolation level (median wall time, "
        "the evaluation itself included), against a bare `python -c pass` "
        "(see docs/sandbox.md):",
        "",
        cost.markdown(launch),
    ]
    for row in launch:
        csv_rows.append(
            [
                "sandbox",
                row["task"],
                f"{row['launcher']}/{row['isolation']}_ms",
                f"{row['wall_ms']:.2f}",
            ]
        )

    base = sizes[0]["per_eval_ms"] if sizes else float("nan")
    lines += [
        "",
        "## Scale: resume and per-evaluation cost as the log grows (zero-cost workload)",
        "",
        "A real run's log grown with generated evaluated programs, then resumed; "
        "resume time = from starting the controller on the log to the first new evaluation "
        "done (actors started, islands rebuilt from the log).",
        "",
        "| programs logged | log size | resume to first evaluation | per-evaluation | vs smallest log |",
        "|---|---|---|---|---|",
    ]
    for s in sizes:
        lines.append(
            f"| {s['logged']:,} | {s['log_mb']:.2f} MiB | {s['resume_s']:.2f} s | "
            f"{s['per_eval_ms']:.2f} ms | {s['per_eval_ms'] / base:.2f}x |"
        )
        csv_rows.append(["scale", f"logged={s['logged']}", "resume_s", f"{s['resume_s']:.3f}"])
        csv_rows.append(
            ["scale", f"logged={s['logged']}", "per_eval_ms", f"{s['per_eval_ms']:.3f}"]
        )
    lines += [
        "",
        f"64 islands (in_flight 1, W = 8, C = 16, latency 1.0 s, evaluation 0.5 s): "
        f"{wide.achieved_per_s:.2f} eval/s of an ideal {wide.workload.ideal_per_s:.1f} "
        f"({wide.ratio:.3f}).",
        "",
        "| actor | processes (64 islands) | peak RSS (64 islands) | peak RSS "
        f"({sizes[-1]['logged'] if sizes else 0:,}-program log resumed) |",
        "|---|---|---|---|",
    ]
    largest = sizes[-1]["peak_mb"] if sizes else {}
    for name in sorted(set(wide.actor_peak_mb) | set(largest)):
        lines.append(
            f"| {name} | {wide.actor_counts.get(name, 0)} | {wide.actor_peak_mb.get(name, float('nan')):.0f} MiB | "
            f"{largest.get(name, float('nan')):.0f} MiB |"
        )
    csv_rows.append(["scale", "islands=64", "achieved_over_ideal", f"{wide.ratio:.4f}"])
    busiest = sorted(wide.cpu_ms_per_eval.items(), key=lambda kv: -kv[1])
    lines += [
        "",
        "CPU per evaluation with 64 islands: "
        + ", ".join(f"{ROLE_NAMES.get(role, role)} {ms:.1f} ms" for role, ms in busiest)
        + f" (total {sum(ms for _, ms in busiest):.1f} ms; 2 cores give "
        f"{2e3 / wide.workload.ideal_per_s:.0f} ms per evaluation at the ideal rate).",
    ]

    lines += ["", *islands_section.rstrip("\n").split("\n")]
    lines += ["", "## Side by side with OpenEvolve (zero-cost workload)", ""]
    if oe:
        ours = {s["logged"] - ZERO_SHAPE["islands"]: s for s in sizes}
        lines += [
            f"Same task, same scripted server (latency 0), evaluation 0, "
            f"{ZERO_SHAPE['evaluators']} parallel evaluations and {ZERO_SHAPE['islands']} islands "
            "in both. OpenEvolve's database preloaded with N programs through its API; "
            "rayevolve resumed from a log of N programs. OpenEvolve evaluates in its worker "
            "processes without a sandbox and its checkpoints are off; rayevolve sandboxes "
            "every candidate.",
            "",
            f"Each size: rayevolve and OpenEvolve alternately, {len(oe[0]['rates'])} runs of "
            "each (rayevolve resuming the same log each time); medians, with every run's "
            "rate in brackets. This VM's speed drifts by up to ±20% between runs a minute "
            "apart, so single runs are not to be trusted.",
            "",
            "| programs stored | OpenEvolve eval/s | rayevolve eval/s | ratio of medians |",
            "|---|---|---|---|",
        ]

        def spread(rates: list[float]) -> str:
            return " / ".join(f"{r:.0f}" for r in rates)

        for o in oe:
            r = ours.get(o["stored"])
            ratio = r["achieved_per_s"] / o["achieved_per_s"] if r else float("nan")
            lines.append(
                f"| {o['stored']:,} | {o['achieved_per_s']:.1f} ({spread(o['rates'])}) | "
                f"{r['achieved_per_s'] if r else float('nan'):.1f} "
                f"({spread(r['rates']) if r else ''}) | {ratio:.2f}x |"
            )
            csv_rows.append(
                [
                    "openevolve",
                    f"stored={o['stored']}",
                    "openevolve_per_s",
                    f"{o['achieved_per_s']:.3f}",
                ]
            )
            csv_rows.append(
                ["openevolve", f"stored={o['stored']}", "rayevolve_over_openevolve", f"{ratio:.3f}"]
            )
    else:
        lines.append(f"OpenEvolve {oe_version}")

    plot(grid, sizes, oe, HERE / "achieved_vs_ideal.png")
    lines += ["", "![achieved / ideal and per-evaluation cost](achieved_vs_ideal.png)", ""]
    text = "\n".join(lines)
    (HERE / "results.md").write_text(text)
    with open(HERE / "results.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["section", "setting", "metric", "value"])
        writer.writerows(csv_rows)
    print("\n" + text)


if __name__ == "__main__":
    main()
