"""Strict evaluator for 26-circle packing in the unit square.

The candidate runs in a process of its own and only its numbers come back, so it cannot
patch these checks. A packing is valid only if every value is finite, every radius is
non-negative, every circle lies inside [0, 1]^2 and no two circles overlap, each within
TOLERANCE. Radii and centres come from the candidate; the sum is recomputed here.
Score: the sum of radii.
"""

import time

import numpy as np

from rayevolve.evaluators.candidate_call import CandidateFailed, call_isolated, load_module

N_CIRCLES = 26
TOLERANCE = 1e-9
BEST_KNOWN = 2.6359


def validate(centers, radii):
    """Return None if the packing is valid, else the first violation found."""
    if centers.shape != (N_CIRCLES, 2) or radii.shape != (N_CIRCLES,):
        return f"expected centers (26, 2) and radii (26,), got {centers.shape} and {radii.shape}"
    if not (np.isfinite(centers).all() and np.isfinite(radii).all()):
        return "non-finite centre or radius"
    if (radii < 0).any():
        return f"negative radius at circle {int(np.argmin(radii))}"
    low = np.minimum(centers[:, 0] - radii, centers[:, 1] - radii)
    high = np.maximum(centers[:, 0] + radii, centers[:, 1] + radii)
    if (low < -TOLERANCE).any() or (high > 1 + TOLERANCE).any():
        bad = int(np.argmax(np.maximum(-low, high - 1)))
        return f"circle {bad} leaves the unit square (centre {centers[bad].tolist()}, radius {radii[bad]:.6g})"
    for i in range(N_CIRCLES):
        d = np.sqrt(((centers[i + 1 :] - centers[i]) ** 2).sum(axis=1))
        overlap = radii[i] + radii[i + 1 :] - d
        if (overlap > TOLERANCE).any():
            j = i + 1 + int(np.argmax(overlap))
            return f"circles {i} and {j} overlap by {overlap.max():.3g}"
    return None


def evaluate(program_path):
    started = time.perf_counter()
    try:  # the candidate runs in a child; only its numbers come back to be checked here
        result = call_isolated(lambda: load_module(program_path).construct_packing())
    except CandidateFailed as exc:
        return {"status": exc.kind, "error": str(exc)}
    if len(result) < 2:
        return {"status": "incorrect", "error": "construct_packing() must return (centers, radii)"}
    centers = np.asarray(result[0], dtype=float)
    radii = np.asarray(result[1], dtype=float)
    problem = validate(centers, radii)
    elapsed = time.perf_counter() - started
    if problem:
        return {
            "status": "incorrect",
            "error": f"invalid packing: {problem}",
            "validity": 0.0,
            "eval_time": elapsed,
        }
    total = float(radii.sum())
    return {
        "combined_score": total,
        "sum_radii": total,
        "target_ratio": total / BEST_KNOWN,
        "validity": 1.0,
        "eval_time": elapsed,
    }
