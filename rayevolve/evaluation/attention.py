"""Evaluating grouped-query attention kernels against `mx.fast.scaled_dot_product_attention`.

A candidate is ``attention(q, k, v, *, scale, causal) -> out`` with q of shape
(batch, q_heads, L, head_dim) and k, v of shape (batch, kv_heads, S, head_dim); L and S
are independent (decode: L = 1 with a long KV cache; prefill: L = S). Causal masking is
aligned to the end, as in MLX and in decoding with a cache: query l sees keys
0 .. l + S - L.

Correctness comes first, on every shape of the suite, for every dtype, for several
seeds, each with fresh inputs, against a float32 reference and against MLX's own kernel:
outputs must be finite (a kernel's outputs start as NaN, so unwritten elements fail),
inputs must be unchanged, and errors must lie within tolerances declared here. Random
inputs make attention nearly uniform over long caches, which hides off-by-one errors at
the causal boundary; "probe" inputs therefore align each query with one chosen key
(the first, the last visible, or the first masked one) so that key dominates.

Only a kernel that passed is timed: candidate and baseline alternate in this process,
on fresh inputs, and the timed outputs are checked again. The score is the geometric
mean over timing shapes of baseline time / candidate time. A speedup above
`IMPLAUSIBLE_SPEEDUP` is measured again independently; the lower of the two counts,
and if they disagree the result is rejected.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from rayevolve.evaluation.metal import (
    IMPLAUSIBLE_SPEEDUP,
    REMEASURE_AGREEMENT,
    Tolerance,
    classify_mlx_error,
    compare,
    geometric_mean,
    time_alternating,
)

# (q_heads, kv_heads, head_dim)
PRESETS = {"qwen3-0.6b": (16, 8, 128), "claim-40-8": (40, 8, 128)}

# Declared before any measurement. SDPA itself is within 0.002 (float16) and 0.019
# (bfloat16) of the float32 reference on the suite; these leave room for a different
# but sound order of accumulation, not for a wrong answer.
TOLERANCES = {
    "float16": Tolerance(atol=6e-3, rtol=1e-2),
    "bfloat16": Tolerance(atol=4e-2, rtol=3e-2),
}
TOO_SLOW_FACTOR = 100.0  # this many times slower than MLX: not worth timing (the simple
# first kernel may well be 10-50x slower at long caches and must still get a score)

Candidate = Callable[..., object]


@dataclass(frozen=True)
class AttentionShape:
    batch: int
    q_heads: int
    kv_heads: int
    head_dim: int
    q_len: int
    kv_len: int
    causal: bool = True

    def __post_init__(self) -> None:
        if self.q_heads % self.kv_heads:
            raise ValueError(
                f"q_heads {self.q_heads} is not a multiple of kv_heads {self.kv_heads}"
            )
        if self.causal and self.q_len > self.kv_len:
            raise ValueError(f"causal attention needs L <= S, got L={self.q_len}, S={self.kv_len}")
        if min(self.batch, self.q_len, self.kv_len, self.head_dim) < 1:
            raise ValueError(f"every dimension must be >= 1: {self}")

    @property
    def label(self) -> str:
        kind = "decode" if self.q_len == 1 else "prefill" if self.q_len == self.kv_len else "chunk"
        mask = "" if self.causal else "_nomask"
        batch = f"_b{self.batch}" if self.batch > 1 else ""
        return f"{kind}_L{self.q_len}_S{self.kv_len}{batch}{mask}"


def correctness_shapes(q_heads: int, kv_heads: int, head_dim: int) -> list[AttentionShape]:
    """Decode with short, odd and long caches, chunked prefill (L != S), prefill with
    odd lengths, no mask, and batch > 1."""
    lengths = [(1, 1), (1, 37), (1, 1037), (1, 4096), (17, 300), (64, 64), (127, 127)]
    shapes = [AttentionShape(1, q_heads, kv_heads, head_dim, L, S) for L, S in lengths]
    shapes.append(AttentionShape(1, q_heads, kv_heads, head_dim, 5, 33, causal=False))
    shapes.append(AttentionShape(2, q_heads, kv_heads, head_dim, 1, 513))
    return shapes


def timing_shapes(q_heads: int, kv_heads: int, head_dim: int) -> list[AttentionShape]:
    """What a Qwen3 decode step and a prompt look like."""
    return [
        AttentionShape(1, q_heads, kv_heads, head_dim, L, S)
        for L, S in ((1, 1024), (1, 4096), (256, 256))
    ]


def make_inputs(shape: AttentionShape, dtype: str, seed: int, probe: bool):
    """Fresh (q, k, v) as MLX arrays of `dtype`; `probe` aligns queries with chosen keys."""
    import mlx.core as mx

    rng = np.random.default_rng(seed)
    b, hq, hkv, d, L, S = (
        shape.batch,
        shape.q_heads,
        shape.kv_heads,
        shape.head_dim,
        shape.q_len,
        shape.kv_len,
    )
    q = rng.standard_normal((b, hq, L, d), dtype=np.float32)
    k = rng.standard_normal((b, hkv, S, d), dtype=np.float32)
    v = rng.standard_normal((b, hkv, S, d), dtype=np.float32)
    if probe:
        group = hq // hkv
        for bi in range(b):
            for h in range(hq):
                for row in range(L):
                    last = row + S - L if shape.causal else S - 1
                    targets = [
                        0,
                        last,
                        last + 1 if shape.causal and last + 1 < S else int(rng.integers(S)),
                        int(rng.integers(S)),
                    ]
                    # score of the target ~ gain * sqrt(d) = 16: it carries most of the weight
                    q[bi, h, row] = k[bi, h // group, targets[(h + row) % len(targets)]] * (
                        16.0 / math.sqrt(d)
                    )
    dt = getattr(mx, dtype)
    return tuple(mx.array(x).astype(dt) for x in (q, k, v))


def reference(q, k, v, *, scale: float, causal: bool):
    """Attention in float32 from the same (rounded) inputs, written out in full."""
    import mlx.core as mx

    q, k, v = (x.astype(mx.float32) for x in (q, k, v))
    group = q.shape[1] // k.shape[1]
    k, v = mx.repeat(k, group, axis=1), mx.repeat(v, group, axis=1)
    scores = (q @ k.transpose(0, 1, 3, 2)) * scale
    if causal:
        L, S = q.shape[2], k.shape[2]
        visible = mx.arange(S)[None, :] <= mx.arange(L)[:, None] + (S - L)
        scores = mx.where(visible, scores, -mx.inf)
    return mx.softmax(scores, axis=-1) @ v


def baseline(q, k, v, *, scale: float, causal: bool):
    """MLX's own kernel: the one to beat."""
    import mlx.core as mx

    return mx.fast.scaled_dot_product_attention(
        q, k, v, scale=scale, mask="causal" if causal else None
    )


