"""The openai backend and the mutator's handling of model replies, against the scripted
OpenAI-protocol server on loopback (no Ray: the mutator actor's class used directly)."""

import asyncio
import json

import pytest
from omegaconf import OmegaConf

from rayevolve.config import MutationConfig, schema
from rayevolve.mutation.actor import MutatorActor
from rayevolve.mutation.base import ModelUnavailableError, MutationRequest
from rayevolve.mutation.prompts import PromptContext, gather_templates
from rayevolve.outcome import Outcome
from rayevolve.program import Program
from rayevolve.result import EvalResult
from rayevolve.testing.openai_server import Reply, ScriptedOpenAIServer

PARENT = """import math
# EVOLVE-BLOCK-START
def knobs():
    return 120, 0.05
# EVOLVE-BLOCK-END
print(knobs())
"""
GOOD = "<<<<<<< SEARCH\n    return 120, 0.05\n=======\n    return 121, 0.05\n>>>>>>> REPLACE"


@pytest.fixture
def server():
    with ScriptedOpenAIServer(models=["m1", "m2"]) as s:
        yield s


def config(server, **overrides) -> MutationConfig:
    """A validated openai MutationConfig (fast backoff, no repairs) with `overrides`."""
    openai = {
        "backoff_s": 0.01,
        "backoff_max_s": 0.05,
        "timeout_s": 5,
        **overrides.pop("openai", {}),
    }
    settings = {
        "backend": "openai",
        "base_url": server.base_url,
        "model": "m1",
        "repair_attempts": 0,
        "openai": openai,
        **overrides,
    }
    return OmegaConf.to_object(OmegaConf.merge(schema().mutation, settings))


def mutator(cfg: MutationConfig) -> MutatorActor:
    context = PromptContext("demo", "Make it big.", "python", True, gather_templates({}, None))
    return MutatorActor(cfg, "", context, seed=0)


def request(seed=7, n=1) -> MutationRequest:
    parent = Program.create(PARENT, language="python", parent=None, island=0)
    parent = parent.with_result(EvalResult(Outcome.OK, score=1.0, metrics={"combined_score": 1.0}))
    return MutationRequest(parent, (), island=0, mode="diff", seed=seed, num_samples=n)


def run(coro):
    return asyncio.run(coro)


async def mutate_all(actor: MutatorActor, requests):
    await actor.start()
    try:
        return await asyncio.gather(*(actor.mutate(r) for r in requests))
    finally:
        await actor.close()


def test_a_good_reply_becomes_a_child_with_its_record(server):
    server.enqueue(Reply(GOOD))
    [results] = run(mutate_all(mutator(config(server, temperature=0.3)), [request(seed=99)]))
    [result] = results
    assert result.ok and "return 121, 0.05" in result.child_code
    assert (result.model, result.operator, result.temperature) == ("m1", "llm:diff", 0.3)
    assert result.prompt_hash and json.loads(result.prompt)[1]["role"] == "user"
    assert result.prompt_tokens > 0 and result.completion_tokens > 0 and result.latency_s > 0
    body = server.chat_requests()[0].body
    assert (body["model"], body["seed"], body["temperature"], body["n"]) == ("m1", 99, 0.3, 1)


def test_requests_overlap_up_to_the_configured_limit():
    with ScriptedOpenAIServer(models=["m1"], latency_s=0.3) as wide:
        run(mutate_all(mutator(config(wide)), [request(seed=i) for i in range(8)]))
        assert wide.peak_concurrency >= 4  # all 8 were sent at once
        spans = [(r.started, r.ended) for r in wide.chat_requests()]
        assert any(a[0] < b[1] and b[0] < a[1] for a in spans for b in spans if a != b)
    with ScriptedOpenAIServer(models=["m1"], latency_s=0.1) as narrow:
        cfg = config(narrow, openai={"max_concurrent": 2})
        run(mutate_all(mutator(cfg), [request(seed=i) for i in range(6)]))
        assert narrow.peak_concurrency == 2


TRANSPORTS = pytest.mark.parametrize("transport", ["aiohttp", "httpx"])


@TRANSPORTS
def test_429_5xx_and_dropped_connections_are_retried(server, transport):
    server.enqueue(Reply(status=503), Reply(status=429), Reply(drop=True), Reply(GOOD))
    cfg = config(server, openai={"transport": transport})
    [[result]] = run(mutate_all(mutator(cfg), [request()]))
    assert result.ok and result.retries == 3
    assert len(server.chat_requests()) == 4


@TRANSPORTS
def test_timeouts_are_retried_then_classified(server, transport):
    server.enqueue(*[Reply(GOOD, delay_s=1.5)] * 2)
    cfg = config(server, openai={"timeout_s": 0.3, "max_retries": 1, "transport": transport})
    [[result]] = run(mutate_all(mutator(cfg), [request()]))
    assert not result.ok and result.error_kind == "backend_error"
    assert "Timeout" in result.error
    assert len(server.chat_requests()) == 2


def test_a_bad_request_is_this_request_s_failure_only(server):
    server.enqueue(Reply("prompt too long", status=400), Reply(GOOD))
    results = run(mutate_all(mutator(config(server)), [request(), request()]))
    kinds = sorted(str(r[0].error_kind) for r in results)
    assert kinds == ["None", "backend_error"]
    assert len(server.chat_requests()) == 2  # no retry of a 400


