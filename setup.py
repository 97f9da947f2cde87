"""The wheel carries rayevolve's configs and built-in task folders as package data.

`conf/` and every task folder a ``conf/task/*.yaml`` names (its ``path:``) are copied into
``rayevolve/_data/`` at the same relative paths (`rayevolve.paths` finds them there),
so ``pip install rayevolve`` on a node, with no checkout, has the configs, the prompt
templates and the built-in tasks. An editable install reads the checkout instead.
"""

import re
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
SKIPPED = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")


def packaged_folders() -> list[str]:
    """``conf`` and the task folders its task configs name (one source: the configs)."""
    paths = []
    for config in sorted((HERE / "conf" / "task").glob("*.yaml")):
        match = re.search(r"^path:\s*(\S+)\s*$", config.read_text(), re.MULTILINE)
        if match and not Path(match.group(1)).is_absolute():
            paths.append(match.group(1))
    return ["conf", *paths]


class BuildWithData(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout's folders
        target = Path(self.build_lib) / "rayevolve" / "_data"
        for rel in packaged_folders():
            if (HERE / rel).is_dir():
                shutil.copytree(HERE / rel, target / rel, ignore=SKIPPED, dirs_exist_ok=True)


if __name__ == "__main__":  # how setuptools runs it; tests import packaged_folders
    setup(cmdclass={"build_py": BuildWithData})
