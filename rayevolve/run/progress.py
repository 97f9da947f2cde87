"""What the driver says while a run goes on: one line at start (how candidates are
isolated, the budget, the run directory), then a progress bar on a terminal or a status
line every few seconds in a log or a pipe."""

from __future__ import annotations

import logging
import sys
import time

from rayevolve.config import RunConfig
from rayevolve.result import Isolation
from rayevolve.run.stopping import fitness
from rayevolve.tasks import TaskSpec

log = logging.getLogger(__name__)
STATUS_EVERY_S = 10.0
IN_PROCESS_NOTE = (
    "; the evaluator runs candidates in its own process (in_process): scores can be forged"
)


def announce(
    config: RunConfig, run_id: str, run_dir, task: TaskSpec, placements: list[dict]
) -> str:
    """Say once, at start, how candidates are isolated; returns it for the summary."""
    details = sorted({p.get("isolation_detail", "") for p in placements} - {""})
    text = ", ".join(details) or "unknown"
    stop = config.stop
    budget = f"stops after {stop.max_evaluations} evaluations" + (
        f" or {stop.max_wall_s:g} s (stop.max_wall_s)" if stop.max_wall_s is not None else ""
    )
    line = (
        f"rayevolve run {run_id} ({task.name}): {len(placements)} evaluator(s) ready; "
        f"isolation {text}; {budget}; run directory {run_dir}"
    )
    if any(p.get("isolation") == Isolation.NONE for p in placements):
        log.warning("%s", line)
    else:
        log.info("%s", line)
    return text


def warn_in_process(task: TaskSpec) -> str:
    """Said when the initial program's verdict came from the evaluator's own process;
    returns the note the summary's isolation line gets."""
    log.warning(
        "task %s: its evaluator runs each candidate in its own judging process, so "
        "a candidate can forge its verdict; rows are marked isolation=in_process. "
        "Run candidate code through rayevolve.evaluators.candidate_call.call_isolated "
        "to judge from a process the candidate never touched.",
        task.name,
    )
    return IN_PROCESS_NOTE


class ProgressDisplay:
    """The bar (a terminal) or the periodic status line (anything else); ``progress``
    false silences both."""

    def __init__(self, config: RunConfig, maximize: bool, done_before: int):
        from tqdm import tqdm

        self.enabled = config.progress
        self.total = config.stop.max_evaluations
        self.maximize = maximize
        self.interactive = self.enabled and sys.stderr.isatty()
        self.bar = tqdm(
            total=self.total,
            unit="eval",
            disable=not self.interactive,
            file=sys.stderr,
            dynamic_ncols=True,
        )
        self.bar.n = done_before
        self._last_line = time.monotonic()

    def best(self, stats) -> float | None:
        return max(
            (s.best_score for s in stats if s and s.best_score is not None),
            key=lambda v: fitness(v, self.maximize),
            default=None,
        )

    def show(self, done: int, best: float | None, rate: float, failures: int) -> None:
        self.bar.n = done
        self.bar.set_postfix(
            best=f"{best:.5g}" if best is not None else "-",
            rate=f"{rate:.1f}/s",
            fail=failures,
            refresh=False,
        )
        self.bar.refresh()
        if self.enabled and not self.interactive:
            if time.monotonic() - self._last_line >= STATUS_EVERY_S:
                self._last_line = time.monotonic()  # logs and pipes get a line, not a bar
                log.info(
                    "%d/%d evaluations, best %s, %.1f/s, %d failed",
                    done,
                    self.total,
                    "-" if best is None else f"{best:.6g}",
                    rate,
                    failures,
                )

    def close(self) -> None:
        self.bar.close()
