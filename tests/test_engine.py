"""The engine on a real local Ray cluster: evaluator pool, hostile candidates, the
island model's invariants as the run log records them."""

import time

import pytest

from rayevolve.config import EvaluationConfig
from rayevolve.log import read_events, read_programs
from rayevolve.outcome import Outcome
from rayevolve.run.controller import Controller
from rayevolve.tasks import load_task
from tests.conftest import ROOT, run_config

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def hostile_pool(ray_cluster):
    import ray

    from rayevolve.sandbox.pool import EvaluatorPool

    task = load_task(
        # 10 s: on two busy cores (the suite's two workers), a candidate that fills 1 GiB
        # under isolation none needed more than 3 s before its MemoryError
        run_config("hostile", task={"timeout_s": 10, "memory_limit_mb": 1024}).task,
        [ROOT],
    )
    pool = (
        ray.remote(EvaluatorPool)
        .options(num_cpus=0)
        .remote(
            task,
            # isolation none: so that a candidate can kill its evaluator actor, as a lost node
            # would (under namespaces it cannot even see it)
            EvaluationConfig(num_evaluators=2, max_attempts=2, isolation="none"),
            {"num_cpus": 1},
        )
    )
    ray.get(pool.start.remote())
    yield pool, task
    ray.kill(pool)


def with_behaviour(task, behaviour: int) -> str:
    return task.initial_code.replace("BEHAVIOUR = 0", f"BEHAVIOUR = {behaviour}")


@pytest.mark.parametrize(
    "behaviour, status",
    [
        (1, Outcome.RUNTIME_ERROR),
        (2, Outcome.CRASHED),
        (3, Outcome.TIMEOUT),
        (4, Outcome.MEMORY_LIMIT),
        (5, Outcome.OK),
    ],
    ids=["raise", "segfault", "hang", "memory", "megabytes"],
)
def test_pool_classifies_hostile_candidates_and_keeps_serving(hostile_pool, behaviour, status):
    import ray

    pool, task = hostile_pool
    result = ray.get(pool.evaluate.remote(with_behaviour(task, behaviour)))
    assert result.status == status, result.artifacts.get("error")
    assert result.attempts == 1  # a candidate's own failure is never retried
    assert result.node_id and result.evaluator_id
    good = ray.get(pool.evaluate.remote(with_behaviour(task, 0)))
    assert good.status == Outcome.OK and good.score == 1.0


KILL_EVALUATOR_ACTOR = """
import os, signal
def _ancestor(title):
    pid = os.getppid()
    while pid > 1:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            if handle.read().startswith(title):
                return pid
        with open(f"/proc/{pid}/stat") as handle:
            pid = int(handle.read().rsplit(")", 1)[1].split()[1])
    raise RuntimeError("no evaluator actor above this process")
"""


def test_evaluator_death_is_retried_on_a_replacement(hostile_pool, tmp_path):
    """The candidate kills its evaluator actor's process once (as a node loss would)."""
    import ray

    pool, task = hostile_pool
    marker = tmp_path / "killed-once"
    code = (
        with_behaviour(task, 0)
        + KILL_EVALUATOR_ACTOR
        + f"if not os.path.exists({str(marker)!r}):\n"
        f"    open({str(marker)!r}, 'w').close()\n"
        "    os.kill(_ancestor(b'ray::EvaluatorActor'), signal.SIGKILL)\n"
    )
    result = ray.get(pool.evaluate.remote(code))
    assert result.status == Outcome.OK and result.attempts == 2
    stats = ray.get(pool.stats.remote())
    assert stats["evaluator_deaths"] >= 1 and stats["replacements"] >= 1


def test_killing_the_process_that_forked_it_costs_only_that_candidate(hostile_pool):
    """Under the fork server (isolation none) the judge's parent is the server: killing it
    is the candidate's doing (crashed, never retried), and the evaluator carries on with
    a new server."""
    import ray

    pool, task = hostile_pool
    code = with_behaviour(task, 0) + "\nimport os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n"
    result = ray.get(pool.evaluate.remote(code))
    assert result.status == Outcome.CRASHED and result.attempts == 1
    assert "supervising" in result.artifacts["error"]
    assert ray.get(pool.evaluate.remote(with_behaviour(task, 0))).status == Outcome.OK


