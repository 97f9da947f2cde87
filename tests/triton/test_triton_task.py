"""The Triton GQA task on the CPU: its kernels under Triton's interpreter, through the
entry point a run uses (the task's evaluate() in the sandbox), and the torch backend's
checks of launch plans."""

import pytest

from rayevolve.outcome import Outcome
from rayevolve.sandbox.runner import SandboxLimits, run_candidate
from tests.conftest import ROOT

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

TASK = ROOT / "kernels" / "triton" / "gqa_attention"
INITIAL = (TASK / "initial_program.py").read_text()
ENV = {
    "RAYEVOLVE_KERNEL_BACKEND": "torch_interpret",
    "GQA_PROFILE": "interpret",
    "GQA_PRESET": "tiny",
    "TRITON_INTERPRET": "1",
}
LIMITS = SandboxLimits(
    timeout_s=600, memory_limit_mb=0, output_limit_bytes=8192, file_limit_bytes=1 << 28
)


def judge(code: str):
    return run_candidate(
        code, suffix=".py", evaluator=TASK / "evaluator.py", task_dir=TASK, limits=LIMITS, env=ENV
    )


def test_the_starting_kernels_are_correct_under_the_interpreter():
    result = judge(INITIAL)
    assert result.status == Outcome.OK, result.artifacts.get("error")
    assert result.isolation != "in_process", result.artifacts.get("isolation")
    assert result.metrics["checks_passed"] >= 10 * 3  # every small shape, three input kinds
    assert "decode_L1_S128" in result.artifacts["timing_table"]


def test_a_causal_off_by_one_is_incorrect():
    leaky = INITIAL.replace("cols[None, :] <= last[:, None]", "cols[None, :] <= last[:, None] + 1")
    assert leaky != INITIAL
    result = judge(leaky)
    assert result.status == Outcome.INCORRECT, result.artifacts.get("error")
    assert "chunk_L" in result.artifacts["error"] or "probe" in result.artifacts["error"]


def test_outputs_a_kernel_never_writes_are_caught():
    lazy = INITIAL.replace('"grid": [pairs, rows],', '"grid": [pairs, max(1, rows - 1)],')
    assert lazy != INITIAL
    result = judge(lazy)
    assert result.status == Outcome.INCORRECT and "non-finite" in result.artifacts["error"]


def test_kernels_that_are_not_triton_are_rejected_before_anything_runs():
    for change, words in (
        (("import triton\n", "import triton\nimport os\n"), "only `import triton`"),
        (("@triton.jit\ndef combine", "def combine"), "exactly @triton.jit"),
        (
            (
                "    bh = tl.program_id(0)\n    r = ",
                "    bh = tl.program_id(0)\n    x = open('f')\n    r = ",
            ),
            "open()",
        ),
    ):
        result = judge(INITIAL.replace(*change, 1))
        assert result.status == Outcome.REJECTED, result.artifacts.get("error")
        assert words in result.artifacts["error"]


@pytest.mark.parametrize(
    "change, words",
    [
        (('"kernel": "combine"', '"kernel": "reduce"'), "names a kernel of KERNELS"),
        (('"grid": [pairs, rows]', '"grid": [pairs, 70000]'), "exceeds CUDA's limits"),
        (('"num_warps": NUM_WARPS', '"num_warps": 3'), "num_warps"),
        (
            ('"args": ["part", "mx", "sm", "out"', '"args": ["part", "mx", "sm", "host"'),
            "no tensor or symbol",
        ),
        (
            (
                '"dtype": "float32", "shape": [pairs, splits, rows]}',
                '"dtype": "float32", "shape": [pairs, splits, rows, 10**9]}',
            ),
            "too much",
        ),
    ],
    ids=["unknown_kernel", "grid", "warps", "argument", "scratch"],
)
def test_launch_plans_are_validated(change, words):
    result = judge(INITIAL.replace(*change, 1))
    assert result.status == Outcome.REJECTED, result.artifacts.get("error")
    assert words in result.artifacts["error"]


def test_the_baseline_is_the_fastest_sdpa_backend_that_is_right():
    from rayevolve.evaluators.judge.core import AttentionShape
    from rayevolve.evaluators.judge.torch_backend import TorchBackend

    backend = TorchBackend(interpret=True)
    shape = AttentionShape(1, 4, 2, 64, 3, 50)  # causal, L < S: aligned to the end
    q, k, v = (
        torch.randn(s, dtype=torch.float16) for s in ((1, 4, 3, 64), (1, 2, 50, 64), (1, 2, 50, 64))
    )
    out = backend.baseline(q, k, v, shape)
    from rayevolve.evaluators.judge.core import reference

    ref = reference(
        q.float().numpy(), k.float().numpy(), v.float().numpy(), scale=shape.scale, causal=True
    )
    assert abs(out.float().numpy() - ref).max() < 1e-2
    assert backend.baseline_name(shape, "float16") != "sdpa"
