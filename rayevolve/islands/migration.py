"""Who sends migrants where, and which programs go.

Islands migrate asynchronously: each one, after every `interval` of its own
evaluations, sends its best own programs (never programs it received, so nothing
circulates in a loop) to the destinations its topology names. The receiver skips any
migrant whose code it already holds.
"""

from __future__ import annotations

import math

import numpy as np

from rayevolve.config import MigrationConfig
from rayevolve.islands.population import Population
from rayevolve.program import Program


def destinations(
    topology: str, source: int, count: int, rng: np.random.Generator, random_destinations: int = 1
) -> list[int]:
    """Islands that `source` sends to, out of `count` islands numbered 0..count-1."""
    if count < 2:
        return []
    if topology == "ring":
        return [(source + 1) % count]
    if topology == "bidirectional_ring":
        return sorted({(source + 1) % count, (source - 1) % count})
    if topology == "complete":
        return [i for i in range(count) if i != source]
    if topology == "random":
        others = [i for i in range(count) if i != source]
        k = min(random_destinations, len(others))
        return sorted(int(others[i]) for i in rng.choice(len(others), size=k, replace=False))
    raise ValueError(f"unknown migration topology {topology!r}")


def due(evaluations: int, config: MigrationConfig) -> bool:
    """Whether an island that has just finished its `evaluations`-th evaluation migrates."""
    return config.interval > 0 and evaluations > 0 and evaluations % config.interval == 0


def pick_migrants(population: Population, rate: float) -> list[Program]:
    """The top `rate` fraction (at least one) of the island's own programs."""
    own = population.ranked(own_only=True)
    if not own:
        return []
    return own[: max(1, math.ceil(rate * len(own)))]
