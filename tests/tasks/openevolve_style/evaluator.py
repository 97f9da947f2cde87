"""An evaluator written as OpenEvolve's examples are: it imports OpenEvolve's result
type, prints while it loads, reads its data by a path relative to its folder, returns no
``combined_score`` (OpenEvolve scores the mean of the other numeric metrics) and ends its
cascade with an ``async`` stage."""

import asyncio
import importlib.util

from openevolve.evaluation_result import EvaluationResult

print("evaluator: ready")  # import-time output, as many evaluators print


def _guess(program_path):
    spec = importlib.util.spec_from_file_location("candidate", program_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return float(module.guess())


def _target():
    with open("data/target.txt") as handle:  # relative to the task folder
        return float(handle.read())


def evaluate_stage1(program_path):
    value = _guess(program_path)
    closeness = 1.0 / (1.0 + abs(value - _target()))
    return EvaluationResult(
        metrics={"closeness": closeness, "spread": value},
        artifacts={"stage1": b"guessed", "openevolve_module": EvaluationResult.__module__},
    )


async def evaluate_stage2(program_path):
    await asyncio.sleep(0)
    value = _guess(program_path)
    exact = 1.0 if abs(value - _target()) < 0.25 else 0.0
    return {"closeness": 1.0 / (1.0 + abs(value - _target())), "exact": exact, "spread": value}


def evaluate(program_path):
    """What OpenEvolve calls with cascade_evaluation off."""
    return {"closeness": 0.0, "called": "evaluate"}
