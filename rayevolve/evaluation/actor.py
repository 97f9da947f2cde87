"""`EvaluatorActor`: runs candidates of one task in its sandbox, one at a time.

It is placed with the task's resources (e.g. ``{apple_gpu: 1}``), so a Metal benchmark
runs only on a Mac and two never share a GPU. It holds no state beyond the unpacked task,
the copy of it that candidates see (`taskcopy.py`) and, with ``task.sandbox`` resolving
to ``forkserver``, the warm process that forks each candidate's child (restarted if it
dies).
"""

from __future__ import annotations

import platform
import socket
import traceback
from dataclasses import replace

from rayevolve.config import EvaluationConfig
from rayevolve.evaluation.forkserver import ForkServer, resolve_mode
from rayevolve.evaluation.result import EvalResult, EvalStatus
from rayevolve.evaluation.sandbox import SandboxLimits, child_environment, run_candidate
from rayevolve.evaluation.taskcopy import TaskCopy
from rayevolve.tasks import TaskSpec


class EvaluatorActor:
    def __init__(self, evaluator_id: str, task: TaskSpec, config: EvaluationConfig):
        import ray

        self.evaluator_id = evaluator_id
        self.task = task
        self.config = config
        # what candidates (and the fork server's preload) see, checked before each one
        self.task_copy = TaskCopy(task.files)
        self.task_dir = self.task_copy.path
        self.limits = SandboxLimits(
            timeout_s=task.timeout_s,
            memory_limit_mb=task.memory_limit_mb,
            output_limit_bytes=config.output_limit_kb * 1024,
            file_limit_bytes=config.output_file_limit_mb * 1024 * 1024,
            threads=max(1, int(task.resources.get("CPU", 1))),
        )
        self.forkserver = None
        if resolve_mode(task.sandbox) == "forkserver":
            self.forkserver = ForkServer(
                {**child_environment(self.limits.threads), **task.env},
                python=config.python,
                evaluator=self.task_dir / "evaluator.py",
                task_dir=self.task_dir,
            )
            self.forkserver.start()  # the evaluator's imports now, not in the first candidate
        self.placement = {
            "node_id": ray.get_runtime_context().get_node_id(),
            "host": socket.gethostname(),
            "platform": f"{platform.system()}-{platform.machine()}",
            "evaluator_id": evaluator_id,
        }

    def ready(self) -> dict:
        return self.placement

    def evaluate(self, code: str) -> EvalResult:
        """Evaluate one candidate; failures of this actor itself come back as INFRA_ERROR."""
        try:
            result = run_candidate(
                code,
                suffix=self.task.suffix,
                evaluator=self.task_dir / "evaluator.py",
                task_dir=self.task_dir,
                limits=self.limits,
                cascade_thresholds=list(self.task.cascade_thresholds),
                python=self.config.python,
                env=self.task.env,
                forkserver=self.forkserver,
                task_copy=self.task_copy,
            )
        except Exception as exc:  # the sandbox could not run at all: not the candidate's fault
            result = EvalResult.failure(
                EvalStatus.INFRA_ERROR,
                f"evaluator {self.evaluator_id} could not run the sandbox: {exc!r}",
                artifacts={"traceback": traceback.format_exc()},
            )
        return replace(result, **self.placement)

    def evaluate_many(self, codes: list[str]) -> list[EvalResult]:
        """Several candidates in one call, one after another (the pool batches cheap ones)."""
        return [self.evaluate(code) for code in codes]

    def __del__(self):
        if getattr(self, "forkserver", None) is not None:
            self.forkserver.close()
        if getattr(self, "task_copy", None) is not None:
            self.task_copy.close()
