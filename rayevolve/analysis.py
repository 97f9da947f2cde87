"""Analysis of run logs: one run, or a sweep of runs, as pandas tables.

Everything here reads the Parquet log (through `runlog.read_programs/read_events`) and
returns DataFrames, so the same numbers feed the plots, the HTML report, the terminal
summary and a user's notebook.
"""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rayevolve.log import find_runs, read_events, read_programs
from rayevolve.outcome import Outcome

# two-sided 95% Student t quantiles for 1..30 degrees of freedom (normal beyond)
_T95 = [
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
]


@dataclass(frozen=True)
class RunData:
    """The log of one run or of every run under a sweep directory."""

    programs: pd.DataFrame
    events: pd.DataFrame
    runs: list[Path]
    maximize: dict[str, bool]

    def sign(self, run: str) -> float:
        """+1 for a run that maximises its score, -1 for one that minimises it."""
        return 1.0 if self.maximize.get(run, True) else -1.0


def _direction(run: Path) -> bool:
    from omegaconf import OmegaConf

    config = run / "config.yaml"
    return OmegaConf.load(config).task.direction != "minimize" if config.is_file() else True


def load(path: str | Path) -> RunData:
    runs = find_runs(path)
    programs = read_programs(*runs).to_pandas()
    events = read_events(*runs).to_pandas()
    programs["created_at"] = pd.to_datetime(programs["created_at"], utc=True)
    return RunData(programs, events, runs, {run.name: _direction(run) for run in runs})


def evaluated(programs: pd.DataFrame) -> pd.DataFrame:
    """Rows that were evaluated (the seed included), oldest first."""
    rows = programs[programs["status"] != Outcome.MUTATION_FAILED]
    return rows.sort_values(["run", "created_at"]).reset_index(drop=True)


def best_so_far(data: RunData, *, per_island: bool = False) -> pd.DataFrame:
    """Best score after each evaluation: columns run, island, evaluation, seconds, best."""
    frames = []
    for run, rows in evaluated(data.programs).groupby("run", sort=True):
        sign = data.sign(run)
        start = rows["created_at"].min()
        seed = rows.loc[rows["island"] == -1, "score"] * sign
        seed_fitness = float(seed.iloc[0]) if len(seed) and pd.notna(seed.iloc[0]) else -np.inf
        groups = rows.groupby("island") if per_island else [(None, rows)]
        for island, part in groups:
            if per_island and island == -1:
                continue
            # every island starts from the seed it was given
            fitness = np.maximum.accumulate(
                np.maximum((part["score"] * sign).fillna(-np.inf).to_numpy(), seed_fitness)
            )
            fitness = pd.Series(fitness)
            frames.append(
                pd.DataFrame(
                    {
                        "run": run,
                        "island": island if per_island else -1,
                        "evaluation": np.arange(1, len(part) + 1),
                        "seconds": (part["created_at"] - start).dt.total_seconds().to_numpy(),
                        "best": (fitness * sign).replace([np.inf, -np.inf], np.nan).to_numpy(),
                    }
                )
            )
    return (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["run", "island", "evaluation", "seconds", "best"])
    )


def failure_breakdown(data: RunData) -> pd.DataFrame:
    """How every candidate ended: status (mutation failures by kind), count, share."""
    rows = data.programs
    label = rows["status"].where(
        rows["status"] != Outcome.MUTATION_FAILED,
        "mutation:" + rows["mutation_error_kind"].fillna("unknown"),
    )
    counts = label.value_counts().rename_axis("status").reset_index(name="count")
    counts["share"] = counts["count"] / counts["count"].sum()
    return counts


def best_program(data: RunData, run: str | None = None) -> pd.Series:
    rows = evaluated(data.programs)
    rows = rows[rows["status"] == Outcome.OK]
    if run is not None:
        rows = rows[rows["run"] == run]
    sign = rows["run"].map(data.sign)
    return rows.loc[(rows["score"] * sign).idxmax()]


def lineage(data: RunData, program_id: str) -> pd.DataFrame:
    """The ancestors of a program, seed first, each with the diff from its parent."""
    by_id = data.programs.drop_duplicates("program_id").set_index("program_id")
    chain, current = [], program_id
    while current is not None and current in by_id.index and len(chain) < 100_000:
        chain.append(current)
        parent = by_id.at[current, "parent_id"]
        current = parent if isinstance(parent, str) else None
    chain.reverse()
    rows = []
    for i, pid in enumerate(chain):
        row = by_id.loc[pid]
        parent_code = by_id.at[chain[i - 1], "code"] if i else ""
        diff = (
            "".join(
                difflib.unified_diff(
                    str(parent_code).splitlines(True),
                    str(row["code"]).splitlines(True),
                    "parent",
                    "child",
                    n=1,
                )
            )
            if i
            else ""
        )
        rows.append(
            {
                "program_id": pid,
                "island": row["island"],
                "generation": row["generation"],
                "score": row["score"],
                "operator": row["mutation_operator"],
                "diff": diff,
            }
        )
    return pd.DataFrame(rows)


