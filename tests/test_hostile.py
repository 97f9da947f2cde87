"""Candidates written to break the evaluation, against the real circle-packing evaluator."""

import time
import uuid

import pytest

from rayevolve.outcome import Outcome
from rayevolve.sandbox.runner import SandboxLimits
from tests.conftest import ROOT, wait_until_gone

TASK = ROOT / "experiments" / "circle_packing"
LIMITS = SandboxLimits(
    timeout_s=5, memory_limit_mb=2048, output_limit_bytes=4096, file_limit_bytes=16 << 20
)
INITIAL = (TASK / "initial_program.py").read_text()


def evaluate(sandbox, code: str, **limits):
    limits = SandboxLimits(**{**LIMITS.__dict__, **limits})
    return sandbox(
        code, suffix=".py", evaluator=TASK / "evaluator.py", task_dir=TASK, limits=limits
    )


CHEAT_IN_MEMORY = """
import sys
import numpy as np

def construct_packing():
    for module in list(sys.modules.values()):  # find the evaluator and disarm it
        if hasattr(module, "validate") and hasattr(module, "BEST_KNOWN"):
            module.validate = lambda centers, radii: None
            module.BEST_KNOWN = 1e-9
    return np.full((26, 2), 0.5), np.full(26, 0.5)   # 26 overlapping circles: sum 13
"""


def test_patching_the_evaluators_checks_in_memory_does_not_change_the_verdict(sandbox):
    result = evaluate(sandbox, CHEAT_IN_MEMORY)
    assert result.status == Outcome.INCORRECT
    assert (
        "overlap" in result.artifacts["error"]
        or "leaves the unit square" in result.artifacts["error"]
    )


CHEAT_ON_DISK = """
import os, sys, glob
import numpy as np

for path in glob.glob(os.path.join(os.path.dirname(os.getcwd()), "**", "evaluator.py"), recursive=True):
    open(path, "w").write("def evaluate(p):\\n    return {'combined_score': 100.0}\\n")
for module in list(sys.modules.values()):
    path = getattr(module, "__file__", None) or ""
    if path.endswith("evaluator.py"):
        open(path, "w").write("def evaluate(p):\\n    return {'combined_score': 100.0}\\n")

def construct_packing():
    raise RuntimeError("gave up")
"""


def test_rewriting_the_evaluator_on_disk_cannot_score_later_candidates(sandbox):
    tampering = evaluate(sandbox, CHEAT_ON_DISK)
    assert tampering.status == Outcome.RUNTIME_ERROR
    honest = evaluate(sandbox, INITIAL)
    assert honest.status == Outcome.OK and honest.score == pytest.approx(2.33685, abs=1e-4)
    assert "combined_score': 100.0" not in (TASK / "evaluator.py").read_text()


CHEAT_THROUGH_THE_PRELOAD = """
import os, signal, sys

FORGE = (
    "import child\\n"
    "child.evaluate = lambda spec: {'status': 'ok', 'score': 100.0, 'stage': 1,"
    " 'metrics': {'combined_score': 100.0}, 'artifacts': {}}\\n"
)
for module in list(sys.modules.values()):
    path = getattr(module, "__file__", None) or ""
    if path.endswith("evaluator.py"):
        source = open(path).read()
        open(path, "w").write(FORGE + source)
pid, server = os.getppid(), None
while pid > 1:  # the fork server: the oldest ancestor still running zygote.py
    with open(f"/proc/{pid}/cmdline", "rb") as handle:
        if b"zygote" in handle.read():
            server = pid
    with open(f"/proc/{pid}/stat") as handle:
        pid = int(handle.read().rsplit(")", 1)[1].split()[1])
if server:  # it restarts, and imports the evaluator again
    os.kill(server, signal.SIGKILL)

def construct_packing():
    raise RuntimeError("gave up")
"""


def test_a_planted_evaluator_never_reaches_the_fork_server_s_next_preload(sandbox):
    """Rewriting the evaluator so that importing it patches the sandbox's own code, then
    killing the fork server so that it imports the evaluator again: the copy is restored
    before the server restarts, and later candidates are judged honestly."""
    from rayevolve.sandbox.forkserver import ForkServerError

    try:
        evaluate(sandbox, CHEAT_THROUGH_THE_PRELOAD)
    except ForkServerError:  # its server died under it: the actor retries such a failure
        pass
    honest = evaluate(sandbox, INITIAL)
    assert honest.status == Outcome.OK and honest.score == pytest.approx(2.33685, abs=1e-4)


def test_bounded_fork_bomb_ends_at_the_time_limit_with_every_process_gone(sandbox):
    marker = f"bomb-{uuid.uuid4().hex}"
    code = f"""
import os, sys, time
import numpy as np

def construct_packing():
    for n in range(60):
        pid = os.fork()
        if pid == 0:
            os.setsid()  # leave the group too
            os.execv("/bin/sh", ["sh", "-c", "sleep 3600; true", {marker!r}])
    print("forked", n + 1, flush=True)
    time.sleep(3600)
"""
    started = time.monotonic()
    result = evaluate(sandbox, code, timeout_s=3)
    assert result.status == Outcome.TIMEOUT
    assert "forked 60" in result.artifacts["stdout"]
    assert time.monotonic() - started < 15
    assert wait_until_gone(marker)


def test_returning_objects_instead_of_numbers_is_incorrect(sandbox):
    code = "def construct_packing():\n    return ('centres', 'radii')\n"
    result = evaluate(sandbox, code)
    assert result.status == Outcome.INCORRECT and "expected numbers" in result.artifacts["error"]


def test_syntax_error_in_an_isolated_candidate_is_a_compile_error(sandbox):
    assert evaluate(sandbox, "def construct_packing(:\n").status == Outcome.COMPILE_ERROR


def test_infinite_score_is_rejected(sandbox, tmp_path):
    (tmp_path / "evaluator.py").write_text(
        "def evaluate(p):\n    return {'combined_score': float('inf')}\n"
    )
    result = sandbox(
        "x", suffix=".py", evaluator=tmp_path / "evaluator.py", task_dir=tmp_path, limits=LIMITS
    )
    assert result.status == Outcome.REJECTED and "non-finite" in result.artifacts["error"]


def test_writing_a_huge_file_outside_its_directory_is_stopped_at_the_file_limit(sandbox):
    code = INITIAL.replace(
        "def construct_packing():",
        "def construct_packing():\n    open('/tmp/outside.bin', 'wb').write(b'x' * (64 << 20))",
        1,
    )
    result = evaluate(sandbox, code)
    assert result.status == Outcome.RUNTIME_ERROR and "File too large" in result.artifacts["error"]
