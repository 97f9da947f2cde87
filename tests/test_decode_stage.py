"""The end-to-end stage with a tiny random Qwen3 built offline (mlx-lm on the CPU)."""

import mlx.core as mx
import pytest

from rayevolve.evaluation.decode import CallCount, greedy_decode, measure_decode, patched
from tests.test_attention_harness import ops_kernel

qwen3 = pytest.importorskip("mlx_lm.models.qwen3")


@pytest.fixture(scope="module")
def tiny_qwen3():
    args = qwen3.ModelArgs(
        model_type="qwen3",
        hidden_size=128,
        num_hidden_layers=2,
        intermediate_size=256,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=64,
        rms_norm_eps=1e-6,
        vocab_size=512,
        max_position_embeddings=1024,
        rope_theta=10000.0,
        tie_word_embeddings=True,
    )
    mx.random.seed(0)
    model = qwen3.Model(args)
    mx.eval(model.parameters())
    return model


def test_patched_kernel_serves_every_attention_call(tiny_qwen3):
    counts = CallCount()
    with patched(ops_kernel, counts):
        tokens, rate = greedy_decode(tiny_qwen3, list(range(10)), new_tokens=5)
    assert len(tokens) == 5 and rate > 0
    assert counts.kernel == 2 * (1 + 5)  # 2 layers x (prefill + 5 decode steps)
    assert qwen3.scaled_dot_product_attention.__module__ == "mlx_lm.models.base"  # restored


def test_correct_kernel_reproduces_the_model_and_reports_speed(tiny_qwen3):
    metrics = measure_decode(tiny_qwen3, ops_kernel, prompt_len=16, new_tokens=8, reps=2)
    assert metrics["e2e_kernel_calls"] > 0
    assert metrics["e2e_token_agreement"] == 1.0
    assert metrics["e2e_tokens_per_s"] > 0 and metrics["e2e_mlx_tokens_per_s"] > 0
    assert metrics["e2e_speedup"] == pytest.approx(
        metrics["e2e_tokens_per_s"] / metrics["e2e_mlx_tokens_per_s"]
    )


def test_kernel_the_model_never_calls_fails_the_stage(tiny_qwen3, monkeypatch):
    import rayevolve.evaluation.decode as decode

    @__import__("contextlib").contextmanager
    def not_patched(candidate, counts):  # e.g. patching the wrong module, as the original claim did
        yield

    monkeypatch.setattr(decode, "patched", not_patched)
    result = measure_decode(tiny_qwen3, ops_kernel, prompt_len=8, new_tokens=4, reps=1)
    assert result["status"] == "rejected" and "never called" in result["error"]
