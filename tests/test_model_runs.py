"""Whole runs with the openai backend against the scripted OpenAI-protocol server, on the
session's local Ray cluster: concurrency across islands, what the log keeps, the
ensemble's bandit, and runs that must stop when the model cannot serve."""

import json
import threading

import pytest

from rayevolve.log import read_events, read_programs, read_prompts
from rayevolve.run.controller import Controller, RunError
from rayevolve.testing.openai_server import Reply, ScriptedOpenAIServer, perturbing_responder
from tests.conftest import ROOT, run_cli, run_config

pytestmark = pytest.mark.ray


def openai_config(server, islands=3, evaluations=24, **mutation):
    return run_config(
        "parabola",
        mutation={
            "backend": "openai",
            "base_url": server.base_url,
            "model": server.models[0],
            "openai": {"backoff_s": 0.01, "backoff_max_s": 0.05, "timeout_s": 10},
            **mutation,
        },
        islands={"count": islands, "in_flight": 2, "migration": {"interval": 4}},
        stop={"max_evaluations": evaluations},
    )


def test_islands_share_the_endpoint_concurrently_and_the_log_keeps_every_reply(
    ray_cluster, tmp_path, monkeypatch
):
    monkeypatch.setenv("RAYEVOLVE_TEST_KEY", "k-9f8e7d6c5b4a")
    with ScriptedOpenAIServer(models=["coder"], latency_s=0.25, api_key="k-9f8e7d6c5b4a") as server:
        cfg = openai_config(server, api_key_env="RAYEVOLVE_TEST_KEY")
        summary = Controller(cfg, tmp_path / "run", [ROOT]).run()
    assert summary.stopped_because == "max_evaluations reached"
    assert server.peak_concurrency >= 3  # 3 islands x 2 in flight overlap at the server
    programs = read_programs(tmp_path / "run").to_pandas()
    children = programs[programs.island >= 0]
    assert len(children[children.status == "ok"]) == 24
    assert set(children.model) == {"coder"} and set(children.mutation_operator) == {"llm:diff"}
    assert (children.model_latency_s >= 0.25).all() and (children.prompt_tokens > 0).all()
    assert (children.temperature == 0.8).all() and children.mutation_seed.is_unique
    prompts = read_prompts(tmp_path / "run").to_pandas()
    assert set(children.prompt_hash) <= set(prompts.prompt_hash)
    assert prompts.prompt_hash.is_unique
    first = json.loads(prompts.prompt.iloc[0])
    assert first[0]["role"] == "system" and "parabola" in first[0]["content"]
    assert summary.best_score > 10.0 - 4.0 - 9.0  # better than the initial program
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert b"k-9f8e7d6c5b4a" not in path.read_bytes(), path


