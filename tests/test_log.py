import shutil
import time

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rayevolve.log import (
    EVENTS_SCHEMA,
    PROGRAMS_SCHEMA,
    SCHEMA_VERSION,
    LogSchemaError,
    event_row,
    mutation_failure_row,
    program_row,
    read_events,
    read_programs,
)
from rayevolve.log.writer import ParquetLogWriter
from rayevolve.mutation.base import MutationResult
from rayevolve.outcome import Outcome
from rayevolve.program import Program
from rayevolve.result import EvalResult


def evaluated(score=1.5, status=Outcome.OK):
    p = Program.create("x = 1", language="python", parent=None, island=2)
    if status == Outcome.OK:
        result = EvalResult(
            status,
            score=score,
            metrics={"a": 1.0, "b": 2.0},
            artifacts={"stdout": "hi"},
            wall_s=0.3,
            node_id="n1",
            host="h",
            evaluator_id="evaluator-0",
        )
    else:
        result = EvalResult.failure(status, "it hung")
    return p.with_result(result)


def mutation(ok=True):
    return MutationResult(
        child_code="x = 2" if ok else None,
        reply="<<<<<<< SEARCH",
        model="offline",
        operator="offline:perturb",
        mode="diff",
        seed=7,
        edit="diff text" if ok else "",
        error_kind=None if ok else "search_not_found",
        error="" if ok else "not found",
    )


def test_schema_has_lineage_and_versioning_columns():
    names = set(PROGRAMS_SCHEMA.names)
    assert {
        "schema_version",
        "program_id",
        "parent_id",
        "island",
        "generation",
        "code",
        "code_hash",
        "status",
        "score",
        "metrics",
        "artifacts",
        "mutation_s",
        "eval_s",
        "node_id",
        "host",
    } <= names
    assert {"kind", "src_island", "dst_island", "program_ids", "accepted_ids"} <= set(
        EVENTS_SCHEMA.names
    )


def test_rows_round_trip_through_parquet(tmp_path):
    writer = ParquetLogWriter(tmp_path, flush_rows=100, flush_interval_s=60)
    ok = evaluated()
    writer.append(
        "programs", [program_row("run", ok, mutation=mutation(), mutation_s=0.1, eval_call_s=0.4)]
    )
    writer.append("programs", [program_row("run", evaluated(status=Outcome.TIMEOUT))])
    writer.append("programs", [mutation_failure_row("run", ok, 2, mutation(ok=False), 0.2)])
    writer.append(
        "events",
        [
            event_row(
                "run", "migration", src_island=0, dst_island=1, program_ids=["a"], accepted_ids=[]
            )
        ],
    )
    files = writer.flush()
    assert len(files) == 2 and all(f.exists() for f in files)
    table = read_programs(tmp_path).to_pandas()
    assert list(table.status) == ["ok", "timeout", "mutation_failed"]
    first = table.iloc[0]
    assert dict(first.metrics) == {"a": 1.0, "b": 2.0}
    assert first.score == 1.5 and first.island == 2 and first.mutation_operator == "offline:perturb"
    assert (
        first.edit == "diff text"
        and first.node_id == "n1"
        and first.schema_version == SCHEMA_VERSION
    )
    assert pd.isna(table.iloc[1].score)
    assert table.iloc[2].mutation_error_kind == "search_not_found" and pd.isna(table.iloc[2].code)
    events = read_events(tmp_path).to_pandas()
    assert events.kind.tolist() == ["migration"] and events.iloc[0].dst_island == 1


def test_files_are_never_rewritten_and_no_temp_file_is_left(tmp_path):
    writer = ParquetLogWriter(tmp_path, flush_rows=2, flush_interval_s=60)
    seen = set()
    for i in range(3):
        writer.append("programs", [program_row("r", evaluated(score=float(i)))])
        writer.flush("programs")
        files = set((tmp_path / "programs").iterdir())
        assert seen <= files
        seen = files
    assert len(seen) == 3
    assert not [f for f in seen if f.name.startswith(".")]
    assert len(read_programs(tmp_path)) == 3


def test_flush_is_due_after_the_interval(tmp_path):
    writer = ParquetLogWriter(tmp_path, flush_rows=1000, flush_interval_s=0.05)
    assert writer.due() == []
    writer.append("events", [event_row("r", "x")])
    time.sleep(0.06)
    assert writer.due() == ["events"]


def test_write_failure_keeps_the_rows(tmp_path):
    writer = ParquetLogWriter(tmp_path, flush_rows=1000, flush_interval_s=60)
    writer.append("programs", [program_row("r", evaluated())])
    shutil.rmtree(tmp_path / "programs")  # its write-ahead segment with it
    (tmp_path / "programs").write_text("not a directory")  # every write now fails, even as root
    with pytest.raises(OSError):
        writer.flush()
    assert writer.pending() == 1
    (tmp_path / "programs").unlink()
    (tmp_path / "programs").mkdir()
    writer.flush()
    assert len(read_programs(tmp_path)) == 1


def test_reader_fills_columns_missing_from_older_files(tmp_path):
    (tmp_path / "programs").mkdir()
    old = pa.table(
        {"schema_version": pa.array([1], pa.int16()), "program_id": ["p1"], "score": [0.5]}
    )
    pq.write_table(old, tmp_path / "programs" / "part-000001-old.parquet")
    table = read_programs(tmp_path)
    assert table.column("program_id").to_pylist() == ["p1"]
    assert table.column("code").to_pylist() == [None]
    assert table.schema.field("metrics").type == PROGRAMS_SCHEMA.field("metrics").type


def test_reader_refuses_a_newer_schema(tmp_path):
    (tmp_path / "programs").mkdir()
    future = pa.table(
        {"schema_version": pa.array([SCHEMA_VERSION + 1], pa.int16()), "program_id": ["p"]}
    )
    pq.write_table(future, tmp_path / "programs" / "part-000001-new.parquet")
    with pytest.raises(LogSchemaError, match="upgrade rayevolve"):
        read_programs(tmp_path)


def test_reader_combines_runs_of_a_sweep(tmp_path):
    for name in ("0_a", "1_b"):
        writer = ParquetLogWriter(tmp_path / "sweep" / name, flush_rows=10, flush_interval_s=60)
        writer.append("programs", [program_row(name, evaluated())])
        writer.flush()
    table = read_programs(tmp_path / "sweep")
    assert sorted(table.column("run").to_pylist()) == ["0_a", "1_b"]


def test_reader_on_missing_log_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="no rayevolve run log"):
        read_programs(tmp_path)
