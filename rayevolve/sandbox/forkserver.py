"""Launchers: how the sandbox starts a candidate's judging process.

`spawn` starts a fresh interpreter per candidate (``python child.py SPEC``), confined
alone: nothing is shared, and it costs an interpreter start plus the evaluator's
imports every time. `ForkServer` keeps one warm process per evaluator (`zygote.py`),
confined once, with those imports done, and forks a fresh judge per candidate: the same
sandbox for a few milliseconds. Forking is unsafe after some system frameworks have
started (Apple's Objective-C runtime and Metal among them), so `auto` means the fork
server on Linux and `spawn` elsewhere.

Both return a `LaunchOutcome` once the judge and everything it started are gone: how
it ended, and what it wrote on its verdict pipe (the only channel believed).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rayevolve.result import Isolation
from rayevolve.sandbox.confinement import Confinement
from rayevolve.sandbox.verdict import PipeReader
from rayevolve.sandbox.view import SCRATCH_DIRS, View

ZYGOTE_SCRIPT = Path(__file__).with_name("zygote.py")
CHILD_SCRIPT = Path(__file__).with_name("child.py")  # stdlib only: runs without the package
SANDBOX_MODES = ("auto", "forkserver", "spawn")
# a reply later than the candidate's own time limit by this much means the server is stuck
REPLY_GRACE_S = 15.0
NO_CONFINEMENT = Confinement(Isolation.NONE, requested="none", note="asked for by name")
NO_VIEW = View()  # what a process under NO_CONFINEMENT is shown: everything, so no list


class ForkServerError(RuntimeError):
    """The fork server died or stopped answering. Before a candidate was handed to it:
    an infrastructure failure (retried); while one ran: that candidate's doing."""

    def __init__(self, message: str, during_candidate: bool = False):
        super().__init__(message)
        self.during_candidate = during_candidate


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
    """One candidate's judge: its spec (what to evaluate), directory, output files,
    environment and time limit."""

    spec: dict
    cwd: Path
    stdout: Path
    stderr: Path
    env: dict[str, str]
    timeout_s: float


@dataclass(frozen=True)
class LaunchOutcome:
    """How a judge ended. `returncode` is negative for a signal, as in `subprocess`;
    `channel` is what it wrote on its verdict pipe (cut at `MAX_CHANNEL_BYTES`)."""

    returncode: int
    timed_out: bool
    channel: bytes = b""
    truncated: bool = False


def spawn(
    launch: ChildLaunch,
    python: str | None = None,
    confinement: Confinement = NO_CONFINEMENT,
    view: View = NO_VIEW,
) -> LaunchOutcome:
    """A fresh (confined) interpreter for this candidate alone."""
    read_end, write_end = os.pipe()
    spec = {**launch.spec, "verdict_fd": write_end}
    argv = confinement.wrap(
        [python or sys.executable, str(CHILD_SCRIPT), json.dumps(spec)], view, str(launch.cwd)
    )
    reader = PipeReader(read_end)
    try:
        with open(launch.stdout, "wb") as out, open(launch.stderr, "wb") as err:
            proc = subprocess.Popen(
                argv,
                cwd=launch.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=launch.env,
                start_new_session=True,
                close_fds=True,
                pass_fds=(write_end,),
            )
        os.close(write_end)
        write_end = -1
        deadline = time.monotonic() + launch.timeout_s
        timed_out = False
        while proc.poll() is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            watched = [] if reader.closed else [read_end]
            if select.select(watched, [], [], min(remaining, 0.01 if reader.closed else 0.05))[0]:
                reader.drain()
        kill_group(proc.pid)
        proc.wait()
        reader.drain()
        returncode = proc.returncode
        if confinement.private_pids and returncode > 128:
            returncode = 128 - returncode  # bwrap exits 128 + N when its command died from N
        return LaunchOutcome(returncode, timed_out, bytes(reader.data), reader.truncated)
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)


