"""The attention harness on Linux: MLX on the CPU, stand-in "kernels" built from MLX ops.

The harness must pass a correct kernel and reject each way a kernel can fake it."""

import math
import time

import mlx.core as mx
import numpy as np
import pytest

from rayevolve.evaluation import attention
from rayevolve.evaluation.attention import (
    PRESETS,
    AttentionShape,
    baseline,
    correctness_shapes,
    evaluate_attention,
    make_inputs,
    reference,
    timing_shapes,
)
from rayevolve.evaluation.metal import classify_mlx_error

HQ, HKV, D = 4, 2, 64  # small heads: the suite's lengths, at a fraction of the cost
SUITE = correctness_shapes(HQ, HKV, D)
TIMED = [AttentionShape(1, HQ, HKV, D, 1, 512)]


def evaluate(candidate, **kw):
    kw.setdefault("correctness", SUITE)
    kw.setdefault("timing", TIMED)
    kw.setdefault("reps", 5)
    kw.setdefault("warmup", 1)
    return evaluate_attention(candidate, **kw)


def ops_kernel(q, k, v, *, scale, causal):
    """A correct stand-in: grouped-query attention from MLX ops, in the input dtype."""
    group = q.shape[1] // k.shape[1]
    k, v = mx.repeat(k, group, axis=1), mx.repeat(v, group, axis=1)
    scores = (q.astype(mx.float32) @ k.astype(mx.float32).transpose(0, 1, 3, 2)) * scale
    if causal:
        L, S = q.shape[2], k.shape[2]
        scores = mx.where(mx.arange(S)[None, :] <= mx.arange(L)[:, None] + (S - L), scores, -mx.inf)
    return (mx.softmax(scores, axis=-1) @ v.astype(mx.float32)).astype(q.dtype)


def test_shapes_cover_decode_chunked_prefill_odd_and_long():
    labels = {s.label for s in SUITE}
    assert {"decode_L1_S1", "decode_L1_S4096", "chunk_L17_S300", "prefill_L127_S127"} <= labels
    assert any(not s.causal for s in SUITE) and any(s.batch > 1 for s in SUITE)
    assert PRESETS["qwen3-0.6b"] == (16, 8, 128) and PRESETS["claim-40-8"] == (40, 8, 128)
    assert all(s.q_len == 1 or s.q_len == s.kv_len for s in timing_shapes(16, 8, 128))


def test_shape_validation():
    with pytest.raises(ValueError, match="multiple"):
        AttentionShape(1, 16, 5, 128, 1, 10)
    with pytest.raises(ValueError, match="L <= S"):
        AttentionShape(1, 16, 8, 128, 10, 5)


def test_causal_mask_is_aligned_to_the_end_of_the_cache():
    shape = AttentionShape(1, HQ, HKV, D, 3, 10)
    q, k, v = make_inputs(shape, "float16", 0, probe=False)
    out = reference(q, k, v, scale=0.125, causal=True)
    only_first_query = reference(q[:, :, :1], k[:, :, :8], v[:, :, :8], scale=0.125, causal=False)
    assert np.allclose(np.asarray(out[:, :, :1]), np.asarray(only_first_query), atol=1e-5)


def test_probe_inputs_make_the_chosen_key_dominate():
    shape = AttentionShape(1, HQ, HKV, D, 1, 4096)
    q, k, v = make_inputs(shape, "float32", 0, probe=True)
    scores = (q @ mx.repeat(k, 2, axis=1).transpose(0, 1, 3, 2)) / math.sqrt(D)
    weights = mx.softmax(scores, axis=-1)
    assert weights.max(axis=-1).min().item() > 0.5  # one key carries most of the weight


def test_mlx_sdpa_passes_its_own_suite():
    result = evaluate(baseline)
    assert "status" not in result, result
    assert 0.5 < result["combined_score"] < 2.0


def test_correct_stand_in_kernel_is_scored_and_timed():
    result = evaluate(ops_kernel)
    assert "status" not in result, result
    assert (
        result["checks_passed"] == len(SUITE) * 2 * 2 * 2
    )  # shapes x dtypes x seeds x input kinds
    assert result["speedup_decode_L1_S512"] > 0
    assert result["candidate_ms_decode_L1_S512"] > 0 and result["baseline_ms_decode_L1_S512"] > 0
    assert "speedup" in result["timing_table"]


def test_cached_reference_output_is_rejected():
    cache = {}

    def cached(q, k, v, *, scale, causal):
        key = (q.shape, k.shape, q.dtype, causal)
        if key not in cache:
            cache[key] = baseline(q, k, v, scale=scale, causal=causal)
        return cache[key]

    result = evaluate(cached)
    assert result["status"] == "incorrect"
    assert "seed 0 (probe inputs)" in result["error"] or "seed 1" in result["error"]


def test_unwritten_outputs_are_rejected():
    def partial(q, k, v, *, scale, causal):
        out = ops_kernel(q, k, v, scale=scale, causal=causal)
        last = out.shape[-1] - 1
        return mx.where(
            mx.arange(out.shape[-1]) == last, mx.array(float("nan"), dtype=out.dtype), out
        )

    result = evaluate(partial)
    assert result["status"] == "incorrect"
    assert "non-finite" in result["error"] and "unwritten" in result["error"]