def _float32(x) -> np.ndarray:
    import mlx.core as mx

    return np.asarray(x.astype(mx.float32))


def check_outputs(out, q, k, v, shape: AttentionShape, dtype: str, scale: float) -> str | None:
    """None if `out` is right for these inputs, else what is wrong and where."""
    import mlx.core as mx

    expected_shape = (shape.batch, shape.q_heads, shape.q_len, shape.head_dim)
    if not isinstance(out, mx.array):
        return f"returned {type(out).__name__}, expected an mx.array"
    if tuple(out.shape) != expected_shape or out.dtype != q.dtype:
        return f"returned shape {tuple(out.shape)} {out.dtype}, expected {expected_shape} {q.dtype}"
    tolerance = TOLERANCES[dtype]
    mismatch = compare(
        _float32(out), _float32(reference(q, k, v, scale=scale, causal=shape.causal)), tolerance
    )
    if mismatch:
        return f"differs from the float32 reference: {mismatch.describe()}"
    loose = Tolerance(2 * tolerance.atol, 2 * tolerance.rtol)
    mismatch = compare(
        _float32(out), _float32(baseline(q, k, v, scale=scale, causal=shape.causal)), loose
    )
    if mismatch:
        return f"differs from mx.fast.scaled_dot_product_attention: {mismatch.describe()}"
    return None


def run_checked(candidate: Candidate, shape: AttentionShape, dtype: str, seed: int, probe: bool):
    """Call the candidate on fresh inputs; return (output, problem or None)."""
    import mlx.core as mx

    q, k, v = make_inputs(shape, dtype, seed, probe)
    snapshot = [x + 0 for x in (q, k, v)]
    mx.eval(q, k, v, *snapshot)
    scale = 1.0 / math.sqrt(shape.head_dim)
    out = candidate(q, k, v, scale=scale, causal=shape.causal)
    mx.eval(out)
    for name, x, before in zip("qkv", (q, k, v), snapshot, strict=True):
        if not mx.array_equal(x, before).item():
            return out, f"input {name} was modified by the kernel"
    return out, check_outputs(out, q, k, v, shape, dtype, scale)


def _failure(status: str, message: str, **metrics) -> dict:
    return {"status": status, "error": message, **metrics}


