"""`IslandGroup`: a run's fleet of islands in one object, as RLlib keeps its env runners.

It creates the islands from the run's configuration (an actor each, or hosts of
``islands.per_actor`` islands), restores them from the log, tells each its peers, starts
their loops, polls their statistics, restarts the ones that die (within
``islands.max_restarts``, logged as events), stops them (drained or not) and collects
their best programs. The controller only calls it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

import ray

from rayevolve.cluster import remote_error
from rayevolve.config import RunConfig
from rayevolve.islands.island import IslandSettings, IslandStats
from rayevolve.log.schema import EventKind
from rayevolve.program import Program
from rayevolve.roles import Role, actor_name
from rayevolve.tasks import TaskSpec

log = logging.getLogger(__name__)
STATS_TIMEOUT_S = 10.0
BEST_TIMEOUT_S = 30.0


class IslandStartError(RuntimeError):
    """The islands could not be restored from the log or started; the message says why."""


def island_settings(config: RunConfig, task: TaskSpec, run_id: str) -> list[IslandSettings]:
    """Each island's settings: the evaluation budget split evenly (the first islands take
    the remainder), the run's seed, the task's features and direction."""
    count = config.islands.count
    base, extra = divmod(config.stop.max_evaluations, count)
    return [
        IslandSettings(
            island_id=i,
            island_count=count,
            islands=config.islands,
            features=task.features,
            maximize=task.maximize,
            mutation_mode=config.mutation.mode,
            samples_per_request=config.mutation.samples_per_request,
            quota=base + (1 if i < extra else 0),
            seed=config.seed,
            run_id=run_id,
            stats_interval_s=config.log.stats_interval_s,
            log_batch_s=config.log.island_batch_s,
            report_rewards=config.mutation.backend != "offline" and config.mutation.bandit.enabled,
        )
        for i in range(count)
    ]


class IslandGroup:
    """The run's islands: a handle per island (an actor or a `HostedIsland`), their loops'
    calls, and what the group knows of each (latest statistics, restarts, losses).

    Attributes:
      islands: one handle per island, in island order.
      actors: the Ray actors behind them (fewer than islands with ``per_actor`` > 1).
      stats: each island's latest `IslandStats` (None until it reports).
      finished: islands whose loop ended (done, or given up).
      errors: why each island that was given up was.
    """

    def __init__(
        self,
        config: RunConfig,
        task: TaskSpec,
        run_id: str,
        scheduling_strategy,
        event: Callable[..., object],
    ):
        self.config = config
        self.run_id = run_id
        self._event = event  # event(kind, **fields): one event row of the run
        self.settings = island_settings(config, task, run_id)
        self.actors: list = []
        self.islands: list = self._create(scheduling_strategy)
        self.peers = dict(enumerate(self.islands))
        self.runs: list = []
        self.stats: list[IslandStats | None] = [None] * len(self.islands)
        self.finished: set[int] = set()
        self.errors: list[str] = []
        self._restarts: Counter[int] = Counter()
        self._restarting: set[int] = set()  # islands Ray is restarting (said once each)

    def __len__(self) -> int:
        return len(self.islands)

    def _create(self, scheduling_strategy) -> list:
        """One actor per island, or hosts of `islands.per_actor` islands each; a handle
        per island either way."""
        from rayevolve.islands.host import HostedIsland, IslandHost
        from rayevolve.islands.island import IslandActor

        options = dict(
            num_cpus=0,
            scheduling_strategy=scheduling_strategy,
            max_restarts=self.config.islands.max_restarts,
        )
        per_actor = self.config.islands.per_actor
        if per_actor == 1:
            self.actors = [
                ray.remote(IslandActor)
                .options(name=actor_name(self.run_id, Role.ISLAND, s.island_id), **options)
                .remote(s)
                for s in self.settings
            ]
            return list(self.actors)
        islands = []
        for h, start in enumerate(range(0, len(self.settings), per_actor)):
            hosted = self.settings[start : start + per_actor]
            host = (
                ray.remote(IslandHost)
                .options(name=actor_name(self.run_id, Role.ISLAND_HOST, h), **options)
                .remote(hosted)
            )
            self.actors.append(host)
            islands += [HostedIsland(host, s.island_id) for s in hosted]
        return islands

    # --- start ----------------------------------------------------------------------
    def restore(self) -> None:
        """Each island rebuilds its state from the log (a new run's: the seed), then
        learns its peers."""
        try:
            ray.get([island.restore.remote() for island in self.islands])
        except ray.exceptions.RayTaskError as exc:
            raise IslandStartError(f"cannot start the islands: {remote_error(exc)}") from None
        ray.get([island.set_peers.remote(self.peers) for island in self.islands])

    def start(self) -> None:
        """Start every island's loop."""
        self.runs = [island.run.remote() for island in self.islands]

    # --- while it runs ----------------------------------------------------------------
    def poll(self) -> list[IslandStats | None]:
        """Ask each island for its statistics; the last known ones for an island that
        does not answer (dead or restarting)."""
        refs = [island.stats.remote() for island in self.islands]
        for i, ref in enumerate(refs):
            try:
                self.stats[i] = ray.get(ref, timeout=STATS_TIMEOUT_S)
                self._restarting.discard(i)  # it answers: back from any restart
            except Exception:  # dead or restarting: keep what we knew
                pass
        return self.stats

    def reported(self, fresh: dict[int, IslandStats]) -> None:
        """Statistics the islands sent with their rows (through the log actor)."""
        for i, stats in fresh.items():
            if stats != self.stats[i]:
                self._restarting.discard(i)  # it reports: back from any restart
                self.stats[i] = stats

    def known(self) -> list[IslandStats]:
        return [s for s in self.stats if s is not None]

    def supervise(self) -> None:
        """Notice islands whose loop ended; restart those that died, within limits."""
        pending = [i for i in range(len(self.islands)) if i not in self.finished]
        if not pending:
            return
        ready, _ = ray.wait([self.runs[i] for i in pending], num_returns=len(pending), timeout=0)
        limit = self.config.islands.max_restarts
        for i in [i for i in pending if self.runs[i] in ready]:
            try:
                ray.get(self.runs[i])
                self.finished.add(i)
                continue
            except ray.exceptions.ActorUnavailableError:
                # Ray is restarting it (its own budget counts that restart): ask again,
                # without spending one of ours; said once per outage
                if i not in self._restarting:
                    self._restarting.add(i)
                    log.warning("island %d is being restarted by Ray; it resumes from the log", i)
                    self._event(EventKind.ISLAND_RESTARTED, island=i, message="restarted by Ray")
                self._rerun(i)
                continue
            except ray.exceptions.RayActorError as exc:
                problem = f"island {i} died: {type(exc).__name__}"
            except ray.exceptions.RayTaskError as exc:
                problem = f"island {i} failed: {remote_error(exc)}"
                self._restarts[i] = limit  # a bug, not a crash: do not loop
            if self._restarts[i] < limit:
                self._restarts[i] += 1
                log.warning(
                    "%s; restarting it from the run log (%d/%d)", problem, self._restarts[i], limit
                )
                self._event(EventKind.ISLAND_RESTARTED, island=i, message=problem)
                self._rerun(i)
            else:
                log.error("%s; giving it up", problem)
                self._event(EventKind.ISLAND_LOST, island=i, message=problem)
                self.errors.append(problem)
                self.finished.add(i)

    def _rerun(self, i: int) -> None:
        self.islands[i].set_peers.remote(self.peers)
        self.runs[i] = self.islands[i].run.remote()

    # --- the end ----------------------------------------------------------------------
    def stop(self, *, drain: bool) -> None:
        """Stop every loop: drained (their in-flight children judged, within
        ``stop.drain_timeout_s``), or at once; then wait a little for them to return."""
        for island in self.islands:
            island.stop.remote(drain)
        _, pending = ray.wait(
            self.runs,
            num_returns=len(self.runs),
            timeout=self.config.stop.drain_timeout_s if drain else 5.0,
        )
        if pending:
            for island in self.islands:
                island.stop.remote(False)
            ray.wait(self.runs, num_returns=len(self.runs), timeout=5.0)

    def bests(self) -> list[Program]:
        """Each live island's best program (a lost island's are in the log all the same)."""
        found = []
        for island in self.islands:
            try:
                found.append(ray.get(island.best.remote(), timeout=BEST_TIMEOUT_S))
            except Exception:
                continue
        return [b for b in found if b is not None]

    def island_errors(self) -> list[str]:
        """Errors the islands reported, then those of islands given up."""
        return [s.error for s in self.known() if s.error] + self.errors
