"""The actors of a run and their names: ``<run_id>:<role>`` for the shared ones,
``<run_id>:island-N`` and ``<run_id>:evaluator-N`` for the numbered ones. Actors find
each other by these names (see docs/architecture.md), built here and nowhere else."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    RUNLOG = "runlog"
    MUTATOR = "mutator"
    POOL = "pool"
    ISLAND = "island"
    ISLAND_HOST = "islands"  # a process holding several islands (islands.per_actor > 1)
    EVALUATOR = "evaluator"


def member(role: Role, index: int) -> str:
    """A numbered actor's own id within its run, e.g. ``island-3``."""
    return f"{role}-{index}"


def actor_name(run_id: str, role: Role | str, index: int | None = None) -> str:
    """The Ray name of a run's actor: `role` (a `Role`, or a numbered member's id such
    as ``evaluator-2``), with `index` for a numbered role."""
    return f"{run_id}:{member(Role(role), index) if index is not None else role}"
