"""Run candidate code in a process of its own and get back only numbers or plain data.

In OpenEvolve's convention the evaluator imports the candidate, so both share one
process and a candidate could patch the evaluator's checks or its score (such rows are
marked ``in_process``). Evaluators that use `call_isolated` run everything that touches
the candidate (loading it included) in a forked child and receive plain numeric arrays,
written with ``numpy.savez`` and read with ``allow_pickle=False``; `call_isolated_data`
receives JSON (strings, numbers, lists, dicts). Nothing the candidate sends can execute
in the evaluator, which then validates and scores in its own process, which the
candidate never touched, and sends the verdict over a channel the child does not hold.

The child starts a process group of its own; when it ends, the group is killed, and in
a sandbox with private PIDs every process it left behind is killed too, before the
evaluator reads what it returned. `read_candidate_source` gives an evaluator the
candidate's text without that counting as running it in the judging process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rayevolve.outcome import Outcome
from rayevolve.sandbox.child import JUDGE_MODULE, classify_exception

MAX_DATA_BYTES = 16 << 20  # what call_isolated_data accepts from a child


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


def read_candidate_source(program_path: str | Path) -> str:
    """The candidate's source text, for evaluators that inspect it in the judging process
    (and run it only through `call_isolated`): reading it this way does not mark the
    evaluation ``in_process``. Never execute what it returns in this process."""
    judge = sys.modules.get(JUDGE_MODULE)
    if judge is not None:
        return judge.read_program(str(program_path))
    return Path(program_path).read_text(encoding="utf-8")


def parse_candidate(text: str, filename: str = "<unknown>"):
    """`ast.parse` of candidate text by a judge that checks it (parsing compiles to a
    syntax tree, which the judging process's audit would otherwise take for running it).
    Raises SyntaxError as ast.parse does."""
    import ast

    judge = sys.modules.get(JUDGE_MODULE)
    if judge is None:
        return ast.parse(text, filename)
    with judge.reading_candidate():
        return ast.parse(text, filename)


def _write_arrays(result: object, out: Path) -> None:
    parts = result if isinstance(result, tuple | list) else (result,)
    arrays = [np.asarray(part) for part in parts]
    for i, array in enumerate(arrays):
        if array.dtype.kind not in "biuf":
            raise TypeError(f"returned element {i} has dtype {array.dtype}; expected numbers")
    with open(out, "wb") as handle:  # a path would get ".npz" appended
        np.savez(handle, *arrays)


def _numpy_as_data(value: object) -> object:
    """NumPy's scalars and arrays as the plain numbers and lists they hold."""
    if isinstance(value, np.generic | np.ndarray) and value.dtype.kind in "biuf":
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _write_json(result: object, out: Path) -> None:
    try:
        text = json.dumps(result, allow_nan=True, default=_numpy_as_data)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"returned {type(result).__name__} that is not plain data ({exc}); expected numbers"
        ) from None
    out.write_text(text)


def _child(function: Callable[[], object], out: Path, write: Callable) -> None:
    try:
        os.setpgid(0, 0)  # its own group: whatever it starts goes with it
        write(function(), out)
        code = 0
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, never raised here
        try:
            kind = (
                Outcome.INCORRECT
                if isinstance(exc, TypeError) and "expected numbers" in str(exc)
                else classify_exception(exc)
            )
            out.with_suffix(".err").write_text(kind + "\n" + traceback.format_exc()[-4000:])
        finally:
            code = 1
    os._exit(code)


def _run(function: Callable[[], object], timeout_s: float, write: Callable, read: Callable):
    with tempfile.TemporaryDirectory(prefix="rayevolve-isolated-") as tmp:
        out = Path(tmp) / "result.out"
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(function, out, write)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                if time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    raise CandidateFailed(
                        Outcome.TIMEOUT, f"the candidate did not finish within {timeout_s:g} s"
                    )
                time.sleep(0.002)
        finally:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            judge = sys.modules.get(JUDGE_MODULE)
            if judge is not None:
                judge.kill_stragglers()
        if os.WIFSIGNALED(status):
            raise CandidateFailed(
                Outcome.CRASHED,
                f"the candidate died from {signal.Signals(os.WTERMSIG(status)).name}",
            )
        if os.WEXITSTATUS(status) != 0 or not out.exists():
            err = out.with_suffix(".err")
            if err.exists():
                kind, _, detail = err.read_text(errors="replace")[:8000].partition("\n")
                raise CandidateFailed(kind, detail)
            raise CandidateFailed(
                Outcome.CRASHED,
                f"the candidate exited with status {os.WEXITSTATUS(status)} without a result",
            )
        return read(out)


def _read_arrays(out: Path) -> list[np.ndarray]:
    try:
        with open(out, "rb") as handle, np.load(handle, allow_pickle=False) as data:
            return [data[f"arr_{i}"] for i in range(len(data.files))]
    except (ValueError, OSError, KeyError) as exc:
        raise CandidateFailed(
            Outcome.INCORRECT, f"the candidate's result is unreadable: {exc}"
        ) from None


def _read_json(out: Path) -> object:
    if out.stat().st_size > MAX_DATA_BYTES:
        raise CandidateFailed(
            Outcome.INCORRECT, f"the candidate returned over {MAX_DATA_BYTES} bytes"
        )
    try:
        return json.loads(out.read_text())
    except ValueError as exc:
        raise CandidateFailed(
            Outcome.INCORRECT, f"the candidate's result is unreadable: {exc}"
        ) from None


def call_isolated(function: Callable[[], object], timeout_s: float = 600) -> list[np.ndarray]:
    """`function()` in a forked child; what it returns, as a list of numeric arrays."""
    return _run(function, timeout_s, _write_arrays, _read_arrays)


def call_isolated_data(function: Callable[[], object], timeout_s: float = 600) -> object:
    """`function()` in a forked child; what it returns, as plain JSON data (strings,
    numbers, lists, dicts): the caller validates its shape and types."""
    return _run(function, timeout_s, _write_json, _read_json)
