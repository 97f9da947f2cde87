"""The write-ahead log: an acknowledged row survives the writer's death, exactly once."""

import shutil
from pathlib import Path

import pytest

from rayevolve.log import PROGRAMS_SCHEMA, event_row, program_row, read_programs
from rayevolve.log.actor import RunLogActor
from rayevolve.log.wal import Segment, read_segment
from rayevolve.log.writer import ParquetLogWriter
from rayevolve.outcome import Outcome
from rayevolve.program import Program
from rayevolve.result import EvalResult


def rows(n: int, start: int = 0) -> list[dict]:
    out = []
    for i in range(start, start + n):
        program = Program.create(f"x = {i}\n", language="python", parent=None, island=0)
        result = EvalResult(status=Outcome.OK, score=float(i))
        out.append(program_row("run", program.with_result(result)))
    return out


def writer(run_dir) -> ParquetLogWriter:
    return ParquetLogWriter(run_dir, flush_rows=1000, flush_interval_s=60)


def segments(run_dir) -> list:
    return sorted((run_dir / "programs").glob(".wal-*.arrows"))


def test_an_acknowledged_row_is_read_before_any_flush_and_recovered_once(tmp_path):
    killed = writer(tmp_path)
    killed.append("programs", rows(3))
    killed.append("programs", rows(2, start=3))
    killed.append("events", [event_row("run", "run_start")])
    assert sorted(read_programs(tmp_path).column("score").to_pylist()) == [0, 1, 2, 3, 4]
    # the writer dies here, its buffer with it; the next one recovers the segments
    said = writer(tmp_path).recover()
    assert "programs: 5 rows recovered" in " ".join(said)
    assert "events: 1 rows recovered" in " ".join(said)
    assert not segments(tmp_path)
    assert sorted(read_programs(tmp_path).column("score").to_pylist()) == [0, 1, 2, 3, 4]
    assert writer(tmp_path).recover() == []


def test_a_flush_retires_its_segment_and_names_the_part_after_it(tmp_path):
    log = writer(tmp_path)
    log.append("programs", rows(2))
    (segment,) = segments(tmp_path)
    (part,) = log.flush("programs")
    assert not segment.exists()
    assert part.name == segment.name.replace(".wal-", "part-").replace(".arrows", ".parquet")
    log.append("programs", rows(1, start=2))
    assert len(segments(tmp_path)) == 1 and len(read_programs(tmp_path)) == 3


def test_a_death_between_part_and_segment_removal_duplicates_nothing(tmp_path):
    log = writer(tmp_path)
    log.append("programs", rows(4))
    (segment,) = segments(tmp_path)
    kept = tmp_path / "kept"
    shutil.copy(segment, kept)
    log.flush("programs")
    shutil.copy(kept, segment)  # as if the writer died before deleting it
    assert len(read_programs(tmp_path)) == 4  # the reader skips it already
    assert writer(tmp_path).recover() == [] and not segments(tmp_path)
    assert len(read_programs(tmp_path)) == 4


def test_a_torn_last_batch_is_cut_with_a_message(tmp_path):
    log = writer(tmp_path)
    log.append("programs", rows(2))
    log.append("programs", rows(1, start=2))
    (segment,) = segments(tmp_path)
    segment.write_bytes(segment.read_bytes()[:-7])  # killed in the middle of the last batch
    assert len(read_programs(tmp_path)) == 2
    said = writer(tmp_path).recover()
    assert "programs: 2 rows recovered" in said[0]
    assert "torn last batch" in said[1] and "never acknowledged" in said[1]
    assert sorted(read_programs(tmp_path).column("score").to_pylist()) == [0, 1]


def test_a_segment_cut_inside_its_schema_holds_nothing(tmp_path):
    path = tmp_path / "s.arrows"
    segment = Segment(path, PROGRAMS_SCHEMA)
    segment.close()
    path.write_bytes(path.read_bytes()[:5])
    read = read_segment(path)
    assert read.table is None and read.torn_bytes == 5


def test_rows_the_run_directory_refused_are_saved_elsewhere_once(tmp_path, monkeypatch):
    """A log that cannot be written saves its buffered rows to a temporary folder, as the
    parts their write-ahead segments would have become: moved back beside whatever
    segment survived, every row is there exactly once."""
    import asyncio

    actor = RunLogActor(str(tmp_path), flush_rows=1000, flush_interval_s=60)
    asyncio.run(actor.append_programs(rows(2)))

    def broken(self, batch, sync=True):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Segment, "append", broken)
    (tmp_path / "programs").rename(tmp_path / "moved")  # the folder is gone: nothing writes
    (tmp_path / "programs").write_text("not a directory")
    asyncio.run(actor.append_programs(rows(3, start=2)))
    assert actor.writer.in_wal["programs"] == 2 and actor.writer.pending() == 5
    with pytest.raises(OSError) as failure:
        asyncio.run(actor.flush())
    message = str(failure.value)
    assert "The 5 unwritten rows were saved to" in message and "no row twice" in message
    rescued = Path(message.split("saved to ")[1].split(":")[0])
    (tmp_path / "programs").unlink()
    (tmp_path / "moved").rename(tmp_path / "programs")  # holds the 2-row segment
    for part in (rescued / "programs").glob("*.parquet"):
        part.rename(tmp_path / "programs" / part.name)
    assert sorted(read_programs(tmp_path).column("score").to_pylist()) == [0, 1, 2, 3, 4]
    assert writer(tmp_path).recover() == [] and not segments(tmp_path)
    assert sorted(read_programs(tmp_path).column("score").to_pylist()) == [0, 1, 2, 3, 4]
    shutil.rmtree(rescued)
