"""Model choice: fixed weights, the UCB bandit, rewards."""

import math

import numpy as np
import pytest

from rayevolve.config import BanditConfig, ModelConfig
from rayevolve.mutation.ensemble import ModelEnsemble, improvement_reward

MODELS = [ModelConfig(name="big", weight=1.0), ModelConfig(name="small", weight=3.0)]


def test_fixed_weights_are_the_choice_frequencies():
    ensemble = ModelEnsemble(MODELS, BanditConfig(enabled=False), seed=1)
    picks = [ensemble.choose().name for _ in range(4000)]
    assert picks.count("small") / len(picks) == pytest.approx(0.75, abs=0.03)
    ensemble.reward("big", 1.0)  # ignored without the bandit
    assert ensemble.weights() == {"big": 0.25, "small": 0.75}


def test_bandit_shifts_weight_to_the_model_that_improves():
    ensemble = ModelEnsemble(MODELS, BanditConfig(enabled=True), seed=2)
    before = ensemble.weights()
    for _ in range(300):
        model = ensemble.choose().name
        ensemble.reward(model, 0.8 if model == "big" else 0.0)
    after = ensemble.weights()
    assert after["big"] > 0.9 > before["big"]
    snapshot = ensemble.snapshot()
    assert snapshot["big"]["mean_reward"] == pytest.approx(0.8)
    assert snapshot["big"]["pulls"] + snapshot["small"]["pulls"] == 300


def test_bandit_keeps_exploring_a_losing_model():
    ensemble = ModelEnsemble(MODELS, BanditConfig(enabled=True, temperature=0.2), seed=3)
    picks = []
    for _ in range(500):
        model = ensemble.choose().name
        picks.append(model)
        ensemble.reward(model, 0.5 if model == "small" else 0.0)
    assert 0 < picks[-200:].count("big") < 60


def test_replayed_rewards_count_pulls():
    ensemble = ModelEnsemble(MODELS, BanditConfig(enabled=True), seed=4)
    assert ensemble.weights()["small"] == pytest.approx(0.75)  # no data: the prior
    for _ in range(50):
        ensemble.reward("small", 1.0, pulled=False)
        ensemble.reward("big", 0.0, pulled=False)
    ensemble.reward("gone", 1.0, pulled=False)  # a model no longer configured: ignored
    assert ensemble.snapshot()["small"]["pulls"] == 50
    assert ensemble.weights()["small"] > 0.9


@pytest.mark.parametrize(
    "parent, child, maximize, reward",
    [
        (2.0, 3.0, True, 0.5),
        (2.0, 1.0, True, 0.0),
        (2.0, 1.0, False, 0.5),
        (2.0, 9.0, True, 1.0),
        (None, 1.0, True, 1.0),
        (1.0, None, True, 0.0),
        (1.0, math.nan, True, 0.0),
        (0.0, 0.5, True, 1.0),
    ],
)
def test_improvement_reward(parent, child, maximize, reward):
    assert improvement_reward(parent, child, maximize) == pytest.approx(reward)


def test_needs_a_model():
    with pytest.raises(ValueError):
        ModelEnsemble([], BanditConfig(), seed=0)
    assert np.isclose(sum(ModelEnsemble(MODELS, BanditConfig(enabled=True)).weights().values()), 1)
