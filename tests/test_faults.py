"""Fault injection on a real local Ray cluster: islands, evaluators and the mutator are
killed mid-run, the driver is SIGKILLed; the log must lose nothing evaluated before the
fault, and the run must complete (after resume, for the driver)."""

import threading
import time
from pathlib import Path

import pytest

from rayevolve.log import read_events, read_programs
from rayevolve.log.replay import island_state
from rayevolve.run.controller import Controller, RunError
from tests.conftest import ROOT, run_config

pytestmark = pytest.mark.ray


def start_run(cfg, run_dir: Path):
    outcome: dict = {}

    def target():
        try:
            outcome["summary"] = Controller(cfg, run_dir, [ROOT]).run()
        except BaseException as exc:  # reported by the test
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def wait_for_rows(run_dir: Path, rows: int, timeout: float = 90) -> set[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (
            list((run_dir / "programs").glob("*.parquet"))
            if (run_dir / "programs").exists()
            else []
        ):
            table = read_programs(run_dir)
            if len(table) >= rows:
                return set(table.column("program_id").to_pylist())
        time.sleep(0.2)
    raise AssertionError(f"fewer than {rows} rows in {run_dir} after {timeout} s")


def evaluated(run_dir: Path):
    programs = read_programs(run_dir).to_pandas()
    return programs[(programs.status != "mutation_failed") & (programs.island >= 0)]


@pytest.mark.parametrize("victim", ["island-0", "islands-0", "evaluator-0", "mutator", "pool"])
def test_killed_actor_is_replaced_and_the_run_completes(ray_cluster, tmp_path, victim):
    """`islands-0`: a process holding two of four islands (islands.per_actor=2), with
    migration between the hosts; all of its islands are rebuilt from the log."""
    import ray

    hosted = victim == "islands-0"
    cfg = run_config(
        "apple_probe",
        task={"env": {"PROBE_EVAL_S": "0.1"}},  # 60 evaluations outlast the fault
        stop={"max_evaluations": 60},
        islands={"count": 4, "in_flight": 1, "per_actor": 2, "migration": {"interval": 4}}
        if hosted
        else {"count": 2, "in_flight": 2},
    )
    run_dir = tmp_path / "run"
    thread, outcome = start_run(cfg, run_dir)
    before = wait_for_rows(run_dir, 12)
    run_id = (run_dir / "run_id").read_text().strip()
    ray.kill(ray.get_actor(f"{run_id}:{victim}"), no_restart=False)
    thread.join(timeout=180)
    assert not thread.is_alive(), "the run did not finish after the fault"
    assert "error" not in outcome, outcome.get("error")
    assert outcome["summary"].evaluations == 60
    after = read_programs(run_dir)
    assert before <= set(after.column("program_id").to_pylist())  # nothing logged was lost
    children = evaluated(run_dir)
    assert len(children) == 60
    assert not children.duplicated(["island", "code_hash"]).any()
    kinds = set(read_events(run_dir).column("kind").to_pylist())
    if victim == "island-0":
        assert "island_restarted" in kinds
    if hosted:
        restarted = read_events(run_dir).to_pandas().query("kind == 'island_restarted'")
        assert {0, 1} <= set(restarted.island)  # both of the killed host's islands
        assert "migration" in kinds
        assert set(children.island) == {0, 1, 2, 3}
    if victim == "evaluator-0":
        assert "evaluator_replaced" in kinds
    if victim == "mutator":
        assert "mutator_restarted" in kinds
    if victim == "pool":
        assert "pool_restarted" in kinds


def test_island_state_replays_the_log(ray_cluster, tmp_path):
    cfg = run_config(
        "apple_probe",
        stop={"max_evaluations": 30},
        islands={"count": 2, "migration": {"interval": 3, "rate": 0.5}},
    )
    summary = Controller(cfg, tmp_path / "run", [ROOT]).run()
    programs = read_programs(tmp_path / "run").drop_columns(["run"]).to_pylist()
    events = read_events(tmp_path / "run").drop_columns(["run"]).to_pylist()
    states = [island_state(i, programs, events) for i in range(2)]
    assert sum(s.counts.evaluations for s in states) == summary.evaluations == 30
    assert sum(s.counts.migrants_in for s in states) == summary.migrations_accepted
    for state in states:
        assert state.programs[0].island == -1  # the seed first
        own = [p for p in state.programs if p.island == state.island]
        assert all(p.score is not None for p in own)
        assert {p.code_hash for p in state.programs} <= state.seen


def test_resume_continues_counting_and_never_repeats_logged_work(ray_cluster, tmp_path):
    run_dir = tmp_path / "run"
    first = Controller(
        run_config("apple_probe", stop={"max_evaluations": 24}), run_dir, [ROOT]
    ).run()
    ids_before = set(read_programs(run_dir).column("program_id").to_pylist())
    resumed_cfg = run_config("apple_probe", stop={"max_evaluations": 50}, resume=str(run_dir))
    second = Controller(resumed_cfg, run_dir, [ROOT]).run()
    assert second.run_id == first.run_id
    assert second.evaluations == 50 and second.evaluations_before == 24
    assert second.best_score >= first.best_score
    programs = read_programs(run_dir).to_pandas()
    assert ids_before <= set(programs.program_id)
    assert programs.run_id.nunique() == 1
    assert len(programs[programs.island == -1]) == 1  # the seed was not evaluated again
    children = evaluated(run_dir)
    assert len(children) == 50 and not children.duplicated(["island", "code_hash"]).any()
    assert "run_resumed" in set(read_events(run_dir).column("kind").to_pylist())
    # a resume that would change what the rows mean is refused, and writes nothing
    files = sorted(p.name for p in run_dir.iterdir())
    events = len(read_events(run_dir))
    other = run_config(
        "apple_probe", task={"timeout_s": 9}, stop={"max_evaluations": 60}, resume=str(run_dir)
    )
    with pytest.raises(RunError, match=r"task.timeout_s was 5.0, now 9.0.*force_resume=true"):
        Controller(other, run_dir, [ROOT]).run()
    assert sorted(p.name for p in run_dir.iterdir()) == files
    assert len(read_events(run_dir)) == events


def test_run_refuses_a_directory_another_process_is_writing(ray_cluster, tmp_path):
    from rayevolve.run.lock import RunDirLock

    run_dir = tmp_path / "run"
    other = RunDirLock(run_dir)
    assert other.try_acquire()  # a writer that is still alive
    try:
        cfg = run_config("apple_probe", log={"writer_wait_s": 0.5})
        with pytest.raises(RunError, match="another process is still writing the run log"):
            Controller(cfg, run_dir, [ROOT]).run()
    finally:
        other.release()
    assert not list((run_dir / "programs").glob("*.parquet"))  # nothing was written


def test_resume_of_a_folder_that_is_not_a_run_is_refused(ray_cluster, tmp_path):

    with pytest.raises(RunError, match="not a rayevolve run directory"):
        Controller(run_config("apple_probe", resume=str(tmp_path)), tmp_path, [ROOT]).run()


def test_run_stops_with_a_clear_message_when_every_node_for_the_task_is_gone(ray_cluster, tmp_path):
    cluster, _ = ray_cluster
    node = cluster.add_node(num_cpus=1, resources={"flaky_gpu": 1})
    cluster.wait_for_nodes()
    cfg = run_config(
        "apple_probe",
        task={"resources": {"flaky_gpu": 1}},
        stop={"max_evaluations": 100_000},
        evaluation={"num_evaluators": 1, "unavailable_timeout_s": 3},
    )
    run_dir = tmp_path / "run"
    thread, outcome = start_run(cfg, run_dir)
    before = wait_for_rows(run_dir, 8)
    cluster.remove_node(node)  # the only node with flaky_gpu leaves the cluster
    thread.join(timeout=120)
    assert not thread.is_alive()
    summary = outcome["summary"]
    # no island can progress: the first to notice stops the whole run, saying why
    assert summary.stopped_because.startswith("stopped: island ")
    assert "every node that can run this task" in summary.stopped_because
    assert any("every node that can run this task" in e for e in summary.island_errors)
    assert before <= set(read_programs(run_dir).column("program_id").to_pylist())


def test_unwritable_log_stops_the_run_and_saves_the_rows_elsewhere(ray_cluster, tmp_path):
    cfg = run_config(
        "apple_probe",
        stop={"max_evaluations": 100_000},
        log={"flush_interval_s": 0.3, "failure_timeout_s": 2.0},
    )
    run_dir = tmp_path / "run"
    thread, outcome = start_run(cfg, run_dir)
    before = wait_for_rows(run_dir, 8)
    (run_dir / "programs").rename(tmp_path / "programs-aside")
    (run_dir / "programs").write_text("the disk is full")  # every later write fails
    thread.join(timeout=120)
    assert not thread.is_alive()
    summary = outcome["summary"]
    assert summary.stopped_because.startswith("stopped: cannot write the run log")
    assert "were saved to" in summary.log_error
    rescued = summary.log_error.split("were saved to ")[1].split(":")[0]
    (run_dir / "programs").unlink()
    (tmp_path / "programs-aside").rename(run_dir / "programs")
    for part in (Path(rescued) / "programs").glob("*.parquet"):
        part.rename(run_dir / "programs" / part.name)
    programs = read_programs(run_dir).to_pandas()
    assert before <= set(programs.program_id)
    children = programs[(programs.status != "mutation_failed") & (programs.island >= 0)]
    assert len(children) == summary.evaluations  # nothing evaluated was lost


@pytest.mark.e2e
@pytest.mark.parametrize("after_evaluations, delay_s, session", [(1, 0.1, False), (12, 0.3, True)])
def test_a_killed_driver_loses_no_acknowledged_evaluation(
    tmp_path, after_evaluations, delay_s, session
):
    """SIGKILL of the driver 0.1 s after its seed was judged, and of the driver's whole
    session (its Ray and every actor: a crash of its machine) in mid-run: every
    evaluation that finished 0.5 s before the kill is in the log after the resume, which
    ends with exactly the budget and no program twice (the witness file, written by the
    evaluator, is the independent record)."""
    from rayevolve.testing.faults import kill_and_resume

    outcome = kill_and_resume(
        tmp_path,
        after_evaluations=after_evaluations,
        delay_s=delay_s,
        budget=30,
        session=session,
    )
    assert outcome.resumed, outcome.resume_error
    assert outcome.lost == 0, outcome
    assert outcome.evaluations == 30 and outcome.duplicates == 0, outcome
    if after_evaluations > 1:  # earlier work was logged: the resume counts on from it
        assert "in this session" in outcome.resume_summary
    children = evaluated(tmp_path / "run")
    assert not children.duplicated(["island", "code_hash"]).any()


def test_summary_counts_what_the_log_holds_after_an_island_is_lost(ray_cluster, tmp_path):
    """An island given up takes its live statistics with it; its logged work still counts."""
    import ray

    cfg = run_config(
        "apple_probe",
        task={"env": {"PROBE_EVAL_S": "0.05"}},
        stop={"max_evaluations": 40},
        islands={"count": 2, "max_restarts": 0},
    )
    run_dir = tmp_path / "run"
    thread, outcome = start_run(cfg, run_dir)
    wait_for_rows(run_dir, 10)
    run_id = (run_dir / "run_id").read_text().strip()
    ray.kill(ray.get_actor(f"{run_id}:island-0"), no_restart=True)
    thread.join(timeout=180)
    summary = outcome["summary"]
    assert any("island 0" in error for error in summary.island_errors)
    children = evaluated(run_dir)
    assert summary.evaluations == len(children) > 0
    assert sum(summary.statuses.values()) == len(children)


def test_a_node_that_comes_back_gets_its_evaluators_back(ray_cluster, tmp_path):
    """The only node that can judge the task dies and another joins: the run goes on
    there without the islands or the pool spending a restart (they live on the driver's
    node); the evaluator placed on the new node finishes the budget."""
    cluster, _ = ray_cluster
    node = cluster.add_node(num_cpus=1, resources={"heal_gpu": 1})
    cluster.wait_for_nodes()
    cfg = run_config(
        "apple_probe",
        task={"resources": {"heal_gpu": 1}, "env": {"PROBE_EVAL_S": "0.05"}},
        stop={"max_evaluations": 60},
        evaluation={"num_evaluators": 1, "unavailable_timeout_s": 120},
    )
    run_dir = tmp_path / "run"
    thread, outcome = start_run(cfg, run_dir)
    wait_for_rows(run_dir, 8)
    first_node = node.node_id
    cluster.remove_node(node)
    time.sleep(2)
    joined = time.monotonic()
    fresh = cluster.add_node(num_cpus=1, resources={"heal_gpu": 1})
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            nodes = set(read_programs(run_dir).column("node_id").to_pylist())
            if fresh.node_id in nodes:
                break
            time.sleep(0.1)
        print(f"first evaluation on the new node {time.monotonic() - joined:.1f} s after it joined")
        thread.join(timeout=180)
        assert not thread.is_alive() and "error" not in outcome, outcome.get("error")
        summary = outcome["summary"]
        assert summary.evaluations == 60 and summary.stopped_because == "max_evaluations reached"
        nodes = read_programs(run_dir).column("node_id").to_pylist()
        assert first_node in nodes and fresh.node_id in nodes
        kinds = set(read_events(run_dir).column("kind").to_pylist())
        assert not {"island_restarted", "pool_restarted", "mutator_restarted"} & kinds
    finally:
        cluster.remove_node(fresh)


def test_evaluators_the_cluster_cannot_hold_are_said_at_start(ray_cluster, tmp_path):
    """One apple_gpu node, two evaluators asked: the run goes on with one and says so."""
    cfg = run_config(
        "apple_probe",
        task={"resources": {"apple_gpu": 1}},
        stop={"max_evaluations": 6},
        evaluation={"num_evaluators": 2},
    )
    summary = Controller(cfg, tmp_path / "run", [ROOT]).run()
    assert summary.evaluations == 6
    events = read_events(tmp_path / "run").to_pandas()
    (message,) = events[events.kind == "evaluators_unplaced"].message
    assert "evaluation.num_evaluators=2, but the live nodes hold 1 evaluator(s)" in message
