"""rayevolve as a library: `evolve`, `evolve_function`, `resume` and `load`, called as a
user calls them from a script or a notebook."""

from __future__ import annotations

import math
import os

import pytest

import rayevolve
from rayevolve.config import ConfigError
from tests.conftest import TASKS

SMALL = {
    "stop": {"max_evaluations": 8},
    "islands": {"count": 2, "in_flight": 2},
    "evaluation": {"num_evaluators": 2},
    "log": {"flush_interval_s": 0.5, "stats_interval_s": 1.0},
    "progress": False,
}


def test_evolve_a_task_folder_returns_the_runs_result(ray_cluster, tmp_path):
    result = rayevolve.evolve(
        TASKS / "parabola", run_dir=tmp_path / "run", task={"resources": {"CPU": 1}}, **SMALL
    )
    summary = result.summary
    assert summary is not None and summary.task == "parabola"  # named after its folder
    assert result.run_dir == tmp_path / "run"
    assert result.best_score == summary.best_score
    assert result.best.id == summary.best_program_id
    assert result.best_code == (tmp_path / "run" / "best" / "program.py").read_text()
    programs = result.programs()
    assert len(programs[programs.island >= 0]) == summary.evaluations
    assert set(result.events().kind) >= {"run_start", "run_end"}
    again = rayevolve.load(tmp_path / "run")  # the same run, read back from its folder
    assert not again.running
    assert again.summary == summary
    assert again.best.id == result.best.id and again.best_score == result.best_score
    assert "finished" in repr(again)


def test_resume_continues_a_run_with_a_larger_budget(ray_cluster, tmp_path):
    run_dir = tmp_path / "run"
    first = rayevolve.evolve(
        TASKS / "parabola", run_dir=run_dir, task={"resources": {"CPU": 1}}, **SMALL
    )
    more = rayevolve.resume(run_dir, stop={"max_evaluations": 14})
    assert more.summary.run_id == first.summary.run_id
    assert more.summary.evaluations == 14 and more.summary.evaluations_before == 8
    assert more.best_score >= first.best_score  # maximised: never worse


def test_bad_settings_are_config_errors_that_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"islands\.cout"):
        rayevolve.evolve("circle_packing", run_dir=tmp_path / "a", islands={"cout": 4})
    with pytest.raises(ConfigError, match=r"islands\.cout"):
        rayevolve.evolve("circle_packing", run_dir=tmp_path / "b", overrides=["islands.cout=4"])
    with pytest.raises(ConfigError, match="neither a task of conf/task/"):
        rayevolve.evolve("no_such_task", run_dir=tmp_path / "c")
    with pytest.raises(ConfigError, match="stop.max_evaluations"):
        rayevolve.evolve("circle_packing", run_dir=tmp_path / "d", stop={"max_evaluations": 0})
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_load_says_what_is_not_a_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        rayevolve.load(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="not a rayevolve run directory"):
        rayevolve.load(tmp_path)


