"""How a run's configuration is composed from ``conf/`` and what the user gave, the one
way the command line (`rayevolve.cli`) and the Python API (`rayevolve.api`) share: a
task named by ``task.path`` starts from neutral task defaults and is named after its
folder, its OpenEvolve config file applies under the user's settings, and a resumed run
keeps its saved configuration."""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig

from rayevolve.config import ConfigError, schema
from rayevolve.openevolve_config import OpenEvolveConfigError, find, read
from rayevolve.paths import DATA_ROOT
from rayevolve.tasks import resolve_task_path

__all__ = ["ConfigError", "OpenEvolveConfigError"]


def search_roots() -> list[Path]:
    """Where relative task and template paths are looked for: here, then rayevolve's own
    files (the checkout, or the wheel's copies)."""
    return [Path.cwd(), DATA_ROOT]


def override_keys(overrides: list[str]) -> list[str]:
    """The keys (and config groups) the command line set, Hydra's own left out."""
    keys = [o.lstrip("+~").partition("=")[0] for o in overrides]
    return [k for k in keys if k and not k.startswith("hydra.")]


def _given(key: str, keys: list[str]) -> bool:
    """Whether the command line set `key`, a key above it or one below it."""
    return any(k == key or key.startswith(k + ".") or k.startswith(key + ".") for k in keys)


def with_task_folder(cfg: DictConfig, keys: list[str]) -> DictConfig:
    """A task folder named by ``task.path`` (without ``task=NAME``) starts from neutral
    task defaults, not the default task's, and is named after the folder; its OpenEvolve
    config file (``task.openevolve_config``) is applied under the command line's
    overrides and said once on stderr."""
    from omegaconf import OmegaConf

    by_path = "task.path" in keys and "task" not in keys
    if by_path:
        task = schema().task
        for field in {k.split(".")[1] for k in keys if k.startswith("task.")}:
            task[field] = cfg.task[field]
        cfg.task = task
    if OmegaConf.is_missing(cfg.task, "path"):
        return cfg
    folder = resolve_task_path(cfg.task.path, search_roots())
    if by_path and OmegaConf.is_missing(cfg.task, "name"):
        cfg.task.name = folder.name
    if not (by_path or cfg.task.openevolve_config):
        return cfg
    path = find(folder, cfg.task.openevolve_config)
    if path is None:
        return cfg
    mapped = read(path, str(cfg.mutation.backend))
    overridden = {key for key in mapped.settings if _given(key, keys)}
    nested = OmegaConf.from_dotlist([])
    for key, value in mapped.settings.items():
        if key not in overridden:
            OmegaConf.update(nested, key, value, force_add=True)
    try:
        cfg = OmegaConf.merge(cfg, nested)
    except Exception as exc:  # OmegaConf's validation: the folder's value is refused
        raise OpenEvolveConfigError(f"{path}: {str(exc).splitlines()[0]}") from None
    for line in mapped.describe(overridden):
        print(f"rayevolve: {line}", file=sys.stderr)
    return cfg


def resumed_config(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """The resumed run's saved configuration, with the overrides given now on top."""
    from omegaconf import OmegaConf

    saved = Path(cfg.resume) / "config.yaml"
    if not saved.is_file():
        raise ConfigError(
            f"resume={cfg.resume}: no config.yaml there; is it a rayevolve run directory?"
        )
    merged = OmegaConf.merge(schema(), OmegaConf.load(saved))
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        if key in ("resume", "run_dir") or key.startswith("hydra."):
            continue
        if "." not in key and OmegaConf.is_dict(merged.get(key)):  # a group: task=NAME
            raise ConfigError(
                f"resume={cfg.resume} {key}={value}: a resumed run keeps its {key} settings "
                f"(its config.yaml); start a new run for another {key}, or override single "
                f"keys ({key}.KEY=VALUE)"
            )
        OmegaConf.update(merged, key, OmegaConf.from_dotlist([f"v={value}"]).v, force_add=True)
    merged.resume = str(Path(cfg.resume))
    return merged
