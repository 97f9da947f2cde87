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


def _set_limits(spec: dict[str, Any]) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if spec.get("file_limit_bytes"):
        limit = int(spec["file_limit_bytes"])
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    if spec.get("memory_limit_mb"):
        limit = int(spec["memory_limit_mb"]) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


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


def _classify_exception(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return "compile_error"
    if isinstance(exc, MemoryError):
        return "memory_limit"
    return "runtime_error"


def evaluate(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the cascade and return the verdict as a JSON-able dict."""
    try:
        module = _load_evaluator(spec["evaluator"])
    except BaseException as exc:  # noqa: BLE001 - any failure is reported, not raised
        return {
            "status": "runtime_error",
            "stage": 0,
            "artifacts": {
                "error": f"evaluator.py failed to import: {exc!r}",
                "traceback": traceback.format_exc()[-MAX_TRACEBACK_CHARS:],
            },
        }
    thresholds = list(spec.get("cascade_thresholds") or [])
    metrics: dict[str, float] = {}
    artifacts: dict[str, str] = {}
    stages = _stages(module)
    score = None
    for index, (name, function) in enumerate(stages, start=1):
        try:
            returned = function(spec["program"])
        except BaseException as exc:  # noqa: BLE001
            if isinstance(exc, SystemExit):
                message = f"{name} ended with SystemExit({exc.code!r}): the candidate may not exit the evaluator"
            else:
                message = f"{name} raised {type(exc).__name__}: {exc}"
            artifacts.update(
                {"error": message, "traceback": traceback.format_exc()[-MAX_TRACEBACK_CHARS:]}
            )
            return {
                "status": _classify_exception(exc),
                "stage": index - 1,
                "metrics": metrics,
                "artifacts": artifacts,
            }
        if not isinstance(returned, dict):
            artifacts["error"] = (
                f"{name} returned {type(returned).__name__}, expected a dict with 'combined_score'"
            )
            return {
                "status": "rejected",
                "stage": index - 1,
                "metrics": metrics,
                "artifacts": artifacts,
            }
        stage_metrics, stage_artifacts = _split(returned)
        metrics.update(stage_metrics)
        artifacts.update(stage_artifacts)
        status = returned.get("status")
        if status not in (None, "ok"):
            artifacts.setdefault("error", f"{name} reported status {status!r}")
            return {
                "status": str(status),
                "stage": index - 1,
                "metrics": metrics,
                "artifacts": artifacts,
            }
        if "error" in returned and returned["error"]:
            return {
                "status": "runtime_error",
                "stage": index - 1,
                "metrics": metrics,
                "artifacts": artifacts,
            }
        score = returned.get("combined_score")
        if isinstance(score, bool) or not isinstance(score, Real):
            artifacts["error"] = f"{name} returned no numeric 'combined_score' (got {score!r})"
            return {
                "status": "rejected",
                "stage": index - 1,
                "metrics": metrics,
                "artifacts": artifacts,
            }
        if not math.isfinite(float(score)):
            artifacts["error"] = f"{name} returned a non-finite combined_score ({score!r})"
            return {
                "status": "rejected",
                "stage": index - 1,
                "metrics": metrics,
                "artifacts": artifacts,
            }
        if (
            index <= len(thresholds)
            and index < len(stages)
            and float(score) < thresholds[index - 1]
        ):
            artifacts["cascade"] = (
                f"stopped after {name}: combined_score {float(score):g} < threshold {thresholds[index - 1]:g}"
            )
            return {
                "status": "ok",
                "score": float(score),
                "stage": index,
                "metrics": metrics,
                "artifacts": artifacts,
            }
    return {
        "status": "ok",
        "score": float(score),
        "stage": len(stages),
        "metrics": metrics,
        "artifacts": artifacts,
    }


def main(argv: list[str]) -> int:
    with open(argv[1]) as handle:
        spec = json.load(handle)
    _set_limits(spec)
    sys.path.insert(0, spec["task_dir"])
    try:
        verdict = evaluate(spec)
    except MemoryError:
        verdict = {
            "status": "memory_limit",
            "stage": 0,
            "artifacts": {"error": "out of memory while evaluating"},
        }
    tmp = spec["result"] + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(verdict, handle, default=repr)
    os.replace(tmp, spec["result"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
