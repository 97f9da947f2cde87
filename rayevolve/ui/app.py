"""The Dash application: its layout and the callbacks that refresh it from the log."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pyarrow.compute as pc
from dash import Dash, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from rayevolve import analysis
from rayevolve.log import PartCache, find_runs, read_prompts
from rayevolve.ui import views

ASSETS = Path(__file__).with_name("assets")


class LiveLog:
    """A run or sweep folder's log, read again at each refresh: Parquet parts only when
    new (`PartCache`), the write-ahead tail each time. Callbacks run on the server's
    threads; one lock keeps one read at a time."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._cache = PartCache()
        self._prompts = PartCache()
        self._lock = threading.Lock()
        self.data: analysis.RunData | None = None
        self._stamp: tuple = ()

    def refresh(self) -> analysis.RunData | None:
        """The log now; the same `RunData` object while no file of it changed."""
        with self._lock:
            stamp = _stamp(self.path)
            if stamp == self._stamp and self.data is not None:
                return self.data
            try:
                self.data = analysis.load(self.path, self._cache)
            except FileNotFoundError:  # the run has not written its log yet
                self.data = None
            self._stamp = stamp
            return self.data

    def current(self) -> analysis.RunData | None:
        with self._lock:
            return self.data if self.data is not None else None

    def prompt(self, run: str, prompt_hash: str | None) -> str | None:
        if not isinstance(prompt_hash, str) or not prompt_hash:  # NaN: no prompt (initial)
            return None
        runs = [r for r in find_runs(self.path) if r.name == run]
        if not runs:
            return None
        with self._lock:
            table = read_prompts(*runs, columns=["prompt_hash", "prompt"], cache=self._prompts)
        hit = table.filter(pc.equal(table["prompt_hash"], prompt_hash))
        return hit["prompt"][0].as_py() if len(hit) else None


def _stamp(path: Path) -> tuple:
    """Name, size and modification time of every file of the runs' programs and events
    tables (Parquet parts and write-ahead segments): equal stamps, equal logs."""
    entries = []
    for run in find_runs(path):
        for table in ("programs", "events"):
            try:
                with os.scandir(run / table) as files:
                    for f in files:
                        stat = f.stat()
                        entries.append((f.path, stat.st_size, stat.st_mtime_ns))
            except FileNotFoundError:
                continue
    return tuple(sorted(entries))


def version(data: analysis.RunData | None) -> list:
    """What changes when the log grows: rows of each table, runs."""
    return [] if data is None else [len(data.programs), len(data.events), len(data.runs)]


def make_app(path: str | Path, refresh_s: float = 2.0) -> Dash:
    live = LiveLog(path)
    app = Dash(
        __name__,
        title="rayevolve",
        assets_folder=str(ASSETS),
        update_title=None,
        serve_locally=True,
    )
    app.layout = _layout(str(path), refresh_s)
    _callbacks(app, live, str(path))
    _pair_callback(app, live)
    return app


def _section(title: str, *children, section_id: str | None = None, hidden=False):
    props = {"id": section_id} if section_id else {}
    return html.Section(
        [html.H2(title), *children], style={"display": "none"} if hidden else {}, **props
    )


def _graph(graph_id: str):
    return dcc.Graph(id=graph_id, config={"displaylogo": False}, figure=views.empty("", "loading"))


