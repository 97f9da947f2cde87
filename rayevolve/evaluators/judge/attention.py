"""The kernel judge for grouped-query attention: one candidate's verdict, decided in a
process that never runs anything the candidate wrote.

Order, cheapest failure first:

1. the backend must exist here (else ``unsupported_platform``);
2. the EVOLVE-BLOCK must be data (`kernel_data.parse_blocks`, else ``rejected``);
3. the correctness shapes are drawn (from a generator of their own: shapes are no
   secret), and a candidate process is started fresh (`remote.CandidateProcess`: exec,
   not fork; it holds nothing of the judge's). Its ``launch()`` runs there, once for
   every shape the judge will use (checked, timed, and the model's, shuffled), only
   JSON comes back, and the process is killed: ``launch()`` is plain Python, and what
   escapes its namespace has that process only, never the kernel's;
4. the backend builds the kernel from the data, in a second fresh candidate process
   that runs only allow-listed kernel languages: Metal source is handed to Apple's
   compiler; Triton source is lowered to IR there, which the judge checks and compiles
   itself; stand-in and interpreted kernels are defined there and run there, the
   process stopped (SIGSTOP) whenever the judge is not waiting on it
   (``compile_error`` with the compiler's message). A candidate process the kernel does
   not run in is killed here;
5. only now the seed of every input is drawn (128 bits, from the OS);
6. one probe shape: correct, and not more than ``too_slow_factor`` times slower than the
   vendor's kernel (``too_slow`` in seconds, before the suite);
7. the correctness suite (`core.correctness_shapes`: every class of shape a model's
   serving uses, in every evaluation), every dtype, three kinds of input; candidate and
   vendor get separate buffers of the same values, made and evaluated by the judge; the
   candidate's inputs must equal the vendor's after each call, and each call must stay
   within ``too_slow_factor`` of the vendor's time on that shape;
8. timing, per timed shape and dtype: input sets rotated so that K/V are not cache-hot
   (more bytes than the device's last-level cache, fresh values), baseline and
   candidate interleaved with alternating order, single-dispatch latency and batches of
   dispatches (dispatch overhead amortised as a model's decode amortises it); the input
   sets cycle through the kinds of the suite; every timed output checked against its
   inputs' reference; every input verified unchanged afterwards;
9. the score: the geometric mean of the batched speedups over shapes and dtypes, each
   the median of per-pair ratios; the interval of every speedup (bootstrap) is reported,
   and the decision never rests on a single ratio.
"""

from __future__ import annotations

import math
import random
import secrets
from dataclasses import dataclass, field

import numpy as np

from rayevolve.evaluators.judge.backend import Backend, CompileError
from rayevolve.evaluators.judge.core import (
    DTYPES,
    INPUT_KINDS,
    MAX_CONTEXT,
    MAX_PREFILL,
    NVIDIA_TIMED,
    TIMED_LENGTHS,
    AttentionShape,
    Interval,
    check_output,
    combined_speedup,
    correctness_shapes,
    make_inputs,
    paired_speedup,
    reference,
    timing_shapes,
)
from rayevolve.evaluators.judge.kernel_data import (
    CandidateFailed,
    KernelDataError,
    launch_plans,
    parse_blocks,
)
from rayevolve.evaluators.judge.remote import CandidateProcess
from rayevolve.outcome import Outcome


@dataclass(frozen=True)
class JudgeSettings:
    """How thoroughly one candidate is judged.

    Attributes:
      dtypes: dtypes checked and timed.
      input_kinds: kinds of input every correctness shape is checked with.
      samples: interleaved baseline/candidate pairs per timed shape and dtype, for
        single-dispatch latency and again for batches.
      batch_target_s: a batched sample lasts about this long (from the baseline's latency).
      max_batch: dispatches per batched sample at most.
      warmup: untimed calls per input set before timing (compilation, caches).
      too_slow_factor: slower than the vendor by this factor on any shape: stop
        (``too_slow``), on the probe before the suite, and on every call after.
      too_slow_floor_s: a call faster than this is never too slow (a loaded machine
        deschedules a process for several milliseconds at a time).
      launch_timeout_s: the candidate process computing launch plans (or defining the
        kernels) is killed after this.
      call_timeout_s: a kernel call in the candidate process (stand-in, interpreter)
        that has not answered after this is killed (``timeout``).
      compile_timeout_s: lowering the kernels to IR in the candidate process, at most.
      max_pool: input sets rotated through while timing, at most.
      pool_budget_bytes: memory the rotated K/V may take.
      level: confidence level of every interval.
      max_context: the longest cache the correctness suite checks (the model's context).
      max_prefill: the longest prefill (L = S) the correctness suite draws.
      timed_lengths: (L, S) or (batch, L, S) of the timed shapes.
    """

    dtypes: tuple[str, ...] = DTYPES
    input_kinds: tuple[str, ...] = INPUT_KINDS
    samples: int = 30
    batch_target_s: float = 0.02
    max_batch: int = 64
    warmup: int = 2
    too_slow_factor: float = 100.0
    too_slow_floor_s: float = 0.05
    launch_timeout_s: float = 10.0
    call_timeout_s: float = 60.0
    compile_timeout_s: float = 120.0
    max_pool: int = 32
    pool_budget_bytes: int = 1 << 30
    level: float = 0.95
    max_context: int = MAX_CONTEXT
    max_prefill: int = MAX_PREFILL
    timed_lengths: tuple[tuple[int, ...], ...] = TIMED_LENGTHS


