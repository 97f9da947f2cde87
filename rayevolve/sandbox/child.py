"""The judging process: ``python .../child.py SPEC_JSON`` (spawn) or `main` in a child
forked by the fork server.

It runs in its own session, with stdin closed, in a private working directory (under the
node's isolation level, in namespaces that show it nothing else). Before anything of the
task or the candidate runs, it:

* makes itself non-dumpable, so no other process of the same user can read its memory,
  its descriptors or its environment through ``/proc`` or ptrace;
* sets the candidate's resource limits;
* guards the verdict channel (`verdict.py`): the descriptor is closed in every child it
  forks (before the child runs anything) and on exec;
* installs an audit hook that reports, on the channel and at once, if this process
  opens or executes the candidate's program (an in-process evaluator: its verdict could
  be the candidate's own, and the row says so).

Then it imports the task's evaluator, runs the cascade and sends the verdict. The
parent classifies anything that ends without one (signal, timeout, exit). Only the
standard library is imported before the limits are in place.
"""

from __future__ import annotations

import asyncio
import ctypes
import importlib.util
import inspect
import json
import math
import os
import resource
import sys
import traceback
from numbers import Real
from typing import Any

if __package__:
    from rayevolve.sandbox import verdict as channel
else:  # run by path (spawn), or imported as a sibling by the fork server
    import verdict as channel

# Stand-ins for what OpenEvolve evaluators import (``openevolve.evaluation_result``),
# searched after everything else: an installed ``openevolve`` package wins.
SHIMS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shims")
if SHIMS not in sys.path:
    sys.path.append(SHIMS)

MAX_TRACEBACK_CHARS = 8000
JUDGE_MODULE = "rayevolve_judge"  # this module, as evaluators find it (`read_program`)
PR_SET_DUMPABLE = 4

_state: dict[str, Any] = {
    "fd": None,
    "judge": None,
    "program": None,
    "reading": False,
    "private_pids": False,
    "fingerprints": (),
}
FINGERPRINT_CHARS = 24  # block lines at least this long identify the candidate's code
MAX_FINGERPRINTS = 200
# names under which candidate material is compiled (the candidate process's, and the
# test device's): a code object of one of them executing in the judge is candidate code
CANDIDATE_FILENAMES = ("<evolve-block>", "<stand-in kernel>", "<kernels-")


def _set_limits(spec: dict[str, Any]) -> list[str]:
    """Apply the limits; return those the platform refused (macOS refuses RLIMIT_AS)."""
    wanted = [(resource.RLIMIT_CORE, 0, "core")]
    if spec.get("file_limit_bytes"):
        wanted.append((resource.RLIMIT_FSIZE, int(spec["file_limit_bytes"]), "file size"))
    if spec.get("memory_limit_mb"):
        wanted.append((resource.RLIMIT_AS, int(spec["memory_limit_mb"]) * 1024 * 1024, "memory"))
    refused = []
    for which, limit, name in wanted:
        try:
            resource.setrlimit(which, (limit, limit))
        except (ValueError, OSError) as exc:
            refused.append(f"{name} limit not applied on this platform: {exc}")
    return refused


