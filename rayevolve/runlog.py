"""The run log: append-only Parquet tables that are both the record and the checkpoint.

Three tables live under the run directory:

* ``programs/``: one row per candidate (evaluated, or failed at mutation), with lineage,
  code, the edit, the model's raw reply, sampling settings, token counts and latency,
  the evaluation verdict, timings and placement. The run's seed program is the row with
  ``island = -1``.
* ``prompts/``: each distinct prompt once (its messages as JSON), keyed by the
  ``prompt_hash`` that program rows carry.
* ``events/``: migrations, island statistics, model weights, run start/end, warnings.

Files are written whole (to a temporary name, then renamed), never rewritten: a reader
never sees a half-written footer, and a crash loses at most the rows buffered since the
last flush (bounded by ``log.flush_rows`` and ``log.flush_interval_s``). Columns are only
ever added; ``schema_version`` says which set a file has. The reader fills columns a file
lacks with nulls and refuses files from a newer schema.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rayevolve.mutation.base import MutationResult
from rayevolve.program import Program
from rayevolve.roles import Role, actor_name
from rayevolve.runlock import RunDirLock
from rayevolve.wal import (
    Segment,
    part_name,
    pending_segments,
    read_segment,
    recover,
    segment_name,
    write_part,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3  # 2: model columns, the prompts table; 3: isolation
TIMESTAMP = pa.timestamp("ms", tz="UTC")

PROGRAMS_SCHEMA = pa.schema(
    [
        pa.field("schema_version", pa.int16(), nullable=False),
        pa.field("run_id", pa.string()),
        pa.field("program_id", pa.string()),
        pa.field("parent_id", pa.string()),
        pa.field("island", pa.int32()),
        pa.field("generation", pa.int32()),
        pa.field("created_at", TIMESTAMP),
        pa.field("language", pa.string()),
        pa.field("code", pa.string()),
        pa.field("code_hash", pa.string()),
        pa.field("inspiration_ids", pa.list_(pa.string())),
        pa.field("mutation_operator", pa.string()),
        pa.field("mutation_mode", pa.string()),
        pa.field("mutation_error_kind", pa.string()),
        pa.field("mutation_error", pa.string()),
        pa.field("mutation_seed", pa.int64()),
        pa.field("model", pa.string()),
        pa.field("edit", pa.string()),
        pa.field("reply", pa.string()),
        pa.field("prompt_tokens", pa.int32()),
        pa.field("completion_tokens", pa.int32()),
        pa.field("temperature", pa.float64()),
        pa.field("finish_reason", pa.string()),
        pa.field("model_latency_s", pa.float64()),
        pa.field("prompt_hash", pa.string()),
        pa.field("repairs", pa.int16()),
        pa.field("request_retries", pa.int16()),
        pa.field("status", pa.string()),
        pa.field("score", pa.float64()),
        pa.field("metrics", pa.map_(pa.string(), pa.float64())),
        pa.field("artifacts", pa.map_(pa.string(), pa.string())),
        pa.field("cascade_stage", pa.int16()),
        pa.field("mutation_s", pa.float64()),
        pa.field("eval_s", pa.float64()),
        pa.field("eval_call_s", pa.float64()),
        pa.field("attempts", pa.int16()),
        pa.field("evaluator_id", pa.string()),
        pa.field("node_id", pa.string()),
        pa.field("host", pa.string()),
        pa.field("platform", pa.string()),
        pa.field("isolation", pa.string()),
    ]
)

EVENTS_SCHEMA = pa.schema(
    [
        pa.field("schema_version", pa.int16(), nullable=False),
        pa.field("run_id", pa.string()),
        pa.field("time", TIMESTAMP),
        pa.field("kind", pa.string()),
        pa.field("island", pa.int32()),
        pa.field("src_island", pa.int32()),
        pa.field("dst_island", pa.int32()),
        pa.field("program_ids", pa.list_(pa.string())),
        pa.field("accepted_ids", pa.list_(pa.string())),
        pa.field("evaluations", pa.int64()),
        pa.field("best_score", pa.float64()),
        pa.field("population_size", pa.int32()),
        pa.field("cells_filled", pa.int32()),
        pa.field("message", pa.string()),
        pa.field("payload", pa.string()),
    ]
)

PROMPTS_SCHEMA = pa.schema(
    [
        pa.field("schema_version", pa.int16(), nullable=False),
        pa.field("run_id", pa.string()),
        pa.field("prompt_hash", pa.string()),
        pa.field("created_at", TIMESTAMP),
        pa.field("prompt", pa.string()),
    ]
)

TABLES = {"programs": PROGRAMS_SCHEMA, "events": EVENTS_SCHEMA, "prompts": PROMPTS_SCHEMA}
MUTATION_FAILED = "mutation_failed"


class LogSchemaError(RuntimeError):
    """A log file this version of rayevolve cannot read."""


# --- rows ------------------------------------------------------------------------------
def program_row(
    run_id: str,
    program: Program,
    *,
    mutation: MutationResult | None = None,
    inspiration_ids: Sequence[str] = (),
    mutation_s: float | None = None,
    eval_call_s: float | None = None,
) -> dict:
    """The programs-table row of an evaluated program (or the seed, without mutation)."""
    result = program.result
    row = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "program_id": program.id,
        "parent_id": program.parent_id,
        "island": program.island,
        "generation": program.generation,
        "created_at": program.created_at * 1000.0,
        "language": program.language,
        "code": program.code,
        "code_hash": program.code_hash,
        "inspiration_ids": list(inspiration_ids),
        "mutation_s": mutation_s,
        "eval_call_s": eval_call_s,
    }
    if mutation is not None:
        row.update(_mutation_columns(mutation))
    else:
        row["mutation_operator"] = "seed"
    if result is not None:
        row.update(
            status=str(result.status),
            score=result.score,
            metrics=list(result.metrics.items()),
            artifacts=list(result.artifacts.items()),
            cascade_stage=result.stage,
            eval_s=result.wall_s,
            attempts=result.attempts,
            evaluator_id=result.evaluator_id,
            node_id=result.node_id,
            host=result.host,
            platform=result.platform,
            isolation=result.isolation or None,
        )
    return row


def mutation_failure_row(
    run_id: str,
    parent: Program,
    island: int,
    mutation: MutationResult,
    mutation_s: float,
    inspiration_ids: Sequence[str] = (),
) -> dict:
    """A programs-table row for a reply that produced no child (no code, no score)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "program_id": uuid.uuid4().hex,
        "parent_id": parent.id,
        "island": island,
        "generation": parent.generation + 1,
        "created_at": time.time() * 1000.0,
        "language": parent.language,
        "status": MUTATION_FAILED,
        "inspiration_ids": list(inspiration_ids),
        "mutation_s": mutation_s,
        **_mutation_columns(mutation),
    }


