"""``python -m rayevolve [overrides]``: a run configured by Hydra from ``conf/``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from rayevolve.config import ConfigError, register_configs, to_run_config

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = PROJECT_ROOT / "conf"

log = logging.getLogger("rayevolve")


def _run(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from rayevolve.controller import RunError, run
    from rayevolve.tasks import TaskError

    try:
        run_config = to_run_config(cfg)
    except ConfigError as exc:
        print(f"rayevolve: invalid configuration: {exc}", file=sys.stderr)
        sys.exit(2)
    run_dir = Path(run_config.run_dir or HydraConfig.get().runtime.output_dir)
    try:
        summary = run(run_config, run_dir, search_roots=[Path.cwd(), PROJECT_ROOT])
    except (RunError, TaskError, ConnectionError) as exc:
        print(f"rayevolve: {exc}", file=sys.stderr)
        sys.exit(1)
    print(summary.render())
    if summary.stopped_because.startswith("interrupted"):
        sys.exit(130)


def main() -> None:
    register_configs()
    hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")(_run)()


if __name__ == "__main__":
    main()