def make_undumpable() -> bool:
    """No ptrace, no /proc/PID/{mem,fd,environ} for other processes of this user (Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _close_channel_in_child() -> None:
    fd = _state["fd"]
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass
    _state["fd"] = None


def _send(**payload: object) -> None:
    fd = _state["fd"]
    if fd is None or os.getpid() != _state["judge"]:
        return
    data = channel.message(**payload)
    while data:
        data = data[os.write(fd, data) :]


def _is_program(path: object) -> bool:
    """Whether `path` (as an audit event gives it) names the candidate's program or its
    compiled cache."""
    if isinstance(path, int) or path is None:
        return False
    try:
        text = os.fsdecode(os.fspath(path))
    except TypeError:
        return False
    program = _state["program"]
    name = os.path.basename(text)
    stem = os.path.splitext(os.path.basename(program))[0]
    if name != os.path.basename(program) and not (
        name.startswith(stem + ".") and name.endswith(".pyc")
    ):
        return False
    if name.endswith(".pyc"):
        text = os.path.join(os.path.dirname(os.path.dirname(text)), os.path.basename(program))
    return os.path.realpath(text) == os.path.realpath(program)


def _fingerprints(text: str) -> tuple[str, ...]:
    """Distinctive lines of the program's EVOLVE-BLOCKs (the candidate's own code)."""
    inside, lines = False, []
    for line in text.splitlines():
        if "EVOLVE-BLOCK-START" in line:
            inside = True
        elif "EVOLVE-BLOCK-END" in line:
            inside = False
        elif inside and len(line.strip()) >= FINGERPRINT_CHARS:
            lines.append(line.strip())
    return tuple(dict.fromkeys(lines))[:MAX_FINGERPRINTS]


def _holds_candidate_code(source: object) -> bool:
    """Whether source text given to compile() (or the syntax tree given to it) holds the
    candidate's block lines: at least three of them, or all, if it has fewer."""
    prints = _state["fingerprints"]
    if not prints:
        return False
    if not isinstance(source, str | bytes):
        import ast

        if not isinstance(source, ast.AST):
            return False
        try:
            with reading_candidate():  # unparsing is the judge's own reading
                source = ast.unparse(source)
        except Exception:  # noqa: BLE001 - a tree ast cannot print
            return False
    if isinstance(source, bytes):
        source = source.decode("utf-8", "replace")
    # an unparsed tree has its own spacing: compare without whitespace
    squeezed = "".join(source.split())
    found = sum(1 for line in prints if "".join(line.split()) in squeezed)
    return found >= min(3, len(prints))


def _audit(event: str, args: tuple) -> None:
    if _state["reading"] or os.getpid() != _state["judge"] or _state["program"] is None:
        return
    reason = None
    if event == "open":
        path = args[0]
    elif event == "exec":
        path = getattr(args[0], "co_filename", None)
        if isinstance(path, str) and path.startswith(CANDIDATE_FILENAMES):
            reason = f"the judging process executed candidate code compiled as {path}"
    elif event == "compile":
        path = args[1] if len(args) > 1 else None
        if _holds_candidate_code(args[0] if args else None):
            reason = "the judging process compiled the candidate's code"
    else:
        return
    if reason is None and _is_program(path):
        reason = f"the judging process ran {event} on the candidate's program"
    if reason is not None:
        _state["program"] = None  # said once; what runs next may be the candidate
        _send(taint=reason)


def guard(fd: int, program: str) -> None:
    """Protect the verdict channel `fd` and watch for the candidate's program."""
    _state.update(fd=fd, judge=os.getpid(), program=os.path.realpath(program))
    os.set_inheritable(fd, False)
    os.register_at_fork(after_in_child=_close_channel_in_child)
    sys.addaudithook(_audit)
    sys.modules[JUDGE_MODULE] = sys.modules[__name__]


def _ppid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def running(pid: int) -> bool:
    """A live process, as opposed to gone or a zombie awaiting its reaper."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _init_is_the_sandbox() -> bool:
    """Whether PID 1 here is the sandbox's own init (the fork server, or this judge when
    spawned), i.e. this process lives in a PID namespace that holds nothing else."""
    try:
        with open("/proc/1/cmdline", "rb") as handle:
            argv = handle.read().split(b"\0")
    except OSError:
        return False
    here = os.path.dirname(os.path.abspath(__file__)).encode()
    return len(argv) > 1 and argv[1] in (here + b"/zygote.py", here + b"/child.py")


def kill_stragglers() -> int:
    """In a PID namespace of the sandbox's own: kill every process but this judge and
    its ancestors (what candidate code started and left, `setsid` or not), until none is
    left; return how many were killed. Elsewhere (isolation ``none``) it does nothing:
    the host's processes are not ours to kill."""
    if not _state["private_pids"] or os.getpid() != _state["judge"]:
        return 0
    keep, pid = {1, os.getpid()}, os.getpid()
    while pid > 1:
        pid = _ppid(pid)
        keep.add(pid)
    killed = 0
    for _ in range(50):
        others = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in keep]
        others = [p for p in others if running(p)]
        if not others:
            break
        for other in others:
            try:
                os.kill(other, 9)
                killed += 1
            except OSError:
                pass
    return killed


def read_program(path: str) -> str:
    """The candidate's source as text, read by the judge without counting as running it
    (for evaluators that inspect the source and run it only in isolated children)."""
    _state["reading"] = True
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        _state["fingerprints"] = _fingerprints(text)
        return text
    finally:
        _state["reading"] = False


