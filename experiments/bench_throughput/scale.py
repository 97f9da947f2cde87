"""Large run logs without running for hours: grow a real run's log with generated rows.

A short real run makes the run directory (configuration, seed, events); `grow_log`
then appends `n` evaluated programs per the log's own schema, spread over the islands,
each with distinct code, as a long run would have left them. Resuming from that
directory is then what resuming after a long run costs.
"""

from __future__ import annotations

import random
from pathlib import Path

from rayevolve.log import program_row, read_programs
from rayevolve.log.writer import ParquetLogWriter
from rayevolve.outcome import Outcome
from rayevolve.program import Program
from rayevolve.result import EvalResult


def grow_log(run_dir: Path, n: int, islands: int, batch: int = 20_000) -> None:
    """Append `n` evaluated programs to the run log at `run_dir`."""
    seed = read_programs(run_dir).to_pandas()
    seed = seed[seed.island == -1].iloc[0]
    run_id = seed.run_id
    rng = random.Random(n)
    parents = {i: None for i in range(islands)}
    # a generated log, not a run: no write-ahead log
    writer = ParquetLogWriter(run_dir, flush_rows=batch, flush_interval_s=1e9, durable=False)
    for i in range(n):
        island = i % islands
        a, d = 1.0 + rng.random(), rng.random()
        code = seed.code.replace("A = 1.0", f"A = {a!r}").replace("D = 0.25", f"D = {d!r}")
        score = -abs(a - 1.5) - 1.5 - 4.0 - abs(d - 0.1)
        parent = parents[island]
        program = Program.create(code, language="python", parent=parent, island=island)
        program = program.with_result(
            EvalResult(Outcome.OK, score=score, wall_s=0.0, evaluator_id="generated")
        )
        if parent is None or score > (parent.score or -1e9):
            parents[island] = program
        if writer.append("programs", [program_row(run_id, program, mutation_s=0.0)]):
            writer.flush("programs")
    writer.flush()
