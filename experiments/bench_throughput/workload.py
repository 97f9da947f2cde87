"""A synthetic workload whose costs are known, run through rayevolve on a shared local Ray.

The mutator talks to `ScriptedOpenAIServer` (loopback), which answers every request
after `latency_s` with a valid SEARCH/REPLACE edit, serving at most `C` at once; each
evaluation costs `eval_s` on `W` evaluators. The ideal throughput is therefore
min(C / latency_s, W / eval_s) evaluations per second, and anything below it is the
framework's doing.
"""

from __future__ import annotations

import os
import re
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
TASK = HERE / "synthetic_task"
MODEL = "bench-model"


@dataclass(frozen=True)
class Workload:
    """One benchmark setting.

    Attributes:
      islands, in_flight: island actors and children each keeps in progress.
      evaluators: W, evaluator actors (each one evaluation at a time).
      concurrency: C, requests the model server serves at once (the rest queue there).
      latency_s: model latency per request; eval_s: cost of one evaluation.
      evaluations: how many to run; warmup: the first this many are not timed.
    """

    islands: int
    in_flight: int
    evaluators: int
    concurrency: int
    latency_s: float
    eval_s: float
    evaluations: int
    warmup: int = 0

    @property
    def ideal_per_s(self) -> float:
        rates = []
        if self.latency_s > 0:
            rates.append(self.concurrency / self.latency_s)
        if self.eval_s > 0:
            rates.append(self.evaluators / self.eval_s)
        return min(rates) if rates else float("inf")

    @property
    def in_flight_bound_per_s(self) -> float:
        """What the children in progress allow (Little's law): each spends at least
        latency + evaluation time in the pipeline."""
        cycle = self.latency_s + self.eval_s
        return self.islands * self.in_flight / cycle if cycle > 0 else float("inf")

    def label(self) -> str:
        return (
            f"islands={self.islands} in_flight={self.in_flight} W={self.evaluators} "
            f"C={self.concurrency} latency={self.latency_s:g}s eval={self.eval_s:g}s"
        )


def run_config(w: Workload, base_url: str, **sections):
    """The RunConfig of a workload (sections merge over the defaults, one level deep)."""
    from rayevolve.config import to_run_config

    base = {
        "task": {
            "name": "synthetic",
            "path": str(TASK),
            "resources": {"CPU": 1},
            "timeout_s": 60,
            "memory_limit_mb": 0,
            "env": {"BENCH_EVAL_S": repr(w.eval_s)},
            "features": [{"name": "code_length", "min": 0, "max": 600, "bins": 4}],
        },
        "mutation": {
            "backend": "openai",
            "base_url": base_url,
            "model": MODEL,
            "repair_attempts": 0,
            "max_concurrency": 4096,
            "openai": {"max_concurrent": 4096, "timeout_s": 60},
        },
        "islands": {"count": w.islands, "in_flight": w.in_flight},
        "evaluation": {"num_evaluators": w.evaluators},
        "stop": {"max_evaluations": w.evaluations},
        "progress": False,
    }
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return to_run_config(base)


def completions(run_dir: Path, since: float = 0.0) -> list[float]:
    """Wall-clock times (s) at which the run's evaluations finished, sorted."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from rayevolve.log import read_programs
    from rayevolve.outcome import Outcome

    rows = read_programs(run_dir, columns=["island", "status", "created_at", "eval_call_s"])
    evaluated = pc.and_(
        pc.greater_equal(rows["island"], 0),
        pc.not_equal(rows["status"], Outcome.MUTATION_FAILED.value),
    )
    rows = rows.filter(evaluated)
    created = pc.divide(pc.cast(rows["created_at"].cast(pa.timestamp("ms")), pa.int64()), 1e3)
    done = pc.add(created, pc.fill_null(rows["eval_call_s"], 0.0)).to_pylist()
    return sorted(t for t in done if t >= since)


def steady_rate(times: list[float], warmup: int, cooldown: int = 0) -> float:
    """Evaluations per second in the steady state: the least-squares slope of completions
    against time, leaving out the first `warmup` (pipelines filling) and the last
    `cooldown` (draining). A slope is less sensitive than (count / span) to work that was
    half done at either edge of the window."""
    timed = times[warmup : len(times) - cooldown or None]
    if len(timed) < 3:
        return float("nan")
    mean_t = statistics.fmean(timed)
    mean_i = (len(timed) - 1) / 2
    covariance = sum((t - mean_t) * (i - mean_i) for i, t in enumerate(timed))
    variance = sum((t - mean_t) ** 2 for t in timed)
    return covariance / variance


# rayevolve's own processes, by role (Ray's agents and idle workers are not the framework's)
ACTORS = (
    "IslandActor",
    "IslandHost",
    "MutatorActor",
    "EvaluatorPool",
    "EvaluatorActor",
    "RunLogActor",
)
ROLES = (
    ("sandbox", re.compile(r"zygote\.py|evaluation/child\.py")),
    ("ray", re.compile(r"raylet|gcs_server")),
    ("actor", re.compile(rf"^ray::({'|'.join(ACTORS)})\b")),
)
TICKS = os.sysconf("SC_CLK_TCK")


def processes() -> dict[int, tuple[str, float, float]]:
    """pid -> (role, CPU seconds, RSS MiB) of this machine's rayevolve and Ray processes
    (Linux). A fork server's CPU includes the candidates it reaped; an actor's role is
    its class name."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            status = (proc / "status").read_text()
        except OSError:
            continue
        for role, pattern in ROLES:
            match = pattern.search(cmdline)
            if match:
                name = match.group(1) if role == "actor" else role
                ticks = [int(v) for v in stat[11:15]]  # utime, stime, cutime, cstime
                # a fork server's reaped children are the candidates; an actor's would be
                # its fork server counted twice
                own = sum(ticks) if role == "sandbox" else ticks[0] + ticks[1]
                rss = re.search(r"VmRSS:\s+(\d+) kB", status)
                found[int(proc.name)] = (
                    name,
                    own / TICKS,
                    int(rss.group(1)) / 1024 if rss else 0.0,
                )
                break
    return found


