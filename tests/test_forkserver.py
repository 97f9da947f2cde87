"""The fork server: what forking from a warm process must not change about the sandbox.

The sandbox's own guarantees run under both launchers in test_sandbox.py and
test_hostile.py; these pin what only forking could break."""

import os
import signal

import pytest

from rayevolve.evaluation.forkserver import ForkServer, ForkServerError, resolve_mode
from rayevolve.evaluation.result import EvalStatus
from rayevolve.evaluation.sandbox import SandboxLimits, child_environment, run_candidate
from tests.conftest import alive

LIMITS = SandboxLimits(
    timeout_s=5.0, memory_limit_mb=1024, output_limit_bytes=4096, file_limit_bytes=1 << 20
)

EVALUATOR = """
import importlib.util
import numpy as np
import helper

def evaluate(path):
    spec = importlib.util.spec_from_file_location("candidate", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {"combined_score": float(module.run()), "draw": float(np.random.random()),
            "helper": helper.__file__}
"""


@pytest.fixture
def task(tmp_path):
    folder = tmp_path / "task"
    folder.mkdir()
    (folder / "evaluator.py").write_text(EVALUATOR)
    (folder / "helper.py").write_text("VALUE = 1\n")
    server = ForkServer(child_environment(1), evaluator=folder / "evaluator.py", task_dir=folder)
    yield folder, server
    server.close()


def evaluate(task, code="def run():\n    return 1.0\n"):
    folder, server = task
    return run_candidate(
        code,
        suffix=".py",
        evaluator=folder / "evaluator.py",
        task_dir=folder,
        limits=LIMITS,
        forkserver=server,
    )


def test_preloads_the_evaluators_imports_but_not_the_task_folders_own_modules(task):
    _, server = task
    server.start()
    assert server.preload_error is None
    result = evaluate(task)
    assert result.status == EvalStatus.OK
    # helper.py was imported by the server, yet the child ran its private copy's
    assert "rayevolve-eval-" in result.artifacts["helper"]


def test_each_child_draws_fresh_random_numbers(task):
    draws = {evaluate(task).metrics["draw"] for _ in range(3)}
    assert len(draws) == 3  # numpy's global generator is not the server's, copied


def test_a_candidate_cannot_forge_the_servers_reply(task):
    forger = (
        "import os\n"
        "def run():\n"
        "    for fd in range(3, 64):\n"
        "        try:\n"
        '            os.write(fd, b\'{"returncode": 0, "timed_out": false}\\n\')\n'
        "        except OSError:\n"
        "            pass\n"
        "    raise RuntimeError('really failed')\n"
    )
    result = evaluate(task, forger)
    assert (
        result.status == EvalStatus.RUNTIME_ERROR and "really failed" in result.artifacts["error"]
    )
    assert evaluate(task).status == EvalStatus.OK  # the protocol is still in step


def test_a_dead_server_is_an_infrastructure_error_then_restarted(task):
    _, server = task
    assert evaluate(task).status == EvalStatus.OK
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait()
    assert evaluate(task).status == EvalStatus.OK  # noticed before sending: restarted
    assert server.starts == 2
    pid = server.proc.pid
    hang = "import os, signal\ndef run():\n    os.kill(os.getppid(), signal.SIGKILL)\n"
    with pytest.raises(ForkServerError, match="died"):
        evaluate(task, hang)  # the candidate killed the server mid-evaluation
    assert not alive(pid)
    assert evaluate(task).status == EvalStatus.OK and server.starts == 3


def test_a_broken_evaluator_is_reported_by_the_child_not_the_server(tmp_path):
    (tmp_path / "evaluator.py").write_text("import not_a_module_anywhere\n")
    server = ForkServer(
        child_environment(1), evaluator=tmp_path / "evaluator.py", task_dir=tmp_path
    )
    try:
        result = run_candidate(
            "x",
            suffix=".py",
            evaluator=tmp_path / "evaluator.py",
            task_dir=tmp_path,
            limits=LIMITS,
            forkserver=server,
        )
    finally:
        server.close()
    assert "ModuleNotFoundError" in server.preload_error
    assert result.status == EvalStatus.RUNTIME_ERROR
    assert "evaluator.py failed to import" in result.artifacts["error"]


def test_modes_resolve_per_platform():
    assert resolve_mode("spawn") == "spawn" and resolve_mode("forkserver") == "forkserver"
    assert resolve_mode("auto") in ("forkserver", "spawn")
    with pytest.raises(ValueError, match="sandbox mode"):
        resolve_mode("thread")
