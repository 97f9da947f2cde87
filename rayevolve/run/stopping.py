"""When a run ends, and why: the stop rules as a pure function of what the controller
last saw (`Progress`), unit-tested without Ray. The controller polls, displays and
carries out the `Ending` this returns."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from rayevolve.config import LogConfig, StopConfig


class Stop(StrEnum):
    """Why a run ended (the summary's ``stop``; ``stopped_because`` says it in words)."""

    BUDGET = "budget"  # stop.max_evaluations reached
    TARGET = "target"  # stop.target_score reached
    WALL_TIME = "wall_time"  # stop.max_wall_s reached
    INTERRUPTED = "interrupted"  # Ctrl-C
    FAULT = "fault"  # the log, the evaluators or the model cannot go on
    ISLANDS = "islands"  # every island ended before the budget (see island errors)

    @property
    def completed(self) -> bool:
        """The run did what it was asked: nothing to resume."""
        return self in (Stop.BUDGET, Stop.TARGET)


@dataclass(frozen=True)
class Progress:
    """What the controller knows at one poll.

    Attributes:
      evaluations: children judged so far, earlier sessions included.
      best: the best score so far (None before any), in the task's own sign.
      elapsed_s: seconds since this session's islands started.
      islands_done: islands whose loop has ended (quota met, or given up).
      islands: islands of the run.
      log_error, log_failing_s: the log's oldest unresolved write error and its age.
      fatal: an island's error after which no island can progress.
    """

    evaluations: int
    best: float | None
    elapsed_s: float
    islands_done: int
    islands: int
    log_error: str | None = None
    log_failing_s: float = 0.0
    fatal: str | None = None


@dataclass(frozen=True)
class Ending:
    """The decision to stop: why, in words and as a `Stop`, and whether islands may
    finish their children in flight (drain) or stop at once."""

    reason: str
    stop: Stop
    drain: bool


def fitness(score: float | None, maximize: bool) -> float:
    """A score as "higher is better" (no score: worst of all)."""
    if score is None:
        return -math.inf
    return score if maximize else -score


def rank(score: float | None, created_at: float, program_id: str, maximize: bool) -> tuple:
    """The one order of "best" (the summary, ``best/``, the report, the web view): the
    fittest first; among equal scores the first to reach it, then the smaller id."""
    return (-fitness(score, maximize), created_at, program_id)


def decide(p: Progress, stop: StopConfig, log: LogConfig, maximize: bool) -> Ending | None:
    """The ending due now, or None to go on. Faults first, then the islands' own end,
    then the target and the time limit."""
    if p.log_error and p.log_failing_s > log.failure_timeout_s:
        return Ending(f"stopped: {p.log_error} (for {p.log_failing_s:.0f} s)", Stop.FAULT, False)
    if p.fatal:
        return Ending(f"stopped: {p.fatal}", Stop.FAULT, False)
    if p.islands_done == p.islands:
        if p.evaluations < stop.max_evaluations:
            return Ending("islands stopped early (see island errors)", Stop.ISLANDS, False)
        return Ending("max_evaluations reached", Stop.BUDGET, False)
    if (
        stop.target_score is not None
        and p.best is not None
        and fitness(p.best, maximize) >= fitness(stop.target_score, maximize)
    ):
        return Ending(f"target score {stop.target_score:g} reached", Stop.TARGET, True)
    if stop.max_wall_s is not None and p.elapsed_s >= stop.max_wall_s:
        return Ending(f"wall-time limit {stop.max_wall_s:g} s reached", Stop.WALL_TIME, True)
    return None