@dataclass
class Sampler:
    """Samples processes in a thread while a run goes: each role's peak RSS and process
    count, and timestamped CPU totals per process (with the driver's own, which also
    serves the scripted model server), so CPU can be taken over any window of the run."""

    interval_s: float = 0.5
    peak: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    samples: list[tuple[float, dict[int, tuple[str, float]]]] = field(default_factory=list)

    def __enter__(self) -> Sampler:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        seen = processes()
        me = os.times()
        seen[os.getpid()] = ("driver + model server", me.user + me.system, 0.0)
        per_role: dict[str, int] = {}
        for role, _, rss in seen.values():
            self.peak[role] = max(self.peak.get(role, 0.0), rss)
            per_role[role] = per_role.get(role, 0) + 1
        for role, n in per_role.items():
            self.counts[role] = max(self.counts.get(role, 0), n)
        self.samples.append((time.time(), {pid: (r, cpu) for pid, (r, cpu, _) in seen.items()}))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def cpu_between(self, start: float, end: float) -> tuple[float, float, dict[str, float]]:
        """(first sample time, last sample time, CPU seconds per role) over the samples
        taken within [start, end], counting processes alive at both ends."""
        inside = [sample for sample in self.samples if start <= sample[0] <= end]
        if len(inside) < 2:
            return start, end, {}
        (t0, first), (t1, last) = inside[0], inside[-1]
        used: dict[str, float] = {}
        for pid, (role, cpu) in last.items():
            if pid in first:
                used[role] = used.get(role, 0.0) + cpu - first[pid][1]
        return t0, t1, used


@dataclass(frozen=True)
class Measurement:
    workload: Workload
    evaluations: int
    wall_s: float
    first_s: float  # from starting the controller to the first evaluation done
    achieved_per_s: float
    eval_s_median: float  # sandbox wall time per candidate, as the evaluator measured it
    actor_peak_mb: dict[str, float]
    actor_counts: dict[str, int]
    cpu_ms_per_eval: dict[str, float]  # by role, over the sampled window
    stopped_because: str

    @property
    def ratio(self) -> float:
        return self.achieved_per_s / self.workload.ideal_per_s

    @property
    def per_eval_ms(self) -> float:
        return 1e3 / self.achieved_per_s


def run(w: Workload, base_url: str, run_dir: Path, *, resume: Path | None = None, **sections):
    """Run the workload once (or continue the run at `resume`); measure it."""
    import pandas as pd

    from rayevolve.log import read_programs
    from rayevolve.run.controller import Controller

    if resume is not None:
        run_dir = resume
        sections["resume"] = str(resume)
    config = run_config(w, base_url, **sections)
    started = time.time()
    with Sampler() as sampled:
        summary = Controller(config, run_dir, [HERE]).run()
    times = completions(run_dir, since=started)
    cooldown = w.in_flight * w.islands
    # CPU over the steady window only: start-up (imports, restore) and the drain left out
    steady = times[w.warmup : len(times) - cooldown or None] or times
    low, high, cpu_s = sampled.cpu_between(steady[0], steady[-1])
    in_window = sum(1 for t in times if low <= t <= high)
    rows = read_programs(run_dir, columns=["island", "eval_s", "created_at"]).to_pandas()
    this_run = rows.created_at >= pd.Timestamp(started, unit="s", tz="UTC")  # not a resumed log's
    eval_s = rows[(rows.island >= 0) & this_run].eval_s.dropna()
    return Measurement(
        workload=w,
        evaluations=len(times),
        wall_s=summary.wall_s,
        first_s=times[0] - started if times else float("nan"),
        achieved_per_s=steady_rate(times, w.warmup, cooldown=cooldown),
        eval_s_median=statistics.median(eval_s) if len(eval_s) else float("nan"),
        actor_peak_mb={k: v for k, v in sampled.peak.items() if k in ACTORS},
        actor_counts={k: v for k, v in sampled.counts.items() if k in ACTORS},
        cpu_ms_per_eval={k: v / max(in_window, 1) * 1e3 for k, v in cpu_s.items()},
        stopped_because=summary.stopped_because,
    )
