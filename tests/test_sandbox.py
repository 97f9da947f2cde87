"""Hostile and broken candidates end classified, within their limits."""

import time
import uuid

import pytest

from rayevolve.outcome import Outcome
from rayevolve.sandbox.runner import (
    SandboxLimits,
    child_environment,
    truncate_output,
)
from tests.conftest import wait_until_gone

EVALUATOR = """
import importlib.util, os
def evaluate(path):
    spec = importlib.util.spec_from_file_location("candidate", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    value = module.run()
    listing = sorted(os.listdir("."))
    links = [name for name in listing if os.path.islink(name)]
    return {"combined_score": value, "cwd_files": len(listing), "cwd_links": len(links),
            "program_here": float(os.path.basename(path) in listing)}
"""

LIMITS = SandboxLimits(
    timeout_s=3.0, memory_limit_mb=1024, output_limit_bytes=4096, file_limit_bytes=1 << 20
)


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("task")
    (root / "evaluator.py").write_text(EVALUATOR)
    return root


def evaluate(sandbox, task_dir, body, **limits):
    limits = SandboxLimits(**{**LIMITS.__dict__, **limits})
    return sandbox(
        body, suffix=".py", evaluator=task_dir / "evaluator.py", task_dir=task_dir, limits=limits
    )


def test_good_candidate_scores(sandbox, task_dir):
    result = evaluate(sandbox, task_dir, "def run():\n    return 2.5\n")
    assert result.status == Outcome.OK and result.score == 2.5
    # a private directory holding the program and, by link, the task's one file
    assert result.metrics["program_here"] == 1 and result.metrics["cwd_files"] == 2
    assert result.metrics["cwd_links"] == 1


@pytest.mark.parametrize(
    "body, status, message",
    [
        ("def run(:\n", Outcome.COMPILE_ERROR, "SyntaxError"),
        ("def run():\n    raise ValueError('boom')\n", Outcome.RUNTIME_ERROR, "boom"),
        ("def run():\n    return float('nan')\n", Outcome.REJECTED, "non-finite"),
        ("def run():\n    return 'high'\n", Outcome.REJECTED, "combined_score"),
        ("def run():\n    x = bytearray(4 << 30)\n", Outcome.MEMORY_LIMIT, "MemoryError"),
        ("import ctypes\ndef run():\n    ctypes.string_at(0)\n", Outcome.CRASHED, "SIGSEGV"),
        ("import os\ndef run():\n    os._exit(7)\n", Outcome.CRASHED, "code 7"),
        ("import sys\ndef run():\n    sys.exit(0)\n", Outcome.RUNTIME_ERROR, "SystemExit"),
        (
            "def run():\n    open('big', 'wb').write(b'x' * (2 << 20))\n",
            Outcome.RUNTIME_ERROR,
            "File too large",
        ),
    ],
)
def test_failures_are_classified(sandbox, task_dir, body, status, message):
    result = evaluate(sandbox, task_dir, body)
    assert result.status == status, result.artifacts
    assert result.score is None
    assert message in result.artifacts["error"] + result.artifacts.get("traceback", "")


def test_hang_is_killed_at_the_time_limit(sandbox, task_dir):
    started = time.monotonic()
    result = evaluate(
        sandbox, task_dir, "import time\ndef run():\n    time.sleep(60)\n", timeout_s=1.0
    )
    assert result.status == Outcome.TIMEOUT
    assert time.monotonic() - started < 5


def test_grandchild_is_killed_with_the_group(sandbox, task_dir):
    marker = f"grandchild-{uuid.uuid4().hex}"
    body = f"""
import subprocess, sys
def run():
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", {marker!r}])
    return 1.0
"""
    result = evaluate(sandbox, task_dir, body)
    assert result.status == Outcome.OK
    assert wait_until_gone(marker)


def test_megabytes_of_output_are_truncated_head_and_tail(sandbox, task_dir):
    body = "def run():\n    print('HEAD' + 'x' * 3_000_000 + 'TAIL')\n    return 1.0\n"
    result = evaluate(sandbox, task_dir, body, file_limit_bytes=64 << 20)
    assert result.status == Outcome.OK
    out = result.artifacts["stdout"]
    assert out.startswith("HEAD") and out.rstrip().endswith("TAIL")
    assert "bytes omitted" in out and len(out) < 5000