def island_diversity(data: RunData) -> pd.DataFrame:
    """Per island over time: population size, MAP-Elites cells filled, best score."""
    stats = data.events[data.events["kind"] == "island_stats"]
    return (
        stats[
            [
                "run",
                "time",
                "island",
                "population_size",
                "cells_filled",
                "best_score",
                "evaluations",
            ]
        ]
        .sort_values(["run", "island", "time"])
        .reset_index(drop=True)
    )


def migration_flows(data: RunData) -> pd.DataFrame:
    """Accepted migrants per (source, destination) island."""
    moves = data.events[data.events["kind"] == "migration"].copy()
    if moves.empty:
        return pd.DataFrame(columns=["run", "src_island", "dst_island", "sent", "accepted"])
    moves["sent"] = moves["program_ids"].map(len)
    moves["accepted"] = moves["accepted_ids"].map(len)
    return moves.groupby(["run", "src_island", "dst_island"], as_index=False)[
        ["sent", "accepted"]
    ].sum()


def operator_success(data: RunData) -> pd.DataFrame:
    """Per model and mutation operator: children, share scored ok, share better than parent."""
    rows = data.programs[data.programs["island"] >= 0]
    scores = data.programs.drop_duplicates("program_id").set_index("program_id")["score"]
    parent_score = rows["parent_id"].map(scores)
    sign = rows["run"].map(data.sign)
    better = (rows["score"] * sign > parent_score * sign) & rows["score"].notna()
    table = pd.DataFrame(
        {
            "model": rows["model"].fillna("-"),
            "operator": rows["mutation_operator"].fillna("-"),
            "scored": rows["status"] == Outcome.OK,
            "improved": better,
        }
    )
    out = table.groupby(["model", "operator"]).agg(
        children=("scored", "size"),
        ok_rate=("scored", "mean"),
        improvement_rate=("improved", "mean"),
    )
    return out.reset_index().sort_values("children", ascending=False)


def _overrides(run: Path) -> dict[str, str]:
    path = run / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return {}
    from omegaconf import OmegaConf

    items = OmegaConf.to_container(OmegaConf.load(path)) or []
    return dict(
        str(item).lstrip("+~").split("=", 1)
        for item in items
        if "=" in str(item) and not str(item).startswith(("hydra.", "progress"))
    )


def sweep_table(data: RunData, threshold: float | None = None) -> pd.DataFrame:
    """One row per run: its overrides, final best, evaluations to reach `threshold`,
    wall time and failures."""
    curves = best_so_far(data)
    rows = []
    for run_dir in data.runs:
        run = run_dir.name
        curve = curves[curves["run"] == run]
        summary = (
            json.loads((run_dir / "summary.json").read_text())
            if (run_dir / "summary.json").is_file()
            else {}
        )
        sign = data.sign(run)
        reached = (
            curve[curve["best"] * sign >= threshold * sign]
            if threshold is not None
            else curve.iloc[0:0]
        )
        programs = data.programs[data.programs["run"] == run]
        rows.append(
            {
                "run": run,
                **_overrides(run_dir),
                "best": curve["best"].iloc[-1] if len(curve) else math.nan,
                "evaluations": int(
                    (
                        (programs["status"] != Outcome.MUTATION_FAILED) & (programs["island"] >= 0)
                    ).sum()
                ),
                "evals_to_threshold": int(reached["evaluation"].iloc[0])
                if len(reached)
                else math.nan,
                "wall_s": summary.get("wall_s", math.nan),
                "failures": int(
                    (
                        (programs["status"] != Outcome.OK)
                        & (programs["status"] != Outcome.MUTATION_FAILED)
                    ).sum()
                ),
            }
        )
    return pd.DataFrame(rows)


def compare(table: pd.DataFrame, metric: str = "best", over: str = "seed") -> pd.DataFrame:
    """Mean of `metric` per setting (runs differing only in `over`), with a 95% CI."""
    settings = [
        c
        for c in table.columns
        if c not in {"run", over, "best", "evaluations", "evals_to_threshold", "wall_s", "failures"}
    ]
    groups = table.groupby(settings, dropna=False) if settings else [((), table)]
    rows = []
    for key, part in groups:
        values = part[metric].dropna().to_numpy(dtype=float)
        n = len(values)
        half = (
            (_T95[n - 2] if n - 1 <= len(_T95) else 1.96) * values.std(ddof=1) / math.sqrt(n)
            if n > 1
            else math.nan
        )
        key = key if isinstance(key, tuple) else (key,)
        rows.append(
            {
                **dict(zip(settings, key, strict=True)),
                "runs": n,
                "mean": values.mean() if n else math.nan,
                "ci95": half,
            }
        )
    return pd.DataFrame(rows)