PROFILES = {
    "full": JudgeSettings(),
    "quick": JudgeSettings(
        samples=6, batch_target_s=0.004, max_batch=16, warmup=1, max_pool=4, launch_timeout_s=5.0
    ),
    # the test suite's: quick, with long prefills to 768 (the same classes of shape; on
    # two CPU cores a 4096-long prefill costs seconds for each of its six checks)
    "ci": JudgeSettings(
        samples=6,
        batch_target_s=0.004,
        max_batch=16,
        warmup=1,
        max_pool=4,
        launch_timeout_s=5.0,
        max_prefill=768,
    ),
    # NVIDIA GPUs: decode over the model's contexts at batch 1, and batches of 8 and 32
    "nvidia": JudgeSettings(timed_lengths=NVIDIA_TIMED, batch_target_s=0.002, max_pool=16),
    "nvidia_quick": JudgeSettings(
        timed_lengths=NVIDIA_TIMED, samples=10, batch_target_s=0.001, warmup=1, max_pool=4
    ),
    # Triton's interpreter on the CPU (tests): correctness on short shapes; its timings
    # say nothing, and its tl.dot is wrong for bfloat16 inputs (Triton 3.6), so float16
    "interpret": JudgeSettings(
        dtypes=("float16",),
        samples=2,
        batch_target_s=0.0,
        max_batch=1,
        warmup=0,
        max_pool=2,
        too_slow_factor=float("inf"),
        call_timeout_s=300.0,
        max_context=400,
        timed_lengths=((1, 128), (16, 16)),
    ),
}


def env_setting(name: str, allowed, default: str) -> str:
    """A task setting from the evaluator's environment (``task.env``), checked against
    `allowed`; ValueError with what is allowed."""
    import os

    value = os.environ.get(name, default)
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {sorted(allowed)}")
    return value


class Verdict(Exception):
    """A failure decided on the way: its status, its message, what was checked so far."""

    def __init__(self, status: str, message: str, **metrics: float):
        super().__init__(message)
        self.status, self.message, self.metrics = status, message, metrics

    def as_result(self) -> dict:
        return {"status": self.status, "error": self.message, **self.metrics}


@dataclass
class Judged:
    """A verdict dict (as an evaluator returns it), and the built kernel if it passed."""

    result: dict
    kernel: object | None = None


def _plans(
    data, shapes: list[AttentionShape], settings: JudgeSettings, rng: random.Random, process
):
    order = list(dict.fromkeys(shapes))
    rng.shuffle(order)
    try:
        plans = launch_plans(
            data, [s.launch_args() for s in order], process, settings.launch_timeout_s
        )
    except CandidateFailed as exc:
        status = Outcome.REJECTED if exc.kind == Outcome.INCORRECT else exc.kind
        raise Verdict(status, f"launch() failed in the candidate process: {exc}") from None
    return None if plans is None else dict(zip(order, plans, strict=True))


@dataclass
class Inputs:
    """One set of inputs of one shape: the candidate's arrays and the vendor's (separate
    buffers of the same values, made by the judge), their values on the host, the
    reference, the vendor's output, and the vendor's time on them."""

    candidate: list
    vendor: list
    values: list[np.ndarray]
    ref: np.ndarray
    base: np.ndarray
    vendor_s: float