def _mutation_columns(m: MutationResult) -> dict:
    return {
        "mutation_operator": m.operator,
        "mutation_mode": m.mode,
        "mutation_error_kind": m.error_kind,
        "mutation_error": m.error or None,
        "mutation_seed": m.seed,
        "model": m.model,
        "edit": m.edit or None,
        "reply": m.reply if not m.ok or m.reply != m.edit else None,  # diff replies equal the edit
        "prompt_tokens": m.prompt_tokens,
        "completion_tokens": m.completion_tokens,
        "temperature": m.temperature,
        "finish_reason": m.finish_reason,
        "model_latency_s": m.latency_s,
        "prompt_hash": m.prompt_hash,
        "repairs": m.repairs,
        "request_retries": m.retries,
        "prompt": m.prompt,  # moved to the prompts table by the log actor
    }


def event_row(run_id: str, kind: str, **fields) -> dict:
    payload = fields.pop("payload", None)
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "time": time.time() * 1000.0,
        "kind": kind,
        "payload": json.dumps(payload, default=str) if payload is not None else None,
        **fields,
    }


def _to_table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    columns = {}
    for f in schema:
        values = [row.get(f.name) for row in rows]
        if pa.types.is_timestamp(f.type):
            values = [None if v is None else int(v) for v in values]
        columns[f.name] = pa.array(values, type=f.type)
    return pa.Table.from_pydict(columns, schema=schema)