def _layout(path: str, refresh_s: float):
    return html.Div(
        [
            dcc.Interval(id="tick", interval=int(refresh_s * 1000)),
            dcc.Store(id="version", data=[]),
            dcc.Store(id="best-id"),
            dcc.Store(id="selected"),
            dcc.Store(id="follow-best", data=True),
            html.Header(
                [html.H1("rayevolve"), html.Code(path), html.P("loading", id="status")],
            ),
            _section(
                "Sweep: the settings that vary",
                html.Div(id="sweep-table-box"),
                _graph("sweep-curves"),
                section_id="sweep",
                hidden=True,
            ),
            html.Div(
                [
                    html.Label("Run", htmlFor="run"),
                    dcc.Dropdown(id="run", clearable=False),
                    dcc.RadioItems(
                        id="best-x",
                        options=[
                            {"label": "by evaluations", "value": "evaluation"},
                            {"label": "by time", "value": "seconds"},
                        ],
                        value="evaluation",
                        inline=True,
                    ),
                ],
                id="run-picker",
            ),
            html.Div([_graph("best"), _graph("islands")], className="grid"),
            html.Div(
                [_graph("migrations"), html.Div([_graph("lineage"), views.lineage_controls()])],
                className="grid",
            ),
            _section("Programs (sort, filter, click one to open it)", views.program_table()),
            _section("MAP-Elites grids", _graph("grids")),
            _section(
                "Any metric over the run",
                dcc.Dropdown(id="metric", value="score", clearable=False),
                _graph("metric-figure"),
            ),
            _section(
                "Program",
                html.Div(
                    [
                        html.Button("Parent", id="to-parent"),
                        html.Button("Second parent", id="to-second"),
                        html.Button("Best", id="to-best"),
                    ],
                    className="buttons",
                ),
                html.Div(id="program"),
                section_id="program-section",
            ),
            _section("From the initial program to the best", html.Div(id="seed-to-best")),
            _section(
                "Compare two programs",
                html.Div([dcc.Dropdown(id="diff-a"), dcc.Dropdown(id="diff-b")], className="grid"),
                html.Div(id="pair-diff-box"),
            ),
            _section("Failures, grouped by message", html.Div(id="failures")),
            _section("Where the actors run", html.Div(id="actors")),
        ],
        className="page",
    )


