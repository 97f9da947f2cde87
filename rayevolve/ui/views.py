"""What the web view shows, computed from a `RunData`: Plotly figures, tables as Dash
components and coloured diffs. Nothing here serves anything."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from dash import dash_table, dcc, html

from rayevolve import analysis
from rayevolve.log.schema import EventKind
from rayevolve.outcome import Outcome

LINEAGE_TOP = 6  # the best programs whose ancestry the lineage chart draws
POPULATION_NODES = 3000  # the whole population's tree: at most this many, the best first
TABLE_ROWS = 50
PROGRAM_ROWS = 20  # rows per page of the program table
# outcome colours that say what they mean: green is scored, warm colours are failures
OUTCOME_COLOURS = {
    Outcome.OK: "#2a9d47",
    Outcome.INCORRECT: "#f4a261",
    Outcome.COMPILE_ERROR: "#8d5524",
    Outcome.RUNTIME_ERROR: "#d62828",
    Outcome.TIMEOUT: "#7b2cbf",
    Outcome.MEMORY_LIMIT: "#e76f51",
    Outcome.CRASHED: "#222222",
    Outcome.TOO_SLOW: "#e9c46a",
    Outcome.UNSUPPORTED_PLATFORM: "#6c757d",
    Outcome.REJECTED: "#adb5bd",
    Outcome.INFRA_ERROR: "#457b9d",
    Outcome.MUTATION_FAILED: "#ced4da",
}
LINEAGE_LEGEND = (
    "● a child of a parent on its own island · ◆ arrived by migration (another island "
    "than its parent) · ★ a crossover (dotted edge from its second parent) · grey edges: "
    "parent to child · colour: island (or outcome) · outlined: the program shown below"
)


def _layout(fig: go.Figure, title: str, x: str, y: str) -> go.Figure:
    fig.update_layout(
        title=title,
        xaxis_title=x,
        yaxis_title=y,
        margin=dict(l=50, r=10, t=40, b=40),
        height=330,
        legend=dict(font=dict(size=10)),
        template="plotly_white",
    )
    return fig


def empty(title: str, why: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=why, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, title, "", "")


def table(frame: pd.DataFrame, table_id: str | None = None, rows: int = TABLE_ROWS):
    """A DataFrame as an HTML table (numbers to 6 significant digits)."""

    def cell(value):
        if isinstance(value, float):
            return "" if math.isnan(value) else f"{value:.6g}"
        return str(value)

    head = html.Tr([html.Th(str(c)) for c in frame.columns])
    body = [
        html.Tr([html.Td(cell(v)) for v in row]) for row in frame.head(rows).itertuples(index=False)
    ]
    props = {"id": table_id} if table_id else {}
    return html.Table([html.Thead(head), html.Tbody(body)], className="t", **props)


def diff_view(diff: str, diff_id: str | None = None):
    """A unified diff with added, removed and hunk lines coloured (CSS classes)."""
    spans = [
        html.Span(line + "\n", className=f"d-{kind}") for kind, line in analysis.diff_lines(diff)
    ]
    props = {"id": diff_id} if diff_id else {}
    return html.Pre(spans or "(no change)", className="diff", **props)


# --- one run ------------------------------------------------------------------------------


def best_figure(data: analysis.RunData, run: str, x: str = "evaluation") -> go.Figure:
    """Best score so far against the run's evaluations (`x` = ``evaluation``) or seconds
    since it started (``seconds``): the run, and each island."""
    one = analysis.for_run(data, run)
    overall = analysis.best_so_far(one)
    if overall.empty:
        return empty("Best score so far", "no evaluation yet")
    fig = go.Figure()
    fig.add_scatter(x=overall[x], y=overall["best"], name="run", line=dict(width=3), mode="lines")
    for island, curve in analysis.best_so_far(one, per_island=True).groupby("island"):
        fig.add_scatter(
            x=curve[x],
            y=curve["best"],
            name=f"island {island}",
            mode="lines",
            line=dict(width=1, shape="hv"),
            opacity=0.8,
        )
    axis = "evaluations (whole run)" if x == "evaluation" else "seconds since start"
    return _layout(fig, "Best score so far", axis, "best score")


def islands_figure(data: analysis.RunData, run: str) -> go.Figure:
    counts = analysis.per_island(data, run)
    if counts.empty:
        return empty("Candidates per island", "no candidate yet")
    fig = go.Figure()
    for status, part in counts.groupby("status"):
        fig.add_bar(
            x=part["island"].astype(str),
            y=part["count"],
            name=str(status),
            marker_color=OUTCOME_COLOURS.get(status, "#999"),
        )
    order = [str(i) for i in sorted(counts["island"].unique())]  # 0, 1, ..., 10, not 0, 1, 10
    fig.update_layout(barmode="stack")
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=order)
    return _layout(fig, "Candidates per island, by outcome", "island", "candidates")


def migrations_figure(data: analysis.RunData, run: str) -> go.Figure:
    events = data.events[(data.events["run"] == run) & (data.events["kind"] == EventKind.MIGRATION)]
    if events.empty:
        return empty("Migrations", "no migration yet")
    start = pd.to_datetime(data.events.loc[data.events["run"] == run, "time"]).min()
    seconds = (pd.to_datetime(events["time"]) - start).dt.total_seconds()
    accepted = events["accepted_ids"].map(lambda ids: 0 if ids is None else len(ids))
    fig = go.Figure(
        go.Scatter(
            x=seconds,
            y=events["dst_island"],
            mode="markers",
            marker=dict(
                size=6 + 3 * accepted,
                color=events["src_island"],
                colorscale="Viridis",
                colorbar=dict(title="from"),
            ),
            text=[
                f"island {s} -> {d}: {a} accepted"
                for s, d, a in zip(
                    events["src_island"], events["dst_island"], accepted, strict=True
                )
            ],
            hoverinfo="text",
            name="migrations",
        )
    )
    return _layout(fig, "Migrations (size: programs accepted)", "seconds since start", "to island")


def lineage_figure(
    data: analysis.RunData,
    run: str,
    selected: str | None,
    scope: str = "best",
    colour: str = "island",
) -> go.Figure:
    """Generation against score, an edge from each parent: the ancestry of the run's best
    programs (`scope` ``best``) or the whole scored population (``all``, the best
    `POPULATION_NODES`); diamonds came by migration, stars are crossovers (a dotted edge
    from the second parent); coloured by island or by outcome (`colour`). Click a point
    to open it."""
    one = analysis.for_run(data, run)
    rows = analysis.evaluated(one.programs)
    scored = rows[(rows["status"] == Outcome.OK) & rows["score"].notna() & (rows["run"] == run)]
    title = "Lineage of the best programs" if scope == "best" else "The whole population"
    if scored.empty:
        return empty(title, "no scored program yet")
    sign = one.sign(run)
    indexed = analysis.by_id(one.programs)
    nodes: dict[str, dict] = {}
    if scope == "best":
        top = scored.assign(f=scored["score"] * sign).nlargest(LINEAGE_TOP, "f")["program_id"]
        for pid in top:
            for step in analysis.lineage(one, pid).to_dict("records"):
                nodes[step["program_id"]] = step
    else:
        kept = scored.assign(f=scored["score"] * sign).nlargest(POPULATION_NODES, "f")
        for row in kept.to_dict("records"):
            parent = row["parent_id"] if isinstance(row["parent_id"], str) else None
            island_of_parent = indexed.at[parent, "island"] if parent in indexed.index else None
            nodes[row["program_id"]] = {
                "program_id": row["program_id"],
                "island": row["island"],
                "generation": row["generation"],
                "score": row["score"],
                "operator": row["mutation_operator"],
                "hop": island_of_parent is not None
                and island_of_parent >= 0
                and row["island"] != island_of_parent,
                "second_parent": analysis.second_parent(row),
            }
    fig = go.Figure()
    edge_x, edge_y, cross_x, cross_y = [], [], [], []
    for pid, node in nodes.items():
        parent = indexed.at[pid, "parent_id"]
        if isinstance(parent, str) and parent in nodes:
            edge_x += [nodes[parent]["generation"], node["generation"], None]
            edge_y += [nodes[parent]["score"], node["score"], None]
        second = node["second_parent"]
        if second and second in indexed.index:
            cross_x += [indexed.at[second, "generation"], node["generation"], None]
            cross_y += [indexed.at[second, "score"], node["score"], None]
    fig.add_scatter(
        x=edge_x, y=edge_y, mode="lines", line=dict(color="#bbb", width=1), name="parent"
    )
    if cross_x:
        fig.add_scatter(
            x=cross_x,
            y=cross_y,
            mode="lines",
            line=dict(color="#c60", width=1, dash="dot"),
            name="second parent",
        )
    ids = list(nodes)
    symbols = [
        "star" if nodes[p]["second_parent"] else "diamond" if nodes[p]["hop"] else "circle"
        for p in ids
    ]
    if colour == "outcome":  # a scored program is ok: colour by how its children fared
        marker_colour = [OUTCOME_COLOURS[Outcome.OK]] * len(ids)
    else:
        marker_colour = [nodes[p]["island"] for p in ids]
    fig.add_scatter(
        x=[nodes[p]["generation"] for p in ids],
        y=[nodes[p]["score"] for p in ids],
        mode="markers",
        marker=dict(
            size=[15 if p == selected else (10 if scope == "best" else 7) for p in ids],
            symbol=symbols,
            color=marker_colour,
            colorscale="Turbo" if colour != "outcome" else None,
            line=dict(width=[3 if p == selected else 0 for p in ids], color="black"),
        ),
        customdata=ids,
        text=[
            f"{p[:8]} island {nodes[p]['island']} gen {nodes[p]['generation']}: "
            f"{nodes[p]['score']:.6g} ({nodes[p]['operator']})"
            for p in ids
        ],
        hoverinfo="text",
        name="programs",
    )
    if colour == "outcome":
        failed = rows[(rows["status"] != Outcome.OK) & (rows["run"] == run)]
        failed = failed[failed["parent_id"].isin(nodes)]
        for status, part in failed.groupby("status"):  # failed children, at their parent
            fig.add_scatter(
                x=part["generation"],
                y=[nodes[p]["score"] for p in part["parent_id"]],
                mode="markers",
                marker=dict(symbol="x", size=6, color=OUTCOME_COLOURS.get(status, "#999")),
                customdata=list(part["program_id"]),
                name=f"{status} (child)",
            )
    return _layout(fig, f"{title} (click one)", "generation", "score")


PROGRAM_COLUMNS = (
    "program",
    "island",
    "generation",
    "outcome",
    "operator",
    "model",
    "score",
    "seconds",
)
NUMERIC = ("island", "generation", "score", "seconds")


def program_table():
    """The table of every program of the run, to sort, filter and search (Dash's table;
    its rows come from `program_rows`); a click on a row opens the program."""
    columns = [
        {"name": c, "id": c, **({"type": "numeric"} if c in NUMERIC else {})}
        for c in PROGRAM_COLUMNS
    ]
    return dash_table.DataTable(
        id="programs-table",
        columns=columns,
        data=[],
        sort_action="native",
        filter_action="native",
        page_action="native",
        page_size=PROGRAM_ROWS,
        style_table={"overflowX": "auto"},
        style_cell={"fontFamily": "monospace", "fontSize": 12, "textAlign": "left"},
        style_data_conditional=[
            {"if": {"filter_query": f'{{outcome}} = "{o}"', "column_id": "outcome"}, "color": c}
            for o, c in OUTCOME_COLOURS.items()
        ],
    )


def program_rows(data: analysis.RunData, run: str) -> list[dict]:
    """The program table's rows for `run` (``id``: the program's id, for a click)."""
    rows = analysis.for_run(data, run).programs
    rows = rows[rows["run"] == run]
    if rows.empty:
        return []
    start = rows["created_at"].min()
    frame = pd.DataFrame(
        {
            "id": rows["program_id"],
            "program": rows["program_id"].str[:8],
            "island": rows["island"],
            "generation": rows["generation"],
            "outcome": rows["status"].astype(str),
            "operator": rows["mutation_operator"]
            .astype(object)
            .where(rows["mutation_operator"].notna(), ""),
            "model": rows["model"].astype(object).where(rows["model"].notna(), ""),
            "score": rows["score"].round(6),
            "seconds": (rows["created_at"] - start).dt.total_seconds().round(1),
        }
    )
    frame = frame.sort_values("score", ascending=data.sign(run) < 0, na_position="last")
    return json.loads(frame.to_json(orient="records"))  # NaN as null, numpy as numbers


def metric_names(data: analysis.RunData, run: str) -> list[str]:
    """The score, then every metric the run's evaluated programs report."""
    rows = analysis.for_run(data, run).programs
    names = set()
    for value in rows.loc[rows["run"] == run, "metrics"]:
        names.update(k for k, _ in _pairs(value))
    return ["score", *sorted(names - {"score"})]


