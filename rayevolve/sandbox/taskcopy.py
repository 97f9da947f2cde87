"""`TaskCopy`: the task folder candidates run against, proven unchanged before each one.

A candidate runs next to the task's evaluator and data, and may rewrite them (to judge
itself, or every later candidate, kindly). Copying the folder afresh for every candidate
costs a tree copy and a tree removal each time (most of an evaluator actor's CPU on a
cheap task). Instead an evaluator, which runs one candidate at a time, keeps one copy
written from the task's files held in memory (the bundle: never a folder on disk that a
candidate could reach and change). Under the ``namespaces`` and ``seatbelt`` isolation
levels candidates see it read-only; under every level, before each candidate, it
compares the copy with
what it wrote: bytes, modes and the list of entries. Any difference (a file rewritten,
added, removed, made unreadable or replaced by a link, a ``__pycache__`` planted for the
next import to trust) and the copy is written again. The check runs once the previous
candidate's whole process group is dead, so nothing it started can change the copy
between the check and the next candidate's start. The fork server preloads the
evaluator from this copy too, right after such a check.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from rayevolve.sandbox.scratch import OwnedDir, remove_tree
from rayevolve.tasks import bundle_folder, write_bundle


def _tree(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every entry under `root` (links not followed): relative path -> (mode, content of
    a regular file, else None)."""
    entries: dict[str, tuple[int, bytes | None]] = {}
    pending = [root]
    while pending:
        folder = pending.pop()
        with os.scandir(folder) as listing:
            for entry in listing:
                info = entry.stat(follow_symlinks=False)
                relative = os.path.relpath(entry.path, root)
                if stat.S_ISREG(info.st_mode):
                    with open(entry.path, "rb") as handle:
                        entries[relative] = (info.st_mode, handle.read())
                else:
                    entries[relative] = (info.st_mode, None)
                    if stat.S_ISDIR(info.st_mode):
                        pending.append(Path(entry.path))
    return entries


class TaskCopy:
    """A private copy of a task's files, written again whenever a candidate changed it."""

    def __init__(self, files: Mapping[str, bytes]):
        self.files = dict(files)
        self._owned = OwnedDir("task")  # removed by close(), or by a sweep if we die
        self.root = self._owned.path
        self.path = self.root / "task"
        self.rebuilds = 0
        self._build()
        self._expected = _tree(self.path)

    @classmethod
    def of_folder(cls, folder: str | Path) -> TaskCopy:
        return cls(bundle_folder(Path(folder)))

    def _build(self) -> None:
        if self.path.exists() or self.path.is_symlink():
            remove_tree(self.path)
        self.path.mkdir()
        write_bundle(self.files, self.path)
        self.rebuilds += 1

    def ensure_pristine(self) -> bool:
        """Make the copy equal to the task's files again if it differs; True if it did."""
        try:
            if _tree(self.path) == self._expected:
                return False
        except OSError:  # a folder made unreadable, the copy removed: write it again
            pass
        self._build()
        return True

    def close(self) -> None:
        self._owned.close()
