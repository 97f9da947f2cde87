import pytest
from hydra import compose, initialize_config_dir

from rayevolve.cli import CONF_DIR
from rayevolve.config import ConfigError, RunConfig, register_configs, to_run_config


def composed(*overrides: str) -> RunConfig:
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return to_run_config(compose(config_name="config", overrides=list(overrides)))


def test_defaults_compose_into_a_valid_run_config():
    run = composed()
    assert run.task.name == "circle_packing"
    assert run.mutation.backend == "offline"
    assert run.islands.count == 4
    assert run.cluster.address is None
    assert run.task.resources == {"CPU": 1.0}


@pytest.mark.parametrize(
    "group",
    ["task=function_minimization", "cluster=attach", "islands=default", "evaluation=default"],
)
def test_every_group_option_composes(group):
    composed(group)


def test_overrides_reach_nested_settings():
    run = composed(
        "islands.count=8", "islands.migration.topology=complete", "+task.resources.apple_gpu=1"
    )
    assert run.islands.count == 8
    assert run.islands.migration.topology == "complete"
    assert run.task.resources == {"CPU": 1.0, "apple_gpu": 1.0}


def test_unknown_key_is_refused_by_hydra():
    with pytest.raises(Exception, match="migration_interval"):
        composed("islands.migration_interval=3")


@pytest.mark.parametrize(
    "override, message",
    [
        ("islands.count=0", "islands.count: must be >= 1"),
        ("islands.selection.exploit=0.9", "must sum to 1"),
        ("islands.migration.topology=star", "islands.migration.topology: 'star' is not one of"),
        ("islands.migration.rate=0", "islands.migration.rate"),
        ("mutation.backend=gpt5", "mutation.backend"),
        ("task.direction=up", "task.direction"),
        ("task.sandbox=thread", "task.sandbox: 'thread' is not one of auto, forkserver, spawn"),
        ("stop.max_evaluations=0", "stop.max_evaluations"),
        ("islands.count=many", "islands.count"),
    ],
)
def test_bad_values_name_the_key(override, message):
    with pytest.raises((ConfigError, Exception), match=message):
        composed(override)


def test_plain_dicts_are_validated_too():
    with pytest.raises(ConfigError, match="archive_size"):
        to_run_config(
            {"task": {"name": "t", "path": "p"}, "islands": {"capacity": 5, "archive_size": 6}}
        )


def test_model_backends_compose_with_their_settings():
    run = composed(
        "mutation=openai", "mutation.base_url=http://127.0.0.1:8000/v1", "mutation.model=m"
    )
    assert run.mutation.backend == "openai" and run.mutation.ensemble()[0].name == "m"
    assert run.mutation.actor_resources() == {}
    run = composed("mutation=vllm", "mutation.model=/models/qwen")
    assert run.mutation.backend == "vllm" and run.mutation.vllm.enable_prefix_caching
    assert run.mutation.actor_resources() == {"GPU": 1.0}  # mutation.vllm.num_gpus
    assert run.mutation.label_selector == {"os": "!macos"}  # never on a Mac
    assert run.mutation.repair_attempts == 1  # inherited from mutation/openai.yaml
    run = composed(
        "mutation=openai",
        "mutation.base_url=http://h/v1",
        "mutation.models=[{name: a, weight: 2}, {name: b, base_url: 'http://other/v1'}]",
        "mutation.bandit.enabled=true",
    )
    assert [(m.name, m.weight) for m in run.mutation.ensemble()] == [("a", 2.0), ("b", 1.0)]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["mutation=openai", "mutation.base_url=http://h/v1"], "needs a model"),
        (["mutation=openai", "mutation.model=m"], "needs an endpoint"),
        (["mutation=vllm", "mutation.models=[{name: a}, {name: b}]"], "one vLLM engine"),
        (
            [
                "mutation=openai",
                "mutation.base_url=http://h/v1",
                "mutation.models=[{name: a}, {name: a}]",
            ],
            "repeat",
        ),
        (
            ["mutation=vllm", "mutation.model=m", "mutation.vllm.gpu_memory_utilization=1.5"],
            "gpu_memory_utilization",
        ),
        (
            [
                "mutation=openai",
                "mutation.base_url=http://h/v1",
                "mutation.model=m",
                "mutation.prompts.max_feedback_chars=10",
            ],
            "max_feedback_chars",
        ),
    ],
)
def test_bad_model_settings_name_the_key(overrides, message):
    with pytest.raises((ConfigError, Exception), match=message):
        composed(*overrides)


def test_the_yaml_defaults_are_the_dataclass_defaults():
    """One truth for every default: what `python -m rayevolve` composes with no override
    equals `RunConfig()` in everything but the task (a task's file sets its own values)."""
    from dataclasses import asdict

    composed_defaults = asdict(composed())
    coded_defaults = asdict(RunConfig())
    composed_defaults.pop("task"), coded_defaults.pop("task")
    assert composed_defaults == coded_defaults


def _leaves(node, prefix=()):
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _leaves(value, (*prefix, key))
    else:
        yield prefix, node


@pytest.mark.parametrize(
    "path",
    sorted(
        p for p in CONF_DIR.rglob("*.yaml") if p.parent.name not in ("task", "conf", "experiment")
    ),
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_group_files_set_only_what_differs_from_the_dataclasses(path):
    """A config group's file holds what its option changes; every default lives in
    rayevolve/config.py only (a repeated default could drift from it unnoticed)."""
    from dataclasses import asdict

    import yaml

    defaults = asdict(RunConfig())[path.parent.name]
    repeated = []
    for keys, value in _leaves(yaml.safe_load(path.read_text()) or {}):
        default = defaults
        for key in keys:
            default = default.get(key, object()) if isinstance(default, dict) else object()
        if isinstance(default, tuple):
            default = list(default)
        if value == default:
            repeated.append(".".join(keys))
    assert not repeated, f"{path.relative_to(CONF_DIR)} repeats dataclass defaults: {repeated}"