def metric_figure(data: analysis.RunData, run: str, metric: str) -> go.Figure:
    """One metric of every evaluated program against the evaluation it came in, by island."""
    one = analysis.for_run(data, run)
    rows = analysis.evaluated(one.programs)
    rows = rows[(rows["run"] == run) & (rows["island"] >= 0)].sort_values("created_at")
    if metric == "score":
        values = rows["score"]
    else:
        values = rows["metrics"].map(lambda m: dict(_pairs(m)).get(metric, np.nan))
    frame = pd.DataFrame(
        {"evaluation": np.arange(1, len(rows) + 1), "island": rows["island"], "value": values}
    ).dropna(subset=["value"])
    title = f"{metric} over the run"
    if frame.empty:
        return empty(title, f"no program reports {metric} yet")
    fig = go.Figure()
    for island, part in frame.groupby("island"):
        fig.add_scatter(
            x=part["evaluation"],
            y=part["value"],
            mode="markers",
            name=f"island {island}",
            marker=dict(size=5),
            opacity=0.7,
        )
    return _layout(fig, title, "evaluation (run order)", metric)


GRID_ISLANDS = 8  # grids drawn side by side; more islands: the first ones


def grid_figure(data: analysis.RunData, run: str) -> go.Figure:
    """Each island's MAP-Elites grid: the best score in each cell (`analysis.map_elites`);
    a click opens the cell's champion."""
    from plotly.subplots import make_subplots

    features, cells = analysis.map_elites(data, run)
    title = "MAP-Elites grid of each island (best score per cell)"
    if cells.empty:
        why = "no MAP-Elites feature configured" if not features else "no scored program yet"
        return empty(title, why)
    islands = sorted(cells["island"].unique())[:GRID_ISLANDS]
    bins = [int(f.get("bins", 10)) for f in features] + [1]
    fig = make_subplots(
        rows=1,
        cols=len(islands),
        subplot_titles=[f"island {i}" for i in islands],
        shared_yaxes=True,
        horizontal_spacing=0.02,
    )
    low, high = cells["best"].min(), cells["best"].max()
    for col, island in enumerate(islands, start=1):
        part = cells[cells["island"] == island]
        z = np.full((bins[1], bins[0]), np.nan)
        ids = np.full((bins[1], bins[0]), "", dtype=object)
        for row in part.itertuples():
            z[row.y, row.x] = row.best
            ids[row.y, row.x] = row.program_id
        fig.add_heatmap(
            z=z,
            customdata=ids,
            zmin=low,
            zmax=high,
            colorscale="Viridis",
            showscale=col == len(islands),
            row=1,
            col=col,
            hovertemplate="cell (%{x}, %{y}): %{z:.6g}<extra></extra>",
        )
    names = [f["name"] for f in features]
    _layout(fig, title, names[0], names[1] if len(names) > 1 else "")
    fig.update_layout(height=260 + 20 * min(bins[1], 10))
    return fig


