"""The kernel judge on a real NVIDIA GPU (run by experiments/qwen3_gqa_attention_cuda/
run_on_gpu.sh; skipped anywhere without CUDA, CI included)."""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

from rayevolve.evaluators.judge.attention import PROFILES, _Run, _time, judge_attention  # noqa: E402
from rayevolve.evaluators.judge.core import PRESETS, AttentionShape, timing_shapes  # noqa: E402
from rayevolve.evaluators.judge.torch_backend import TorchBackend  # noqa: E402
from tests.conftest import ROOT  # noqa: E402

INITIAL = (ROOT / "kernels/triton/gqa_attention/initial_program.py").read_text()


@pytest.fixture(scope="module")
def backend():
    return TorchBackend()


def test_the_starting_kernels_pass_the_whole_suite_in_both_dtypes(backend):
    result = judge_attention(
        INITIAL, backend, PRESETS["qwen3-0.6b"], PROFILES["nvidia_quick"]
    ).result
    assert "status" not in result, result.get("error")
    assert result["checks_passed"] > 13 * 3 * 2


def test_the_vendor_against_itself_holds_one(backend):
    """Timing machinery sanity: SDPA timed against itself from CUDA graphs."""
    shape = timing_shapes(PRESETS["qwen3-0.6b"])[1]
    run = _Run(
        backend, lambda q, k, v, s: backend.baseline(q, k, v, s), PROFILES["nvidia_quick"], 1
    )
    cell = _time(run, shape, "bfloat16")
    import numpy as np

    from rayevolve.evaluators.judge.core import paired_speedup

    interval = paired_speedup(*cell.batched, np.random.default_rng(0))
    assert 0.9 < interval.point < 1.1


def test_causal_masks_with_a_short_chunk_are_aligned_to_the_end(backend):
    import numpy as np

    from rayevolve.evaluators.judge.core import make_inputs, reference

    shape = AttentionShape(1, 16, 8, 128, 7, 3000)
    q, k, v = (
        backend.to_device(x, "bfloat16")
        for x in make_inputs(shape, "probe", np.random.default_rng(0))
    )
    out = backend.to_numpy(backend.baseline(q, k, v, shape))
    ref = reference(*(backend.to_numpy(x) for x in (q, k, v)), scale=shape.scale, causal=True)
    assert np.abs(out - ref).max() < 0.05
