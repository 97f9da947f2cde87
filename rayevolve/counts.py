"""`Counts`: the one record of what an island (or, summed, a run) has counted.

An island keeps one, reports a copy in its `IslandStats` and its ``island_stats`` events,
rebuilds it from the log on a resume (`from_rows`), and the run's summary is the sum of
the islands' (or the log's, when the log could be read to the end).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, fields

from rayevolve.outcome import Outcome


@dataclass
class Counts:
    """Counters of one island, or of several summed.

    Attributes:
      statuses: judged children by `Outcome` (the seed not counted); their sum is
        `evaluations`, the number the budget counts.
      mutation_failures: replies that gave no child (``mutation_failed`` rows).
      duplicates: children skipped before judging because their code had been seen.
      migrants_in: programs accepted from other islands.
      migrants_out: programs sent to other islands.
    """

    statuses: Counter[str] = field(default_factory=Counter)
    mutation_failures: int = 0
    duplicates: int = 0
    migrants_in: int = 0
    migrants_out: int = 0

    @property
    def evaluations(self) -> int:
        return sum(self.statuses.values())

    @property
    def failures(self) -> int:
        """Judged children that got no score."""
        return self.evaluations - self.statuses.get(Outcome.OK, 0)

    def judged(self, status: Outcome) -> None:
        self.statuses[Outcome(status)] += 1

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            statuses=self.statuses + other.statuses,
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in _numbers()},
        )

    def copy(self) -> Counts:
        return Counts(Counter(self.statuses), **{f.name: getattr(self, f.name) for f in _numbers()})

    @staticmethod
    def total(counts: Iterable[Counts]) -> Counts:
        return sum(counts, Counts())

    def to_payload(self) -> dict:
        """A JSON-ready dict (the ``island_stats`` event's payload, ``summary.json``)."""
        return {
            "statuses": {str(k): v for k, v in self.statuses.items()},
            **{f.name: getattr(self, f.name) for f in _numbers()},
        }

    @staticmethod
    def from_payload(payload: dict) -> Counts:
        return Counts(
            statuses=Counter({Outcome(k): int(v) for k, v in payload.get("statuses", {}).items()}),
            **{f.name: int(payload.get(f.name, 0)) for f in _numbers()},
        )

    @staticmethod
    def from_rows(program_rows: Iterable[dict], island: int | None = None) -> Counts:
        """What the programs table says: island `island`'s children, or every island's
        (the seed, island -1, is never a child). Duplicates and migrations are not rows
        of this table; they stay 0 here."""
        counts = Counts()
        for row in program_rows:
            where, status = row.get("island"), row.get("status")
            if where is None or where < 0 or not status or island not in (None, where):
                continue
            if status == Outcome.MUTATION_FAILED:
                counts.mutation_failures += 1
            else:
                counts.judged(status)
        return counts


def _numbers():
    return [f for f in fields(Counts) if f.name != "statuses"]
