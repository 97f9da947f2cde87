"""Rebuild a run's state from its log: the seed and, per island, what it held and counted.

The log is the checkpoint. An island's population is its own evaluated programs and the
migrants it accepted, replayed in the order they arrived, so archive, MAP-Elites cells
and evictions come out as they were. Everything it ever generated (failures included)
goes back into its set of seen code hashes, so nothing logged is evaluated again; only
children in flight at the crash were never logged, and those are generated anew.

Used by `python -m rayevolve resume=RUN_DIR` and by an island actor restarted after a
crash (which gets its state from the run log actor, buffered rows included).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from rayevolve.evaluation.result import EvalResult, EvalStatus
from rayevolve.program import Program
from rayevolve.runlog import MUTATION_FAILED


class ResumeError(RuntimeError):
    """The log cannot be resumed (no seed, unreadable), with what to do."""


@dataclass(frozen=True)
class IslandState:
    """What an island needs to continue where it stopped.

    Attributes:
      programs: scored programs to insert, in arrival order (own children and migrants).
      seen: normalised hashes of every candidate it generated or received.
      evaluations: its evaluated candidates (status other than mutation_failed).
    """

    island: int
    programs: list[Program] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    evaluations: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    mutation_failures: int = 0
    migrants_in: int = 0


def _none_if_nan(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def program_from_row(row: dict) -> Program:
    """The `Program` (with its `EvalResult`) a programs-table row records."""
    status = EvalStatus(row["status"])
    score = _none_if_nan(row.get("score"))
    result = EvalResult(
        status=status,
        score=float(score) if status == EvalStatus.OK else None,
        metrics={k: float(v) for k, v in (row.get("metrics") or [])},
        artifacts={k: v for k, v in (row.get("artifacts") or [])},
        wall_s=float(_none_if_nan(row.get("eval_s")) or 0.0),
        node_id=row.get("node_id") or "",
        host=row.get("host") or "",
        platform=row.get("platform") or "",
        evaluator_id=row.get("evaluator_id") or "",
        attempts=int(_none_if_nan(row.get("attempts")) or 1),
        stage=int(_none_if_nan(row.get("cascade_stage")) or 0),
        isolation=row.get("isolation") or "",
    )
    created_s = _time_ms(row["created_at"]) / 1000.0
    return Program(
        id=row["program_id"],
        code=row["code"],
        language=row["language"],
        parent_id=row.get("parent_id"),
        island=int(row["island"]),
        generation=int(row["generation"]),
        created_at=created_s,
        code_hash=row["code_hash"],
        result=result,
    )


def _time_ms(value) -> float:
    """Milliseconds since the epoch of a log timestamp: a datetime read from Parquet, or
    the float a not-yet-written row holds."""
    return value.timestamp() * 1000.0 if hasattr(value, "timestamp") else float(value)


def seed_program(program_rows: list[dict]) -> Program:
    seeds = [r for r in program_rows if r.get("island") == -1 and r.get("status") == "ok"]
    if not seeds:
        raise ResumeError(
            "the log holds no evaluated seed program (island -1): start a new run instead"
        )
    return program_from_row(seeds[0])


def island_state(island: int, program_rows: list[dict], event_rows: list[dict]) -> IslandState:
    """Replay island `island`'s own rows and accepted migrations, oldest first."""
    by_id = {r["program_id"]: r for r in program_rows if r.get("code") is not None}
    seed = seed_program(program_rows)
    seen = {seed.code_hash}
    statuses: Counter[str] = Counter()
    mutation_failures = 0
    arrivals: list[tuple[float, int, dict]] = []
    for order, row in enumerate(program_rows):
        if row.get("island") != island:
            continue
        if row.get("status") == MUTATION_FAILED:
            mutation_failures += 1
            continue
        statuses[row["status"]] += 1
        if row.get("code_hash"):
            seen.add(row["code_hash"])
        if row.get("status") == "ok":
            arrivals.append((_time_ms(row["created_at"]), order, row))
    migrants_in = 0
    for order, event in enumerate(event_rows):
        if event.get("kind") != "migration" or event.get("dst_island") != island:
            continue
        for pid in event.get("accepted_ids") or []:
            if pid in by_id:
                arrivals.append((_time_ms(event["time"]), len(program_rows) + order, by_id[pid]))
                migrants_in += 1
    programs = [seed]
    for _, _, row in sorted(arrivals, key=lambda a: (a[0], a[1])):
        program = program_from_row(row)
        programs.append(program)
        seen.add(program.code_hash)
    return IslandState(
        island=island,
        programs=programs,
        seen=seen,
        evaluations=sum(statuses.values()),
        statuses=dict(statuses),
        mutation_failures=mutation_failures,
        migrants_in=migrants_in,
    )