def test_secrets_are_not_inherited(sandbox, task_dir, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    monkeypatch.setenv("HF_TOKEN", "hf-secret")
    env = child_environment(1)
    assert "OPENAI_API_KEY" not in env and "HF_TOKEN" not in env
    body = "import os\ndef run():\n    return float(len([k for k in os.environ if 'KEY' in k or 'TOKEN' in k]))\n"
    assert evaluate(sandbox, task_dir, body).score == 0.0


def test_stdin_is_closed(sandbox, task_dir):
    body = "import sys\ndef run():\n    return float(len(sys.stdin.read()))\n"
    assert evaluate(sandbox, task_dir, body).score == 0.0


def test_truncate_output_small_and_empty(tmp_path):
    path = tmp_path / "f"
    assert truncate_output(path, 10) == ""
    path.write_text("hello")
    assert truncate_output(path, 10) == "hello"


def test_cascade_stops_below_threshold(sandbox, tmp_path):
    (tmp_path / "evaluator.py").write_text(
        "def evaluate_stage1(p):\n    return {'combined_score': float(open(p).read()), 'quick': 1}\n"
        "def evaluate_stage2(p):\n    return {'combined_score': 10.0, 'full': 1}\n"
    )

    def run(code):
        return sandbox(
            code,
            suffix=".txt",
            evaluator=tmp_path / "evaluator.py",
            task_dir=tmp_path,
            limits=LIMITS,
            cascade_thresholds=[0.5],
        )

    low, high = run("0.2"), run("0.9")
    assert (low.score, low.stage, "full" in low.metrics) == (0.2, 1, False)
    assert "threshold" in low.artifacts["cascade"]
    assert (high.score, high.stage, high.metrics["full"]) == (10.0, 2, 1.0)


def test_evaluator_that_fails_to_import_is_reported(sandbox, tmp_path):
    (tmp_path / "evaluator.py").write_text("import not_a_module_anywhere\n")
    result = sandbox(
        "x", suffix=".py", evaluator=tmp_path / "evaluator.py", task_dir=tmp_path, limits=LIMITS
    )
    assert result.status == Outcome.RUNTIME_ERROR
    assert "evaluator.py failed to import" in result.artifacts["error"]


def test_sandbox_cleans_up_its_directory(sandbox, task_dir, tmp_path, monkeypatch):
    """A candidate's directory goes with it; a one-off sandbox (spawn) goes whole."""
    import tempfile

    litter = f"litter-{uuid.uuid4().hex}"
    root = tmp_path / "temp"  # this test's own temp dir: other tests' sandboxes come and go
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    before = set(root.glob("rayevolve-eval-*"))
    body = f"def run():\n    open({litter!r}, 'w').write('x')\n    return 1.0\n"
    assert evaluate(sandbox, task_dir, body).status == Outcome.OK
    assert not list(root.glob(f"rayevolve-eval-*/**/{litter}"))
    if sandbox.mode == "spawn":
        assert set(root.glob("rayevolve-eval-*")) == before


def test_task_env_reaches_the_evaluator(sandbox, tmp_path):
    (tmp_path / "evaluator.py").write_text(
        "import os\ndef evaluate(p):\n    return {'combined_score': float(os.environ['GQA_SCALE'])}\n"
    )
    result = sandbox(
        "x",
        suffix=".py",
        evaluator=tmp_path / "evaluator.py",
        task_dir=tmp_path,
        limits=LIMITS,
        env={"GQA_SCALE": "2.5"},
    )
    assert result.score == 2.5


@pytest.mark.parametrize(
    "status", ["incorrect", "too_slow", "unsupported_platform", "compile_error"]
)
def test_statuses_reported_by_the_evaluator_pass_through(sandbox, tmp_path, status):
    (tmp_path / "evaluator.py").write_text(
        f"def evaluate(p):\n    return {{'status': {status!r}, 'error': 'why'}}\n"
    )
    result = sandbox(
        "x", suffix=".py", evaluator=tmp_path / "evaluator.py", task_dir=tmp_path, limits=LIMITS
    )
    assert result.status == status and result.artifacts["error"] == "why" and result.score is None


def test_unknown_status_from_the_evaluator_is_rejected(sandbox, tmp_path):
    (tmp_path / "evaluator.py").write_text("def evaluate(p):\n    return {'status': 'great'}\n")
    result = sandbox(
        "x", suffix=".py", evaluator=tmp_path / "evaluator.py", task_dir=tmp_path, limits=LIMITS
    )
    assert result.status == "rejected" and "unknown status" in result.artifacts["error"]