def test_kernel_right_only_for_the_timed_shape_is_rejected():
    def special(q, k, v, *, scale, causal):
        if q.shape[2] == 1 and k.shape[2] == 512:
            return ops_kernel(q, k, v, scale=scale, causal=causal)
        return mx.zeros(q.shape, dtype=q.dtype)

    result = evaluate(special)
    assert result["status"] == "incorrect"


def test_kernel_wrong_only_while_timed_is_rejected():
    calls = {"n": 0}

    def sneaky(q, k, v, *, scale, causal):
        calls["n"] += 1
        if 90 < calls["n"] < 130:  # past the correctness suite, inside the timing loop
            return mx.zeros(q.shape, dtype=q.dtype)
        return ops_kernel(q, k, v, scale=scale, causal=causal)

    result = evaluate(sneaky, reps=60)
    assert result["status"] == "incorrect" and "while timed" in result["error"]


def test_kernel_that_mutates_its_inputs_is_rejected():
    def mutating(q, k, v, *, scale, causal):
        out = ops_kernel(q, k, v, scale=scale, causal=causal)
        mx.eval(out)
        np.asarray(memoryview(k))[...] = 0  # writes through to the input's buffer
        return out

    result = evaluate(mutating)
    assert result["status"] == "incorrect"
    assert "input k was modified" in result["error"]


def test_off_by_one_at_the_causal_boundary_is_caught_by_probe_inputs():
    def leaky(q, k, v, *, scale, causal):
        L, S = q.shape[2], k.shape[2]
        if not causal or L == S:
            return ops_kernel(q, k, v, scale=scale, causal=causal)
        group = q.shape[1] // k.shape[1]
        kk, vv = mx.repeat(k, group, axis=1), mx.repeat(v, group, axis=1)
        scores = (q.astype(mx.float32) @ kk.astype(mx.float32).transpose(0, 1, 3, 2)) * scale
        visible = mx.arange(S)[None, :] <= mx.arange(L)[:, None] + (S - L) + 1  # one key too many
        scores = mx.where(visible, scores, -mx.inf)
        return (mx.softmax(scores, axis=-1) @ vv.astype(mx.float32)).astype(q.dtype)

    result = evaluate(leaky)
    assert result["status"] == "incorrect"
    assert "chunk_L17_S300" in result["error"]


def test_wrong_kv_head_mapping_is_rejected():
    def interleaved(q, k, v, *, scale, causal):
        reps = q.shape[1] // k.shape[1]
        return ops_kernel(
            q, mx.tile(k, (1, reps, 1, 1)), mx.tile(v, (1, reps, 1, 1)), scale=scale, causal=causal
        )

    assert evaluate(interleaved)["status"] == "incorrect"


def test_too_slow_kernel_is_classified():
    def slow(q, k, v, *, scale, causal):
        if q.shape[2] == 1 and k.shape[2] == 512:
            time.sleep(0.5)  # >100x MLX at this size on any machine
        return ops_kernel(q, k, v, scale=scale, causal=causal)

    result = evaluate(slow)
    assert result["status"] == "too_slow" and "slower" in result["error"]


def test_implausible_speedup_is_remeasured_and_kept_when_it_reproduces():
    result = evaluate(ops_kernel, implausible=0.0)  # every result counts as implausible
    assert "status" not in result, result
    assert result["remeasured"] == 1.0


def test_implausible_speedup_that_does_not_reproduce_is_rejected(monkeypatch):
    measurements = iter(
        [
            {
                "decode_L1_S512": {
                    "speedup": 3.0,
                    "candidate_ms": 1,
                    "baseline_ms": 3,
                    "spread": 0.1,
                }
            },
            {
                "decode_L1_S512": {
                    "speedup": 1.0,
                    "candidate_ms": 1,
                    "baseline_ms": 1,
                    "spread": 0.1,
                }
            },
        ]
    )
    monkeypatch.setattr(attention, "_time", lambda *a, **k: next(measurements))
    result = evaluate(ops_kernel)
    assert result["status"] == "rejected"
    assert "did not reproduce" in result["error"] and "3.000x" in result["error"]


def test_compile_errors_are_classified_with_the_compiler_message():
    def broken(q, k, v, *, scale, causal):
        raise RuntimeError(
            "[metal::Device] Unable to build metal library from source\nprogram_source:7:9: error: use of undeclared identifier 'qq'"
        )

    result = evaluate(broken)
    assert result["status"] == "compile_error"
    assert "undeclared identifier 'qq'" in result["error"]
    assert (
        classify_mlx_error(
            RuntimeError("[METAL] Command buffer execution failed: Caused GPU Timeout Error")
        )[0]
        == "timeout"
    )
    assert (
        classify_mlx_error(
            RuntimeError("[METAL] Command buffer execution failed: Invalid Resource")
        )[0]
        == "crashed"
    )
