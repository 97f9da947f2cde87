"""The run's shared actors: the run log, the mutator and the evaluator pool, where
they run, and how they are started, recorded and closed.

Control-plane actors (the log, the pool, the islands, a mutator that needs no
accelerator) live on the driver's node: losing a worker node (a Mac running benchmarks)
must not take them with it, nor may they take its scarce resources.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import ray

from rayevolve.cluster import ray_options, remote_error
from rayevolve.config import RunConfig
from rayevolve.log import event_row
from rayevolve.log.schema import EventKind
from rayevolve.roles import Role, actor_name
from rayevolve.run.errors import RunError
from rayevolve.tasks import TaskSpec

log = logging.getLogger(__name__)
ACTOR_RESTARTS = 3  # mutator and evaluator pool; islands: islands.max_restarts
PLACEMENT_WAIT_S = 10.0  # how long the start waits for an actor to say where it runs
CLOSE_POOL_S = 10.0
CLOSE_LOG_S = 60.0


def near_driver():
    """A scheduling strategy that keeps an actor on the driver's node, never elsewhere."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)


def api_keys(config: RunConfig) -> dict[str, str]:
    """API keys from the driver's environment, for the mutator actor (in memory only: a
    key is never part of the config, the run directory or the log)."""
    if config.mutation.backend != "openai":
        return {}
    return {n: os.environ[n] for n in config.mutation.api_key_envs() if os.environ.get(n)}


@dataclass
class SharedActors:
    """The actors every island calls, found by name (see `rayevolve.roles`).

    Attributes:
      placements: each evaluator's placement as it started (isolation included).
      recovered: what the log recovered from its write-ahead segments at open.
    """

    runlog: object = None
    mutator: object = None
    pool: object = None
    placements: list[dict] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)

    @property
    def handles(self) -> list:
        return [a for a in (self.runlog, self.mutator, self.pool) if a is not None]

    def by_role(self) -> dict:
        return {Role.RUNLOG: self.runlog, Role.MUTATOR: self.mutator, Role.POOL: self.pool}

    def event(self, run_id: str, kind: str, **fields):
        """Append one event of the run to the log; returns the call's ObjectRef."""
        return self.runlog.append_events.remote([event_row(run_id, kind, **fields)])

    def close_pool(self) -> None:
        if self.pool is None:
            return
        try:
            ray.get(self.pool.close.remote(), timeout=CLOSE_POOL_S)
        except Exception as exc:  # its evaluators' folders are swept at the next start
            log.debug("could not close the evaluators: %s", exc)
        self.pool = None

    def close_log(self) -> dict:
        """Write every buffered row; the rows written per table. Raises the log's error."""
        rows = ray.get(self.runlog.close.remote())
        self.runlog = None  # closed: the exit path need not close it again
        return rows

    def flush_log(self) -> None:
        """Whatever happened, write every buffered row before the actors go."""
        if self.runlog is None:
            return
        try:
            ray.get(self.runlog.close.remote(), timeout=CLOSE_LOG_S)
        except Exception as exc:  # reported, not raised: the run's own error matters more
            log.error("could not flush the run log: %s", exc)


def start_shared(
    shared: SharedActors,
    config: RunConfig,
    task: TaskSpec,
    run_id: str,
    run_dir: Path,
    context,
    keys: dict,
) -> None:
    """Start the log (the run directory's one writer), the mutator and the pool into
    `shared`, each as soon as it is created, so that the caller can kill what was started
    whatever happens; then wait for the mutator and the evaluators to be ready."""
    from rayevolve.log.actor import RunLogActor
    from rayevolve.mutation.actor import MutatorActor
    from rayevolve.sandbox.pool import EvaluatorPool

    runlog = (
        ray.remote(RunLogActor)
        .options(
            name=actor_name(run_id, Role.RUNLOG), num_cpus=0, scheduling_strategy=near_driver()
        )
        .remote(
            str(run_dir), config.log.flush_rows, config.log.flush_interval_s, config.log.write_ahead
        )
    )
    try:
        shared.recovered = ray.get(runlog.open.remote(config.log.writer_wait_s))
    except ray.exceptions.RayTaskError as exc:
        ray.kill(runlog)
        raise RunError(remote_error(exc)) from None
    shared.runlog = runlog
    restartable = {"max_restarts": ACTOR_RESTARTS, "max_task_retries": -1}  # calls re-sent
    cfg = config.mutation
    wants = cfg.actor_resources()
    placed_by_need = cfg.label_selector or any(v for k, v in wants.items() if k != "CPU")
    shared.mutator = (
        ray.remote(MutatorActor)
        .options(
            name=actor_name(run_id, Role.MUTATOR),
            max_concurrency=cfg.max_concurrency,
            **restartable,
            **ray_options(wants),
            **({"label_selector": dict(cfg.label_selector)} if cfg.label_selector else {}),
            **({} if placed_by_need else {"scheduling_strategy": near_driver()}),
        )
        .remote(cfg, run_id, context, config.seed, keys)
    )
    evaluator_options = {
        **ray_options(task.resources),
        **({"label_selector": task.label_selector} if task.label_selector else {}),
    }
    shared.pool = (
        ray.remote(EvaluatorPool)
        .options(
            name=actor_name(run_id, Role.POOL),
            num_cpus=0,
            max_concurrency=100_000,
            scheduling_strategy=near_driver(),
            **restartable,
        )
        .remote(task, config.evaluation, evaluator_options, run_id, (str(run_dir.resolve()),))
    )
    try:
        ray.get(shared.mutator.start.remote())
    except ray.exceptions.RayTaskError as exc:
        raise RunError(f"the mutator cannot start: {remote_error(exc)}") from None
    try:
        shared.placements = ray.get(shared.pool.start.remote())
    except ray.exceptions.RayTaskError as exc:
        raise RunError(f"the evaluators cannot start: {remote_error(exc)}") from None


def log_placements(run_id: str, shared: SharedActors, islands: list) -> None:
    """One ``placement`` event per actor: where the log, the mutator, the pool and each
    island run (evaluators log their own as they start). One that does not answer within
    a few seconds is said in its event rather than waited for. Runs in a thread of the
    driver while the islands evolve; the run goes on without them if this fails."""
    try:
        _write_placements(run_id, shared, islands)
    except Exception as exc:
        log.warning("could not log where the actors run: %s", exc)


def _write_placements(run_id: str, shared: SharedActors, islands: list) -> None:
    actors = [(role, str(role), handle) for role, handle in shared.by_role().items()]
    actors += [(Role.ISLAND, str(i), island) for i, island in enumerate(islands)]
    refs = [handle.placement.remote() for _, _, handle in actors]
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=PLACEMENT_WAIT_S)
    rows = []
    for (role, name, _), ref in zip(actors, refs, strict=True):
        try:
            where = ray.get(ref) if ref in ready else None
        except ray.exceptions.RayError as exc:
            where, message = None, f"{role} {name}: placement unknown ({remote_error(exc)})"
        else:
            message = (
                f"{role} {name} on {where['host']} ({where['ip']}, pid {where['pid']})"
                if where
                else f"{role} {name}: placement unknown (no answer in {PLACEMENT_WAIT_S:g} s)"
            )
        payload = {"role": role, "name": name, **(where or {})}
        rows.append(event_row(run_id, EventKind.PLACEMENT, message=message, payload=payload))
    ray.get(shared.runlog.append_events.remote(rows))