def test_candidate_that_always_kills_its_evaluator_ends_crashed(hostile_pool):
    import ray

    pool, task = hostile_pool
    code = (
        with_behaviour(task, 0)
        + KILL_EVALUATOR_ACTOR
        + "os.kill(_ancestor(b'ray::EvaluatorActor'), signal.SIGKILL)\n"
    )
    result = ray.get(pool.evaluate.remote(code))
    assert result.status == Outcome.CRASHED
    assert "2 attempts" in result.artifacts["error"]
    assert ray.get(pool.evaluate.remote(with_behaviour(task, 0))).status == Outcome.OK


def test_hostile_run_classifies_failures_and_completes(ray_cluster, tmp_path):
    cfg = run_config(
        "hostile",
        task={"timeout_s": 5, "memory_limit_mb": 1024},
        islands={"count": 2, "in_flight": 2},
        stop={"max_evaluations": 24},
        mutation={
            "offline": {
                "perturb": 1.0,
                "crossover_literals": 0.0,
                "crossover_block": 0.0,
                "max_literals": 1,
            }
        },
    )
    summary = Controller(cfg, tmp_path / "run", [ROOT]).run()
    assert summary.evaluations == 24
    programs = read_programs(tmp_path / "run").to_pandas()
    evaluated = programs[programs.status != "mutation_failed"]
    assert len(evaluated) == 25
    # from BEHAVIOUR = 0, one literal step reaches 1 (raises) and 2 (segfaults)
    assert set(evaluated.status) == {"ok", "runtime_error", "crashed"}, (
        evaluated.status.value_counts()
    )
    assert evaluated[evaluated.status != "ok"].score.isna().all()
    assert all("error" in dict(a) for a in evaluated[evaluated.status != "ok"].artifacts)


def test_run_log_records_lineage_migrations_and_no_duplicates(ray_cluster, tmp_path):
    cfg = run_config(
        "apple_probe",
        islands={
            "count": 3,
            "in_flight": 2,
            "migration": {"interval": 3, "topology": "complete", "rate": 0.5},
        },
        stop={"max_evaluations": 36},
    )
    summary = Controller(cfg, tmp_path / "run", [ROOT]).run()
    programs = read_programs(tmp_path / "run").to_pandas()
    evaluated = programs[programs.status != "mutation_failed"]
    ids = set(programs.program_id)
    seed = evaluated[evaluated.island == -1]
    assert len(seed) == 1 and seed.iloc[0].mutation_operator == "seed"
    children = evaluated[evaluated.island >= 0]
    assert len(children) == summary.evaluations == 36
    assert set(children.parent_id) <= ids  # every parent is in the log
    assert (children.generation >= 1).all()
    assert not children.duplicated(["island", "code_hash"]).any()
    assert children.edit.str.contains("SEARCH").all()
    events = read_events(tmp_path / "run").to_pandas()
    migrations = events[events.kind == "migration"]
    assert len(migrations) > 0
    origin = dict(zip(evaluated.program_id, evaluated.island, strict=True))
    for _, event in migrations.iterrows():
        assert event.src_island != event.dst_island
        for pid in event.accepted_ids:
            assert origin[pid] == event.src_island  # migrants are the sender's own programs
    assert summary.migrations_accepted == sum(len(a) for a in migrations.accepted_ids)
    assert {"run_start", "run_end", "island_stats"} <= set(events.kind)
    assert (tmp_path / "run" / "best" / "program.py").exists()
    assert (tmp_path / "run" / "versions.json").exists() and (
        tmp_path / "run" / "config.yaml"
    ).exists()


def test_failing_initial_program_stops_with_its_error_and_is_logged(
    ray_cluster, tmp_path, task_copy
):
    from rayevolve.run.controller import RunError

    folder = task_copy("hostile")
    source = (folder / "initial_program.py").read_text()
    (folder / "initial_program.py").write_text(source.replace("BEHAVIOUR = 0", "BEHAVIOUR = 1"))
    cfg = run_config("hostile", task={"path": str(folder)})
    with pytest.raises(RunError, match="initial program .* failed .*runtime_error"):
        Controller(cfg, tmp_path / "run", [ROOT]).run()
    assert read_programs(tmp_path / "run").column("status").to_pylist() == ["runtime_error"]


def test_run_stops_at_the_target_score(ray_cluster, tmp_path):
    cfg = run_config(
        "apple_probe",
        stop={"max_evaluations": 2000, "target_score": -4.0},  # initial score: -5
        mutation={"samples_per_request": 2},
    )
    summary = Controller(cfg, tmp_path / "run", [ROOT]).run()
    assert summary.stopped_because.startswith("target score")
    assert summary.stop == "target" and summary.stop.completed
    assert "to continue" not in summary.render()
    assert summary.best_score >= -4.0
    assert summary.evaluations < 2000
    evaluated = read_programs(tmp_path / "run").to_pandas().query("status != 'mutation_failed'")
    assert len(evaluated) == summary.evaluations + 1  # drained children are logged too


