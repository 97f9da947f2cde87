"""`OpenAIClient`: any OpenAI-compatible chat-completions endpoint (`vllm serve`, SGLang,
hosted APIs), through the official `openai` SDK.

Retries are ours, not the SDK's (its own are switched off), so each is counted and
logged with the reply: 429, 5xx, timeouts and connection errors are retried with
exponential backoff and jitter; a wrong model name or a refused key stops the run at
once; so does an endpoint that keeps failing after every retry for
``openai.unavailable_after`` requests in a row. The API key is read from the environment
variable named in the config (on the driver, which hands it to this actor in memory; else
in the actor's own environment) and never logged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Sequence

import openai
from openai.types.chat import ChatCompletion

from rayevolve.config import ModelConfig, MutationConfig
from rayevolve.mutation.base import Completion, ModelUnavailableError
from rayevolve.mutation.llm import ChatClient, Sampling
from rayevolve.mutation.prompts import Prompt

log = logging.getLogger(__name__)

RETRYABLE = (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError)
FATAL = (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError)


def _retryable(exc: Exception) -> bool:
    """429, 5xx, request timeouts and connection errors are worth another try."""
    if isinstance(exc, RETRYABLE):
        return True
    status = getattr(exc, "status_code", None) or 0
    return isinstance(exc, openai.APIStatusError) and (status in (408, 409, 425) or status >= 500)


class OpenAIClient(ChatClient):
    name = "openai"

    def __init__(self, config: MutationConfig, secrets: dict[str, str] | None = None):
        self.config = config
        self.secrets = secrets or {}
        self.settings = config.openai
        self._clients: dict[tuple[str, str | None], openai.AsyncOpenAI] = {}
        self._semaphore: asyncio.Semaphore | None = None
        self._failures_in_a_row = 0

    def _endpoint(self, model: ModelConfig) -> tuple[str, str | None]:
        base_url = (model.base_url or self.config.base_url or "").rstrip("/")
        return base_url, model.api_key_env or self.config.api_key_env

    def _client(self, model: ModelConfig) -> openai.AsyncOpenAI:
        key = self._endpoint(model)
        if key not in self._clients:
            base_url, key_env = key
            api_key = (self.secrets.get(key_env) or os.environ.get(key_env, "")) if key_env else ""
            self._clients[key] = openai.AsyncOpenAI(
                base_url=base_url,
                api_key=api_key or "EMPTY",  # `vllm serve` without --api-key accepts any
                timeout=self.settings.timeout_s,
                max_retries=0,
                **self._transport(),
            )
        return self._clients[key]

    def _transport(self) -> dict:
        if self.settings.transport == "httpx":
            return {}
        try:
            return {"http_client": openai.DefaultAioHttpClient(timeout=self.settings.timeout_s)}
        except (AttributeError, RuntimeError) as exc:  # an openai without the aiohttp extra
            raise ModelUnavailableError(
                f"mutation.openai.transport=aiohttp needs `pip install 'openai[aiohttp]'` "
                f"({exc}); or set mutation.openai.transport=httpx"
            ) from None

    async def start(self, models: Sequence[ModelConfig]) -> None:
        self._semaphore = asyncio.Semaphore(self.settings.max_concurrent)
        if not self.settings.check_models:
            return
        by_endpoint: dict[tuple[str, str | None], list[ModelConfig]] = {}
        for model in models:
            by_endpoint.setdefault(self._endpoint(model), []).append(model)
        try:
            for (base_url, key_env), wanted in by_endpoint.items():
                served = await self._list_models(wanted[0], base_url, key_env)
                missing = [m.name for m in wanted if m.name not in served]
                if missing:
                    raise ModelUnavailableError(
                        f"{base_url} does not serve {', '.join(missing)}; it serves: "
                        f"{', '.join(sorted(served)) or 'nothing'} (fix mutation.model, or set "
                        "mutation.openai.check_models=false for an endpoint that lists no models)"
                    )
        except BaseException:
            await self.close()  # no run will use these connections
            raise

    async def _list_models(
        self, model: ModelConfig, base_url: str, key_env: str | None
    ) -> set[str]:
        client = self._client(model)
        for attempt in range(self.settings.max_retries + 1):
            try:
                page = await client.models.list()
                return {m.id for m in page.data}
            except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
                raise ModelUnavailableError(
                    f"{base_url} refused the API key (HTTP {exc.status_code}); put a valid key "
                    f"in the environment variable {key_env or '(none: set mutation.api_key_env)'}"
                ) from None
            except Exception as exc:
                if attempt < self.settings.max_retries and _retryable(exc):
                    await asyncio.sleep(self._backoff(attempt))
                    continue
                raise ModelUnavailableError(
                    f"cannot reach the model endpoint {base_url} ({type(exc).__name__}: {exc}); "
                    "start it (e.g. `vllm serve MODEL --port 8000`) or fix mutation.base_url"
                ) from None
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int) -> float:
        delay = min(self.settings.backoff_s * 2**attempt, self.settings.backoff_max_s)
        return delay * random.uniform(0.5, 1.0)

    async def chat(
        self, prompt: Prompt, model: ModelConfig, sampling: Sampling
    ) -> list[Completion]:
        if self.settings.supports_n or sampling.n == 1:
            return await self._request(prompt, model, sampling)
        singles = [
            self._request(
                prompt,
                model,
                Sampling(
                    1,
                    sampling.temperature,
                    sampling.top_p,
                    sampling.max_tokens,
                    (sampling.seed + i) % 2**63,
                ),
            )
            for i in range(sampling.n)
        ]
        return [c for replies in await asyncio.gather(*singles) for c in replies]

    async def _request(
        self, prompt: Prompt, model: ModelConfig, sampling: Sampling
    ) -> list[Completion]:
        assert self._semaphore is not None, "start() first"
        client = self._client(model)
        retries = 0
        async with self._semaphore:
            started = time.perf_counter()
            while True:
                try:
                    # the SDK's documented request path (same client, auth, errors and
                    # parsed response as chat.completions.create) without its per-request
                    # type transform of the messages, which costs more CPU than the rest
                    response = await client.post(
                        "/chat/completions",
                        body={
                            "model": model.name,
                            "messages": [dict(m) for m in prompt.messages],
                            "n": sampling.n,
                            "temperature": sampling.temperature,
                            "top_p": sampling.top_p,
                            "max_completion_tokens": sampling.max_tokens,
                            "seed": sampling.seed % 2**63,
                        },
                        cast_to=ChatCompletion,
                    )
                    break
                except FATAL as exc:
                    raise ModelUnavailableError(
                        f"{self._endpoint(model)[0]} refused model {model.name!r} "
                        f"(HTTP {exc.status_code}: {_message(exc)})"
                    ) from None
                except Exception as exc:
                    if not _retryable(exc):
                        raise  # e.g. 400 for a prompt too long: this request's failure only
                    if retries >= self.settings.max_retries:
                        self._failures_in_a_row += 1
                        if self._failures_in_a_row >= self.settings.unavailable_after:
                            raise ModelUnavailableError(
                                f"{self._endpoint(model)[0]} failed {self._failures_in_a_row} "
                                f"requests in a row after {retries} retries each; last: "
                                f"{type(exc).__name__}: {_message(exc)}"
                            ) from None
                        raise
                    log.info("retrying %s after %s", model.name, type(exc).__name__)
                    await asyncio.sleep(self._backoff(retries))
                    retries += 1
            latency = time.perf_counter() - started
        self._failures_in_a_row = 0
        usage = response.usage
        choices = response.choices or []
        if not choices:
            raise ValueError(f"{model.name} returned no choices")
        prompt_tokens = usage.prompt_tokens if usage else 0
        per_choice = (usage.completion_tokens // len(choices)) if usage else 0
        return [
            Completion(
                text=choice.message.content or "",
                model=model.name,
                operator="",
                prompt_tokens=prompt_tokens,
                completion_tokens=per_choice,
                latency_s=latency,
                finish_reason=choice.finish_reason or "stop",
                prompt=prompt,
                temperature=sampling.temperature,
                retries=retries,
            )
            for choice in choices
        ]

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()


def _message(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error", {}).get("message") or body)[:300]
    return str(exc)[:300]