# --- writing ---------------------------------------------------------------------------
class ParquetLogWriter:
    """Buffers rows per table and writes each batch as a new Parquet file; with `durable`,
    every accepted batch is first in the table's write-ahead segment (`rayevolve.wal`)."""

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
                for line in recover(self.run_dir / name, lambda t, s=schema: _conform(t, s))
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
            segment.append(_to_table(rows, TABLES[table]), sync=sync)
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

    def sync(self) -> None:
        """Put every open segment's batches on the disk (one fsync each)."""
        for segment in self._segments.values():
            segment.sync()

    def save_buffered(self, folder: Path) -> int:
        """Write every buffered row under `folder` (a table folder each), as the Parquet
        parts their write-ahead segments would become; returns how many."""
        saved = 0
        for name, rows in self._buffers.items():
            if not rows:
                continue
            (folder / name).mkdir(parents=True, exist_ok=True)
            part = folder / name / part_name(self._reserve(name), self.writer_id)
            write_part(_to_table(rows, TABLES[name]), part)
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
            write_part(_to_table(rows, TABLES[name]), path)
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


class RunLogActor:
    """The one writer of a run's log; islands and the controller send it rows."""

    def __init__(
        self, run_dir: str, flush_rows: int, flush_interval_s: float, write_ahead: bool = True
    ):
        self.writer = ParquetLogWriter(
            run_dir, flush_rows=flush_rows, flush_interval_s=flush_interval_s, durable=write_ahead
        )
        self._ticker: asyncio.Task | None = None
        self._failing: dict[str, tuple[float, str]] = {}  # table -> (since, error)
        self._prompt_hashes: set[str] = set()  # a restarted actor may store a prompt twice
        self._sync: asyncio.Future | None = None  # the fsync the waiting appends share
        self._lock = RunDirLock(run_dir)

    async def open(self, wait_s: float) -> list[str]:
        """Become the run directory's only writer (see `rayevolve.runlock`), waiting up to
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
                self._failing.pop(name, None)
            except OSError as exc:  # disk full, permissions: keep the rows, retry later
                self._failed(name, exc)

    def _failed(self, table: str, exc: OSError) -> None:
        error = f"cannot write the run log under {self.writer.run_dir}: {exc}"
        since = self._failing.get(table, (time.monotonic(), ""))[0]
        self._failing[table] = (since, error)
        log.error(error)

    @property
    def last_error(self) -> str | None:
        return min(self._failing.values())[1] if self._failing else None

    async def health(self) -> tuple[str | None, float]:
        """(oldest unresolved write error, seconds it has persisted): the controller stops a
        run whose log cannot be written rather than piling rows up in memory."""
        if not self._failing:
            return None, 0.0
        since, error = min(self._failing.values())
        return error, time.monotonic() - since

    async def append_programs(self, rows: list[dict]) -> None:
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

    async def append_events(self, rows: list[dict]) -> None:
        self._append("events", rows)
        await self._synced()

    def _append(self, table: str, rows: list[dict]) -> None:
        if self._ticker is None:
            self._ticker = asyncio.ensure_future(self._tick())
        try:
            full = self.writer.append(table, rows, sync=False)
        except OSError as exc:  # held in memory; a log that stays unwritable stops the run
            self._failed(table, exc)
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
        try:
            self.writer.sync()
        except OSError as exc:  # through to the kernel still: it survives our death
            self._failed("programs", exc)
        done.set_result(None)

    def _written(self, table: str, columns: Sequence[str] | None = None) -> pa.Table | None:
        """The rows of `table` already on disk (None if none), read file by file."""
        files = sorted((self.writer.run_dir / table).glob("*.parquet"))
        if not files:
            return None
        return pa.concat_tables([_read_file(f, TABLES[table], columns) for f in files])

    def _selected(self, table: str, mask, keep) -> list[dict]:
        """Rows of `table`, written then buffered, in log order: written ones where the Arrow
        expression `mask(table)` holds, buffered ones where `keep(row)` does. Only those are
        turned into Python objects (a long log holds far more rows than any one caller
        needs)."""
        written = self._written(table)
        rows = [] if written is None else written.filter(mask(written)).to_pylist()
        return rows + [row for row in self.writer.buffered(table) if keep(row)]

    async def seed(self):
        """The run's seed program, as logged; None when the log holds no row at all (a
        run killed before its seed was judged starts again from it)."""
        from rayevolve.resume import seed_program

        rows = self._selected(
            "programs", lambda t: pc.equal(t["island"], -1), lambda r: r.get("island") == -1
        )
        if not rows and self._written("programs", ["program_id"]) is None:
            return None
        return seed_program(rows)

    async def island_state(self, island: int):
        """Everything island `island` needs to continue (see `rayevolve.resume`): its own
        rows, the migrants it accepted and the seed, selected before conversion."""
        from rayevolve.resume import island_state

        migrations = self._selected(
            "events",
            lambda t: pc.and_(pc.equal(t["kind"], "migration"), pc.equal(t["dst_island"], island)),
            lambda r: r.get("kind") == "migration" and r.get("dst_island") == island,
        )
        accepted = sorted({pid for event in migrations for pid in event.get("accepted_ids") or []})
        wanted = pa.array([island, -1], pa.int32())
        rows = self._selected(
            "programs",
            lambda t: pc.or_(
                pc.is_in(t["island"], value_set=wanted),
                pc.is_in(t["program_id"], value_set=pa.array(accepted, pa.string())),
            ),
            lambda r: r.get("island") in (island, -1) or r.get("program_id") in accepted,
        )
        return island_state(island, rows, migrations)

    async def model_rewards(self, maximize: bool) -> list[tuple[str, float]]:
        """(model, reward) of every model-made candidate so far, in log order: what an
        adaptive ensemble replays after a restart or on resume."""
        from rayevolve.mutation.ensemble import improvement_reward

        columns = ["program_id", "parent_id", "island", "model", "score"]
        written = self._written("programs", columns)
        rows = [] if written is None else written.select(columns).to_pylist()
        rows += self.writer.buffered("programs")
        scores = {r["program_id"]: r.get("score") for r in rows}
        return [
            (r["model"], improvement_reward(scores.get(r["parent_id"]), r.get("score"), maximize))
            for r in rows
            if r.get("model") and r.get("parent_id") and r.get("island", -1) >= 0
        ]

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
        self._failing.clear()
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


# --- reading ---------------------------------------------------------------------------
def find_runs(path: str | Path) -> list[Path]:
    """Run directories at or below `path` (a run directory or a sweep directory)."""
    root = Path(path)
    if (root / "programs").is_dir():
        return [root]
    return sorted({p.parent for p in root.rglob("programs") if p.is_dir()})


def _read_file(file: Path, schema: pa.Schema, columns: Sequence[str] | None = None) -> pa.Table:
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
    return _conform(piece, schema)


def _conform(piece: pa.Table, schema: pa.Schema) -> pa.Table:
    """`piece` in `schema`: columns it lacks (an older writer's) filled with nulls."""
    for f in schema:
        if f.name not in piece.column_names:
            piece = piece.append_column(f, pa.nulls(len(piece), f.type))
    return piece.select(schema.names).cast(schema)


def _pieces(folder: Path, schema: pa.Schema, columns: Sequence[str] | None) -> list[pa.Table]:
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
    pieces = [_read_file(f, schema, columns) for f in parts]
    for (seq, writer), segment in tails:
        if part_name(seq, writer) not in names:
            pieces.append(_conform(segment, schema))
    return pieces


def _read(table: str, paths: Sequence[str | Path], columns: Sequence[str] | None) -> pa.Table:
    schema = TABLES[table]
    runs = [run for path in paths for run in find_runs(path)]
    if not runs:
        raise FileNotFoundError(f"no rayevolve run log under {', '.join(map(str, paths))}")
    pieces = []
    for run in runs:
        for piece in _pieces(run / table, schema, columns):
            piece = piece.append_column("run", pa.array([run.name] * len(piece), pa.string()))
            pieces.append(piece)
    if not pieces:
        return pa.Table.from_pylist([], schema=schema.append(pa.field("run", pa.string())))
    result = pa.concat_tables(pieces)
    return result.select([*columns, "run"]) if columns else result


def read_programs(*paths: str | Path, columns: Sequence[str] | None = None) -> pa.Table:
    """Every program row of one or many runs (a ``run`` column names each row's run)."""
    return _read("programs", paths, columns)


def read_events(*paths: str | Path, columns: Sequence[str] | None = None) -> pa.Table:
    """Every event row of one or many runs."""
    return _read("events", paths, columns)


def read_prompts(*paths: str | Path, columns: Sequence[str] | None = None) -> pa.Table:
    """Every stored prompt of one or many runs (join on ``prompt_hash``)."""
    return _read("prompts", paths, columns)


def log_event(run_id: str, kind: str, message: str | None = None, **fields) -> None:
    """From inside any actor of a run: append an event through the run's log actor."""
    import ray

    try:
        ray.get_actor(actor_name(run_id, Role.RUNLOG)).append_events.remote(
            [event_row(run_id, kind, message=message, **fields)]
        )
    except ValueError:  # no log actor (a pool used on its own, in tests)
        log.warning("%s: %s", kind, message)
