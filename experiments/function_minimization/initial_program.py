"""Black-box function minimisation: a search strategy that finds the global minimum of
rugged functions it has never seen, within a fixed budget of function evaluations.

`search(f, lower, upper, budget, rng)` may call `f(x)` at most `budget` times (further
calls raise). The evaluator scores the best value *it* saw `f` return, so what this
function returns is informational only.
"""

import numpy as np


# EVOLVE-BLOCK-START
def search(f, lower, upper, budget, rng):
    """Random exploration, then Gaussian steps around the best point with a step size
    that shrinks after every failed step."""
    explore_fraction = 0.5
    step_scale = 0.3
    shrink = 0.999
    dim = len(lower)
    span = upper - lower
    explore = max(1, int(budget * explore_fraction))
    best_x = rng.uniform(lower, upper)
    best_f = f(best_x)
    for _ in range(explore - 1):
        x = rng.uniform(lower, upper)
        value = f(x)
        if value < best_f:
            best_x, best_f = x, value
    step = step_scale * span
    for _ in range(budget - explore):
        x = np.clip(best_x + rng.normal(0.0, 1.0, dim) * step, lower, upper)
        value = f(x)
        if value < best_f:
            best_x, best_f = x, value
        else:
            step = step * shrink
    return best_x


# EVOLVE-BLOCK-END