def program_options(data: analysis.RunData, run: str) -> list[dict]:
    """Every program of the run for the diff pickers: id, island, outcome and score."""
    rows = analysis.for_run(data, run).programs
    rows = rows[(rows["run"] == run) & rows["code"].notna()]
    return [
        {
            "label": f"{r['program_id'][:8]} · island {r['island']} · gen {r['generation']} · "
            + (f"{r['score']:.6g}" if pd.notna(r["score"]) else str(r["status"])),
            "value": r["program_id"],
        }
        for r in rows.to_dict("records")
    ]


def diff_of(data: analysis.RunData, first: str | None, second: str | None):
    """The diff from program `first` to program `second`."""
    indexed = analysis.by_id(data.programs)
    if not first or not second or first not in indexed.index or second not in indexed.index:
        return html.P("Pick two programs to compare.", id="pair-diff")
    diff = analysis.code_diff(indexed.at[first, "code"], indexed.at[second, "code"])
    return diff_view(diff, "pair-diff")


def lineage_controls():
    return html.Div(
        [
            dcc.RadioItems(
                id="lineage-scope",
                options=[
                    {"label": "ancestry of the best", "value": "best"},
                    {"label": "whole population", "value": "all"},
                ],
                value="best",
                inline=True,
            ),
            dcc.RadioItems(
                id="lineage-colour",
                options=[
                    {"label": "colour by island", "value": "island"},
                    {"label": "by outcome of children", "value": "outcome"},
                ],
                value="island",
                inline=True,
            ),
            html.P(LINEAGE_LEGEND, id="lineage-legend", className="note"),
        ]
    )


