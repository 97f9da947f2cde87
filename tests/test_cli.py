"""`python -m rayevolve` end to end, as a user runs it."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from rayevolve.log import read_programs
from tests.conftest import ROOT, interruptible, run_cli

pytestmark = pytest.mark.e2e


def rescore(task: str, program) -> float:
    spec = importlib.util.spec_from_file_location(
        f"evaluator_{task}", ROOT / "experiments" / task / "evaluator.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.evaluate(str(program))["combined_score"]


@pytest.mark.parametrize(
    "task, evaluations",
    [("circle_packing", 120), ("function_minimization", 60)],
)
def test_cpu_task_improves_on_its_starting_score(ray_cluster, tmp_path, task, evaluations):
    cluster, _ = ray_cluster
    run_dir = tmp_path / "run"
    done = run_cli(
        f"task={task}",
        f"cluster.address={cluster.address}",
        f"run_dir={run_dir}",
        f"hydra.run.dir={tmp_path / 'hydra'}",
        "islands.count=2",
        f"stop.max_evaluations={evaluations}",
        "islands.migration.interval=10",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "best score" in done.stdout
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["evaluations"] == evaluations
    assert summary["best_score"] > summary["initial_score"]
    programs = read_programs(run_dir).to_pandas()  # pandas reads the log
    seed = programs[programs.island == -1].iloc[0]
    assert seed.score == pytest.approx(summary["initial_score"])
    assert programs.score.max() == pytest.approx(summary["best_score"])
    best = run_dir / "best" / "program.py"
    assert rescore(task, best) == pytest.approx(
        summary["best_score"]
    )  # the saved best is the scored one
    assert json.loads((run_dir / "versions.json").read_text())["ray"].startswith("2.")


def test_invalid_config_exits_2_naming_the_key(tmp_path):
    done = run_cli("islands.selection.exploit=0.95", f"hydra.run.dir={tmp_path}", timeout=60)
    assert done.returncode == 2
    assert "islands.selection" in done.stderr and "sum to 1" in done.stderr


def test_unknown_key_is_refused(tmp_path):
    done = run_cli("islands.migration.every=3", f"hydra.run.dir={tmp_path}", timeout=60)
    assert done.returncode != 0
    assert "every" in done.stderr


def test_missing_resource_fails_fast_with_a_fix(ray_cluster, tmp_path):
    cluster, _ = ray_cluster
    started = time.monotonic()
    done = run_cli(
        f"cluster.address={cluster.address}",
        f"hydra.run.dir={tmp_path}",
        "+task.resources.apple_gpu=4",
        timeout=120,
    )
    assert done.returncode == 1
    assert "apple_gpu >= 4" in done.stderr and "ray start" in done.stderr
    assert time.monotonic() - started < 60


def test_unreachable_cluster_is_a_clear_error(tmp_path):
    done = run_cli("cluster.address=127.0.0.1:9", f"hydra.run.dir={tmp_path}", timeout=120)
    assert done.returncode == 1
    assert "cannot attach to the Ray cluster" in done.stderr


def test_ctrl_c_on_local_ray_stops_cleanly_with_everything_flushed(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rayevolve",
            "progress=false",
            f"run_dir={run_dir}",
            f"hydra.run.dir={tmp_path / 'hydra'}",
            "islands.count=2",
            "stop.max_evaluations=100000",
            "log.flush_interval_s=1000",
            "log.flush_rows=100000",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=interruptible,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 180
        while not any("evaluator(s) ready" in line for line in lines):  # the start-up line
            assert time.monotonic() < deadline and proc.poll() is None, "the run never started"
            time.sleep(0.2)
        time.sleep(5)  # evolve a while; nothing has been flushed yet (huge flush settings)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        rest, err = proc.communicate(timeout=90)  # it and the reader share stdout: keep both
        reader.join(timeout=10)
        out = "".join(lines) + (rest or "")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err[-3000:]
    assert "interrupted" in out
    assert f"to continue   python -m rayevolve resume={run_dir}" in out
    summary = json.loads((run_dir / "summary.json").read_text())
    programs = read_programs(run_dir).to_pandas()
    evaluated = programs[(programs.status != "mutation_failed") & (programs.island >= 0)]
    assert summary["evaluations"] > 0
    assert len(evaluated) == summary["evaluations"]  # every evaluation reached the log
    assert (run_dir / "best" / "program.py").exists()


def test_resume_with_another_config_group_is_refused_in_one_line(tmp_path):
    (tmp_path / "config.yaml").write_text("seed: 3\n")
    done = run_cli(f"resume={tmp_path}", "task=function_minimization", timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "a resumed run keeps its task settings" in done.stderr.strip().splitlines()[-1]


def test_an_unwritable_run_directory_is_one_line_before_anything_starts(tmp_path):
    (tmp_path / "file").write_text("a file, not a folder: nothing can be written below it")
    done = run_cli(f"run_dir={tmp_path / 'file' / 'run'}", f"hydra.run.dir={tmp_path}", timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("rayevolve: cannot write the run directory") and "run_dir=PATH" in last
