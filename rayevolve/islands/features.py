"""MAP-Elites coordinates: the built-in features, a program's value along each, the
bins, and the check that the evaluator reports every feature the task names.

Pure: the island's `Population` is the only caller at run time; the controller checks
the features once, on the initial program's evaluation.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from enum import StrEnum

from rayevolve.config import FeatureConfig
from rayevolve.program import Program, ProgramError, block_texts
from rayevolve.result import EvalResult


class BuiltIn(StrEnum):
    """Features computed here rather than returned by the evaluator."""

    CODE_LENGTH = "code_length"  # characters inside the EVOLVE-BLOCKs
    COMPLEXITY = "complexity"  # characters of the whole program (OpenEvolve's name)
    DIVERSITY = "diversity"  # mean edit distance (0..1) to the island's best programs
    SCORE = "score"


BUILT_IN = frozenset(BuiltIn)
DIVERSITY_REFERENCES = 20  # programs a new one is compared with (OpenEvolve's default)


def distance(a: str, b: str) -> float:
    """Edit distance of two programs as a fraction: 0 same text, 1 nothing in common."""
    return 1.0 - difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def feature_value(program: Program, name: str, references: Sequence[Program] = ()) -> float:
    """A program's coordinate along one MAP-Elites dimension; `references` are the
    programs ``diversity`` is measured against (none: 0)."""
    if name == BuiltIn.CODE_LENGTH:
        try:
            return float(sum(len(b) for b in block_texts(program.code)))
        except ProgramError:
            return float(len(program.code))
    if name == BuiltIn.COMPLEXITY:
        return float(len(program.code))
    if name == BuiltIn.DIVERSITY:
        others = [p for p in references if p.id != program.id][:DIVERSITY_REFERENCES]
        if not others:
            return 0.0
        return sum(distance(program.code, p.code) for p in others) / len(others)
    if name == BuiltIn.SCORE:
        return float(program.score if program.score is not None else 0.0)
    value = program.metrics.get(name)
    if value is None or not math.isfinite(value):
        raise KeyError(
            f"MAP-Elites feature {name!r} is not among the evaluator's metrics "
            f"({', '.join(sorted(program.metrics)) or 'none'}); fix task.features"
        )
    return float(value)


def bin_index(value: float, feature: FeatureConfig, span: tuple[float, float] | None = None) -> int:
    """The cell along `feature` for `value`; `span` is the (low, high) range of a
    learned feature (values seen so far)."""
    low, high = span if span is not None else (feature.min, feature.max)
    if low is None or high is None or high <= low:
        return 0
    frac = (value - low) / (high - low)
    return int(min(max(math.floor(frac * feature.bins), 0), feature.bins - 1))


def unreported_features(
    features: Sequence[FeatureConfig], result: EvalResult, thresholds: Sequence[float]
) -> str | None:
    """Why the task's features cannot place programs judged like `result` (the initial
    program's evaluation), with the fix; None when every feature is there.

    A feature must be among the metrics; where a cascade threshold can stop a candidate
    after stage k, it must be among what stages 1..k returned too."""
    wanted = [f.name for f in features if f.name not in BUILT_IN]
    metrics = set(result.metrics)
    builtins = ", ".join(sorted(BUILT_IN))
    for name in wanted:
        if name not in metrics:
            return (
                f"MAP-Elites feature {name!r} is not among the metrics the evaluator returned "
                f"for the initial program ({', '.join(sorted(metrics)) or 'none'}): name one of "
                f"those or a built-in ({builtins}) in task.features"
            )
    stages = result.stage_metrics
    reported: set[str] = set()
    for stage, names in enumerate(stages[: len(thresholds)], start=1):
        if stage >= len(stages):
            break
        reported |= set(names)
        late = [name for name in wanted if name not in reported]
        if late:
            return (
                f"MAP-Elites feature {late[0]!r} is returned only by a later cascade stage, "
                f"but a candidate may stop after stage {stage} (task.cascade_thresholds): "
                f"return it from stage {stage} too, or use another feature (task.features)"
            )
    return None
