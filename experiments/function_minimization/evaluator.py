"""Evaluator for black-box minimisation strategies, with a two-stage cascade.

Each trial draws a shifted test function (Rastrigin, Ackley or Styblinski-Tang in 4-D,
or the 2-D function of OpenEvolve's example), hands the candidate a wrapped version that
counts calls and remembers the best value it returned, and stops the candidate when the
budget is spent. A trial scores 1 / (1 + gap), where gap is the distance of the best
observed value above the known minimum. Stage 1 runs 2 quick trials; stage 2 (only if
stage 1 scores at least the cascade threshold) runs 12.
"""

import importlib.util
import math
import time

import numpy as np

BUDGET = 1500


class BudgetExhausted(Exception):
    pass


class Counted:
    """The objective as the candidate sees it: a call budget, the best value observed."""

    def __init__(self, function, budget):
        self.function = function
        self.budget = budget
        self.calls = 0
        self.best = math.inf

    def __call__(self, x):
        if self.calls >= self.budget:
            raise BudgetExhausted
        self.calls += 1
        value = float(self.function(np.asarray(x, dtype=float)))
        if math.isfinite(value) and value < self.best:
            self.best = value
        return value


def rastrigin(z):
    return 10 * len(z) + float(np.sum(z * z - 10 * np.cos(2 * np.pi * z)))


def ackley(z):
    n = len(z)
    return float(
        -20 * np.exp(-0.2 * np.sqrt(np.sum(z * z) / n))
        - np.exp(np.sum(np.cos(2 * np.pi * z)) / n)
        + 20
        + np.e
    )


def styblinski_tang(z):
    return float(0.5 * np.sum(z**4 - 16 * z**2 + 5 * z))


def openevolve_2d(z):
    x, y = z
    return float(np.sin(x) * np.cos(y) + np.sin(x * y) + (x * x + y * y) / 20)


# name -> (function, dimension, bounds, minimum value, minimiser before shifting)
FUNCTIONS = {
    "rastrigin": (rastrigin, 4, 5.12, 0.0, 0.0),
    "ackley": (ackley, 4, 5.0, 0.0, 0.0),
    "styblinski_tang": (styblinski_tang, 4, 5.0, -39.16616570377142 * 4, -2.903534),
    "openevolve_2d": (openevolve_2d, 2, 5.0, -1.7047, None),
}


def trial(search, name, seed):
    function, dim, bound, minimum, _ = FUNCTIONS[name]
    rng = np.random.default_rng(seed)
    shift = rng.uniform(-1.0, 1.0, dim) if name in ("rastrigin", "ackley") else np.zeros(dim)
    counted = Counted(lambda x: function(x - shift), BUDGET)
    lower, upper = np.full(dim, -bound), np.full(dim, bound)
    try:
        search(counted, lower.copy(), upper.copy(), BUDGET, np.random.default_rng(seed + 1000))
    except BudgetExhausted:
        pass
    if not math.isfinite(counted.best):
        raise ValueError(f"{name}: the search never evaluated the function")
    gap = max(0.0, counted.best - minimum)
    return 1.0 / (1.0 + gap), gap


def run_trials(program_path, trials):
    spec = importlib.util.spec_from_file_location("candidate", program_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    started = time.perf_counter()
    names = list(FUNCTIONS)
    scores, gaps = {}, {}
    for k in range(trials):
        name = names[k % len(names)]
        score, gap = trial(module.search, name, seed=k)
        scores.setdefault(name, []).append(score)
        gaps.setdefault(name, []).append(gap)
    result = {f"score_{n}": float(np.mean(v)) for n, v in scores.items()}
    result.update({f"gap_{n}": float(np.mean(v)) for n, v in gaps.items()})
    result["combined_score"] = float(np.mean([s for v in scores.values() for s in v]))
    result["eval_time"] = time.perf_counter() - started
    return result


def evaluate_stage1(program_path):
    return run_trials(program_path, trials=2)


def evaluate_stage2(program_path):
    return run_trials(program_path, trials=12)


def evaluate(program_path):
    return evaluate_stage2(program_path)
