"""How an island hands its rows to the run log: batched, never lost on a failed send."""

import asyncio
import json

import pytest

from rayevolve.islands.island import MAX_CONSECUTIVE_ERRORS, IslandActor, IslandSettings
from tests.conftest import run_config


class StandInLog:
    """The run log actor's `append_programs.remote` (failing the first `fail` calls) and
    `append_events.remote`; what the island reported of itself with each."""

    def __init__(self, fail: int = 0):
        self.calls: list[list[dict]] = []
        self.events: list[dict] = []
        self.reported: list = []
        self.fail = fail

    async def _append(self, rows, stats=None):
        if self.fail:
            self.fail -= 1
            raise ConnectionError("the log actor is restarting")
        self.calls.append(list(rows))
        self.reported.append(stats)

    async def _events(self, rows, stats=None):
        self.events += rows
        self.reported.append(stats)

    @property
    def append_programs(self):
        return type("Method", (), {"remote": staticmethod(self._append)})()

    @property
    def append_events(self):
        return type("Method", (), {"remote": staticmethod(self._events)})()


def island(log: StandInLog, batch_s: float, stats_interval_s: float = 60) -> IslandActor:
    cfg = run_config("parabola")
    settings = IslandSettings(
        island_id=0,
        island_count=1,
        islands=cfg.islands,
        features=tuple(cfg.task.features),
        maximize=True,
        mutation_mode="diff",
        samples_per_request=1,
        quota=10,
        seed=0,
        run_id="test",
        stats_interval_s=stats_interval_s,
        log_batch_s=batch_s,
    )
    return IslandActor(settings, mutator=object(), pool=object(), runlog=log)


def rows(n: int) -> list[dict]:
    return [{"program_id": f"p{i}"} for i in range(n)]


def test_rows_of_a_batch_window_travel_in_one_call():
    async def scenario():
        log = StandInLog()
        actor = island(log, batch_s=0.05)
        for row in rows(5):
            await actor._log_rows(row)
        assert log.calls == []  # nothing sent before the window closes
        await asyncio.sleep(0.15)
        return log.calls

    calls = asyncio.run(scenario())
    assert [len(c) for c in calls] == [5]


def test_a_failed_send_keeps_its_rows_and_sends_them_once_later():
    async def scenario():
        log = StandInLog(fail=1)
        actor = island(log, batch_s=0.02)
        for row in rows(3):
            await actor._log_rows(row)
        await asyncio.sleep(0.2)  # the first send fails, the retry succeeds
        await actor._log_rows({"program_id": "late"})
        await actor._drain_rows()
        return log.calls, actor.error

    calls, error = asyncio.run(scenario())
    sent = [row["program_id"] for call in calls for row in call]
    assert sorted(sent) == ["late", "p0", "p1", "p2"] and error is None


def test_without_batching_each_row_is_sent_at_once_and_errors_reach_the_worker():
    async def scenario():
        log = StandInLog()
        actor = island(log, batch_s=0)
        await actor._log_rows({"program_id": "a"})
        sent = list(log.calls)
        log.fail = 1
        with pytest.raises(ConnectionError):
            await actor._log_rows({"program_id": "b"})
        return sent, actor._unsent

    sent, unsent = asyncio.run(scenario())
    assert sent == [[{"program_id": "a"}]]
    assert unsent == [{"program_id": "b"}]  # kept for the next send, not dropped


def test_a_log_that_never_accepts_stops_the_island_with_its_rows_counted():
    async def scenario():
        log = StandInLog(fail=10**6)
        actor = island(log, batch_s=0.01)
        await actor._log_rows({"program_id": "x"})
        await asyncio.sleep(0.01 * (MAX_CONSECUTIVE_ERRORS + 5))
        return actor.error

    error = asyncio.run(scenario())
    assert error is not None and "cannot send 1 rows to the run log" in error


def test_the_island_reports_its_statistics_with_the_rows_it_sends():
    """The controller reads every island's statistics from the log actor in one call,
    so an island never needs to be polled."""

    async def scenario():
        log = StandInLog()
        actor = island(log, batch_s=0)
        actor.counts.judged("ok")
        await actor._log_rows({"program_id": "p0"})
        return log.reported

    (stats,) = asyncio.run(scenario())
    assert stats.island == 0 and stats.evaluations == 1


def test_a_waiting_island_logs_no_statistics_events():
    async def scenario():
        log = StandInLog()
        actor = island(log, batch_s=0, stats_interval_s=0.01)
        ticker = asyncio.ensure_future(actor._stats_loop())
        await asyncio.sleep(0.2)  # twenty intervals, nothing changes: one event
        quiet = len(log.events)
        actor.counts.judged("timeout")
        await asyncio.sleep(0.05)
        ticker.cancel()
        return quiet, log.events

    quiet, events = asyncio.run(scenario())
    assert quiet == 1 and len(events) == 2
    assert json.loads(events[-1]["payload"])["statuses"] == {"timeout": 1}
