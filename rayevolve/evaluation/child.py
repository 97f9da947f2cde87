"""Entry point of the sandboxed evaluation child: ``python .../child.py SPEC``.

Runs in its own session (process group), with stdin closed, in a private working
directory. It sets its own resource limits first, imports the task's evaluator, runs
the cascade, and writes a JSON verdict to the result path named in the spec. The
parent classifies anything that ends without a verdict (signal, timeout, exit).
Only the standard library is imported before the limits are in place.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import resource
import sys
import traceback
from numbers import Real
from typing import Any

MAX_TRACEBACK_CHARS = 8000


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


def _load_evaluator(path: str):
    spec = importlib.util.spec_from_file_location("rayevolve_task_evaluator", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load evaluator from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _stages(module) -> list[tuple[str, Any]]:
    staged = [
        (name, getattr(module, name))
        for name in ("evaluate_stage1", "evaluate_stage2", "evaluate_stage3")
        if callable(getattr(module, name, None))
    ]
    if staged:
        return staged
    return [("evaluate", module.evaluate)]


def _split(returned: dict) -> tuple[dict[str, float], dict[str, str]]:
    metrics, artifacts = {}, {}
    for key, value in returned.items():
        if key in ("status", "artifacts"):
            continue
        if isinstance(value, bool):
            metrics[key] = float(value)
        elif isinstance(value, Real):
            metrics[key] = float(value)
        else:
            artifacts[key] = value if isinstance(value, str) else repr(value)
    extra = returned.get("artifacts")
    if isinstance(extra, dict):
        artifacts.update({str(k): v if isinstance(v, str) else repr(v) for k, v in extra.items()})
    return metrics, artifacts


def classify_exception(exc: BaseException) -> str:
    """The evaluation status an exception raised by candidate code maps to."""
    if isinstance(exc, SyntaxError):
        return "compile_error"
    if isinstance(exc, MemoryError):
        return "memory_limit"
    return "runtime_error"


def _check_stage(name: str, returned: Any) -> tuple[str, str | None]:
    """(status, error) of one stage's return value; status "ok" lets the cascade go on."""
    if not isinstance(returned, dict):
        kind = type(returned).__name__
        return "rejected", f"{name} returned {kind}, expected a dict with 'combined_score'"
    status = returned.get("status")
    if status not in (None, "ok"):
        return str(status), f"{name} reported status {status!r}"
    if returned.get("error"):
        return "runtime_error", None  # the evaluator's own "error" artifact says why
    score = returned.get("combined_score")
    if isinstance(score, bool) or not isinstance(score, Real):
        return "rejected", f"{name} returned no numeric 'combined_score' (got {score!r})"
    if not math.isfinite(float(score)):
        return "rejected", f"{name} returned a non-finite combined_score ({score!r})"
    return "ok", None


def evaluate(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the cascade and return the verdict as a JSON-able dict."""
    metrics: dict[str, float] = {}
    artifacts: dict[str, str] = {}

    def verdict(status: str, stage: int, score: float | None = None) -> dict[str, Any]:
        return {
            "status": status,
            "score": score,
            "stage": stage,
            "metrics": metrics,
            "artifacts": artifacts,
        }

    try:
        module = _load_evaluator(spec["evaluator"])
    except BaseException as exc:  # noqa: BLE001 - any failure is reported, not raised
        artifacts["error"] = f"evaluator.py failed to import: {exc!r}"
        artifacts["traceback"] = traceback.format_exc()[-MAX_TRACEBACK_CHARS:]
        return verdict("runtime_error", 0)
    thresholds = list(spec.get("cascade_thresholds") or [])
    stages = _stages(module)
    score = 0.0
    for index, (name, function) in enumerate(stages, start=1):
        try:
            returned = function(spec["program"])
        except BaseException as exc:  # noqa: BLE001
            if isinstance(exc, SystemExit):
                artifacts["error"] = (
                    f"{name} ended with SystemExit({exc.code!r}): the candidate may not exit the evaluator"
                )
            else:
                artifacts["error"] = f"{name} raised {type(exc).__name__}: {exc}"
            artifacts["traceback"] = traceback.format_exc()[-MAX_TRACEBACK_CHARS:]
            return verdict(classify_exception(exc), index - 1)
        if isinstance(returned, dict):
            stage_metrics, stage_artifacts = _split(returned)
            metrics.update(stage_metrics)
            artifacts.update(stage_artifacts)
        status, error = _check_stage(name, returned)
        if status != "ok":
            if error:
                artifacts.setdefault("error", error)
            return verdict(status, index - 1)
        score = float(returned["combined_score"])
        if index <= len(thresholds) and index < len(stages) and score < thresholds[index - 1]:
            artifacts["cascade"] = (
                f"stopped after {name}: combined_score {score:g} < threshold {thresholds[index - 1]:g}"
            )
            return verdict("ok", index, score)
    return verdict("ok", len(stages), score)


def main(argv: list[str]) -> int:
    with open(argv[1]) as handle:
        spec = json.load(handle)
    refused = _set_limits(spec)
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
    tmp = spec["result"] + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(verdict, handle, default=repr)
    os.replace(tmp, spec["result"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
