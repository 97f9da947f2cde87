"""What a resumed run must agree with: the settings that give its logged rows their
meaning (`MEANING`) and the task folder it started with (``task.json``), unless
``force_resume`` says otherwise (then the changes are recorded as a ``task_changed``
event). The state itself comes back from the log (`rayevolve.log.replay`)."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import OmegaConf

from rayevolve.config import RunConfig
from rayevolve.run.errors import RunError
from rayevolve.run.folder import TASK_RECORD
from rayevolve.tasks import TaskSpec, changes, fingerprint

# settings whose change on resume would mix rows of different meaning in one log
MEANING = (
    "task.name",
    "task.path",
    "task.initial_program",
    "task.evaluator",
    "task.language",
    "task.direction",
    "task.score_metric",
    "task.cascade",
    "task.cascade_thresholds",
    "task.features",
    "task.timeout_s",
    "task.memory_limit_mb",
    "task.env",
    "islands.count",
    "seed",
)


def changed_settings(config: RunConfig, run_dir: Path) -> list[str]:
    """The `MEANING` settings that differ from the run's ``config.yaml``; refused unless
    ``force_resume``; returns the changes accepted."""
    saved_path = run_dir / "config.yaml"
    if not saved_path.is_file():
        return []
    saved = OmegaConf.load(saved_path)
    now = OmegaConf.structured(config)
    changed = []
    for key in MEANING:
        before, after = OmegaConf.select(saved, key), OmegaConf.select(now, key)
        before = OmegaConf.to_container(before) if OmegaConf.is_config(before) else before
        after = OmegaConf.to_container(after) if OmegaConf.is_config(after) else after
        if before != after:
            changed.append(f"{key} was {before!r}, now {after!r}")
    if changed and not config.force_resume:
        raise RunError(
            f"resume={run_dir}: {changed[0]}{' (and more)' if len(changed) > 1 else ''}; "
            "a resumed run keeps what its rows mean: drop the override, or add "
            "force_resume=true to continue anyway (recorded as a task_changed event)"
        )
    return changed


def changed_task(config: RunConfig, run_dir: Path, task: TaskSpec) -> list[str]:
    """How the task folder differs from the one the run started with (its content
    hashes); refused unless ``force_resume``; returns the changes accepted."""
    record = run_dir / TASK_RECORD
    if not record.is_file():
        return []  # a run from before task records: nothing to compare with
    recorded = json.loads(record.read_text())
    changed = changes(recorded, fingerprint(task))
    if changed and not config.force_resume:
        raise RunError(
            f"resume={run_dir}: the task folder {task.root} is not the one this run "
            f"started with ({'; '.join(changed[:5])}); restore it, or add "
            "force_resume=true to continue with it anyway (recorded as a task_changed event)"
        )
    return changed
