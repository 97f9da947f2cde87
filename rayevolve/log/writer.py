"""`ParquetLogWriter`: rows buffered per table, each batch written whole as a Parquet
file (to a temporary name, then renamed: a reader never sees a half-written footer),
every accepted batch first in the table's write-ahead segment (`rayevolve.log.wal`)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from pathlib import Path

from rayevolve.log.schema import TABLES, conform, to_table
from rayevolve.log.wal import Segment, part_name, recover, segment_name, write_part


class ParquetLogWriter:
    """Buffers rows per table and writes each batch as a new Parquet file; with `durable`,
    every accepted batch is first in the table's write-ahead segment (`rayevolve.log.wal`)."""

    def __init__(
        self,
        run_dir: str | Path,
        *,
        flush_rows: int,
        flush_interval_s: float,
        durable: bool = True,
    ):
        self.run_dir = Path(run_dir)
        self.flush_rows = flush_rows
        self.flush_interval_s = flush_interval_s
        self.durable = durable
        self.writer_id = uuid.uuid4().hex[:8]
        self._buffers: dict[str, list[dict]] = {name: [] for name in TABLES}
        self._oldest: dict[str, float | None] = {name: None for name in TABLES}
        self._segments: dict[str, Segment] = {}
        self._segment_seq: dict[str, int] = {}
        self.in_wal = {name: 0 for name in TABLES}  # buffered rows already durable
        self._seq = 0
        self.rows_written = {name: 0 for name in TABLES}
        for name in TABLES:
            (self.run_dir / name).mkdir(parents=True, exist_ok=True)
            self._seq = max(self._seq, len(list((self.run_dir / name).glob("*.parquet"))))

    def recover(self) -> list[str]:
        """Compact what a killed writer left in its write-ahead segments (run once, by
        the writer holding the run directory's lock, before it appends)."""
        said = []
        for name, schema in TABLES.items():
            said += [
                f"{name}: {line}"
                for line in recover(self.run_dir / name, lambda t, s=schema: conform(t, s))
            ]
        self._seq = max(
            [self._seq, *(len(list((self.run_dir / n).glob("*.parquet"))) for n in TABLES)]
        )
        return said

    def append(self, table: str, rows: Iterable[dict], sync: bool = True) -> bool:
        """Take rows, durable on return when `durable` (with `sync` off: through to the
        kernel, on the disk after `sync()`); returns True when the table holds enough rows
        to flush. If the segment cannot be written (OSError, raised), the
        rows are still held in memory, and the table's later rows too until its next
        flush (`in_wal` says how many of its buffered rows are durable)."""
        rows = list(rows)
        buffer = self._buffers[table]
        buffer.extend(rows)
        if buffer and self._oldest[table] is None:
            self._oldest[table] = time.monotonic()
        if self.durable and rows and self.in_wal[table] == len(buffer) - len(rows):
            segment = self._segments.get(table)
            if segment is None:
                name = segment_name(self._reserve(table), self.writer_id)
                segment = self._segments[table] = Segment(
                    self.run_dir / table / name, TABLES[table]
                )
            segment.append(to_table(rows, TABLES[table]), sync=sync)
            self.in_wal[table] = len(buffer)
        return len(buffer) >= self.flush_rows

    def _reserve(self, table: str) -> int:
        """The sequence number of the table's rows since its last flush: their segment's
        and the Parquet part's (drawn once per flush)."""
        if table not in self._segment_seq:
            self._seq += 1
            self._segment_seq[table] = self._seq
        return self._segment_seq[table]

    def buffered(self, table: str) -> list[dict]:
        """Rows accepted but not yet written (copies of the list, not of the rows)."""
        return list(self._buffers[table])

    def sync(self) -> dict[str, OSError]:
        """Put every open segment's batches on the disk (one fsync each); returns the
        tables whose segment could not be synced, with the error."""
        failed = {}
        for table, segment in self._segments.items():
            try:
                segment.sync()
            except OSError as exc:
                failed[table] = exc
        return failed

    def save_buffered(self, folder: Path) -> int:
        """Write every buffered row under `folder` (a table folder each), as the Parquet
        parts their write-ahead segments would become; returns how many."""
        saved = 0
        for name, rows in self._buffers.items():
            if not rows:
                continue
            (folder / name).mkdir(parents=True, exist_ok=True)
            part = folder / name / part_name(self._reserve(name), self.writer_id)
            write_part(to_table(rows, TABLES[name]), part)
            saved += len(rows)
        return saved

    def discard(self) -> None:
        """Forget the buffered rows (after they were saved somewhere else); their
        segments stay where they are (`save_buffered` named the saved parts after them)."""
        self._buffers = {name: [] for name in TABLES}
        self._oldest = {name: None for name in TABLES}
        self.in_wal = {name: 0 for name in TABLES}
        for segment in self._segments.values():
            segment.close()
        self._segments.clear()
        self._segment_seq.clear()

    def due(self) -> list[str]:
        now = time.monotonic()
        return [
            t
            for t, since in self._oldest.items()
            if since is not None and now - since >= self.flush_interval_s
        ]

    def pending(self) -> int:
        return sum(len(b) for b in self._buffers.values())

    def flush(self, table: str | None = None) -> list[Path]:
        """Write buffered rows; on failure they stay buffered and the error propagates."""
        written = []
        for name in [table] if table else list(TABLES):
            rows = self._buffers[name]
            if not rows:
                continue
            seq = self._reserve(name)
            path = self.run_dir / name / part_name(seq, self.writer_id)
            write_part(to_table(rows, TABLES[name]), path)
            segment = self._segments.pop(name, None)
            if segment is not None:
                segment.retire()
            else:  # none, or one that failed while being created
                (self.run_dir / name / segment_name(seq, self.writer_id)).unlink(missing_ok=True)
            del self._segment_seq[name]
            self.in_wal[name] = 0
            self.rows_written[name] += len(rows)
            self._buffers[name] = []
            self._oldest[name] = None
            written.append(path)
        return written
