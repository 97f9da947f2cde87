"""Runs submitted as Ray Jobs (``ray job submit --working-dir . -- python -m rayevolve``).

Ray copies the job's working directory into its session's temporary folder, runs the
entrypoint there and deletes the copy when the cluster no longer needs it: a run
directory inside it (Hydra's default ``runs/...``, or any relative ``run_dir``) would be
lost with the job's log. `check_run_dir` refuses one, saying why and what to give instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

# set by Ray's job supervisor in the entrypoint's environment
JOB_CONFIG_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"


class JobRunDirError(ValueError):
    """A run directory that would be deleted with the Ray job's working-dir copy."""


def in_ray_job(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process is a Ray job's entrypoint (its driver joins the job's cluster)."""
    return bool((os.environ if environ is None else environ).get(JOB_CONFIG_ENV))


def job_working_dir(
    environ: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Path | None:
    """The working-dir copy this process runs in when it is a Ray job's entrypoint
    submitted with ``--working-dir`` (its current directory), else None."""
    raw = (os.environ if environ is None else environ).get(JOB_CONFIG_ENV)
    if not raw:
        return None
    try:
        runtime_env = json.loads(raw).get("runtime_env") or {}
    except (ValueError, AttributeError):
        return None
    if not runtime_env.get("working_dir"):
        return None
    return Path(cwd or os.getcwd()).resolve()


def check_run_dir(
    run_dir: Path, environ: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Path:
    """`run_dir` made absolute; `JobRunDirError` when it lies inside a Ray job's
    working-dir copy."""
    copy = job_working_dir(environ, cwd)
    base = Path(cwd or os.getcwd())
    resolved = (run_dir if run_dir.is_absolute() else base / run_dir).resolve()
    if copy is not None and (resolved == copy or copy in resolved.parents):
        raise JobRunDirError(
            f"the run directory {run_dir} is inside this Ray job's working-dir copy ({copy}), "
            "which Ray deletes after the job: give an absolute run_dir=/PATH outside it, on a "
            "disk of the node that runs the job's driver (e.g. run_dir=$HOME/rayevolve-runs/NAME)"
        )
    return resolved
