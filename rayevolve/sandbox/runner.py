"""Judge candidates of one task in confined, killable processes, and classify how each
ended.

A `Sandbox` belongs to one evaluator (which judges one candidate at a time). It holds:

* the isolation level (`confinement.py`), resolved once: ``namespaces`` on Linux,
  ``seatbelt`` on macOS, ``none`` only when asked for or when the node offers nothing;
* the task's checked copy (`taskcopy.py`), the only task folder candidates see
  (read-only under a confinement);
* its work area, where each candidate gets a directory of its own, emptied after it;
* a launcher: the fork server (one warm, confined process that forks a judge per
  candidate) or spawn (a fresh confined interpreter per candidate).

The judge (`child.py`) starts its own session, sets the limits, runs the task's
evaluator and sends its verdict over a pipe that no other process holds
(`verdict.py`); the candidate's files and output streams are never believed. A judge
that ran the candidate in its own process says so on that pipe before the candidate
runs, and the result is marked ``in_process``. Its stdout and stderr go to files of
which only a head and a tail are kept, and every stored text is capped.
"""

from __future__ import annotations

import os
import signal
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from rayevolve.credentials import is_secret
from rayevolve.outcome import Outcome
from rayevolve.result import EvalResult, Isolation
from rayevolve.sandbox.confinement import Confinement, resolve
from rayevolve.sandbox.forkserver import (
    ChildLaunch,
    ForkServer,
    ForkServerError,
    LaunchOutcome,
    resolve_mode,
    spawn,
)
from rayevolve.sandbox.scratch import OwnedDir, empty_dir, sweep
from rayevolve.sandbox.taskcopy import TaskCopy
from rayevolve.sandbox.verdict import parse
from rayevolve.sandbox.view import system_view
from rayevolve.tasks import bundle_folder
from rayevolve.textcaps import as_text, cap_artifacts

KEPT_ENV = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "SYSTEMROOT",
    "LD_LIBRARY_PATH",  # where a node's GPU driver libraries may live
    "CUDA_VISIBLE_DEVICES",  # which GPU Ray gave this evaluator
    "NVIDIA_VISIBLE_DEVICES",
)
MAX_METRICS = 1000


@dataclass(frozen=True)
class SandboxLimits:
    """Limits for one candidate.

    Attributes:
      timeout_s: wall clock before the judge and everything it started are killed.
      memory_limit_mb: RLIMIT_AS of the judge and the candidate (0: none).
      output_limit_bytes: bytes of stdout/stderr kept per stream (head + tail).
      file_limit_bytes: RLIMIT_FSIZE: largest file a candidate may write.
      threads: value for OMP/MKL/OpenBLAS thread-count variables.
    """

    timeout_s: float
    memory_limit_mb: int
    output_limit_bytes: int
    file_limit_bytes: int
    threads: int = 1


