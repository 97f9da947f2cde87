"""`EvaluatorPool`: one async actor that hands candidates to idle evaluator actors.

Islands call `evaluate(code)` concurrently; the pool queues the candidates, oldest
first, and hands them to whichever evaluator is free (so every island shares every
evaluator), replaces an evaluator that dies, and retries the candidate on the next free
one up to `max_attempts`. A candidate's own failure (timeout, crash inside the sandbox,
wrong answer) is final and never retried: only the infrastructure's failures are.

Where evaluations are cheap (a few milliseconds), the actor call that carries one costs
as much CPU as the evaluation; there the pool sends an idle evaluator several waiting
candidates in one call: as many as its recent evaluations fit in
`evaluation.batch_window_s`, at most `evaluation.batch_max`. A candidate whose batch
died with its evaluator is retried alone, so a candidate that kills evaluators cannot
use up an innocent batch-mate's attempts.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from dataclasses import dataclass, replace

from rayevolve.cluster import actor_was_restarted, creation_error
from rayevolve.config import EvaluationConfig
from rayevolve.log.schema import EventKind
from rayevolve.outcome import Outcome
from rayevolve.result import TRANSIENT_STATUSES, EvalResult
from rayevolve.roles import Role, actor_name, member
from rayevolve.tasks import TaskSpec

log = logging.getLogger(__name__)


async def _awaitable(ref):
    return await ref


class NoEvaluatorError(RuntimeError):
    """No evaluator can be reached: the run cannot make progress."""


HEAL_S = 1.0  # how often the pool checks that enough evaluators are alive or starting
HEAL_BACKOFF_MAX_S = 30.0  # the longest wait between replacements that keep failing


class EvaluatorStartError(RuntimeError):
    """Every evaluator failed to start, for a reason of the node or the configuration
    (e.g. an isolation level the node cannot give): the message says which and why."""


@dataclass
class _Job:
    """One candidate waiting for (or in) an evaluation."""

    code: str
    future: asyncio.Future
    attempts: int = 0
    solo: bool = False  # retried after an evaluator died: never batched again


class EvaluatorPool:
    def __init__(
        self,
        task: TaskSpec,
        config: EvaluationConfig,
        actor_options: dict,
        run_id: str = "",
        hidden: tuple[str, ...] = (),
    ):
        self.task = task
        self.config = config
        self.actor_options = actor_options
        self.run_id = run_id
        self.hidden = tuple(hidden)  # host paths candidates must never see (the run dir)
        self._handles: dict[str, object] = {}
        self._start_errors: dict[str, str] = {}
        self._started = False
        self._ids = itertools.count()
        self._idle: asyncio.Queue = asyncio.Queue()
        self._placements: dict[str, dict] = {}
        self._empty_since: float | None = None  # monotonic time the last evaluator died
        self._pending: set[asyncio.Task] = set()
        self._jobs: deque[_Job] = deque()  # waiting candidates, oldest first
        self._wakeup = asyncio.Event()
        self._dispatcher: asyncio.Task | None = None
        self._cost: dict[str, float] = {}  # evaluator -> recent seconds per candidate
        self._healer: asyncio.Task | None = None
        self._failed_starts = 0  # in a row, since the last evaluator that started
        self._next_start = 0.0  # monotonic time before which no replacement is started
        self._counts = {
            "evaluations": 0,
            "calls": 0,
            "retries": 0,
            "evaluator_deaths": 0,
            "replacements": 0,
        }

    def _spawn(self):
        import ray

        from rayevolve.sandbox.actor import EvaluatorActor

        evaluator_id = member(Role.EVALUATOR, next(self._ids))
        name = actor_name(self.run_id, evaluator_id) if self.run_id else None
        handle = (
            ray.remote(EvaluatorActor)
            .options(max_restarts=0, max_concurrency=1, name=name, **self.actor_options)
            .remote(evaluator_id, self.task, self.config, self.hidden)
        )
        self._handles[evaluator_id] = handle
        task = asyncio.ensure_future(self._admit(evaluator_id, handle))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _admit(self, evaluator_id: str, handle) -> None:
        try:
            placement = await handle.ready.remote()
            reason = placement.get("start_error")
        except Exception as exc:  # the actor could not start
            reason = creation_error(exc) or f"{type(exc).__name__}"
        if reason:
            import ray

            self._start_errors[evaluator_id] = reason
            self._handles.pop(evaluator_id, None)
            ray.kill(handle)
            self._failed_starts += 1  # the healer tries again, ever less often
            self._next_start = time.monotonic() + min(HEAL_BACKOFF_MAX_S, 2.0**self._failed_starts)
            log.warning("evaluator %s failed to start: %s", evaluator_id, reason)
            return
        self._failed_starts = 0
        self._placements[evaluator_id] = placement
        self._placed(evaluator_id, placement)
        self._empty_since = None
        self._idle.put_nowait((evaluator_id, handle))

    async def start(self) -> list[dict]:
        """Create the evaluators; wait until one is ready (at most unavailable_timeout_s)."""
        if not self._started:
            self._started = True
            self._empty_since = time.monotonic()  # none alive yet: the clock runs from now
            if actor_was_restarted():
                self._event(
                    EventKind.POOL_RESTARTED,
                    "the evaluator pool was restarted; evaluators are started anew",
                )
            for _ in range(self.config.num_evaluators):
                self._spawn()
            self._healer = asyncio.ensure_future(self._heal())
        while not self._placements:
            if len(self._start_errors) >= self.config.num_evaluators:
                reasons = sorted(set(self._start_errors.values()))
                raise EvaluatorStartError(
                    f"no evaluator could start ({len(self._start_errors)} tried): "
                    + " | ".join(reasons)
                )
            self._raise_if_gone()
            await asyncio.sleep(0.05)
        return list(self._placements.values())

    async def close(self, wait_s: float = 3.0) -> None:
        """Let every idle evaluator remove its folders now (one still busy with an
        abandoned candidate is killed with the pool: the next evaluator to start on its
        node sweeps them)."""
        if self._healer is not None:
            self._healer.cancel()  # the run is over: no more replacements
        handles = list(self._handles.values())
        self._handles.clear()
        if handles:
            calls = [asyncio.ensure_future(_awaitable(h.close.remote())) for h in handles]
            _, pending = await asyncio.wait(calls, timeout=wait_s)
            for call in pending:
                call.cancel()

    async def _heal(self) -> None:
        """Keep `num_evaluators` evaluators alive or on their way: whenever fewer are (a
        death, a failed start, a node gone), start replacements. Ray places each as soon
        as a node can host it (a node that returns gets its evaluators back within
        seconds); starts that keep failing are retried ever less often."""
        while True:
            await asyncio.sleep(HEAL_S)
            missing = self.config.num_evaluators - len(self._handles)
            if missing > 0 and time.monotonic() >= self._next_start:
                log.info("%d evaluator(s) missing: starting replacements", missing)
                self._counts["replacements"] += missing
                for _ in range(missing):
                    self._spawn()

    def _raise_if_gone(self) -> None:
        if self._empty_since is None:
            return
        gone = time.monotonic() - self._empty_since
        if gone > self.config.unavailable_timeout_s:
            raise NoEvaluatorError(
                f"no evaluator has been alive for {gone:.0f} s: every node that can run this task "
                f"({self.actor_options}) seems gone or busy. Bring such a node back and resume the run."
            )

    def _placed(self, evaluator_id: str, placement: dict) -> None:
        """One ``placement`` event per evaluator that started (replacements included)."""
        if self.run_id:
            from rayevolve.log.actor import log_event

            fields = {k: placement.get(k) for k in ("node_id", "host", "ip", "pid")}
            log_event(
                self.run_id,
                EventKind.PLACEMENT,
                f"{Role.EVALUATOR} {evaluator_id} on {fields['host']} ({fields['ip']})",
                payload={"role": Role.EVALUATOR, "name": evaluator_id, **fields},
            )

    def _event(self, kind: str, message: str) -> None:
        if self.run_id:
            from rayevolve.log.actor import log_event

            log_event(self.run_id, kind, message)

    async def evaluate(self, code: str) -> EvalResult:
        if not self._started:  # a restarted pool: its evaluators died with it
            await self.start()
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.ensure_future(self._dispatch())
            self._dispatcher.add_done_callback(self._dispatcher_ended)
        job = _Job(code, asyncio.get_running_loop().create_future())
        self._jobs.append(job)
        self._wakeup.set()
        return await job.future

    def _batch_size(self, evaluator_id: str) -> int:
        """Candidates for one call to this evaluator: as many as its recent evaluations
        fit in `batch_window_s` (an actor call costs about as much CPU as a cheap
        evaluation; slower ones go alone, their results back the moment each is done)."""
        cost = self._cost.get(evaluator_id)
        if cost is None:
            return 1
        fits = int(self.config.batch_window_s / max(cost, 1e-6))
        return max(1, min(self.config.batch_max, fits))

    def _take(self, size: int) -> list[_Job]:
        """The oldest jobs, at most `size`; a job retried after an evaluator died goes
        alone (a batch-mate may have been what killed it)."""
        batch = [self._jobs.popleft()]
        while len(batch) < size and self._jobs and not batch[0].solo and not self._jobs[0].solo:
            batch.append(self._jobs.popleft())
        return batch

    async def _dispatch(self) -> None:
        """Hand the oldest waiting candidates to each evaluator that becomes idle."""
        while True:
            while not self._jobs:
                self._wakeup.clear()
                await self._wakeup.wait()
            try:
                evaluator_id, handle = await self._next_evaluator()
            except NoEvaluatorError as exc:
                while self._jobs:  # every waiting island learns that the run cannot go on
                    job = self._jobs.popleft()
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            while self._jobs and self._jobs[0].future.done():  # its caller went away
                self._jobs.popleft()
            if not self._jobs:
                self._idle.put_nowait((evaluator_id, handle))
                continue
            batch = self._take(self._batch_size(evaluator_id))
            task = asyncio.ensure_future(self._run(evaluator_id, handle, batch))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    def _dispatcher_ended(self, task: asyncio.Task) -> None:
        """A dispatcher that failed must not leave islands waiting forever."""
        if task.cancelled() or task.exception() is None:
            return
        log.error("the evaluator pool's dispatcher failed: %r", task.exception())
        while self._jobs:
            job = self._jobs.popleft()
            if not job.future.done():
                job.future.set_exception(task.exception())

    async def _run(self, evaluator_id: str, handle, batch: list[_Job]) -> None:
        import ray.exceptions

        self._counts["calls"] += 1
        try:
            if len(batch) == 1:
                results = [await handle.evaluate.remote(batch[0].code)]
            else:
                results = await handle.evaluate_many.remote([job.code for job in batch])
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as exc:
            self._counts["evaluator_deaths"] += 1
            self._placements.pop(evaluator_id, None)
            self._handles.pop(evaluator_id, None)
            self._cost.pop(evaluator_id, None)
            if not self._placements and self._empty_since is None:
                self._empty_since = time.monotonic()
            problem = f"{evaluator_id} died during the evaluation ({type(exc).__name__})"
            log.warning("%s; starting a replacement", problem)
            self._event(EventKind.EVALUATOR_REPLACED, problem)
            self._counts["replacements"] += 1
            self._spawn()
            for job in reversed(batch):
                job.solo = True
                self._retry_or_fail(job, problem)
            return
        except Exception as exc:  # the call failed some other way: never leave a caller waiting
            self._idle.put_nowait((evaluator_id, handle))
            problem = f"{evaluator_id}: {type(exc).__name__}: {exc}"
            log.warning("evaluation call failed: %s", problem)
            for job in reversed(batch):
                self._retry_or_fail(job, problem)
            return
        self._idle.put_nowait((evaluator_id, handle))
        per_candidate = sum(r.wall_s for r in results) / len(results)
        previous = self._cost.get(evaluator_id, per_candidate)
        self._cost[evaluator_id] = 0.8 * previous + 0.2 * per_candidate
        for job, result in zip(reversed(batch), reversed(results), strict=True):
            if result.status in TRANSIENT_STATUSES:
                self._retry_or_fail(job, result.artifacts.get("error", str(result.status)))
            else:
                job.attempts += 1
                self._counts["evaluations"] += 1
                if not job.future.done():
                    job.future.set_result(replace(result, attempts=job.attempts))

    def _retry_or_fail(self, job: _Job, problem: str) -> None:
        """An infrastructure failure: the job goes back to the head of the queue, or,
        after `max_attempts`, ends as CRASHED with the last problem."""
        job.attempts += 1
        if job.attempts < self.config.max_attempts:
            self._counts["retries"] += 1
            self._jobs.appendleft(job)
            self._wakeup.set()
            return
        self._counts["evaluations"] += 1
        if not job.future.done():
            job.future.set_result(
                EvalResult.failure(
                    Outcome.CRASHED,
                    f"no evaluator could finish this candidate in {self.config.max_attempts} "
                    f"attempts; last: {problem}",
                    attempts=job.attempts,
                )
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

    def placement(self) -> dict:
        """Where this actor runs (`rayevolve.placement.Placement`), logged at start."""
        from rayevolve.placement import here

        return here().to_payload()
