"""How many waiting candidates the pool gives an evaluator in one call (no Ray needed)."""

import pytest

from rayevolve.config import EvaluationConfig
from rayevolve.evaluation.pool import EvaluatorPool
from rayevolve.tasks import load_task
from tests.conftest import ROOT, run_config


@pytest.fixture
def pool_for():
    task = load_task(run_config("apple_probe").task, [ROOT])

    def make(**settings) -> EvaluatorPool:
        return EvaluatorPool(task, EvaluationConfig(**settings), {})

    return make


@pytest.mark.parametrize(
    "cost_s, expected",
    [(None, 1), (0.002, 8), (0.005, 4), (0.015, 1), (0.5, 1)],
    ids=["unknown", "cheap", "fits-four", "slower-than-half", "slow"],
)
def test_batch_fills_the_window_by_recent_cost(pool_for, cost_s, expected):
    pool = pool_for(batch_window_s=0.02, batch_max=8)
    if cost_s is not None:
        pool._cost["evaluator-0"] = cost_s
    assert pool._batch_size("evaluator-0") == expected


def test_a_zero_window_never_batches(pool_for):
    pool = pool_for(batch_window_s=0.0)
    pool._cost["evaluator-0"] = 1e-5
    assert pool._batch_size("evaluator-0") == 1
