"""`RunLogActor`: the one writer of a run's log. Islands and the controller send it rows
(acknowledged once durable: group commit over the write-ahead log); it answers the
resume queries from what is written and what it still buffers; `log_event` sends it an
event from inside any actor of the run."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from rayevolve.log.health import IslandReports, WriteHealth
from rayevolve.log.queries import LogQueries
from rayevolve.log.rows import event_row
from rayevolve.log.schema import SCHEMA_VERSION, TABLES
from rayevolve.log.writer import ParquetLogWriter
from rayevolve.roles import Role, actor_name
from rayevolve.run.lock import RunDirLock

log = logging.getLogger(__name__)


class RunLogActor:
    """The one writer of a run's log; islands and the controller send it rows. Its other
    jobs have homes of their own: the questions asked of the log (`LogQueries`), its
    write health and the islands' latest statistics (`rayevolve.log.health`)."""

    def __init__(
        self, run_dir: str, flush_rows: int, flush_interval_s: float, write_ahead: bool = True
    ):
        self.writer = ParquetLogWriter(
            run_dir, flush_rows=flush_rows, flush_interval_s=flush_interval_s, durable=write_ahead
        )
        self.queries = LogQueries(self.writer)
        self.health_of_writes = WriteHealth(self.writer.run_dir)
        self.islands = IslandReports()
        self._ticker: asyncio.Task | None = None
        self._prompt_hashes: set[str] = set()  # a restarted actor may store a prompt twice
        self._sync: asyncio.Future | None = None  # the fsync the waiting appends share
        self._lock = RunDirLock(run_dir)

    async def open(self, wait_s: float) -> list[str]:
        """Become the run directory's only writer (see `rayevolve.run.lock`), waiting up to
        `wait_s` for the workers of a just-killed driver to exit; then compact what a
        killed writer left in its write-ahead segments. Returns what was recovered."""
        started = time.monotonic()
        while not self._lock.try_acquire():
            if time.monotonic() - started >= wait_s:
                raise self._lock.busy_error(wait_s)
            await asyncio.sleep(0.2)
        said = self.writer.recover()
        for line in said:
            log.warning("run log: %s", line)
        return said

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.writer.flush_interval_s / 2))
            for table in self.writer.due():
                self._safe_flush(table)

    def _safe_flush(self, table: str | None = None) -> None:
        for name in [table] if table else list(TABLES):
            try:
                self.writer.flush(name)
                self.health_of_writes.written(name)
            except OSError as exc:  # disk full, permissions: keep the rows, retry later
                self.health_of_writes.failed(name, exc)

    @property
    def last_error(self) -> str | None:
        return self.health_of_writes.last_error

    def placement(self) -> dict:
        """Where this actor runs (`rayevolve.placement.Placement`), logged at start."""
        from rayevolve.placement import here

        return here().to_payload()

    async def progress(self) -> tuple[str | None, float, dict]:
        """What the controller polls, in one call whatever the number of islands:
        `health`'s pair, and each island's latest `IslandStats` (island -> stats), as
        the islands sent them with their rows and events."""
        error, failing_for = await self.health()
        return error, failing_for, self.islands.latest()

    async def health(self) -> tuple[str | None, float]:
        """(oldest unresolved write error, seconds it has persisted): the controller stops a
        run whose log cannot be written rather than piling rows up in memory."""
        return self.health_of_writes.state()

    async def append_programs(self, rows: list[dict], stats=None) -> None:
        """Rows of the programs table (prompt texts move to the prompts table once per
        hash); `stats`, the sending island's `IslandStats` as it sends them."""
        self.islands.report(stats)
        prompts = []
        for row in rows:
            prompt, digest = row.pop("prompt", None), row.get("prompt_hash")
            if prompt is not None and digest and digest not in self._prompt_hashes:
                self._prompt_hashes.add(digest)
                prompts.append(
                    {
                        "schema_version": SCHEMA_VERSION,
                        "run_id": row.get("run_id"),
                        "prompt_hash": digest,
                        "created_at": row.get("created_at"),
                        "prompt": prompt,
                    }
                )
        if prompts:
            self._append("prompts", prompts)
        self._append("programs", rows)
        await self._synced()

    async def append_events(self, rows: list[dict], stats=None) -> None:
        self.islands.report(stats)
        self._append("events", rows)
        await self._synced()

    def _append(self, table: str, rows: list[dict]) -> None:
        if self._ticker is None:
            self._ticker = asyncio.ensure_future(self._tick())
        try:
            full = self.writer.append(table, rows, sync=False)
        except OSError as exc:  # held in memory; a log that stays unwritable stops the run
            self.health_of_writes.failed(table, exc)
            full = True  # try the Parquet file at once: it may still be writable
        if full:
            self._safe_flush(table)

    async def _synced(self) -> None:
        """Return once the batches appended so far are on the disk: the calls that
        arrive together share one fsync per segment (group commit)."""
        if self._sync is None:
            self._sync = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_soon(self._sync_now)
        await asyncio.shield(self._sync)

    def _sync_now(self) -> None:
        done, self._sync = self._sync, None
        # a batch not synced is through to the kernel still: it survives our death
        for table, exc in self.writer.sync().items():
            self.health_of_writes.failed(table, exc)
        done.set_result(None)

    # --- the questions asked of the log (`LogQueries`) ------------------------------
    async def initial_program(self):
        return self.queries.initial_program()

    async def island_state(self, island: int):
        return self.queries.island_state(island)

    async def model_rewards(self, maximize: bool) -> list[tuple[str, float]]:
        return self.queries.model_rewards(maximize)

    async def flush(self) -> dict:
        self._safe_flush()
        if self.last_error:
            raise OSError(self.last_error + self._save_elsewhere())
        return dict(self.writer.rows_written)

    def _save_elsewhere(self) -> str:
        """Write the rows the run directory refused into a temporary folder; say where."""
        import tempfile

        fallback = Path(tempfile.gettempdir()) / f"rayevolve-unsaved-{self.writer.writer_id}"
        try:
            saved = self.writer.save_buffered(fallback)
        except OSError as exc:
            return f". The {self.writer.pending()} unwritten rows could not be saved elsewhere either: {exc}"
        self.writer.discard()  # saved: a second close must not save them twice
        self.health_of_writes.clear()
        return (
            f". The {saved} unwritten rows were saved to {fallback}: move its programs/ and "
            f"events/ files into {self.writer.run_dir} to complete the log (their names are "
            "those of the write-ahead copies, which are then ignored: no row twice), then "
            f"resume with: python -m rayevolve resume={self.writer.run_dir}"
        )

    async def close(self) -> dict:
        if self._ticker is not None:
            self._ticker.cancel()
        rows = await self.flush()
        self._lock.release()  # everything is on disk: a resume may start at once
        return rows


def log_event(run_id: str, kind: str, message: str | None = None, **fields) -> None:
    """From inside any actor of a run: append an event through the run's log actor."""
    import ray

    try:
        ray.get_actor(actor_name(run_id, Role.RUNLOG)).append_events.remote(
            [event_row(run_id, kind, message=message, **fields)]
        )
    except ValueError:  # no log actor (a pool used on its own, in tests)
        log.warning("%s: %s", kind, message)