def failures_table(data: analysis.RunData, run: str):
    table_ = analysis.failure_messages(analysis.for_run(data, run))
    if table_.empty:
        return html.P("No failures.", id="failures-table")
    table_ = table_.assign(example=table_["example"].str[:8])
    return table(table_, "failures-table")


def placement_table(data: analysis.RunData, run: str):
    one = analysis.for_run(data, run)
    placed = analysis.placements(one)
    parts = []
    if placed.empty:
        parts.append(html.P("No placement logged yet."))
    else:
        placed = placed.assign(node_id=placed["node_id"].fillna("").str[:12])
        parts.append(table(placed.drop(columns="run"), "placement-table"))
    hosts = analysis.per_host(one)
    if len(hosts):
        parts += [html.H4("Evaluations per host"), table(hosts, "host-table")]
    workers = analysis.per_evaluator(one)
    if len(workers):
        now = pd.Timestamp.now(tz="UTC")
        ago = (now - workers["last"]).dt.total_seconds().round(1)
        workers = workers.drop(columns=["run", "last"]).assign(last_verdict_s_ago=ago)
        parts += [html.H4("Evaluators at work"), table(workers, "evaluator-table")]
    warnings = data.events[
        (data.events["run"] == run) & (data.events["kind"] == EventKind.EVALUATORS_UNPLACED)
    ]
    parts += [html.P(m, className="warn") for m in warnings["message"].dropna()]
    return html.Div(parts)


