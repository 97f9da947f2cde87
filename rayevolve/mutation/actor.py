"""`MutatorActor`: one per run, shared by every island.

An async actor: each island's request is a coroutine, so a model backend sees all of
them at once (and can batch them). Every reply goes through `edits.apply_reply`, which
enforces EVOLVE-BLOCKs; a reply that yields no child becomes a classified failure (kept
with its raw reply), is optionally answered with the reason so the model can try again,
and never raises into the island. Only `ModelUnavailableError` does: no island can make
progress without a model, so the run stops with its message.
"""

from __future__ import annotations

import logging
import time
from collections import Counter

from rayevolve.cluster import actor_was_restarted
from rayevolve.config import MutationConfig
from rayevolve.edits import EditError, apply_reply, make_diff
from rayevolve.log.schema import EventKind
from rayevolve.mutation.base import (
    Completion,
    ModelUnavailableError,
    MutationBackend,
    MutationRequest,
    MutationResult,
)
from rayevolve.mutation.offline import MutationUnavailable, OfflineBackend
from rayevolve.mutation.prompts import PromptContext
from rayevolve.outcome import MutationFailure, Outcome
from rayevolve.roles import Role, actor_name

log = logging.getLogger(__name__)


def make_backend(
    config: MutationConfig,
    context: PromptContext | None,
    seed: int,
    on_event=None,
    secrets: dict[str, str] | None = None,
) -> MutationBackend:
    """The backend `config.backend` names; model backends need the task's prompt context."""
    if config.backend == "offline":
        return OfflineBackend(config.offline)
    if context is None:
        raise ValueError(f"the {config.backend} backend needs a PromptContext")
    from rayevolve.mutation.llm import LLMBackend

    if config.backend == "openai":
        from rayevolve.mutation.openai_client import OpenAIClient

        return LLMBackend(config, context, OpenAIClient(config, secrets), seed)
    if config.backend == "vllm":
        from rayevolve.mutation.vllm_client import VLLMClient

        return LLMBackend(config, context, VLLMClient(config.vllm, on_event), seed)
    raise ValueError(f"unknown mutation backend {config.backend!r}")


