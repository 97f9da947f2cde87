"""The vllm backend for real: vLLM's AsyncLLM engine inside the mutator actor on the local
Ray cluster, serving a tiny random model on the CPU. Its replies are noise, so nearly every
one is a classified mutation failure: that is what has to hold up."""

import json
import os
import time

import psutil
import pytest

from rayevolve.log import read_programs, read_prompts
from rayevolve.mutation.base import MutationRequest
from rayevolve.mutation.prompts import PromptContext, gather_templates
from rayevolve.outcome import MutationFailure, Outcome
from rayevolve.program import Program
from rayevolve.result import EvalResult
from rayevolve.run.controller import Controller
from tests.conftest import ROOT, run_config

pytestmark = [pytest.mark.ray, pytest.mark.timeout(900)]

PARENT = """# EVOLVE-BLOCK-START
X = 1.0
# EVOLVE-BLOCK-END
"""
KINDS = {str(k) for k in MutationFailure} | {"truncated_reply"}
ENGINE = {
    "num_gpus": 0,
    "dtype": "float32",
    "max_model_len": 2048,
    "gpu_memory_utilization": 0.3,  # of host memory on the CPU build (0.92 fails)
    "engine_args": {"kv_cache_memory_bytes": 256 << 20},  # plenty for 2048-token prompts
}


def mutation_config(model_path, **overrides):
    return run_config(
        "parabola",
        mutation={
            "backend": "vllm",
            "model": str(model_path),
            "max_tokens": 48,
            "temperature": 1.0,
            "samples_per_request": 2,
            "repair_attempts": 1,
            "vllm": ENGINE,
            "label_selector": {"os": "!macos"},  # as conf/mutation/vllm.yaml: never a Mac
            **overrides,
        },
    )


def request(seed: int) -> MutationRequest:
    parent = Program.create(PARENT, language="python", parent=None, island=0)
    parent = parent.with_result(EvalResult(Outcome.OK, score=1.0, metrics={"combined_score": 1.0}))
    return MutationRequest(parent, (), island=0, mode="diff", seed=seed, num_samples=2)


@pytest.fixture(scope="module")
def mutator(ray_cluster, tiny_model):
    import ray

    from rayevolve.mutation.actor import MutatorActor

    cfg = mutation_config(tiny_model)
    context = PromptContext("parabola", "Find the top.", "python", True, gather_templates({}, None))
    actor = (
        ray.remote(MutatorActor)
        .options(max_concurrency=64, num_cpus=0)
        .remote(cfg.mutation, "", context, 0)
    )
    ray.get(actor.start.remote(), timeout=600)
    yield actor
    ray.kill(actor)


def engine_processes(actor, recursive: bool = True) -> list[psutil.Process]:
    """The processes vLLM started under the actor (the engine core and, below it, its worker)."""
    import ray

    pid = ray.get(actor.__ray_call__.remote(lambda self: os.getpid()))
    children = psutil.Process(pid).children(recursive=recursive)
    # multiprocessing's resource tracker lives as long as the actor, by design
    return [p for p in children if "resource_tracker" not in " ".join(p.cmdline())]


def describe(processes: list[psutil.Process]) -> list[str]:
    return [f"{p.pid} {p.name()} {' '.join(p.cmdline())[:80]}" for p in processes]


def test_concurrent_requests_are_batched_and_every_reply_is_classified(mutator):
    import ray

    started = time.perf_counter()
    replies = ray.get([mutator.mutate.remote(request(seed)) for seed in range(16)], timeout=300)
    elapsed = time.perf_counter() - started
    stats = ray.get(mutator.stats.remote())
    assert stats["peak_in_flight"] >= 8, stats  # the engine saw them at once
    for results in replies:
        first_tries = [r for r in results if r.repairs == 0]
        assert len(first_tries) == 2  # n = 2
        for r in results:
            assert r.ok or r.error_kind in KINDS, (r.error_kind, r.error)
            assert r.prompt_tokens > 0 and r.completion_tokens > 0 and r.prompt_hash
            assert json.loads(r.prompt)[0]["role"] == "system"
        assert all(r.repairs == 1 for r in results if r.operator.endswith(":repair"))
    assert elapsed < 300


def test_per_request_seeds_make_replies_reproducible_and_distinct(mutator):
    import ray

    a, b, c = ray.get([mutator.mutate.remote(request(s)) for s in (41, 41, 42)], timeout=300)
    first = lambda results: [r.reply for r in results if r.repairs == 0]  # noqa: E731
    assert first(a) == first(b)  # same prompt, same seed: same replies
    assert first(a) != first(c)  # another seed: other replies
    assert first(a)[0] != first(a)[1]  # the n samples of one request differ


def test_the_engine_is_rebuilt_after_its_core_process_is_killed(mutator):
    import ray

    ray.get(mutator.mutate.remote(request(1)), timeout=300)
    before = ray.get(mutator.stats.remote())["engine_restarts"]
    # The engine core is the actor's one direct child (its worker runs below it). Not found by
    # its title "VLLM::EngineCore": vLLM sets titles only where setproctitle imports, and CI
    # saw both processes named "python" (as here with setproctitle hidden from them).
    victims = engine_processes(mutator, recursive=False)
    assert len(victims) == 1, describe(engine_processes(mutator))
    victims[0].kill()
    results = ray.get(mutator.mutate.remote(request(2)), timeout=600)
    assert results and all(r.error_kind != "backend_error" for r in results), results[0].error
    assert ray.get(mutator.stats.remote())["engine_restarts"] == before + 1


def test_close_stops_the_engine_processes(ray_cluster, tiny_model):
    import ray

    from rayevolve.mutation.actor import MutatorActor

    cfg = mutation_config(tiny_model)
    context = PromptContext("parabola", "Find the top.", "python", True, gather_templates({}, None))
    actor = ray.remote(MutatorActor).options(num_cpus=0).remote(cfg.mutation, "", context, 0)
    ray.get(actor.start.remote(), timeout=600)
    children = engine_processes(actor)
    assert children
    ray.get(actor.close.remote(), timeout=120)
    gone, alive = psutil.wait_procs(children, timeout=30)
    left = [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
    assert not left, describe(left)
    ray.kill(actor)


def test_a_run_with_a_noisy_model_ends_cleanly_with_every_reply_logged(
    ray_cluster, tiny_model, tmp_path
):
    cfg = mutation_config(tiny_model)
    cfg = run_config(
        "parabola",
        mutation={**_as_dict(cfg.mutation)},
        islands={"count": 2, "in_flight": 2, "max_consecutive_failures": 6},
        stop={"max_evaluations": 10},
    )
    summary = Controller(cfg, tmp_path / "run", [ROOT]).run()
    assert summary.mutation_failures >= 12
    programs = read_programs(tmp_path / "run").to_pandas()
    failed = programs[programs.status == "mutation_failed"]
    assert set(failed.mutation_error_kind) <= KINDS
    assert (failed.model == str(tiny_model)).all() and failed.reply.notna().all()
    assert failed.prompt_hash.isin(read_prompts(tmp_path / "run").to_pandas().prompt_hash).all()
    # one seed per request: n = 2 samples, each with one repair, share it
    assert failed.mutation_seed.nunique() == len(failed) // 4 >= 3
    assert summary.stopped_because == "islands stopped early (see island errors)"


def _as_dict(config) -> dict:
    from dataclasses import asdict

    return asdict(config)
