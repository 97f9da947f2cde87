"""Evaluator for the GQA attention kernel task on NVIDIA GPUs (Triton).

The candidate is data: its EVOLVE-BLOCK's KERNELS string (Triton source: @triton.jit
functions, the two Triton imports, literals), its constants and its launch() (run in an
isolated child for every shape; it returns scratch buffers and launches). This process
reads the program's text but never imports or runs it: the judge
(`rayevolve/evaluators/judge/`) compiles the kernels itself, checks them against a
float64 reference on shapes drawn afresh each time, and times them, from CUDA graphs
with CUDA events, against the fastest of PyTorch's SDPA backends for each shape.

Settings come from the task's `env`:
  GQA_PRESET  qwen3-0.6b (16:8:128, default), claim-40-8 (40:8:128) or tiny (4:2:64)
  GQA_PROFILE nvidia (default: decode at batch 1 over 1024..32768 keys, and batches 8
              and 32), nvidia_quick, full or quick (the Metal task's shapes), or
              interpret (Triton's interpreter on the CPU: correctness on short shapes
              only; for tests)
  RAYEVOLVE_KERNEL_BACKEND  torch_cuda (default) or torch_interpret
"""

from rayevolve.evaluators.candidate_call import read_candidate_source
from rayevolve.evaluators.judge.attention import PROFILES, env_setting, judge_attention
from rayevolve.evaluators.judge.core import PRESETS

BACKENDS = ("torch_cuda", "torch_interpret")


def evaluate(program_path):
    try:
        heads = PRESETS[env_setting("GQA_PRESET", PRESETS, "qwen3-0.6b")]
        settings = PROFILES[env_setting("GQA_PROFILE", PROFILES, "nvidia")]
        backend_name = env_setting("RAYEVOLVE_KERNEL_BACKEND", BACKENDS, "torch_cuda")
    except ValueError as exc:
        return {"status": "rejected", "error": f"task settings: {exc}"}
    try:
        from rayevolve.evaluators.judge.torch_backend import TorchBackend
    except ImportError as exc:
        return {"status": "unsupported_platform", "error": f"PyTorch is not installed here: {exc}"}
    backend = TorchBackend(interpret=backend_name == "torch_interpret")
    source = read_candidate_source(program_path)
    return judge_attention(source, backend, heads, settings).result