class ForkServer:
    """Parent side of `zygote.py`: start it (confined), send it candidates, restart it if
    it dies.

    One per evaluator, which evaluates one candidate at a time, so requests never
    interleave. `preload_error` holds the evaluator's import error, if any (the
    candidate's judge reports it as its verdict too). Under a confinement with private
    PIDs the server runs in one sandbox for all of the evaluator's candidates and clears
    it between them (see `zygote.py`); `view` must then show `work_root`, where each
    candidate's directory is made."""

    def __init__(
        self,
        env: dict[str, str],
        *,
        python: str | None = None,
        evaluator: Path | None = None,
        task_dir: Path | None = None,
        start_timeout_s: float = 120.0,
        confinement: Confinement = NO_CONFINEMENT,
        view: View = NO_VIEW,
        work_root: Path | None = None,
    ):
        self.env = env
        self.python = python or sys.executable
        self.confinement = confinement
        self.view = view
        self.work_root = Path(work_root) if work_root else ZYGOTE_SCRIPT.parent
        keep = sorted({*view.writable, *(p for p in view.read_only if p.startswith("/tmp/"))})
        self.config = {
            "evaluator": str(Path(evaluator).resolve()) if evaluator else None,
            "task_dir": str(Path(task_dir).resolve()) if task_dir else None,
            "private_pids": confinement.private_pids,
            "scratch": list(SCRATCH_DIRS),
            "keep": keep,
        }
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen | None = None
        self.preload_error: str | None = None
        self.private_pids = False
        self.starts = 0
        self._buffer = b""
        self._stderr = None  # the server's own output (an evaluator printing at import)

    def start(self) -> None:
        self.close()
        self._buffer = b""
        self._stderr = tempfile.TemporaryFile()
        argv = self.confinement.wrap(
            [self.python, str(ZYGOTE_SCRIPT), json.dumps(self.config)],
            self.view,
            str(self.work_root),
        )
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=self.env,
            cwd=str(self.work_root),
            start_new_session=True,  # a signal to the actor's group does not reach it
            close_fds=True,
        )
        self.starts += 1
        try:
            ready = self._receive(self.start_timeout_s, "start")
        except ForkServerError as exc:
            raise ForkServerError(f"{exc}{self._output_tail()}") from None
        self.preload_error = ready.get("preload_error")
        self.private_pids = bool(ready.get("private_pids"))
        if self.confinement.private_pids and not self.private_pids:
            self.close()
            raise ForkServerError("the fork server did not start in a PID namespace of its own")

    def _output_tail(self) -> str:
        """The end of what a server that failed to start printed."""
        if self._stderr is None:
            return ""
        self._stderr.seek(0, os.SEEK_END)
        self._stderr.seek(max(0, self._stderr.tell() - 2000))
        text = self._stderr.read().decode(errors="replace").strip()
        return f"; it printed: {text}" if text else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def run(self, launch: ChildLaunch) -> LaunchOutcome:
        if not self.alive():
            self.start()
        request = {
            "spec": launch.spec,
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
        pid = self._receive(REPLY_GRACE_S, "fork").get("pid")
        if not isinstance(pid, int):
            self.close()
            raise ForkServerError(f"the fork server answered a fork with {pid!r}")
        try:
            done = self._receive(launch.timeout_s + REPLY_GRACE_S, "wait")
            if not isinstance(done.get("returncode"), int):
                self.close()  # someone else wrote on its pipe (possible under isolation none)
                raise ForkServerError(f"the fork server's reply is malformed: {str(done)[:200]}")
        except ForkServerError as exc:
            if not self.confinement.private_pids:
                kill_group(pid)  # a PID of the host: the server's own sandbox died with it
            raise ForkServerError(str(exc), during_candidate=True) from None
        return LaunchOutcome(
            done["returncode"],
            bool(done.get("timed_out")),
            str(done.get("channel", "")).encode(),
            bool(done.get("truncated")),
        )

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
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                code = self.proc.poll()
                if code is None:
                    try:
                        code = self.proc.wait(timeout=2)
                    except subprocess.TimeoutExpired:
                        pass
                self.close()
                raise ForkServerError(f"the fork server died ({stage}; exit status {code})")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            reply = json.loads(line)
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            self.close()
            raise ForkServerError(f"the fork server's reply ({stage}) is not a JSON object")
        return reply

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
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass
