"""The kernel judge's backend-neutral half: shapes, inputs, the reference, tolerances,
and the statistics a speedup is decided from. Pure numpy; no device, no candidate.

Attention is ``softmax(q k^T * scale) v`` with q of shape (batch, q_heads, L, head_dim)
and k, v of shape (batch, kv_heads, S, head_dim); query head h reads KV head
h // (q_heads // kv_heads); L and S are independent (decode: L = 1 with a long cache);
a causal mask is aligned to the end of the cache (query l sees keys 0 .. l + S - L).

* Shapes for correctness are drawn afresh for every evaluation from the judge's own
  random generator (seeded from the OS, in a process no candidate code ever ran in):
  every class a model's serving uses, in every evaluation: decode with caches from 1 key
  to the model's 32768, speculative chunks of 2..16 queries with the causal mask (over
  short and long caches), prefills short and long (L = S up to 4096), batches from 2 to
  64 (decode and speculative), no mask, lengths that are multiples of no block size. A candidate cannot know which shapes
  are checked, and the shapes it is timed on are checked as well.
* Inputs come in three kinds: random, probes (each query aligned with one chosen key:
  the first, the last visible, the first masked, so that a key dropped or masked wrongly
  shows), and large logits (scores far above 88, which overflow a kernel that skips the
  max subtraction). Timed inputs cycle through the three kinds too. Outputs of random
  inputs over long caches are near zero; tolerances relative to the vendor's error (not
  absolute ones) keep an error there visible.
* The reference is float64 attention from the same rounded inputs the kernels get.
* Tolerances are relative to the vendor's own kernel: on the same inputs, the candidate's
  error against the reference may be at most `K_MAX` times the vendor's largest error
  and `K_MEAN` times its mean error (with floors of a few units in the last place of the
  dtype, for shapes where the vendor is exact).
* A speedup is the median of the per-pair ratios of interleaved baseline/candidate
  samples, with a bootstrap confidence interval; several shapes combine into the
  geometric mean, its interval bootstrapped jointly.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np

# (q_heads, kv_heads, head_dim)
PRESETS = {"qwen3-0.6b": (16, 8, 128), "claim-40-8": (40, 8, 128), "tiny": (4, 2, 64)}
MAX_CONTEXT = 32768  # Qwen3-0.6B's context
MAX_BATCH = 64  # the largest batch the suite draws (a serving engine's decode batch)
MAX_PREFILL = 4096  # the longest prefill (L = S) the suite draws
DTYPES = ("float16", "bfloat16")
EPS = {"float16": 2.0**-11, "bfloat16": 2.0**-8, "float32": 2.0**-24}
K_MAX = 4.0  # a candidate's largest error: at most this many times the vendor's
K_MEAN = 3.0  # its mean error: at most this many times the vendor's
FLOOR_ULPS = 2.0  # floors, in units in the last place of the dtype
INPUT_KINDS = ("random", "probe", "large")
LARGE_LOGIT = 150.0  # the largest score of "large" inputs (exp overflows float32 above ~88)


@dataclass(frozen=True)
class AttentionShape:
    batch: int
    q_heads: int
    kv_heads: int
    head_dim: int
    q_len: int
    kv_len: int
    causal: bool = True

    def __post_init__(self) -> None:
        if self.q_heads % self.kv_heads:
            raise ValueError(
                f"q_heads {self.q_heads} is not a multiple of kv_heads {self.kv_heads}"
            )
        if self.causal and self.q_len > self.kv_len:
            raise ValueError(f"causal attention needs L <= S, got L={self.q_len}, S={self.kv_len}")
        if min(self.batch, self.q_len, self.kv_len, self.head_dim) < 1:
            raise ValueError(f"every dimension must be >= 1: {self}")

    @property
    def label(self) -> str:
        kind = "decode" if self.q_len == 1 else "prefill" if self.q_len == self.kv_len else "chunk"
        mask = "" if self.causal else "_nomask"
        batch = f"_b{self.batch}" if self.batch > 1 else ""
        return f"{kind}_L{self.q_len}_S{self.kv_len}{batch}{mask}"

    @property
    def scale(self) -> float:
        return 1.0 / math.sqrt(self.head_dim)

    def launch_args(self) -> tuple[int, ...]:
        """What a candidate's launch() is given: (batch, q_heads, kv_heads, L, S, head_dim)."""
        return (self.batch, self.q_heads, self.kv_heads, self.q_len, self.kv_len, self.head_dim)

    def kv_bytes(self, itemsize: int = 2) -> int:
        return 2 * self.batch * self.kv_heads * self.kv_len * self.head_dim * itemsize


