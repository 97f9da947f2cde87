"""OpenEvolve on the benchmark's workload, for the side-by-side comparison.

Runs in its own environment (``.venv-openevolve``, made by ``make bench``; OpenEvolve is
not a dependency of rayevolve) with one JSON argument:

    {"base_url", "model", "task_dir", "iterations", "workers", "islands", "preload",
     "eval_s", "seed", "out"}

It builds OpenEvolve's controller through its public API, against the same scripted
model server and the same synthetic task as rayevolve, with `workers` parallel
evaluations. `preload` programs (distinct variants of the initial program, scored by
the task's own evaluator) are added to its database first, so the rate can be measured
at a given database size without running thousands of iterations to get there.
Checkpoints are off during the measurement (their cost also grows with the database):
what is measured is the per-iteration cost alone. Writes to `out` the wall-clock times at
which evaluations finished, as the evaluator saw them.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

WRAPPER = """
import importlib.util, os, time
_spec = importlib.util.spec_from_file_location("bench_task_evaluator", {evaluator!r})
_task = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_task)

def evaluate(program_path):
    result = _task.evaluate(program_path)
    with open(os.environ["BENCH_TIMES_FILE"], "a") as handle:
        handle.write(repr(time.time()) + "\\n")
    return result
"""


def variant(initial: str, i: int) -> str:
    """A distinct program: the initial one with its constants changed."""
    return initial.replace("A = 1.0", f"A = {1.0 + i * 1e-4!r}").replace(
        "D = 0.25", f"D = {0.25 + (i % 97) * 1e-3!r}"
    )


def main(args: dict) -> None:
    from openevolve.config import Config
    from openevolve.controller import OpenEvolve
    from openevolve.database import Program

    task = Path(args["task_dir"])
    work = Path(tempfile.mkdtemp(prefix="bench-openevolve-"))
    times = work / "times.txt"
    wrapper = work / "evaluator.py"
    wrapper.write_text(WRAPPER.format(evaluator=str(task / "evaluator.py")))
    os.environ["BENCH_TIMES_FILE"] = str(times)
    os.environ["BENCH_EVAL_S"] = repr(float(args["eval_s"]))
    config = Config.from_dict(
        {
            "max_iterations": args["iterations"],
            "checkpoint_interval": 10**9,
            "log_level": "WARNING",
            "random_seed": args["seed"],
            "diff_based_evolution": True,
            "llm": {
                "api_base": args["base_url"],
                "api_key": "unused",
                "models": [{"name": args["model"], "weight": 1.0}],
                "timeout": 60,
                "retries": 1,
                "temperature": 0.8,
            },
            "database": {
                "population_size": args["preload"] + args["iterations"] + 100,
                "num_islands": args["islands"],
                "in_memory": True,
                "random_seed": args["seed"],
            },
            "evaluator": {
                "parallel_evaluations": args["workers"],
                "cascade_evaluation": False,
                "timeout": 60,
            },
        }
    )
    controller = OpenEvolve(
        str(task / "initial_program.py"), str(wrapper), config, output_dir=str(work / "out")
    )
    logging.getLogger().setLevel(logging.WARNING)
    spec = importlib.util.spec_from_file_location("bench_task", task / "evaluator.py")
    scorer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scorer)
    initial = (task / "initial_program.py").read_text()
    program_file = work / "variant.py"
    preload_started = time.perf_counter()
    os.environ["BENCH_EVAL_S"] = "0"
    for i in range(args["preload"]):
        code = variant(initial, i + 1)
        program_file.write_text(code)
        metrics = scorer.evaluate(str(program_file))
        program = Program(id=f"preloaded-{i}", code=code, metrics=metrics, iteration_found=0)
        controller.database.add(program, iteration=0, target_island=i % args["islands"])
    os.environ["BENCH_EVAL_S"] = repr(float(args["eval_s"]))
    preload_s = time.perf_counter() - preload_started
    started = time.time()
    asyncio.run(controller.run(iterations=args["iterations"]))
    finished = sorted(float(t) for t in times.read_text().split()) if times.exists() else []
    Path(args["out"]).write_text(
        json.dumps(
            {
                "times": [t for t in finished if t >= started],
                "stored": len(controller.database.programs),
                "preload_s": preload_s,
                "wall_s": time.time() - started,
                "version": _version(),
            }
        )
    )


def _version() -> str:
    from importlib.metadata import version

    return version("openevolve")


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