def _callbacks(app: Dash, live: LiveLog, path: str) -> None:
    @app.callback(
        Output("status", "children"),
        Output("version", "data"),
        Output("run", "options"),
        Output("run", "value"),
        Output("sweep", "style"),
        Output("sweep-table-box", "children"),
        Output("sweep-curves", "figure"),
        Output("best", "figure"),
        Output("islands", "figure"),
        Output("migrations", "figure"),
        Output("lineage", "figure"),
        Output("failures", "children"),
        Output("actors", "children"),
        Output("seed-to-best", "children"),
        Output("best-id", "data"),
        Input("tick", "n_intervals"),
        Input("run", "value"),
        Input("best-x", "value"),
        Input("lineage-scope", "value"),
        Input("lineage-colour", "value"),
        State("version", "data"),
        State("selected", "data"),
    )
    def refresh(_, run, x, scope, colour, seen, selected):
        data = live.refresh()
        expected = analysis.expected_jobs(Path(path))
        status = views.status_line(data, path, run, expected)
        now = version(data)
        if data is None or (ctx.triggered_id == "tick" and now == seen):
            return (status, now, *([no_update] * 13))
        names = [r.name for r in data.runs]
        best = analysis.best_program(data)
        if run not in names:
            run = best["run"] if best is not None else names[0]
            status = views.status_line(data, path, run, expected)
        run_best = analysis.best_program(data, run)
        comparable = analysis.for_runs(data, analysis.same_task(data, run))
        sweep = len(comparable.runs) > 1
        runs = analysis.sweep_table(comparable)
        if run_best is not None:
            one = analysis.for_run(data, run)
            chain_diff = analysis.seed_to_best_diff(one, run_best["program_id"])
            to_best = views.diff_view(chain_diff, "seed-to-best-diff")
        else:
            to_best = html.P("No scored program yet.")
        return (
            status,
            now,
            views.run_options(analysis.sweep_table(data)),
            run,
            {} if sweep else {"display": "none"},
            views.sweep_table(runs) if sweep else no_update,
            views.sweep_figure(comparable, runs) if sweep else no_update,
            views.best_figure(data, run, x or "evaluation"),
            views.islands_figure(data, run),
            views.migrations_figure(data, run),
            views.lineage_figure(data, run, selected, scope or "best", colour or "island"),
            views.failures_table(data, run),
            views.placement_table(data, run),
            to_best,
            run_best["program_id"] if run_best is not None else None,
        )

    @app.callback(
        Output("programs-table", "data"),
        Output("metric", "options"),
        Output("metric-figure", "figure"),
        Output("diff-a", "options"),
        Output("diff-b", "options"),
        Output("diff-a", "value"),
        Output("diff-b", "value"),
        Output("grids", "figure"),
        Input("version", "data"),
        Input("run", "value"),
        Input("metric", "value"),
        State("diff-a", "value"),
        State("diff-b", "value"),
        State("best-id", "data"),
    )
    def population(_, run, metric, first, second, best_id):
        """The views of the whole population, in a callback of their own: the heavier
        ones, which must not hold up the status and the charts of a live run."""
        data = live.current()
        if data is None:
            raise PreventUpdate
        names = [r.name for r in data.runs]
        if run not in names:
            best = analysis.best_program(data)
            run = best["run"] if best is not None else names[0]
        return (
            views.program_rows(data, run),
            views.metric_names(data, run),
            views.metric_figure(data, run, metric or "score"),
            *([views.program_options(data, run)] * 2),
            first or _initial_id(data, run),
            second or best_id,
            views.grid_figure(data, run),
        )

    @app.callback(
        Output("selected", "data"),
        Output("follow-best", "data"),
        Input("lineage", "clickData"),
        Input("programs-table", "active_cell"),
        Input("grids", "clickData"),
        Input("to-parent", "n_clicks"),
        Input("to-second", "n_clicks"),
        Input("to-best", "n_clicks"),
        Input("best-id", "data"),
        State("selected", "data"),
        State("follow-best", "data"),
    )
    def select(click, cell, grid, _parent, _second, _best, best_id, selected, follow):
        """The program shown: the best one (and the next best as the run improves) until
        the user picks another, by a click in the lineage chart or the buttons."""
        trigger = ctx.triggered_id
        if trigger == "best-id" or trigger is None:
            if follow or selected is None:
                return best_id, True
            raise PreventUpdate
        if trigger == "to-best":
            return best_id, True
        if trigger == "programs-table":
            target = (cell or {}).get("row_id")
            return (target, False) if isinstance(target, str) else (no_update, no_update)
        if trigger == "grids":
            target = ((grid or {}).get("points") or [{}])[0].get("customdata")
            return (target, False) if isinstance(target, str) and target else (no_update, no_update)
        if trigger == "lineage":
            point = (click or {}).get("points", [{}])[0]
            target = point.get("customdata")
            return (target, False) if isinstance(target, str) else (no_update, no_update)
        data = live.current()
        if data is None or selected is None:
            raise PreventUpdate
        row = _row(data, selected)
        if row is None:
            raise PreventUpdate
        target = row["parent_id"] if trigger == "to-parent" else analysis.second_parent(row)
        if not isinstance(target, str) or _row(data, target) is None:
            raise PreventUpdate
        return target, False

    @app.callback(
        Output("program", "children"),
        Output("to-parent", "disabled"),
        Output("to-second", "disabled"),
        Input("selected", "data"),
    )
    def show(selected):
        data = live.current()
        row = _row(data, selected) if data is not None and selected else None
        if row is None:
            return html.P("No program selected (none is scored yet)."), True, True
        prompt = live.prompt(row["run"], row.get("prompt_hash"))
        parent = row["parent_id"]
        return (
            views.program_panel(data, selected, prompt),
            not (isinstance(parent, str) and _row(data, parent) is not None),
            analysis.second_parent(row) is None,
        )


def _initial_id(data: analysis.RunData, run: str) -> str | None:
    rows = data.programs[(data.programs["run"] == run) & (data.programs["island"] == -1)]
    return rows["program_id"].iloc[0] if len(rows) else None


def _row(data: analysis.RunData, program_id: str) -> dict | None:
    rows = data.programs[data.programs["program_id"] == program_id]
    return rows.iloc[0].to_dict() if len(rows) else None


def _pair_callback(app: Dash, live: LiveLog) -> None:
    @app.callback(
        Output("pair-diff-box", "children"),
        Input("diff-a", "value"),
        Input("diff-b", "value"),
    )
    def compare(first, second):
        data = live.current()
        if data is None:
            raise PreventUpdate
        return views.diff_of(data, first, second)
