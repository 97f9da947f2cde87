"""Runs as Ray Jobs: the run directory must outlive the job's working-dir copy; and the
README's loopback cluster recipe (``ray start`` with token authentication, a second node
standing in for a Mac, ``ray job submit``) run as a user runs it."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from rayevolve import analysis
from rayevolve.jobs import JOB_CONFIG_ENV, JobRunDirError, check_run_dir, job_working_dir
from rayevolve.placement import host_labels
from tests.conftest import ROOT

JOB_ENV = {JOB_CONFIG_ENV: json.dumps({"runtime_env": {"working_dir": "gcs://_ray_pkg_1.zip"}})}


def test_a_run_dir_inside_a_jobs_working_dir_copy_is_refused(tmp_path):
    copy = tmp_path / "working_dir_files" / "_ray_pkg_1"
    copy.mkdir(parents=True)
    assert job_working_dir(JOB_ENV, copy) == copy.resolve()
    for inside in (Path("runs/x"), Path("."), copy / "runs" / "y"):
        with pytest.raises(JobRunDirError, match="working-dir copy .* deletes after the job"):
            check_run_dir(inside, JOB_ENV, copy)
    assert check_run_dir(tmp_path / "kept", JOB_ENV, copy) == (tmp_path / "kept").resolve()


def test_outside_a_job_any_run_dir_is_made_absolute(tmp_path):
    assert job_working_dir({}, tmp_path) is None
    assert check_run_dir(Path("runs/x"), {}, tmp_path) == (tmp_path / "runs" / "x").resolve()
    no_copy = {JOB_CONFIG_ENV: json.dumps({"runtime_env": {}})}  # a job without --working-dir
    assert check_run_dir(Path("runs/x"), no_copy, tmp_path) == (tmp_path / "runs/x").resolve()
    assert job_working_dir({JOB_CONFIG_ENV: "not json"}, tmp_path) is None


def test_host_names_differ_between_nodes_of_one_machine():
    nodes = [
        {"NodeID": "aa11", "Alive": True, "NodeManagerHostname": "vm", "NodeManagerAddress": "10.0.0.2", "NodeName": "10.0.0.2"},
        {"NodeID": "bb22", "Alive": True, "NodeManagerHostname": "vm", "NodeManagerAddress": "10.0.0.2", "NodeName": "mac"},
        {"NodeID": "cc33", "Alive": True, "NodeManagerHostname": "vm", "NodeManagerAddress": "10.0.0.2", "NodeName": "10.0.0.2"},
        {"NodeID": "dd44", "Alive": True, "NodeManagerHostname": "gpu1", "NodeManagerAddress": "10.0.0.3", "NodeName": "10.0.0.3"},
        {"NodeID": "ee55", "Alive": False, "NodeManagerHostname": "old", "NodeManagerAddress": "10.0.0.4"},
    ]  # fmt: skip
    labels = host_labels(nodes)
    assert labels == {"aa11": "vm#aa11", "bb22": "vm/mac", "cc33": "vm#cc33", "dd44": "gpu1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.e2e
def test_ray_job_submit_runs_on_a_loopback_cluster_with_token_auth(tmp_path):
    """The README recipe: a head and a second ("Mac") node started with `ray start` on
    loopback, token authentication on, `ray job submit` running the offline job; a relative
    run_dir is refused with the reason, an absolute one keeps the log after the job."""
    pytest.importorskip("ray.dashboard.modules.job")  # ray[default]: the Jobs server
    token = tmp_path / "auth_token"
    token.write_text(secrets.token_hex(32) + "\n")
    token.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN_PATH=str(token),
        RAY_USAGE_STATS_ENABLED="0",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    port, dashboard = _free_port(), _free_port()
    # Ray's Unix sockets live under --temp-dir: keep it short (sun_path holds 107 bytes);
    # one per node: two nodes on one machine sharing it unpack a job's working directory
    # into the same folder at once (a job then failed to import modules from it)
    temp = Path(tempfile.mkdtemp(prefix="rj-", dir="/tmp"))
    common = ["--block", "--node-ip-address=127.0.0.1"]
    head = subprocess.Popen(
        ["ray", "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=true",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
         f"--ray-client-server-port={_free_port()}", f"--dashboard-agent-listen-port={_free_port()}",
         f"--metrics-export-port={_free_port()}", f"--temp-dir={temp / 'head'}", *common],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    nodes = [head]
    try:
        _wait_for(lambda: _answers(dashboard), 90, "the head's dashboard")
        mac = subprocess.Popen(
            ["ray", "start", f"--address=127.0.0.1:{port}", "--num-cpus=1", "--node-name=mac",
             "--resources={\"apple_gpu\": 1}", f"--dashboard-agent-listen-port={_free_port()}",
             f"--metrics-export-port={_free_port()}", f"--temp-dir={temp / 'mac'}", *common],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        nodes.append(mac)
        address = f"http://127.0.0.1:{dashboard}"

        def submit(*overrides: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                ["ray", "job", "submit", f"--address={address}", f"--working-dir={ROOT}", "--",
                 "python", "-m", "rayevolve", "progress=false", *overrides],
                env=env, capture_output=True, text=True, timeout=400, cwd=tmp_path,
            )  # fmt: skip

        run_dir = tmp_path / "kept-run"
        done = submit("stop.max_evaluations=20", f"run_dir={run_dir}")
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
        assert "succeeded" in done.stdout + done.stderr
        assert f"run directory {run_dir}" in done.stdout + done.stderr  # said where, at start
        assert json.loads((run_dir / "summary.json").read_text())["evaluations"] == 20
        data = analysis.load(run_dir)
        placed = analysis.placements(data)
        assert set(placed["role"]) == {"runlog", "mutator", "pool", "island", "evaluator"}
        hosts = placed.drop_duplicates("node_id").set_index("node_id")["host"]
        assert hosts.is_unique  # one name per node, though both nodes are this machine
        assert not (run_dir / "runs").exists()
        # attaching a driver to it by its loopback address (Ray answers with the node's
        # own address and redirects; with the token it connects in seconds)
        attached = subprocess.run(
            [sys.executable, "-m", "rayevolve", "progress=false", "stop.max_evaluations=5",
             f"cluster.address=127.0.0.1:{port}", f"run_dir={tmp_path / 'attached'}"],
            env=env, capture_output=True, text=True, timeout=180, cwd=ROOT,
        )  # fmt: skip
        assert attached.returncode == 0, attached.stderr[-3000:]
        refused = submit("stop.max_evaluations=5", "run_dir=runs/inside")
        assert refused.returncode != 0
        assert "inside this Ray job's working-dir copy" in refused.stdout + refused.stderr
    finally:
        for node in reversed(nodes):
            _stop(node)
        leftovers = subprocess.run(["pkill", "-9", "-f", str(temp)], check=False)
        shutil.rmtree(temp, ignore_errors=True)
        assert leftovers.returncode == 1, "processes of the test cluster outlived their node"


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _wait_for(check, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} did not come up in {timeout_s:g} s")


def _stop(node: subprocess.Popen) -> None:
    """Stop one node: its `ray start --block` and every process it started, which share
    its process group (never `ray stop`, which would stop every Ray on the machine, the
    test session's shared cluster included)."""
    try:
        os.killpg(node.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    node.wait(timeout=30)
