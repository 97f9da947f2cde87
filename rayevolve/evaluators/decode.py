"""End-to-end check of an attention kernel inside a real model: greedy decoding with
mlx-lm's Qwen3, in the judging process, with and without the kernel patched in.

The published claim this project started from never loaded its evolved kernel in its
benchmark. Here the patch replaces the attention function the model's layers call, every
call it serves is counted, and a kernel that is never called fails the stage. The
kernel is the one the judge built from the candidate's data (`judge/attention.py`),
never candidate Python. The greedy tokens with the kernel must equal MLX's for the
first `agree_tokens` tokens of every repetition, or the stage fails with the position of
the first difference. Decode speed (tokens/s, KV cache included) is measured patched
and unpatched, alternating, and counts only then.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from rayevolve.outcome import Outcome


@dataclass
class CallCount:
    kernel: int = 0
    fallback: int = 0  # calls the kernel cannot serve (quantized cache, array masks, sinks)


@contextlib.contextmanager
def patched(candidate: Callable, counts: CallCount) -> Iterator[None]:
    """Route mlx-lm Qwen3 attention through `candidate` while the context is open."""
    from mlx_lm.models import qwen3

    original = qwen3.scaled_dot_product_attention

    def attention(queries, keys, values, cache, scale, mask, sinks=None):
        servable = (
            sinks is None
            and not isinstance(keys, tuple)
            and (mask is None or isinstance(mask, str))
        )
        if not servable:
            counts.fallback += 1
            return original(queries, keys, values, cache=cache, scale=scale, mask=mask, sinks=sinks)
        counts.kernel += 1
        return candidate(queries, keys, values, scale=scale, causal=mask == "causal")

    qwen3.scaled_dot_product_attention = attention
    try:
        yield
    finally:
        qwen3.scaled_dot_product_attention = original


def model_shapes(model, prompt_len: int, new_tokens: int):
    """The attention shapes a greedy decode of the model calls: the prompt's prefill
    (causal), then one query against a cache one longer each step."""
    from rayevolve.evaluators.judge.core import AttentionShape

    args = model.args
    heads = (args.num_attention_heads, args.num_key_value_heads, args.head_dim)
    shapes = [AttentionShape(1, *heads, prompt_len, prompt_len, True)]
    for step in range(1, new_tokens + 2):
        for causal in (False, True):  # one query: the mask changes nothing; either is asked
            shapes.append(AttentionShape(1, *heads, 1, prompt_len + step, causal))
    return shapes


def judged_kernel(kernel) -> Callable:
    """``attention(q, k, v, *, scale, causal)`` from a kernel the judge built, which knows
    each shape's launch plan (computed in advance for `model_shapes`)."""
    from rayevolve.evaluators.judge.core import AttentionShape

    def attention(q, k, v, *, scale, causal):
        b, hq, L, d = q.shape
        shape = AttentionShape(b, hq, k.shape[1], d, L, k.shape[2], bool(causal))
        if abs(scale - shape.scale) > 1e-6 * shape.scale:
            raise ValueError(f"the model's scale {scale} is not 1/sqrt(head_dim)")
        return kernel(q, k, v, shape)

    return attention


def load_model(path: str):
    from mlx_lm import load

    model, _ = load(path)
    return model


def greedy_decode(model, prompt: list[int], new_tokens: int) -> tuple[list[int], float]:
    """(generated tokens, decode tokens/s); the prompt's prefill is not timed."""
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    cache = make_prompt_cache(model)
    logits = model(mx.array([prompt]), cache=cache)
    token = mx.argmax(logits[:, -1, :], axis=-1)
    mx.eval(token)
    tokens = []
    started = time.perf_counter()
    for _ in range(new_tokens):
        tokens.append(int(token.item()))
        logits = model(token[:, None], cache=cache)
        token = mx.argmax(logits[:, -1, :], axis=-1)
        mx.eval(token)
    return tokens, new_tokens / (time.perf_counter() - started)


def measure_decode(
    model,
    candidate: Callable,
    *,
    prompt_len: int = 128,
    new_tokens: int = 64,
    reps: int = 3,
    seed: int = 0,
    agree_tokens: int | None = None,
) -> dict:
    """Metrics of the end-to-end stage, or a dict with "status" if the kernel was not
    used or changed the model's greedy tokens within the first `agree_tokens` (default:
    all of them)."""
    import numpy as np

    vocab = int(model.args.vocab_size)
    prompt = [int(t) for t in np.random.default_rng(seed).integers(0, vocab, size=prompt_len)]
    counts = CallCount()
    rates = {"kernel": [], "mlx": []}
    agreement = []
    for rep in range(reps):
        order = ("kernel", "mlx") if rep % 2 == 0 else ("mlx", "kernel")
        produced = {}
        for which in order:
            if which == "kernel":
                with patched(candidate, counts):
                    produced[which], rate = greedy_decode(model, prompt, new_tokens)
            else:
                produced[which], rate = greedy_decode(model, prompt, new_tokens)
            rates[which].append(rate)
        same = sum(a == b for a, b in zip(produced["kernel"], produced["mlx"], strict=True))
        agreement.append(same / new_tokens)
        wanted = new_tokens if agree_tokens is None else min(agree_tokens, new_tokens)
        for position, (ours, theirs) in enumerate(
            zip(produced["kernel"][:wanted], produced["mlx"][:wanted], strict=True)
        ):
            if ours != theirs:
                return {
                    "status": Outcome.INCORRECT,
                    "error": (
                        f"inside the model the kernel changes the greedy decode: token {position} "
                        f"is {ours}, MLX's is {theirs} (the first {wanted} must agree)"
                    ),
                    "e2e_kernel_calls": float(counts.kernel),
                }
    if counts.kernel == 0:
        return {
            "status": Outcome.REJECTED,
            "error": f"the patched kernel was never called in the model ({counts.fallback} calls fell back to MLX)",
        }
    kernel_rate, mlx_rate = float(np.median(rates["kernel"])), float(np.median(rates["mlx"]))
    return {
        "e2e_tokens_per_s": kernel_rate,
        "e2e_mlx_tokens_per_s": mlx_rate,
        "e2e_speedup": kernel_rate / mlx_rate,
        "e2e_kernel_calls": float(counts.kernel),
        "e2e_fallback_calls": float(counts.fallback),
        "e2e_token_agreement": float(np.mean(agreement)),
    }
