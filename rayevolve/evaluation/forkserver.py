"""Launchers: how the sandbox starts a candidate's child process.

`spawn` starts a fresh interpreter per candidate (``python child.py SPEC``): nothing is
shared, and it costs an interpreter start plus the evaluator's imports every time.
`ForkServer` keeps one warm process per evaluator (`zygote.py`) with those imports done,
and forks a fresh child per candidate: the same sandbox for a few milliseconds. Forking
is unsafe after some system frameworks have started (Apple's Objective-C runtime and
Metal among them), so `auto` means the fork server on Linux and `spawn` elsewhere.

Both return ``(returncode, timed_out)`` once the child's process group is gone;
`returncode` is negative for a signal, as in `subprocess`.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ZYGOTE_SCRIPT = Path(__file__).with_name("zygote.py")
CHILD_SCRIPT = Path(__file__).with_name("child.py")  # stdlib only: runs without the package
SANDBOX_MODES = ("auto", "forkserver", "spawn")
# a reply later than the candidate's own time limit by this much means the server is stuck
REPLY_GRACE_S = 15.0


class ForkServerError(RuntimeError):
    """The fork server died or stopped answering: an infrastructure failure (retried),
    never the candidate's verdict."""


def resolve_mode(mode: str) -> str:
    """``forkserver`` or ``spawn`` for a configured ``auto``/``forkserver``/``spawn``."""
    if mode not in SANDBOX_MODES:
        raise ValueError(f"sandbox mode must be one of {SANDBOX_MODES}, got {mode!r}")
    if mode == "auto":
        return "forkserver" if sys.platform.startswith("linux") else "spawn"
    return mode


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@dataclass(frozen=True)
class ChildLaunch:
    """One candidate's child: its spec file, directory, output files, environment."""

    spec: Path
    cwd: Path
    stdout: Path
    stderr: Path
    env: dict[str, str]
    timeout_s: float


def spawn(launch: ChildLaunch, python: str | None = None) -> tuple[int, bool]:
    """A fresh interpreter for this candidate alone."""
    with open(launch.stdout, "wb") as out, open(launch.stderr, "wb") as err:
        proc = subprocess.Popen(
            [python or sys.executable, str(CHILD_SCRIPT), str(launch.spec)],
            cwd=launch.cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=launch.env,
            start_new_session=True,
            close_fds=True,
        )
        timed_out = False
        try:
            proc.wait(timeout=launch.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
        kill_group(proc.pid)
        proc.wait()
    return proc.returncode, timed_out


class ForkServer:
    """Parent side of `zygote.py`: start it, send it candidates, restart it if it dies.

    One per evaluator actor, which evaluates one candidate at a time, so requests never
    interleave. `preload_error` holds the evaluator's import error, if any (the
    candidate's child reports it as its verdict too)."""

    def __init__(
        self,
        env: dict[str, str],
        *,
        python: str | None = None,
        evaluator: Path | None = None,
        task_dir: Path | None = None,
        start_timeout_s: float = 120.0,
    ):
        self.env = env
        self.python = python or sys.executable
        self.config = {
            "evaluator": str(Path(evaluator).resolve()) if evaluator else None,
            "task_dir": str(Path(task_dir).resolve()) if task_dir else None,
        }
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen | None = None
        self.preload_error: str | None = None
        self.starts = 0
        self._buffer = b""

    def start(self) -> None:
        self.close()
        self._buffer = b""
        self.proc = subprocess.Popen(
            [self.python, str(ZYGOTE_SCRIPT), json.dumps(self.config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=self.env,
            cwd=str(ZYGOTE_SCRIPT.parent),
            start_new_session=True,  # a signal to the actor's group does not reach it
            close_fds=True,
        )
        self.starts += 1
        ready = self._receive(self.start_timeout_s, "start")
        self.preload_error = ready.get("preload_error")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def run(self, launch: ChildLaunch) -> tuple[int, bool]:
        if not self.alive():
            self.start()
        request = {
            "spec": str(launch.spec),
            "cwd": str(launch.cwd),
            "stdout": str(launch.stdout),
            "stderr": str(launch.stderr),
            "env": launch.env,
            "timeout_s": launch.timeout_s,
        }
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
        except OSError as exc:
            self.close()
            raise ForkServerError(f"the fork server is gone: {exc}") from exc
        pid = self._receive(REPLY_GRACE_S, "fork")["pid"]
        try:
            done = self._receive(launch.timeout_s + REPLY_GRACE_S, "wait")
        except ForkServerError:
            kill_group(pid)
            raise
        return int(done["returncode"]), bool(done["timed_out"])

    def _receive(self, timeout_s: float, stage: str) -> dict:
        deadline = time.monotonic() + timeout_s
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                self.close()
                raise ForkServerError(
                    f"the fork server did not answer ({stage}) in {timeout_s:g} s"
                )
            chunk = os.read(fd, 65536)
            if not chunk:
                code = self.proc.poll()
                self.close()
                raise ForkServerError(f"the fork server died ({stage}; exit status {code})")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)

    def close(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        try:
            proc.stdin.close()  # end of input: the server exits by itself
        except OSError:
            pass
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            kill_group(proc.pid)
            proc.wait()
        proc.stdout.close()

    def __del__(self):
        self.close()
