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
# the Triton task's tests run where Triton and PyTorch are (`make test-triton`)
if not (importlib.util.find_spec("triton") and importlib.util.find_spec("torch")):
    collect_ignore.append("triton")


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


INTERVAL = "islands.migration.interval"  # what the shared sweep varies, besides the seed


@pytest.fixture(scope="session")
def sweep(ray_cluster, tmp_path_factory):
    """A real 2 x 2 sweep through the CLI (two migration intervals, two seeds; 30
    evaluations each), shared by the analysis, report and web-view tests. Under
    pytest-xdist the first worker to need it builds it, once, for every worker."""
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the folder holding every worker's temp dirs
    sweep_dir, failed = shared / "sweep", shared / "sweep.failed"
    with FileLock(str(shared / "sweep.lock")):
        if failed.is_file():
            pytest.fail(failed.read_text())
        if not (shared / "sweep.built").is_file():
            _build_sweep(ray_cluster[0].address, sweep_dir, failed)
            (shared / "sweep.built").touch()
    return sweep_dir


def _build_sweep(address: str, sweep_dir: Path, failed: Path) -> None:
    done = run_cli(
        "seed=0,1",
        f"{INTERVAL}=5,10",
        "islands.count=2",
        "stop.max_evaluations=30",
        "log.stats_interval_s=1",
        f"cluster.address={address}",
        f"hydra.sweep.dir={sweep_dir}",
        multirun=True,
        timeout=400,
    )
    if done.returncode != 0:
        failed.write_text("the shared sweep failed:\n" + done.stderr[-3000:])
        pytest.fail(failed.read_text())


@pytest.fixture(params=["spawn", "forkserver"])
def sandbox(request):
    """`run_candidate`'s signature through each launcher, at the default isolation: a
    fresh confined interpreter (and sandbox) per candidate, or one `Sandbox` with its fork
    server kept per task folder and settings, as an evaluator actor keeps it."""
    from rayevolve.sandbox.runner import Sandbox, run_candidate

    kept: dict[tuple, Sandbox] = {}

    def run(code: str, *, evaluator: Path, task_dir: Path, suffix: str, limits, **kwargs):
        if request.param == "spawn":
            return run_candidate(
                code, suffix=suffix, evaluator=evaluator, task_dir=task_dir, limits=limits, **kwargs
            )
        key = (str(task_dir), str(evaluator), limits, repr(sorted(kwargs.items())))
        if key not in kept:
            kept[key] = Sandbox.of_folder(
                task_dir,
                limits=limits,
                evaluator=Path(evaluator).relative_to(task_dir).as_posix(),
                launcher="forkserver",
                hidden=(str(task_dir),),
                **{k: tuple(v) if k == "cascade_thresholds" else v for k, v in kwargs.items()},
            )
        return kept[key].evaluate(code, suffix)

    run.mode = request.param
    yield run
    for box in kept.values():
        box.close()


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


def wait_until_gone(marker: str, timeout_s: float = 5.0) -> bool:
    """True once no process carries `marker` (SIGKILL is sent at once; exiting may lag
    under load), False if one still does after `timeout_s`."""
    import time

    from rayevolve.testing.attacks import processes_with

    deadline = time.monotonic() + timeout_s
    while processes_with(marker):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def interruptible() -> None:
    """`preexec_fn` for a subprocess a test will Ctrl-C: SIGINT back to its default, so
    Python raises KeyboardInterrupt in it even when the test session itself was started
    in the background by a shell (which sets SIGINT to ignored, and children inherit it)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


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


def pytest_collection_modifyitems(items):
    """Mark by what a test uses, so `make test-fast` (``-m "not ray and not e2e and not
    sandbox"``) needs no list kept by hand: the shared Ray cluster -> ``ray``; the sandbox
    fixture (confined subprocesses per candidate) -> ``sandbox``; the CLI -> ``e2e``."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if "ray_cluster" in names:
            item.add_marker(pytest.mark.ray)
        if "sandbox" in names:
            item.add_marker(pytest.mark.sandbox)
