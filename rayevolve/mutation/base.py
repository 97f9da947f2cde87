"""The mutation interface: requests from islands, completions from backends, results back.

A backend only turns a `MutationRequest` into reply texts (`Completion`s), as a model
would; the `MutatorActor` parses and applies every reply the same way, so failure
classification (no edit, SEARCH not found, edit outside EVOLVE-BLOCKs) is shared by
all backends. Backends are async and must tolerate many concurrent `complete` calls:
that is how a model server batches every island's requests.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

from rayevolve.program import Program


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
    """

    text: str
    model: str
    operator: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    finish_reason: str = "stop"


@dataclass(frozen=True)
class MutationResult:
    """A child program, or a classified reason why none came out of a reply.

    Attributes:
      child_code: the child's full text (None on failure).
      error_kind: an `EditErrorKind` value or ``backend_error`` (None on success).
      error: human-readable reason, fed back to the model on a retry.
      reply: the raw reply (kept in the log).
      edit: the applied edit as SEARCH/REPLACE text (empty on failure).
      seed: the request's seed.
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
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.child_code is not None


class MutationBackend(abc.ABC):
    """Turns requests into reply texts. One instance lives inside the mutator actor."""

    name: str = "backend"

    async def start(self) -> None:
        """Load models or open connections (called once, inside the actor)."""

    @abc.abstractmethod
    async def complete(self, request: MutationRequest) -> list[Completion]:
        """Return `request.num_samples` replies; raise on backend failure."""

    async def close(self) -> None:
        """Release models or connections."""
