"""The write-ahead log: rows are on disk before the log actor acknowledges them.

The run log writes Parquet files whole, in batches (`runlog.ParquetLogWriter`), which
leaves rows in memory for up to ``log.flush_interval_s``: a killed driver would lose
them, and with them evaluations that cost minutes of a GPU or paid tokens. So every batch
a writer accepts is first appended to a segment file of Arrow IPC stream format and
flushed to the disk (``fsync``); only then does the caller hear back.

The log actor syncs once for all the batches that arrive together (group commit): callers
wait for the one ``fsync`` that covers their batch. One segment per table and writer holds exactly the rows buffered since the table's last
Parquet flush, and carries that flush's sequence number: the Parquet part compacted from
``programs/.wal-000007-ab12cd34.arrows`` is ``programs/part-000007-ab12cd34.parquet``.
Once the part is in place the segment is deleted. After a crash, `recover` (run by the
next writer, holding the run directory's lock) finds each segment whose part is missing,
writes the part from the segment's complete batches, and cuts a torn tail (a batch the
crash interrupted, never acknowledged) with a message. Readers (`runlog.read_programs`)
include segments not yet compacted, so analysis of a live or crashed run sees every
acknowledged row.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SEGMENT = re.compile(r"^\.wal-(\d{6,})-([0-9a-f]+)\.arrows$")


def segment_name(seq: int, writer_id: str) -> str:
    return f".wal-{seq:06d}-{writer_id}.arrows"


def part_name(seq: int, writer_id: str) -> str:
    return f"part-{seq:06d}-{writer_id}.parquet"


def write_part(table: pa.Table, path: Path) -> None:
    """A Parquet file written whole: to a hidden temporary name, then renamed."""
    tmp = path.with_name("." + path.name + ".tmp")
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Segment:
    """One open segment: batches appended and made durable one call at a time."""

    def __init__(self, path: Path, schema: pa.Schema):
        self.path = path
        self._file = open(path, "wb")  # noqa: SIM115 - held open across appends
        self._writer = pa.ipc.new_stream(self._file, schema)
        _fsync_dir(path.parent)  # the segment's name survives a crash too
        self.rows = 0
        self._unsynced = False

    def append(self, batch: pa.Table, sync: bool = True) -> None:
        """Write a batch through to the kernel (it survives the process from here on);
        `sync`: to the disk as well (it survives the machine). Without, `sync()` later."""
        self._writer.write_table(batch)
        self._file.flush()
        self._unsynced = True
        if sync:
            self.sync()
        self.rows += batch.num_rows

    def sync(self) -> None:
        if self._unsynced:
            os.fsync(self._file.fileno())
            self._unsynced = False

    def close(self) -> None:
        try:
            self._writer.close()
        finally:
            self._file.close()

    def retire(self) -> None:
        """Its rows are in their Parquet part: close and delete it."""
        self.close()
        self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class SegmentRead:
    """What a segment held: its complete batches, and the bytes of a torn tail."""

    table: pa.Table | None
    torn_bytes: int


def read_segment(path: Path) -> SegmentRead:
    """The complete batches of a segment (a writer may still be appending to it, or was
    killed in the middle of a batch: what follows the last complete batch is cut)."""
    data = path.read_bytes()
    stream = pa.BufferReader(data)
    try:
        schema = pa.ipc.read_schema(pa.ipc.read_message(stream))
    except (pa.ArrowInvalid, OSError, EOFError):
        return SegmentRead(None, len(data))  # killed before its schema was whole
    batches, good = [], stream.tell()
    while True:
        try:
            message = pa.ipc.read_message(stream)
        except EOFError:  # the end-of-stream marker, or the end of what was written
            good = len(data) if stream.tell() == len(data) else good
            break
        except (pa.ArrowInvalid, OSError):
            break
        try:
            batches.append(pa.ipc.read_record_batch(message, schema))
        except (pa.ArrowInvalid, OSError):
            break
        good = stream.tell()
    table = pa.Table.from_batches(batches, schema=schema) if batches else None
    return SegmentRead(table, len(data) - good)


def segments(folder: Path) -> list[tuple[Path, int, str]]:
    """(path, seq, writer) of every write-ahead segment in a table folder."""
    found = []
    for path in sorted(folder.glob(".wal-*.arrows")):
        match = SEGMENT.match(path.name)
        if match is not None:
            found.append((path, int(match.group(1)), match.group(2)))
    return found


def pending_segments(folder: Path) -> list[tuple[Path, int, str]]:
    """The segments of a table folder whose Parquet part is missing."""
    return [s for s in segments(folder) if not (folder / part_name(s[1], s[2])).exists()]


def recover(folder: Path, cast) -> list[str]:
    """Compact every pending segment of a table folder into its Parquet part and delete
    compacted ones; return what was done, one sentence each. `cast` turns a segment's
    table into the current schema (`schema.conform` fills columns an older writer lacked)."""
    said = []
    for path, seq, writer in segments(folder):
        part = folder / part_name(seq, writer)
        if not part.exists():
            read = read_segment(path)
            if read.table is not None and read.table.num_rows:
                write_part(cast(read.table), part)
                said.append(f"{read.table.num_rows} rows recovered from {path.name}")
            if read.torn_bytes:
                said.append(
                    f"{path.name}: a torn last batch ({read.torn_bytes} bytes, never "
                    "acknowledged) was cut"
                )
        path.unlink(missing_ok=True)
    return said
