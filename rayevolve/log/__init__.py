"""The run log: append-only Parquet tables that are both the record and the checkpoint.

`schema` (tables, version), `rows` (a Program to a row and back, events), `wal` (the
write-ahead segments), `writer` (batches to Parquet parts), `actor` (the run's one
writer, resume queries) and `readers` (runs and sweeps as Arrow tables). The names
below are the package's public face: analysis code imports them from here.
"""

from rayevolve.log.readers import PartCache, find_runs, read_events, read_programs, read_prompts
from rayevolve.log.rows import event_row, mutation_failure_row, program_from_row, program_row
from rayevolve.log.schema import (
    EVENTS_SCHEMA,
    PROGRAMS_SCHEMA,
    PROMPTS_SCHEMA,
    SCHEMA_VERSION,
    TABLES,
    EventKind,
    LogSchemaError,
)

__all__ = [
    "EVENTS_SCHEMA",
    "EventKind",
    "PROGRAMS_SCHEMA",
    "PROMPTS_SCHEMA",
    "SCHEMA_VERSION",
    "TABLES",
    "LogSchemaError",
    "PartCache",
    "event_row",
    "find_runs",
    "mutation_failure_row",
    "program_from_row",
    "program_row",
    "read_events",
    "read_programs",
    "read_prompts",
]
