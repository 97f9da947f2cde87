"""`TaskCopy`: the task folder candidates run against, proven unchanged before each one.

A candidate runs next to the task's evaluator and data, and may rewrite them (to judge
itself, or every later candidate, kindly). The sandbox therefore never lets a candidate
see the evaluator's own folder. Copying the folder afresh for every candidate costs a
tree copy and a tree removal each time (most of an evaluator actor's CPU on a cheap
task); instead an evaluator, which runs one candidate at a time, keeps one copy and,
before each candidate, compares it with the original's bytes, modes and file list, kept
in memory. Any difference (a file rewritten, added, removed, made unreadable or
replaced by a link, a ``__pycache__`` planted for the next import to trust) and the copy
is rebuilt. The check runs after the previous
candidate's whole process group is dead, so nothing it started can change the copy
between the check and the next candidate's start.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path

IGNORED = shutil.ignore_patterns("__pycache__")


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
    """A private copy of `source`, rebuilt whenever a candidate changed it."""

    def __init__(self, source: str | Path):
        self.source = Path(source)
        self.root = Path(tempfile.mkdtemp(prefix="rayevolve-task-"))
        self.path = self.root / "task"
        self.rebuilds = 0
        self._build()
        self._expected = _tree(self.path)

    def _build(self) -> None:
        if self.path.exists() or self.path.is_symlink():
            _remove(self.path)
        shutil.copytree(self.source, self.path, ignore=IGNORED)
        self.rebuilds += 1

    def ensure_pristine(self) -> bool:
        """Make the copy equal to the original again if it differs; True if it did."""
        try:
            if _tree(self.path) == self._expected:
                return False
        except OSError:  # a folder made unreadable, the copy removed: rebuild it
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
