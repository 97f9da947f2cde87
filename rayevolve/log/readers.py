"""Reading run logs: every run at or below a folder (a run or a sweep), its Parquet parts
and the acknowledged rows of write-ahead segments not yet compacted, in the current
schema, with a ``run`` column."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rayevolve.log.schema import SCHEMA_VERSION, TABLES, LogSchemaError, conform
from rayevolve.log.wal import part_name, pending_segments, read_segment


def find_runs(path: str | Path) -> list[Path]:
    """Run directories at or below `path` (a run directory or a sweep directory)."""
    root = Path(path)
    if (root / "programs").is_dir():
        return [root]
    return sorted({p.parent for p in root.rglob("programs") if p.is_dir()})


def read_file(file: Path, schema: pa.Schema, columns: Sequence[str] | None = None) -> pa.Table:
    """One log file in the current schema: columns it lacks (an older schema) filled with
    nulls; a file from a newer schema refused. `columns` reads only those (plus the schema
    version), with the other columns null."""
    wanted = None
    if columns is not None:
        present = pq.read_schema(file).names
        wanted = [name for name in present if name in {*columns, "schema_version"}]
    piece = pq.read_table(file, columns=wanted)
    version = pc.max(piece.column("schema_version")).as_py() or SCHEMA_VERSION
    if version > SCHEMA_VERSION:
        raise LogSchemaError(
            f"{file} was written with log schema {version}; this rayevolve reads up to "
            f"{SCHEMA_VERSION}: upgrade rayevolve to read it"
        )
    return conform(piece, schema)


class PartCache:
    """Parquet parts already read, kept by path, size and modification time: a reader that
    polls a live run (the web view) reads each part once, and only the write-ahead tail
    and new parts again."""

    def __init__(self) -> None:
        self._tables: dict[Path, tuple[tuple, pa.Table]] = {}

    def read(self, file: Path, schema: pa.Schema, columns: Sequence[str] | None) -> pa.Table:
        stat = file.stat()
        key = (stat.st_size, stat.st_mtime_ns, schema, tuple(columns or ()))
        hit = self._tables.get(file)
        if hit is None or hit[0] != key:
            hit = (key, read_file(file, schema, columns))
            self._tables[file] = hit
        return hit[1]


def _pieces(
    folder: Path,
    schema: pa.Schema,
    columns: Sequence[str] | None,
    cache: PartCache | None = None,
) -> list[pa.Table]:
    """A table folder's rows: its Parquet parts, and the acknowledged rows of write-ahead
    segments not yet compacted (a live run's last seconds, a killed run's tail). The
    segments are read first: one compacted meanwhile shows as its part, never twice."""
    tails = []
    for path, seq, writer in pending_segments(folder):
        try:
            segment = read_segment(path).table
        except FileNotFoundError:  # compacted since: its part is read below
            continue
        if segment is not None:
            tails.append(((seq, writer), segment))
    parts = sorted(folder.glob("*.parquet"))
    names = {p.name for p in parts}
    read = cache.read if cache is not None else read_file
    pieces = []
    for file in parts:
        try:
            pieces.append(read(file, schema, columns))
        except FileNotFoundError:  # merged away meanwhile: its rows are in a newer part
            continue
    for (seq, writer), segment in tails:
        if part_name(seq, writer) not in names:
            pieces.append(conform(segment, schema))
    return pieces


def _read(
    table: str,
    paths: Sequence[str | Path],
    columns: Sequence[str] | None,
    cache: PartCache | None = None,
) -> pa.Table:
    schema = TABLES[table]
    runs = [run for path in paths for run in find_runs(path)]
    if not runs:
        raise FileNotFoundError(f"no rayevolve run log under {', '.join(map(str, paths))}")
    pieces = []
    for run in runs:
        for piece in _pieces(run / table, schema, columns, cache):
            piece = piece.append_column("run", pa.array([run.name] * len(piece), pa.string()))
            pieces.append(piece)
    if not pieces:
        return pa.Table.from_pylist([], schema=schema.append(pa.field("run", pa.string())))
    result = pa.concat_tables(pieces)
    return result.select([*columns, "run"]) if columns else result


def read_programs(
    *paths: str | Path, columns: Sequence[str] | None = None, cache: PartCache | None = None
) -> pa.Table:
    """Every program row of one or many runs (a ``run`` column names each row's run)."""
    return _read("programs", paths, columns, cache)


def read_events(
    *paths: str | Path, columns: Sequence[str] | None = None, cache: PartCache | None = None
) -> pa.Table:
    """Every event row of one or many runs."""
    return _read("events", paths, columns, cache)


def read_prompts(
    *paths: str | Path, columns: Sequence[str] | None = None, cache: PartCache | None = None
) -> pa.Table:
    """Every stored prompt of one or many runs (join on ``prompt_hash``)."""
    return _read("prompts", paths, columns, cache)
