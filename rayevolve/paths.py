"""Where rayevolve's own files are: the Hydra configs (``conf/``, prompt templates
included) and the built-in task folders that ``conf/task/*.yaml`` name; and where a new
run's folder goes.

In a checkout (an editable install too) they are the checkout's own folders. A wheel
carries copies under ``rayevolve/_data/`` (``setup.py`` puts them there), laid out as in
the checkout, so one relative path (``experiments/circle_packing``) names a task folder
in both.
"""

from __future__ import annotations

import time
from pathlib import Path

PACKAGED = Path(__file__).resolve().parent / "_data"  # a wheel's copies
CHECKOUT = Path(__file__).resolve().parent.parent


def data_root() -> Path:
    """The folder that holds ``conf/`` and the built-in task folders."""
    return PACKAGED if (PACKAGED / "conf").is_dir() else CHECKOUT


DATA_ROOT = data_root()
CONF_DIR = DATA_ROOT / "conf"
PROMPTS_DIR = CONF_DIR / "prompts"
RUNS_DIR = "runs"  # where a new run goes without run_dir=, from the command line or Python
TIME_FORMAT = "%Y-%m-%d_%H-%M-%S"


def default_run_dir(task_name: str) -> Path:
    """``runs/<date>_<time>_<task>``, relative to the working directory: a new run's
    folder (the command line's ``hydra.run.dir`` names this function, through the
    ``rayevolve_run_dir`` resolver)."""
    return Path(RUNS_DIR) / f"{time.strftime(TIME_FORMAT)}_{task_name}"