class _Run:
    """One candidate under judgement: the backend, the kernel, the judge's generators."""

    def __init__(self, backend: Backend, kernel, settings: JudgeSettings, seed: int):
        self.backend, self.kernel, self.settings = backend, kernel, settings
        self.np_rng = np.random.default_rng(seed)
        self.checked = 0

    def inputs(self, shape: AttentionShape, dtype: str, kind: str) -> Inputs:
        """Fresh inputs on the device, twice (the candidate's, the vendor's), the
        reference and the vendor's output and time. Everything is evaluated here, so no
        work is pending on any of them when a timed call starts."""
        b = self.backend
        host = make_inputs(shape, kind, self.np_rng)
        vendor = [b.to_device(x, dtype) for x in host]
        candidate = [b.to_device(x, dtype) for x in host]
        b.run(vendor + candidate)
        rounded = [b.to_numpy(x) for x in vendor]
        ref = reference(*rounded, scale=shape.scale, causal=shape.causal)
        seconds, (base,) = b.time_calls([lambda: b.baseline(*vendor, shape)])
        return Inputs(candidate, vendor, rounded, ref, b.to_numpy(base), seconds)

    def call(self, inputs: Inputs, shape: AttentionShape, where: str):
        """The candidate on its inputs: its output, checked not to have taken more than
        `too_slow_factor` times the vendor's time, and its inputs verified unchanged."""
        b = self.backend
        try:
            seconds, (out,) = b.time_calls([lambda: self.kernel(*inputs.candidate, shape)])
        except (KernelDataError, Verdict):
            raise
        except CandidateFailed as exc:
            raise Verdict(exc.kind, f"{where}: {exc}", checks_passed=self.checked) from None
        except Exception as exc:  # noqa: BLE001 - compile errors and faults surface here
            status, message = b.classify(exc)
            raise Verdict(status, message, checks_passed=self.checked) from None
        if self.over_budget(seconds, inputs.vendor_s):  # once more, twice, before deciding:
            # one slow call may be the machine's doing; three are the kernel's
            again = [b.time_calls([lambda: self.kernel(*inputs.candidate, shape)]) for _ in "ab"]
            vendor = [b.time_calls([lambda: b.baseline(*inputs.vendor, shape)]) for _ in "ab"]
            self.not_too_slow(
                min([seconds] + [t for t, _ in again]),
                min([inputs.vendor_s] + [t for t, _ in vendor]),
                where,
            )
        self.unchanged(inputs, where)
        return out

    def over_budget(self, seconds: float, vendor_s: float) -> bool:
        s = self.settings
        return seconds > s.too_slow_factor * vendor_s and seconds > s.too_slow_floor_s

    def not_too_slow(self, seconds: float, vendor_s: float, where: str, when: str = "there"):
        """``too_slow`` at once if `seconds` is over the budget relative to the vendor's."""
        s = self.settings
        if self.over_budget(seconds, vendor_s):
            raise Verdict(
                Outcome.TOO_SLOW,
                f"{where}: {seconds * 1e3:.2f} ms against the vendor's {vendor_s * 1e3:.3f} ms "
                f"(more than {s.too_slow_factor:g}x slower); stopped {when}",
                checks_passed=self.checked,
            )

    def unchanged(self, inputs: Inputs, where: str, copies=("candidate",)) -> None:
        """Every array of `copies` still holds the values the judge made."""
        for copy in copies:
            arrays = getattr(inputs, copy)
            for name, x, before in zip("qkv", arrays, inputs.values, strict=True):
                after = self.backend.to_numpy(x)
                if after.shape != before.shape or not np.array_equal(after, before):
                    raise Verdict(
                        Outcome.INCORRECT,
                        f"{where}: input {name} was modified by the kernel",
                        checks_passed=self.checked,
                    )

    def check(self, out, inputs: Inputs, dtype: str, where: str) -> None:
        problem = check_output(self.backend.to_numpy(out), inputs.ref, inputs.base, dtype)
        if problem:
            raise Verdict(Outcome.INCORRECT, f"{where}: {problem}", checks_passed=self.checked)
        self.checked += 1


def _probe(run: _Run, shape: AttentionShape, dtype: str) -> None:
    """One shape first: right, and not hopelessly slow (seconds, not the whole suite)."""
    inputs = run.inputs(shape, dtype, "random")
    where = f"{shape.label} {dtype} (probe)"
    out = run.call(inputs, shape, where)
    run.check(out, inputs, dtype, where)
    b = run.backend
    times = {"baseline": [], "candidate": []}
    for _ in range(3):
        times["baseline"].append(b.time_calls([lambda: b.baseline(*inputs.vendor, shape)])[0])
        times["candidate"].append(b.time_calls([lambda: run.kernel(*inputs.candidate, shape)])[0])
    run.not_too_slow(
        min(times["candidate"]), min(times["baseline"]), where, "before the correctness suite"
    )


