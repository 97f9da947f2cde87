"""The judge runs nothing the candidate wrote, on a real NVIDIA GPU: the attacks of
tests/triton/test_triton_boundary.py through the CUDA backend (the candidate process
lowers to IR for this device, the judge compiles and launches). Skipped without CUDA."""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

from rayevolve.evaluators.judge.attention import PROFILES, judge_attention  # noqa: E402
from rayevolve.evaluators.judge.core import PRESETS  # noqa: E402
from rayevolve.evaluators.judge.torch_backend import TorchBackend  # noqa: E402
from rayevolve.outcome import Outcome  # noqa: E402
from tests.conftest import ROOT  # noqa: E402

INITIAL = (ROOT / "kernels/triton/gqa_attention/initial_program.py").read_text()
BODY = "    bh = tl.program_id(0)\n    r = tl.program_id(1)\n"


@pytest.fixture(scope="module")
def backend():
    return TorchBackend()


def judge(code, backend):
    return judge_attention(code, backend, PRESETS["qwen3-0.6b"], PROFILES["nvidia_quick"]).result


@pytest.mark.parametrize(
    "line, words",
    [
        ("x = tl.core.builtins.exec('1')", "not on the list"),
        ("x = print('compiled')", "print() is neither"),
        (
            "y = tl.inline_asm_elementwise('mov.b32 $0, $1;', '=r,r', [bh], dtype=tl.int32, "
            "is_pure=True, pack=1)",
            "not on the list",
        ),
    ],
    ids=["builtins_through_tl", "builtin_call", "inline_asm"],
)
def test_kernels_off_the_allow_list_are_rejected_on_the_gpu(backend, line, words):
    result = judge(INITIAL.replace(BODY, BODY + f"    {line}\n", 1), backend)
    assert result.get("status") == Outcome.REJECTED and words in result["error"], result


def test_a_plan_that_swaps_input_and_output_is_incorrect_on_the_gpu(backend):
    code = INITIAL.replace(
        '"args": ["part", "mx", "sm", "out", q_len', '"args": ["part", "mx", "sm", "q", q_len', 1
    )
    result = judge(code, backend)
    assert result.get("status") == Outcome.INCORRECT, result


def test_the_judge_launches_only_binaries_it_compiled_from_checked_ir(backend):
    """The starting kernels through the whole path on this device: lowered in the
    candidate process, compiled and launched by the judge; every output checked."""
    result = judge(INITIAL, backend)
    assert "status" not in result, result.get("error")
    assert result["checks_passed"] > 16 * 3 * 2
