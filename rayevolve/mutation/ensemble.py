"""Choosing a model per request from a weighted ensemble, optionally adapted by a bandit.

Rewards arrive late and out of order (a child is scored seconds or minutes after its
model was chosen, while other requests are in flight), so a model's pull count includes
its pending requests, and its mean reward starts from one pseudo-observation at the
ensemble's mean (a model with no rewards yet is neither favoured nor starved).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rayevolve.config import BanditConfig, ModelConfig


def improvement_reward(parent: float | None, child: float | None, maximize: bool) -> float:
    """A child's reward in [0, 1]: its gain over the parent relative to the parent's
    magnitude, in the task's direction (0 for no score or no gain)."""
    if child is None or not math.isfinite(child):
        return 0.0
    if parent is None or not math.isfinite(parent):
        return 1.0  # a fixed failure is worth as much as it gets
    gain = (child - parent) if maximize else (parent - child)
    if gain <= 0:
        return 0.0
    return min(1.0, gain / max(abs(parent), 1e-12))


@dataclass
class ArmStats:
    pulls: int = 0
    rewards: int = 0
    reward_sum: float = 0.0


class ModelEnsemble:
    """Weighted model choice; with the bandit enabled, weights follow UCB1 scores."""

    def __init__(self, models: Sequence[ModelConfig], bandit: BanditConfig, seed: int = 0):
        if not models:
            raise ValueError("a model ensemble needs at least one model")
        self.models = tuple(models)
        self.bandit = bandit
        self.prior = np.array([m.weight for m in models], dtype=float)
        self.prior /= self.prior.sum()
        self.arms = {m.name: ArmStats() for m in models}
        self.rng = np.random.default_rng(seed)

    def probabilities(self) -> np.ndarray:
        if not self.bandit.enabled or len(self.models) == 1:
            return self.prior.copy()
        scores = self._ucb()
        logits = np.log(self.prior) + (scores - scores.max()) / self.bandit.temperature
        weights = np.exp(logits - logits.max())
        return weights / weights.sum()

    def _ucb(self) -> np.ndarray:
        arms = [self.arms[m.name] for m in self.models]
        total_rewards = sum(a.rewards for a in arms)
        overall = sum(a.reward_sum for a in arms) / total_rewards if total_rewards else 0.5
        total_pulls = max(sum(a.pulls for a in arms), 1)
        scores = []
        for arm in arms:
            mean = (arm.reward_sum + overall) / (arm.rewards + 1)
            bonus = self.bandit.exploration * math.sqrt(math.log(total_pulls + 1) / (arm.pulls + 1))
            scores.append(mean + bonus)
        return np.array(scores)

    def choose(self) -> ModelConfig:
        """Draw a model for one request and count the pull."""
        if len(self.models) == 1:  # no draw: rng.choice costs more than a request's parsing
            model = self.models[0]
        else:
            model = self.models[int(self.rng.choice(len(self.models), p=self.probabilities()))]
        self.arms[model.name].pulls += 1
        return model

    def reward(self, model: str, value: float, pulled: bool = True) -> None:
        """Record a child's reward for `model` (`pulled=False` when replaying a log, where
        the pull was never counted)."""
        arm = self.arms.get(model)
        if arm is None:  # a model no longer in the ensemble (resumed with another config)
            return
        if not pulled:
            arm.pulls += 1
        arm.rewards += 1
        arm.reward_sum += min(max(float(value), 0.0), 1.0)

    def weights(self) -> dict[str, float]:
        return {m.name: float(p) for m, p in zip(self.models, self.probabilities(), strict=True)}

    def snapshot(self) -> dict[str, dict[str, float]]:
        """Per model: current weight, pulls, rewards, mean reward (for events and stats)."""
        weights = self.weights()
        return {
            name: {
                "weight": weights[name],
                "pulls": arm.pulls,
                "rewards": arm.rewards,
                "mean_reward": arm.reward_sum / arm.rewards if arm.rewards else 0.0,
            }
            for name, arm in self.arms.items()
        }
