"""The Metal GQA task folder, on a machine without Metal."""

import importlib.util
import time

import mlx.core as mx
import pytest

from rayevolve.config import TaskConfig
from rayevolve.log import read_programs
from rayevolve.outcome import Outcome
from rayevolve.program import block_texts
from rayevolve.run.controller import Controller, RunError
from rayevolve.sandbox.runner import SandboxLimits, run_candidate
from rayevolve.tasks import load_task
from tests.conftest import ROOT, run_config

TASK = ROOT / "kernels" / "metal" / "gqa_attention"


def load_program():
    spec = importlib.util.spec_from_file_location("gqa_initial", TASK / "initial_program.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_task_loads_with_the_kernel_and_launch_parameters_inside_the_blocks():
    spec = load_task(TaskConfig(name="gqa", path=str(TASK)), [ROOT])
    block = block_texts(spec.initial_code)[0]
    assert (
        "KERNEL_SOURCE" in block and "SIMDGROUPS_PER_THREADGROUP" in block and "def launch" in block
    )
    assert (
        'init_value=float("nan")' not in block
    )  # the NaN pre-fill is outside: no edit can drop it
    assert 'init_value=float("nan")' in spec.initial_code


def test_launch_covers_every_query_row_with_one_simd_group():
    program = load_program()
    for batch, hq, hkv, L, S in ((1, 16, 8, 1, 4096), (2, 40, 8, 17, 300)):
        grid, threadgroup, _ = program.launch(batch, hq, hkv, L, S, 128)
        assert grid[0] == batch * hq * L * 32
        assert threadgroup[0] % 32 == 0 and threadgroup[0] <= 1024


def test_kernel_names_carry_the_source_hash(monkeypatch):
    program = load_program()
    first = program._kernel()
    monkeypatch.setattr(program, "KERNEL_SOURCE", program.KERNEL_SOURCE + "\n// changed\n")
    assert program._kernel() is not first
    assert len(program._KERNELS) == 2


def test_without_metal_the_kernel_call_fails_loudly():
    program = load_program()
    q = mx.zeros((1, 16, 1, 128), dtype=mx.float16)
    k = mx.zeros((1, 8, 4, 128), dtype=mx.float16)
    with pytest.raises(RuntimeError, match="Metal"):
        mx.eval(program.attention(q, k, k, scale=0.1, causal=True))


def test_evaluator_reports_unsupported_platform_at_once():
    started = time.monotonic()
    result = run_candidate(
        (TASK / "initial_program.py").read_text(),
        suffix=".py",
        evaluator=TASK / "evaluator.py",
        task_dir=TASK,
        limits=SandboxLimits(
            timeout_s=60, memory_limit_mb=0, output_limit_bytes=4096, file_limit_bytes=1 << 20
        ),
    )
    assert result.status == Outcome.UNSUPPORTED_PLATFORM, result.artifacts
    assert "Metal" in result.artifacts["error"] and result.score is None
    assert time.monotonic() - started < 30


@pytest.mark.ray
def test_run_lands_on_the_apple_node_and_stops_with_a_clear_message(ray_cluster, tmp_path):
    cfg = run_config(
        "apple_probe",
        task={
            "path": str(TASK),
            "name": "gqa_attention",
            "resources": {"apple_gpu": 1},
            "memory_limit_mb": 0,
            "timeout_s": 120,
        },
    )
    with pytest.raises(RunError, match="unsupported_platform"):
        Controller(cfg, tmp_path / "run", [ROOT]).run()
    seed = read_programs(tmp_path / "run").to_pandas().iloc[0]
    assert seed.status == "unsupported_platform" and seed.node_id == ray_cluster[1]


def test_the_starting_kernel_is_data_the_judge_accepts_for_every_shape():
    """Its EVOLVE-BLOCK passes the static check, and its launch() (run in an isolated
    child) gives a valid plan for every shape the judge uses, the model's included."""
    import random

    from rayevolve.evaluators.judge.core import PRESETS, correctness_shapes, timing_shapes
    from rayevolve.evaluators.judge.kernel_data import launch_plans, parse_blocks
    from rayevolve.evaluators.judge.mlx_backend import MetalBackend

    data = parse_blocks((TASK / "initial_program.py").read_text())
    assert "simd_sum" in data.text("KERNEL_SOURCE") and data.functions == ("launch",)
    for preset in ("qwen3-0.6b", "claim-40-8"):
        heads = PRESETS[preset]
        shapes = correctness_shapes(heads, random.Random(0)) + timing_shapes(heads)
        plans = launch_plans(data, [s.launch_args() for s in shapes])
        backend = MetalBackend()
        for shape, plan in zip(shapes, plans, strict=True):
            grid, group, template = backend.check_plan(plan, shape)
            assert grid[0] == shape.batch * shape.q_heads * shape.q_len * 32 and not template
