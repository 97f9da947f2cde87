"""Measuring custom Metal kernels with MLX honestly: the parts every kernel task shares.

* `metal_available` / `unsupported_platform`: a task without Metal says so at once, never
  a misleading score.
* `classify_mlx_error`: MLX reports kernel compile errors (with the compiler's
  diagnostics) and GPU faults lazily, as RuntimeErrors at `mx.eval`; they become
  statuses with the message kept for the model.
* `compare`: element-wise tolerance checks that say where and by how much.
* `time_alternating`: candidate and baseline timed in the same process, alternating
  order every repetition, `mx.eval` around each call, after warm-up; medians and spread.
* `IMPLAUSIBLE_SPEEDUP`: above it, a result is measured again, independently, before it
  may count.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

IMPLAUSIBLE_SPEEDUP = 1.5  # MLX's own kernel is well tuned; more than this is suspicious
REMEASURE_AGREEMENT = 0.25  # two measurements may differ by at most this fraction


@dataclass(frozen=True)
class Tolerance:
    """|candidate - reference| <= atol + rtol * |reference|, element-wise."""

    atol: float
    rtol: float


@dataclass(frozen=True)
class Mismatch:
    """Where and by how much an output disagrees with its reference."""

    max_abs_error: float
    index: tuple[int, ...]
    got: float
    expected: float
    bad_fraction: float
    non_finite: int

    def describe(self) -> str:
        where = ", ".join(str(i) for i in self.index)
        if self.non_finite:
            return f"{self.non_finite} non-finite output elements (first at [{where}]; unwritten outputs are NaN)"
        return (
            f"max |error| {self.max_abs_error:.4g} at [{where}] (got {self.got:.6g}, expected "
            f"{self.expected:.6g}); {self.bad_fraction:.2%} of elements outside tolerance"
        )


@dataclass(frozen=True)
class Timing:
    median_s: float
    p10_s: float
    p90_s: float
    reps: int

    @property
    def spread(self) -> float:
        """(p90 - p10) / median: how noisy the measurement was."""
        return (self.p90_s - self.p10_s) / self.median_s if self.median_s > 0 else float("inf")


def metal_available() -> bool:
    import mlx.core as mx

    return bool(mx.metal.is_available())


def unsupported_platform() -> dict:
    import platform

    return {
        "status": "unsupported_platform",
        "error": (
            f"this task needs Apple's Metal GPU; this node is {platform.system()} {platform.machine()} "
            "without it. Give Mac workers the apple_gpu resource and the task resources {apple_gpu: 1}."
        ),
    }


def classify_mlx_error(exc: BaseException) -> tuple[str, str]:
    """(status, message) for an exception raised while building or running a kernel."""
    text = str(exc)
    lowered = text.lower()
    if (
        "unable to build metal library" in lowered
        or "program_source" in lowered
        or "error:" in lowered
        and "metal" in lowered
    ):
        return "compile_error", "Metal compile error:\n" + text[-6000:]
    if "timeout" in lowered or "hang" in lowered:
        return "timeout", "GPU timeout: " + text[-2000:]
    if "command buffer" in lowered or "gpu" in lowered or "invalid resource" in lowered:
        return "crashed", "GPU fault: " + text[-2000:]
    return "runtime_error", f"{type(exc).__name__}: {text[-2000:]}"


def compare(got, expected, tolerance: Tolerance) -> Mismatch | None:
    """None if `got` matches `expected` within tolerance (and is finite), else a Mismatch."""
    import numpy as np

    g = np.asarray(got, dtype=np.float32)
    e = np.asarray(expected, dtype=np.float32)
    if g.shape != e.shape:
        return Mismatch(float("inf"), (), float("nan"), float("nan"), 1.0, 0)
    finite = np.isfinite(g)
    if not finite.all():
        first = tuple(int(i) for i in np.argwhere(~finite)[0])
        return Mismatch(
            float("inf"), first, float(g[first]), float(e[first]), 1.0, int((~finite).sum())
        )
    error = np.abs(g - e)
    bad = error > tolerance.atol + tolerance.rtol * np.abs(e)
    if not bad.any():
        return None
    worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(error)), error.shape))
    return Mismatch(
        float(error[worst]), worst, float(g[worst]), float(e[worst]), float(bad.mean()), 0
    )


def _stats(samples: list[float]) -> Timing:
    ordered = sorted(samples)
    at = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return Timing(statistics.median(ordered), at(0.1), at(0.9), len(ordered))


def time_alternating(
    calls: dict[str, Callable[[], object]],
    *,
    warmup: int,
    reps: int,
    budget_s: float | None = None,
    kept: dict[str, list] | None = None,
    keep_every: int = 0,
) -> dict[str, Timing]:
    """Time each zero-argument call (which returns MLX arrays) in the same process.

    Every call is wrapped in `mx.eval` (MLX is lazy: unevaluated work costs nothing), the
    first `warmup` rounds compile and are discarded, and the order of the calls flips
    every repetition so drift and caching hit all of them alike. `budget_s` caps the
    total time: if warm-up shows it would be exceeded, fewer repetitions are run. With
    `keep_every` = k, the outputs of every k-th repetition are appended to `kept[name]`,
    so the caller can check what was produced while it was being timed.
    """
    import mlx.core as mx

    names = list(calls)
    for _ in range(warmup):
        for name in names:
            mx.eval(calls[name]())
    if budget_s is not None:
        started = time.perf_counter()
        for name in names:
            mx.eval(calls[name]())
        per_round = time.perf_counter() - started
        reps = max(3, min(reps, int(budget_s / max(per_round, 1e-9))))
    samples: dict[str, list[float]] = {name: [] for name in names}
    phase = random.randrange(keep_every) if keep_every else 0  # unpredictable to the kernel
    for rep in range(reps):
        for name in names if rep % 2 == 0 else reversed(names):
            mx.synchronize()
            started = time.perf_counter()
            result = calls[name]()
            mx.eval(result)
            mx.synchronize()
            samples[name].append(time.perf_counter() - started)
            if kept is not None and keep_every and (rep + phase) % keep_every == 0:
                kept.setdefault(name, []).append(result)
    return {name: _stats(values) for name, values in samples.items()}


def geometric_mean(values: list[float]) -> float:
    import math

    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")
