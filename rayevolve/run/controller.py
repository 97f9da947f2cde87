"""The driver: one run in named phases, each a call into the module that does that job.

prepare      load the task; refuse what could never run (`checks`), a resume that
             disagrees with its run (`resume`); write the run folder's records
connect      start or attach Ray (secrets out of the environment first)
start        the web view, placement checks, the log, mutator and evaluator pool
             (`actors`), the start events
seed         the initial program: from the log on resume, else judged (a failing one
             stops the run with its error)
islands      the fleet (`rayevolve.islands.group`) restored from the log and started
evolve       poll statistics for the progress display and the stop rules
             (`stopping`), supervise the islands, until a rule says stop
finish       stop (drained or not), flush the log, best program and `RunSummary`
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import ray

from rayevolve.cluster import connect, remote_error
from rayevolve.config import RunConfig
from rayevolve.counts import Counts
from rayevolve.credentials import scrub as scrub_secrets
from rayevolve.islands.features import unreported_features
from rayevolve.islands.group import IslandGroup, IslandStartError
from rayevolve.jobs import JobRunDirError, check_run_dir, in_ray_job
from rayevolve.log import program_row
from rayevolve.log.schema import EventKind
from rayevolve.outcome import Outcome
from rayevolve.program import Program
from rayevolve.result import Isolation
from rayevolve.run import actors, checks, folder, progress, resume, webview
from rayevolve.run.errors import RunError
from rayevolve.run.stopping import Ending, Progress, Stop, decide, fitness
from rayevolve.run.summary import RunSummary, log_totals, package_versions
from rayevolve.sandbox.scratch import sweep as sweep_scratch
from rayevolve.tasks import TaskSpec, fingerprint, load_task

__all__ = ["Controller", "RunError", "RunSummary", "run"]
log = logging.getLogger(__name__)
POLL_S = 0.5


class Controller:
    """One run. `run()` returns its summary; expected failures raise `RunError`."""

    def __init__(self, config: RunConfig, run_dir: Path, search_roots: list[Path]):
        self.config = config
        self.run_dir = Path(run_dir)
        self.search_roots = search_roots
        self.run_id = folder.new_run_id()
        self.shared = actors.SharedActors()
        self.islands: IslandGroup | None = None
        self._keys: dict[str, str] = {}
        self._isolation = ""
        self._changed: list[str] = []
        self._objective = ""

    @property
    def resuming(self) -> bool:
        return self.config.resume is not None

    def run(self) -> RunSummary:
        task = self._prepare()
        started_ray = self._connect()
        ui = placements_logged = None
        try:
            ui = webview.serve(self.config.ui, self.run_dir)
            self._start(task)
            initial = self._seed(task)
            self._start_islands(task)
            placements_logged = threading.Thread(  # off the start-up path: Ctrl-C stays prompt
                target=actors.log_placements,
                args=(self.run_id, self.shared, self.islands.islands),
                daemon=True,
            )
            placements_logged.start()
            return self._evolve(task, initial)
        finally:
            if placements_logged is not None:
                placements_logged.join(timeout=actors.PLACEMENT_WAIT_S)
            self._tear_down(started_ray, ui)

    # --- the phases -----------------------------------------------------------------
    def _prepare(self) -> TaskSpec:
        """Everything checked before Ray starts; a new run's records written (a resume
        writes nothing before it holds the run directory)."""
        try:
            self.run_dir = check_run_dir(self.run_dir)
        except JobRunDirError as exc:
            raise RunError(str(exc)) from None
        task = load_task(self.config.task, self.search_roots)
        checks.check_startable(self.config, task)
        if not self.resuming:
            folder.check_new(self.run_dir)
        folder.check_writable(self.run_dir)
        if self.resuming:
            self.run_id = folder.recorded_run_id(self.run_dir)
            self._changed = resume.changed_settings(self.config, self.run_dir)
            self._changed += resume.changed_task(self.config, self.run_dir, task)
        else:
            folder.write_metadata(self.run_dir, self.config, self.run_id)
            folder.write_task_record(self.run_dir, task)
        self._context = checks.prompt_context(self.config, task, self.search_roots)
        return task

    def _connect(self) -> bool:
        """Start (or join) Ray; True if this call started it. Keys are read first, then
        every secret-looking variable leaves the environment Ray's processes start from."""
        self._keys = actors.api_keys(self.config)
        started_ray = not ray.is_initialized()
        if started_ray and self.config.cluster.address is None and not in_ray_job():
            removed = scrub_secrets()
            if removed:
                log.info("removed %d secret-looking variables before starting Ray", len(removed))
        connect(self.config.cluster)
        return started_ray

    def _start(self, task: TaskSpec) -> None:
        unplaced = checks.check_placeable(self.config, task, ray.nodes())
        actors.start_shared(
            self.shared, self.config, task, self.run_id, self.run_dir, self._context, self._keys
        )
        if self.resuming:
            folder.write_metadata(self.run_dir, self.config, self.run_id, resuming=True)
        self._isolation = progress.announce(
            self.config, self.run_id, self.run_dir, task, self.shared.placements
        )
        kind = EventKind.RUN_RESUMED if self.resuming else EventKind.RUN_START
        payload = {
            "placements": self.shared.placements,
            "versions": package_versions(),
            "task": {k: v for k, v in fingerprint(task).items() if k != "files"},
        }
        ray.get(self._event(kind, payload=payload))
        if unplaced:
            ray.get(self._event(EventKind.EVALUATORS_UNPLACED, message=unplaced))
        if self.shared.recovered:
            recovered = "; ".join(self.shared.recovered)
            ray.get(
                self._event(
                    EventKind.LOG_RECOVERED, message=f"from the write-ahead log: {recovered}"
                )
            )
        if self._changed:
            ray.get(
                self._event(
                    EventKind.TASK_CHANGED,
                    message="resumed with force_resume=true although the task changed: "
                    + "; ".join(self._changed),
                )
            )

    def _seed(self, task: TaskSpec) -> Program:
        """The run's initial program: from the log on resume (unless the run was killed
        before it was logged), else judged here."""
        initial = self._initial_from_log() if self.resuming else None
        if initial is None:
            initial = self._evaluate_initial(task)
        if initial.result is not None:
            self._objective = checks.check_objective(task, initial.result)
        if initial.result is not None and initial.result.isolation == Isolation.IN_PROCESS:
            self._isolation += progress.warn_in_process(task)
        return initial

    def _start_islands(self, task: TaskSpec) -> None:
        """Islands find the mutator, pool and log by name (see IslandActor)."""
        self.islands = IslandGroup(
            self.config, task, self.run_id, actors.near_driver(), self._event
        )
        try:
            self.islands.restore()
        except IslandStartError as exc:
            raise RunError(str(exc)) from None

    def _evolve(self, task: TaskSpec, initial: Program) -> RunSummary:
        cfg, islands = self.config, self.islands
        islands.start()
        started = time.monotonic()
        ending = Ending("max_evaluations reached", Stop.BUDGET, drain=False)
        done_before = sum(s.evaluations for s in islands.poll() if s)  # a resumed run's work
        display = progress.ProgressDisplay(cfg, task.maximize, done_before)
        try:
            while True:
                islands.supervise()
                # the islands' statistics arrive with their rows: one call, however many
                log_error, failing_for, reported = ray.get(self.shared.runlog.progress.remote())
                islands.reported(reported)
                stats = islands.stats
                done = sum(s.evaluations for s in stats if s)
                failures = sum(s.counts.failures for s in stats if s)
                elapsed = time.monotonic() - started
                best = display.best(stats)
                display.show(done, best, (done - done_before) / max(elapsed, 1e-9), failures)
                now = Progress(
                    evaluations=done,
                    best=best,
                    elapsed_s=elapsed,
                    islands_done=len(islands.finished),
                    islands=len(islands),
                    log_error=log_error,
                    log_failing_s=failing_for,
                    fatal=next((s.error for s in stats if s and s.fatal), None),
                )
                due = decide(now, cfg.stop, cfg.log, task.maximize)
                if due is not None:
                    ending = due
                    if now.islands_done < now.islands:
                        islands.stop(drain=ending.drain)
                    break
                time.sleep(POLL_S)
        except KeyboardInterrupt:
            ending = Ending("interrupted (Ctrl-C)", Stop.INTERRUPTED, drain=False)
            log.warning("interrupted: stopping islands and flushing the log")
            islands.stop(drain=False)
        finally:
            display.close()
        return self._finish(task, initial, started, ending, done_before)

    def _finish(
        self, task: TaskSpec, initial: Program, started: float, ending: Ending, done_before: int
    ) -> RunSummary:
        wall = time.monotonic() - started
        islands = self.islands
        islands.poll()
        best = max(islands.bests(), key=lambda p: fitness(p.score, task.maximize), default=initial)
        counts = Counts.total(s.counts for s in islands.known())
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
            rows = self.shared.close_log()
        except ray.exceptions.RayTaskError as exc:
            rows, log_error = {}, remote_error(exc)
            self.shared.runlog = None
        if log_error is None:  # the log, not live actors, counts (a lost island's work too)
            totals = log_totals(self.run_dir, task.maximize)
            counts.statuses = totals.counts.statuses
            counts.mutation_failures = totals.counts.mutation_failures
            if totals.best is not None:  # the one rule for the best (`stopping.rank`)
                best = totals.best
        try:
            best_path = folder.write_best(self.run_dir, task, best)
        except OSError as exc:  # the summary is printed all the same, saying so
            best_path = self.run_dir / folder.BEST / f"program{task.suffix}"
            log_error = (log_error + "; " if log_error else "") + (
                f"the best program could not be written to {best_path}: {exc}"
            )
        summary = RunSummary(
            run_dir=str(self.run_dir),
            run_id=self.run_id,
            task=task.name,
            counts=counts,
            wall_s=wall,
            evaluations_before=done_before,
            initial_score=float(initial.score),
            best_score=best.score,
            best_program_id=best.id,
            best_program_path=str(best_path),
            stopped_because=ending.reason,
            stop=ending.stop,
            island_errors=islands.island_errors(),
            log_rows=rows,
            log_error=log_error,
            isolation=self._isolation,
            objective=self._objective,
        )
        folder.write_summary(self.run_dir, summary)
        return summary

    def _tear_down(self, started_ray: bool, ui) -> None:
        """Whatever happened: close the pool, flush the log, kill every actor, stop the
        Ray this run started, the web view, and sweep this node's scratch folders."""
        self.shared.close_pool()
        self.shared.flush_log()
        handles = list(self.shared.handles) + (self.islands.actors if self.islands else [])
        for actor in handles:
            try:
                ray.kill(actor)
            except Exception:  # already gone
                pass
        if started_ray:
            ray.shutdown()
        if ui is not None:
            ui.close()
        sweep_scratch()  # folders of this node's actors that were killed, not closed

    # --- helpers --------------------------------------------------------------------
    def _event(self, kind: str, **fields):
        """Append one event of the run to the log; returns the call's ObjectRef."""
        return self.shared.event(self.run_id, kind, **fields)

    def _evaluate_initial(self, task: TaskSpec) -> Program:
        initial = Program.create(task.initial_code, language=task.language, parent=None, island=-1)
        started = time.perf_counter()
        result = ray.get(self.shared.pool.evaluate.remote(initial.code))
        initial = initial.with_result(result)
        row = program_row(self.run_id, initial, eval_call_s=time.perf_counter() - started)
        ray.get(self.shared.runlog.append_programs.remote([row]))
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

    def _initial_from_log(self) -> Program | None:
        from rayevolve.log.replay import ResumeError

        try:
            return ray.get(self.shared.runlog.initial_program.remote())
        except ray.exceptions.RayTaskError as exc:
            raise RunError(f"cannot resume {self.run_dir}: {remote_error(exc)}") from (
                None if isinstance(exc.cause, ResumeError) else exc
            )


def run(config: RunConfig, run_dir: Path, search_roots: list[Path]) -> RunSummary:
    return Controller(config, run_dir, search_roots).run()
