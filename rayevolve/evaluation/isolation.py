"""Run candidate code in a process of its own and get back only numbers.

In OpenEvolve's convention the evaluator imports the candidate, so both share one
process and a candidate could patch the evaluator's checks or its score. Evaluators
that use `call_isolated` run everything that touches the candidate (loading it
included) in a forked child and receive plain numeric arrays, written with
``numpy.savez`` and read with ``allow_pickle=False``: nothing the candidate sends can
execute in the evaluator. The evaluator then validates and scores in its own process,
which the candidate never touched.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rayevolve.evaluation.child import classify_exception


class CandidateFailed(Exception):
    """The candidate raised, crashed, timed out or returned something other than numbers.

    `kind` is the evaluation status it maps to (compile_error, runtime_error, timeout,
    memory_limit, crashed, incorrect)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def load_module(program_path: str | Path, name: str = "candidate"):
    spec = importlib.util.spec_from_file_location(name, program_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _child(function: Callable[[], object], out: Path) -> None:
    try:
        result = function()
        parts = result if isinstance(result, tuple | list) else (result,)
        arrays = [np.asarray(part) for part in parts]
        for i, array in enumerate(arrays):
            if array.dtype.kind not in "biuf":
                raise TypeError(f"returned element {i} has dtype {array.dtype}; expected numbers")
        np.savez(out, *arrays)
        code = 0
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, never raised here
        try:
            kind = (
                "incorrect"
                if isinstance(exc, TypeError) and "expected numbers" in str(exc)
                else classify_exception(exc)
            )
            out.with_suffix(".err").write_text(kind + "\n" + traceback.format_exc()[-4000:])
        finally:
            code = 1
    os._exit(code)


def call_isolated(function: Callable[[], object], timeout_s: float = 600) -> list[np.ndarray]:
    """`function()` in a forked child; what it returns, as a list of numeric arrays."""
    with tempfile.TemporaryDirectory(prefix="rayevolve-isolated-") as tmp:
        out = Path(tmp) / "result.npz"
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(function, out)
        deadline = time.monotonic() + timeout_s
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise CandidateFailed(
                    "timeout", f"the candidate did not finish within {timeout_s:g} s"
                )
            time.sleep(0.002)
        if os.WIFSIGNALED(status):
            raise CandidateFailed(
                "crashed", f"the candidate died from {signal.Signals(os.WTERMSIG(status)).name}"
            )
        if os.WEXITSTATUS(status) != 0 or not out.exists():
            err = out.with_suffix(".err")
            if err.exists():
                kind, _, detail = err.read_text().partition("\n")
                raise CandidateFailed(kind, detail)
            raise CandidateFailed(
                "crashed",
                f"the candidate exited with status {os.WEXITSTATUS(status)} without a result",
            )
        with np.load(out, allow_pickle=False) as data:
            return [data[f"arr_{i}"] for i in range(len(data.files))]