def test_load_sees_a_run_that_is_still_going(tmp_path):
    """A process holding the run's writer lock: `load` says running and reads no
    summary (one left by an earlier session is not this session's)."""
    import fcntl

    from rayevolve.run.lock import LOCK_NAME

    (tmp_path / "run_id").write_text("r\n")
    (tmp_path / "summary.json").write_text("{}")
    fd = os.open(tmp_path / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    ready, told = os.pipe()
    pid = os.fork()
    if pid == 0:  # the writer: holds the lock until killed
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(told, b"x")
        os.pause()
    os.close(fd)
    try:
        assert os.read(ready, 1) == b"x"  # it holds the lock now
        result = rayevolve.load(tmp_path)
        assert result.running and result.summary is None and result.best is None
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(ready)
        os.close(told)
    with pytest.raises(ValueError, match="summary.json: not a summary rayevolve wrote"):
        rayevolve.load(tmp_path)  # the writer is gone: the summary is read, and is no summary


# --- evolve_function -------------------------------------------------------------------
SCALE = 3.0


def helper(x):
    return x * SCALE


def approx_cube(x):
    """To evolve: a poor cube."""
    return helper(x) + math.floor(0 * x)


def judge(candidate):
    errors = [abs(candidate(x) - x**3) for x in (0.5, 1.0, 2.0)]
    return {"combined_score": -sum(errors), "max_error": max(errors)}


def test_evolve_function_writes_a_task_that_judges_outside_the_candidate(ray_cluster, tmp_path):
    result = rayevolve.evolve_function(
        approx_cube, judge, run_dir=tmp_path / "run", task={"resources": {"CPU": 1}}, **SMALL
    )
    task = tmp_path / "run" / "task"
    program = (task / "initial_program.py").read_text()
    # what the function uses travels with it, outside the evolved block
    assert "import math" in program and "SCALE = 3.0" in program and "def helper" in program
    block = program.split("# EVOLVE-BLOCK-START")[1].split("# EVOLVE-BLOCK-END")[0]
    assert "def approx_cube" in block and "def helper" not in block
    assert result.summary.task == "approx_cube"
    initial = result.programs().query("island == -1").iloc[0]
    assert initial.status == "ok"
    assert initial.isolation != "in_process"  # the candidate ran only in children
    # the initial function scores what the judge says: errors of 3x against x^3
    expected = -sum(abs(3 * x - x**3) for x in (0.5, 1.0, 2.0))
    assert math.isclose(initial.score, expected)
    assert dict(initial.metrics)["max_error"] == pytest.approx(2.0)
    assert result.best_score >= expected


def test_evolve_function_with_test_cases_scores_the_fraction_passed(ray_cluster, tmp_path):
    def add(a, b):
        return a + b + (1 if a > 5 else 0)

    cases = [((1, 2), 3), ((2, 2), 4), ((6, 1), 7), ((10, -3), 7)]
    result = rayevolve.evolve_function(
        add, cases, run_dir=tmp_path / "run", task={"resources": {"CPU": 1}}, **SMALL
    )
    initial = result.programs().query("island == -1").iloc[0]
    assert initial.score == pytest.approx(0.5)  # 2 of 4 right


def test_evolve_function_refuses_what_cannot_travel_as_source(tmp_path):
    secret = 4

    def closure(x):
        return x + secret

    with pytest.raises(ConfigError, match="enclosing function"):
        rayevolve.evolve_function(closure, [((1,), 5)], run_dir=tmp_path / "a")
    with pytest.raises(ConfigError, match="lambda"):
        rayevolve.evolve_function(lambda x: x, [((1,), 1)], run_dir=tmp_path / "b")
    with pytest.raises(ConfigError, match="plain data"):
        rayevolve.evolve_function(approx_cube, [((object(),), 1)], run_dir=tmp_path / "c")
    with pytest.raises(ConfigError, match="test cases"):
        rayevolve.evolve_function(approx_cube, 42, run_dir=tmp_path / "d")
    with pytest.raises(ConfigError, match="no sets"):
        rayevolve.evolve_function(approx_cube, [((1,), {1, 2})], run_dir=tmp_path / "e")
    assert not any(tmp_path.iterdir())


def test_a_new_run_never_starts_in_another_runs_folder(ray_cluster, tmp_path):
    run_dir = tmp_path / "run"
    rayevolve.evolve(TASKS / "parabola", run_dir=run_dir, task={"resources": {"CPU": 1}}, **SMALL)
    with pytest.raises(rayevolve.RunError, match=r"already holds a run: continue it with resume="):
        rayevolve.evolve(
            TASKS / "parabola", run_dir=run_dir, task={"resources": {"CPU": 1}}, **SMALL
        )


def total(xs):
    import numpy as np

    return np.sum(np.asarray(xs)) + 0


def no_score(candidate):
    candidate(1.0)


def test_evolve_function_says_why_and_leaves_nothing_when_refused(ray_cluster, tmp_path):
    """A judge that returns no score stops the start with what it returned; the folder
    is gone, so the mended call can be made with the same run_dir."""
    run_dir = tmp_path / "run"
    with pytest.raises(
        rayevolve.RunError, match="no_score returned NoneType None: return a number"
    ):
        rayevolve.evolve_function(
            approx_cube, no_score, run_dir=run_dir, task={"resources": {"CPU": 1}}, **SMALL
        )
    assert not run_dir.exists()
    # NumPy's numbers come back as plain numbers; failed cases are said in the artifacts
    result = rayevolve.evolve_function(
        total,
        [(([1, 2, 3],), 6), (([1, 1],), 3)],
        run_dir=run_dir,
        task={"resources": {"CPU": 1}},
        **SMALL,
    )
    initial = result.programs().query("island == -1").iloc[0]
    assert initial.score == pytest.approx(0.5)
    assert "case 1 ([1, 1],): got 2, expected 3" in dict(initial.artifacts)["failed_cases"]