def test_malformed_replies_are_logged_failures_and_the_run_goes_on(ray_cluster, tmp_path):
    good = perturbing_responder(seed=1)
    counter = iter(range(10**6))
    lock = threading.Lock()
    bad = ["", "no edit at all", "<<<<<<< SEARCH\nX = 7.0\n=======\nX = 1.0\n>>>>>>> REPLACE"]

    def respond(body):
        with lock:
            i = next(counter)
        return good(body) if i % 2 else Reply(bad[(i // 2) % 3])

    with ScriptedOpenAIServer(models=["coder"], responder=respond) as server:
        cfg = openai_config(server, islands=2, evaluations=12, repair_attempts=0)
        summary = Controller(cfg, tmp_path / "run", [ROOT]).run()
    assert summary.evaluations == 12 and summary.mutation_failures >= 6
    programs = read_programs(tmp_path / "run").to_pandas()
    failed = programs[programs.status == "mutation_failed"]
    assert set(failed.mutation_error_kind) == {"empty_reply", "no_edit_parsed", "search_not_found"}
    assert set(failed.reply.fillna("")) <= set(bad) and failed.prompt_hash.notna().all()


def test_the_bandit_moves_weight_to_the_model_whose_children_improve(ray_cluster, tmp_path):
    good = perturbing_responder(seed=2)

    def respond(body):
        return good(body) if body["model"] == "helpful" else Reply("I cannot help with that.")

    with ScriptedOpenAIServer(models=["helpful", "useless"], responder=respond) as server:
        cfg = openai_config(
            server,
            islands=2,
            evaluations=80,  # rewards arrive late; enough of them to be decisive under load
            model=None,
            models=[{"name": "helpful", "weight": 1.0}, {"name": "useless", "weight": 1.0}],
            bandit={"enabled": True, "event_every": 10},
            repair_attempts=0,
        )
        Controller(cfg, tmp_path / "run", [ROOT]).run()
    programs = read_programs(tmp_path / "run").to_pandas()
    children = programs[programs.island >= 0]
    assert set(children.model) == {"helpful", "useless"}  # the choice is recorded per program
    events = read_events(tmp_path / "run").to_pandas()
    weights = [json.loads(p)["models"] for p in events[events.kind == "model_weights"].payload]
    assert weights, "no model_weights events"
    helpful = [w["helpful"]["weight"] for w in weights]
    # weight moves decisively to the model whose children improve, then stays well above
    # its prior of 0.5 while UCB keeps exploring the other (the helpful model's relative
    # gains shrink as the population nears the optimum: it settles between 0.65 and 0.8,
    # depending on how late the rewards of a run arrive)
    assert max(helpful) > 0.8, helpful
    assert helpful[-1] > 0.6 > 0.4 > weights[-1]["useless"]["weight"], helpful
    # and the choices follow the weights: the helpful model answered most requests (0.68
    # to 0.72 of some 110 over repeated runs; 0.5 without the bandit. The second half
    # alone is too few: its share moved by 0.07 between runs)
    assert (children.model == "helpful").mean() > 0.6


def test_an_endpoint_that_dies_mid_run_stops_the_run(ray_cluster, tmp_path):
    good = perturbing_responder(seed=3)
    counter = iter(range(10**6))

    def respond(body):
        return good(body) if next(counter) < 8 else Reply("overloaded", status=503)

    with ScriptedOpenAIServer(models=["coder"], responder=respond) as server:
        cfg = openai_config(
            server,
            islands=2,
            evaluations=200,
            openai={"max_retries": 1, "unavailable_after": 3, "backoff_s": 0.01},
        )
        summary = Controller(cfg, tmp_path / "run", [ROOT]).run()
    assert summary.stopped_because.startswith("stopped:")
    assert "requests in a row" in summary.stopped_because
    assert 0 < summary.evaluations < 200


def test_an_unreachable_endpoint_or_unknown_model_refuses_to_start(ray_cluster, tmp_path):
    with ScriptedOpenAIServer(models=["coder"]) as server:
        cfg = openai_config(server, model="qwen-typo")
        with pytest.raises(RunError, match="does not serve qwen-typo; it serves: coder"):
            Controller(cfg, tmp_path / "a", [ROOT]).run()
    cfg = openai_config(server, openai={"max_retries": 0})  # the server is gone now
    with pytest.raises(RunError, match="cannot reach the model endpoint"):
        Controller(cfg, tmp_path / "b", [ROOT]).run()


def test_cli_runs_the_openai_backend_as_the_readme_says(tmp_path):
    with ScriptedOpenAIServer(models=["coder"], latency_s=0.05) as server:
        done = run_cli(
            "mutation=openai",
            f"mutation.base_url={server.base_url}",
            "mutation.model=coder",
            "task=function_minimization",
            "stop.max_evaluations=16",
            "islands.count=2",
            f"run_dir={tmp_path / 'run'}",
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert "max_evaluations reached" in done.stdout
        assert len(server.chat_requests()) >= 16
        missing = run_cli("mutation=openai", f"mutation.base_url={server.base_url}")
    assert missing.returncode == 2
    assert "mutation.model" in missing.stderr and "needs a model" in missing.stderr
