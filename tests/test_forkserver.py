"""The fork server: what forking from a warm process must not change about the sandbox.

The sandbox's own guarantees run under both launchers in test_sandbox.py and
test_hostile.py; these pin what only forking could break."""

import os
import signal

import pytest

from rayevolve.outcome import Outcome
from rayevolve.sandbox.forkserver import resolve_mode
from rayevolve.sandbox.runner import Sandbox, SandboxLimits

pytestmark = pytest.mark.sandbox  # every test here starts confined judges

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


@pytest.fixture(params=["namespaces", "none"])
def task(tmp_path, request):
    """(folder, sandbox): a task folder and a fork-server sandbox over it."""
    folder = tmp_path / "task"
    folder.mkdir()
    (folder / "evaluator.py").write_text(EVALUATOR)
    (folder / "helper.py").write_text("VALUE = 1\n")
    box = Sandbox.of_folder(folder, limits=LIMITS, launcher="forkserver", isolation=request.param)
    yield folder, box
    box.close()


def evaluate(task, code="def run():\n    return 1.0\n"):
    return task[1].evaluate(code, ".py")


def test_preloads_the_evaluators_imports_but_not_the_task_folders_own_modules(task):
    server = task[1].server
    assert server.preload_error is None
    result = evaluate(task)
    assert result.status == Outcome.OK
    # helper.py was imported by the server, yet the child imported it afresh from the copy
    assert result.artifacts["helper"] == str(task[1].task_copy.path / "helper.py")


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
    # this evaluator imports the candidate (in_process): the candidate held the verdict
    # pipe and wrote junk on it, so no verdict is believed; the server's replies stayed its own
    assert result.isolation == "in_process" and result.status == Outcome.REJECTED
    assert "could not be believed" in result.artifacts["error"]
    assert evaluate(task).status == Outcome.OK  # the protocol is still in step


def test_a_dead_server_is_restarted_and_a_candidate_that_kills_it_pays_alone(task):
    box = task[1]
    server = box.server
    assert evaluate(task).status == Outcome.OK
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait()
    assert evaluate(task).status == Outcome.OK  # noticed before sending: restarted
    assert server.starts == 2
    killer = (
        "import os, signal\n"
        "def run():\n"
        "    os.kill(os.getppid(), signal.SIGKILL)\n"  # the judge's parent: the server
        "    import time; time.sleep(30)\n"
    )
    result = evaluate(task, killer)
    if box.isolation == "namespaces":  # the server is its sandbox's init: unkillable inside
        assert result.status == Outcome.TIMEOUT and server.starts == 2
    else:
        assert result.status == Outcome.CRASHED and "supervising" in result.artifacts["error"]
    assert evaluate(task).status == Outcome.OK and server.starts == (
        2 if box.isolation == "namespaces" else 3
    )


def test_a_broken_evaluator_is_reported_by_the_child_not_the_server(tmp_path):
    (tmp_path / "evaluator.py").write_text("import not_a_module_anywhere\n")
    with Sandbox.of_folder(tmp_path, limits=LIMITS, launcher="forkserver") as box:
        result = box.evaluate("x", ".py")
        assert "ModuleNotFoundError" in box.server.preload_error
    assert result.status == Outcome.RUNTIME_ERROR
    assert "evaluator.py failed to import" in result.artifacts["error"]


def test_an_evaluator_that_prints_at_import_does_not_break_the_server(tmp_path):
    (tmp_path / "evaluator.py").write_text(
        "print('hello from the evaluator')\n"
        "print('{\"pid\": 1}')\n"
        "def evaluate(p):\n    return {'combined_score': 1.0}\n"
    )
    with Sandbox.of_folder(tmp_path, limits=LIMITS, launcher="forkserver") as box:
        assert box.evaluate("x", ".py").score == 1.0


def test_modes_resolve_per_platform():
    assert resolve_mode("spawn") == "spawn" and resolve_mode("forkserver") == "forkserver"
    assert resolve_mode("auto") in ("forkserver", "spawn")
    with pytest.raises(ValueError, match="sandbox mode"):
        resolve_mode("thread")