@pytest.mark.parametrize(
    "reply, finish, kind",
    [
        ("", "stop", "empty_reply"),
        ("I would make it faster.", "stop", "no_edit_parsed"),
        (GOOD.replace("return 120", "return 999"), "stop", "search_not_found"),
        (
            "<<<<<<< SEARCH\nprint(knobs())\n=======\nprint(1)\n>>>>>>> REPLACE",
            "stop",
            "outside_evolve_block",
        ),
        (
            "<<<<<<< SEARCH\n    return 120, 0.05\n=======\n    return 1",
            "length",
            "truncated_reply",
        ),
    ],
)
def test_unusable_replies_are_classified_with_the_raw_reply(server, reply, finish, kind):
    server.enqueue(Reply(reply, finish_reason=finish))
    [[result]] = run(mutate_all(mutator(config(server)), [request()]))
    assert not result.ok and result.error_kind == kind and result.reply == reply
    assert result.error and result.prompt_hash


def test_a_failed_reply_is_repaired_with_its_error_shown(server):
    bad = GOOD.replace("return 120", "return 999")
    server.enqueue(Reply(bad), Reply(GOOD))
    [results] = run(mutate_all(mutator(config(server, repair_attempts=2)), [request(seed=5)]))
    assert [r.ok for r in results] == [False, True]
    assert results[0].error_kind == "search_not_found" and results[0].reply == bad
    assert (results[1].repairs, results[1].operator) == (1, "llm:diff:repair")
    second = server.chat_requests()[1].body
    roles = [m["role"] for m in second["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    assert second["messages"][2]["content"] == bad
    assert "search_not_found" in second["messages"][3]["content"]
    assert second["seed"] != 5  # a new draw, not the same sample again


def test_repairs_stop_at_the_configured_number(server):
    server.enqueue(*[Reply("no edit")] * 3)
    [results] = run(mutate_all(mutator(config(server, repair_attempts=2)), [request()]))
    assert [r.repairs for r in results] == [0, 1, 2] and not any(r.ok for r in results)


def test_n_samples_in_one_request_or_several(server):
    server.enqueue(Reply(GOOD))
    [results] = run(mutate_all(mutator(config(server)), [request(n=3)]))
    assert len(results) == 3 and len(server.chat_requests()) == 1
    assert server.chat_requests()[0].body["n"] == 3
    cfg = config(server, openai={"supports_n": False})
    [results] = run(mutate_all(mutator(cfg), [request(seed=10, n=3)]))
    later = server.chat_requests()[1:]
    assert len(results) == 3 and len(later) == 3
    assert sorted(r.body["seed"] for r in later) == [10, 11, 12]


def test_ensemble_choice_is_recorded_and_rewards_move_weights(server):
    cfg = config(
        server,
        model=None,
        models=[{"name": "m1", "weight": 1.0}, {"name": "m2", "weight": 1.0}],
        bandit={"enabled": True},
    )
    actor = mutator(cfg)
    results = run(mutate_all(actor, [request(seed=i) for i in range(20)]))
    chosen = {r[0].model for r in results}
    assert chosen == {"m1", "m2"}
    assert {r.body["model"] for r in server.chat_requests()} == chosen
    for _ in range(100):
        actor.reward("m2", 0.9)
        actor.reward("m1", 0.0)
    assert actor.stats()["models"]["m2"]["weight"] > 0.9


def test_wrong_model_and_unreachable_endpoint_stop_at_start(server):
    with pytest.raises(ModelUnavailableError, match="does not serve nope.*m1, m2"):
        run(mutator(config(server, model="nope")).start())
    dead = config(server, base_url="http://127.0.0.1:9/v1", openai={"max_retries": 0})
    with pytest.raises(ModelUnavailableError, match="cannot reach the model endpoint"):
        run(mutator(dead).start())


def test_api_key_comes_from_the_named_variable(monkeypatch):
    with ScriptedOpenAIServer(models=["m1"], api_key="s3cret") as keyed:
        monkeypatch.setenv("RAYEVOLVE_TEST_KEY", "wrong")
        with pytest.raises(ModelUnavailableError, match="RAYEVOLVE_TEST_KEY"):
            run(mutator(config(keyed, api_key_env="RAYEVOLVE_TEST_KEY")).start())
        monkeypatch.setenv("RAYEVOLVE_TEST_KEY", "s3cret")
        keyed.enqueue(Reply(GOOD))
        [[result]] = run(
            mutate_all(mutator(config(keyed, api_key_env="RAYEVOLVE_TEST_KEY")), [request()])
        )
        assert result.ok
        assert keyed.chat_requests()[0].headers["authorization"] == "Bearer s3cret"


def test_unknown_model_mid_run_and_a_dead_endpoint_are_fatal(server):
    cfg = config(server, openai={"check_models": False})
    actor = mutator(cfg)
    server.models.remove("m1")
    with pytest.raises(ModelUnavailableError, match="refused model 'm1'"):
        run(mutate_all(actor, [request()]))
    server.models.append("m1")
    server.enqueue(*[Reply(status=502)] * 6)
    cfg = config(server, openai={"max_retries": 1, "unavailable_after": 3})
    with pytest.raises(ModelUnavailableError, match="3 requests in a row"):
        run(mutate_all(mutator(cfg), [request(seed=i) for i in range(3)]))


def test_sampling_settings_reach_the_endpoint(server):
    server.enqueue(Reply(GOOD))
    cfg = config(server, temperature=0.2, top_p=0.5, max_tokens=123)
    run(mutate_all(mutator(cfg), [request()]))
    body = server.chat_requests()[0].body
    assert (body["temperature"], body["top_p"], body["max_completion_tokens"]) == (0.2, 0.5, 123)
