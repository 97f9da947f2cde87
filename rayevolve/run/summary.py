"""What a finished run reports: `RunSummary` (``summary.json`` and the text printed at
the end), the totals counted from its log, and the package versions it ran with."""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow.compute as pc

from rayevolve.counts import Counts
from rayevolve.outcome import Outcome
from rayevolve.program import Program
from rayevolve.run.stopping import Stop, rank

VERSIONED = ("rayevolve", "ray", "mlx", "numpy", "pyarrow", "hydra-core", "omegaconf", "vllm")


@dataclass(frozen=True)
class RunSummary:
    """One run's result.

    Attributes:
      counts: the islands' counters summed (judged children by the log's count).
      evaluations_before: done by earlier sessions of a resumed run.
      best_score, best_program_id, best_program_path: the best program (None: none scored).
      stopped_because, stop: why the run ended, in words and as a `Stop`.
      isolation: how candidates were isolated, as announced at start.
      objective: what the score is and which way it goes (`checks.check_objective`).
    """

    run_dir: str
    run_id: str
    task: str
    counts: Counts
    wall_s: float
    evaluations_before: int
    initial_score: float
    best_score: float | None
    best_program_id: str | None
    best_program_path: str | None
    stopped_because: str
    stop: Stop = Stop.BUDGET
    island_errors: list[str] = field(default_factory=list)
    log_rows: dict[str, int] = field(default_factory=dict)
    log_error: str | None = None
    isolation: str = ""
    objective: str = ""

    @property
    def evaluations(self) -> int:
        return self.counts.evaluations

    @property
    def statuses(self) -> dict[str, int]:
        return dict(self.counts.statuses)

    @property
    def mutation_failures(self) -> int:
        return self.counts.mutation_failures

    @property
    def migrations_accepted(self) -> int:
        return self.counts.migrants_in

    def to_json(self) -> dict:
        """``summary.json``: the fields, with the counters flat beside them."""
        fields = asdict(self)
        del fields["counts"]
        return {"evaluations": self.evaluations, **self.counts.to_payload(), **fields}

    @classmethod
    def from_json(cls, data: dict) -> RunSummary:
        """The summary a ``summary.json`` holds (what `to_json` wrote)."""
        names = {f for f in cls.__dataclass_fields__ if f != "counts"}
        kept = {k: v for k, v in data.items() if k in names}
        kept["stop"] = Stop(kept.get("stop", Stop.BUDGET))
        return cls(counts=Counts.from_payload(data), **kept)

    def render(self) -> str:
        session = self.evaluations - self.evaluations_before
        rate = session / self.wall_s if self.wall_s > 0 else 0.0
        failures = self.counts.failures
        breakdown = ", ".join(
            f"{s} {n}" for s, n in sorted(self.statuses.items(), key=lambda kv: -kv[1])
        )
        best = "none" if self.best_score is None else f"{self.best_score:.6g}"
        gain = ""
        if self.best_score is not None:
            gain = f" ({self.best_score - self.initial_score:+.6g} over the initial {self.initial_score:.6g})"
        lines = [
            f"rayevolve run {self.run_id} ({self.task}) finished: {self.stopped_because}",
            f"  evaluations   {self.evaluations}"
            + (f" ({session} in this session)" if self.evaluations_before else "")
            + f" in {self.wall_s:.1f} s ({rate:.2f}/s), {failures} failed",
            f"  statuses      {breakdown or 'none'}",
            f"  mutations     {self.counts.mutation_failures} failed edits, "
            f"{self.counts.duplicates} duplicates skipped",
            f"  migrations    {self.counts.migrants_in} programs accepted",
            f"  best score    {best}{gain}",
            *([f"  objective     {self.objective}"] if self.objective else []),
            f"  best program  {self.best_program_path or '-'}",
            f"  isolation     {self.isolation or '-'}",
            f"  run log       {self.run_dir}/programs, {self.run_dir}/events "
            f"({self.log_rows.get('programs', 0)} + {self.log_rows.get('events', 0)} rows)",
        ]
        lines += [f"  island error  {e}" for e in self.island_errors]
        if self.log_error:
            lines.append(f"  LOG ERROR     {self.log_error}")
        if not self.stop.completed:
            lines.append(f"  to continue   python -m rayevolve resume={self.run_dir}")
        return "\n".join(lines)


def package_versions() -> dict[str, str]:
    import importlib.metadata as md

    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for name in VERSIONED:
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


@dataclass(frozen=True)
class LogTotals:
    """What a run's log holds: its children's counts (judged by outcome, replies that made
    no child; the initial program not counted) and the best scored program."""

    counts: Counts
    best: Program | None


def log_totals(run_dir: Path, maximize: bool) -> LogTotals:
    from rayevolve.log import program_from_row, read_programs

    columns = ["program_id", "island", "status", "score", "created_at"]
    rows = read_programs(run_dir, columns=columns).to_pylist()
    scored = [r for r in rows if r["status"] == Outcome.OK and r["score"] is not None]
    best = None
    if scored:
        top = min(
            scored,
            key=lambda r: rank(r["score"], r["created_at"].timestamp(), r["program_id"], maximize),
        )["program_id"]
        full = read_programs(run_dir).filter(pc.equal(pc.field("program_id"), top))
        best = program_from_row(full.slice(0, 1).to_pylist()[0])
    return LogTotals(counts=Counts.from_rows(rows), best=best)
