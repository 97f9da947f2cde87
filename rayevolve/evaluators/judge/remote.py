"""The judge's handle on its candidate process (`worker.py`): start it fresh, ask it for
data, stop it with everything it started.

The process is started by exec of the same interpreter (`subprocess`, never a fork of
the judge: it inherits none of the judge's memory, so no seed, input, reference or
baseline the judge holds or will hold), in a session of its own, with only its two
pipes open (the verdict channel and every other descriptor are closed), an environment
of the task's settings and nothing else, in a fresh working folder. Every request has a
deadline; a process that misses it, dies, or answers with something that is not data of
the agreed shape is killed, and the request fails as `CandidateFailed` with the status
it maps to (``timeout``, ``crashed``, ``runtime_error``, ...). Between requests the
process group is stopped (SIGSTOP, SIGCONT before the next): nothing it runs can share
the CPUs with the judge's work or its timing of the vendor.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import rayevolve
from rayevolve.evaluators.candidate_call import CandidateFailed
from rayevolve.evaluators.judge import wire
from rayevolve.outcome import Outcome
from rayevolve.sandbox.child import JUDGE_MODULE

PACKAGE_ROOT = str(Path(rayevolve.__file__).resolve().parent.parent)
STDERR_TAIL = 4000
# the environment the candidate process gets: the task's settings pass (the sandbox gave
# the judge nothing else); these are dropped, as the judge's own business
PRIVATE_ENV = ("TRITON_CACHE_DIR",)
KINDS = {kind.value: kind for kind in Outcome}


class CandidateProcess:
    """One fresh candidate process; a context manager that always kills it at exit."""

    def __init__(self, env: dict[str, str] | None = None, start_timeout_s: float = 60.0):
        self.folder = tempfile.TemporaryDirectory(prefix="rayevolve-candidate-")
        self.stderr = open(Path(self.folder.name) / "stderr", "w+b")  # noqa: SIM115
        environment = {k: v for k, v in os.environ.items() if k not in PRIVATE_ENV}
        environment.update(env or {})
        path = environment.get("PYTHONPATH")
        environment["PYTHONPATH"] = PACKAGE_ROOT + (os.pathsep + path if path else "")
        environment["HOME"] = environment["TMPDIR"] = self.folder.name
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rayevolve.evaluators.judge.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            cwd=self.folder.name,
            env=environment,
            close_fds=True,
            start_new_session=True,
        )
        self.start_timeout_s = start_timeout_s
        self.requests = 0

    def __enter__(self) -> CandidateProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _stderr_tail(self) -> str:
        try:
            self.stderr.flush()
            self.stderr.seek(0, os.SEEK_END)
            size = self.stderr.tell()
            self.stderr.seek(max(0, size - STDERR_TAIL))
            return self.stderr.read().decode(errors="replace").strip()
        except (OSError, ValueError):
            return ""

    def request(
        self, op: str, timeout_s: float, arrays: list[np.ndarray] = (), **header
    ) -> tuple[dict, list[np.ndarray]]:
        """Send one request; its answer (header, arrays), or `CandidateFailed`."""
        if self.process.poll() is not None:
            raise self._died()
        self._signal(signal.SIGCONT)
        # the first request also waits for the interpreter and its imports to start
        budget = timeout_s + (self.start_timeout_s if self.requests == 0 else 0.0)
        self.requests += 1
        try:
            wire.write(self.process.stdin.fileno(), {"op": op, **header}, list(arrays))
            answer, out = wire.read(self.process.stdout.fileno(), time.monotonic() + budget)
        except wire.WireTimeout:
            self.close()
            raise CandidateFailed(
                Outcome.TIMEOUT, f"the candidate process did not answer {op} within {timeout_s:g} s"
            ) from None
        except (wire.WireError, OSError) as exc:
            try:
                self.process.wait(timeout=2.0)
                failure = self._died()
            except subprocess.TimeoutExpired:
                failure = CandidateFailed(
                    Outcome.CRASHED, f"the candidate process broke off: {exc}"
                )
            self.close()
            raise failure from None
        self._stop()  # nothing of it runs while the judge works or times
        if "error" in answer:
            kind = KINDS.get(str(answer.get("error")), Outcome.RUNTIME_ERROR)
            raise CandidateFailed(kind, str(answer.get("message", ""))[:8000])
        return answer, out

    def _signal(self, which: signal.Signals) -> None:
        """`which` to the process's whole group (it is its session's leader)."""
        try:
            os.killpg(self.process.pid, which)
        except (ProcessLookupError, PermissionError):
            pass

    def _stop(self) -> None:
        """Stop the process group, and return only once the process has stopped (a
        signal is delivered asynchronously; the judge's next step may be a timing)."""
        self._signal(signal.SIGSTOP)
        try:  # WNOWAIT: the process stays waitable for Popen
            os.waitid(os.P_PID, self.process.pid, os.WSTOPPED | os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            pass

    def _died(self) -> CandidateFailed:
        code = self.process.wait()
        tail = self._stderr_tail()
        if code < 0:
            name = signal.Signals(-code).name
            kind = (
                Outcome.MEMORY_LIMIT
                if name == "SIGKILL" and "MemoryError" in tail
                else Outcome.CRASHED
            )
            return CandidateFailed(kind, f"the candidate process died from {name}\n{tail}")
        return CandidateFailed(Outcome.CRASHED, f"the candidate process exited with {code}\n{tail}")

    def close(self) -> None:
        """Kill the process and its session (whatever it started, setsid or not, goes
        with the sandbox's PID namespace when the judge next sweeps it)."""
        if self.process.returncode is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        judge = sys.modules.get(JUDGE_MODULE)
        if judge is not None:
            judge.kill_stragglers()
        self.stderr.close()
        self.folder.cleanup()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None


def dtype_name(array) -> str:
    """'float16' for an MLX or torch array of that dtype."""
    return str(array.dtype).rsplit(".", 1)[-1]


class RemoteKernel:
    """A candidate kernel that runs in the candidate process (the stand-in language,
    Triton's interpreter): the judge sends each call's inputs (their values, as float32
    arrays), gets the output back as an array, and puts it on its own device to check.
    The judge's own arrays never leave the judge; its clock times the round trip.

    `header_for(shape)` gives what one call of that shape needs besides the inputs
    (the validated plan or constants)."""

    remote = True

    def __init__(self, process: CandidateProcess, backend, header_for, timeout_s: float):
        self.process, self.backend = process, backend
        self.header_for, self.timeout_s = header_for, timeout_s

    def __call__(self, q, k, v, shape):
        dtype = dtype_name(q)
        arrays = [self.backend.to_numpy(x).astype(np.float32) for x in (q, k, v)]
        answer, out = self.process.request(
            "run",
            self.timeout_s,
            arrays,
            dtype=dtype,
            scale=shape.scale,
            causal=shape.causal,
            **self.header_for(shape),
        )
        changed = answer.get("changed") or []
        if changed:
            raise CandidateFailed(
                Outcome.INCORRECT, f"input {changed[0]} was modified by the kernel"
            )
        if len(out) != 1:
            raise CandidateFailed(Outcome.INCORRECT, "the kernel returned no output array")
        return self.backend.to_device(np.array(out[0], dtype=np.float32), dtype)
