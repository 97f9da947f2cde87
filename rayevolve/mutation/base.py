"""The mutation interface: requests from islands, completions from backends, results back.

A backend only turns a `MutationRequest` into reply texts (`Completion`s), as a model
would; the `MutatorActor` parses and applies every reply the same way, so failure
classification (no edit, SEARCH not found, edit outside EVOLVE-BLOCKs) is shared by
all backends. Backends are async and must tolerate many concurrent `complete` calls:
that is how a model server batches every island's requests.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rayevolve.program import Program

if TYPE_CHECKING:
    from rayevolve.mutation.prompts import Prompt


class ModelUnavailableError(RuntimeError):
    """The model cannot serve requests (endpoint down, unknown model, engine dead for
    good): no island can make progress, so the run stops with this message."""


@dataclass(frozen=True)
class MutationRequest:
    """What an island asks for.

    Attributes:
      parent: the program to change; its `result` carries the evaluation feedback
        (errors, artifacts, metrics) a model backend shows to the model.
      inspirations: other programs of the island (top and diverse) to learn from.
      island: the asking island.
      mode: ``diff`` or ``rewrite``.
      seed: per-request seed drawn from the island's generator (reproducibility; model
        backends pass it to the sampler so equal prompts do not give equal children).
      num_samples: children wanted from this request (``n``).
      temperature: sampling temperature for model backends (None: backend default).
    """

    parent: Program
    inspirations: tuple[Program, ...]
    island: int
    mode: str
    seed: int
    num_samples: int = 1
    temperature: float | None = None


@dataclass(frozen=True)
class Completion:
    """One reply of a backend, before it is parsed.

    Attributes:
      text: the reply (SEARCH/REPLACE blocks or a whole program).
      model: model name (``offline`` for the no-model backend).
      operator: what produced it, e.g. ``offline:perturb`` or ``llm:diff``.
      prompt_tokens, completion_tokens: token counts (0 without a model).
      latency_s: seconds the backend spent on the request.
      finish_reason: ``stop``, or ``length`` for a truncated reply.
      prompt: the conversation that produced it (None without a model).
      temperature: the sampling temperature used (None without a model).
      retries: transport retries the request needed (429, 5xx, timeouts).
    """

    text: str
    model: str
    operator: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    finish_reason: str = "stop"
    prompt: Prompt | None = None
    temperature: float | None = None
    retries: int = 0


@dataclass(frozen=True)
class MutationResult:
    """A child program, or a classified reason why none came out of a reply.

    Attributes:
      child_code: the child's full text (None on failure).
      error_kind: an `MutationFailure` value or ``backend_error`` (None on success).
      error: human-readable reason, fed back to the model on a retry.
      reply: the raw reply (kept in the log).
      edit: the applied edit as SEARCH/REPLACE text (empty on failure).
      seed: the request's seed.
      prompt_hash, prompt: the conversation's hash and its JSON text (the log stores
        each distinct prompt once).
      repairs: how many times the model was shown an error before this reply.
    """

    child_code: str | None
    reply: str
    model: str
    operator: str
    mode: str
    seed: int
    edit: str = ""
    error_kind: str | None = None
    error: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    finish_reason: str | None = None
    temperature: float | None = None
    prompt_hash: str | None = None
    prompt: str | None = None
    repairs: int = 0
    retries: int = 0

    @property
    def ok(self) -> bool:
        return self.child_code is not None


class MutationBackend(abc.ABC):
    """Turns requests into reply texts. One instance lives inside the mutator actor."""

    name: str = "backend"
    can_repair: bool = False

    async def start(self) -> None:
        """Load models or open connections (called once, inside the actor)."""

    @abc.abstractmethod
    async def complete(self, request: MutationRequest) -> list[Completion]:
        """Return `request.num_samples` replies; raise on backend failure."""

    async def repair(
        self, request: MutationRequest, failed: Completion, error_kind: str, error: str
    ) -> Completion:
        """Ask again, showing the model its failed reply and why it failed."""
        raise NotImplementedError(f"the {self.name} backend cannot repair replies")

    def reward(self, model: str, value: float) -> None:
        """A child of `model` earned `value` in [0, 1] (for an adaptive ensemble)."""

    def state(self) -> dict:
        """Backend figures for the mutator's statistics (e.g. ensemble weights)."""
        return {}

    async def close(self) -> None:
        """Release models or connections."""
