"""`LLMBackend`: mutation by a language model, whatever serves it.

It renders the prompt, picks a model from the ensemble, and asks a `ChatClient` (an
OpenAI-compatible endpoint, or vLLM's engine in-process) for ``n`` replies; on a reply
that gave no child, it continues the conversation with the reason (a repair). Parsing and
failure classification stay in the mutator actor, shared with the offline backend.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, replace

from rayevolve.config import ModelConfig, MutationConfig
from rayevolve.mutation.base import Completion, MutationBackend, MutationRequest
from rayevolve.mutation.ensemble import ModelEnsemble
from rayevolve.mutation.prompts import Prompt, PromptBuilder, PromptContext


@dataclass(frozen=True)
class Sampling:
    """Sampling settings of one chat request (``n`` replies)."""

    n: int
    temperature: float
    top_p: float
    max_tokens: int
    seed: int


class ChatClient(abc.ABC):
    """Sends a conversation to a model and returns its replies."""

    name: str = "chat"

    async def start(self, models: Sequence[ModelConfig]) -> None:
        """Connect or load; raise `ModelUnavailableError` when a model cannot be served."""

    @abc.abstractmethod
    async def chat(
        self, prompt: Prompt, model: ModelConfig, sampling: Sampling
    ) -> list[Completion]:
        """`sampling.n` replies to `prompt` (operator left empty: the backend sets it)."""

    def state(self) -> dict:
        """Client figures for the mutator's statistics."""
        return {}

    async def close(self) -> None:
        """Disconnect or unload."""


class LLMBackend(MutationBackend):
    can_repair = True

    def __init__(
        self, config: MutationConfig, context: PromptContext, client: ChatClient, seed: int
    ):
        self.config = config
        self.client = client
        self.name = client.name
        self.prompts = PromptBuilder(context)
        self.ensemble = ModelEnsemble(config.ensemble(), config.bandit, seed=seed)
        self._models = {m.name: m for m in self.ensemble.models}

    async def start(self) -> None:
        await self.client.start(self.ensemble.models)

    def _sampling(
        self, model: ModelConfig, request: MutationRequest, n: int, seed: int
    ) -> Sampling:
        temperature = model.temperature
        if temperature is None:
            temperature = (
                request.temperature if request.temperature is not None else self.config.temperature
            )
        return Sampling(
            n=n,
            temperature=temperature,
            top_p=model.top_p if model.top_p is not None else self.config.top_p,
            max_tokens=model.max_tokens or self.config.max_tokens,
            seed=seed,
        )

    async def complete(self, request: MutationRequest) -> list[Completion]:
        mode = self.prompts.mode_for(request.parent, request.mode)
        prompt = self.prompts.build(request.parent, request.inspirations, mode)
        model = self.ensemble.choose()
        sampling = self._sampling(model, request, request.num_samples, request.seed)
        replies = await self.client.chat(prompt, model, sampling)
        return [replace(c, operator=f"llm:{mode}") for c in replies]

    async def repair(
        self, request: MutationRequest, failed: Completion, error_kind: str, error: str
    ) -> Completion:
        assert failed.prompt is not None, "only a model's reply can be repaired"
        prompt = self.prompts.repair(failed.prompt, failed.text, error_kind, error)
        model = self._models.get(failed.model) or self.ensemble.choose()
        repairs = (len(prompt.messages) - 2) // 2
        sampling = self._sampling(model, request, 1, (request.seed + repairs) % 2**63)
        replies = await self.client.chat(prompt, model, sampling)
        return replace(replies[0], operator=f"llm:{prompt.mode}:repair")

    def reward(self, model: str, value: float) -> None:
        self.ensemble.reward(model, value)

    def state(self) -> dict:
        return {"models": self.ensemble.snapshot(), **self.client.state()}

    async def close(self) -> None:
        await self.client.close()