def correctness_shapes(
    heads: tuple[int, int, int],
    rng: random.Random,
    max_context: int = MAX_CONTEXT,
    max_prefill: int = MAX_PREFILL,
) -> list[AttentionShape]:
    """The shapes one evaluation checks, their lengths drawn from `rng`."""
    hq, hkv, d = heads

    def odd(lo: int, hi: int) -> int:  # a length that is a multiple of no block size
        value = rng.randint(lo, hi)
        return value if value % 2 else max(lo, value - 1)

    chunk = rng.randint(2, 16)
    prefill = odd(17, 127)
    if max_context < 9000:  # a small suite (Triton's interpreter): the same kinds, shorter
        return _small_shapes(heads, rng, max_context)
    big_batch = rng.randint(4, MAX_BATCH)
    spec = [
        # decode, over every range of cache up to the model's context
        (1, 1, 1, True),
        (1, 1, odd(2, 63), True),
        (1, 1, odd(65, 1023), True),
        (1, 1, odd(1025, 4095), True),
        (1, 1, odd(4097, 16383), True),
        (1, 1, max_context - rng.randint(0, 15), True),
        # speculative decoding: 2..16 queries, short and long caches
        (1, chunk, odd(chunk + 1, 300), True),
        (1, rng.randint(2, 16), odd(4097, 9000), True),
        # prefill: short, a model's usual block, and long (L = S up to max_prefill)
        (1, prefill, prefill, True),
        (1, 128, 128 + rng.randint(0, 64), True),
        (1, long_prefill := odd(257, max(258, max_prefill)), long_prefill, True),
        # batches: small, and up to MAX_BATCH (decode and speculative), caches sized so
        # the whole batch holds at most a model's context of keys
        (rng.randint(2, 3), 1, odd(300, 1100), True),
        (2, rng.randint(2, 8), odd(65, 600), True),
        (big_batch, 1, odd(65, max(66, max_context // big_batch)), True),
        (rng.randint(4, 16), rng.randint(2, 16), odd(17, 1024), True),
        # no mask
        (1, rng.randint(3, 9), odd(5, 80), False),
    ]
    return [AttentionShape(b, hq, hkv, d, L, S, causal) for b, L, S, causal in spec]


TIMED_LENGTHS = ((1, 1024), (1, 4096), (256, 256))  # (L, S): decode steps and a prompt


def _small_shapes(heads, rng: random.Random, max_context: int) -> list[AttentionShape]:
    """The same classes as the full suite, on caches up to `max_context`."""
    hq, hkv, d = heads
    spec = [
        (1, 1, 1, True),
        (1, 1, rng.randint(2, 63), True),
        (1, 1, rng.randint(65, max_context), True),
        (1, rng.randint(2, 16), rng.randint(17, max_context), True),
        (1, prefill := rng.randint(17, 40), prefill, True),
        (1, long_prefill := rng.randint(257, max(257, max_context)), long_prefill, True),
        (2, rng.randint(1, 4), rng.randint(17, 200), True),
        (rng.randint(4, MAX_BATCH), 1, rng.randint(2, 48), True),
        (rng.randint(4, 8), rng.randint(2, 16), rng.randint(17, 64), True),
        (1, rng.randint(3, 9), rng.randint(5, 80), False),
    ]
    return [AttentionShape(b, hq, hkv, d, L, S, causal) for b, L, S, causal in spec]


# decode at batch 1 over the model's contexts, and batches where the vendor is near the
# memory floor (the NVIDIA task's score and its "never below" shapes)
NVIDIA_TIMED = (
    (1, 1, 1024),
    (1, 1, 4096),
    (1, 1, 16384),
    (1, 1, 32768),
    (8, 1, 4096),
    (32, 1, 32768),
)


def timing_shapes(
    heads: tuple[int, int, int], lengths: tuple[tuple[int, ...], ...] = TIMED_LENGTHS
) -> list[AttentionShape]:
    """The timed shapes (fixed, for comparable scores): each (L, S), or (batch, L, S)."""
    hq, hkv, d = heads
    shapes = []
    for entry in lengths:
        batch, L, S = entry if len(entry) == 3 else (1, *entry)
        shapes.append(AttentionShape(batch, hq, hkv, d, L, S))
    return shapes


def make_inputs(shape: AttentionShape, kind: str, rng: np.random.Generator):
    """Fresh (q, k, v) as float32 numpy arrays of the given kind (see the module's doc)."""
    b, hq, hkv, d, L, S = (
        shape.batch,
        shape.q_heads,
        shape.kv_heads,
        shape.head_dim,
        shape.q_len,
        shape.kv_len,
    )
    q = rng.standard_normal((b, hq, L, d), dtype=np.float32)
    k = rng.standard_normal((b, hkv, S, d), dtype=np.float32)
    v = rng.standard_normal((b, hkv, S, d), dtype=np.float32)
    group = hq // hkv
    if kind == "probe":
        for bi in range(b):
            for h in range(hq):
                for row in range(L):
                    last = row + S - L if shape.causal else S - 1
                    targets = [
                        0,
                        last,
                        last + 1 if shape.causal and last + 1 < S else int(rng.integers(S)),
                        int(rng.integers(S)),
                    ]
                    # score of the target ~ 16: it carries most of the weight
                    q[bi, h, row] = k[bi, h // group, targets[(h + row) % len(targets)]] * (
                        16.0 / math.sqrt(d)
                    )
    elif kind == "large":
        q *= LARGE_LOGIT / (4.0 * shape.scale * math.sqrt(d))  # scores ~ N(0, (150 / 4)^2)
    elif kind != "random":
        raise ValueError(f"unknown input kind {kind!r}")
    return q, k, v


def reference(q, k, v, *, scale: float, causal: bool, block_bytes: int = 64 << 20) -> np.ndarray:
    """float64 attention of (already rounded) float inputs, without repeating K/V;
    computed over blocks of query positions, so a long prefill's scores never take more
    than about `block_bytes` at once."""
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    b, hq, L, d = q.shape
    hkv, S = k.shape[1], k.shape[2]
    group = hq // hkv
    out = np.empty((b, hq, L, d))
    step = max(1, block_bytes // (8 * b * hq * S))
    kt = k.transpose(0, 1, 3, 2)
    for start in range(0, L, step):
        stop = min(L, start + step)
        rows = stop - start
        qg = q[:, :, start:stop].reshape(b, hkv, group * rows, d)
        scores = qg @ kt * scale  # (b, hkv, group * rows, S)
        if causal:
            positions = np.tile(np.arange(start, stop), group)
            visible = np.arange(S)[None, :] <= positions[:, None] + (S - L)
            scores = np.where(visible, scores, -np.inf)
        scores -= scores.max(axis=-1, keepdims=True)
        weights = np.exp(scores)
        weights /= weights.sum(axis=-1, keepdims=True)
        out[:, :, start:stop] = (weights @ v).reshape(b, hq, rows, d)
    return out


@dataclass(frozen=True)
class ErrorStats:
    """How far an output is from the reference."""

    max_abs: float
    mean_abs: float
    worst: tuple[int, ...]
    got: float
    expected: float
    non_finite: int

    def describe(self) -> str:
        where = ", ".join(str(i) for i in self.worst)
        if self.non_finite:
            return f"{self.non_finite} non-finite output elements (first at [{where}]; unwritten outputs are NaN)"
        return (
            f"max |error| {self.max_abs:.4g} at [{where}] (got {self.got:.6g}, expected "
            f"{self.expected:.6g}), mean |error| {self.mean_abs:.4g}"
        )


def error_stats(out: np.ndarray, ref: np.ndarray) -> ErrorStats:
    out = np.asarray(out, dtype=np.float64)
    finite = np.isfinite(out)
    if not finite.all():
        first = tuple(int(i) for i in np.argwhere(~finite)[0])
        return ErrorStats(
            math.inf, math.inf, first, float(out[first]), float(ref[first]), int((~finite).sum())
        )
    error = np.abs(out - ref)
    worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(error)), error.shape))
    return ErrorStats(
        float(error.max()), float(error.mean()), worst, float(out[worst]), float(ref[worst]), 0
    )


@dataclass(frozen=True)
class Tolerance:
    """What a candidate's error may be on one set of inputs: derived from the vendor's."""

    max_abs: float
    mean_abs: float

    @classmethod
    def from_baseline(cls, baseline: ErrorStats, ref: np.ndarray, dtype: str) -> Tolerance:
        scale = float(np.abs(ref).max()) or 1.0
        floor_max = FLOOR_ULPS * EPS[dtype] * scale
        floor_mean = EPS[dtype] * float(np.abs(ref).mean() or 1.0)
        return cls(
            K_MAX * max(baseline.max_abs, floor_max), K_MEAN * max(baseline.mean_abs, floor_mean)
        )

    def violated_by(self, stats: ErrorStats) -> str | None:
        if stats.non_finite:
            return stats.describe()
        if stats.max_abs > self.max_abs:
            return f"{stats.describe()}; allowed max {self.max_abs:.4g} ({K_MAX:g}x the vendor's)"
        if stats.mean_abs > self.mean_abs:
            return (
                f"{stats.describe()}; allowed mean {self.mean_abs:.4g} ({K_MEAN:g}x the vendor's)"
            )
        return None


def check_output(
    out: np.ndarray, ref: np.ndarray, baseline_out: np.ndarray, dtype: str
) -> str | None:
    """None if `out` is as close to `ref` as the vendor's own output allows, else why not."""
    if out.shape != ref.shape:
        return f"returned shape {out.shape}, expected {ref.shape}"
    return Tolerance.from_baseline(error_stats(baseline_out, ref), ref, dtype).violated_by(
        error_stats(out, ref)
    )


@dataclass(frozen=True)
class Interval:
    """A speedup (baseline time / candidate time) and its confidence interval."""

    point: float
    low: float
    high: float

    def holds(self, value: float) -> bool:
        return self.low <= value <= self.high

    def __str__(self) -> str:
        return f"{self.point:.3f}x [{self.low:.3f}, {self.high:.3f}]"


def _median_log_ratios(logs: np.ndarray, picks: np.ndarray) -> np.ndarray:
    return np.median(logs[picks], axis=-1)


def paired_speedup(
    baseline_s, candidate_s, rng: np.random.Generator, level: float = 0.95, resamples: int = 2000
) -> Interval:
    """Median of the per-pair ratios, with a bootstrap interval of that median."""
    logs = np.log(np.asarray(baseline_s, dtype=float) / np.asarray(candidate_s, dtype=float))
    picks = rng.integers(0, len(logs), size=(resamples, len(logs)))
    boot = _median_log_ratios(logs, picks)
    tail = (1 - level) / 2
    return Interval(
        float(np.exp(np.median(logs))),
        float(np.exp(np.quantile(boot, tail))),
        float(np.exp(np.quantile(boot, 1 - tail))),
    )


def combined_speedup(
    cells: list[tuple[list[float], list[float]]],
    rng: np.random.Generator,
    level: float = 0.95,
    resamples: int = 2000,
) -> Interval:
    """The geometric mean of several cells' median speedups, its interval bootstrapped
    jointly (each cell's pairs resampled, the geometric mean taken each time)."""
    boots, points = [], []
    for baseline_s, candidate_s in cells:
        logs = np.log(np.asarray(baseline_s, dtype=float) / np.asarray(candidate_s, dtype=float))
        picks = rng.integers(0, len(logs), size=(resamples, len(logs)))
        boots.append(_median_log_ratios(logs, picks))
        points.append(np.median(logs))
    boot = np.mean(boots, axis=0)
    tail = (1 - level) / 2
    return Interval(
        float(np.exp(np.mean(points))),
        float(np.exp(np.quantile(boot, tail))),
        float(np.exp(np.quantile(boot, 1 - tail))),
    )
