"""Isolation in a whole run: the level reaches every row, the start and the summary; a
level a node cannot give stops the run at start; in-process evaluators are marked; the
task folder a run started with is the one it resumes with; secrets leave the driver's
environment before Ray starts."""

import json
import logging
import os
import sys

import pytest

from rayevolve.log import read_events, read_programs
from rayevolve.result import Isolation
from rayevolve.run.controller import Controller, RunError
from rayevolve.sandbox.confinement import resolve
from tests.conftest import ROOT, run_config

NAMESPACES = sys.platform.startswith("linux") and resolve("auto").level == Isolation.NAMESPACES
needs_namespaces = pytest.mark.skipif(not NAMESPACES, reason="needs bubblewrap (namespaces)")

# a seed that reports whether it reached the run's Ray (its GCS port on loopback)
REACH_RAY = """
import socket
# EVOLVE-BLOCK-START
X = 0.5
# EVOLVE-BLOCK-END
def run():
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(({host!r}, {port}))
        return 1000.0
    except OSError:
        return X
"""
EVALUATOR = """
from rayevolve.evaluators.candidate_call import CandidateFailed, call_isolated, load_module

def evaluate(program_path):
    try:
        (value,) = call_isolated(lambda: float(load_module(program_path).run()))
    except CandidateFailed as exc:
        return {"status": exc.kind, "error": str(exc)}
    return {"combined_score": float(value)}
"""


@pytest.fixture
def reach_ray_task(tmp_path, ray_cluster):
    cluster, _ = ray_cluster
    host, port = cluster.address.split(":")
    folder = tmp_path / "reach_ray"
    folder.mkdir()
    (folder / "initial_program.py").write_text(REACH_RAY.format(host=host, port=int(port)))
    (folder / "evaluator.py").write_text(EVALUATOR)
    return folder


@pytest.mark.ray
@needs_namespaces
def test_every_row_says_namespaces_and_no_candidate_reaches_the_runs_ray(
    ray_cluster, reach_ray_task, tmp_path, caplog
):
    cfg = run_config("reach_ray", task={"path": str(reach_ray_task)}, stop={"max_evaluations": 8})
    with caplog.at_level(logging.INFO, logger="rayevolve.run"):
        summary = Controller(cfg, tmp_path / "run", [ROOT]).run()
    rows = read_programs(tmp_path / "run").to_pandas()
    evaluated = rows[rows.status != "mutation_failed"]
    assert set(evaluated.isolation) == {"namespaces"}
    assert evaluated.score.max() < 1000.0  # not one candidate connected to the GCS
    assert summary.isolation.startswith("namespaces")
    assert "isolation namespaces" in caplog.text  # said once at start
    record = json.loads((tmp_path / "run" / "task.json").read_text())
    start = read_events(tmp_path / "run").to_pandas().query("kind == 'run_start'").iloc[0]
    assert json.loads(start.payload)["task"]["bundle_hash"] == record["bundle_hash"]


@pytest.mark.ray
def test_isolation_none_is_said_plainly(ray_cluster, tmp_path, caplog):
    cfg = run_config("apple_probe", evaluation={"isolation": "none"}, stop={"max_evaluations": 4})
    with caplog.at_level(logging.INFO, logger="rayevolve.run"):
        summary = Controller(cfg, tmp_path / "run", [ROOT]).run()
    assert "NOT isolated" in summary.render() and "NOT isolated" in caplog.text
    rows = read_programs(tmp_path / "run").to_pandas()
    assert set(rows[rows.status != "mutation_failed"].isolation) <= {"none", "in_process"}


@pytest.mark.ray
def test_a_level_the_node_cannot_give_stops_the_run_at_start(ray_cluster, tmp_path):
    other = "seatbelt" if sys.platform.startswith("linux") else "namespaces"
    cfg = run_config("apple_probe", evaluation={"isolation": other})
    with pytest.raises(RunError, match=f"evaluation.isolation={other} is not available"):
        Controller(cfg, tmp_path / "run", [ROOT]).run()


@pytest.mark.ray
def test_in_process_evaluators_are_marked_and_warned_about_once(ray_cluster, tmp_path, caplog):
    cfg = run_config("parabola", stop={"max_evaluations": 6})
    with caplog.at_level(logging.WARNING, logger="rayevolve.run"):
        summary = Controller(cfg, tmp_path / "run", [ROOT]).run()
    rows = read_programs(tmp_path / "run").to_pandas()
    assert set(rows[rows.status != "mutation_failed"].isolation) == {"in_process"}
    assert caplog.text.count("can forge its verdict") == 1
    assert "in_process" in summary.render()


@pytest.mark.ray
def test_resume_refuses_a_changed_task_folder_unless_forced(ray_cluster, tmp_path, task_copy):
    folder = task_copy("apple_probe")
    run_dir = tmp_path / "run"
    cfg = run_config("apple_probe", task={"path": str(folder)}, stop={"max_evaluations": 4})
    Controller(cfg, run_dir, [ROOT]).run()
    evaluator = folder / "evaluator.py"
    evaluator.write_text(evaluator.read_text() + "\n# changed after the run started\n")
    resumed = run_config(
        "apple_probe",
        task={"path": str(folder)},
        stop={"max_evaluations": 6},
        resume=str(run_dir),
    )
    with pytest.raises(RunError, match="evaluator.py changed.*force_resume=true"):
        Controller(resumed, run_dir, [ROOT]).run()
    forced = run_config(
        "apple_probe",
        task={"path": str(folder)},
        stop={"max_evaluations": 6},
        resume=str(run_dir),
        force_resume=True,
    )
    Controller(forced, run_dir, [ROOT]).run()
    events = read_events(run_dir).to_pandas()
    changed = events[events.kind == "task_changed"]
    assert len(changed) == 1 and "evaluator.py changed" in changed.iloc[0].message


def test_secrets_leave_the_drivers_environment_before_it_starts_ray(monkeypatch, tmp_path):
    """The raylet and every worker start from the driver's environment: the keys the
    mutator needs are read first, then every secret-looking variable is removed."""
    import rayevolve.run.controller as controller

    monkeypatch.setenv("OPENAI_API_KEY", "sk-driver-secret")
    monkeypatch.setenv("HF_TOKEN", "hf-driver-secret")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "ray-own-token")
    seen = {}

    class Stop(Exception):
        pass

    def fake_connect(config):
        seen["environ"] = dict(os.environ)
        raise Stop

    monkeypatch.setattr(controller, "connect", fake_connect)
    monkeypatch.setattr(controller.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(controller.ray, "shutdown", lambda: None)
    cfg = run_config(
        "apple_probe",
        mutation={"backend": "openai", "model": "m", "base_url": "http://127.0.0.1:1/v1"},
        cluster={"address": None},
    )
    run = Controller(cfg, tmp_path / "run", [ROOT])
    with pytest.raises(Stop):
        run.run()
    assert "OPENAI_API_KEY" not in seen["environ"] and "HF_TOKEN" not in seen["environ"]
    assert seen["environ"]["RAY_AUTH_TOKEN"] == "ray-own-token"  # Ray's own stays
    assert run._keys == {"OPENAI_API_KEY": "sk-driver-secret"}  # handed over in memory
