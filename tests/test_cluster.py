"""Placement by resources on a simulated two-node cluster, and the fast infeasibility check."""

import time

import pytest

from rayevolve.cluster import ActorRequest, InfeasibleError, check_feasible, ray_options
from rayevolve.log import read_programs
from rayevolve.run.controller import Controller, RunError
from tests.conftest import ROOT, run_config

NODES = [
    {"Alive": True, "Resources": {"CPU": 16.0, "GPU": 1.0}},
    {"Alive": True, "Resources": {"CPU": 8.0, "apple_gpu": 1.0}},
    {"Alive": False, "Resources": {"CPU": 8.0, "tpu": 4.0}},
]


def test_ray_options_split_builtin_and_custom_resources():
    assert ray_options({"CPU": 1}) == {"num_cpus": 1.0}
    assert ray_options({"apple_gpu": 1}) == {"num_cpus": 0.0, "resources": {"apple_gpu": 1.0}}
    assert ray_options({"CPU": 2, "GPU": 1}) == {"num_cpus": 2.0, "num_gpus": 1.0}


def test_feasible_requests_pass():
    check_feasible(
        [
            ActorRequest("evaluator", {"CPU": 1, "apple_gpu": 1}),
            ActorRequest("mutator", {"GPU": 1}),
            ActorRequest("x", {}),
        ],
        NODES,
    )


@pytest.mark.parametrize(
    "resources, expected",
    [
        ({"apple_gpu": 2}, "apple_gpu >= 2"),
        ({"tpu": 1}, "tpu >= 1"),  # only on a dead node
        ({"GPU": 1, "apple_gpu": 1}, "no single node has all of them"),
    ],
)
def test_infeasible_requests_name_what_is_missing(resources, expected):
    with pytest.raises(InfeasibleError, match=expected):
        check_feasible([ActorRequest("each evaluator", resources)], NODES)


def test_missing_apple_gpu_says_how_to_add_a_mac():
    with pytest.raises(InfeasibleError, match="RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1 ray start"):
        check_feasible([ActorRequest("each evaluator", {"apple_gpu": 1})], NODES[:1])


@pytest.mark.ray
def test_apple_gpu_task_runs_only_on_the_apple_node(ray_cluster, tmp_path):
    _, apple_node = ray_cluster
    cfg = run_config("apple_probe", task={"resources": {"apple_gpu": 1}})
    summary = Controller(cfg, tmp_path / "run", [ROOT]).run()
    assert summary.evaluations == 12
    programs = read_programs(tmp_path / "run").to_pandas()
    evaluated = programs[programs.status != "mutation_failed"]
    assert len(evaluated) == 13  # the seed and 12 children
    assert set(evaluated.node_id) == {apple_node}
    assert evaluated.evaluator_id.nunique() == 1  # one apple_gpu unit: one evaluator at a time


@pytest.mark.ray
@pytest.mark.parametrize(
    "resources, missing", [({"apple_gpu": 2}, "apple_gpu"), ({"CPU": 1, "tpu_v9": 1}, "tpu_v9")]
)
def test_infeasible_task_fails_within_seconds(ray_cluster, tmp_path, resources, missing):
    cfg = run_config("apple_probe", task={"resources": resources})
    started = time.monotonic()
    with pytest.raises(RunError, match=missing):
        Controller(cfg, tmp_path / "run", [ROOT]).run()
    assert time.monotonic() - started < 10


def test_capacity_counts_what_live_matching_nodes_hold_at_once():
    from rayevolve.cluster import ActorRequest, capacity

    nodes = [
        {"Alive": True, "Resources": {"CPU": 8, "apple_gpu": 1}, "Labels": {}},
        {"Alive": True, "Resources": {"CPU": 2}, "Labels": {}},
        {"Alive": False, "Resources": {"CPU": 8, "apple_gpu": 4}, "Labels": {}},
    ]
    assert capacity(ActorRequest("e", {"CPU": 1, "apple_gpu": 1}), nodes) == 1
    assert capacity(ActorRequest("e", {"CPU": 1}), nodes) == 10
    assert capacity(ActorRequest("e", {"CPU": 0}), nodes) is None
    assert capacity(ActorRequest("e", {"CPU": 1}, {"kind": "mac"}), nodes) == 0


def test_remote_errors_are_their_own_message_without_traceback_or_colour():
    from rayevolve.cluster import remote_error

    class Remote(Exception):
        def __init__(self, cause):
            super().__init__(
                "\x1b[36mray::A.f()\x1b[39m (pid=1)\n  File x, line 6\nValueError: bad"
            )
            self.cause = cause

    assert remote_error(Remote(ValueError("bad thing"))) == "bad thing"
    assert remote_error(Remote(KeyError())) == "KeyError"
    assert remote_error(ValueError("\x1b[31mred\x1b[0m")) == "red"
