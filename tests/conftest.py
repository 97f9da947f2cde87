"""Shared fixtures: one simulated two-node Ray cluster for the whole session.

The head node has 2 CPUs; a second node advertises ``{"apple_gpu": 1}`` (standing in for
a Mac). Everything binds to loopback: with RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 Ray takes
127.0.0.1 as every node's address instead of the machine's external one.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TASKS = Path(__file__).resolve().parent / "tasks"
# the vLLM tests run where vLLM is installed (`make test-vllm`, its own environment)
collect_ignore = [] if importlib.util.find_spec("vllm") else ["vllm"]


@pytest.fixture(scope="session")
def ray_cluster():
    """(cluster, apple_node_id): the shared cluster, driver connected to it."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        connect=True,
        head_node_args={"num_cpus": 2, "include_dashboard": False},
    )
    apple = cluster.add_node(num_cpus=1, resources={"apple_gpu": 1})
    cluster.wait_for_nodes()
    yield cluster, apple.node_id
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(params=["spawn", "forkserver"])
def sandbox(request):
    """`run_candidate` through each launcher: a fresh interpreter with a fresh copy of the
    task per candidate, or a fork server with one checked `TaskCopy` reused, as an
    evaluator actor does (both per task folder, made on first use, closed after)."""
    from rayevolve.evaluation.forkserver import ForkServer
    from rayevolve.evaluation.sandbox import child_environment, run_candidate
    from rayevolve.evaluation.taskcopy import TaskCopy

    servers: dict[Path, ForkServer] = {}
    copies: dict[Path, TaskCopy] = {}

    def run(code: str, *, evaluator: Path, task_dir: Path, **kwargs):
        if request.param == "forkserver":
            if task_dir not in servers:
                copy = copies[task_dir] = TaskCopy.of_folder(task_dir)
                servers[task_dir] = ForkServer(  # preloads from the copy, as the actor's does
                    child_environment(1),
                    evaluator=copy.path / Path(evaluator).relative_to(task_dir),
                    task_dir=copy.path,
                )
            kwargs["forkserver"] = servers[task_dir]
            kwargs["task_copy"] = copies[task_dir]
        return run_candidate(code, evaluator=evaluator, task_dir=task_dir, **kwargs)

    run.mode = request.param
    yield run
    for server in servers.values():
        server.close()
    for copy in copies.values():
        copy.close()


@pytest.fixture
def task_copy(tmp_path):
    """Copy a task folder (from experiments/ or tests/tasks/) into tmp_path."""

    def copy(name: str) -> Path:
        source = TASKS / name if (TASKS / name).is_dir() else ROOT / "experiments" / name
        target = tmp_path / name
        shutil.copytree(source, target)
        return target

    return copy


def run_config(task_name: str, **overrides):
    """A small validated RunConfig for a task of tests/tasks (overrides merge per section)."""
    from rayevolve.config import to_run_config

    base = {
        "task": {
            "name": task_name,
            "path": str(TASKS / task_name),
            "resources": {"CPU": 1},
            "timeout_s": 5,
            "features": [{"name": "code_length", "min": 0, "max": 200, "bins": 4}],
        },
        "islands": {"count": 2, "in_flight": 2, "migration": {"interval": 4}},
        "stop": {"max_evaluations": 12},
        "evaluation": {"num_evaluators": 2},
        "log": {"flush_interval_s": 0.5, "stats_interval_s": 1.0},
        "progress": False,
    }
    for key, value in overrides.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return to_run_config(base)


def alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie awaiting a reaper (PID 1 may not reap)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def run_cli(
    *overrides: str, multirun: bool = False, timeout: float = 240
) -> subprocess.CompletedProcess:
    """`python -m rayevolve [-m] progress=false OVERRIDES` from the project root, as a user runs it."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "rayevolve",
            *(["-m"] if multirun else []),
            "progress=false",
            *overrides,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
