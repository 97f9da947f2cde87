"""What the web view shows, computed from a `RunData`: Plotly figures, tables as Dash
components and coloured diffs. Nothing here serves anything."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from dash import html

from rayevolve import analysis
from rayevolve.log.schema import EventKind
from rayevolve.outcome import Outcome

LINEAGE_TOP = 6  # the best programs whose ancestry the lineage chart draws
TABLE_ROWS = 50


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
        fig.add_bar(x=part["island"].astype(str), y=part["count"], name=str(status))
    fig.update_layout(barmode="stack")
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


def lineage_figure(data: analysis.RunData, run: str, selected: str | None) -> go.Figure:
    """The ancestry of the run's best programs: generation against score, an edge from
    each parent; diamonds came by migration (another island than their parent), stars are
    crossovers (a dotted edge from the second parent). Click a point to open it."""
    one = analysis.for_run(data, run)
    rows = analysis.evaluated(one.programs)
    rows = rows[(rows["status"] == Outcome.OK) & rows["score"].notna() & (rows["run"] == run)]
    if rows.empty:
        return empty("Lineage of the best programs", "no scored program yet")
    sign = one.sign(run)
    top = rows.assign(f=rows["score"] * sign).nlargest(LINEAGE_TOP, "f")["program_id"]
    indexed = analysis.by_id(one.programs)
    nodes: dict[str, dict] = {}
    for pid in top:
        for step in analysis.lineage(one, pid).to_dict("records"):
            nodes[step["program_id"]] = step
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
        x=edge_x, y=edge_y, mode="lines", line=dict(color="#999", width=1), name="parent"
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
    fig.add_scatter(
        x=[nodes[p]["generation"] for p in ids],
        y=[nodes[p]["score"] for p in ids],
        mode="markers",
        marker=dict(
            size=[15 if p == selected else 10 for p in ids],
            symbol=symbols,
            color=[nodes[p]["island"] for p in ids],
            colorscale="Turbo",
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
    return _layout(fig, "Lineage of the best programs (click one)", "generation", "score")


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


def status_line(data: analysis.RunData | None, path: str) -> str:
    if data is None:
        return f"waiting for a run log under {path}"
    programs = data.programs
    evaluations = int((programs["status"] != Outcome.MUTATION_FAILED).sum()) - len(data.runs)
    best = analysis.best_program(data)
    last = programs["created_at"].max() if len(programs) else None
    age = (pd.Timestamp.now(tz="UTC") - last).total_seconds() if last is not None else math.inf
    ended = set(data.events.loc[data.events["kind"] == EventKind.RUN_END, "run"])
    state = (
        "finished"
        if len(ended) == len(data.runs)
        else f"live (last row {age:.0f} s ago)"
        if age < 120
        else f"idle for {age:.0f} s"
    )
    score = f"best {best['score']:.6g}" if best is not None else "no score yet"
    return f"{len(data.runs)} run(s) · {evaluations} evaluations · {score} · {state}"


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
