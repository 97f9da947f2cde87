"""Temporary folders that belong to a live process, and the sweep of those whose owner died.

An evaluator keeps folders in the node's temp dir (the task copy candidates see, the work
area). An actor killed by Ray (``ray.kill`` is a SIGKILL) runs no clean-up, so each
folder ``rayevolve-KIND-XXXX`` has a sibling lock file ``rayevolve-KIND-XXXX.lock`` that
its owner holds (``flock``) for as long as it lives. The kernel drops the lock with the
process, whatever killed it: the next evaluator to start on the node takes every lock it
can get, which is exactly the dead owners', and removes their folders. The lock file sits
beside the folder, not inside it, so a candidate that sees the folder cannot remove it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
import sys
import tempfile
import time
from pathlib import Path

PREFIX = "rayevolve-"
KINDS = ("task", "eval", "isolated")
LEGACY_AGE_S = 3600.0
FRESH_S = 10.0  # a lock file younger than this is never taken (creating and locking are two steps)  # folders of older versions (no lock file) older than this go too


class OwnedDir:
    """A fresh temp folder, locked by this process until `close()` (or its death)."""

    def __init__(self, kind: str, root: str | Path | None = None):
        self.path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{kind}-", dir=root))
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._fd = os.open(self.lock_path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(self._fd, f"{os.getpid()}\n".encode())

    def close(self) -> None:
        if self._fd is None:
            return
        remove_tree(self.path)
        try:
            self.lock_path.unlink()
        except FileNotFoundError:
            pass
        os.close(self._fd)
        self._fd = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass


def sweep(root: str | Path | None = None) -> list[Path]:
    """Remove folders whose owner is dead; return them."""
    root = Path(root or tempfile.gettempdir())
    removed = []
    for lock in root.glob(f"{PREFIX}*.lock"):
        folder = lock.with_name(lock.name[: -len(".lock")])
        try:
            if time.time() - lock.stat().st_mtime < FRESH_S:
                continue  # its owner may be between creating and locking it
            fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: its owner is alive
            os.close(fd)
            continue
        try:
            remove_tree(folder)
            lock.unlink(missing_ok=True)
            removed.append(folder)
        finally:
            os.close(fd)
    cutoff = time.time() - LEGACY_AGE_S
    for kind in KINDS:
        for folder in root.glob(f"{PREFIX}{kind}-*"):
            lock = folder.with_name(folder.name + ".lock")
            try:
                info = folder.lstat()
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode) and not lock.exists() and info.st_mtime < cutoff:
                remove_tree(folder)
                removed.append(folder)
    return removed


def remove_tree(path: Path) -> None:
    """Remove a tree a candidate may have made hard to remove (read-only folders)."""

    def make_writable(function, failed, _exc):
        try:
            os.chmod(os.path.dirname(failed), 0o700)
            if os.path.isdir(failed) and not os.path.islink(failed):
                os.chmod(failed, 0o700)
            function(failed)
        except OSError:
            pass

    path = Path(path)
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        handler = "onexc" if sys.version_info >= (3, 12) else "onerror"
        shutil.rmtree(path, **{handler: make_writable})


def empty_dir(path: Path) -> None:
    """Remove everything inside `path`, keeping the folder itself."""
    with os.scandir(path) as entries:
        for entry in entries:
            remove_tree(Path(entry.path))
