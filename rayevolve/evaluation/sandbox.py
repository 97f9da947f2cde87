"""Run one candidate in a killable subprocess with limits, and classify how it ended.

The child (`child.py`'s `main`, in a fresh interpreter or forked from the evaluator's
fork server: `forkserver.py`) starts a new session, so the whole process group,
grandchildren included, is killed on timeout and again after a normal exit. It gets a
private working directory and a fresh copy of the task folder (both removed afterwards),
stdin closed, an environment without secrets, an address-space limit, a file-size
limit, and its stdout/stderr go to files of which only a head and tail are kept for the
model.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rayevolve.evaluation.forkserver import ChildLaunch, ForkServer, spawn
from rayevolve.evaluation.result import EvalResult, EvalStatus
from rayevolve.evaluation.taskcopy import TaskCopy

SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL|AUTH", re.IGNORECASE)
KEPT_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV", "SYSTEMROOT")


@dataclass(frozen=True)
class SandboxLimits:
    """Limits for one candidate.

    Attributes:
      timeout_s: wall clock before the process group is killed.
      memory_limit_mb: RLIMIT_AS of the child (0: none).
      output_limit_bytes: bytes of stdout/stderr kept per stream (head + tail).
      file_limit_bytes: RLIMIT_FSIZE: largest file the child may write.
      threads: value for OMP/MKL/OpenBLAS thread-count variables.
    """

    timeout_s: float
    memory_limit_mb: int
    output_limit_bytes: int
    file_limit_bytes: int
    threads: int = 1


def child_environment(threads: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in KEPT_ENV and not SECRET_NAME.search(k)}
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
    """Head and tail of a possibly huge file, with the omitted size in between."""
    size = path.stat().st_size if path.exists() else 0
    if size == 0:
        return ""
    with open(path, "rb") as handle:
        if size <= limit:
            return handle.read().decode(errors="replace")
        head = handle.read(limit // 4).decode(errors="replace")
        handle.seek(size - (limit - limit // 4))
        tail = handle.read().decode(errors="replace")
    return f"{head}\n... [{size - limit} bytes omitted] ...\n{tail}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _classify_exit(
    returncode: int, timed_out: bool, limits: SandboxLimits
) -> tuple[EvalStatus, str]:
    if timed_out:
        return (
            EvalStatus.TIMEOUT,
            f"exceeded the {limits.timeout_s:g} s time limit; its process group was killed",
        )
    if returncode < 0:
        sig = -returncode
        if sig == signal.SIGXFSZ:
            return (
                EvalStatus.CRASHED,
                f"wrote a file larger than {limits.file_limit_bytes} bytes (SIGXFSZ)",
            )
        if sig == signal.SIGKILL:
            return EvalStatus.CRASHED, "killed by SIGKILL (out of memory, or killed from outside)"
        return EvalStatus.CRASHED, f"died from {_signal_name(sig)}"
    return (
        EvalStatus.CRASHED,
        f"exited with code {returncode} before the evaluator returned a result",
    )


def run_candidate(
    code: str,
    *,
    suffix: str,
    evaluator: Path,
    task_dir: Path,
    limits: SandboxLimits,
    cascade_thresholds: list[float] = (),
    python: str | None = None,
    env: dict[str, str] | None = None,
    forkserver: ForkServer | None = None,
    task_copy: TaskCopy | None = None,
) -> EvalResult:
    """Evaluate `code` with the task's evaluator in a sandboxed child process: forked by
    `forkserver` when given, else a fresh interpreter (`python`). The candidate sees a
    private copy of `task_dir`: `task_copy` (checked, and rebuilt if changed) when given,
    else a fresh copy made for it alone."""
    root = Path(tempfile.mkdtemp(prefix="rayevolve-eval-"))
    work = root / "work"  # the candidate's; the control files beside it are ours
    work.mkdir()
    try:
        if task_copy is not None:
            task_copy.ensure_pristine()
            private_task = task_copy.path
        else:
            # a fresh copy of the task per candidate: one that rewrites the evaluator's
            # files changes only its own copy, never what judges the next candidate
            private_task = root / "task"
            shutil.copytree(task_dir, private_task, ignore=shutil.ignore_patterns("__pycache__"))
        evaluator = private_task / Path(evaluator).relative_to(task_dir)
        task_dir = private_task
        program = work / f"program{suffix}"
        program.write_text(code)
        result_path = root / "result.json"
        spec = {
            "evaluator": str(evaluator),
            "task_dir": str(task_dir),
            "program": str(program),
            "result": str(result_path),
            "memory_limit_mb": limits.memory_limit_mb,
            "file_limit_bytes": limits.file_limit_bytes,
            "cascade_thresholds": list(cascade_thresholds),
        }
        spec_path = root / "spec.json"
        spec_path.write_text(json.dumps(spec))
        stdout_path, stderr_path = root / "stdout.txt", root / "stderr.txt"
        launch = ChildLaunch(
            spec=spec_path,
            cwd=work,
            stdout=stdout_path,
            stderr=stderr_path,
            env={**child_environment(limits.threads), **(env or {})},
            timeout_s=limits.timeout_s,
        )
        started = time.monotonic()
        if forkserver is not None:
            returncode, timed_out = forkserver.run(launch)
        else:
            returncode, timed_out = spawn(launch, python)
        wall = time.monotonic() - started
        artifacts = {}
        for name, path in (("stdout", stdout_path), ("stderr", stderr_path)):
            text = truncate_output(path, limits.output_limit_bytes)
            if text:
                artifacts[name] = text
        if not timed_out and result_path.exists():
            return _from_verdict(json.loads(result_path.read_text()), artifacts, wall)
        status, message = _classify_exit(returncode, timed_out, limits)
        return EvalResult.failure(status, message, artifacts=artifacts, wall_s=wall)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _from_verdict(verdict: dict, captured: dict[str, str], wall: float) -> EvalResult:
    artifacts = {
        **captured,
        **{str(k): str(v) for k, v in (verdict.get("artifacts") or {}).items()},
    }
    metrics = {str(k): float(v) for k, v in (verdict.get("metrics") or {}).items()}
    try:
        status = EvalStatus(verdict.get("status", "rejected"))
    except ValueError:
        artifacts["error"] = f"evaluator reported unknown status {verdict.get('status')!r}"
        status = EvalStatus.REJECTED
    score = verdict.get("score") if status == EvalStatus.OK else None
    return EvalResult(
        status=status,
        score=float(score) if score is not None else None,
        metrics=metrics,
        artifacts=artifacts,
        wall_s=wall,
        stage=int(verdict.get("stage", 0)),
    )
