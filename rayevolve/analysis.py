"""Analysis of run logs: one run, or a sweep of runs, as pandas tables.

Everything here reads the Parquet log (through `runlog.read_programs/read_events`) and
returns DataFrames, so the same numbers feed the plots, the HTML report, the terminal
summary and a user's notebook.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rayevolve.log import PartCache, find_runs, read_events, read_programs
from rayevolve.log.schema import EventKind
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


def for_run(data: RunData, run: str) -> RunData:
    """`data` restricted to one run (itself when it holds only that run)."""
    if len(data.runs) == 1:
        return data
    return RunData(
        data.programs[data.programs["run"] == run],
        data.events[data.events["run"] == run],
        [r for r in data.runs if r.name == run],
        data.maximize,
    )


@functools.lru_cache(maxsize=4096)
def _yaml_at(path: str, mtime_ns: int):
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(Path(path).read_text(), Loader=loader)


def _yaml(path: Path):
    """A run's YAML file (config, Hydra's records), parsed once per version of the file
    (the web view reads them at every refresh); None when absent. Read-only."""
    try:
        return _yaml_at(str(path), path.stat().st_mtime_ns)
    except FileNotFoundError:
        return None


def for_runs(data: RunData, runs: list[str]) -> RunData:
    """`data` restricted to the runs named `runs`."""
    wanted = set(runs)
    if wanted >= {r.name for r in data.runs}:
        return data
    return RunData(
        data.programs[data.programs["run"].isin(wanted)],
        data.events[data.events["run"].isin(wanted)],
        [r for r in data.runs if r.name in wanted],
        data.maximize,
    )


def task_of(run: Path) -> str:
    """The task a run ran (its ``config.yaml``'s ``task.name``)."""
    config = _yaml(run / "config.yaml") or {}
    return str((config.get("task") or {}).get("name") or "?")


def same_task(data: RunData, run: str) -> list[str]:
    """The runs of `data` that ran the same task as `run` (runs of different tasks are
    never compared with each other)."""
    tasks = {r.name: task_of(r) for r in data.runs}
    return [name for name, task in tasks.items() if task == tasks.get(run)]


def expected_jobs(path: Path) -> int | None:
    """How many jobs the Hydra sweep at `path` launches (the product of the choices of
    its sweep overrides, from ``multirun.yaml``); None when `path` is no sweep folder or
    the sweeper chooses the jobs itself (Optuna: ``n_trials``)."""
    record = _yaml(path / "multirun.yaml")
    if not isinstance(record, dict):
        return None
    hydra = record.get("hydra") or {}
    sweeper = hydra.get("sweeper") or {}
    if isinstance(sweeper, dict) and sweeper.get("n_trials"):
        return int(sweeper["n_trials"])
    overrides = ((hydra.get("overrides") or {}).get("task")) or []
    jobs = 1
    for item in overrides:
        key, _, value = str(item).partition("=")
        if key.startswith("hydra.") or not value:
            continue
        if re.match(r"^(range|choice|interval|glob)\(", value):
            return None  # sweep functions: not counted here
        depth, choices = 0, 1
        for ch in value:
            depth += ch in "[{(" and 1 or 0
            depth -= ch in "]})" and 1 or 0
            choices += ch == "," and depth == 0
        jobs *= choices
    return jobs


def _direction(run: Path) -> bool:
    config = _yaml(run / "config.yaml") or {}
    return ((config.get("task") or {}).get("direction")) != "minimize"


def load(path: str | Path, cache: PartCache | None = None) -> RunData:
    """The log of the run or sweep at `path`; `cache` keeps the Parquet parts already read
    (a view that reloads a live run)."""
    runs = find_runs(path)
    if not runs:
        raise FileNotFoundError(f"no rayevolve run log under {path}")
    programs = read_programs(*runs, cache=cache).to_pandas()
    events = read_events(*runs, cache=cache).to_pandas()
    programs["created_at"] = pd.to_datetime(programs["created_at"], utc=True)
    return RunData(programs, events, runs, {run.name: _direction(run) for run in runs})


def evaluated(programs: pd.DataFrame) -> pd.DataFrame:
    """Rows that were evaluated (the seed included), oldest first."""
    rows = programs[programs["status"] != Outcome.MUTATION_FAILED]
    return rows.sort_values(["run", "created_at"]).reset_index(drop=True)


def best_so_far(data: RunData, *, per_island: bool = False) -> pd.DataFrame:
    """Best score after each evaluation: columns run, island, evaluation, seconds, best.

    ``evaluation`` counts the run's evaluations (the initial program is 1), also for
    per-island curves: an island's point sits where the whole run had done that many, so
    an island's curve never looks ahead of the run's."""
    frames = []
    narrow = data.programs[["run", "island", "created_at", "score", "status"]]
    for run, rows in evaluated(narrow).groupby("run", sort=True):
        sign = data.sign(run)
        start = rows["created_at"].min()
        seed = rows.loc[rows["island"] == -1, "score"] * sign
        seed_fitness = float(seed.iloc[0]) if len(seed) and pd.notna(seed.iloc[0]) else -np.inf
        overall = np.arange(1, len(rows) + 1)
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
                        "evaluation": overall[rows.index.get_indexer(part.index)],
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


def best_program(data: RunData, run: str | None = None) -> pd.Series | None:
    """The best scored program (of `run`, or of all runs); None while none is scored."""
    rows = data.programs
    rows = rows[(rows["status"] == Outcome.OK) & rows["score"].notna()]
    if run is not None:
        rows = rows[rows["run"] == run]
    if rows.empty:
        return None
    fitness = rows["score"] * rows["run"].map(data.sign)
    # `rayevolve.run.stopping.rank`: the fittest, then the first to reach it, then the id
    top = rows[fitness == fitness.max()].sort_values(["created_at", "program_id"])
    return top.iloc[0]


def by_id(programs: pd.DataFrame) -> pd.DataFrame:
    """Program rows indexed by ``program_id`` (a program logged twice, once)."""
    return programs.drop_duplicates("program_id").set_index("program_id")


def _ancestry(indexed: pd.DataFrame, program_id: str) -> list[str]:
    """Program ids from the initial program down to `program_id`."""
    chain, current = [], program_id
    while current is not None and current in indexed.index and len(chain) < 100_000:
        chain.append(current)
        parent = indexed.at[current, "parent_id"]
        current = parent if isinstance(parent, str) else None
    return chain[::-1]


def lineage(data: RunData, program_id: str) -> pd.DataFrame:
    """The ancestors of a program, the initial program first: each one's island,
    generation, score, operator and code, the diff from its parent, whether it came by
    migration (``hop``: it lives on another island than its parent) and a crossover's
    ``second_parent``."""
    indexed = by_id(data.programs)
    chain = _ancestry(indexed, program_id)
    rows = []
    for i, pid in enumerate(chain):
        row = indexed.loc[pid]
        parent = indexed.loc[chain[i - 1]] if i else None
        rows.append(
            {
                "program_id": pid,
                "island": row["island"],
                "generation": row["generation"],
                "score": row["score"],
                "operator": row["mutation_operator"],
                "diff": code_diff(parent["code"], row["code"], context=1) if i else "",
                "hop": bool(i) and parent["island"] >= 0 and row["island"] != parent["island"],
                "second_parent": second_parent(row.to_dict()),
                "code": str(row["code"]),
            }
        )
    frame = pd.DataFrame(rows)
    # pandas 3 makes a column of strings and Nones a str column holding NaN (truthy):
    # keep None for "no second parent"
    second = frame["second_parent"].astype(object)
    frame["second_parent"] = second.where(second.notna(), None)
    return frame


def island_diversity(data: RunData) -> pd.DataFrame:
    """Per island over time: population size, MAP-Elites cells filled, best score."""
    stats = data.events[data.events["kind"] == EventKind.ISLAND_STATS]
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
    moves = data.events[data.events["kind"] == EventKind.MIGRATION].copy()
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
    scores = by_id(data.programs)["score"]
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
    """The settings a sweep job's command line gave it: Hydra's record of its overrides,
    less Hydra's own and the keys the run's config leaves out of job folder names
    (``hydra.job.config.override_dirname.exclude_keys``: where to connect, progress, the
    run directory, the web view), which are not settings of the experiment."""
    items = _yaml(run / ".hydra" / "overrides.yaml") or []
    excluded = {"progress"}  # and the web view's settings (`ui.*`), below
    hydra = _yaml(run / ".hydra" / "hydra.yaml") or {}
    for key in ("hydra", "job", "config", "override_dirname", "exclude_keys"):
        hydra = hydra.get(key) if isinstance(hydra, dict) else None
    excluded |= set(hydra or [])
    pairs = (str(item).lstrip("+~").split("=", 1) for item in items if "=" in str(item))
    return {
        key: value.replace("\\:", ":")
        for key, value in pairs
        if not key.startswith(("hydra.", "ui.")) and key not in excluded
    }


def sweep_table(data: RunData, threshold: float | None = None) -> pd.DataFrame:
    """One row per run: its overrides, final best, evaluations to reach `threshold`,
    wall time and failures."""
    curves = dict(iter(best_so_far(data).groupby("run")))
    narrow = dict(iter(data.programs[["run", "status", "island"]].groupby("run")))
    rows = []
    for run_dir in data.runs:
        run = run_dir.name
        curve = curves.get(run, pd.DataFrame(columns=["evaluation", "best"]))
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
        programs = narrow.get(run, pd.DataFrame(columns=["status", "island"]))
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


# --- what a sweep varies -------------------------------------------------------------

RESULT_COLUMNS = ("run", "best", "evaluations", "evals_to_threshold", "wall_s", "failures")


def varying_settings(table: pd.DataFrame, over: str | None = None) -> list[str]:
    """The override columns of `sweep_table` (or `compare`) whose value differs between
    runs; `over` (e.g. ``seed``) left out."""
    return [
        c
        for c in table.columns
        if c not in {*RESULT_COLUMNS, "runs", "mean", "ci95", over}
        and table[c].astype(str).nunique(dropna=False) > 1
    ]


def constant_settings(table: pd.DataFrame) -> dict[str, str]:
    """The override columns every run shares, with their value."""
    return {
        c: str(table[c].iloc[0])
        for c in table.columns
        if c not in {*RESULT_COLUMNS, "runs", "mean", "ci95"}
        and len(table)
        and table[c].astype(str).nunique(dropna=False) == 1
    }


def setting_label(row: dict, settings: list[str], width: int = 48) -> str:
    """A short legend label: ``key=value`` for each varying setting, keys shortened to their
    last part (``islands.count=2``-> ``count=2``) when that keeps it under `width`."""
    full = ", ".join(f"{k}={row[k]}" for k in settings)
    short = ", ".join(f"{k.rsplit('.', 1)[-1]}={row[k]}" for k in settings)
    return (
        full if len(full) <= width else short if len(short) <= width else short[: width - 1] + "…"
    )


def run_labels(table: pd.DataFrame) -> dict[str, str]:
    """Run name -> a short label naming only what differs between the runs (the run's own
    name when nothing does)."""
    settings = varying_settings(table)
    if not settings:
        return {run: run for run in table["run"]}
    return {row["run"]: setting_label(row, settings) for row in table.to_dict("records")}


def compare_varying(table: pd.DataFrame, metric: str = "best", over: str = "seed") -> pd.DataFrame:
    """`compare` over only the settings that vary (one row per combination of them), with
    the mean and its 95% interval over `over`: what a sweep is for."""
    settings = varying_settings(table, over)
    kept = ["run", *settings, *(c for c in RESULT_COLUMNS[1:] if c in table)]
    if over in table:
        kept.append(over)
    result = compare(table[kept], metric, over)
    if settings:  # numbers in numeric order (overrides are strings: "10" < "5")
        result = result.sort_values(settings, key=_natural).reset_index(drop=True)
    return result


def _natural(column: pd.Series) -> pd.Series:
    numbers = pd.to_numeric(column, errors="coerce")
    return numbers if numbers.notna().all() else column.astype(str)


# --- why candidates failed ------------------------------------------------------------

_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")
_LINE = re.compile(r"line \d+")
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.])")


