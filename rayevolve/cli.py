"""``python -m rayevolve [overrides]``: a run configured by Hydra from ``conf/``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from rayevolve.config import ConfigError, register_configs, schema, to_run_config
from rayevolve.openevolve_config import OpenEvolveConfigError, find, read
from rayevolve.resources import CONF_DIR, DATA_ROOT
from rayevolve.tasks import TaskError, resolve_task_path

log = logging.getLogger("rayevolve")


def _run(cfg: DictConfig) -> float | None:
    """One run; returns its best score (what a sweeper such as Optuna optimises)."""
    from hydra.core.hydra_config import HydraConfig

    from rayevolve.controller import RunError, run
    from rayevolve.stopping import Stop

    overrides = list(HydraConfig.get().overrides.task)
    try:
        if cfg.get("resume"):
            cfg = _resumed_config(cfg, overrides)
        else:
            cfg = _with_task_folder(cfg, _override_keys(overrides))
        run_config = to_run_config(cfg)
    except (ConfigError, OpenEvolveConfigError, TaskError) as exc:
        print(f"rayevolve: invalid configuration: {exc}", file=sys.stderr)
        sys.exit(2)
    run_dir = Path(run_config.resume or run_config.run_dir or HydraConfig.get().runtime.output_dir)
    try:
        summary = run(run_config, run_dir, search_roots=_search_roots())
    except (RunError, TaskError, ConnectionError) as exc:
        print(f"rayevolve: {exc}", file=sys.stderr)
        sys.exit(1)
    print(summary.render())
    if summary.stop == Stop.INTERRUPTED:
        sys.exit(130)
    stopped_by_a_fault = summary.stop in (Stop.FAULT, Stop.ISLANDS)
    if summary.log_error or (summary.island_errors and stopped_by_a_fault):
        sys.exit(1)
    return summary.best_score


def _search_roots() -> list[Path]:
    """Where relative task and template paths are looked for: here, then rayevolve's own
    files (the checkout, or the wheel's copies)."""
    return [Path.cwd(), DATA_ROOT]


def _override_keys(overrides: list[str]) -> list[str]:
    """The keys (and config groups) the command line set, Hydra's own left out."""
    keys = [o.lstrip("+~").partition("=")[0] for o in overrides]
    return [k for k in keys if k and not k.startswith("hydra.")]


def _given(key: str, keys: list[str]) -> bool:
    """Whether the command line set `key`, a key above it or one below it."""
    return any(k == key or key.startswith(k + ".") or k.startswith(key + ".") for k in keys)


def _with_task_folder(cfg: DictConfig, keys: list[str]) -> DictConfig:
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
    folder = resolve_task_path(cfg.task.path, _search_roots())
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


def _resumed_config(cfg: DictConfig, overrides: list[str]) -> DictConfig:
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


def main() -> None:
    register_configs()
    hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")(_run)()


if __name__ == "__main__":
    main()
