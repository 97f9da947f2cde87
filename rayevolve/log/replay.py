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

from dataclasses import dataclass, field

from rayevolve.counts import Counts
from rayevolve.log.rows import program_from_row, time_ms
from rayevolve.log.schema import EventKind
from rayevolve.outcome import Outcome
from rayevolve.program import Program


class ResumeError(RuntimeError):
    """The log cannot be resumed (no seed, unreadable), with what to do."""


@dataclass(frozen=True)
class IslandState:
    """What an island needs to continue where it stopped.

    Attributes:
      programs: scored programs to insert, in arrival order (own children and migrants).
      seen: normalised hashes of every candidate it generated or received.
      counts: its counters as the log has them (duplicates and migrants sent are not
        logged and start again from 0).
    """

    island: int
    programs: list[Program] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    counts: Counts = field(default_factory=Counts)


def initial_program(program_rows: list[dict]) -> Program:
    seeds = [r for r in program_rows if r.get("island") == -1 and r.get("status") == Outcome.OK]
    if not seeds:
        raise ResumeError(
            "the log holds no evaluated seed program (island -1): start a new run instead"
        )
    return program_from_row(seeds[0])


def island_state(island: int, program_rows: list[dict], event_rows: list[dict]) -> IslandState:
    """Replay island `island`'s own rows and accepted migrations, oldest first."""
    by_id = {r["program_id"]: r for r in program_rows if r.get("code") is not None}
    initial = initial_program(program_rows)
    seen = {initial.code_hash}
    counts = Counts.from_rows(program_rows, island)
    arrivals: list[tuple[float, int, dict]] = []
    for order, row in enumerate(program_rows):
        if row.get("island") != island:
            continue
        if row.get("status") == Outcome.MUTATION_FAILED:
            continue
        if row.get("code_hash"):
            seen.add(row["code_hash"])
        if row.get("status") == Outcome.OK:
            arrivals.append((time_ms(row["created_at"]), order, row))
    for order, event in enumerate(event_rows):
        if event.get("kind") != EventKind.MIGRATION or event.get("dst_island") != island:
            continue
        for pid in event.get("accepted_ids") or []:
            if pid in by_id:
                arrivals.append((time_ms(event["time"]), len(program_rows) + order, by_id[pid]))
                counts.migrants_in += 1
    programs = [initial]
    for _, _, row in sorted(arrivals, key=lambda a: (a[0], a[1])):
        program = program_from_row(row)
        programs.append(program)
        seen.add(program.code_hash)
    return IslandState(
        island=island,
        programs=programs,
        seen=seen,
        counts=counts,
    )