def child_environment(threads: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in KEPT_ENV and not is_secret(k)}
    for name in (
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "VECLIB_MAXIMUM_THREADS",
    ):
        env[name] = str(threads)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def truncate_output(path: Path, limit: int) -> str:
    """Head and tail of a possibly huge output file, with the omitted size in between.

    The file lies in a folder the candidate could write: it is read only if it is still
    a regular file (never through a link it planted, never a FIFO that would block)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return ""
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size == 0:
            return ""
        size = info.st_size
        if size <= limit:
            return handle.read(limit).decode(errors="replace")
        head = handle.read(limit // 4).decode(errors="replace")
        handle.seek(size - (limit - limit // 4))
        tail = handle.read().decode(errors="replace")
    return f"{head}\n... [{size - limit} bytes omitted] ...\n{tail}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _classify_exit(returncode: int, timed_out: bool, limits: SandboxLimits) -> tuple[Outcome, str]:
    if timed_out:
        return (
            Outcome.TIMEOUT,
            f"exceeded the {limits.timeout_s:g} s time limit; it and everything it started were killed",
        )
    if returncode < 0:
        sig = -returncode
        if sig == signal.SIGXFSZ:
            return (
                Outcome.CRASHED,
                f"wrote a file larger than {limits.file_limit_bytes} bytes (SIGXFSZ)",
            )
        if sig == signal.SIGKILL:
            return Outcome.CRASHED, "killed by SIGKILL (out of memory, or killed from outside)"
        return Outcome.CRASHED, f"died from {_signal_name(sig)}"
    return (
        Outcome.CRASHED,
        f"exited with code {returncode} before the evaluator returned a result",
    )


class Sandbox:
    """One evaluator's means to judge candidates of one task (see the module's doc).

    Args:
      files: the task folder's files (relative path -> bytes).
      limits: per-candidate limits.
      evaluator: the evaluator's path inside the task folder.
      launcher: ``auto``, ``forkserver`` or ``spawn`` (`forkserver.resolve_mode`).
      isolation: ``auto``, ``namespaces``, ``seatbelt`` or ``none``; or a resolved
        `Confinement` (an evaluator actor resolves once and reports it).
      python: the judge's interpreter (default: this one).
      env: variables added to the judge's rebuilt environment (the task's ``env``).
      cascade_thresholds: minimum score after stage k to run stage k+1.
      cascade: call ``evaluate_stage1/2/3`` where the evaluator defines them (else
        ``evaluate``).
      feature_names: the MAP-Elites features (left out of the score an evaluator without
        ``combined_score`` gets, as OpenEvolve does).
      score_metric: the returned metric that is the score (``task.score_metric``; None:
        ``combined_score``, else the fallback).
      read_paths: further host paths judged processes may read (a model folder).
      hidden: host paths judged processes must not see even inside a shown folder (the
        run directory, the user's task folder).
      devices: device files (globs) the judged may use, e.g. ``/dev/nvidia*``.
    """

    def __init__(
        self,
        files: Mapping[str, bytes],
        *,
        limits: SandboxLimits,
        evaluator: str = "evaluator.py",
        launcher: str = "auto",
        isolation: str | Confinement = "auto",
        python: str | None = None,
        env: Mapping[str, str] | None = None,
        cascade_thresholds: tuple[float, ...] = (),
        cascade: bool = True,
        feature_names: tuple[str, ...] = (),
        read_paths: tuple[str, ...] = (),
        hidden: tuple[str, ...] = (),
        devices: tuple[str, ...] = (),
        score_metric: str | None = None,
    ):
        sweep()  # folders of evaluators that died without cleaning up
        self.limits = limits
        self.python = python
        self.cascade_thresholds = tuple(cascade_thresholds)
        self.cascade = cascade
        self.feature_names = tuple(feature_names)
        self.score_metric = score_metric
        self.confinement = (
            isolation if isinstance(isolation, Confinement) else resolve(isolation, python)
        )
        self.task_copy = TaskCopy(files)
        self.evaluator = self.task_copy.path / evaluator
        self.work = OwnedDir("eval")
        searched = tuple(
            p
            for name in ("PYTHONPATH", "LD_LIBRARY_PATH")
            for p in os.environ.get(name, "").split(os.pathsep)
            if p and os.path.isabs(p)
        )
        self.view = system_view(read_paths + searched, hidden, python).with_paths(
            read_only=(str(self.task_copy.path),),
            writable=(str(self.work.path),),
            devices=tuple(devices),
        )
        self.env = {**child_environment(limits.threads), **dict(env or {})}
        if self.confinement.level != Isolation.NONE:
            self.env.update(HOME="/tmp", TMPDIR="/tmp")  # a private tmp inside the sandbox
        self.mode = resolve_mode(launcher)
        self.server: ForkServer | None = None
        self._count = 0
        if self.mode == "forkserver":
            self.server = ForkServer(
                self.env,
                python=python,
                evaluator=self.evaluator,
                task_dir=self.task_copy.path,
                confinement=self.confinement,
                view=self.view,
                work_root=self.work.path,
            )
            self.server.start()  # the evaluator's imports now, not in the first candidate

    @classmethod
    def of_folder(cls, folder: str | Path, **kwargs) -> Sandbox:
        return cls(bundle_folder(Path(folder)), **kwargs)

    @property
    def isolation(self) -> Isolation:
        return self.confinement.level

    def evaluate(self, code: str, suffix: str) -> EvalResult:
        """Judge one candidate. Failures of the sandbox itself (not the candidate's doing)
        raise; the candidate's own come back as classified results."""
        if self.task_copy.ensure_pristine() and self.server is not None:
            self.server.close()  # it saw the old copy: the next run starts it afresh
        self._count += 1
        folder = self.work.path / f"candidate-{self._count}"
        folder.mkdir()
        try:
            program = folder / f"program{suffix}"
            program.write_text(code)
            link_task_files(self.task_copy.path, folder, keep=program.name)
            launch = ChildLaunch(
                spec={
                    "evaluator": str(self.evaluator),
                    "task_dir": str(self.task_copy.path),
                    "program": str(program),
                    "memory_limit_mb": self.limits.memory_limit_mb,
                    "file_limit_bytes": self.limits.file_limit_bytes,
                    "cascade_thresholds": list(self.cascade_thresholds),
                    "cascade": self.cascade,
                    "features": list(self.feature_names),
                    "score_metric": self.score_metric,
                    "private_pids": self.confinement.private_pids,
                },
                cwd=folder,  # the program, its outputs, links to the task's files
                stdout=folder.with_name(folder.name + ".stdout"),
                stderr=folder.with_name(folder.name + ".stderr"),
                env=self.env,
                timeout_s=self.limits.timeout_s,
            )
            started = time.monotonic()
            try:
                outcome = (
                    self.server.run(launch)
                    if self.server is not None
                    else spawn(launch, self.python, self.confinement, self.view)
                )
            except ForkServerError as exc:
                if not exc.during_candidate:
                    raise
                return EvalResult.failure(
                    Outcome.CRASHED,
                    "the process supervising this candidate died or stopped answering while it "
                    f"ran (a candidate may not signal its supervisor): {exc}",
                    wall_s=time.monotonic() - started,
                    isolation=str(self.isolation),
                )
            wall = time.monotonic() - started
            captured = {}
            for name, path in (("stdout", launch.stdout), ("stderr", launch.stderr)):
                text = truncate_output(path, self.limits.output_limit_bytes)
                if text:
                    captured[name] = text
            return self._result(outcome, captured, wall)
        finally:
            empty_dir(self.work.path)

    def _result(self, outcome: LaunchOutcome, captured: dict, wall: float) -> EvalResult:
        channel = parse(outcome.channel, outcome.truncated)
        isolation = Isolation.IN_PROCESS if channel.tainted else self.isolation
        if outcome.timed_out:
            status, message = _classify_exit(outcome.returncode, True, self.limits)
            result = EvalResult.failure(status, message, artifacts=captured, wall_s=wall)
        elif channel.verdict is not None:
            result = _from_verdict(channel.verdict, captured, wall)
        elif channel.refusal():
            result = EvalResult.failure(
                Outcome.REJECTED,
                f"the verdict could not be believed: {channel.refusal()}",
                artifacts=captured,
                wall_s=wall,
            )
        else:
            status, message = _classify_exit(outcome.returncode, False, self.limits)
            result = EvalResult.failure(status, message, artifacts=captured, wall_s=wall)
        if channel.tainted:
            result.artifacts["isolation"] = channel.tainted[0]
        return replace(result, isolation=str(isolation))

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        self.task_copy.close()
        self.work.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def link_task_files(task_dir: Path, folder: Path, keep: str) -> None:
    """Make the task's top-level entries reachable from `folder` (the judge's working
    directory) by relative path, as they are from the task folder an OpenEvolve
    evaluator runs beside: each a symbolic link into the checked task copy (read-only
    under the namespaces and seatbelt levels; rewritten before the next candidate if
    changed). New files go into `folder` itself, which is the candidate's own."""
    for entry in os.scandir(task_dir):
        if entry.name != keep and not entry.name.startswith("."):
            os.symlink(entry.path, folder / entry.name)


def run_candidate(
    code: str,
    *,
    suffix: str,
    evaluator: Path,
    task_dir: Path,
    limits: SandboxLimits,
    cascade_thresholds: tuple[float, ...] = (),
    cascade: bool = True,
    feature_names: tuple[str, ...] = (),
    score_metric: str | None = None,
    python: str | None = None,
    env: dict[str, str] | None = None,
    isolation: str | Confinement = "auto",
    launcher: str = "spawn",
) -> EvalResult:
    """Judge `code` once with the evaluator of the folder `task_dir`, in a sandbox made
    for it alone (an evaluator keeps a `Sandbox` instead)."""
    with Sandbox.of_folder(
        task_dir,
        limits=limits,
        evaluator=Path(evaluator).resolve().relative_to(Path(task_dir).resolve()).as_posix(),
        launcher=launcher,
        isolation=isolation,
        python=python,
        env=env,
        cascade_thresholds=tuple(cascade_thresholds),
        cascade=cascade,
        feature_names=tuple(feature_names),
        score_metric=score_metric,
        hidden=(str(task_dir),),
    ) as sandbox:
        return sandbox.evaluate(code, suffix)


def _from_verdict(verdict: dict, captured: dict[str, str], wall: float) -> EvalResult:
    reported = verdict.get("artifacts")
    artifacts = {**captured, **cap_artifacts(reported if isinstance(reported, dict) else {})}
    metrics = {}
    raw_metrics = verdict.get("metrics")
    for key, value in list((raw_metrics if isinstance(raw_metrics, dict) else {}).items())[
        :MAX_METRICS
    ]:
        try:
            metrics[as_text(key, 200)] = float(value)
        except (TypeError, ValueError):
            continue
    try:
        status = Outcome(verdict.get("status", Outcome.REJECTED))
    except ValueError:
        artifacts["error"] = (
            f"evaluator reported unknown status {as_text(verdict.get('status'), 100)}"
        )
        status = Outcome.REJECTED
    score = None
    if status == Outcome.OK:
        try:
            score = float(verdict.get("score"))
        except (TypeError, ValueError):
            score = float("nan")
        if score != score or score in (float("inf"), float("-inf")):
            status, score = Outcome.REJECTED, None
            artifacts["error"] = "the verdict's score is not a finite number"
    elif not artifacts.get("error"):
        artifacts["error"] = f"the evaluation ended with status {status} and gave no message"
    try:
        stage = int(verdict.get("stage", 0))
    except (TypeError, ValueError):
        stage = 0
    reported = verdict.get("stage_metrics")
    stage_metrics = tuple(
        tuple(as_text(name, 200) for name in names[:MAX_METRICS])
        for names in (reported if isinstance(reported, list) else [])[:3]
        if isinstance(names, list)
    )
    return EvalResult(
        status=status,
        score=score,
        metrics=metrics,
        artifacts=artifacts,
        wall_s=wall,
        stage=stage,
        stage_metrics=stage_metrics,
    )