class reading_candidate:  # noqa: N801 - a context manager, named for what it marks
    """The judge reading the candidate's text (parsing it to check it, say): not
    running it, so not a reason to mark the row ``in_process``."""

    def __enter__(self):
        self.before = _state["reading"]
        _state["reading"] = True

    def __exit__(self, *exc):
        _state["reading"] = self.before


def _load_evaluator(path: str):
    spec = importlib.util.spec_from_file_location("rayevolve_task_evaluator", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load evaluator from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _stages(module, cascade: bool = True) -> list[tuple[str, Any]]:
    """The functions to call in order: ``evaluate_stage1/2/3`` where the module defines
    them and `cascade` is on (OpenEvolve's ``cascade_evaluation``), else ``evaluate``."""
    staged = [
        (name, getattr(module, name))
        for name in ("evaluate_stage1", "evaluate_stage2", "evaluate_stage3")
        if callable(getattr(module, name, None))
    ]
    if staged and (cascade or not callable(getattr(module, "evaluate", None))):
        return staged
    return [("evaluate", module.evaluate)]


def _as_mapping(returned: Any) -> dict | None:
    """A stage's return value as one dict of metrics (plus an ``artifacts`` dict): a dict
    as it is, or OpenEvolve's ``EvaluationResult`` (``.metrics`` and ``.artifacts``)
    unpacked; None for anything else."""
    if isinstance(returned, dict):
        return returned
    metrics = getattr(returned, "metrics", None)
    if not isinstance(metrics, dict):
        return None
    artifacts = getattr(returned, "artifacts", None)
    return {**metrics, "artifacts": dict(artifacts) if isinstance(artifacts, dict) else {}}


def _split(returned: dict) -> tuple[dict[str, float], dict[str, str]]:
    metrics, artifacts = {}, {}
    for key, value in returned.items():
        if key in ("status", "artifacts"):
            continue
        if key != "error" and isinstance(value, Real):
            metrics[str(key)] = float(value)
        else:
            artifacts[str(key)] = channel.as_text(value)
    extra = returned.get("artifacts")
    if isinstance(extra, dict):
        artifacts.update(channel.cap_artifacts(extra))
    return metrics, artifacts


def fallback_score(returned: dict, features: list[str]) -> float | None:
    """OpenEvolve's score when ``combined_score`` is absent: the mean of the numeric
    metrics (flags such as ``timeout: True`` and NaNs left out) that are not MAP-Elites
    features, or of all numeric metrics when only features are numeric; None if none."""
    values = {
        key: float(value)
        for key, value in returned.items()
        if key not in ("status", "artifacts", "error")
        and isinstance(value, Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    }
    chosen = [v for k, v in values.items() if k not in features] or list(values.values())
    return sum(chosen) / len(chosen) if chosen else None


def classify_exception(exc: BaseException) -> str:
    """The evaluation status an exception raised by candidate code maps to."""
    if isinstance(exc, SyntaxError):
        return "compile_error"
    if isinstance(exc, MemoryError):
        return "memory_limit"
    return "runtime_error"


def _check_stage(
    name: str,
    returned: dict | None,
    features: list[str],
    merged: dict,
    raw: Any = None,
    score_metric: str | None = None,
) -> tuple[str, str | None, float | None]:
    """(status, error, score) of one stage's return value (`_as_mapping`'s); status "ok"
    lets the cascade go on. The score is ``combined_score``, else `fallback_score` over
    `merged`: what every stage so far returned, later stages' values winning (OpenEvolve
    merges a cascade's metrics before it scores them); with `score_metric`, that metric."""
    if returned is None:
        return (
            "rejected",
            f"{name} returned {type(raw).__name__} {channel.as_text(repr(str(raw)) if isinstance(raw, str) else raw, 120)}, neither a dict "
            "nor an EvaluationResult: return a dict of metrics with 'combined_score' (the score)",
            None,
        )
    status = returned.get("status")
    if status not in (None, "ok"):
        return str(status), f"{name} reported status {channel.as_text(status, 100)}", None
    if returned.get("error") not in (None, False, ""):
        return "runtime_error", None, None  # the evaluator's own "error" artifact says why
    if score_metric:
        score = merged.get(score_metric)
        if isinstance(score, bool) or not isinstance(score, Real) or not math.isfinite(score):
            keys = ", ".join(sorted(str(k) for k in merged)) or "nothing"
            return (
                "rejected",
                f"{name} returned no finite number {score_metric!r} (task.score_metric); "
                f"it returned {keys}",
                None,
            )
        return "ok", None, float(score)
    if "combined_score" not in returned:
        score = fallback_score(merged, features)
        if score is None:
            return "rejected", f"{name} returned no 'combined_score' and no numeric metric", None
        return "ok", None, score
    score = returned["combined_score"]
    if isinstance(score, bool) or not isinstance(score, Real):
        return "rejected", f"{name} returned a non-numeric 'combined_score' ({score!r:.200})", None
    if not math.isfinite(float(score)):
        return "rejected", f"{name} returned a non-finite combined_score ({score!r})", None
    return "ok", None, float(score)


def _call_stage(function, program: str):
    returned = function(program)
    if inspect.isawaitable(returned):  # `async def evaluate`
        returned = asyncio.run(_awaited(returned))
    return returned


async def _awaited(awaitable):
    return await awaitable


def evaluate(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the cascade and return the verdict as a JSON-able dict."""
    metrics: dict[str, float] = {}
    artifacts: dict[str, str] = {}
    reported: list[list[str]] = []  # each finished stage's metric names
    merged: dict[str, Any] = {}  # every stage's returned values, as returned

    def verdict(status: str, stage: int, score: float | None = None) -> dict[str, Any]:
        if status != "ok" and not artifacts.get("error"):
            artifacts["error"] = f"the evaluation ended with status {status} and gave no message"
        return {
            "status": status,
            "score": score,
            "stage": stage,
            "metrics": metrics,
            "stage_metrics": reported,
            "artifacts": channel.cap_artifacts(artifacts),
        }

    try:
        module = _load_evaluator(spec["evaluator"])
    except BaseException as exc:  # noqa: BLE001 - any failure is reported, not raised
        artifacts["error"] = f"evaluator.py failed to import: {channel.as_text(exc, 4000)}"
        artifacts["traceback"] = traceback.format_exc()[-MAX_TRACEBACK_CHARS:]
        return verdict("runtime_error", 0)
    thresholds = list(spec.get("cascade_thresholds") or [])
    features = list(spec.get("features") or [])
    stages = _stages(module, spec.get("cascade", True))
    score = 0.0
    for index, (name, function) in enumerate(stages, start=1):
        try:
            raw = _call_stage(function, spec["program"])
            returned = _as_mapping(raw)
        except BaseException as exc:  # noqa: BLE001
            if isinstance(exc, SystemExit):
                artifacts["error"] = (
                    f"{name} ended with SystemExit({channel.as_text(exc.code, 200)}): "
                    "the candidate may not exit the evaluator"
                )
            else:
                artifacts["error"] = f"{name} raised {type(exc).__name__}: {channel.as_text(exc)}"
            artifacts["traceback"] = traceback.format_exc()[-MAX_TRACEBACK_CHARS:]
            return verdict(classify_exception(exc), index - 1)
        if returned is not None:
            stage_metrics, stage_artifacts = _split(returned)
            metrics.update(stage_metrics)
            artifacts.update(stage_artifacts)
            reported.append(sorted(stage_metrics))
            merged.update(returned)
        status, error, stage_score = _check_stage(
            name, returned, features, merged, raw, spec.get("score_metric")
        )
        if status != "ok":
            if error:
                artifacts.setdefault("error", error)
            return verdict(status, index - 1)
        score = stage_score
        if index <= len(thresholds) and index < len(stages) and score < thresholds[index - 1]:
            artifacts["cascade"] = (
                f"stopped after {name}: score {score:g} < threshold {thresholds[index - 1]:g}"
            )
            return verdict("ok", index, score)
    return verdict("ok", len(stages), score)


def main(spec: dict[str, Any], fd: int) -> int:
    """Judge one candidate; the verdict goes to the channel `fd`."""
    make_undumpable()
    refused = _set_limits(spec)
    guard(fd, spec["program"])
    _state["private_pids"] = bool(spec.get("private_pids")) and _init_is_the_sandbox()
    sys.path.insert(0, spec["task_dir"])
    try:
        verdict = evaluate(spec)
    except MemoryError:
        verdict = {
            "status": "memory_limit",
            "stage": 0,
            "artifacts": {"error": "out of memory while evaluating"},
        }
    if refused:
        verdict.setdefault("artifacts", {})["sandbox"] = "; ".join(refused)
    _send(verdict=verdict)
    return 0


if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    sys.exit(main(spec, int(spec["verdict_fd"])))