def test_run_stops_at_the_wall_time_limit(ray_cluster, tmp_path):
    cfg = run_config("apple_probe", stop={"max_evaluations": 1_000_000, "max_wall_s": 3.0})
    summary = Controller(cfg, tmp_path / "run", [ROOT]).run()
    assert summary.stopped_because.startswith("wall-time limit")
    assert summary.stop == "wall_time" and not summary.stop.completed
    assert "to continue   python -m rayevolve resume=" in summary.render()
    assert 3.0 <= summary.wall_s < 3.0 + 15.0
    assert 0 < summary.evaluations < 1_000_000


def test_pool_whose_evaluators_can_never_start_fails_clearly(ray_cluster):
    import ray

    from rayevolve.sandbox.pool import EvaluatorPool

    task = load_task(run_config("hostile").task, [ROOT])
    config = EvaluationConfig(num_evaluators=1, unavailable_timeout_s=2)
    pool = (
        ray.remote(EvaluatorPool)
        .options(num_cpus=0)
        .remote(task, config, {"num_cpus": 0, "resources": {"gone_gpu": 1}})
    )
    started = time.monotonic()
    with pytest.raises(ray.exceptions.RayTaskError, match="every node that can run this task"):
        ray.get(pool.evaluate.remote(with_behaviour(task, 0)))
    assert time.monotonic() - started < 30
    ray.kill(pool)


@pytest.fixture
def probe_pool(ray_cluster):
    """One evaluator on the cheap probe task, batching up to 4 candidates per call."""
    import ray

    from rayevolve.sandbox.pool import EvaluatorPool

    task = load_task(run_config("apple_probe").task, [ROOT])
    config = EvaluationConfig(  # isolation none: a candidate may kill its evaluator (see above)
        num_evaluators=1, max_attempts=2, batch_max=4, batch_window_s=1.0, isolation="none"
    )
    pool = ray.remote(EvaluatorPool).options(num_cpus=0).remote(task, config, {"num_cpus": 1})
    ray.get(pool.start.remote())
    yield pool, task
    ray.kill(pool)


def probe(x: float, extra: str = "") -> str:
    return f"# EVOLVE-BLOCK-START\nX = {x}\nY = 5\n# EVOLVE-BLOCK-END\n{extra}"


def test_cheap_candidates_share_calls_and_each_gets_its_own_verdict(probe_pool):
    import ray

    pool, _ = probe_pool
    ray.get(pool.evaluate.remote(probe(3.0)))  # the evaluator's cost is known from now on
    xs = [3.0 - i / 10 for i in range(24)]
    results = ray.get([pool.evaluate.remote(probe(x)) for x in xs])
    assert [r.score for r in results] == pytest.approx([-abs(x - 3.0) for x in xs])
    assert all(r.status == Outcome.OK and r.attempts == 1 for r in results)
    stats = ray.get(pool.stats.remote())
    assert stats["evaluations"] == 25 and stats["calls"] < 25  # some calls carried several


def test_a_batch_mate_that_kills_the_evaluator_costs_others_nothing_final(probe_pool):
    """Killed with its batch, each candidate is retried alone: the innocent ones pass,
    the killer uses up its own attempts."""
    import ray

    pool, _ = probe_pool
    ray.get(pool.evaluate.remote(probe(3.0)))
    busy = pool.evaluate.remote(probe(3.0, "import time\ntime.sleep(1.0)\n"))
    time.sleep(0.3)  # the evaluator is busy: the next four wait, and go as one batch
    killer = probe(1.0, KILL_EVALUATOR_ACTOR + "os.kill(_ancestor(b'ray::EvaluatorActor'), 9)\n")
    refs = [pool.evaluate.remote(probe(2.0 + i / 10)) for i in range(3)]
    refs.insert(1, pool.evaluate.remote(killer))
    results = ray.get(refs, timeout=120)
    assert ray.get(busy).status == Outcome.OK
    verdict = results.pop(1)
    assert verdict.status == Outcome.CRASHED and "2 attempts" in verdict.artifacts["error"]
    assert all(r.status == Outcome.OK for r in results)
    assert [r.score for r in results] == pytest.approx([-1.0, -0.9, -0.8])
    assert any(r.attempts == 2 for r in results)  # they were in the killer's batch
