"""Evaluator for black-box minimisation strategies, with a two-stage cascade.

Each trial draws a shifted test function (Rastrigin, Ackley or Styblinski-Tang in 4-D,
or the 2-D function of OpenEvolve's example) and runs the candidate's search in a process
of its own, against a wrapped version that counts calls and stops the search when the
budget is spent. Only the best point the wrapper saw comes back; its value is computed
again here, in a process the candidate never touched. A trial scores 1 / (1 + gap), where gap is the distance of the best
observed value above the known minimum. Stage 1 runs 2 quick trials; stage 2 (only if
stage 1 scores at least the cascade threshold) runs 12.
"""

import math
import time

import numpy as np

from rayevolve.evaluators.candidate_call import CandidateFailed, call_isolated, load_module

BUDGET = 1500


class BudgetExhausted(Exception):
    pass


class Counted:
    """The objective as the candidate sees it: a call budget; remembers the best point."""

    def __init__(self, function, budget):
        self.function = function
        self.budget = budget
        self.calls = 0
        self.best = math.inf
        self.best_x = None

    def __call__(self, x):
        if self.calls >= self.budget:
            raise BudgetExhausted
        self.calls += 1
        x = np.array(x, dtype=float)
        value = float(self.function(x))
        if math.isfinite(value) and value < self.best:
            self.best, self.best_x = value, x
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


def trial(program_path, name, seed):
    """Score one search: run in a child process, judged here on the point it found."""
    function, dim, bound, minimum, _ = FUNCTIONS[name]
    rng = np.random.default_rng(seed)
    shift = rng.uniform(-1.0, 1.0, dim) if name in ("rastrigin", "ackley") else np.zeros(dim)
    objective = lambda x: function(np.asarray(x, dtype=float) - shift)  # noqa: E731
    lower, upper = np.full(dim, -bound), np.full(dim, bound)

    def search_in_child():
        counted = Counted(objective, BUDGET)
        try:
            load_module(program_path).search(
                counted, lower.copy(), upper.copy(), BUDGET, np.random.default_rng(seed + 1000)
            )
        except BudgetExhausted:
            pass
        if counted.best_x is None:
            raise ValueError(f"{name}: the search never evaluated the function")
        return counted.best_x

    (x,) = call_isolated(search_in_child)
    if x.shape != (dim,) or not np.isfinite(x).all() or (x < lower).any() or (x > upper).any():
        raise CandidateFailed(
            "incorrect", f"{name}: reported point {x!r} is not a point of the domain"
        )
    gap = max(0.0, float(objective(x)) - minimum)  # recomputed here, in the evaluator's process
    return 1.0 / (1.0 + gap), gap


def run_trials(program_path, trials):
    started = time.perf_counter()
    names = list(FUNCTIONS)
    scores, gaps = {}, {}
    try:
        for k in range(trials):
            name = names[k % len(names)]
            score, gap = trial(program_path, name, seed=k)
            scores.setdefault(name, []).append(score)
            gaps.setdefault(name, []).append(gap)
    except CandidateFailed as exc:
        return {"status": exc.kind, "error": str(exc)}
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