class MutatorActor:
    def __init__(
        self,
        config: MutationConfig,
        run_id: str = "",
        context: PromptContext | None = None,
        seed: int = 0,
        secrets: dict[str, str] | None = None,
    ):
        self.config = config
        self.run_id = run_id
        self.context = context
        self.backend = make_backend(config, context, seed, self._event, secrets)
        self._started = False
        self._counts: Counter[str] = Counter()
        self._rewards = 0
        self._in_flight = 0
        self._peak_in_flight = 0

    def _event(self, kind: str, message: str | None = None, **fields) -> None:
        if self.run_id:
            from rayevolve.log.actor import log_event

            log_event(self.run_id, kind, message, **fields)
        else:
            log.warning("%s: %s", kind, message)

    async def start(self) -> str:
        """Start the backend (also after Ray restarted this actor: calls then resume)."""
        if not self._started:
            await self.backend.start()
            self._started = True
            if self.run_id and self.config.bandit.enabled:
                await self._replay_rewards()
            if self.run_id and actor_was_restarted():
                self._event(
                    EventKind.MUTATOR_RESTARTED,
                    "the mutator actor was restarted; in-flight requests are re-sent by Ray",
                )
        return self.backend.name

    async def _replay_rewards(self) -> None:
        """An adaptive ensemble continues from the rewards the log holds (resume, restart)."""
        import ray

        try:
            runlog = ray.get_actor(actor_name(self.run_id, Role.RUNLOG))
        except ValueError:
            return
        maximize = self.context.maximize if self.context else True
        for model, reward in await runlog.model_rewards.remote(maximize):
            self.backend.ensemble.reward(model, reward, pulled=False)

    async def mutate(self, request: MutationRequest) -> list[MutationResult]:
        if not self._started:
            await self.start()
        self._in_flight += 1
        self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
        started = time.perf_counter()
        try:
            completions = await self.backend.complete(request)
        except ModelUnavailableError:
            raise
        except MutationUnavailable as exc:
            return [self._failure(request, MutationFailure.NO_MUTATION, str(exc), started)]
        except Exception as exc:  # a backend failure must not kill the island
            log.warning("backend %s failed: %r", self.backend.name, exc)
            return [self._failure(request, MutationFailure.BACKEND_ERROR, _describe(exc), started)]
        finally:
            self._in_flight -= 1
        results = []
        for completion in completions:
            results.extend(await self._settle(request, completion))
        return results

    async def _settle(
        self, request: MutationRequest, completion: Completion
    ) -> list[MutationResult]:
        """Apply one reply; while it gives no child and repairs are left, show the model
        why and apply its next reply. Every failed reply stays in the returned list."""
        results = [self._apply(request, completion, repairs=0)]
        while not results[-1].ok and self._repairable(completion, len(results) - 1):
            failed = results[-1]
            started = time.perf_counter()
            try:
                completion = await self.backend.repair(
                    request, completion, failed.error_kind or "", failed.error
                )
            except ModelUnavailableError:
                raise
            except Exception as exc:
                results.append(
                    self._failure(request, MutationFailure.BACKEND_ERROR, _describe(exc), started)
                )
                break
            results.append(self._apply(request, completion, repairs=len(results)))
        if not results[-1].ok:
            self.backend.reward(results[-1].model, 0.0)
        return results

    def _repairable(self, completion: Completion, repairs_so_far: int) -> bool:
        return (
            self.backend.can_repair
            and completion.prompt is not None
            and repairs_so_far < self.config.repair_attempts
        )

    def _apply(
        self, request: MutationRequest, completion: Completion, repairs: int
    ) -> MutationResult:
        parent = request.parent
        mode = completion.prompt.mode if completion.prompt is not None else request.mode
        common = dict(
            reply=completion.text,
            model=completion.model,
            operator=completion.operator,
            mode=mode,
            seed=request.seed,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            latency_s=completion.latency_s,
            finish_reason=completion.finish_reason if completion.prompt is not None else None,
            temperature=completion.temperature,
            prompt_hash=completion.prompt.hash if completion.prompt is not None else None,
            prompt=completion.prompt.text if completion.prompt is not None else None,
            repairs=repairs,
            retries=completion.retries,
        )
        try:
            child = apply_reply(parent.code, completion.text, mode, parent.language)
        except EditError as exc:
            kind, message = str(exc.kind), exc.message
            if completion.finish_reason == "length":
                kind = MutationFailure.TRUNCATED_REPLY
                message = (
                    f"the reply was cut off at the token limit ({completion.completion_tokens} "
                    f"tokens) before it was complete ({exc.message}); make smaller edits"
                )
            self._counts[f"failed:{kind}"] += 1
            return MutationResult(child_code=None, error_kind=kind, error=message, **common)
        self._counts[Outcome.OK] += 1
        edit = completion.text if mode == "diff" else make_diff(parent.code, child)
        return MutationResult(child_code=child, edit=edit, **common)

    def _failure(
        self, request: MutationRequest, kind: str, message: str, started: float
    ) -> MutationResult:
        self._counts[f"failed:{kind}"] += 1
        return MutationResult(
            child_code=None,
            reply="",
            model=self.backend.name,
            operator=f"{self.backend.name}:none",
            mode=request.mode,
            seed=request.seed,
            error_kind=kind,
            error=message,
            latency_s=time.perf_counter() - started,
        )

    def reward(self, model: str, value: float) -> None:
        """A child of `model` was scored: credit the ensemble (islands call this)."""
        self.backend.reward(model, value)
        self._rewards += 1
        if self.config.bandit.enabled and self._rewards % self.config.bandit.event_every == 0:
            self._event(EventKind.MODEL_WEIGHTS, payload=self.backend.state())

    def stats(self) -> dict:
        return {
            "backend": self.backend.name,
            "peak_in_flight": self._peak_in_flight,
            **self._counts,
            **self.backend.state(),
        }

    def placement(self) -> dict:
        """Where this actor runs (`rayevolve.placement.Placement`), logged at start."""
        from rayevolve.placement import here

        return here().to_payload()

    async def close(self) -> None:
        await self.backend.close()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]