def status_line(
    data: analysis.RunData | None, path: str, run: str | None = None, expected: int | None = None
) -> str:
    """Runs, evaluations, the best score (of the runs of `run`'s task: runs of different
    tasks are never compared) and whether it is live, idle or finished (a sweep is
    finished when all `expected` jobs are)."""
    if data is None:
        return f"waiting for a run log under {path}"
    tasks = {r.name: analysis.task_of(r) for r in data.runs}
    if run is None or run not in tasks:
        run = data.runs[0].name
    shown = analysis.for_runs(data, analysis.same_task(data, run))
    programs = shown.programs
    evaluations = int((programs["status"] != Outcome.MUTATION_FAILED).sum()) - len(shown.runs)
    best = analysis.best_program(shown)
    last = data.programs["created_at"].max() if len(data.programs) else None
    age = (pd.Timestamp.now(tz="UTC") - last).total_seconds() if last is not None else math.inf
    ended = set(data.events.loc[data.events["kind"] == EventKind.RUN_END, "run"])
    jobs = len(data.runs)
    all_ended = len(ended) == jobs and (expected is None or jobs >= expected)
    state = (
        "finished"
        if all_ended
        else f"live (last row {age:.0f} s ago)"
        if age < 120
        else f"idle for {age:.0f} s"
    )
    if expected is not None and jobs < expected:
        state += f"; sweep: {jobs} of {expected} jobs started, {len(ended)} finished"
    score = f"best {best['score']:.6g}" if best is not None else "no score yet"
    others = len(set(tasks.values())) - 1
    task = tasks[run] + (f" (and {others} other task(s): pick a run)" if others else "")
    return f"{len(shown.runs)} run(s) of {task} · {evaluations} evaluations · {score} · {state}"


# --- a sweep -------------------------------------------------------------------------------


def sweep_table(runs: pd.DataFrame):
    """One row per combination of the settings that vary (seeds pooled): runs, mean final
    best and its 95% interval, the best run's score; the constant settings said once.
    `runs`: `analysis.sweep_table`."""
    comparison = analysis.compare_varying(runs)
    settings = analysis.varying_settings(comparison)
    best = runs.groupby(settings, dropna=False)["best"].max().reset_index() if settings else None
    shown = comparison.rename(columns={"ci95": "± 95%"})
    if best is not None:
        shown = shown.merge(best.rename(columns={"best": "best run"}), on=settings, how="left")
    constants = analysis.constant_settings(runs.drop(columns=["seed"], errors="ignore"))
    note = (
        "Same in every run: " + ", ".join(f"{k}={v}" for k, v in constants.items())
        if constants
        else ""
    )
    return html.Div([table(shown, "sweep-table"), html.P(note, className="note")])


