"""What the controller watches through the log actor: whether the log can be written
(`WriteHealth`) and each island's latest statistics (`IslandReports`), which islands
send along with their rows, so one poll answers for every island."""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


class WriteHealth:
    """Tables whose last write failed, since when and why; cleared by a good write."""

    def __init__(self, run_dir):
        self.run_dir = run_dir
        self._failing: dict[str, tuple[float, str]] = {}  # table -> (since, error)

    def failed(self, table: str, exc: OSError) -> None:
        error = f"cannot write the run log under {self.run_dir}: {exc}"
        since = self._failing.get(table, (time.monotonic(), ""))[0]
        self._failing[table] = (since, error)
        log.error(error)

    def written(self, table: str) -> None:
        self._failing.pop(table, None)

    def clear(self) -> None:
        self._failing.clear()

    @property
    def last_error(self) -> str | None:
        return min(self._failing.values())[1] if self._failing else None

    def state(self) -> tuple[str | None, float]:
        """(oldest unresolved write error, seconds it has persisted)."""
        if not self._failing:
            return None, 0.0
        since, error = min(self._failing.values())
        return error, time.monotonic() - since


class IslandReports:
    """Each island's latest `IslandStats`, as the islands sent them with their rows."""

    def __init__(self):
        self._latest: dict[int, object] = {}

    def report(self, stats) -> None:
        if stats is not None:
            self._latest[stats.island] = stats

    def latest(self) -> dict:
        return dict(self._latest)
