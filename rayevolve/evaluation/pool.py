"""`EvaluatorPool`: one async actor that hands candidates to idle evaluator actors.

Islands call `evaluate(code)` concurrently; the pool queues them onto whichever
evaluator is free (so every island shares every evaluator), replaces an evaluator that
dies, and retries the candidate on the next free one up to `max_attempts`. A
candidate's own failure (timeout, crash inside the sandbox, wrong answer) is final and
never retried: only the infrastructure's failures are.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import replace

from rayevolve.cluster import actor_was_restarted
from rayevolve.config import EvaluationConfig
from rayevolve.evaluation.result import TRANSIENT_STATUSES, EvalResult, EvalStatus
from rayevolve.tasks import TaskSpec

log = logging.getLogger(__name__)


class NoEvaluatorError(RuntimeError):
    """No evaluator can be reached: the run cannot make progress."""


class EvaluatorPool:
    def __init__(
        self,
        task: TaskSpec,
        config: EvaluationConfig,
        actor_options: dict,
        run_id: str = "",
    ):
        self.task = task
        self.config = config
        self.actor_options = actor_options
        self.run_id = run_id
        self._started = False
        self._ids = itertools.count()
        self._idle: asyncio.Queue = asyncio.Queue()
        self._placements: dict[str, dict] = {}
        self._empty_since: float | None = None  # monotonic time the last evaluator died
        self._pending: set[asyncio.Task] = set()
        self._counts = {"evaluations": 0, "retries": 0, "evaluator_deaths": 0, "replacements": 0}

    def _spawn(self):
        import ray

        from rayevolve.evaluation.actor import EvaluatorActor

        evaluator_id = f"evaluator-{next(self._ids)}"
        name = f"{self.run_id}:{evaluator_id}" if self.run_id else None
        handle = (
            ray.remote(EvaluatorActor)
            .options(max_restarts=0, max_concurrency=1, name=name, **self.actor_options)
            .remote(evaluator_id, self.task, self.config)
        )
        task = asyncio.ensure_future(self._admit(evaluator_id, handle))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _admit(self, evaluator_id: str, handle) -> None:
        try:
            placement = await handle.ready.remote()
        except Exception as exc:  # the actor could not start
            log.warning("evaluator %s failed to start: %r", evaluator_id, exc)
            return
        self._placements[evaluator_id] = placement
        self._empty_since = None
        self._idle.put_nowait((evaluator_id, handle))

    async def start(self) -> list[dict]:
        """Create the evaluators; wait until one is ready (at most unavailable_timeout_s)."""
        if not self._started:
            self._started = True
            self._empty_since = time.monotonic()  # none alive yet: the clock runs from now
            if actor_was_restarted():
                self._event(
                    "pool_restarted",
                    "the evaluator pool was restarted; evaluators are started anew",
                )
            for _ in range(self.config.num_evaluators):
                self._spawn()
        while not self._placements:
            self._raise_if_gone()
            await asyncio.sleep(0.05)
        return list(self._placements.values())

    def _raise_if_gone(self) -> None:
        if self._empty_since is None:
            return
        gone = time.monotonic() - self._empty_since
        if gone > self.config.unavailable_timeout_s:
            raise NoEvaluatorError(
                f"no evaluator has been alive for {gone:.0f} s: every node that can run this task "
                f"({self.actor_options}) seems gone or busy. Bring such a node back and resume the run."
            )

    def _event(self, kind: str, message: str) -> None:
        if self.run_id:
            from rayevolve.runlog import log_event

            log_event(self.run_id, kind, message)

    async def evaluate(self, code: str) -> EvalResult:
        import ray.exceptions

        if not self._started:  # a restarted pool: its evaluators died with it
            await self.start()
        last_problem = ""
        for attempt in range(1, self.config.max_attempts + 1):
            evaluator_id, handle = await self._next_evaluator()
            try:
                result: EvalResult = await handle.evaluate.remote(code)
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as exc:
                self._counts["evaluator_deaths"] += 1
                self._placements.pop(evaluator_id, None)
                if not self._placements and self._empty_since is None:
                    self._empty_since = time.monotonic()
                last_problem = f"{evaluator_id} died during the evaluation ({type(exc).__name__})"
                log.warning("%s; starting a replacement", last_problem)
                self._event("evaluator_replaced", last_problem)
                self._counts["replacements"] += 1
                self._spawn()
                self._counts["retries"] += 1
                continue
            self._idle.put_nowait((evaluator_id, handle))
            if result.status in TRANSIENT_STATUSES:
                last_problem = result.artifacts.get("error", str(result.status))
                self._counts["retries"] += 1
                continue
            self._counts["evaluations"] += 1
            return replace(result, attempts=attempt)
        self._counts["evaluations"] += 1
        return EvalResult.failure(
            EvalStatus.CRASHED,
            f"no evaluator could finish this candidate in {self.config.max_attempts} attempts; last: {last_problem}",
            attempts=self.config.max_attempts,
        )

    async def _next_evaluator(self):
        """An idle evaluator; raises once none has been alive for unavailable_timeout_s."""
        getter = asyncio.ensure_future(self._idle.get())  # one pending get: no item can be lost
        try:
            while True:
                done, _ = await asyncio.wait({getter}, timeout=1.0)
                if done:
                    return getter.result()
                self._raise_if_gone()
        finally:
            if not getter.done():
                getter.cancel()

    def placements(self) -> list[dict]:
        return list(self._placements.values())

    def stats(self) -> dict:
        return {**self._counts, "evaluators": len(self._placements), "idle": self._idle.qsize()}
