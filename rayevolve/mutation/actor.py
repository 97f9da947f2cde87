"""`MutatorActor`: one per run, shared by every island.

An async actor: each island's request is a coroutine, so a model backend sees all of
them at once (and can batch them). Every reply goes through `edits.apply_reply`, which
enforces EVOLVE-BLOCKs; a reply that yields no child becomes a classified failure, never
an exception in the island.
"""

from __future__ import annotations

import logging
import time
from collections import Counter

from rayevolve.cluster import actor_was_restarted
from rayevolve.config import MutationConfig
from rayevolve.edits import EditError, apply_reply, make_diff
from rayevolve.mutation.base import MutationBackend, MutationRequest, MutationResult
from rayevolve.mutation.offline import MutationUnavailable, OfflineBackend

log = logging.getLogger(__name__)


def make_backend(config: MutationConfig) -> MutationBackend:
    if config.backend == "offline":
        return OfflineBackend(config.offline)
    raise ValueError(f"unknown mutation backend {config.backend!r}")


class MutatorActor:
    def __init__(self, config: MutationConfig, run_id: str = ""):
        self.config = config
        self.run_id = run_id
        self.backend = make_backend(config)
        self._started = False
        self._counts: Counter[str] = Counter()
        self._in_flight = 0
        self._peak_in_flight = 0

    async def start(self) -> str:
        """Start the backend (also after Ray restarted this actor: calls then resume)."""
        if not self._started:
            await self.backend.start()
            self._started = True
            if self.run_id and actor_was_restarted():
                from rayevolve.runlog import log_event

                message = "the mutator actor was restarted; in-flight requests are re-sent by Ray"
                log_event(self.run_id, "mutator_restarted", message)
        return self.backend.name

    async def mutate(self, request: MutationRequest) -> list[MutationResult]:
        if not self._started:
            await self.start()
        self._in_flight += 1
        self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
        started = time.perf_counter()
        try:
            completions = await self.backend.complete(request)
        except MutationUnavailable as exc:
            return [self._failure(request, "no_mutation", str(exc), started)]
        except Exception as exc:  # a backend failure must not kill the island
            log.warning("backend %s failed: %r", self.backend.name, exc)
            return [
                self._failure(request, "backend_error", f"{type(exc).__name__}: {exc}", started)
            ]
        finally:
            self._in_flight -= 1
        results = []
        parent = request.parent
        for completion in completions:
            common = dict(
                reply=completion.text,
                model=completion.model,
                operator=completion.operator,
                mode=request.mode,
                seed=request.seed,
                prompt_tokens=completion.prompt_tokens,
                completion_tokens=completion.completion_tokens,
                latency_s=completion.latency_s,
            )
            try:
                child = apply_reply(parent.code, completion.text, request.mode, parent.language)
            except EditError as exc:
                self._counts[f"failed:{exc.kind}"] += 1
                results.append(
                    MutationResult(
                        child_code=None, error_kind=str(exc.kind), error=exc.message, **common
                    )
                )
                continue
            self._counts["ok"] += 1
            edit = completion.text if request.mode == "diff" else make_diff(parent.code, child)
            results.append(MutationResult(child_code=child, edit=edit, **common))
        return results

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

    def stats(self) -> dict:
        return {
            "backend": self.backend.name,
            "peak_in_flight": self._peak_in_flight,
            **self._counts,
        }

    async def close(self) -> None:
        await self.backend.close()
