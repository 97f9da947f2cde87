"""Where rayevolve's own files are: the Hydra configs (``conf/``, prompt templates
included) and the built-in task folders that ``conf/task/*.yaml`` name.

In a checkout (an editable install too) they are the checkout's own folders. A wheel
carries copies under ``rayevolve/_data/`` (``setup.py`` puts them there), laid out as in
the checkout, so one relative path (``experiments/circle_packing``) names a task folder
in both.
"""

from __future__ import annotations

from pathlib import Path

PACKAGED = Path(__file__).resolve().parent / "_data"  # a wheel's copies
CHECKOUT = Path(__file__).resolve().parent.parent


def data_root() -> Path:
    """The folder that holds ``conf/`` and the built-in task folders."""
    return PACKAGED if (PACKAGED / "conf").is_dir() else CHECKOUT


DATA_ROOT = data_root()
CONF_DIR = DATA_ROOT / "conf"
PROMPTS_DIR = CONF_DIR / "prompts"
