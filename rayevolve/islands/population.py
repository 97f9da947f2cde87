"""One island's sub-population: an elite archive, a MAP-Elites grid, selection, dedup.

Pure and single-threaded: the island actor owns one instance and is the only caller.
Only programs with a score (status ok) live here; failed candidates are logged, never
selected. Fitness is the score in the task's direction (negated when minimising), so
"higher is better" holds everywhere below.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rayevolve.config import FeatureConfig, SelectionConfig
from rayevolve.islands.features import BuiltIn, bin_index, feature_value
from rayevolve.program import Program

Cell = tuple[int, ...]


@dataclass(frozen=True)
class AddOutcome:
    """What `Population.add` did with a program."""

    added: bool
    reason: str  # "added", "duplicate", "no_score"
    new_best: bool = False
    cell: Cell | None = None
    evicted: tuple[str, ...] = ()


@dataclass(frozen=True)
class PopulationStats:
    size: int
    cells_filled: int
    cells_total: int
    best_score: float | None
    best_id: str | None
    mean_score: float | None
    migrants: int


class Population:
    """Sub-population of one island.

    Args:
      island: id of the owning island (programs created elsewhere count as migrants and
        are never sent on again).
      capacity: beyond it, the worst program that is neither an elite nor a cell
        champion is evicted.
      archive_size: number of elites kept (best first).
      features: MAP-Elites dimensions; each cell keeps its best program (its champion).
      selection: parent and inspiration selection settings.
      maximize: the task's direction.
      rng: the island's generator (all randomness here comes from it).
    """

    def __init__(
        self,
        *,
        island: int,
        capacity: int,
        archive_size: int,
        features: Sequence[FeatureConfig],
        selection: SelectionConfig,
        maximize: bool,
        rng: np.random.Generator,
    ):
        self.island = island
        self.capacity = capacity
        self.archive_size = archive_size
        self.features = tuple(features)
        self.selection = selection
        self.maximize = maximize
        self.rng = rng
        self._programs: dict[str, Program] = {}
        self._by_hash: dict[str, str] = {}
        self._cell_of: dict[str, Cell] = {}
        self._values: dict[str, tuple[float, ...]] = {}  # each program's raw coordinates
        self._spans: list[tuple[float, float] | None] = [None] * len(self.features)
        self._champions: dict[Cell, str] = {}
        self._archive: list[tuple[float, str]] = []  # (-fitness, id), ascending = best first

    # --- membership -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._programs)

    def __contains__(self, program_id: str) -> bool:
        return program_id in self._programs

    def has_code(self, code_hash: str) -> bool:
        return code_hash in self._by_hash

    def programs(self) -> list[Program]:
        return list(self._programs.values())

    def fitness(self, program: Program) -> float:
        assert program.score is not None
        return program.score if self.maximize else -program.score

    def coordinates(self, program: Program) -> tuple[float, ...]:
        """Its value along each feature (``diversity`` against the current elites)."""
        references = self.elites() if BuiltIn.DIVERSITY in {f.name for f in self.features} else ()
        return tuple(feature_value(program, f.name, references) for f in self.features)

    def _cell(self, values: tuple[float, ...]) -> Cell:
        return tuple(
            bin_index(v, f, span if f.learned else None)
            for v, f, span in zip(values, self.features, self._spans, strict=True)
        )

    def _widen(self, values: tuple[float, ...]) -> bool:
        """Stretch the learned features' ranges to hold `values`; True if any grew."""
        grew = False
        for i, (value, feature) in enumerate(zip(values, self.features, strict=True)):
            span = self._spans[i]
            if not feature.learned or (span and span[0] <= value <= span[1]):
                continue
            self._spans[i] = (min(value, span[0]), max(value, span[1])) if span else (value, value)
            grew = True
        return grew

    def _redraw(self) -> None:
        """Place every program again after a learned range grew (its champions too)."""
        self._champions.clear()
        for pid, values in self._values.items():
            cell = self._cell_of[pid] = self._cell(values)
            champion = self._champions.get(cell)
            if champion is None or self.fitness(self._programs[pid]) > self.fitness(
                self._programs[champion]
            ):
                self._champions[cell] = pid

    # --- insertion --------------------------------------------------------------------
    def add(self, program: Program) -> AddOutcome:
        if program.score is None:
            return AddOutcome(False, "no_score")
        if program.code_hash in self._by_hash or program.id in self._programs:
            return AddOutcome(False, "duplicate")
        previous_best = self.best()
        fit = self.fitness(program)
        values = self.coordinates(program)
        self._programs[program.id] = program
        self._by_hash[program.code_hash] = program.id
        self._values[program.id] = values
        if self._widen(values):
            self._redraw()
        else:
            self._cell_of[program.id] = self._cell(values)
            champion = self._champions.get(self._cell_of[program.id])
            if champion is None or fit > self.fitness(self._programs[champion]):
                self._champions[self._cell_of[program.id]] = program.id
        cell = self._cell_of[program.id]
        bisect.insort(self._archive, (-fit, program.id))
        del self._archive[self.archive_size :]
        evicted = self._evict()
        new_best = previous_best is None or fit > self.fitness(previous_best)
        return AddOutcome(True, "added", new_best=new_best, cell=cell, evicted=evicted)

    def _protected(self) -> set[str]:
        return {pid for _, pid in self._archive} | set(self._champions.values())

    def _evict(self) -> tuple[str, ...]:
        if len(self._programs) <= self.capacity:
            return ()
        protected = self._protected()
        # usually one over capacity: a linear scan, not a sort of the whole population
        evicted = tuple(
            heapq.nsmallest(
                len(self._programs) - self.capacity,
                (pid for pid in self._programs if pid not in protected),
                key=lambda pid: self.fitness(self._programs[pid]),
            )
        )
        for pid in evicted:
            program = self._programs.pop(pid)
            del self._by_hash[program.code_hash]
            del self._cell_of[pid]
            del self._values[pid]
        return evicted

    # --- queries ----------------------------------------------------------------------
    def best(self) -> Program | None:
        return self._programs[self._archive[0][1]] if self._archive else None

    def ranked(self, *, own_only: bool = False) -> list[Program]:
        """All programs, best first; `own_only` drops migrants (created on other islands)."""
        members = [
            p for p in self._programs.values() if not own_only or p.island in (self.island, -1)
        ]
        return sorted(members, key=self.fitness, reverse=True)

    def elites(self) -> list[Program]:
        return [self._programs[pid] for _, pid in self._archive]

    def champions(self) -> list[Program]:
        return [self._programs[pid] for pid in self._champions.values()]

    # --- selection --------------------------------------------------------------------
    def _uniform(self, pool: Sequence[Program]) -> Program:
        return pool[int(self.rng.integers(len(pool)))]

    def select_parent(self) -> Program:
        if not self._programs:
            raise LookupError(f"island {self.island} has no scored program to select from")
        members = list(self._programs.values())
        sel = self.selection
        if sel.kind == "tournament":
            k = min(sel.tournament_size, len(members))
            picks = self.rng.choice(len(members), size=k, replace=False)
            return max((members[int(i)] for i in picks), key=self.fitness)
        u = self.rng.random()
        if u < sel.exploit:
            return self._uniform(self.elites())
        if u < sel.exploit + sel.explore:
            return self._uniform(self.champions())
        return self._uniform(members)

    def inspirations(self, parent: Program) -> list[Program]:
        """The best programs other than the parent, then champions of other cells."""
        sel = self.selection
        chosen: list[Program] = [p for p in self.elites() if p.id != parent.id][
            : sel.num_top_inspirations
        ]
        taken = {parent.id} | {p.id for p in chosen}
        parent_cell = self._cell_of.get(parent.id)
        others = [
            p
            for cell, pid in self._champions.items()
            if cell != parent_cell and pid not in taken
            for p in (self._programs[pid],)
        ]
        if others and sel.num_diverse_inspirations:
            k = min(sel.num_diverse_inspirations, len(others))
            chosen += [others[int(i)] for i in self.rng.choice(len(others), size=k, replace=False)]
        return chosen

    def stats(self) -> PopulationStats:
        scores = [p.score for p in self._programs.values() if p.score is not None]
        best = self.best()
        return PopulationStats(
            size=len(self._programs),
            cells_filled=len(self._champions),
            cells_total=math.prod(f.bins for f in self.features) if self.features else 1,
            best_score=best.score if best else None,
            best_id=best.id if best else None,
            mean_score=float(np.mean(scores)) if scores else None,
            migrants=sum(1 for p in self._programs.values() if p.island not in (self.island, -1)),
        )
