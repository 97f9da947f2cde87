"""Evaluator for the GQA attention kernel task (needs Apple's Metal GPU).

Settings come from the task's `env` (the sandbox passes no other variables):
  GQA_PRESET        qwen3-0.6b (16:8:128, default) or claim-40-8 (40:8:128)
  QWEN3_MODEL_PATH  a local mlx-lm Qwen3 model; enables the end-to-end decode stage
  E2E_TOKENS        tokens decoded per end-to-end measurement (default 64)

Stage 1 is the whole kernel evaluation (correctness on the suite, then timing against
mx.fast.scaled_dot_product_attention); its score is the geometric-mean speedup. If a
model is configured, a kernel that passed is also run inside the model, in this same
process, and must actually be called there.
"""

import importlib.util
import os

from rayevolve.evaluation.attention import (
    PRESETS,
    correctness_shapes,
    evaluate_attention,
    timing_shapes,
)
from rayevolve.evaluation.metal import metal_available, unsupported_platform


def _load(path):
    spec = importlib.util.spec_from_file_location("candidate_kernel", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def evaluate(program_path):
    if not metal_available():
        return unsupported_platform()
    preset = os.environ.get("GQA_PRESET", "qwen3-0.6b")
    if preset not in PRESETS:
        return {
            "status": "rejected",
            "error": f"unknown GQA_PRESET {preset!r}; one of {sorted(PRESETS)}",
        }
    q_heads, kv_heads, head_dim = PRESETS[preset]
    module = _load(program_path)
    result = evaluate_attention(
        module.attention,
        correctness=correctness_shapes(q_heads, kv_heads, head_dim),
        timing=timing_shapes(q_heads, kv_heads, head_dim),
    )
    model_path = os.environ.get("QWEN3_MODEL_PATH")
    if model_path and "status" not in result:
        from rayevolve.evaluation.decode import load_model, measure_decode

        e2e = measure_decode(
            load_model(model_path),
            module.attention,
            new_tokens=int(os.environ.get("E2E_TOKENS", "64")),
        )
        if e2e.get("status"):  # the kernel was not used by the model: no score
            return {key: value for key, value in result.items() if key != "combined_score"} | e2e
        result.update(e2e)
    return result
