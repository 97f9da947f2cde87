"""``python -m rayevolve [overrides]``: a run configured by Hydra from ``conf/``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from rayevolve.compose import override_keys, resumed_config, search_roots, with_task_folder
from rayevolve.config import ConfigError, register_configs, to_run_config
from rayevolve.openevolve_config import OpenEvolveConfigError
from rayevolve.paths import CONF_DIR
from rayevolve.tasks import TaskError

log = logging.getLogger("rayevolve")


def _run(cfg: DictConfig) -> float | None:
    """One run; returns its best score (what a sweeper such as Optuna optimises)."""
    from hydra.core.hydra_config import HydraConfig

    from rayevolve.run.controller import RunError, run
    from rayevolve.run.stopping import Stop

    overrides = list(HydraConfig.get().overrides.task)
    try:
        if cfg.get("resume"):
            cfg = resumed_config(cfg, overrides)
        else:
            cfg = with_task_folder(cfg, override_keys(overrides))
        run_config = to_run_config(cfg)
    except (ConfigError, OpenEvolveConfigError, TaskError) as exc:
        print(f"rayevolve: invalid configuration: {exc}", file=sys.stderr)
        sys.exit(2)
    run_dir = Path(run_config.resume or run_config.run_dir or HydraConfig.get().runtime.output_dir)
    try:
        summary = run(run_config, run_dir, search_roots=search_roots())
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


# arguments that are Hydra's own business (help, printing the config, sweeps): no check
HYDRA_FLAGS = (
    "-h",
    "--help",
    "--hydra-help",
    "-c",
    "--cfg",
    "-i",
    "--info",
    "-m",
    "--multirun",
    "--shell-completion",
    "-sc",
    "-p",
    "--package",
    "--resolve",
    "--version",
    "--config-path",
    "-cp",
    "--config-name",
    "-cn",
    "--config-dir",
    "-cd",
    "--experimental-rerun",
)


def _checked_first(args: list[str]) -> list[str]:
    """A plain run is composed and validated before Hydra starts, so that a refused
    command writes nothing (Hydra makes its output folder, its log and ``.hydra/`` before
    the run's function is called) and every configuration error exits 2 with its key;
    then Hydra is told the run's folder (named for the task actually run). Returns the
    arguments to hand Hydra."""
    if any(a.split("=", 1)[0] in HYDRA_FLAGS for a in args):
        return args
    from rayevolve.compose import compose_run

    try:
        _, run_dir = compose_run(args, quiet=True)
    except (ConfigError, OpenEvolveConfigError, TaskError) as exc:
        print(f"rayevolve: invalid configuration: {exc}", file=sys.stderr)
        sys.exit(2)
    if any(a.startswith("hydra.run.dir=") for a in args):
        return args  # the user's own folder for Hydra's output
    quoted = str(run_dir).replace("\\", "\\\\").replace("'", "\\'")
    return [*args, f"hydra.run.dir='{quoted}'"]


def main() -> None:
    register_configs()
    sys.argv[1:] = _checked_first(sys.argv[1:])
    hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")(_run)()


if __name__ == "__main__":
    main()
