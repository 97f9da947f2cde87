"""``python -m rayevolve [overrides]``: a run configured by Hydra from ``conf/``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from rayevolve.config import ConfigError, register_configs, schema, to_run_config

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = PROJECT_ROOT / "conf"

log = logging.getLogger("rayevolve")


def _run(cfg: DictConfig) -> float | None:
    """One run; returns its best score (what a sweeper such as Optuna optimises)."""
    from hydra.core.hydra_config import HydraConfig

    from rayevolve.controller import RunError, run
    from rayevolve.tasks import TaskError

    try:
        if cfg.get("resume"):
            cfg = _resumed_config(cfg, HydraConfig.get().overrides.task)
        run_config = to_run_config(cfg)
    except ConfigError as exc:
        print(f"rayevolve: invalid configuration: {exc}", file=sys.stderr)
        sys.exit(2)
    run_dir = Path(run_config.resume or run_config.run_dir or HydraConfig.get().runtime.output_dir)
    try:
        summary = run(run_config, run_dir, search_roots=[Path.cwd(), PROJECT_ROOT])
    except (RunError, TaskError, ConnectionError) as exc:
        print(f"rayevolve: {exc}", file=sys.stderr)
        sys.exit(1)
    print(summary.render())
    if summary.stopped_because.startswith("interrupted"):
        sys.exit(130)
    stopped_by_a_fault = summary.stopped_because.startswith(("stopped", "islands"))
    if summary.log_error or (summary.island_errors and stopped_by_a_fault):
        sys.exit(1)
    return summary.best_score


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
        OmegaConf.update(merged, key, OmegaConf.from_dotlist([f"v={value}"]).v, force_add=True)
    merged.resume = str(Path(cfg.resume))
    return merged


def main() -> None:
    register_configs()
    hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")(_run)()


if __name__ == "__main__":
    main()
