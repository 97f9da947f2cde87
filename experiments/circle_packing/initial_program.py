"""Circle packing: place 26 non-overlapping circles in the unit square and maximise
the sum of their radii (best known: about 2.6359).

`construct_packing()` returns (centers, radii): arrays of shape (26, 2) and (26,).
The evaluator checks the packing itself; nothing this file reports is trusted.
"""

import numpy as np

N_CIRCLES = 26


# EVOLVE-BLOCK-START
def lattice_centers():
    """Staggered rows of points; rows are trimmed or padded to exactly 26 centres."""
    rows = [5, 6, 5, 6, 5]
    margin_x = 0.12
    margin_y = 0.12
    stagger = 0.5
    points = []
    for r, count in enumerate(rows):
        y = margin_y + r * (1.0 - 2 * margin_y) / max(len(rows) - 1, 1)
        shift = stagger * (r % 2) / max(count, 1)
        for c in range(count):
            x = margin_x + (c + shift) * (1.0 - 2 * margin_x) / max(count - 1, 1)
            points.append((min(max(x, 0.01), 0.99), min(max(y, 0.01), 0.99)))
    rng = np.random.default_rng(7)
    while len(points) < N_CIRCLES:
        points.append(tuple(rng.uniform(0.05, 0.95, size=2)))
    return np.array(points[:N_CIRCLES], dtype=float)


def climb_settings():
    """Hill-climbing budget: steps, initial step size, decay per step, RNG seed."""
    return 120, 0.05, 0.99, 1


def grow_sweeps():
    """Gauss-Seidel sweeps that enlarge radii after making them feasible."""
    return 2


# EVOLVE-BLOCK-END


def max_radii(centers, sweeps):
    """Feasible radii for fixed centres: start at the distance to the border, shrink every
    overlapping pair in one scaling step, then grow each radius into the free space."""
    border = np.minimum(
        np.minimum(centers[:, 0], 1 - centers[:, 0]), np.minimum(centers[:, 1], 1 - centers[:, 1])
    )
    border = np.maximum(border, 0.0)
    dist = np.sqrt(((centers[:, None, :] - centers[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(dist, np.inf)
    radii = border.copy()
    total = radii[:, None] + radii[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(total > 0, dist / total, np.inf)
    radii = radii * np.minimum(1.0, ratio.min(axis=1))
    for _ in range(sweeps):
        for i in range(len(radii)):
            radii[i] = max(0.0, min(border[i], np.min(dist[i] - radii)))
    return radii


def construct_packing():
    centers = lattice_centers()
    steps, step, decay, seed = climb_settings()
    sweeps = grow_sweeps()
    rng = np.random.default_rng(seed)
    radii = max_radii(centers, sweeps)
    best = radii.sum()
    for _ in range(int(steps)):
        i = rng.integers(len(centers))
        trial = centers.copy()
        trial[i] = np.clip(trial[i] + rng.normal(0.0, step, size=2), 0.0, 1.0)
        trial_radii = max_radii(trial, sweeps)
        if trial_radii.sum() > best:
            centers, radii, best = trial, trial_radii, trial_radii.sum()
        step *= decay
    return centers, radii


if __name__ == "__main__":
    c, r = construct_packing()
    print(f"sum of radii: {r.sum():.6f}")
