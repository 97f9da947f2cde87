"""The run log's tables: their Arrow schemas and version, and rows turned into tables.

Three tables live under the run directory:

* ``programs/``: one row per candidate (evaluated, or failed at mutation), with lineage,
  code, the edit, the model's raw reply, sampling settings, token counts and latency,
  the evaluation verdict, timings and placement. The run's seed program is the row with
  ``island = -1``.
* ``prompts/``: each distinct prompt once (its messages as JSON), keyed by the
  ``prompt_hash`` that program rows carry.
* ``events/``: migrations, island statistics, model weights, run start/end, warnings.

Columns are only ever added; ``schema_version`` says which set a file has. Readers fill
columns a file lacks with nulls (`conform`) and refuse files from a newer schema.
"""

from __future__ import annotations

from enum import StrEnum

import pyarrow as pa

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


class EventKind(StrEnum):
    """What an ``events`` row records (its ``kind``): every writer and reader names kinds
    through this enum."""

    RUN_START = "run_start"
    RUN_RESUMED = "run_resumed"
    RUN_END = "run_end"
    PLACEMENT = "placement"  # where an actor runs (payload: role, name, node_id, host, ip, pid)
    EVALUATORS_UNPLACED = "evaluators_unplaced"
    LOG_RECOVERED = "log_recovered"
    TASK_CHANGED = "task_changed"
    ISLAND_STATS = "island_stats"
    ISLAND_ERROR = "island_error"
    ISLAND_RESTARTED = "island_restarted"
    ISLAND_LOST = "island_lost"
    MIGRATION = "migration"
    POOL_RESTARTED = "pool_restarted"
    EVALUATOR_REPLACED = "evaluator_replaced"
    MUTATOR_RESTARTED = "mutator_restarted"
    MODEL_WEIGHTS = "model_weights"
    MODEL_ENGINE_RESTARTED = "model_engine_restarted"


class LogSchemaError(RuntimeError):
    """A log file this version of rayevolve cannot read."""


def to_table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    columns = {}
    for f in schema:
        values = [row.get(f.name) for row in rows]
        if pa.types.is_timestamp(f.type):
            values = [None if v is None else int(v) for v in values]
        columns[f.name] = pa.array(values, type=f.type)
    return pa.Table.from_pydict(columns, schema=schema)


def conform(piece: pa.Table, schema: pa.Schema) -> pa.Table:
    """`piece` in `schema`: columns it lacks (an older writer's) filled with nulls."""
    for f in schema:
        if f.name not in piece.column_names:
            piece = piece.append_column(f, pa.nulls(len(piece), f.type))
    return piece.select(schema.names).cast(schema)
