"""How many waiting candidates the pool gives an evaluator in one call (no Ray needed)."""

import pytest

from rayevolve.config import EvaluationConfig
from rayevolve.sandbox.pool import EvaluatorPool
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


class FlakyEvaluator:
    """Stands in for an evaluator actor handle: its calls fail `failures` times with an
    error that is not the actor's death (a lost object, say), then succeed."""

    def __init__(self, failures: int):
        self.failures = failures
        self.evaluate = self._method(self._one)
        self.evaluate_many = self._method(self._many)

    @staticmethod
    def _method(function):
        return type("Method", (), {"remote": staticmethod(function)})

    async def _one(self, code):
        from rayevolve.outcome import Outcome
        from rayevolve.result import EvalResult

        if self.failures:
            self.failures -= 1
            raise RuntimeError("object lost")
        return EvalResult(Outcome.OK, score=float(len(code)), wall_s=0.001)

    async def _many(self, codes):
        return [await self._one(code) for code in codes]


def evaluate_with(pool: EvaluatorPool, evaluator, codes):
    import asyncio

    async def go():
        pool._started = True
        pool._placements["evaluator-0"] = {}
        pool._idle.put_nowait(("evaluator-0", evaluator))
        calls = asyncio.gather(*(pool.evaluate(code) for code in codes))
        return await asyncio.wait_for(calls, timeout=10)  # a lost result fails, not hangs

    return asyncio.run(go())


def test_a_failed_call_is_retried_and_never_leaves_its_caller_waiting(pool_for):
    from rayevolve.outcome import Outcome

    [flaky] = evaluate_with(pool_for(max_attempts=3), FlakyEvaluator(failures=1), ["abc"])
    assert flaky.status == Outcome.OK and flaky.score == 3.0 and flaky.attempts == 2
    results = evaluate_with(pool_for(max_attempts=2), FlakyEvaluator(failures=99), ["a", "b"])
    for result in results:
        assert result.status == Outcome.CRASHED and "object lost" in result.artifacts["error"]


def test_each_waiting_candidate_gets_its_own_result_in_a_batch(pool_for):
    pool = pool_for(batch_window_s=1.0, batch_max=8)
    pool._cost["evaluator-0"] = 0.001
    codes = ["x" * n for n in range(1, 12)]
    results = evaluate_with(pool, FlakyEvaluator(failures=0), codes)
    assert [r.score for r in results] == [float(n) for n in range(1, 12)]
    assert pool.stats()["calls"] < len(codes)
