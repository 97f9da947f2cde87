"""The throughput benchmark's own arithmetic and parsing (its numbers live in make bench)."""

import math
import random
import sys

import pytest

from rayevolve.program import START_MARKER
from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "experiments" / "bench_throughput"))

from bench import locate_parent  # noqa: E402
from workload import Workload, steady_rate  # noqa: E402


def test_ideal_is_the_scarcer_resource_and_in_flight_bounds_it():
    w = Workload(8, 4, 8, 16, latency_s=1.0, eval_s=0.5, evaluations=1)
    assert w.ideal_per_s == 16.0  # min(16 / 1.0, 8 / 0.5)
    assert w.in_flight_bound_per_s == pytest.approx(32 / 1.5)
    assert Workload(8, 4, 2, 16, 1.0, 0.5, 1).ideal_per_s == 4.0  # evaluators scarcer
    assert Workload(8, 4, 2, 64, 0.0, 0.0, 1).ideal_per_s == float("inf")


def test_steady_rate_ignores_warmup_drain_and_edge_jitter():
    rng = random.Random(0)
    steady = [10 + i / 16 + rng.uniform(-0.03, 0.03) for i in range(400)]
    warmup = [i * 0.5 for i in range(20)]  # slow start
    drain = [steady[-1] + 0.5 * (i + 1) for i in range(16)]  # slow finish
    times = sorted(warmup + steady + drain)
    assert steady_rate(times, warmup=20, cooldown=16) == pytest.approx(16.0, rel=0.01)
    assert steady_rate(times, warmup=0) < 15.0  # what the edges would have done
    assert math.isnan(steady_rate([1.0, 2.0], warmup=0))  # too few to fit a rate


PARENT = f"# {START_MARKER}\nA = 1.0\n# EVOLVE-BLOCK-END\n"
OTHER = f"# {START_MARKER}\nA = 9.0\n# EVOLVE-BLOCK-END\n"


def test_the_parent_is_found_in_either_systems_prompt_layout():
    rayevolve_prompt = (
        f"Improve this program.\n```python\n{PARENT}```\nInspiration:\n```python\n{OTHER}```"
    )
    openevolve_prompt = (
        "# Current Program Information\n- Fitness: 1\n\n# Program Evolution History\n"
        f"## Top Performing Programs\n```python\n{OTHER}```\n\n"
        f"# Current Program\n```python\n{PARENT}```\n\n# Task\nSuggest improvements"
    )
    for prompt in (rayevolve_prompt, openevolve_prompt):
        assert locate_parent([{"role": "user", "content": prompt}]) == PARENT


def test_grown_logs_restore_every_island(tmp_path):
    from scale import grow_log

    from rayevolve.log import program_row, read_events, read_programs
    from rayevolve.log.replay import island_state
    from rayevolve.log.writer import ParquetLogWriter
    from rayevolve.outcome import Outcome
    from rayevolve.program import Program
    from rayevolve.result import EvalResult

    seed_code = (
        ROOT / "experiments/bench_throughput/synthetic_task/initial_program.py"
    ).read_text()
    seed = Program.create(seed_code, language="python", parent=None, island=-1)
    writer = ParquetLogWriter(tmp_path, flush_rows=10, flush_interval_s=60)
    writer.append("programs", [program_row("r", seed.with_result(EvalResult(Outcome.OK, 0.0)))])
    writer.flush()
    grow_log(tmp_path, 1000, islands=4)
    rows = read_programs(tmp_path).drop_columns(["run"]).to_pylist()
    events = read_events(tmp_path).drop_columns(["run"]).to_pylist()
    states = [island_state(i, rows, events) for i in range(4)]
    assert [s.counts.evaluations for s in states] == [250] * 4
    assert len({h for s in states for h in s.seen}) == 1001  # distinct programs, and the seed
