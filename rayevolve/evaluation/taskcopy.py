"""`TaskCopy`: the task folder candidates run against, proven unchanged before each one.

A candidate runs next to the task's evaluator and data, and may rewrite them (to judge
itself, or every later candidate, kindly). Copying the folder afresh for every candidate
costs a tree copy and a tree removal each time (most of an evaluator actor's CPU on a
cheap task). Instead an evaluator, which runs one candidate at a time, keeps one copy
written from the task's files held in memory (the bundle: never a folder on disk that a
candidate could reach and change) and, before each candidate, compares the copy with
what it wrote: bytes, modes and the list of entries. Any difference (a file rewritten,
added, removed, made unreadable or replaced by a link, a ``__pycache__`` planted for the
next import to trust) and the copy is written again. The check runs once the previous
candidate's whole process group is dead, so nothing it started can change the copy
between the check and the next candidate's start. The fork server preloads the
evaluator from this copy too, right after such a check.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

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
        self.root = Path(tempfile.mkdtemp(prefix="rayevolve-task-"))
        self.path = self.root / "task"
        self.rebuilds = 0
        self._build()
        self._expected = _tree(self.path)

    @classmethod
    def of_folder(cls, folder: str | Path) -> TaskCopy:
        return cls(bundle_folder(Path(folder)))

    def _build(self) -> None:
        if self.path.exists() or self.path.is_symlink():
            _remove(self.path)
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
        _remove(self.root)


def _remove(path: Path) -> None:
    """Remove a tree a candidate may have made hard to remove (read-only folders)."""

    def make_writable(function, failed, _exc):
        os.chmod(os.path.dirname(failed), 0o700)
        if os.path.isdir(failed) and not os.path.islink(failed):
            os.chmod(failed, 0o700)
        function(failed)

    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        handler = "onexc" if sys.version_info >= (3, 12) else "onerror"
        shutil.rmtree(path, **{handler: make_writable})
