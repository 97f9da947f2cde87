"""One writer per run directory, enforced by an advisory file lock.

Two processes appending to the same log would interleave two histories of the same
islands. That happens in practice: when a driver is killed, Ray's worker processes (the
log actor among them) live on for a few seconds until they notice, still writing. A
resume started in that window would count the log before their last rows land and then
evaluate past its budget. The log actor therefore holds an exclusive ``flock`` on
``<run_dir>/.writer.lock`` for its lifetime; the kernel releases it when the process
dies, however it dies, so a stale lock file never blocks anyone.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; Ray's Windows support is itself experimental
    fcntl = None

LOCK_NAME = ".writer.lock"


class RunDirBusy(RuntimeError):
    """Another live process holds the run directory's writer lock."""


class RunDirLock:
    """An exclusive, process-lifetime lock on a run directory."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; True when this object holds it."""
        if self._fd is not None:
            return True
        if fcntl is None:  # no flock on this platform: a single writer is the user's care
            self._fd = -1
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{socket.gethostname()} pid {os.getpid()}\n".encode())
        self._fd = fd
        return True

    @staticmethod
    def held_elsewhere(run_dir: str | Path) -> bool:
        """Whether a live process holds `run_dir`'s writer lock (its run is going on),
        asked without taking the lock or writing anything."""
        path = Path(run_dir) / LOCK_NAME
        if fcntl is None or not path.is_file():
            return False
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing drops a lock this took
        return False

    def holder(self) -> str:
        """Who wrote the lock file last (host and pid), for error messages."""
        try:
            return self.path.read_text().strip() or "unknown"
        except OSError:
            return "unknown"

    def busy_error(self, waited_s: float) -> RunDirBusy:
        return RunDirBusy(
            f"another process is still writing the run log in {self.path.parent} "
            f"({self.holder()}; waited {waited_s:.0f} s). If that run is still going, stop "
            "it first (Ctrl-C) or resume into a copy; if its driver was just killed, its "
            "Ray workers exit within seconds: resume again then"
        )

    def release(self) -> None:
        if self._fd is None:
            return
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
        self._fd = None