def evaluate_attention(
    candidate: Candidate,
    *,
    correctness: list[AttentionShape],
    timing: list[AttentionShape],
    dtypes: tuple[str, ...] = ("float16", "bfloat16"),
    timing_dtype: str = "bfloat16",
    seeds: tuple[int, ...] = (0, 1),
    warmup: int = 3,
    reps: int = 30,
    implausible: float = IMPLAUSIBLE_SPEEDUP,
    seed_offset: int = 0,
) -> dict:
    """The evaluator's verdict for one candidate (a dict as `evaluate` returns it)."""
    checked = 0
    try:
        for dtype in dtypes:
            for shape in correctness:
                for seed in seeds:
                    for probe in (False, True):
                        _, problem = run_checked(candidate, shape, dtype, seed_offset + seed, probe)
                        if problem:
                            inputs = "probe" if probe else "random"
                            return _failure(
                                "incorrect",
                                f"{shape.label} {dtype} seed {seed} ({inputs} inputs): {problem}",
                                checks_passed=checked,
                            )
                        checked += 1
    except Exception as exc:  # compile errors and GPU faults surface here, at mx.eval
        status, message = classify_mlx_error(exc)
        return _failure(status, message, checks_passed=checked)

    result: dict = {"checks_passed": float(checked)}
    try:
        first = _time(candidate, timing, timing_dtype, warmup, reps, seed=10_000 + seed_offset)
    except _Rejected as exc:
        return _failure(exc.status, exc.message, checks_passed=checked)
    except Exception as exc:
        status, message = classify_mlx_error(exc)
        return _failure(status, message, checks_passed=checked)
    speedups = {label: t["speedup"] for label, t in first.items()}
    result["remeasured"] = 0.0
    if max(speedups.values()) > implausible:
        second = _time(
            candidate,
            list(reversed(timing)),
            timing_dtype,
            warmup,
            2 * reps,
            seed=20_000 + seed_offset,
            baseline_first=True,
        )
        for label, s1 in speedups.items():
            s2 = second[label]["speedup"]
            if abs(s1 - s2) > REMEASURE_AGREEMENT * min(s1, s2):
                return _failure(
                    "rejected",
                    f"implausible speedup on {label} did not reproduce: {s1:.3f}x, then {s2:.3f}x in an independent re-measurement",
                    checks_passed=checked,
                )
            speedups[label] = min(s1, s2)
        result["remeasured"] = 1.0
    lines = ["shape | candidate ms | MLX ms | speedup | spread"]
    for label, t in first.items():
        result[f"speedup_{label}"] = speedups[label]
        result[f"candidate_ms_{label}"] = t["candidate_ms"]
        result[f"baseline_ms_{label}"] = t["baseline_ms"]
        result[f"spread_{label}"] = t["spread"]
        lines.append(
            f"{label} | {t['candidate_ms']:.4f} | {t['baseline_ms']:.4f} | {speedups[label]:.3f}x | {t['spread']:.2f}"
        )
    result["combined_score"] = geometric_mean(list(speedups.values()))
    result["timing_table"] = "\n".join(lines)
    return result


class _Rejected(Exception):
    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _time(
    candidate: Candidate,
    shapes: list[AttentionShape],
    dtype: str,
    warmup: int,
    reps: int,
    *,
    seed: int,
    baseline_first: bool = False,
) -> dict:
    import time

    import mlx.core as mx

    out: dict = {}
    for index, shape in enumerate(shapes):
        q, k, v = make_inputs(shape, dtype, seed + index, probe=False)
        mx.eval(q, k, v)
        scale = 1.0 / math.sqrt(shape.head_dim)
        calls = {
            "candidate": partial(candidate, q, k, v, scale=scale, causal=shape.causal),
            "baseline": partial(baseline, q, k, v, scale=scale, causal=shape.causal),
        }
        if baseline_first:
            calls = {"baseline": calls["baseline"], "candidate": calls["candidate"]}
        mx.eval(calls["baseline"]())
        once = {}
        for name, call in calls.items():
            mx.eval(call())  # compile
            started = time.perf_counter()
            mx.eval(call())
            once[name] = time.perf_counter() - started
        if once["candidate"] > TOO_SLOW_FACTOR * once["baseline"] and once["candidate"] > 1e-3:
            raise _Rejected(
                "too_slow",
                f"{shape.label}: {once['candidate'] * 1e3:.2f} ms against MLX's {once['baseline'] * 1e3:.2f} ms (more than {TOO_SLOW_FACTOR:g}x slower)",
            )
        kept: dict[str, list] = {}
        timings = time_alternating(
            calls, warmup=warmup, reps=reps, kept=kept, keep_every=max(1, reps // 6)
        )
        for timed in kept["candidate"]:  # right on the checks, but also while being timed?
            problem = check_outputs(timed, q, k, v, shape, dtype, scale)
            if problem:
                raise _Rejected(
                    "incorrect", f"{shape.label} (outputs produced while timed): {problem}"
                )
        cand, base = timings["candidate"], timings["baseline"]
        out[shape.label] = {
            "speedup": base.median_s / cand.median_s,
            "candidate_ms": cand.median_s * 1e3,
            "baseline_ms": base.median_s * 1e3,
            "spread": max(cand.spread, base.spread),
        }
    return out
