"""The driver: builds a run's actors, seeds the islands, watches the stop rules, and
leaves the best program, the log and a summary in the run directory.

Sequence: load and check the task -> start or attach Ray -> refuse at once if some
actor could never be placed -> run log, mutator, evaluator pool -> evaluate the initial
program (a failing one stops the run with its error) -> islands seeded and started ->
poll their statistics for the progress bar and the stop rules -> stop, drain, flush ->
best program and summary.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow.compute as pc
import ray
from omegaconf import OmegaConf

from rayevolve.cluster import (
    ActorRequest,
    capacity,
    check_feasible,
    connect,
    gpu_sharing,
    ray_options,
    remote_error,
)
from rayevolve.config import RunConfig
from rayevolve.counts import Counts
from rayevolve.evaluation.result import Isolation
from rayevolve.evaluation.scratch import sweep as sweep_scratch
from rayevolve.features import unreported_features
from rayevolve.island import IslandSettings, IslandStats
from rayevolve.jobs import JobRunDirError, check_run_dir, in_ray_job
from rayevolve.log import event_row, program_row
from rayevolve.log.schema import EventKind
from rayevolve.mutation.offline import OfflineBackend
from rayevolve.outcome import Outcome
from rayevolve.program import Program
from rayevolve.roles import Role, actor_name
from rayevolve.secrets import scrub as scrub_secrets
from rayevolve.stopping import Ending, Progress, Stop, decide, fitness
from rayevolve.tasks import TaskSpec, changes, fingerprint, load_task

log = logging.getLogger(__name__)
POLL_S = 0.5
ACTOR_RESTARTS = 3  # mutator and evaluator pool; islands: islands.max_restarts
STATUS_EVERY_S = 10.0
PLACEMENT_WAIT_S = 10.0  # how long the start waits for an actor to say where it runs
TASK_RECORD = "task.json"  # the task folder's file hashes, checked on resume
IN_PROCESS_NOTE = (
    "; the evaluator runs candidates in its own process (in_process): scores can be forged"
)


# settings whose change on resume would mix rows of different meaning in one log
MEANING = (
    "task.name",
    "task.path",
    "task.initial_program",
    "task.evaluator",
    "task.language",
    "task.direction",
    "task.cascade",
    "task.cascade_thresholds",
    "task.features",
    "task.timeout_s",
    "task.memory_limit_mb",
    "task.env",
    "islands.count",
    "seed",
)


class RunError(RuntimeError):
    """The run cannot start or go on; the message says what to do."""


@dataclass(frozen=True)
class RunSummary:
    run_dir: str
    run_id: str
    task: str
    counts: Counts  # the islands' counters summed (judged children by the log's count)
    wall_s: float
    evaluations_before: int  # done by earlier sessions of a resumed run
    initial_score: float
    best_score: float | None
    best_program_id: str | None
    best_program_path: str | None
    stopped_because: str
    stop: Stop = Stop.BUDGET
    island_errors: list[str] = field(default_factory=list)
    log_rows: dict[str, int] = field(default_factory=dict)
    log_error: str | None = None
    isolation: str = ""

    @property
    def evaluations(self) -> int:
        return self.counts.evaluations

    @property
    def statuses(self) -> dict[str, int]:
        return dict(self.counts.statuses)

    @property
    def mutation_failures(self) -> int:
        return self.counts.mutation_failures

    @property
    def migrations_accepted(self) -> int:
        return self.counts.migrants_in

    def to_json(self) -> dict:
        """``summary.json``: the fields, with the counters flat beside them."""
        fields = asdict(self)
        del fields["counts"]
        return {"evaluations": self.evaluations, **self.counts.to_payload(), **fields}

    def render(self) -> str:
        session = self.evaluations - self.evaluations_before
        rate = session / self.wall_s if self.wall_s > 0 else 0.0
        failures = self.counts.failures
        breakdown = ", ".join(
            f"{s} {n}" for s, n in sorted(self.statuses.items(), key=lambda kv: -kv[1])
        )
        best = "none" if self.best_score is None else f"{self.best_score:.6g}"
        gain = ""
        if self.best_score is not None:
            gain = f" ({self.best_score - self.initial_score:+.6g} over the initial {self.initial_score:.6g})"
        lines = [
            f"rayevolve run {self.run_id} ({self.task}) finished: {self.stopped_because}",
            f"  evaluations   {self.evaluations}"
            + (f" ({session} in this session)" if self.evaluations_before else "")
            + f" in {self.wall_s:.1f} s ({rate:.2f}/s), {failures} failed",
            f"  statuses      {breakdown or 'none'}",
            f"  mutations     {self.counts.mutation_failures} failed edits, "
            f"{self.counts.duplicates} duplicates skipped",
            f"  migrations    {self.counts.migrants_in} programs accepted",
            f"  best score    {best}{gain}",
            f"  best program  {self.best_program_path or '-'}",
            f"  isolation     {self.isolation or '-'}",
            f"  run log       {self.run_dir}/programs, {self.run_dir}/events "
            f"({self.log_rows.get('programs', 0)} + {self.log_rows.get('events', 0)} rows)",
        ]
        lines += [f"  island error  {e}" for e in self.island_errors]
        if self.log_error:
            lines.append(f"  LOG ERROR     {self.log_error}")
        if not self.stop.completed:
            lines.append(f"  to continue   python -m rayevolve resume={self.run_dir}")
        return "\n".join(lines)


def package_versions() -> dict[str, str]:
    import importlib.metadata as md

    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for name in ("rayevolve", "ray", "mlx", "numpy", "pyarrow", "hydra-core", "omegaconf", "vllm"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _write_best(run_dir: Path, task: TaskSpec, best: Program) -> Path:
    target = run_dir / "best"
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"program{task.suffix}"
    path.write_text(best.code)
    result = best.result
    (target / "metrics.json").write_text(
        json.dumps(
            {
                "program_id": best.id,
                "island": best.island,
                "generation": best.generation,
                "parent_id": best.parent_id,
                "score": best.score,
                "metrics": result.metrics if result else {},
                "artifacts": result.artifacts if result else {},
            },
            indent=2,
        )
    )
    return path


class Controller:
    """One run. `run()` returns its summary; expected failures raise `RunError`."""

    def __init__(self, config: RunConfig, run_dir: Path, search_roots: list[Path]):
        self.config = config
        self.run_dir = Path(run_dir)
        self.search_roots = search_roots
        self.run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        self._actors: list = []
        self._runlog = None
        self._peers: dict = {}
        self._island_errors: list[str] = []
        self._pool = None
        self._keys: dict[str, str] = {}
        self._isolation = ""
        self._recovered: list[str] = []
        self._restarting: set[int] = set()  # islands Ray is restarting (said once each)

    # --- set-up ---------------------------------------------------------------------
    def _adopt_run_id(self) -> None:
        """On resume, keep the run's id: every row of the run shares it."""
        marker = self.run_dir / "run_id"
        if not marker.is_file():
            raise RunError(f"resume={self.run_dir}: not a rayevolve run directory (no run_id)")
        self.run_id = marker.read_text().strip()

    def _write_metadata(self, resuming: bool = False) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        config = OmegaConf.to_yaml(OmegaConf.structured(self.config))
        # one pair of files per resume, named by the session (two in one second differ)
        stamp = f"resumed-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        name = f"config.{stamp}.yaml" if resuming else "config.yaml"
        (self.run_dir / name).write_text(config)
        (self.run_dir / (f"versions.{stamp}.json" if resuming else "versions.json")).write_text(
            json.dumps(package_versions(), indent=2)
        )
        if not resuming:
            (self.run_dir / "run_id").write_text(self.run_id + "\n")

    def _requests(self, task: TaskSpec) -> list[ActorRequest]:
        return [
            ActorRequest(
                f"each evaluator of task {task.name!r} (task.resources, task.label_selector)",
                task.resources,
                task.label_selector,
            ),
            ActorRequest(
                f"the {self.config.mutation.backend} mutator (mutation.resources, "
                "mutation.vllm.num_gpus)",
                self.config.mutation.actor_resources(),
                dict(self.config.mutation.label_selector),
            ),
        ]

    @staticmethod
    def _near_driver():
        """Control-plane actors (islands, pool, log, a mutator that needs no accelerator)
        live on the driver's node, never elsewhere: losing a worker node (a Mac running
        benchmarks) must not take them with it, nor may they take its scarce resources."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        return NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)

    def _start_actors(self, task: TaskSpec):
        from rayevolve.evaluation.pool import EvaluatorPool
        from rayevolve.log.actor import RunLogActor
        from rayevolve.mutation.actor import MutatorActor

        cfg = self.config
        runlog = (
            ray.remote(RunLogActor)
            .options(
                name=actor_name(self.run_id, Role.RUNLOG),
                num_cpus=0,
                scheduling_strategy=self._near_driver(),
            )
            .remote(
                str(self.run_dir),
                cfg.log.flush_rows,
                cfg.log.flush_interval_s,
                cfg.log.write_ahead,
            )
        )
        try:
            self._recovered = ray.get(runlog.open.remote(cfg.log.writer_wait_s))
        except ray.exceptions.RayTaskError as exc:
            ray.kill(runlog)
            raise RunError(remote_error(exc)) from None
        restartable = {
            "max_restarts": ACTOR_RESTARTS,
            "max_task_retries": -1,
        }  # in-flight calls re-sent
        wants = cfg.mutation.actor_resources()
        placed_by_need = cfg.mutation.label_selector or any(
            v for k, v in wants.items() if k != "CPU"
        )
        mutator = (
            ray.remote(MutatorActor)
            .options(
                name=actor_name(self.run_id, Role.MUTATOR),
                max_concurrency=cfg.mutation.max_concurrency,
                **restartable,
                **ray_options(wants),
                **(
                    {"label_selector": dict(cfg.mutation.label_selector)}
                    if cfg.mutation.label_selector
                    else {}
                ),
                **({} if placed_by_need else {"scheduling_strategy": self._near_driver()}),
            )
            .remote(cfg.mutation, self.run_id, self._prompt_context(task), cfg.seed, self._keys)
        )
        pool = (
            ray.remote(EvaluatorPool)
            .options(
                name=actor_name(self.run_id, Role.POOL),
                num_cpus=0,
                max_concurrency=100_000,
                scheduling_strategy=self._near_driver(),
                **restartable,
            )
            .remote(
                task,
                cfg.evaluation,
                {
                    **ray_options(task.resources),
                    **({"label_selector": task.label_selector} if task.label_selector else {}),
                },
                self.run_id,
                (str(self.run_dir.resolve()),),
            )
        )
        self._actors += [runlog, mutator, pool]
        self._runlog = runlog
        try:
            ray.get(mutator.start.remote())
        except ray.exceptions.RayTaskError as exc:
            raise RunError(f"the mutator cannot start: {remote_error(exc)}") from None
        try:
            placements = ray.get(pool.start.remote())
        except ray.exceptions.RayTaskError as exc:
            raise RunError(f"the evaluators cannot start: {remote_error(exc)}") from None
        return runlog, mutator, pool, placements

    def _secrets(self) -> dict[str, str]:
        """API keys from the driver's environment, for the mutator actor (in memory only:
        a key is never part of the config, the run directory or the log)."""
        if self.config.mutation.backend != "openai":
            return {}
        return {n: os.environ[n] for n in self.config.mutation.api_key_envs() if os.environ.get(n)}

    def _prompt_context(self, task: TaskSpec):
        """Templates and task text for a model backend, gathered and test-rendered here
        so a broken template stops the run before any actor starts."""
        from rayevolve.mutation.prompts import (
            PromptBuilder,
            PromptContext,
            PromptError,
            gather_templates,
        )

        cfg = self.config.mutation
        if cfg.backend == "offline":
            return None
        try:
            template_dir = None
            if cfg.prompts.template_dir:
                wanted = Path(cfg.prompts.template_dir).expanduser()
                found = [r / wanted for r in self.search_roots if (r / wanted).is_dir()]
                if not found:
                    raise PromptError(f"template_dir {wanted} is not a folder")
                template_dir = found[0]
            context = PromptContext(
                task_name=task.name,
                description=task.description,
                language=task.language,
                maximize=task.maximize,
                templates=gather_templates(task.files, template_dir),
                settings=cfg.prompts,
            )
            initial = Program.create(
                task.initial_code, language=task.language, parent=None, island=-1
            )
            PromptBuilder(context).build(initial, [], cfg.mode)
        except PromptError as exc:
            raise RunError(f"mutation.prompts: {exc}") from None
        return context

    def _check_startable(self, task: TaskSpec) -> None:
        """Refuse, before anything starts, a run whose mutator could never change the
        initial program."""
        if self.config.mutation.backend == "offline":
            reason = OfflineBackend.cannot_change(task.initial_code, task.language)
            if reason:
                raise RunError(f"task {task.name}: {reason}")

    def _evaluate_initial(self, task: TaskSpec, pool, runlog) -> Program:
        initial = Program.create(task.initial_code, language=task.language, parent=None, island=-1)
        started = time.perf_counter()
        result = ray.get(pool.evaluate.remote(initial.code))
        initial = initial.with_result(result)
        ray.get(
            runlog.append_programs.remote(
                [program_row(self.run_id, initial, eval_call_s=time.perf_counter() - started)]
            )
        )
        if result.status != Outcome.OK:
            details = "\n".join(f"--- {k} ---\n{v[-2000:]}" for k, v in result.artifacts.items())
            raise RunError(
                f"the initial program {task.root}/{task.initial_program} failed its own evaluation "
                f"({result.status}); fix the task before evolving it:\n{details}"
            )
        unplaceable = unreported_features(task.features, result, task.cascade_thresholds)
        if unplaceable:
            raise RunError(f"task {task.name}: {unplaceable}")
        return initial

    def _initial_from_log(self, runlog) -> Program | None:
        from rayevolve.resume import ResumeError

        try:
            return ray.get(runlog.initial_program.remote())
        except ray.exceptions.RayTaskError as exc:
            raise RunError(f"cannot resume {self.run_dir}: {remote_error(exc)}") from (
                None if isinstance(exc.cause, ResumeError) else exc
            )

    def _start_islands(self, task: TaskSpec):
        """Islands find the mutator, pool and log by name (see IslandActor); each is an
        actor, or `islands.per_actor` of them share one (`IslandHost`)."""
        cfg = self.config
        count = cfg.islands.count
        base, extra = divmod(cfg.stop.max_evaluations, count)
        settings = [
            IslandSettings(
                island_id=i,
                island_count=count,
                islands=cfg.islands,
                features=task.features,
                maximize=task.maximize,
                mutation_mode=cfg.mutation.mode,
                samples_per_request=cfg.mutation.samples_per_request,
                quota=base + (1 if i < extra else 0),
                seed=cfg.seed,
                run_id=self.run_id,
                stats_interval_s=cfg.log.stats_interval_s,
                log_batch_s=cfg.log.island_batch_s,
                report_rewards=cfg.mutation.backend != "offline" and cfg.mutation.bandit.enabled,
            )
            for i in range(count)
        ]
        islands = self._island_actors(settings)
        try:
            ray.get([island.restore.remote() for island in islands])
        except ray.exceptions.RayTaskError as exc:
            raise RunError(f"cannot start the islands: {remote_error(exc)}") from None
        peers = dict(enumerate(islands))
        ray.get([island.set_peers.remote(peers) for island in islands])
        self._peers = peers
        return islands

    def _island_actors(self, settings: list[IslandSettings]) -> list:
        """One actor per island, or hosts of `islands.per_actor` islands each; returns a
        handle per island either way."""
        from rayevolve.island import IslandActor
        from rayevolve.island_host import HostedIsland, IslandHost

        options = dict(
            num_cpus=0,
            scheduling_strategy=self._near_driver(),
            max_restarts=self.config.islands.max_restarts,
        )
        per_actor = self.config.islands.per_actor
        if per_actor == 1:
            islands = [
                ray.remote(IslandActor)
                .options(name=actor_name(self.run_id, Role.ISLAND, s.island_id), **options)
                .remote(s)
                for s in settings
            ]
            self._actors += islands
            return islands
        islands = []
        for h, start in enumerate(range(0, len(settings), per_actor)):
            group = settings[start : start + per_actor]
            host = (
                ray.remote(IslandHost)
                .options(name=actor_name(self.run_id, Role.ISLAND_HOST, h), **options)
                .remote(group)
            )
            self._actors.append(host)
            islands += [HostedIsland(host, s.island_id) for s in group]
        return islands

    # --- the run --------------------------------------------------------------------
    def run(self) -> RunSummary:
        from rayevolve.cluster import InfeasibleError

        try:
            self.run_dir = check_run_dir(self.run_dir)
        except JobRunDirError as exc:
            raise RunError(str(exc)) from None
        task = load_task(self.config.task, self.search_roots)
        self._check_startable(task)
        self._check_writable()
        sharing = gpu_sharing(task.resources, self.config.mutation.actor_resources())
        if sharing:
            raise RunError(sharing)
        resuming = self.config.resume is not None
        changed: list[str] = []
        if resuming:
            self._adopt_run_id()
            changed = self._check_settings() + self._check_task(task)
        if not resuming:  # a resume writes nothing before it holds the run directory
            self._write_metadata()
            (self.run_dir / TASK_RECORD).write_text(json.dumps(fingerprint(task), indent=2))
        self._keys = self._secrets()  # read before the environment is scrubbed
        started_ray = not ray.is_initialized()
        if started_ray and self.config.cluster.address is None and not in_ray_job():
            removed = scrub_secrets()  # Ray's processes start from this environment
            if removed:
                log.info("removed %d secret-looking variables before starting Ray", len(removed))
        connect(self.config.cluster)
        ui = placements_logged = None
        try:
            ui = self._serve_ui()
            try:
                check_feasible(self._requests(task), ray.nodes())
            except InfeasibleError as exc:
                raise RunError(str(exc)) from None
            unplaced = self._unplaceable_evaluators(task)
            runlog, mutator, pool, placements = self._start_actors(task)
            if resuming:
                self._write_metadata(resuming=True)
            self._pool = pool
            self._isolation = self._announce(task, placements)
            kind = EventKind.RUN_RESUMED if resuming else EventKind.RUN_START
            payload = {
                "placements": placements,
                "versions": package_versions(),
                "task": {k: v for k, v in fingerprint(task).items() if k != "files"},
            }
            ray.get(self._event(kind, payload=payload))
            if unplaced:
                ray.get(self._event(EventKind.EVALUATORS_UNPLACED, message=unplaced))
            if self._recovered:
                ray.get(
                    self._event(
                        EventKind.LOG_RECOVERED,
                        message="from the write-ahead log: " + "; ".join(self._recovered),
                    )
                )
            if changed:
                ray.get(
                    self._event(
                        EventKind.TASK_CHANGED,
                        message="resumed with force_resume=true although the task "
                        "changed: " + "; ".join(changed),
                    )
                )
            initial = self._initial_from_log(runlog) if resuming else None
            if initial is None:  # a new run, or one killed before the initial program was logged
                initial = self._evaluate_initial(task, pool, runlog)
            if initial.result is not None and initial.result.isolation == Isolation.IN_PROCESS:
                self._isolation += IN_PROCESS_NOTE
                log.warning(
                    "task %s: its evaluator runs each candidate in its own judging process, so "
                    "a candidate can forge its verdict; rows are marked isolation=in_process. "
                    "Run candidate code through rayevolve.evaluation.isolation.call_isolated "
                    "to judge from a process the candidate never touched.",
                    task.name,
                )
            islands = self._start_islands(task)
            shared = {Role.RUNLOG: runlog, Role.MUTATOR: mutator, Role.POOL: pool}
            placements_logged = threading.Thread(  # off the start-up path: Ctrl-C stays prompt
                target=self._log_placements, args=(shared, islands), daemon=True
            )
            placements_logged.start()
            return self._evolve(task, initial, islands, runlog)
        finally:
            if placements_logged is not None:
                placements_logged.join(timeout=PLACEMENT_WAIT_S)
            self._close_pool()
            self._flush_log()
            for actor in self._actors:
                try:
                    ray.kill(actor)
                except Exception:  # already gone
                    pass
            if started_ray:
                ray.shutdown()
            if ui is not None:
                ui.close()
            sweep_scratch()  # folders of this node's actors that were killed, not closed

    def _serve_ui(self):
        """The live web view of this run (``ui.port``), served from a thread of the driver
        until the run ends; None when not asked for."""
        ui = self.config.ui
        if ui.port is None:
            return None
        try:
            from rayevolve.ui.server import UiServer
        except ImportError as exc:
            raise RunError(
                f"ui.port={ui.port} needs the web view's packages ({exc.name} is missing): "
                "pip install 'rayevolve[ui]'"
            ) from None
        try:
            server = UiServer(self.run_dir, ui.host, ui.port, ui.refresh_s).start()
        except OSError as exc:
            raise RunError(
                f"ui.port={ui.port}: {exc}; choose another port (0: any free one)"
            ) from None
        print(f"rayevolve: live view of this run at {server.url}", file=sys.stderr, flush=True)
        return server

    def _log_placements(self, shared: dict, islands: list) -> None:
        """One ``placement`` event per actor: where the log, the mutator, the pool and each
        island run (evaluators log their own as they start). One that does not answer
        within a few seconds is said in its event rather than waited for. Runs in a thread
        of the driver while the islands evolve; a run that ends first waits for it."""
        try:
            self._write_placements(shared, islands)
        except Exception as exc:  # the run goes on without them, and says so
            log.warning("could not log where the actors run: %s", exc)

    def _write_placements(self, shared: dict, islands: list) -> None:
        actors = [(role, str(role), handle) for role, handle in shared.items()]
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
            rows.append(
                event_row(self.run_id, EventKind.PLACEMENT, message=message, payload=payload)
            )
        ray.get(self._runlog.append_events.remote(rows))

    def _unplaceable_evaluators(self, task: TaskSpec) -> str | None:
        """Say at start when the cluster holds fewer evaluators than asked (the others
        wait, and start when a node that fits them joins)."""
        fit = capacity(self._requests(task)[0], ray.nodes())
        asked = self.config.evaluation.num_evaluators
        if fit is None or fit >= asked:
            return None
        message = (
            f"evaluation.num_evaluators={asked}, but the live nodes hold {fit} evaluator(s) of "
            f"{dict(task.resources)}: {asked - fit} wait for a node that fits them"
        )
        log.warning("%s", message)
        return message

    def _check_writable(self) -> None:
        """A run directory that cannot be written stops the run before anything starts."""
        probe = self.run_dir / f".write-probe-{uuid.uuid4().hex[:8]}"
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise RunError(
                f"cannot write the run directory {self.run_dir}: {exc.strerror or exc}; "
                "choose a writable one with run_dir=PATH"
            ) from None

    def _check_settings(self) -> list[str]:
        """On resume: the settings that give the logged rows their meaning (`MEANING`)
        must be the run's, unless ``force_resume`` says otherwise; returns the changes
        accepted."""
        saved_path = self.run_dir / "config.yaml"
        if not saved_path.is_file():
            return []
        saved = OmegaConf.load(saved_path)
        now = OmegaConf.structured(self.config)
        changed = []
        for key in MEANING:
            before, after = OmegaConf.select(saved, key), OmegaConf.select(now, key)
            before = OmegaConf.to_container(before) if OmegaConf.is_config(before) else before
            after = OmegaConf.to_container(after) if OmegaConf.is_config(after) else after
            if before != after:
                changed.append(f"{key} was {before!r}, now {after!r}")
        if changed and not self.config.force_resume:
            raise RunError(
                f"resume={self.run_dir}: {changed[0]}{' (and more)' if len(changed) > 1 else ''}; "
                "a resumed run keeps what its rows mean: drop the override, or add "
                "force_resume=true to continue anyway (recorded as a task_changed event)"
            )
        return changed

    def _check_task(self, task: TaskSpec) -> list[str]:
        """On resume: the task folder must be the one the run started with (its content
        hash), unless ``force_resume`` says otherwise; returns the changes accepted."""
        record = self.run_dir / TASK_RECORD
        if not record.is_file():
            return []  # a run from before task records: nothing to compare with
        recorded = json.loads(record.read_text())
        changed = changes(recorded, fingerprint(task))
        if changed and not self.config.force_resume:
            raise RunError(
                f"resume={self.run_dir}: the task folder {task.root} is not the one this run "
                f"started with ({'; '.join(changed[:5])}); restore it, or add "
                "force_resume=true to continue with it anyway (recorded as a task_changed event)"
            )
        return changed

    def _announce(self, task: TaskSpec, placements: list[dict]) -> str:
        """Say once, at start, how candidates are isolated; returns it for the summary."""
        details = sorted({p.get("isolation_detail", "") for p in placements} - {""})
        text = ", ".join(details) or "unknown"
        stop = self.config.stop
        budget = f"stops after {stop.max_evaluations} evaluations" + (
            f" or {stop.max_wall_s:g} s (stop.max_wall_s)" if stop.max_wall_s is not None else ""
        )
        line = (
            f"rayevolve run {self.run_id} ({task.name}): {len(placements)} evaluator(s) ready; "
            f"isolation {text}; {budget}; run directory {self.run_dir}"
        )
        if any(p.get("isolation") == Isolation.NONE for p in placements):
            log.warning("%s", line)
        else:
            log.info("%s", line)
        return text

    def _close_pool(self) -> None:
        if self._pool is None:
            return
        try:
            ray.get(self._pool.close.remote(), timeout=10)
        except Exception as exc:  # its evaluators' folders are swept at the next start
            log.debug("could not close the evaluators: %s", exc)
        self._pool = None

    def _event(self, kind: str, **fields):
        """Append one event of the run to the log; returns the call's ObjectRef."""
        return self._runlog.append_events.remote([event_row(self.run_id, kind, **fields)])

    def _flush_log(self) -> None:
        """Whatever happened, write every buffered row before the actors go."""
        if self._runlog is None:
            return
        try:
            ray.get(self._runlog.close.remote(), timeout=60)
        except Exception as exc:  # reported, not raised: the run's own error matters more
            log.error("could not flush the run log: %s", exc)

    def _evolve(self, task: TaskSpec, initial: Program, islands: list, runlog) -> RunSummary:
        from tqdm import tqdm

        cfg = self.config
        runs = [island.run.remote() for island in islands]
        started = time.monotonic()
        ending = Ending("max_evaluations reached", Stop.BUDGET, drain=False)
        interactive = cfg.progress and sys.stderr.isatty()
        bar = tqdm(
            total=cfg.stop.max_evaluations,
            unit="eval",
            disable=not interactive,
            file=sys.stderr,
            dynamic_ncols=True,
        )
        last_line = time.monotonic()
        stats: list[IslandStats | None] = [None] * len(islands)
        finished: set[int] = set()
        restarts: Counter[int] = Counter()
        stats = self._poll(islands, stats)
        done_before = sum(s.evaluations for s in stats if s)  # a resumed run's earlier work
        bar.n = done_before
        try:
            while True:
                self._supervise(islands, runs, finished, restarts)
                # the islands' statistics arrive with their rows: one call, however many
                log_error, failing_for, reported = ray.get(runlog.progress.remote())
                for i, fresh in reported.items():
                    if fresh != stats[i]:
                        self._restarting.discard(i)  # it reports: back from any restart
                        stats[i] = fresh
                done = sum(s.evaluations for s in stats if s)
                failures = sum(s.counts.failures for s in stats if s)
                elapsed = time.monotonic() - started
                rate = (done - done_before) / max(elapsed, 1e-9)
                best = max(
                    (s.best_score for s in stats if s and s.best_score is not None),
                    key=lambda v: fitness(v, task.maximize),
                    default=None,
                )
                bar.n = done
                bar.set_postfix(
                    best=f"{best:.5g}" if best is not None else "-",
                    rate=f"{rate:.1f}/s",
                    fail=failures,
                    refresh=False,
                )
                bar.refresh()
                if (
                    cfg.progress
                    and not interactive
                    and time.monotonic() - last_line >= STATUS_EVERY_S
                ):
                    last_line = time.monotonic()  # logs and pipes get a line, not a redrawn bar
                    log.info(
                        "%d/%d evaluations, best %s, %.1f/s, %d failed",
                        done,
                        cfg.stop.max_evaluations,
                        "-" if best is None else f"{best:.6g}",
                        rate,
                        failures,
                    )
                progress = Progress(
                    evaluations=done,
                    best=best,
                    elapsed_s=elapsed,
                    islands_done=len(finished),
                    islands=len(islands),
                    log_error=log_error,
                    log_failing_s=failing_for,
                    fatal=next((s.error for s in stats if s and s.fatal), None),
                )
                due = decide(progress, cfg.stop, cfg.log, task.maximize)
                if due is not None:
                    ending = due
                    if progress.islands_done < progress.islands:
                        self._stop(islands, runs, drain=ending.drain)
                    break
                time.sleep(POLL_S)
        except KeyboardInterrupt:
            ending = Ending("interrupted (Ctrl-C)", Stop.INTERRUPTED, drain=False)
            log.warning("interrupted: stopping islands and flushing the log")
            self._stop(islands, runs, drain=False)
        finally:
            bar.close()
        return self._finish(task, initial, islands, runlog, started, ending, stats, done_before)

    def _poll(self, islands: list, last: list) -> list:
        """Each island's statistics; the last known ones for an island that is restarting."""
        refs = [island.stats.remote() for island in islands]
        fresh = []
        for i, (ref, previous) in enumerate(zip(refs, last, strict=True)):
            try:
                fresh.append(ray.get(ref, timeout=10))
                self._restarting.discard(i)  # it answers: back from any restart
            except Exception:  # dead or restarting: keep what we knew
                fresh.append(previous)
        return fresh

    def _supervise(self, islands: list, runs: list, finished: set, restarts: Counter) -> None:
        """Notice islands whose loop ended; restart those that died, within limits."""
        pending = [i for i in range(len(islands)) if i not in finished]
        ready, _ = ray.wait([runs[i] for i in pending], num_returns=len(pending), timeout=0)
        for i in [i for i in pending if runs[i] in ready]:
            try:
                ray.get(runs[i])
                finished.add(i)
                continue
            except ray.exceptions.ActorUnavailableError:
                # Ray is restarting it (its own budget counts that restart): ask again,
                # without spending one of ours; said once per outage
                if i not in self._restarting:
                    self._restarting.add(i)
                    log.warning("island %d is being restarted by Ray; it resumes from the log", i)
                    self._event(EventKind.ISLAND_RESTARTED, island=i, message="restarted by Ray")
                islands[i].set_peers.remote(self._peers)
                runs[i] = islands[i].run.remote()
                continue
            except ray.exceptions.RayActorError as exc:
                problem = f"island {i} died: {type(exc).__name__}"
            except ray.exceptions.RayTaskError as exc:
                problem = f"island {i} failed: {remote_error(exc)}"
                restarts[i] = self.config.islands.max_restarts  # a bug, not a crash: do not loop
            if restarts[i] < self.config.islands.max_restarts:
                restarts[i] += 1
                log.warning(
                    "%s; restarting it from the run log (%d/%d)",
                    problem,
                    restarts[i],
                    self.config.islands.max_restarts,
                )
                self._event(EventKind.ISLAND_RESTARTED, island=i, message=problem)
                islands[i].set_peers.remote(self._peers)
                runs[i] = islands[i].run.remote()
            else:
                log.error("%s; giving it up", problem)
                self._event(EventKind.ISLAND_LOST, island=i, message=problem)
                self._island_errors.append(problem)
                finished.add(i)

    def _stop(self, islands: list, runs: list, *, drain: bool) -> None:
        for island in islands:
            island.stop.remote(drain)
        _, pending = ray.wait(
            runs, num_returns=len(runs), timeout=self.config.stop.drain_timeout_s if drain else 5.0
        )
        if pending:
            for island in islands:
                island.stop.remote(False)
            ray.wait(runs, num_returns=len(runs), timeout=5.0)

    def _finish(
        self,
        task: TaskSpec,
        initial: Program,
        islands: list,
        runlog,
        started: float,
        ending: Ending,
        last_stats: list,
        evaluations_before: int = 0,
    ) -> RunSummary:
        wall = time.monotonic() - started
        stats: list[IslandStats] = [s for s in self._poll(islands, last_stats) if s is not None]
        bests = []
        for island in islands:
            try:
                bests.append(ray.get(island.best.remote(), timeout=30))
            except Exception:  # a lost island: its programs are in the log all the same
                continue
        bests = [b for b in bests if b is not None]
        best = max(bests, key=lambda p: fitness(p.score, task.maximize), default=initial)
        counts = Counts.total(s.counts for s in stats)
        ray.get(
            self._event(
                EventKind.RUN_END,
                message=ending.reason,
                evaluations=counts.evaluations,
                best_score=best.score,
            )
        )
        log_error = None
        try:
            rows = ray.get(runlog.close.remote())
        except ray.exceptions.RayTaskError as exc:
            rows, log_error = {}, remote_error(exc)
        if log_error is None:  # the log, not live actors, counts (a lost island's work too)
            totals = log_totals(self.run_dir, task.maximize)
            counts.statuses = totals.counts.statuses
            counts.mutation_failures = totals.counts.mutation_failures
            if totals.best is not None and fitness(totals.best.score, task.maximize) > fitness(
                best.score, task.maximize
            ):
                best = totals.best
        self._runlog = None  # closed: the exit path need not close it again
        try:
            best_path = _write_best(self.run_dir, task, best)
        except OSError as exc:  # the summary is printed all the same, saying so
            best_path = self.run_dir / "best" / f"program{task.suffix}"
            log_error = (log_error + "; " if log_error else "") + (
                f"the best program could not be written to {best_path}: {exc}"
            )
        summary = RunSummary(
            run_dir=str(self.run_dir),
            run_id=self.run_id,
            task=task.name,
            counts=counts,
            wall_s=wall,
            evaluations_before=evaluations_before,
            initial_score=float(initial.score),
            best_score=best.score,
            best_program_id=best.id,
            best_program_path=str(best_path),
            stopped_because=ending.reason,
            stop=ending.stop,
            island_errors=[s.error for s in stats if s.error] + self._island_errors,
            log_rows=rows,
            log_error=log_error,
            isolation=self._isolation,
        )
        try:
            (self.run_dir / "summary.json").write_text(json.dumps(summary.to_json(), indent=2))
        except OSError as exc:
            log.error("could not write %s: %s", self.run_dir / "summary.json", exc)
        return summary


@dataclass(frozen=True)
class LogTotals:
    """What a run's log holds: its children's counts (judged by outcome, replies that made
    no child; the initial program not counted) and the best scored program."""

    counts: Counts
    best: Program | None


def log_totals(run_dir: Path, maximize: bool) -> LogTotals:
    from rayevolve.log import program_from_row, read_programs

    table = read_programs(run_dir, columns=["program_id", "island", "status", "score"])
    rows = table.to_pylist()
    scored = [r for r in rows if r["status"] == Outcome.OK and r["score"] is not None]
    best = None
    if scored:
        top = max(scored, key=lambda r: fitness(r["score"], maximize))["program_id"]
        full = read_programs(run_dir).filter(pc.equal(pc.field("program_id"), top))
        best = program_from_row(full.slice(0, 1).to_pylist()[0])
    return LogTotals(
        counts=Counts.from_rows(rows),
        best=best,
    )


def run(config: RunConfig, run_dir: Path, search_roots: list[Path]) -> RunSummary:
    return Controller(config, run_dir, search_roots).run()
