"""A new user's first hour: the objective is never a silent guess, a refused command
leaves nothing behind and exits 2 naming the key (the nearest valid ones for a typo), and
a run's folder is named for the task it runs."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from rayevolve.run.controller import Controller, RunError
from tests.conftest import TASKS, run_config

NO_SCORE = """import importlib.util


def evaluate(program_path):
    spec = importlib.util.spec_from_file_location("candidate", program_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    x, y = module.point()
    return {{"{name}": abs(x - 3.0) + abs(y - 5.0), "x": float(x)}}
"""


def _task_without_combined_score(tmp_path, name: str):
    folder = tmp_path / "task"
    shutil.copytree(TASKS / "parabola", folder)
    (folder / "evaluator.py").write_text(NO_SCORE.format(name=name))
    return folder


def _config(folder, **task):
    config = run_config("parabola", task={"path": str(folder), "features": [], **task})
    return config


def test_an_error_metric_without_combined_score_is_not_maximised(ray_cluster, tmp_path):
    folder = _task_without_combined_score(tmp_path, "mean_rel_err")
    with pytest.raises(
        RunError,
        match=r"mean_rel_err reads like an error or a cost.*task\.score_metric=mean_rel_err",
    ):
        Controller(_config(folder), tmp_path / "refused", []).run()
    chosen = _config(folder, score_metric="mean_rel_err", direction="minimize")
    summary = Controller(chosen, tmp_path / "run", []).run()
    assert summary.objective == "the score is mean_rel_err (task.score_metric), minimized"
    assert "objective     the score is mean_rel_err" in summary.render()
    assert summary.best_score <= summary.initial_score  # smaller is better, and kept


def test_the_fallback_score_is_said_at_start(ray_cluster, tmp_path, caplog):
    folder = _task_without_combined_score(tmp_path, "accuracy")
    summary = Controller(_config(folder), tmp_path / "run", []).run()
    assert "OpenEvolve's fallback" in summary.objective
    assert "the mean of accuracy, x" in summary.objective and "maximized" in summary.objective


def test_a_score_metric_the_evaluator_does_not_return_is_rejected_with_what_it_did(
    ray_cluster, tmp_path
):
    folder = _task_without_combined_score(tmp_path, "accuracy")
    with pytest.raises(
        RunError, match=r"no finite number 'acc' \(task.score_metric\); it returned accuracy, x"
    ):
        Controller(_config(folder, score_metric="acc"), tmp_path / "run", []).run()


def _cli(cwd, *args, timeout=240):
    return subprocess.run(
        [sys.executable, "-m", "rayevolve", "progress=false", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    "args, said",
    [
        (["islands.cout=4"], "islands.cout is not a setting; did you mean islands.count?"),
        (["+islands.cout=4"], "islands.cout is not a setting; did you mean islands.count?"),
        (["+islands.migration.intervall=3"], "did you mean islands.migration.interval?"),
        (["foo=1"], "foo is not a setting (top-level keys: task,"),
        (["islands.count=x"], "could not be converted to Integer; full_key: islands.count"),
        (["task=nope"], "Available options in 'task': circle_packing,"),
        (["stop.max_evaluations=0"], "stop.max_evaluations: must be >= 1"),
        (
            ["task.path=/nonexistent/sqrt_task"],
            "task.path=/nonexistent/sqrt_task: the task folder does not exist",
        ),
        (["resume=/nonexistent/run"], "resume=/nonexistent/run: no config.yaml there"),
    ],
    ids=[
        "typo",
        "plus_typo",
        "nested_typo",
        "unknown_top",
        "bad_value",
        "bad_group",
        "bad_range",
        "missing_folder",
        "bad_resume",
    ],
)
def test_a_refused_command_exits_2_says_the_key_and_writes_nothing(tmp_path, args, said):
    done = _cli(tmp_path, *args, timeout=60)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and said in lines[0], done.stderr  # one line, no traceback
    assert not list(tmp_path.iterdir())  # no runs/ folder, no log, no .hydra/


def test_a_task_folder_run_is_named_for_its_folder(tmp_path):
    folder = tmp_path / "tasks" / "sqrt_task"
    shutil.copytree(TASKS / "parabola", folder)
    done = _cli(
        tmp_path,
        f"task.path={folder}",
        "stop.max_evaluations=4",
        "islands.count=1",
        "evaluation.num_evaluators=1",
        "task.features=[]",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.endswith("_sqrt_task")
    assert (run / "summary.json").is_file() and (run / "rayevolve.log").is_file()


def test_one_rule_names_the_best_program_on_a_tie(tmp_path):
    """Equal scores: the summary's best (`log_totals`, what ``best/`` holds) and the
    report's (`analysis.best_program`) are the same program, the first to reach it,
    whatever order the log's rows are in."""
    import dataclasses

    from rayevolve import analysis
    from rayevolve.log.rows import program_row
    from rayevolve.log.writer import ParquetLogWriter
    from rayevolve.outcome import Outcome
    from rayevolve.program import Program
    from rayevolve.result import EvalResult
    from rayevolve.run.summary import log_totals

    def scored(score, created_at):
        program = Program.create("x = 1\n", language="python", parent=None, island=0)
        return dataclasses.replace(program, created_at=created_at).with_result(
            EvalResult(Outcome.OK, score)
        )

    first, later, worse = scored(2.0, 100.0), scored(2.0, 200.0), scored(1.0, 50.0)
    writer = ParquetLogWriter(tmp_path, flush_rows=100, flush_interval_s=60, durable=False)
    writer.append("programs", [program_row("r", p) for p in (later, worse)])
    writer.flush()
    writer.append("programs", [program_row("r", first)])  # the earliest, written last
    writer.flush()
    assert log_totals(tmp_path, maximize=True).best.id == first.id
    assert analysis.best_program(analysis.load(tmp_path))["program_id"] == first.id
    assert log_totals(tmp_path, maximize=False).best.id == worse.id


def test_the_web_view_says_when_a_path_holds_no_run(tmp_path):
    from rayevolve.ui.__main__ import main

    assert main([str(tmp_path / "nope")]) == 1
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 1


def test_the_web_view_names_what_is_missing(tmp_path, capsys):
    from rayevolve.ui.__main__ import main

    main([str(tmp_path)])
    assert "holds no rayevolve run" in capsys.readouterr().err


def test_runs_of_different_tasks_are_never_one_comparison(sweep, tmp_path):
    """A folder holding runs of two tasks: the view's headline and comparison take the
    picked run's task only; a sweep with jobs still to come is not finished."""
    import yaml

    from rayevolve import analysis
    from rayevolve.ui import views

    runs = sorted(p.parent for p in sweep.rglob("summary.json"))
    mixed = tmp_path / "runs"
    for run in runs[:3]:
        shutil.copytree(run, mixed / run.name)
    other = mixed / runs[2].name
    config = yaml.safe_load((other / "config.yaml").read_text())
    config["task"]["name"] = "other_task"
    (other / "config.yaml").write_text(yaml.safe_dump(config))
    data = analysis.load(mixed)
    first = runs[0].name
    assert sorted(analysis.same_task(data, first)) == sorted(r.name for r in runs[:2])
    status = views.status_line(data, str(mixed), first)
    assert status.startswith("2 run(s) of circle_packing (and 1 other task(s)")
    assert views.status_line(data, str(mixed), other.name).startswith("1 run(s) of other_task")
    # a sweep of 4 jobs with 2 written so far is running, not finished
    partial = tmp_path / "sweep"
    for run in runs[:2]:
        shutil.copytree(run, partial / run.name)
    shutil.copyfile(sweep / "multirun.yaml", partial / "multirun.yaml")
    assert analysis.expected_jobs(partial) == 4
    said = views.status_line(analysis.load(partial), str(partial), None, 4)
    assert "finished" not in said.split("·")[-1].split(";")[0] and "2 of 4 jobs" in said
    assert views.status_line(analysis.load(sweep), str(sweep), None, 4).endswith("finished")


def test_the_web_views_own_settings_are_never_a_setting_that_varies(tmp_path):
    from rayevolve import analysis

    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "overrides.yaml").write_text(
        "- seed=1\n- ui.refresh_s=0.5\n- ui.port=0\n- progress=false\n"
    )
    assert analysis._overrides(tmp_path) == {"seed": "1"}


def test_outcome_colours_islands_in_order_and_one_group_per_failure(sweep):
    from rayevolve import analysis
    from rayevolve.outcome import Outcome
    from rayevolve.ui import views

    data = analysis.load(sweep)
    run = data.runs[0].name
    figure = views.islands_figure(data, run)
    colours = {trace.name: trace.marker.color for trace in figure.data}
    assert colours["ok"] == views.OUTCOME_COLOURS[Outcome.OK] == "#2a9d47"  # green
    order = list(figure.layout.xaxis.categoryarray)
    assert order == sorted(order, key=int)
    row = {"status": "incorrect", "artifacts": [("error", "circle 21 leaves (centre [0.1, 1.08])")]}
    other = {"status": "incorrect", "artifacts": [("error", "circle 3 leaves (centre [0.5, 2])")]}
    assert analysis.failure_message(row) == analysis.failure_message(other)
    assert analysis.failure_message(row) == "circle N leaves (centre [N, N])"
