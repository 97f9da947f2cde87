"""`IslandActor`: one sub-population and its steady-state loop.

`in_flight` worker coroutines each repeat: select a parent and inspirations, ask the
shared mutator for a child, skip it if its normalised code was seen before, have the
evaluator pool score it, insert it, log it. No worker waits for another, and no island
waits for another: migration is a fire-and-forget call to the destination islands.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import numpy as np

from rayevolve.config import FeatureConfig, IslandsConfig
from rayevolve.counts import Counts
from rayevolve.islands.migration import destinations, due, pick_migrants
from rayevolve.islands.population import Population
from rayevolve.log import event_row, mutation_failure_row, program_row
from rayevolve.log.schema import EventKind
from rayevolve.mutation.base import MutationRequest, MutationResult
from rayevolve.mutation.ensemble import improvement_reward
from rayevolve.program import Program, code_hash
from rayevolve.roles import Role, actor_name

log = logging.getLogger(__name__)
MAX_CONSECUTIVE_ERRORS = 5
# errors after which no island can make progress: the island stops, and so does the run
FATAL_ERRORS = ("NoEvaluatorError", "ModelUnavailableError")


def _actor(run_id: str, role: Role):
    import ray

    return ray.get_actor(actor_name(run_id, role))


@dataclass(frozen=True)
class IslandSettings:
    """Everything an island needs besides its actor handles.

    Attributes:
      island_id, island_count: its number and how many islands the run has.
      quota: evaluations this island performs before it finishes.
      seed: the run's seed; the island's generator is seeded with (seed, island_id).
      report_rewards: tell the mutator how each model's children scored (for an adaptive
        model ensemble).
      log_batch_s: send program rows to the log actor in batches at most this old
        (``log.island_batch_s``); 0 sends each at once.
    """

    island_id: int
    island_count: int
    islands: IslandsConfig
    features: tuple[FeatureConfig, ...]
    maximize: bool
    mutation_mode: str
    samples_per_request: int
    quota: int
    seed: int
    run_id: str
    stats_interval_s: float
    report_rewards: bool = False
    log_batch_s: float = 0.0


@dataclass(frozen=True)
class IslandStats:
    island: int
    quota: int
    counts: Counts = field(default_factory=Counts)
    best_score: float | None = None
    best_id: str | None = None
    population_size: int = 0
    cells_filled: int = 0
    done: bool = False
    error: str | None = None
    fatal: bool = False  # the error stops the whole run (no model, no evaluator)

    @property
    def evaluations(self) -> int:
        return self.counts.evaluations


class IslandActor:
    def __init__(self, settings: IslandSettings, mutator=None, pool=None, runlog=None):
        self.settings = settings
        self.island = settings.island_id
        # by name unless given: handles as constructor arguments would pin objects a
        # restart (islands.max_restarts) needs
        self.mutator = mutator or _actor(settings.run_id, Role.MUTATOR)
        self.pool = pool or _actor(settings.run_id, Role.POOL)
        self.runlog = runlog or _actor(settings.run_id, Role.RUNLOG)
        self.rng = np.random.default_rng([settings.seed, settings.island_id])
        cfg = settings.islands
        self.population = Population(
            island=self.island,
            capacity=cfg.capacity,
            archive_size=cfg.archive_size,
            features=settings.features,
            selection=cfg.selection,
            maximize=settings.maximize,
            rng=self.rng,
        )
        self.seen: set[str] = set()
        self.peers: dict[int, object] = {}
        self.counts = Counts()
        self.reserved = 0
        self.consecutive_misses = 0
        self.error: str | None = None
        self.fatal = False
        self.done = False
        self._stopping = False
        self._restored = False
        self._workers: list[asyncio.Task] = []
        self._background: set[asyncio.Task] = set()
        self._unsent: list[dict] = []  # program rows not yet with the log actor
        self._sender: asyncio.Task | None = None
        self._send_failures = 0

    # --- set-up ---------------------------------------------------------------------
    async def restore(self) -> int:
        """Take this island's state from the run log: the seed on a fresh run, everything
        it held and counted on a resumed run or after this actor was restarted."""
        if self._restored:
            return len(self.population)
        state = await self.runlog.island_state.remote(self.island)
        for program in state.programs:
            self.population.add(program)  # raises on a MAP-Elites feature the metrics lack
        self.seen = set(state.seen)
        self.counts = state.counts.copy()
        self.reserved = self.counts.evaluations
        # the random stream continues from a state the log determines
        self.rng = np.random.default_rng([self.settings.seed, self.island, self.reserved])
        self.population.rng = self.rng
        self._restored = True
        return len(self.population)

    def set_peers(self, peers: dict[int, object]) -> None:
        self.peers = {i: h for i, h in peers.items() if i != self.island}

    # --- the loop -------------------------------------------------------------------
    async def run(self) -> IslandStats:
        await self.restore()
        self._workers = [
            asyncio.ensure_future(self._worker()) for _ in range(self.settings.islands.in_flight)
        ]
        ticker = asyncio.ensure_future(self._stats_loop())
        try:
            await asyncio.gather(*self._workers, return_exceptions=True)
        finally:
            ticker.cancel()
            if self._background:
                await asyncio.gather(*self._background, return_exceptions=True)
            if self._sender is not None:  # never cancelled: its rows would be lost
                await asyncio.gather(self._sender, return_exceptions=True)
            await self._drain_rows()
            self.done = True
            await self._event(EventKind.ISLAND_STATS, **self._stats_fields())
        return self.stats()

    def stop(self, drain: bool = True) -> None:
        """Start no new child; with drain=False also abandon the ones in flight."""
        self._stopping = True
        if not drain:
            for worker in self._workers:
                worker.cancel()

    def _more_wanted(self) -> bool:
        return not self._stopping and self.error is None and self.reserved < self.settings.quota

    async def _worker(self) -> None:
        errors = 0
        while self._more_wanted():
            try:
                await self._one_request()
                errors = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # an actor call failed: back off; give up if it persists
                if type(getattr(exc, "cause", None)).__name__ in FATAL_ERRORS:
                    self.error = f"island {self.island}: {exc.cause}"  # no progress is possible
                    self.fatal = True
                    await self._event(EventKind.ISLAND_ERROR, message=self.error)
                    return
                errors += 1
                message = f"island {self.island}: {type(exc).__name__}: {exc}"
                log.warning(message)
                await self._event(EventKind.ISLAND_ERROR, message=message)
                if errors >= MAX_CONSECUTIVE_ERRORS:
                    self.error = message
                    return
                await asyncio.sleep(min(2.0**errors, 30.0))
            if self.consecutive_misses >= self.settings.islands.max_consecutive_failures:
                self.error = (
                    f"island {self.island}: {self.consecutive_misses} mutations in a row gave no new "
                    "candidate (failed edits or duplicates); raise islands.max_consecutive_failures "
                    "or give the mutator more to work with"
                )
                return

    async def _one_request(self) -> None:
        parent = self.population.select_parent()
        inspirations = tuple(self.population.inspirations(parent))
        request = MutationRequest(
            parent=parent,
            inspirations=inspirations,
            island=self.island,
            mode=self.settings.mutation_mode,
            seed=int(self.rng.integers(2**62)),
            num_samples=self.settings.samples_per_request,
        )
        started = time.perf_counter()
        results: list[MutationResult] = await self.mutator.mutate.remote(request)
        mutation_s = time.perf_counter() - started
        inspiration_ids = [p.id for p in inspirations]
        children = []
        for result in results:
            if not result.ok:
                self.counts.mutation_failures += 1
                self.consecutive_misses += 1
                await self._log_rows(
                    mutation_failure_row(
                        self.settings.run_id,
                        parent,
                        self.island,
                        result,
                        mutation_s,
                        inspiration_ids,
                    )
                )
                continue
            digest = code_hash(result.child_code)
            if digest in self.seen:
                self.counts.duplicates += 1
                self.consecutive_misses += 1
                self._reward(result, 0.0)
                continue
            if not self._more_wanted():
                break
            self.seen.add(digest)
            self.reserved += 1
            self.consecutive_misses = 0
            child = Program.create(
                result.child_code, language=parent.language, parent=parent, island=self.island
            )
            children.append((child, result))
        if children:
            await asyncio.gather(
                *(self._evaluate(parent, c, r, mutation_s, inspiration_ids) for c, r in children)
            )

    def _reward(self, mutation: MutationResult, value: float) -> None:
        if self.settings.report_rewards:
            self.mutator.reward.remote(mutation.model, value)  # fire and forget

    async def _evaluate(
        self,
        parent: Program,
        child: Program,
        mutation: MutationResult,
        mutation_s: float,
        inspiration_ids: list[str],
    ) -> None:
        started = time.perf_counter()
        result = await self.pool.evaluate.remote(child.code)
        eval_call_s = time.perf_counter() - started
        child = child.with_result(result)
        self.counts.judged(result.status)
        await self._log_rows(
            program_row(
                self.settings.run_id,
                child,
                mutation=mutation,
                inspiration_ids=inspiration_ids,
                mutation_s=mutation_s,
                eval_call_s=eval_call_s,
            )
        )
        self._reward(
            mutation, improvement_reward(parent.score, child.score, self.settings.maximize)
        )
        self.population.add(child)  # after logging: a bad feature setting loses nothing
        if due(self.counts.evaluations, self.settings.islands.migration):
            task = asyncio.ensure_future(self._migrate())
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    # --- the run log ----------------------------------------------------------------
    async def _log_rows(self, row: dict) -> None:
        """Hand a program row to the log actor: at once, or batched over log_batch_s (one
        actor call per batch: a call costs more than the row)."""
        self._unsent.append(row)
        if self.settings.log_batch_s <= 0:
            await self._send_rows(raise_errors=True)
        elif self._sender is None or self._sender.done():
            self._sender = asyncio.ensure_future(self._send_later())

    async def _send_later(self) -> None:
        await asyncio.sleep(self.settings.log_batch_s)
        await self._send_rows()

    async def _send_rows(self, raise_errors: bool = False) -> None:
        """Send the unsent rows; on failure keep them for the next send. Failures that
        persist stop the island, as any other actor call's would."""
        rows, self._unsent = self._unsent, []
        if not rows:
            return
        try:
            await self.runlog.append_programs.remote(rows, self.stats())
            self._send_failures = 0
        except Exception as exc:
            self._unsent = rows + self._unsent
            self._send_failures += 1
            message = f"island {self.island}: cannot send {len(rows)} rows to the run log: {exc!r}"
            log.warning(message)
            if raise_errors:
                raise
            if self._send_failures >= MAX_CONSECUTIVE_ERRORS:
                self.error = message
            elif not self._stopping:
                self._sender = asyncio.ensure_future(self._send_later())

    async def _drain_rows(self) -> None:
        """At the end of the loop: send what is left, retrying a failing log actor."""
        for attempt in range(MAX_CONSECUTIVE_ERRORS):
            if not self._unsent:
                return
            try:
                await self._send_rows(raise_errors=True)
            except Exception:
                await asyncio.sleep(min(2.0**attempt, 10.0))
        if self._unsent:
            self.error = f"island {self.island}: {len(self._unsent)} rows could not be logged"
            log.error(self.error)

    # --- migration ------------------------------------------------------------------
    async def _migrate(self) -> None:
        config = self.settings.islands.migration
        migrants = pick_migrants(self.population, config.rate)
        targets = destinations(
            config.topology,
            self.island,
            self.settings.island_count,
            self.rng,
            config.random_destinations,
        )
        if not migrants or not targets:
            return
        replies = await asyncio.gather(
            *(
                self.peers[t].receive_migrants.remote(migrants, self.island)
                for t in targets
                if t in self.peers
            ),
            return_exceptions=True,
        )
        for reply in replies:
            if isinstance(reply, BaseException):
                log.warning("island %d: migration failed: %r", self.island, reply)
            else:
                self.counts.migrants_out += len(reply)

    async def receive_migrants(self, programs: list[Program], source: int) -> list[str]:
        """Insert migrants whose code this island does not hold; log the migration."""
        accepted = []
        for program in programs:
            if self.population.has_code(program.code_hash) or program.id in self.population:
                continue
            if self.population.add(program).added:
                self.seen.add(program.code_hash)
                accepted.append(program.id)
        self.counts.migrants_in += len(accepted)
        await self._event(
            EventKind.MIGRATION,
            src_island=source,
            dst_island=self.island,
            program_ids=[p.id for p in programs],
            accepted_ids=accepted,
        )
        return accepted

    # --- reporting ------------------------------------------------------------------
    async def _stats_loop(self) -> None:
        """An ``island_stats`` event every ``log.stats_interval_s`` in which something
        changed: an island that waits logs nothing."""
        last = None
        while True:
            await asyncio.sleep(self.settings.stats_interval_s)
            fields = self._stats_fields()
            if fields != last:
                last = fields
                await self._event(EventKind.ISLAND_STATS, **fields)

    def _stats_fields(self) -> dict:
        stats = self.population.stats()
        return dict(
            evaluations=self.counts.evaluations,
            best_score=stats.best_score,
            population_size=stats.size,
            cells_filled=stats.cells_filled,
            payload={
                **self.counts.to_payload(),
                "mean_score": stats.mean_score,
                "error": self.error,
            },
        )

    async def _event(self, kind: str, **fields) -> None:
        """Append one event of this island to the run log."""
        row = event_row(self.settings.run_id, kind, island=self.island, **fields)
        try:
            await self.runlog.append_events.remote([row], self.stats())
        except Exception as exc:  # logging must never take the island down
            log.warning("island %d: could not log events: %r", self.island, exc)

    def placement(self) -> dict:
        """Where this actor runs (`rayevolve.placement.Placement`), logged at start."""
        from rayevolve.placement import here

        return here().to_payload()

    def stats(self) -> IslandStats:
        pop = self.population.stats()
        return IslandStats(
            island=self.island,
            quota=self.settings.quota,
            counts=self.counts.copy(),
            best_score=pop.best_score,
            best_id=pop.best_id,
            population_size=pop.size,
            cells_filled=pop.cells_filled,
            done=self.done,
            error=self.error,
            fatal=self.fatal,
        )

    def best(self) -> Program | None:
        return self.population.best()
