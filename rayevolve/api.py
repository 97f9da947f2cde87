"""rayevolve from Python: `evolve` a task, `evolve_function` a function of a notebook,
`load` a finished or running run. Each run is the command line's (the same ``conf/``
defaults, the same validation, the same run directory and log); the result is a
`RunResult` with the best program, its score, the summary and the log as tables.

    import rayevolve
    result = rayevolve.evolve("circle_packing", stop={"max_evaluations": 50})
    print(result.best_score, result.best_code)
    result.programs()  # the log's programs table (pandas)
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from rayevolve.config import ConfigError, RunConfig
from rayevolve.paths import default_run_dir
from rayevolve.program import Program
from rayevolve.run.errors import RunError
from rayevolve.run.summary import RunSummary

__all__ = ["ConfigError", "RunError", "RunResult", "evolve", "evolve_function", "load", "resume"]


@dataclass(frozen=True)
class RunResult:
    """A run as its folder holds it.

    Attributes:
      run_dir: the run directory (log, ``best/``, ``summary.json``).
      summary: the finished run's `RunSummary`; None while it runs (or if it was killed
        before it could write one).
      best: the best scored program so far (None: nothing scored yet).
      running: whether a process holds the run's log open now.
    """

    run_dir: Path
    summary: RunSummary | None
    best: Program | None
    running: bool = False

    @property
    def best_code(self) -> str | None:
        return None if self.best is None else self.best.code

    @property
    def best_score(self) -> float | None:
        return None if self.best is None else self.best.score

    @property
    def best_metrics(self) -> dict:
        return {} if self.best is None or self.best.result is None else self.best.result.metrics

    def programs(self, columns: Sequence[str] | None = None):
        """The ``programs`` table (every child, its parent, outcome, score and more)."""
        from rayevolve.log import read_programs

        return read_programs(self.run_dir, columns=columns).to_pandas()

    def events(self):
        """The ``events`` table (start, migrations, restarts, placements, the end)."""
        from rayevolve.log import read_events

        return read_events(self.run_dir).to_pandas()

    def prompts(self):
        """The ``prompts`` table (each distinct prompt text, by its hash)."""
        from rayevolve.log import read_prompts

        return read_prompts(self.run_dir).to_pandas()

    def __repr__(self) -> str:
        state = "running" if self.running else ("finished" if self.summary else "stopped")
        return f"RunResult({str(self.run_dir)!r}, {state}, best_score={self.best_score!r})"


def load(run_dir: str | Path) -> RunResult:
    """A run's result from its folder: finished, stopped, or still running (then its
    log as far as it is written)."""
    from rayevolve.run.folder import RUN_ID, SUMMARY
    from rayevolve.run.lock import RunDirLock
    from rayevolve.run.summary import log_totals

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such folder")
    if not (run_dir / RUN_ID).is_file():
        raise FileNotFoundError(f"{run_dir}: not a rayevolve run directory (no {RUN_ID} file)")
    running = RunDirLock.held_elsewhere(run_dir)
    summary = None
    if (run_dir / SUMMARY).is_file() and not running:
        try:
            summary = RunSummary.from_json(json.loads((run_dir / SUMMARY).read_text()))
        except (ValueError, TypeError) as exc:
            raise ValueError(
                f"{run_dir / SUMMARY}: not a summary rayevolve wrote ({exc})"
            ) from None
    maximize = _maximize(run_dir)
    has_log = any((run_dir / "programs").glob("*.parquet"))
    best = log_totals(run_dir, maximize).best if has_log else None
    return RunResult(run_dir=run_dir, summary=summary, best=best, running=running)


def _maximize(run_dir: Path) -> bool:
    config = run_dir / "config.yaml"
    if not config.is_file():
        return True
    return OmegaConf.select(OmegaConf.load(config), "task.direction") != "minimize"


def compose(
    task_or_path: str | Path | None = None,
    overrides: Sequence[str] = (),
    settings: Mapping | None = None,
) -> tuple[RunConfig, Path]:
    """The run's configuration as the command line would compose it (``conf/``, then
    `task_or_path`, `overrides` in Hydra's syntax, then `settings` as nested values),
    validated; and its run directory."""
    from rayevolve.compose import compose_run
    from rayevolve.tasks import TaskError

    if (settings or {}).get("resume") or any(o.startswith("resume=") for o in overrides):
        raise ConfigError("resume: continue a run with rayevolve.resume(run_dir) instead")
    try:
        return compose_run([*_task_overrides(task_or_path), *overrides], settings)
    except TaskError as exc:  # a task folder that cannot be used: a setting to fix
        raise ConfigError(str(exc)) from None


def evolve(
    task_or_path: str | Path | None = None,
    /,
    *,
    overrides: Sequence[str] = (),
    run_dir: str | Path | None = None,
    **settings,
) -> RunResult:
    """Run evolution on `task_or_path` (a name from ``conf/task/``, or a task folder's
    path; default: the command line's default task) and return its `RunResult`.

    Settings are given as the command line's, either as Hydra overrides
    (``overrides=["stop.max_evaluations=50"]``) or as keyword arguments with nested
    values (``stop={"max_evaluations": 50}, task={"timeout_s": 30}, seed=3``). A bad
    setting raises `ConfigError`; a run that cannot start raises `RunError`.
    """
    if run_dir is not None:
        settings["run_dir"] = str(run_dir)
    return _run(*compose(task_or_path, overrides, settings))


def _run(config: RunConfig, run_dir: Path) -> RunResult:
    from rayevolve.compose import search_roots
    from rayevolve.run.controller import run

    summary = run(config, run_dir, search_roots=search_roots())
    result = load(summary.run_dir)
    return RunResult(run_dir=result.run_dir, summary=summary, best=result.best)


def resume(run_dir: str | Path, *, overrides: Sequence[str] = (), **settings) -> RunResult:
    """Continue the run in `run_dir` from its log (its saved configuration, with the
    given settings on top: a larger ``stop={"max_evaluations": ...}``, say)."""
    from rayevolve.compose import compose_run, flatten, search_roots
    from rayevolve.run.controller import run

    run_dir = Path(run_dir)
    dotted = [*overrides, *(f"{k}={json.dumps(v)}" for k, v in flatten(settings).items())]
    config, _ = compose_run([f"resume={run_dir}", *dotted])
    summary = run(config, run_dir, search_roots=search_roots())
    result = load(run_dir)
    return RunResult(run_dir=run_dir, summary=summary, best=result.best)


def evolve_function(
    fn: Callable,
    evaluate: Callable | Sequence,
    *,
    direction: str = "maximize",
    overrides: Sequence[str] = (),
    run_dir: str | Path | None = None,
    **settings,
) -> RunResult:
    """Evolve the Python function `fn`, judged by `evaluate`, and return the `RunResult`
    (``result.best_code`` is the best version of the function's source).

    `evaluate` is either test cases, ``[(args, expected), ...]`` (the score is the
    fraction of cases whose result equals the expected one), or a function
    ``evaluate(candidate) -> float | dict`` that calls ``candidate(*args)`` as often as it
    likes and returns the score (a dict: metrics, ``combined_score`` the score). Each
    call of ``candidate`` runs the evolved function in a fresh child process and returns
    only plain data (numbers, strings, lists, dicts): `evaluate` itself runs in the judge,
    where no candidate code ever ran. The task folder written for it (`fn`'s and
    `evaluate`'s source, the names they use) is kept in the run directory's ``task/``.
    """
    from rayevolve.function_task import write_function_task

    name = getattr(fn, "__name__", "function")
    if run_dir is None:
        run_dir = Path(settings.pop("run_dir", None) or default_run_dir(name))
    run_dir = Path(run_dir)
    task_dir = run_dir / "task"
    if task_dir.exists():
        raise ConfigError(
            f"{run_dir} already holds a task folder: choose a new run_dir, or continue that "
            "run with rayevolve.resume(run_dir)"
        )
    existed = run_dir.exists()
    before = set(run_dir.iterdir()) if existed else set()
    write_function_task(task_dir, fn, evaluate)
    task_settings = dict(settings.pop("task", None) or {})
    task_settings.update(
        path=str(task_dir.resolve()), name=task_settings.get("name", name), direction=direction
    )
    try:
        config, folder = compose(
            None, overrides, {**settings, "task": task_settings, "run_dir": str(run_dir)}
        )
        return _run(config, folder)
    except (ConfigError, RunError):  # refused at start: nothing is left behind, so the
        if not existed:  # same call, mended, can be made again
            shutil.rmtree(run_dir, ignore_errors=True)
        for entry in set(run_dir.iterdir()) - before if existed else ():
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        raise


# --- helpers --------------------------------------------------------------------------
def _task_overrides(task: str | Path | None) -> list[str]:
    """``task=NAME`` for a name in ``conf/task/``, ``task.path=PATH`` for a folder."""
    from rayevolve.paths import CONF_DIR

    if task is None:
        return []
    text = str(task)
    if isinstance(task, str) and (CONF_DIR / "task" / f"{text}.yaml").is_file():
        return [f"task={text}"]
    if isinstance(task, Path) or "/" in text or Path(text).is_dir():
        return [f"task.path={Path(text).expanduser()}"]
    names = sorted(p.stem for p in (CONF_DIR / "task").glob("*.yaml"))
    raise ConfigError(
        f"task {text!r} is neither a task of conf/task/ ({', '.join(names)}) nor a folder"
    )
