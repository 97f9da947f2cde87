"""`EvaluatorActor`: judges candidates of one task in its `Sandbox`, one at a time.

It is placed with the task's resources (e.g. ``{apple_gpu: 1}``), so a Metal benchmark
runs only on a Mac and two never share a GPU. It resolves the isolation level once, at
start (a level asked for by name that this node cannot give stops it there, with the
reason), and holds no state beyond its sandbox: the task copy candidates see, its work
area and, with ``task.sandbox`` resolving to ``forkserver``, the warm confined process
that forks each candidate's judge. Its folders go with ``close()`` (called by the pool
at the end of a run, or by Ray on a graceful exit); those of an evaluator that was
killed are swept by the next one to start on the node.
"""

from __future__ import annotations

import platform
import socket
import traceback
from dataclasses import replace

from rayevolve.config import EvaluationConfig
from rayevolve.outcome import Outcome
from rayevolve.result import EvalResult
from rayevolve.sandbox.confinement import IsolationUnavailable, resolve
from rayevolve.sandbox.runner import Sandbox, SandboxLimits
from rayevolve.tasks import TaskSpec


class SandboxStartError(RuntimeError):
    """This node cannot judge the task as configured (the message says why and what to do)."""


# the placement fields an evaluation result records (the rest is said in its event)
RESULT_PLACEMENT = ("node_id", "host", "platform", "evaluator_id", "isolation")


class EvaluatorActor:
    def __init__(
        self,
        evaluator_id: str,
        task: TaskSpec,
        config: EvaluationConfig,
        hidden: tuple[str, ...] = (),
    ):
        self.evaluator_id = evaluator_id
        self.task = task
        self.config = config
        self.sandbox = None
        self.placement: dict = {}
        self.start_error: str | None = None
        try:
            self._start(task, config, hidden)
        except SandboxStartError as exc:  # said by ready(): no actor-creation traceback
            self.start_error = str(exc)

    def _start(self, task: TaskSpec, config: EvaluationConfig, hidden: tuple[str, ...]) -> None:
        from rayevolve.placement import here

        try:
            confinement = resolve(config.isolation, config.python)
        except IsolationUnavailable as exc:
            raise SandboxStartError(f"{socket.gethostname()}: {exc}") from None
        limits = SandboxLimits(
            timeout_s=task.timeout_s,
            memory_limit_mb=task.memory_limit_mb,
            output_limit_bytes=config.output_limit_kb * 1024,
            file_limit_bytes=config.output_file_limit_mb * 1024 * 1024,
            threads=max(1, int(task.resources.get("CPU", 1))),
        )
        try:
            self.sandbox = Sandbox(
                task.files,
                limits=limits,
                evaluator=task.evaluator,
                launcher=task.sandbox,
                isolation=confinement,
                python=config.python,
                env=task.env,
                cascade_thresholds=task.cascade_thresholds,
                cascade=task.cascade,
                feature_names=tuple(f.name for f in task.features),
                score_metric=task.score_metric,
                read_paths=tuple(config.read_paths),
                hidden=(task.root, *hidden),
                devices=task.devices,
            )
        except Exception as exc:
            raise SandboxStartError(
                f"{socket.gethostname()}: the sandbox ({confinement.describe()}) cannot start "
                f"the task's {task.evaluator}: {exc}"
            ) from None
        self.placement = {
            **here().to_payload(),
            "platform": f"{platform.system()}-{platform.machine()}",
            "evaluator_id": self.evaluator_id,
            "isolation": str(confinement.level),
            "isolation_detail": confinement.describe(),
        }

    def ready(self) -> dict:
        """Where it runs, or ``{"start_error": why}`` when its sandbox cannot start."""
        if self.start_error is not None:
            return {"start_error": self.start_error}
        return self.placement

    def evaluate(self, code: str) -> EvalResult:
        """Evaluate one candidate; failures of this actor itself come back as INFRA_ERROR."""
        try:
            result = self.sandbox.evaluate(code, self.task.suffix)
        except Exception as exc:  # the sandbox could not run at all: not the candidate's fault
            result = EvalResult.failure(
                Outcome.INFRA_ERROR,
                f"evaluator {self.evaluator_id} could not run the sandbox: {exc!r}",
                artifacts={"traceback": traceback.format_exc()},
            )
        placement = {k: v for k, v in self.placement.items() if k in RESULT_PLACEMENT}
        if result.isolation:
            placement.pop("isolation")
        return replace(result, **placement)

    def evaluate_many(self, codes: list[str]) -> list[EvalResult]:
        """Several candidates in one call, one after another (the pool batches cheap ones)."""
        return [self.evaluate(code) for code in codes]

    def close(self) -> None:
        if self.sandbox is not None:
            self.sandbox.close()
            self.sandbox = None

    def __ray_shutdown__(self) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass
