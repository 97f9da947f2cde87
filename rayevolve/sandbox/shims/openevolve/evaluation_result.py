"""``EvaluationResult`` as OpenEvolve defines it: metrics plus artifacts (text or bytes).

rayevolve's judge reads any object with a ``metrics`` dict and an ``artifacts`` dict, so
results built from this class and from OpenEvolve's own are read alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EvaluationResult:
    """What an evaluator returns: numeric ``metrics`` (``combined_score`` first among them)
    and ``artifacts`` fed back to the model (stderr, tracebacks, hints)."""

    metrics: dict[str, float]
    artifacts: dict[str, str | bytes] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, metrics: dict[str, float]) -> EvaluationResult:
        return cls(metrics=metrics)

    def to_dict(self) -> dict[str, float]:
        return self.metrics

    def has_artifacts(self) -> bool:
        return bool(self.artifacts)

    def get_artifact_keys(self) -> list[str]:
        return list(self.artifacts)

    def get_artifact_size(self, key: str) -> int:
        value = self.artifacts.get(key)
        if value is None:
            return 0
        return len(value) if isinstance(value, bytes) else len(str(value).encode("utf-8"))

    def get_total_artifact_size(self) -> int:
        return sum(self.get_artifact_size(key) for key in self.artifacts)
