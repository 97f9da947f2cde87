"""`EvalResult`: what one evaluation of one candidate said (its `Outcome`), and how far
the candidate was kept from its judge (`Isolation`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

from rayevolve.outcome import Outcome
from rayevolve.textcaps import cap_artifacts


class Isolation(StrEnum):
    """How far a candidate's code was kept from its judge (the ``isolation`` column).

    The first three are sandbox levels (`confinement.py`); `IN_PROCESS` marks a verdict
    from an evaluator that ran the candidate in its own judging process (OpenEvolve's
    convention), which the candidate could have written itself, whatever the level.
    """

    NAMESPACES = "namespaces"  # Linux: own PID, network, mount, IPC and user namespaces
    SEATBELT = "seatbelt"  # macOS: sandbox-exec profile
    NONE = "none"  # a plain child process: only limits and a private directory
    IN_PROCESS = "in_process"


# what `evaluation.isolation` may ask for; `auto` takes the strongest level the node offers
ISOLATION_SETTINGS = ("auto", Isolation.NAMESPACES, Isolation.SEATBELT, Isolation.NONE)


# Outcomes that blame the evaluation infrastructure, not the candidate: retried elsewhere.
TRANSIENT_STATUSES = frozenset({Outcome.INFRA_ERROR})


@dataclass(frozen=True)
class EvalResult:
    """One evaluation's verdict.

    Attributes:
      status: classified outcome.
      score: the single number selection uses (higher is better after the task's
        direction is applied by the population); None unless status is OK.
      metrics: every numeric value the evaluator returned.
      artifacts: text fed back to the model (compiler output, tracebacks, stdout tails).
      wall_s: seconds the sandboxed child ran.
      node_id, host, platform, evaluator_id: where it ran.
      attempts: how many evaluators tried it (transient failures are retried).
      stage: the last cascade stage reached (1-based; 0 if it never finished one).
      isolation: an `Isolation` value: how the candidate was kept from its judge ("" when
        it never reached a sandbox, e.g. a failure of the infrastructure).
      stage_metrics: the metric names each finished cascade stage returned (checked
        against the MAP-Elites features on the initial program; not logged).
    """

    status: Outcome
    score: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0
    node_id: str = ""
    host: str = ""
    platform: str = ""
    evaluator_id: str = ""
    attempts: int = 1
    stage: int = 0
    isolation: str = ""
    stage_metrics: tuple[tuple[str, ...], ...] = ()

    def __post_init__(self) -> None:
        if self.status == Outcome.OK:
            if self.score is None or not math.isfinite(self.score):
                raise ValueError(f"an ok EvalResult needs a finite score, got {self.score!r}")
        elif self.score is not None:
            raise ValueError(f"a {self.status} EvalResult must not carry a score")

    @property
    def ok(self) -> bool:
        return self.status == Outcome.OK

    @classmethod
    def failure(cls, status: Outcome, message: str, **kw: object) -> EvalResult:
        """A failed evaluation; `message` becomes the ``error`` artifact unless one is set.
        Every text is capped (head and tail kept)."""
        artifacts = dict(kw.pop("artifacts", {}) or {})  # type: ignore[arg-type]
        if not artifacts.get("error"):
            artifacts["error"] = message or f"the evaluation ended with status {status}"
        return cls(status=status, score=None, artifacts=cap_artifacts(artifacts), **kw)  # type: ignore[arg-type]
