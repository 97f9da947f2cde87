"""The web view's parts without a browser: the incremental log reader and the views
computed from a real sweep."""

from __future__ import annotations

import shutil

from rayevolve import analysis


def test_the_live_log_reads_each_part_once(sweep, tmp_path, monkeypatch):
    from rayevolve.log import readers
    from rayevolve.ui.app import LiveLog

    run = tmp_path / "run"
    shutil.copytree(sweep / analysis.best_program(analysis.load(sweep))["run"], run)
    reads = []
    real = readers.read_file
    monkeypatch.setattr(
        readers, "read_file", lambda f, *a, **k: reads.append(f) or real(f, *a, **k)
    )
    live = LiveLog(run)
    first = live.refresh()
    parts = sorted((run / "programs").glob("*.parquet")) + sorted(
        (run / "events").glob("*.parquet")
    )
    assert sorted(reads) == sorted(parts)
    reads.clear()
    assert len(live.refresh().programs) == len(first.programs) and reads == []
    # a new part (as the log actor writes one) is the only file read at the next refresh
    copy = run / "programs" / ("zz-" + parts[0].name)
    shutil.copyfile(parts[0], copy)
    again = live.refresh()
    assert reads == [copy] and len(again.programs) > len(first.programs)


def test_views_of_a_sweep(sweep):
    from rayevolve.ui import views

    data = analysis.load(sweep)
    best = analysis.best_program(data)
    run = best["run"]
    figure = views.best_figure(data, run)
    assert [t.name for t in figure.data] == ["run", "island 0", "island 1"]
    assert views.best_figure(data, run, "seconds").layout.xaxis.title.text == "seconds since start"
    lineage = views.lineage_figure(data, run, best["program_id"])
    ids = {i for trace in lineage.data if trace.customdata is not None for i in trace.customdata}
    assert best["program_id"] in ids and ids <= set(data.programs["program_id"])
    assert views.status_line(data, str(sweep)).startswith(
        "4 run(s) of circle_packing · 120 evaluations"
    )
    assert views.status_line(None, "somewhere") == "waiting for a run log under somewhere"
    panel = views.program_panel(data, best["program_id"], None)
    assert panel[0].id == "program-title" and panel[0].children.startswith("program ")


def test_where_the_work_ran(sweep):
    data = analysis.load(sweep)
    rows = analysis.evaluated(data.programs).dropna(subset=["evaluator_id"])
    workers = analysis.per_evaluator(data)
    assert workers["evaluations"].sum() == len(rows)
    assert workers.groupby("run").size().tolist() == [2, 2, 2, 2]  # two evaluators per run
    hosts = analysis.per_host(data)
    assert hosts["evaluations"].sum() == len(rows) and hosts["host"].is_unique


def test_ui_settings_are_checked_and_a_busy_port_is_a_clear_error(tmp_path, monkeypatch):
    import socket
    import sys

    import pytest

    from rayevolve.config import ConfigError, RunConfig, UiConfig
    from rayevolve.run import webview
    from rayevolve.run.errors import RunError

    with pytest.raises(ConfigError, match="ui.port"):
        UiConfig(port=70000)
    with pytest.raises(ConfigError, match="ui.refresh_s"):
        UiConfig(refresh_s=0)
    assert webview.serve(RunConfig().ui, tmp_path) is None  # not asked for
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        ui = UiConfig(port=port)
        with pytest.raises(RunError, match=f"ui.port={port}: cannot serve .* another port"):
            webview.serve(ui, tmp_path)
    monkeypatch.setitem(sys.modules, "rayevolve.ui.server", None)  # as without Dash
    with pytest.raises(RunError, match=r"pip install 'rayevolve\[ui\]'"):
        webview.serve(ui, tmp_path)


def test_diff_lines_are_classified_for_colour():
    diff = analysis.code_diff("a = 1\nb = 2\n", "a = 1\nb = 3\n", context=1)
    kinds = [kind for kind, _ in analysis.diff_lines(diff)]
    assert kinds == ["file", "file", "hunk", "ctx", "del", "add"]
    assert analysis.diff_lines("") == []


def test_failure_messages_read_past_missing_cells():
    """A null string cell reads as NaN in pandas 3: a mutation failure with no message
    falls back to its kind, and addresses and line numbers are blanked so repeats group."""
    import math

    failed = {"status": "mutation_failed", "mutation_error": math.nan}
    assert analysis.failure_message({**failed, "mutation_error_kind": "search_not_found"}) == (
        "search_not_found"
    )
    assert analysis.failure_message({**failed, "mutation_error_kind": math.nan}) == "(no message)"
    crash = 'Traceback (most recent call last):\n  File "x.py", line 7\nValueError: at 0x7f3a'
    row = {"status": "runtime_error", "artifacts": [("error", crash)]}
    assert analysis.failure_message(row) == "ValueError: at 0x…"