def failure_message(row: dict) -> str:
    """The message a failed row gives (the judge's ``error`` artifact, or the mutation
    error), as one line with memory addresses and line numbers blanked so repeats group."""
    if row.get("status") == Outcome.MUTATION_FAILED:
        # a null string cell reads NaN (truthy) in pandas 3: only a str is a message
        said = [row.get(k) for k in ("mutation_error", "mutation_error_kind")]
        text = next((t for t in said if isinstance(t, str) and t), "")
    else:
        artifacts = dict(row.get("artifacts") or [])
        text = artifacts.get("error") or ""
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    # a traceback's last line says what went wrong; a one-line message is itself
    line = lines[-1] if lines and lines[0].startswith("Traceback") else (lines[0] if lines else "")
    # addresses, line numbers and the numbers inside a message: one failure, one group
    line = _NUMBER.sub("N", _LINE.sub("line N", _ADDRESS.sub("0x…", line)))
    return line[:300] or "(no message)"


def failure_messages(data: RunData, limit: int = 50) -> pd.DataFrame:
    """Failed candidates grouped by status and message: status, message, count, share of
    that status, one example program id; the most frequent first."""
    rows = data.programs[data.programs["status"] != Outcome.OK]
    columns = ["status", "message", "count", "share", "example"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    messages = pd.DataFrame(
        {
            "status": rows["status"].to_numpy(),
            "message": [failure_message(r) for r in rows.to_dict("records")],
            "program_id": rows["program_id"].to_numpy(),
        }
    )
    table = messages.groupby(["status", "message"], as_index=False).agg(
        count=("program_id", "size"), example=("program_id", "first")
    )
    table["share"] = table["count"] / table.groupby("status")["count"].transform("sum")
    table = table.sort_values(["count", "status"], ascending=[False, True]).head(limit)
    return table[columns].reset_index(drop=True)


# --- lineage ------------------------------------------------------------------------------


def code_diff(
    before: str, after: str, a: str = "parent", b: str = "child", context: int = 2
) -> str:
    return "".join(
        difflib.unified_diff(
            str(before).splitlines(True), str(after).splitlines(True), a, b, n=context
        )
    )


def diff_lines(diff: str) -> list[tuple[str, str]]:
    """Each line of a unified diff with its kind, for colouring: ``file`` (the ---/+++
    header), ``hunk`` (@@), ``add``, ``del`` or ``ctx``."""
    kinds = []
    for line in diff.splitlines():
        if line.startswith("@@"):
            kind = "hunk"
        elif line.startswith(("+++", "---")):
            kind = "file"
        elif line.startswith(("+", "-")):
            kind = "add" if line[0] == "+" else "del"
        else:
            kind = "ctx"
        kinds.append((kind, line))
    return kinds


def second_parent(row: dict) -> str | None:
    """A crossover's second parent (the inspiration it took code from), else None."""
    operator = str(row.get("mutation_operator") or "")
    ids = row.get("inspiration_ids")
    ids = [] if ids is None else list(ids)
    return ids[0] if "crossover" in operator and ids else None


def seed_to_best_diff(data: RunData, program_id: str) -> str:
    """The whole change from the initial program to `program_id`, as one unified diff."""
    indexed = by_id(data.programs)
    chain = _ancestry(indexed, program_id)
    first, last = indexed.at[chain[0], "code"], indexed.at[chain[-1], "code"]
    return code_diff(first, last, "initial program", "best", 3)


# --- where the work ran -------------------------------------------------------------------


def placements(data: RunData) -> pd.DataFrame:
    """Every actor's placement as logged at start: run, role, name, host, ip, node_id."""
    columns = ["run", "role", "name", "host", "ip", "node_id"]
    events = data.events[data.events["kind"] == EventKind.PLACEMENT]
    rows = []
    for run, payload in zip(events["run"], events["payload"], strict=True):
        fields = json.loads(payload) if isinstance(payload, str) else {}
        rows.append({"run": run, **{c: fields.get(c) for c in columns[1:]}})
    return pd.DataFrame(rows, columns=columns)


def per_host(data: RunData) -> pd.DataFrame:
    """Evaluations per host and node: count, share scored ok, mean evaluation seconds."""
    rows = evaluated(data.programs)
    rows = rows[rows["host"].notna()]
    columns = ["host", "node_id", "evaluators", "evaluations", "ok_rate", "mean_eval_s"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    table = rows.groupby(["host", "node_id"], as_index=False).agg(
        evaluators=("evaluator_id", "nunique"),
        evaluations=("program_id", "size"),
        ok_rate=("status", lambda s: float((s == Outcome.OK).mean())),
        mean_eval_s=("eval_s", "mean"),
    )
    table["node_id"] = table["node_id"].str[:12]
    return table[columns].sort_values("evaluations", ascending=False).reset_index(drop=True)


def per_evaluator(data: RunData) -> pd.DataFrame:
    """Each evaluator at work: its host, evaluations, share scored ok, mean evaluation
    seconds and when it last returned a verdict (UTC)."""
    rows = evaluated(data.programs)
    rows = rows[rows["evaluator_id"].notna()]
    columns = ["run", "evaluator", "host", "evaluations", "ok_rate", "mean_eval_s", "last"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    table = rows.groupby(["run", "evaluator_id", "host"], as_index=False, dropna=False).agg(
        evaluations=("program_id", "size"),
        ok_rate=("status", lambda s: float((s == Outcome.OK).mean())),
        mean_eval_s=("eval_s", "mean"),
        last=("created_at", "max"),
    )
    return table.rename(columns={"evaluator_id": "evaluator"})[columns]


def per_island(data: RunData, run: str | None = None) -> pd.DataFrame:
    """Candidates per island and outcome (the initial program left out)."""
    rows = data.programs[data.programs["island"] >= 0]
    if run is not None:
        rows = rows[rows["run"] == run]
    return (
        rows.groupby(["island", "status"]).size().rename("count").reset_index()
        if len(rows)
        else pd.DataFrame(columns=["island", "status", "count"])
    )


# --- MAP-Elites grids ------------------------------------------------------------------------


def grid_features(run: Path) -> list[dict]:
    """The MAP-Elites dimensions a run was configured with (``task.features``)."""
    config = _yaml(run / "config.yaml") or {}
    features = (config.get("task") or {}).get("features") or []
    return [f for f in features if isinstance(f, dict) and f.get("name")]


def map_elites(data: RunData, run: str) -> tuple[list[dict], pd.DataFrame]:
    """Each island's MAP-Elites grid as the log places its programs: the run's first two
    features (``diversity``, which depends on an island's archive at the time, is left
    out), each scored program binned by the configured range (a learned range: the
    values the island's programs took), and the best score per cell. Returns the
    features used and rows of island, x, y, best, count, program_id."""
    from rayevolve.config import FeatureConfig
    from rayevolve.islands.features import BuiltIn, bin_index
    from rayevolve.program import ProgramError, block_texts

    run_dir = next((r for r in data.runs if r.name == run), None)
    columns = ["island", "x", "y", "best", "count", "program_id"]
    if run_dir is None:
        return [], pd.DataFrame(columns=columns)
    features = [f for f in grid_features(run_dir) if f["name"] != BuiltIn.DIVERSITY][:2]
    rows = data.programs[
        (data.programs["run"] == run)
        & (data.programs["status"] == Outcome.OK)
        & data.programs["score"].notna()
        & (data.programs["island"] >= 0)
    ]
    if not features or rows.empty:
        return features, pd.DataFrame(columns=columns)
    configs = [
        FeatureConfig(
            name=f["name"], min=f.get("min"), max=f.get("max"), bins=int(f.get("bins", 10))
        )
        for f in features
    ]

    def value(row: dict, name: str) -> float:
        """`feature_value` without building a Program (the view does this each refresh)."""
        if name == BuiltIn.CODE_LENGTH:
            try:
                return float(sum(len(b) for b in block_texts(row["code"])))
            except ProgramError:
                return float(len(row["code"]))
        if name == BuiltIn.COMPLEXITY:
            return float(len(row["code"]))
        if name == BuiltIn.SCORE:
            return float(row["score"])
        found = dict(row["metrics"] or []).get(name)
        return float(found) if found is not None else math.nan

    columns_needed = rows[["code", "score", "metrics"]].to_dict("records")
    values = [[value(row, c.name) for c in configs] for row in columns_needed]
    coords = pd.DataFrame(values, columns=[c.name for c in configs], index=rows.index)
    placed = rows.assign(**{f"v{i}": coords[c.name] for i, c in enumerate(configs)})
    placed = placed.dropna(subset=[f"v{i}" for i in range(len(configs))])
    cells = []
    for island, part in placed.groupby("island"):
        spans = [
            (part[f"v{i}"].min(), part[f"v{i}"].max()) if c.learned else None
            for i, c in enumerate(configs)
        ]
        for row in part.to_dict("records"):
            x = bin_index(row["v0"], configs[0], spans[0])
            y = bin_index(row["v1"], configs[1], spans[1]) if len(configs) > 1 else 0
            cells.append((island, x, y, row["score"], row["program_id"], row["created_at"]))
    frame = pd.DataFrame(cells, columns=["island", "x", "y", "score", "program_id", "created_at"])
    sign = data.sign(run)
    frame = frame.assign(f=-frame["score"] * sign).sort_values(["f", "created_at", "program_id"])
    grouped = frame.groupby(["island", "x", "y"], as_index=False)
    best = grouped.first()[["island", "x", "y", "score", "program_id"]].rename(
        columns={"score": "best"}
    )
    count = grouped.size().rename(columns={"size": "count"})
    return features, best.merge(count, on=["island", "x", "y"])[columns]
