"""What a run's log is asked while the run goes on, answered from what is written and
what the writer still buffers (no row is missed between a flush and a read).

`LogQueries` answers the resume queries (the seed program, one island's state, see
`rayevolve.log.replay`) and is the adaptive ensemble's replay source (`model_rewards`).
Only the rows a question needs become Python objects: a long log holds far more.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from rayevolve.log.readers import read_file
from rayevolve.log.replay import IslandState, initial_program, island_state
from rayevolve.log.schema import TABLES, EventKind
from rayevolve.log.writer import ParquetLogWriter
from rayevolve.mutation.ensemble import improvement_reward
from rayevolve.program import Program


class LogQueries:
    """Questions about the log `writer` holds (written files and buffered rows)."""

    def __init__(self, writer: ParquetLogWriter):
        self.writer = writer

    def written(self, table: str, columns: Sequence[str] | None = None) -> pa.Table | None:
        """The rows of `table` already on disk (None if none), read file by file."""
        files = sorted((self.writer.run_dir / table).glob("*.parquet"))
        if not files:
            return None
        return pa.concat_tables([read_file(f, TABLES[table], columns) for f in files])

    def selected(self, table: str, mask, keep) -> list[dict]:
        """Rows of `table`, written then buffered, in log order: written ones where the Arrow
        expression `mask(table)` holds, buffered ones where `keep(row)` does."""
        written = self.written(table)
        rows = [] if written is None else written.filter(mask(written)).to_pylist()
        return rows + [row for row in self.writer.buffered(table) if keep(row)]

    def initial_program(self) -> Program | None:
        """The run's seed program, as logged; None when the log holds no row at all (a
        run killed before its seed was judged starts again from it)."""
        rows = self.selected(
            "programs", lambda t: pc.equal(t["island"], -1), lambda r: r.get("island") == -1
        )
        if not rows and self.written("programs", ["program_id"]) is None:
            return None
        return initial_program(rows)

    def island_state(self, island: int) -> IslandState:
        """Everything island `island` needs to continue: its own rows, the migrants it
        accepted and the seed, selected before conversion."""
        migrations = self.selected(
            "events",
            lambda t: pc.and_(
                pc.equal(t["kind"], EventKind.MIGRATION), pc.equal(t["dst_island"], island)
            ),
            lambda r: r.get("kind") == EventKind.MIGRATION and r.get("dst_island") == island,
        )
        accepted = sorted({pid for event in migrations for pid in event.get("accepted_ids") or []})
        wanted = pa.array([island, -1], pa.int32())
        rows = self.selected(
            "programs",
            lambda t: pc.or_(
                pc.is_in(t["island"], value_set=wanted),
                pc.is_in(t["program_id"], value_set=pa.array(accepted, pa.string())),
            ),
            lambda r: r.get("island") in (island, -1) or r.get("program_id") in accepted,
        )
        return island_state(island, rows, migrations)

    def model_rewards(self, maximize: bool) -> list[tuple[str, float]]:
        """(model, reward) of every model-made candidate so far, in log order: what an
        adaptive ensemble replays after a restart or on resume."""
        columns = ["program_id", "parent_id", "island", "model", "score"]
        written = self.written("programs", columns)
        rows = [] if written is None else written.select(columns).to_pylist()
        rows += self.writer.buffered("programs")
        scores = {r["program_id"]: r.get("score") for r in rows}
        return [
            (r["model"], improvement_reward(scores.get(r["parent_id"]), r.get("score"), maximize))
            for r in rows
            if r.get("model") and r.get("parent_id") and r.get("island", -1) >= 0
        ]
