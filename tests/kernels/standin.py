"""Stand-in kernel programs for the kernel judge's tests (the Metal task's frame, with
KERNEL_SOURCE in the stand-in array language of rayevolve/evaluators/judge/standin.py),
and the entry point a run uses to judge them: the Metal task's evaluate() in the
sandbox, on MLX's CPU build."""

from rayevolve.sandbox.runner import SandboxLimits, run_candidate
from tests.conftest import ROOT

TASK = ROOT / "kernels" / "metal" / "gqa_attention"
ENV = {"RAYEVOLVE_KERNEL_BACKEND": "mlx_standin", "GQA_PRESET": "tiny", "GQA_PROFILE": "ci"}
LIMITS = SandboxLimits(
    timeout_s=240, memory_limit_mb=0, output_limit_bytes=8192, file_limit_bytes=64 << 20
)


def judge(code: str, task_dir=TASK, env=ENV):
    return run_candidate(
        code,
        suffix=".py",
        evaluator=task_dir / "evaluator.py",
        task_dir=task_dir,
        limits=LIMITS,
        env=env,
        launcher="spawn",
    )


def assert_failed(result, status, *words):
    assert result.status == status, (result.status, result.artifacts.get("error"))
    assert result.score is None
    for word in words:
        assert word in result.artifacts["error"], result.artifacts["error"]


CORRECT = """
group = q.shape[1] // k.shape[1]
kk = mx.repeat(k, group, axis=1).astype(mx.float32)
vv = mx.repeat(v, group, axis=1).astype(mx.float32)
scores = mx.matmul(q.astype(mx.float32), kk.swapaxes(2, 3)) * scale
if causal:
    L = q.shape[2]
    S = k.shape[2]
    visible = mx.arange(S)[None, :] <= mx.arange(L)[:, None] + (S - L)
    scores = mx.where(visible, scores, -mx.inf)
out = mx.matmul(mx.softmax(scores, axis=-1), vv).astype(q.dtype)
"""

LAUNCH = """
THREADS = 128

def launch(batch, q_heads, kv_heads, q_len, kv_len, head_dim):
    rows = batch * q_heads * q_len
    return (rows * 32, 1, 1), (THREADS, 1, 1), [("BLOCK", 64)]
"""


def program(kernel: str = CORRECT, block_extra: str = LAUNCH, frame: str = "") -> str:
    """A whole candidate program: a frame (never read by the judge) around one block."""
    return (
        '"""A stand-in GQA kernel."""\n'
        f"{frame}\n"
        "# EVOLVE-BLOCK-START\n"
        f"KERNEL_SOURCE = {kernel!r}\n"
        'KERNEL_HEADER = ""\n'
        f"{block_extra}\n"
        "# EVOLVE-BLOCK-END\n"
    )


# lines for launch()'s body that leave its namespace: a running generator's frame leads to
# launch()'s caller, whose builtins are the real ones (`load` imports any module); the
# static check of the block cannot see this, and need not: nothing of the judge's is there
ESCAPE = (
    "    gens = []\n"
    "    gen = (gens[0].gi_frame.f_back.f_back for x in [1])\n"
    "    gens.append(gen)\n"
    "    caller = list(gen)[0]\n"
    "    load = caller.f_builtins['__import__']('importlib').import_module\n"
)