def _suite(run: _Run, shapes: list[AttentionShape]) -> None:
    for dtype in run.settings.dtypes:
        for shape in shapes:
            for kind in run.settings.input_kinds:
                inputs = run.inputs(shape, dtype, kind)
                where = f"{shape.label} {dtype} ({kind} inputs)"
                run.check(run.call(inputs, shape, where), inputs, dtype, where)


@dataclass
class Cell:
    """One timed shape and dtype: paired samples, latency and batched."""

    shape: AttentionShape
    dtype: str
    latency: tuple[list[float], list[float]] = field(default_factory=lambda: ([], []))
    batched: tuple[list[float], list[float]] = field(default_factory=lambda: ([], []))
    batch: int = 1
    pool: int = 1


ORDERS = (("baseline", "candidate"), ("candidate", "baseline"))


def _balanced_orders(run: _Run, samples: int) -> list[tuple[str, str]]:
    """Which side goes first in each pair: as often one as the other (a first call that
    is slower, or faster, then weighs on both sides alike, even over a few pairs), in an
    order shuffled by the judge's generator (which no candidate process has seen)."""
    firsts = [i % 2 for i in range(samples)]
    return [ORDERS[int(i)] for i in run.np_rng.permutation(firsts)]


def _time(run: _Run, shape: AttentionShape, dtype: str) -> Cell:
    s, b = run.settings, run.backend
    itemsize = 2
    size = max(2, math.ceil(2 * b.cache_bytes / shape.kv_bytes(itemsize)))
    # two copies of every input set: the candidate's and the vendor's
    size = min(size, s.max_pool, max(2, s.pool_budget_bytes // (2 * shape.kv_bytes(itemsize))))
    kinds = s.input_kinds
    pool = [run.inputs(shape, dtype, kinds[i % len(kinds)]) for i in range(size)]
    cell = Cell(shape, dtype, pool=size)
    where = f"{shape.label} {dtype} (outputs produced while timed)"

    # each input set has two copies; which one the candidate gets, and which the vendor,
    # alternates every two samples (independently of the order of the pair), so that
    # nothing about where a copy lies in memory favours either side
    def copies(i, swap):
        return (pool[i].vendor, pool[i].candidate) if swap else (pool[i].candidate, pool[i].vendor)

    def candidate(i, swap=0):
        return lambda: run.kernel(*copies(i, swap)[0], shape)

    def baseline(i, swap=0):
        return lambda: b.baseline(*copies(i, swap)[1], shape)

    # a backend may capture the calls once and replay them (CUDA graphs); else each
    # timing issues the calls afresh
    prepare = getattr(b, "timer", None) or (lambda calls: lambda: b.time_calls(calls))
    makers = {"baseline": baseline, "candidate": candidate}
    timers: dict = {}

    def timed(which: str, picks: tuple[int, ...], swap: int):
        key = (which, picks, swap)
        if key not in timers:
            timers[key] = prepare([makers[which](i, swap) for i in picks])
        return timers[key]()

    try:
        for _ in range(s.warmup):
            for i in range(size):
                b.time_calls([candidate(i), baseline(i)])
        b.run([x for inputs in pool for x in inputs.candidate + inputs.vendor])
        orders = _balanced_orders(run, s.samples)
        for rep in range(s.samples):
            i, swap = rep % size, (rep // 2) % 2
            order = orders[rep]
            for which in order:
                seconds, outs = timed(which, (i,), swap)
                cell.latency[0 if which == "baseline" else 1].append(seconds)
                if which == "candidate":
                    run.check(outs[0], pool[i], dtype, where)
            if rep >= 2:  # the best of three and more: not one slow moment of the machine
                run.not_too_slow(min(cell.latency[1]), min(cell.latency[0]), where)
        per_call = float(np.median(cell.latency[0]))
        cell.batch = max(1, min(s.max_batch, round(s.batch_target_s / max(per_call, 1e-7))))
        orders = _balanced_orders(run, s.samples)
        for rep in range(s.samples):
            start, swap = rep * cell.batch % size, (rep // 2) % 2
            picks = tuple((start + j) % size for j in range(cell.batch))
            order = orders[rep]
            for which in order:
                seconds, outs = timed(which, picks, swap)
                cell.batched[0 if which == "baseline" else 1].append(seconds)
                if which == "candidate":
                    for i, out in zip(picks, outs, strict=True):
                        run.check(out, pool[i], dtype, where)
    except Verdict:
        raise
    except CandidateFailed as exc:
        raise Verdict(exc.kind, f"{where}: {exc}", checks_passed=run.checked) from None
    except Exception as exc:  # noqa: BLE001
        status, message = b.classify(exc)
        raise Verdict(status, message, checks_passed=run.checked) from None
    for inputs in pool:  # both copies have been the candidate's
        run.unchanged(inputs, where, copies=("candidate", "vendor"))
    return cell


def _report(run: _Run, cells: list[Cell], backend: Backend) -> dict:
    s = run.settings
    result: dict = {"checks_passed": float(run.checked)}
    lines = [
        "shape | dtype | baseline | candidate ms | baseline ms | speedup (batched) "
        f"[{s.level:.0%} interval] | latency speedup | batch | input sets"
    ]
    for cell in cells:
        key = f"{cell.shape.label}_{cell.dtype}"
        batched = paired_speedup(*cell.batched, run.np_rng, s.level)
        latency = paired_speedup(*cell.latency, run.np_rng, s.level)
        cand_ms = float(np.median(cell.batched[1])) / cell.batch * 1e3
        base_ms = float(np.median(cell.batched[0])) / cell.batch * 1e3
        result.update(
            {
                f"speedup_{key}": batched.point,
                f"speedup_low_{key}": batched.low,
                f"speedup_high_{key}": batched.high,
                f"latency_speedup_{key}": latency.point,
                f"candidate_ms_{key}": cand_ms,
                f"baseline_ms_{key}": base_ms,
            }
        )
        lines.append(
            f"{cell.shape.label} | {cell.dtype} | {backend.baseline_name(cell.shape, cell.dtype)} | "
            f"{cand_ms:.4f} | {base_ms:.4f} | {batched} | {latency.point:.3f}x | {cell.batch} | {cell.pool}"
        )
    combined: Interval = combined_speedup([c.batched for c in cells], run.np_rng, s.level)
    result.update(
        combined_score=combined.point,
        speedup_low=combined.low,
        speedup_high=combined.high,
    )
    lines.append(f"geometric mean: {combined}")
    result["timing_table"] = "\n".join(lines)
    return result


def judge_attention(
    source: str,
    backend: Backend,
    heads: tuple[int, int, int],
    settings: JudgeSettings = PROFILES["full"],
    *,
    seed: int | None = None,
    extra_shapes: tuple[AttentionShape, ...] = (),
    after=None,
) -> Judged:
    """Judge the kernel candidate whose program text is `source`. `after(kernel,
    result) -> result`, if given, runs once the kernel has passed, while it can still run
    (a kernel in the candidate process lives only as long as this call): a further stage,
    such as the end-to-end decode."""
    problem = backend.unavailable()
    if problem:
        return Judged({"status": Outcome.UNSUPPORTED_PLATFORM, "error": problem})
    # shapes are no secret (the candidate process is given every one of them, shuffled)
    shapes_rng = random.Random(secrets.randbits(64))
    try:
        try:
            data = parse_blocks(source)
        except KernelDataError as exc:
            raise Verdict(Outcome.REJECTED, str(exc)) from None
        checks = correctness_shapes(heads, shapes_rng, settings.max_context, settings.max_prefill)
        timed = timing_shapes(heads, settings.timed_lengths)
        env = getattr(backend, "candidate_env", dict)()
        # launch() is plain Python (whatever escapes its namespace gets that process):
        # its process is gone before the kernel's material is touched, in another one
        with CandidateProcess(env=env) as planner:
            plans = _plans(data, checks + timed + list(extra_shapes), settings, shapes_rng, planner)
        with CandidateProcess(env=env) as process:
            try:
                kernel = backend.build(data, plans, process, settings)
            except KernelDataError as exc:
                raise Verdict(Outcome.REJECTED, str(exc)) from None
            except CompileError as exc:
                raise Verdict(
                    Outcome.COMPILE_ERROR, f"the kernel does not compile:\n{exc}"
                ) from None
            except CandidateFailed as exc:
                raise Verdict(
                    exc.kind, f"building the kernel failed in the candidate process: {exc}"
                ) from None
            if not getattr(kernel, "remote", False):
                process.close()  # the kernel runs here: nothing of the candidate's runs on
            # drawn only now: no process that ran candidate material held it, or can
            seed = secrets.randbits(128) if seed is None else seed
            run = _Run(backend, kernel, settings, seed)
            try:
                _probe(run, timed[1 if len(timed) > 1 else 0], settings.dtypes[-1])
                _suite(run, checks)
            except KernelDataError as exc:
                raise Verdict(Outcome.REJECTED, str(exc), checks_passed=run.checked) from None
            cells = [_time(run, shape, dtype) for dtype in settings.dtypes for shape in timed]
            result = _report(run, cells, backend)
            if after is not None:
                result = after(kernel, result)
            return Judged(result, kernel)
    except Verdict as verdict:
        return Judged(verdict.as_result())