def sweep_figure(data: analysis.RunData, runs: pd.DataFrame) -> go.Figure:
    """Best so far per setting: the mean over its seeds at each evaluation (`runs`:
    `analysis.sweep_table`)."""
    settings = analysis.varying_settings(runs, "seed")
    curves = analysis.best_so_far(data)
    if curves.empty:
        return empty("Best score so far per setting", "no evaluation yet")
    labels = {
        row["run"]: analysis.setting_label(row, settings) if settings else "all runs"
        for row in runs.to_dict("records")
    }
    curves = curves.assign(setting=curves["run"].map(labels))
    fig = go.Figure()
    for label, part in curves.groupby("setting"):
        mean = part.groupby("evaluation")["best"].agg(["mean", "count"]).reset_index()
        fig.add_scatter(x=mean["evaluation"], y=mean["mean"], mode="lines", name=label)
    fig.update_layout(legend=dict(orientation="h", y=-0.25))
    return _layout(
        fig, "Best score so far per setting (mean over seeds)", "evaluations", "best score"
    )


def run_options(runs: pd.DataFrame) -> list[dict]:
    """The run picker's entries, labelled by what differs between runs."""
    labels = analysis.run_labels(runs)
    return [{"label": labels[run], "value": run} for run in runs["run"]]


# --- one program ----------------------------------------------------------------------------


def program_panel(data: analysis.RunData, program_id: str, prompt: str | None) -> list:
    """A program's title, facts, metrics, evaluator feedback, model reply settings, prompt,
    diff to its parent and code."""
    indexed = analysis.by_id(data.programs)
    row = indexed.loc[program_id]
    parent = row["parent_id"] if isinstance(row["parent_id"], str) else None
    initial = parent is None
    title = (
        f"initial program {program_id[:8]}"
        if initial
        else f"program {program_id[:8]}: island {row['island']}, generation {row['generation']}"
    )
    score = row["score"]
    facts = {
        "status": row["status"],
        "score": "" if score is None or pd.isna(score) else f"{score:.6g}",
        "operator": row["mutation_operator"],
        "model": row["model"],
        "parent": parent[:8] if parent else "-",
        "second parent": (analysis.second_parent(row.to_dict()) or "-")[:8],
        "evaluator": row["evaluator_id"],
        "host": row["host"],
    }
    metrics = _pairs(row["metrics"])
    feedback = _pairs(row["artifacts"])
    parent_code = indexed.at[parent, "code"] if parent and parent in indexed.index else None
    diff = analysis.code_diff(parent_code, row["code"]) if parent_code is not None else ""
    parts = [
        html.H3(title, id="program-title"),
        table(pd.DataFrame([{k: ("" if v is None else v) for k, v in facts.items()}])),
    ]
    if metrics:
        parts += [html.H4("Metrics"), table(pd.DataFrame(metrics, columns=["metric", "value"]))]
    if feedback:
        parts += [html.H4("Evaluator feedback")]
        parts += [
            html.Details([html.Summary(k), html.Pre(v)], open=k == "error") for k, v in feedback
        ]
    if row["mutation_error"] is not None and not pd.isna(row["mutation_error"]):
        parts += [html.H4("Mutation error"), html.Pre(str(row["mutation_error"]))]
    if not initial:
        parts += [html.H4("Diff to its parent"), diff_view(diff, "program-diff")]
    if prompt:
        parts += [html.Details([html.Summary("Prompt"), html.Pre(_prompt_text(prompt))])]
    reply = row["reply"] if isinstance(row["reply"], str) else row["edit"]
    if isinstance(reply, str) and reply:
        parts += [html.Details([html.Summary("Model reply"), html.Pre(reply)])]
    if isinstance(row["code"], str):
        parts += [
            html.Details(
                [html.Summary("Code"), html.Pre(row["code"], id="program-code")], open=initial
            )
        ]
    return parts


def _pairs(value) -> list[tuple[str, object]]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, dict):
        return list(value.items())
    return [tuple(pair) for pair in np.asarray(value, dtype=object).tolist()]


def _prompt_text(prompt: str) -> str:
    try:
        messages = json.loads(prompt)
    except ValueError:
        return prompt
    if not isinstance(messages, list):
        return prompt
    return "\n\n".join(f"[{m.get('role', '?')}]\n{m.get('content', '')}" for m in messages)
