"""The run directory's own files: ``run_id``, ``config.yaml`` and ``versions.json`` (one
pair more per resumed session), ``task.json`` (the task folder's hashes, checked on
resume), ``best/`` and ``summary.json``."""

from __future__ import annotations

import json
import logging
import time
import uuid
from pathlib import Path

from omegaconf import OmegaConf

from rayevolve.config import RunConfig
from rayevolve.program import Program
from rayevolve.run.errors import RunError
from rayevolve.run.summary import RunSummary, package_versions
from rayevolve.tasks import TaskSpec, fingerprint

log = logging.getLogger(__name__)
RUN_ID = "run_id"
TASK_RECORD = "task.json"  # the task folder's file hashes, checked on resume
SUMMARY = "summary.json"
BEST = "best"


def new_run_id() -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


def recorded_run_id(run_dir: Path) -> str:
    """On resume, the run's id: every row of the run shares it."""
    marker = run_dir / RUN_ID
    if not marker.is_file():
        raise RunError(f"resume={run_dir}: not a rayevolve run directory (no run_id)")
    return marker.read_text().strip()


def check_new(run_dir: Path) -> None:
    """A new run never starts inside another run's folder (its rows would mix two runs
    under two ids): continue that one, or choose another folder."""
    if (run_dir / RUN_ID).is_file():
        raise RunError(
            f"run_dir={run_dir} already holds a run: continue it with resume={run_dir} "
            "(rayevolve.resume), or choose another run_dir"
        )


def check_writable(run_dir: Path) -> None:
    """A run directory that cannot be written stops the run before anything starts."""
    probe = run_dir / f".write-probe-{uuid.uuid4().hex[:8]}"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise RunError(
            f"cannot write the run directory {run_dir}: {exc.strerror or exc}; "
            "choose a writable one with run_dir=PATH"
        ) from None


def write_metadata(run_dir: Path, config: RunConfig, run_id: str, resuming: bool = False) -> None:
    """The configuration and package versions of this session (a resumed one's under a
    name of their own: two in one second differ), and a new run's id."""
    run_dir.mkdir(parents=True, exist_ok=True)
    text = OmegaConf.to_yaml(OmegaConf.structured(config))
    stamp = f"resumed-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    name = f"config.{stamp}.yaml" if resuming else "config.yaml"
    (run_dir / name).write_text(text)
    (run_dir / (f"versions.{stamp}.json" if resuming else "versions.json")).write_text(
        json.dumps(package_versions(), indent=2)
    )
    if not resuming:
        (run_dir / RUN_ID).write_text(run_id + "\n")


def write_task_record(run_dir: Path, task: TaskSpec) -> None:
    (run_dir / TASK_RECORD).write_text(json.dumps(fingerprint(task), indent=2))


def write_best(run_dir: Path, task: TaskSpec, best: Program) -> Path:
    """``best/program<ext>`` and ``best/metrics.json``; returns the program's path."""
    target = run_dir / BEST
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


def write_summary(run_dir: Path, summary: RunSummary) -> None:
    try:
        (run_dir / SUMMARY).write_text(json.dumps(summary.to_json(), indent=2))
    except OSError as exc:
        log.error("could not write %s: %s", run_dir / SUMMARY, exc)
