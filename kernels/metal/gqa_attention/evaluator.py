"""Evaluator for the GQA attention kernel task (needs Apple's Metal GPU).

The candidate is data: its EVOLVE-BLOCK's KERNEL_SOURCE / KERNEL_HEADER strings, its
constants and its launch() (run in an isolated child for every shape). This process
reads the program's text but never imports or runs it: the judge
(`rayevolve/evaluators/judge/`) builds the Metal kernel itself, checks it against a
float64 reference on shapes drawn afresh each time, and times it against
mx.fast.scaled_dot_product_attention (see experiments/qwen3_gqa_attention/README.md).

Settings come from the task's `env` (the sandbox passes no other variables):
  GQA_PRESET        qwen3-0.6b (16:8:128, default), claim-40-8 (40:8:128) or tiny (4:2:64)
  GQA_PROFILE       full (default) or quick (fewer timed samples)
  QWEN3_MODEL_PATH  a local mlx-lm Qwen3 model (list it in evaluation.read_paths); enables
                    the end-to-end stage, which needs the kernel to reproduce the model's
                    greedy tokens
  E2E_TOKENS        tokens decoded per end-to-end measurement (default 64)
  E2E_AGREE_TOKENS  how many of them must equal MLX's (default: all)
  RAYEVOLVE_KERNEL_BACKEND  mlx_metal (default) or mlx_standin (tests: KERNEL_SOURCE in
                    the stand-in array language, on MLX's CPU build)
"""

import os

from rayevolve.evaluators.candidate_call import read_candidate_source
from rayevolve.evaluators.judge.attention import PROFILES, env_setting, judge_attention
from rayevolve.evaluators.judge.core import PRESETS
from rayevolve.evaluators.judge.mlx_backend import backend_for


def evaluate(program_path):
    try:
        heads = PRESETS[env_setting("GQA_PRESET", PRESETS, "qwen3-0.6b")]
        settings = PROFILES[env_setting("GQA_PROFILE", PROFILES, "full")]
        backend = backend_for(os.environ.get("RAYEVOLVE_KERNEL_BACKEND"))
    except ValueError as exc:
        return {"status": "rejected", "error": f"task settings: {exc}"}
    model_path = os.environ.get("QWEN3_MODEL_PATH")
    model, extra = None, ()
    prompt_len, new_tokens = 128, int(os.environ.get("E2E_TOKENS", "64"))
    if model_path and backend.unavailable() is None:
        from rayevolve.evaluators.decode import load_model, model_shapes

        model = load_model(model_path)
        extra = tuple(model_shapes(model, prompt_len, new_tokens))

    def decode_stage(kernel, result: dict) -> dict:
        from rayevolve.evaluators.decode import judged_kernel, measure_decode

        agree = os.environ.get("E2E_AGREE_TOKENS")
        e2e = measure_decode(
            model,
            judged_kernel(kernel),
            prompt_len=prompt_len,
            new_tokens=new_tokens,
            agree_tokens=int(agree) if agree else None,
        )
        if e2e.get("status"):  # unused by the model, or it changed the model's tokens: no score
            kept = {k: v for k, v in result.items() if k != "combined_score"}
            return kept | e2e
        return result | e2e

    return judge_attention(
        read_candidate_source(program_path),
        backend,
        heads,
        settings,
        extra_shapes=extra,
        after=decode_stage if model is not None else None,
    ).result
